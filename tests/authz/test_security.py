"""Transport security and decision-call tokens (issue 7).

TLS and mutual TLS for both services with a throwaway CA made here; plain text refused off
loopback unless --insecure (then a WARNING); bearer tokens for decision calls, compared in constant
time, never logged; health and reflection stay open.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from authz import security
from authz.cli import main
from authz.client import Check, Client
from authz.server import DecisionServer, ServerConfig
from authz.server import create_server as create_decision_server
from authz.v1 import authorizer_pb2 as pb
from authz.v1 import authorizer_pb2_grpc
from servicekit import tls
from store.client import StoreClient
from store.server import StoreConfig, StoreServer, create_server
from tests.conftest import DEMO_WORLD, POLICIES, TOKEN, Stack
from tests.helpers import authz_process, free_port, wait_serving

DECISION_TOKEN = "decision-token-s3cr3t-0123456789"


# ---- a throwaway PKI --------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    cert_path = path.with_suffix(".crt")
    key_path = path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, name: str, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]),
            critical=False,
        )  # fmt: skip
    return key, builder.sign(ca_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA that signed the server and client certificates
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate from another CA
    rogue_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca("authz test CA")
    ca_path, _ = _write(root / "ca", ca_key, ca_cert)
    server_cert, server_key = _write(root / "server", *_leaf(ca_key, ca_cert, "localhost", server=True))
    client_cert, client_key = _write(root / "client", *_leaf(ca_key, ca_cert, "authz-client", server=False))
    rogue_ca_key, rogue_ca_cert = _ca("another CA")
    rogue_cert, rogue_key = _write(root / "rogue", *_leaf(rogue_ca_key, rogue_ca_cert, "rogue", server=False))
    return Pki(ca_path, server_cert, server_key, client_cert, client_key, rogue_cert, rogue_key)


# ---- servers ----------------------------------------------------------------------------------


def _store(tmp_path: Path, pki: Pki | None = None, *, mutual: bool = False, listen: str = "127.0.0.1:0",
           insecure: bool = False) -> StoreServer:  # fmt: skip
    return create_server(
        StoreConfig(
            listen=listen, database_url=f"sqlite:///{tmp_path / 'store.db'}", token=TOKEN, allow_test_reset=True,
            tls_cert=pki.server_cert if pki else None, tls_key=pki.server_key if pki else None,
            tls_client_ca=pki.ca if pki and mutual else None, insecure=insecure,
        )
    )  # fmt: skip


@pytest.fixture
def secure_stack(tmp_path: Path, pki: Pki) -> Iterator[tuple[StoreServer, DecisionServer]]:
    """Store and decision service both on mutual TLS; the replica connects with a client certificate;
    decision calls need DECISION_TOKEN."""
    store = _store(tmp_path, pki, mutual=True)
    decision = None
    try:
        with StoreClient(
            f"127.0.0.1:{store.port}", TOKEN, ca=pki.ca, cert=pki.client_cert, key=pki.client_key
        ) as client:
            revision = client.import_world(DEMO_WORLD.read_bytes()).revision
        decision = create_decision_server(
            ServerConfig(
                listen="127.0.0.1:0", store=f"localhost:{store.port}", store_token=TOKEN, policies=POLICIES,
                tls_cert=pki.server_cert, tls_key=pki.server_key, tls_client_ca=pki.ca, require_token=True,
                token=DECISION_TOKEN, store_ca=pki.ca, store_cert=pki.client_cert, store_key=pki.client_key,
            )
        )  # fmt: skip
        assert decision.replica.wait_for(revision, 30), "the replica did not sync over mutual TLS"
        yield store, decision
    finally:
        if decision is not None:
            decision.stop(0)
        store.stop(0)


def _rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# ---- loopback and the token default -----------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:50051", True), ("127.8.9.10:0", True), ("[::1]:50051", True), ("localhost:50051", True),
        ("LOCALHOST:1", True), ("[::ffff:127.0.0.1]:1", True), ("unix:/tmp/authz.sock", True),
        ("0.0.0.0:50051", False), ("[::]:50051", False), (":50051", False), ("10.1.2.3:50051", False),
        ("authz.example.com:443", False), ("192.168.0.1:0", False),
    ],
)  # fmt: skip
def test_is_loopback(address: str, loopback: bool) -> None:
    assert tls.is_loopback(address) is loopback


def test_tokens_default_off_on_loopback_only() -> None:
    assert not security.tokens_required("127.0.0.1:50051", None)
    assert security.tokens_required("127.0.0.1:50051", True)
    assert security.tokens_required("0.0.0.0:50051", None)


# ---- TLS --------------------------------------------------------------------------------------


def test_store_tls(tmp_path: Path, pki: Pki) -> None:
    """A TLS store answers a client that trusts its CA; a plain-text client gets nowhere."""
    store = _store(tmp_path, pki)
    try:
        address = f"127.0.0.1:{store.port}"
        with StoreClient(address, TOKEN, ca=pki.ca) as client:
            assert client.revision() == 0
        with StoreClient(address, TOKEN) as plain:
            assert _rpc_error(lambda: plain.call("GetRevision", _revision_request(), timeout=5)).code() in (
                grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
            )  # fmt: skip
    finally:
        store.stop(0)


def test_store_mutual_tls(tmp_path: Path, pki: Pki) -> None:
    """With a client CA the store needs a client certificate that CA signed."""
    store = _store(tmp_path, pki, mutual=True)
    try:
        address = f"127.0.0.1:{store.port}"
        with StoreClient(address, TOKEN, ca=pki.ca, cert=pki.client_cert, key=pki.client_key) as client:
            assert client.revision() == 0
        for kwargs in ({}, {"cert": pki.rogue_cert, "key": pki.rogue_key}):
            with StoreClient(address, TOKEN, ca=pki.ca, **kwargs) as refused:
                error = _rpc_error(lambda c=refused: c.call("GetRevision", _revision_request(), timeout=5))
                assert error.code() == grpc.StatusCode.UNAVAILABLE, kwargs
    finally:
        store.stop(0)


def _revision_request() -> object:
    from store.v1 import store_pb2

    return store_pb2.RevisionRequest()


def test_decision_service_mutual_tls_and_token(secure_stack: tuple[StoreServer, DecisionServer], pki: Pki) -> None:
    """The replica follows a mutual-TLS store; callers need the CA, a client certificate and the token."""
    _, decision = secure_stack
    address = f"localhost:{decision.port}"
    with Client(address, ca=pki.ca, cert=pki.client_cert, key=pki.client_key, token=DECISION_TOKEN) as client:
        decision_ = client.check("user:carol", "report.edit", "report:rep-weekly-vision")
        assert decision_.allowed
        assert decision_.rules
    with Client(address, ca=pki.ca, token=DECISION_TOKEN, timeout=5) as no_cert:
        error = _rpc_error(lambda: no_cert.check("user:carol", "report.edit", "report:rep-weekly-vision"))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    with Client(address, ca=pki.ca, cert=pki.rogue_cert, key=pki.rogue_key, token=DECISION_TOKEN, timeout=5) as rogue:
        error = _rpc_error(lambda: rogue.check("user:carol", "report.edit", "report:rep-weekly-vision"))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    with Client(address, cert=pki.client_cert, key=pki.client_key, token=DECISION_TOKEN, timeout=5) as untrusting:
        # The system's roots do not know the test CA: the server's certificate is refused.
        error = _rpc_error(lambda: untrusting.check("user:carol", "report.edit", "report:rep-weekly-vision"))
        assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_decision_service_tls(stack: Stack, pki: Pki) -> None:
    """TLS without client certificates: a client trusting the CA is served, a plain-text one is not."""
    decision = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                     policies=stack.policies, tls_cert=pki.server_cert, tls_key=pki.server_key)
    )  # fmt: skip
    try:
        assert decision.replica.wait_for(stack.store_client.revision(), 30)
        with Client(f"127.0.0.1:{decision.port}", ca=pki.ca) as client:
            assert client.check("user:carol", "report.edit", "report:rep-weekly-vision").allowed
        with Client(f"127.0.0.1:{decision.port}", timeout=5) as plain:
            error = _rpc_error(lambda: plain.check("user:carol", "report.edit", "report:rep-weekly-vision"))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        decision.stop(0)


def test_check_cli_over_mutual_tls_with_token(
    secure_stack: tuple[StoreServer, DecisionServer], pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`authz check --ca --cert --key --token-file` reaches a mutual-TLS, token-protected service."""
    monkeypatch.delenv(security.TOKEN_ENV, raising=False)
    _, decision = secure_stack
    token_file = tmp_path / "authz.token"
    token_file.write_text(DECISION_TOKEN + "\n")
    base = ["check", "--server", f"localhost:{decision.port}", "user:carol", "report.edit", "report:rep-weekly-vision",
            "--ca", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]  # fmt: skip
    result = CliRunner().invoke(main, [*base, "--token-file", str(token_file)])
    assert result.exit_code == 0, result.output
    assert "ALLOWED" in result.output
    missing = CliRunner().invoke(main, [*base, "--token-file", str(tmp_path / "absent.token")])
    assert missing.exit_code == 1
    assert "UNAUTHENTICATED" in missing.output
    monkeypatch.setenv(security.TOKEN_ENV, DECISION_TOKEN)
    assert CliRunner().invoke(main, [*base, "--token-file", str(tmp_path / "absent.token")]).exit_code == 0
    half = CliRunner().invoke(main, [*base[:-2], "--token-file", str(token_file)])
    assert half.exit_code == 2
    assert "--cert and --key go together" in half.output


