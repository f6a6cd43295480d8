"""A health probe for containers and scripts: does a server's gRPC health service say SERVING?

    python -m servicekit.probe [ADDRESS] [--service NAME] [--ca FILE] [--timeout SECONDS]

ADDRESS defaults to ``$AUTHZ_HEALTH_ADDRESS``, else ``127.0.0.1:50051``; ``--service ""`` (the
default) is the server as a whole (for the decision service: SERVING once its replica has the
store's data). Exits 0 when SERVING, else 1 with one line on stderr saying why (NOT_SERVING, an
unknown service, unreachable). The Dockerfile's HEALTHCHECK runs it. Health needs no token.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from servicekit.tls import open_channel

DEFAULT_ADDRESS = "127.0.0.1:50051"


def probe(address: str, service: str = "", *, ca: Path | None = None, timeout: float = 3.0) -> str | None:
    """None when ``address`` reports ``service`` SERVING, else why not."""
    with open_channel(address, ca=ca) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            return f"{address}: {exc.code().name}: {exc.details()}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return (
            f"{address}: {service or 'the server'} is {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servicekit.probe", description=__doc__.splitlines()[0])
    parser.add_argument("address", nargs="?", default=os.environ.get("AUTHZ_HEALTH_ADDRESS", DEFAULT_ADDRESS))
    parser.add_argument("--service", default="", help='health service name ("": the whole server)')
    parser.add_argument("--ca", type=Path, default=None, help="connect over TLS, trusting this root CA (PEM)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    args = parser.parse_args(argv)
    problem = probe(args.address, args.service, ca=args.ca, timeout=args.timeout)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
