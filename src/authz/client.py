"""A Python client for authz.v1.Authorizer.

with Client("127.0.0.1:50051") as authz:
    decision = authz.check("user:bob", "report.edit", "report:rep1")
    if decision.allowed: ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from authz.decider import Decision
from authz.security import Pem, open_channel
from authz.v1 import authorizer_pb2 as pb
from authz.v1 import authorizer_pb2_grpc
from servicekit.text import clip


def parse_ref(text: str, what: str = "reference") -> pb.ObjectRef:
    """``user:bob`` -> ObjectRef(kind="user", id="bob"); ``anonymous`` stands alone."""
    if text == "anonymous":
        return pb.ObjectRef(kind="anonymous")
    kind, sep, ident = text.partition(":")
    if not sep:
        raise ValueError(f"{what} {clip(text)} must be written kind:id (e.g. user:bob) or anonymous")
    return pb.ObjectRef(kind=kind, id=ident)


@dataclass(frozen=True)
class Check:
    subject: str
    action: str
    resource: str
    context: Mapping[str, str] | None = None
    min_revision: int = 0
    explain: bool = False

    def message(self) -> pb.CheckRequest:
        return pb.CheckRequest(
            subject=parse_ref(self.subject, "subject"),
            action=self.action,
            resource=parse_ref(self.resource, "resource"),
            context=dict(self.context or {}),
            min_revision=self.min_revision,
            explain=self.explain,
        )


def decision_of(response: pb.CheckResponse) -> Decision:
    return Decision(
        allowed=response.allowed,
        reason=response.reason,
        rules=tuple(response.rules),
        policy_lines=tuple(response.policy_lines),
        revision=response.revision,
        policy_version=response.policy_version,
        explanation=response.explanation,
    )


class Client:
    """A decision-service client. ``token`` is sent as ``authorization: Bearer``; ``ca`` (root
    certificate to trust, PEM bytes or a file), ``cert`` and ``key`` (a client certificate for mutual
    TLS) or ``tls=True`` (the system's roots) make the channel secure."""

    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        *,
        token: str = "",
        timeout: float = 10.0,
        ca: Pem | None = None,
        cert: Pem | None = None,
        key: Pem | None = None,
        tls: bool = False,
    ) -> None:
        self.channel = open_channel(address, ca=ca, cert=cert, key=key, tls=tls)
        self.stub = authorizer_pb2_grpc.AuthorizerStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def check(
        self,
        subject: str,
        action: str,
        resource: str,
        context: Mapping[str, str] | None = None,
        *,
        min_revision: int = 0,
        explain: bool = False,
    ) -> Decision:
        """May ``subject`` do ``action`` on ``resource``? Raises grpc.RpcError for bad input."""
        request = Check(subject, action, resource, context, min_revision, explain).message()
        return decision_of(self.stub.Check(request, timeout=self.timeout, metadata=self.metadata))

    def batch_check(self, checks: Iterable[Check]) -> list[Decision]:
        request = pb.BatchCheckRequest(checks=[c.message() for c in checks])
        response = self.stub.BatchCheck(request, timeout=self.timeout, metadata=self.metadata)
        return [decision_of(r) for r in response.results]