# ---- plain text off loopback ------------------------------------------------------------------


def test_plain_text_on_public_address_is_refused(tmp_path: Path) -> None:
    """Both factories refuse 0.0.0.0 without TLS, naming --insecure, before opening anything."""
    with pytest.raises(tls.InsecureListen, match="--insecure"):
        _store(tmp_path, listen="0.0.0.0:0")
    assert not (tmp_path / "store.db").exists()
    with pytest.raises(tls.InsecureListen, match="--insecure"):
        create_decision_server(
            ServerConfig(listen="0.0.0.0:0", store="127.0.0.1:1", store_token=TOKEN, policies=POLICIES,
                         token=DECISION_TOKEN)
        )  # fmt: skip


def test_plain_text_on_public_address_with_insecure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """--insecure allows it, with a WARNING that says so."""
    caplog.set_level(logging.INFO)
    store = _store(tmp_path, listen="0.0.0.0:0", insecure=True)
    decision = None
    try:
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "--insecure" in r.getMessage()]
        assert warnings, caplog.text
        assert "plain text" in warnings[0].getMessage()
        with StoreClient(f"127.0.0.1:{store.port}", TOKEN) as client:
            assert client.revision() == 0
        caplog.clear()
        decision = create_decision_server(
            ServerConfig(listen="0.0.0.0:0", store=f"127.0.0.1:{store.port}", store_token=TOKEN, policies=POLICIES,
                         insecure=True, token=DECISION_TOKEN)
        )  # fmt: skip
        assert any(r.levelno == logging.WARNING and "--insecure" in r.getMessage() for r in caplog.records)
        # Off loopback, decision calls need the token by default.
        with Client(f"127.0.0.1:{decision.port}", timeout=10) as client:
            assert decision.replica.synced.wait(30)
            error = _rpc_error(lambda: client.check("user:carol", "report.edit", "report:rep-weekly-vision"))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        if decision is not None:
            decision.stop(0)
        store.stop(0)


