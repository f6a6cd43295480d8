# syntax=docker/dockerfile:1
# One image for both services of authz: `authz store serve` and `authz serve` (compose.yaml runs
# both). Not built in CI: the project's machines have no container runtime (README, "Containers").

# ---- build: compile the protos and install the project into a virtual environment --------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# What the wheel is built from (hatch_build.py compiles protos/ into authz.v1 and store.v1).
COPY pyproject.toml hatch_build.py README.md ./
COPY protos ./protos
COPY src ./src
RUN python -m venv /opt/authz \
    && /opt/authz/bin/pip install --upgrade pip \
    && /opt/authz/bin/pip install .

# ---- run: the virtual environment, the policies and the demo world; no compiler, no root --------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 authz \
    && useradd --system --uid 10001 --gid authz --home-dir /srv/authz --create-home --shell /usr/sbin/nologin authz
COPY --from=build /opt/authz /opt/authz
COPY --chown=root:root policies /srv/authz/policies
COPY --chown=root:root examples /srv/authz/examples
# Logs are JSON lines on stderr (--log-format json); the relative paths of the commands (policies/,
# var/ for tokens and a SQLite store) are under /srv/authz, which only the authz user may write.
ENV PATH=/opt/authz/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    AUTHZ_LOG_FORMAT=json \
    AUTHZ_HEALTH_ADDRESS=127.0.0.1:50051
WORKDIR /srv/authz
USER authz:authz
# 50051 decisions (gRPC), 50052 the store (gRPC), 9100 Prometheus metrics.
EXPOSE 50051 50052 9100
# gRPC health of the server in this container (AUTHZ_HEALTH_ADDRESS: set it to 127.0.0.1:50052 for
# the store); the decision service is SERVING once its replica has the store's data.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "servicekit.probe"]
ENTRYPOINT ["authz"]
# Off loopback a server needs TLS (--tls-cert/--tls-key) or --insecure; decision calls then need a
# token ($AUTHZ_TOKEN) and the store its own ($AUTHZ_STORE_TOKEN). compose.yaml passes them.
CMD ["serve", "--listen", "0.0.0.0:50051", "--insecure", "--metrics", "0.0.0.0:9100"]
