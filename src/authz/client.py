"""A Python client for authz.v1.Authorizer.

with Client("127.0.0.1:50051") as authz:
    decision = authz.check("user:bob", "report.edit", "report:rep1")
    if decision.allowed: ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from authz.decision import Decision
from authz.v1 import authorizer_pb2 as pb
from authz.v1 import authorizer_pb2_grpc
from servicekit.text import clip
from servicekit.tls import Pem, open_channel


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


@dataclass(frozen=True)
class Listing:
    """The ids a list call returned, the store revision and policy version of its (last) page, and
    the token of the page after it (empty when there is none)."""

    ids: tuple[str, ...]
    revision: int
    policy_version: str
    next_page_token: str = ""


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

    def list_resources(
        self,
        subject: str,
        action: str,
        resource_kind: str,
        context: Mapping[str, str] | None = None,
        *,
        page_size: int = 0,
        page_token: str = "",
        min_revision: int = 0,
        all_pages: bool = True,
    ) -> Listing:
        """The ids of the ``resource_kind`` resources ``subject`` may do ``action`` on (ListResources).

        Every page from ``page_token`` on, or with ``all_pages=False`` that page alone (its
        ``next_page_token`` continues). Raises ValueError for a malformed subject, grpc.RpcError for
        the service's refusals.
        """
        request = pb.ListResourcesRequest(
            subject=parse_ref(subject, "subject"), action=action, resource_kind=resource_kind,
            context=dict(context or {}), page_size=page_size, min_revision=min_revision,
        )  # fmt: skip
        return self._pages(self.stub.ListResources, request, "resource_ids", page_token, all_pages)

    def list_subjects(
        self,
        action: str,
        resource: str,
        subject_kind: str = "user",
        context: Mapping[str, str] | None = None,
        *,
        page_size: int = 0,
        page_token: str = "",
        min_revision: int = 0,
        all_pages: bool = True,
    ) -> Listing:
        """The ids of the ``subject_kind`` subjects that may do ``action`` on ``resource`` (ListSubjects).

        Pages as :meth:`list_resources`.
        """
        request = pb.ListSubjectsRequest(
            action=action, resource=parse_ref(resource, "resource"), subject_kind=subject_kind,
            context=dict(context or {}), page_size=page_size, min_revision=min_revision,
        )  # fmt: skip
        return self._pages(self.stub.ListSubjects, request, "subject_ids", page_token, all_pages)

    def _pages(self, call: Any, request: Any, field: str, page_token: str, all_pages: bool) -> Listing:
        ids: list[str] = []
        while True:
            request.page_token = page_token
            response = call(request, timeout=self.timeout, metadata=self.metadata)
            ids.extend(getattr(response, field))
            if not all_pages or not response.next_page_token or response.next_page_token == page_token:
                return Listing(tuple(ids), response.revision, response.policy_version, response.next_page_token)
            page_token = response.next_page_token
            # The next page is read at this page's revision or later, never earlier (another worker's
            # replica may lag behind).
            request.min_revision = max(request.min_revision, response.revision)