def test_public_decision_service_needs_a_token() -> None:
    """Tokens are on off loopback: a decision service without one does not start."""
    with pytest.raises(ValueError, match=security.TOKEN_ENV):
        create_decision_server(
            ServerConfig(listen="0.0.0.0:0", store="127.0.0.1:1", store_token=TOKEN, policies=POLICIES,
                         insecure=True)
        )  # fmt: skip
    with pytest.raises(ValueError, match=security.TOKEN_ENV):
        create_decision_server(
            ServerConfig(listen="127.0.0.1:0", store="127.0.0.1:1", store_token=TOKEN, policies=POLICIES,
                         require_token=True)
        )  # fmt: skip


@pytest.mark.parametrize("command", [["store", "serve"], ["serve"]])
def test_cli_refuses_plain_text_on_public_address(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`authz store serve` and `authz serve` on 0.0.0.0 without TLS exit non-zero, naming --insecure."""
    monkeypatch.chdir(tmp_path)  # nothing may be written, but if it were, not in the checkout
    monkeypatch.setenv("AUTHZ_STORE_TOKEN", TOKEN)
    result = CliRunner().invoke(
        main, [*command, "--listen", "0.0.0.0:0", "--database-url" if command[0] == "store" else "--policies",
               f"sqlite:///{tmp_path / 'x.db'}" if command[0] == "store" else str(POLICIES)],
    )  # fmt: skip
    assert result.exit_code != 0
    assert "--insecure" in result.output
    assert "--tls-cert" in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_tls_flags_must_pair(tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHZ_STORE_TOKEN", TOKEN)
    result = CliRunner().invoke(main, ["store", "serve", "--listen", "0.0.0.0:0", "--tls-cert", str(pki.server_cert)])
    assert result.exit_code == 2
    assert "--tls-cert and --tls-key go together" in result.output


def test_cli_store_serve_insecure_warns(tmp_path: Path) -> None:
    """`authz store serve --listen 0.0.0.0:PORT --insecure` starts and logs a WARNING."""
    port = free_port()
    log = tmp_path / "store.log"
    process = authz_process(
        "store", "serve", "--listen", f"0.0.0.0:{port}", "--insecure", "--database-url",
        f"sqlite:///{tmp_path / 'store.db'}", log=log, env={"AUTHZ_STORE_TOKEN": TOKEN}, cwd=tmp_path,
    )  # fmt: skip
    try:
        wait_serving(f"127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(30)
    text = log.read_text()
    assert "WARNING" in text
    assert "--insecure" in text
    assert TOKEN not in text


def test_cli_serve_tls_and_token(stack: Stack, pki: Pki, tmp_path: Path) -> None:
    """`authz serve` with --tls-cert/--tls-key/--tls-client-ca, --require-token and the store's address."""
    port = free_port()
    log = tmp_path / "serve.log"
    token_file = tmp_path / "authz.token"
    process = authz_process(
        "serve", "--listen", f"127.0.0.1:{port}", "--store", f"127.0.0.1:{stack.store.port}", "--policies",
        str(stack.policies), "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
        "--tls-client-ca", str(pki.ca), "--require-token", "--authz-token-file", str(token_file),
        log=log, env={"AUTHZ_STORE_TOKEN": TOKEN, security.TOKEN_ENV: ""}, cwd=tmp_path,
    )  # fmt: skip
    try:
        # Health is open, but over mutual TLS.
        credentials = tls.channel_credentials(ca=pki.ca, cert=pki.client_cert, key=pki.client_key)
        assert credentials is not None
        _wait_serving_secure(f"localhost:{port}", credentials)
        token = token_file.read_text().strip()
        assert token
        assert token_file.stat().st_mode & 0o077 == 0
        with Client(f"localhost:{port}", ca=pki.ca, cert=pki.client_cert, key=pki.client_key, token=token) as client:
            assert client.check("user:carol", "report.edit", "report:rep-weekly-vision").allowed
        with Client(f"localhost:{port}", ca=pki.ca, cert=pki.client_cert, key=pki.client_key) as client:
            error = _rpc_error(lambda: client.check("user:carol", "report.edit", "report:rep-weekly-vision"))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        process.terminate()
        process.wait(30)
    text = log.read_text()
    assert "mutual TLS" in text
    assert token not in text


def _wait_serving_secure(address: str, credentials: grpc.ChannelCredentials, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    with grpc.secure_channel(address, credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)


# ---- bearer tokens ----------------------------------------------------------------------------


@pytest.fixture
def token_server(stack: Stack, caplog: pytest.LogCaptureFixture) -> Iterator[DecisionServer]:
    """A second decision service over the stack's store, on loopback with --require-token."""
    caplog.set_level(logging.DEBUG)
    decision = create_decision_server(
        ServerConfig(listen="127.0.0.1:0", store=f"127.0.0.1:{stack.store.port}", store_token=TOKEN,
                     policies=stack.policies, require_token=True, token=DECISION_TOKEN)
    )  # fmt: skip
    try:
        assert decision.replica.wait_for(stack.store_client.revision(), 30)
        yield decision
    finally:
        decision.stop(0)


def _calls(stub: authorizer_pb2_grpc.AuthorizerStub) -> dict[str, Callable[[Any], object]]:
    check = Check("user:carol", "report.edit", "report:rep-weekly-vision").message()
    return {
        "Check": lambda metadata: stub.Check(check, metadata=metadata, timeout=10),
        "BatchCheck": lambda metadata: stub.BatchCheck(
            pb.BatchCheckRequest(checks=[check, check]), metadata=metadata, timeout=10
        ),
        "ListResources": lambda metadata: stub.ListResources(
            pb.ListResourcesRequest(
                subject=pb.ObjectRef(kind="user", id="carol"), action="report.view", resource_kind="report"
            ),
            metadata=metadata,
            timeout=10,
        ),
        "ListSubjects": lambda metadata: stub.ListSubjects(
            pb.ListSubjectsRequest(action="report.edit", resource=pb.ObjectRef(kind="report", id="rep-weekly-vision")),
            metadata=metadata,
            timeout=10,
        ),
    }


@pytest.mark.parametrize("method", ["Check", "BatchCheck", "ListResources", "ListSubjects"])
def test_decision_calls_need_the_token(
    token_server: DecisionServer, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """No token or a wrong one: UNAUTHENTICATED; the right one: an answer. No token is ever logged."""
    wrong = "wrong-token-abcdefghijklmnop"
    with grpc.insecure_channel(f"127.0.0.1:{token_server.port}") as channel:
        call = _calls(authorizer_pb2_grpc.AuthorizerStub(channel))[method]
        for metadata, message in (
            ((), "missing bearer token"),
            ((("authorization", f"Bearer {wrong}"),), "invalid bearer token"),
            ((("authorization", f"Bearer {DECISION_TOKEN[:-1]}"),), "invalid bearer token"),
            ((("authorization", DECISION_TOKEN),), "missing bearer token"),  # no "Bearer " scheme
            ((("x-token", DECISION_TOKEN),), "missing bearer token"),
        ):
            error = _rpc_error(lambda m=metadata: call(m))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, metadata
            assert message in (error.details() or "")
            assert DECISION_TOKEN not in (error.details() or "")
        assert call((("authorization", f"Bearer {DECISION_TOKEN}"),)) is not None
        assert call((("authorization", f"bearer {DECISION_TOKEN}"),)) is not None
    for secret in (DECISION_TOKEN, wrong, TOKEN):
        assert secret not in caplog.text
        assert all(secret not in record.getMessage() for record in caplog.records)


def test_health_and_reflection_stay_open(token_server: DecisionServer) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    wait_serving(f"127.0.0.1:{token_server.port}")  # health answers without a token
    with grpc.insecure_channel(f"127.0.0.1:{token_server.port}") as channel:
        replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
        )
        names = {service.name for reply in replies for service in reply.list_services_response.service}
        assert "authz.v1.Authorizer" in names


def test_client_sends_the_token(token_server: DecisionServer, caplog: pytest.LogCaptureFixture) -> None:
    """authz.client.Client(token=...) sends `authorization: Bearer`; the token stays out of logs and reprs."""
    with Client(f"127.0.0.1:{token_server.port}", token=DECISION_TOKEN) as client:
        assert client.check("user:carol", "report.edit", "report:rep-weekly-vision").allowed
        assert len(client.batch_check([Check("user:dave", "report.edit", "report:rep-weekly-vision")])) == 1
    with Client(f"127.0.0.1:{token_server.port}") as anonymous:
        error = _rpc_error(lambda: anonymous.check("user:carol", "report.edit", "report:rep-weekly-vision"))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    config = ServerConfig(store_token=TOKEN, token=DECISION_TOKEN)
    assert DECISION_TOKEN not in repr(config)
    assert TOKEN not in repr(config)
    assert TOKEN not in repr(StoreConfig(token=TOKEN))
    assert DECISION_TOKEN not in repr(security.token_interceptor(DECISION_TOKEN))
    assert DECISION_TOKEN not in caplog.text


def test_ensure_token_writes_a_private_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(security.TOKEN_ENV, raising=False)
    path = tmp_path / "var" / "authz.token"
    token = security.ensure_token(path)
    assert len(token) >= 32
    assert path.read_text().strip() == token
    assert path.stat().st_mode & 0o777 == 0o600
    assert security.ensure_token(path) == token
    monkeypatch.setenv(security.TOKEN_ENV, "from-the-environment")
    assert security.read_token(path) == "from-the-environment"
