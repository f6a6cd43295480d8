"""What the two Python clients share: requests built from Python values, responses read back, the
call policy (deadline, retries, token) and the paging of the list calls.

:mod:`authz.client` (blocking) and :mod:`authz.aio` (asyncio) are thin shells over this module:
they differ only in how they wait. Light on purpose, like them: gRPC and protobuf, no database.

Call policy:

* Every call has a deadline, :data:`DEFAULT_TIMEOUT` seconds unless the client is given another.
* The four decision calls are reads, so repeating one is safe: a call answered ``UNAVAILABLE`` (the
  service restarting, not yet loaded, a connection refused) is retried by gRPC itself, from the
  channel's service config (:data:`SERVICE_CONFIG`): up to :data:`MAX_ATTEMPTS` attempts, waiting
  a random time up to a backoff that doubles from 0.1 s to at most 2 s, never past the call's
  deadline. gRPC's retry throttling pauses retries on a channel while most attempts fail, so a
  service that is down is not hammered. Other statuses are answers and are never retried.
* The token is the one given, else ``$AUTHZ_TOKEN``, else ``var/authz.token`` when that file
  exists (as ``authz check`` reads it), sent as ``authorization: Bearer``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from authz.decision import Decision
from authz.v1 import authorizer_pb2 as pb
from servicekit.text import clip

DEFAULT_TIMEOUT = 10.0
MAX_ATTEMPTS = 5
SERVICE = "authz.v1.Authorizer"
IDEMPOTENT = ("Check", "BatchCheck", "ListResources", "ListSubjects", "GetPolicy")  # every one a read: safe to repeat
SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": SERVICE, "method": method} for method in IDEMPOTENT],
            "retryPolicy": {
                "maxAttempts": MAX_ATTEMPTS,
                "initialBackoff": "0.1s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
    # A retry spends a token, a success earns a tenth of one; below half the tokens, no retries.
    "retryThrottling": {"maxTokens": 20, "tokenRatio": 0.1},
}
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
]


def parse_ref(text: str, what: str = "reference") -> pb.ObjectRef:
    """``user:bob`` -> ObjectRef(kind="user", id="bob"); ``anonymous`` stands alone."""
    if text == "anonymous":
        return pb.ObjectRef(kind="anonymous")
    kind, sep, ident = text.partition(":")
    if not sep:
        raise ValueError(f"{what} {clip(text)} must be written kind:id (e.g. user:bob) or anonymous")
    return pb.ObjectRef(kind=kind, id=ident)


def metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata for ``token``: None reads $AUTHZ_TOKEN, else var/authz.token; empty sends none."""
    if token is None:
        from authz.security import read_token

        token = read_token()
    return (("authorization", f"Bearer {token}"),) if token else ()


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


def batch_request(checks: Iterable[Check]) -> pb.BatchCheckRequest:
    return pb.BatchCheckRequest(checks=[c.message() for c in checks])


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


def decisions_of(response: pb.BatchCheckResponse) -> list[Decision]:
    return [decision_of(r) for r in response.results]


@dataclass(frozen=True)
class Listing:
    """The ids a list call returned, the store revision and policy version of its (last) page, and
    the token of the page after it (empty when there is none)."""

    ids: tuple[str, ...]
    revision: int
    policy_version: str
    next_page_token: str = ""


def list_resources_request(
    subject: str, action: str, resource_kind: str, context: Mapping[str, str] | None, page_size: int, min_revision: int
) -> pb.ListResourcesRequest:
    return pb.ListResourcesRequest(
        subject=parse_ref(subject, "subject"), action=action, resource_kind=resource_kind,
        context=dict(context or {}), page_size=page_size, min_revision=min_revision,
    )  # fmt: skip


def list_subjects_request(
    action: str, resource: str, subject_kind: str, context: Mapping[str, str] | None, page_size: int, min_revision: int
) -> pb.ListSubjectsRequest:
    return pb.ListSubjectsRequest(
        action=action, resource=parse_ref(resource, "resource"), subject_kind=subject_kind,
        context=dict(context or {}), page_size=page_size, min_revision=min_revision,
    )  # fmt: skip


class Pages:
    """One paged list call in progress: send :meth:`request`, hand each answer to :meth:`take` until
    it returns the :class:`Listing` (every page from ``page_token`` on, or with ``all_pages=False``
    that page alone). Each client owns its own; not shared between threads."""

    def __init__(self, request: Any, field: str, page_token: str = "", all_pages: bool = True) -> None:
        self._request = request
        self._field = field
        self._token = page_token
        self._all = all_pages
        self._ids: list[str] = []

    def request(self) -> Any:
        self._request.page_token = self._token
        return self._request

    def take(self, response: Any) -> Listing | None:
        self._ids.extend(getattr(response, self._field))
        token = response.next_page_token
        if not self._all or not token or token == self._token:
            return Listing(tuple(self._ids), response.revision, response.policy_version, token)
        self._token = token
        # The next page is read at this page's revision or later, never earlier (another worker's
        # replica may lag behind).
        self._request.min_revision = max(self._request.min_revision, response.revision)
        return None
