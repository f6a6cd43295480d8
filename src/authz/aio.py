"""An asyncio client for authz.v1.Authorizer (grpc.aio), with the methods of :class:`authz.client.Client`.

async with Client("127.0.0.1:50051") as authz:
    decision = await authz.check("user:carol", "report.edit", "report:rep-weekly-vision")

Requests, answers, paging and the call policy (a deadline on every call, retries of
``UNAVAILABLE``, the token from ``$AUTHZ_TOKEN`` or ``var/authz.token``) are those of the blocking
client, from :mod:`authz.calls`. A Client belongs to the event loop it was created in (grpc.aio
channels do): create it inside a coroutine; its calls may run concurrently on that loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from authz import calls
from authz.calls import Check, Listing
from authz.decision import Decision
from authz.v1 import authorizer_pb2_grpc
from servicekit.tls import Pem, open_aio_channel

__all__ = ["Check", "Client", "Listing"]


class Client:
    """An asyncio decision-service client; the arguments are those of :class:`authz.client.Client`."""

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
        self.channel = open_aio_channel(address, ca=ca, cert=cert, key=key, tls=tls, options=calls.CHANNEL_OPTIONS)
        self.stub = authorizer_pb2_grpc.AuthorizerStub(self.channel)
        self.metadata = calls.metadata(token)
        self.timeout = timeout

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _call(self, method: Any, request: Any) -> Any:
        return await method(request, timeout=self.timeout, metadata=self.metadata)

    async def check(
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
        grpc.aio.AioRpcError (a grpc.RpcError) for the service's refusals."""
        request = Check(subject, action, resource, context, min_revision, explain).message()
        return calls.decision_of(await self._call(self.stub.Check, request))

    async def batch_check(self, checks: Iterable[Check]) -> list[Decision]:
        """Up to 1000 checks in one call, answered at one store revision, in order."""
        return calls.decisions_of(await self._call(self.stub.BatchCheck, calls.batch_request(checks)))

    async def list_resources(
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
        """ListResources, every page by default (see :meth:`authz.client.Client.list_resources`)."""
        request = calls.list_resources_request(subject, action, resource_kind, context, page_size, min_revision)
        return await self._pages(self.stub.ListResources, calls.Pages(request, "resource_ids", page_token, all_pages))

    async def list_subjects(
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
        """ListSubjects, every page by default (see :meth:`authz.client.Client.list_subjects`)."""
        request = calls.list_subjects_request(action, resource, subject_kind, context, page_size, min_revision)
        return await self._pages(self.stub.ListSubjects, calls.Pages(request, "subject_ids", page_token, all_pages))

    async def get_policy(self) -> tuple[str, dict[str, bytes]]:
        """The policy serving: its version and its files (name -> bytes)."""
        from authz.v1 import authorizer_pb2 as pb

        response = await self._call(self.stub.GetPolicy, pb.GetPolicyRequest())
        return response.policy_version, {item.name: item.content for item in response.files}

    async def _pages(self, method: Any, pages: calls.Pages) -> Listing:
        while (listing := pages.take(await self._call(method, pages.request()))) is None:
            pass
        return listing
