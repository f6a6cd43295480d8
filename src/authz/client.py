"""A Python client for authz.v1.Authorizer (blocking; :mod:`authz.aio` is the asyncio one).

with Client("127.0.0.1:50051") as authz:
    decision = authz.check("user:carol", "report.edit", "report:rep-weekly-vision")
    if decision.allowed: ...

Requests, answers, paging and the call policy (a deadline on every call, retries of
``UNAVAILABLE``, the token from ``$AUTHZ_TOKEN`` or ``var/authz.token``) are shared with the
asyncio client in :mod:`authz.calls`. A Client may be used from several threads (gRPC channels
and stubs are thread-safe; the client holds nothing else that changes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from authz import calls
from authz.calls import Check, Listing, decision_of, parse_ref
from authz.decision import Decision
from authz.v1 import authorizer_pb2_grpc
from servicekit.tls import Pem, open_channel

__all__ = ["Check", "Client", "Listing", "decision_of", "parse_ref"]


class Client:
    """A decision-service client.

    ``token`` is sent as ``authorization: Bearer`` (None: ``$AUTHZ_TOKEN``, else ``var/authz.token``
    when it exists; ``""``: no token). ``timeout`` is every call's deadline in seconds (each page's,
    for the list calls), retries included. ``ca`` (root certificate to trust, PEM bytes or a file),
    ``cert`` and ``key`` (a client certificate for mutual TLS) or ``tls=True`` (the system's roots)
    make the channel secure.
    """

    def __init__(
        self,
        address: str = "127.0.0.1:50051",
        *,
        token: str | None = None,
        timeout: float = calls.DEFAULT_TIMEOUT,
        ca: Pem | None = None,
        cert: Pem | None = None,
        key: Pem | None = None,
        tls: bool = False,
    ) -> None:
        self.channel = open_channel(address, ca=ca, cert=cert, key=key, tls=tls, options=calls.CHANNEL_OPTIONS)
        self.stub = authorizer_pb2_grpc.AuthorizerStub(self.channel)
        self.metadata = calls.metadata(token)
        self.timeout = timeout

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _call(self, method: Any, request: Any) -> Any:
        return method(request, timeout=self.timeout, metadata=self.metadata)

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
        """May ``subject`` do ``action`` on ``resource``? Raises ValueError for a malformed reference,
        grpc.RpcError for the service's refusals (INVALID_ARGUMENT naming the field, ...)."""
        request = Check(subject, action, resource, context, min_revision, explain).message()
        return decision_of(self._call(self.stub.Check, request))

    def batch_check(self, checks: Iterable[Check]) -> list[Decision]:
        """Up to 1000 checks in one call, answered at one store revision, in order."""
        return calls.decisions_of(self._call(self.stub.BatchCheck, calls.batch_request(checks)))

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
        request = calls.list_resources_request(subject, action, resource_kind, context, page_size, min_revision)
        return self._pages(self.stub.ListResources, calls.Pages(request, "resource_ids", page_token, all_pages))

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
        request = calls.list_subjects_request(action, resource, subject_kind, context, page_size, min_revision)
        return self._pages(self.stub.ListSubjects, calls.Pages(request, "subject_ids", page_token, all_pages))

    def get_policy(self) -> tuple[str, dict[str, bytes]]:
        """The policy serving: its version and its files (name -> bytes)."""
        from authz.v1 import authorizer_pb2 as pb

        response = self._call(self.stub.GetPolicy, pb.GetPolicyRequest())
        return response.policy_version, {item.name: item.content for item in response.files}

    def _pages(self, method: Any, pages: calls.Pages) -> Listing:
        while (listing := pages.take(self._call(method, pages.request()))) is None:
            pass
        return listing
