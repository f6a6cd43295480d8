"""AuthZEN's words to ours and back: entities to a Request, a Decision to an AuthZEN decision.

* Subject ``{type, id}``: type is our subject kind (``user``, ``service_account``, ``anonymous``,
  whose id is empty), id its id. Resource ``{type, id}``: our ``kind:id``. Action ``{name}``: our
  action. ``properties`` are accepted and ignored: the facts a decision reads come from the store.
* ``context``: its string values are the decision's context; ``min_revision`` (an integer, or
  its digits in a string) is the store revision to wait for; values of other types are ignored,
  and the answer names them (``ignored_context``) so a caller can tell.
* A decision's context carries our reasons: the reason (also as the spec's ``reason_admin``
  field), the rule ids, the policy lines, the store revision and the policy version.

Validation is the core's (:func:`authz.decision.validate`); :func:`renamed` gives its errors the
AuthZEN name of the field (``subject.kind`` is ``subject.type`` here). Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authz.decision import Decision, Request, validate
from authz.errors import InvalidRequest
from authz.http.documents import Action, Resource, Subject
from servicekit.text import clip

# The core's field names, as an AuthZEN caller knows them.
FIELDS = {
    "subject.kind": "subject.type",
    "subject_kind": "subject.type",
    "resource.kind": "resource.type",
    "resource_kind": "resource.type",
    "action": "action.name",
    "min_revision": "context.min_revision",
    "page_token": "page.token",
    "page_size": "page.limit",
}
MAX_REVISION = (1 << 63) - 1


def renamed(exc: InvalidRequest, prefix: str = "") -> InvalidRequest:
    """``exc`` naming the field as the AuthZEN document does, under ``prefix`` (``evaluations[2].``)."""
    message = str(exc)[len(exc.field) + 2 :]
    return InvalidRequest(prefix + FIELDS.get(exc.field, exc.field), message)


@dataclass(frozen=True)
class Context:
    values: Mapping[str, str]
    min_revision: int = 0
    ignored: tuple[str, ...] = ()


def context_of(raw: Mapping[str, Any] | None) -> Context:
    """The decision's context, the revision to wait for and the keys ignored, from an AuthZEN context."""
    values: dict[str, str] = {}
    ignored: list[str] = []
    min_revision = 0
    for key, value in (raw or {}).items():
        if key == "min_revision":
            min_revision = _revision(value)
        elif isinstance(value, str):
            values[key] = value
        else:
            ignored.append(key)
    return Context(values, min_revision, tuple(ignored))


def _revision(value: object) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_REVISION:
        return value
    raise InvalidRequest(
        "context.min_revision", f"must be a store revision (a whole number, 0 or more), not {clip(value)}"
    )


def request_of(subject: Subject, action: Action, resource: Resource, context: Context) -> Request:
    """A well-formed Request; InvalidRequest naming the AuthZEN field otherwise."""
    request = Request(
        subject_kind=subject.type, subject_id=subject.id, action=action.name, resource_kind=resource.type,
        resource_id=resource.id, context=context.values, min_revision=context.min_revision,
    )  # fmt: skip
    try:
        validate(request)
    except InvalidRequest as exc:
        raise renamed(exc) from None
    return request


def answer(decision: Decision, ignored: tuple[str, ...] = ()) -> dict[str, Any]:
    """An AuthZEN decision with our reasons in its context. Only a decision that allowed is true."""
    context: dict[str, Any] = {
        "reason": decision.reason,
        "reason_admin": {"en": decision.reason},
        "rules": list(decision.rules),
        "policy_lines": list(decision.policy_lines),
        "revision": decision.revision,
        "policy_version": decision.policy_version,
    }
    if ignored:
        context["ignored_context"] = list(ignored)
    return {"decision": decision.allowed is True, "context": context}


def refused(status: int, message: str) -> dict[str, Any]:
    """An item of a batch that could not be evaluated: denied, with the error in its context."""
    return {"decision": False, "context": {"error": {"status": status, "message": message}}}
