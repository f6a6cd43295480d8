"""The gRPC servicer of authz.v1.Authorizer: unpack, ask the Decider, pack.

One boundary: every RPC is wrapped by :func:`_boundary`, which maps the decision service's error
tree to statuses through one table (:data:`STATUS`; a test checks every error class is in it)
and turns anything unexpected into INTERNAL without details. Every RPC is let in by
``Decider.admit`` (ready, and at ``min_revision`` within the deadline). A deny is a normal
response, never an error.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from authz import listing
from authz.audit import AuditLog
from authz.decider import Decider
from authz.decision import MAX_BATCH, Decision, Request
from authz.errors import AuthzError, InvalidRequest, NotReady, PolicyError, RevisionUnavailable, Unauthenticated
from authz.metrics import DecisionMetrics
from authz.v1 import authorizer_pb2 as pb
from authz.v1 import authorizer_pb2_grpc
from servicekit.text import clip_message

log = logging.getLogger("authz.service")

MAX_WAIT = 30.0  # seconds a min_revision may wait when the call has no deadline
DEADLINE_MARGIN = 0.05  # answer this long before the caller's deadline, so it gets our status
RETRY_PUSHBACK = "grpc-retry-pushback-ms"

STATUS: dict[type[AuthzError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    RevisionUnavailable: grpc.StatusCode.UNAVAILABLE,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PolicyError: grpc.StatusCode.INTERNAL,
    AuthzError: grpc.StatusCode.INTERNAL,
}


F = TypeVar("F", bound=Callable[..., Any])


def status_of(exc: AuthzError) -> grpc.StatusCode:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return grpc.StatusCode.INTERNAL


def _boundary(method: F) -> F:
    """Our errors become their status (message cut to a sane length); anything else INTERNAL."""

    @functools.wraps(method)
    def handler(self: AuthorizerServicer, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except AuthzError as exc:
            if isinstance(exc, RevisionUnavailable):
                # The wait ran to the caller's deadline: tell gRPC clients not to retry this UNAVAILABLE
                # (a negative retry pushback, gRFC A6), so that the caller gets it rather than a timeout.
                context.set_trailing_metadata(((RETRY_PUSHBACK, "-1"),))
            context.abort(status_of(exc), clip_message(str(exc)))
        except Exception as exc:
            log.exception("%s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); see the service's log")

    return handler  # type: ignore[return-value]


def request_of(message: pb.CheckRequest) -> Request:
    subject, resource, context = message.subject, message.resource, message.context  # each read once: hot
    return Request(
        subject_kind=subject.kind,
        subject_id=subject.id,
        action=message.action,
        resource_kind=resource.kind,
        resource_id=resource.id,
        context={key: context[key] for key in context} if context else {},  # faster than dict() on a proto map
        min_revision=message.min_revision,
        explain=message.explain,
    )


def response_of(decision: Decision) -> pb.CheckResponse:
    return pb.CheckResponse(
        allowed=decision.allowed,
        reason=decision.reason,
        rules=decision.rules,
        policy_lines=decision.policy_lines,
        revision=decision.revision,
        policy_version=decision.policy_version,
        explanation=decision.explanation,
    )


def _wait_budget(context: grpc.ServicerContext) -> float:
    remaining = context.time_remaining()
    if remaining is None:
        return MAX_WAIT
    return max(0.0, min(MAX_WAIT, remaining - DEADLINE_MARGIN))


class AuthorizerServicer(authorizer_pb2_grpc.AuthorizerServicer):
    def __init__(
        self, decider: Decider, *, audit: AuditLog | None = None, metrics: DecisionMetrics | None = None
    ) -> None:
        self.decider = decider
        self.audit = audit
        self.metrics = metrics

    @_boundary
    def Check(self, request: pb.CheckRequest, context: grpc.ServicerContext) -> pb.CheckResponse:
        started = time.perf_counter()
        check = request_of(request)
        decision = self.decider.check(check, timeout=_wait_budget(context))
        if self.audit is not None:
            self.audit.record(context.peer(), [(check, decision)])
        if self.metrics is not None:
            self.metrics.observe("Check", time.perf_counter() - started)
            self.metrics.record(check.action, decision.allowed)
        return response_of(decision)

    @_boundary
    def BatchCheck(self, request: pb.BatchCheckRequest, context: grpc.ServicerContext) -> pb.BatchCheckResponse:
        started = time.perf_counter()
        if len(request.checks) > MAX_BATCH:
            raise InvalidRequest("checks", f"has {len(request.checks)} items; the limit is {MAX_BATCH}")
        checks = [request_of(item) for item in request.checks]
        decisions = self.decider.check_many(checks, timeout=_wait_budget(context))
        pairs = list(zip(checks, decisions, strict=True))
        self._audit(context, pairs)
        self._measure("BatchCheck", started, pairs)
        return pb.BatchCheckResponse(results=[response_of(d) for d in decisions])

    @_boundary
    def ListResources(
        self, request: pb.ListResourcesRequest, context: grpc.ServicerContext
    ) -> pb.ListResourcesResponse:
        self.decider.admit(request.min_revision, _wait_budget(context))
        page = listing.list_resources(
            self.decider, subject_kind=request.subject.kind, subject_id=request.subject.id,
            action=request.action, kind=request.resource_kind, context=dict(request.context),
            size=request.page_size, token=request.page_token,
        )  # fmt: skip
        return pb.ListResourcesResponse(
            resource_ids=page.ids, next_page_token=page.next_token, revision=page.revision,
            policy_version=page.policy_version,
        )  # fmt: skip

    @_boundary
    def ListSubjects(self, request: pb.ListSubjectsRequest, context: grpc.ServicerContext) -> pb.ListSubjectsResponse:
        self.decider.admit(request.min_revision, _wait_budget(context))
        page = listing.list_subjects(
            self.decider, action=request.action, kind=request.resource.kind, ident=request.resource.id,
            subject_kind=request.subject_kind or "user", context=dict(request.context),
            size=request.page_size, token=request.page_token,
        )  # fmt: skip
        return pb.ListSubjectsResponse(
            subject_ids=page.ids, next_page_token=page.next_token, revision=page.revision,
            policy_version=page.policy_version,
        )  # fmt: skip

    @_boundary
    def GetPolicy(self, request: pb.GetPolicyRequest, context: grpc.ServicerContext) -> pb.GetPolicyResponse:
        policy = self.decider.engines.policy
        files = [pb.PolicyFile(name=name, content=text.encode()) for name, text in policy.texts]
        return pb.GetPolicyResponse(policy_version=policy.version, files=files)

    def _measure(self, method: str, started: float, items: list[tuple[Request, Decision]]) -> None:
        if self.metrics is not None:
            self.metrics.observe(method, time.perf_counter() - started)
            self.metrics.record_many((request.action, decision.allowed) for request, decision in items)

    def _audit(self, context: grpc.ServicerContext, items: list[tuple[Request, Decision]]) -> None:
        if self.audit is not None:
            self.audit.record(context.peer(), items)
