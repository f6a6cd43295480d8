"""The two evaluation endpoints: one decision, and a batch with defaults and three semantics.

A batch (``POST /access/v1/evaluations``):

* Top-level ``subject``, ``action``, ``resource`` and ``context`` are defaults; an item's own key
  replaces the default whole. Without items (absent or empty) it is one evaluation of the
  top-level values, answered as ``/evaluation`` answers.
* Each item is checked on its own. An item that is not a well-formed evaluation (a missing
  subject, an empty id, a mistyped field) is not a failed call: it is ``decision: false`` with
  ``context.error`` (status 400 and the message naming ``evaluations[i].<field>``). A *default*
  that is malformed is wrong for the whole call, and that is a 400 naming the top-level field.
* ``options.evaluations_semantic``: ``execute_all`` (default) answers every item in order;
  ``deny_on_first_deny`` stops after the first item denied or not evaluated (like ``&&``);
  ``permit_on_first_permit`` stops after the first item allowed (like ``||``). Items after the
  stop are not decided, audited or counted; the answer lists the items up to the stop.
* Well-formed items are decided together (``Decider.check_many``): one wait for the highest
  ``min_revision``, one revision, one lock. Over ``MAX_BATCH`` items is a 400.

These run on a worker thread (they wait on the replica and take its lock), never on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from authz.decider import Decider
from authz.decision import MAX_BATCH, Decision, Request
from authz.errors import InvalidRequest
from authz.http import documents, mapping

PARTS = ("subject", "action", "resource", "context")


@dataclass(frozen=True)
class Outcome:
    """The answer's body, and the decisions made for it (to audit and count)."""

    body: dict[str, Any]
    decided: list[tuple[Request, Decision]] = field(default_factory=list)


@dataclass(frozen=True)
class _Ready:
    request: Request
    ignored: tuple[str, ...]


STOPS: dict[str, Callable[[Decision], bool] | None] = {
    "execute_all": None,
    "deny_on_first_deny": lambda decision: not decision.allowed,
    "permit_on_first_permit": lambda decision: decision.allowed,
}


def evaluate(decider: Decider, doc: documents.Evaluation, timeout: float) -> Outcome:
    context = mapping.context_of(doc.context)
    request = mapping.request_of(doc.subject, doc.action, doc.resource, context)
    decision = decider.check(request, timeout=timeout)
    return Outcome(mapping.answer(decision, context.ignored), [(request, decision)])


def evaluate_many(decider: Decider, doc: documents.Evaluations, timeout: float) -> Outcome:
    items = doc.evaluations or []
    if not items:
        return evaluate(decider, _single(doc), timeout)
    if len(items) > MAX_BATCH:
        raise InvalidRequest("evaluations", f"has {len(items)} items; the limit is {MAX_BATCH}")
    semantic = doc.options.evaluations_semantic if doc.options is not None else "execute_all"
    stop = STOPS[semantic]
    prepared = [_prepare(doc, index, raw) for index, raw in enumerate(items)]
    if semantic == "deny_on_first_deny":  # a bad item is a deny: nothing after it is decided
        first_bad = next((i for i, p in enumerate(prepared) if isinstance(p, InvalidRequest)), len(prepared))
        ready = [p for p in prepared[:first_bad] if isinstance(p, _Ready)]
    else:
        ready = [p for p in prepared if isinstance(p, _Ready)]
    decisions = decider.check_many([p.request for p in ready], timeout=timeout, stop=stop) if ready else []
    answers: list[dict[str, Any]] = []
    decided: list[tuple[Request, Decision]] = []
    made = iter(decisions)
    for item in prepared:
        if isinstance(item, InvalidRequest):
            answers.append(mapping.refused(400, str(item)))
            if semantic == "deny_on_first_deny":
                break
            continue
        decision = next(made, None)
        if decision is None:  # check_many stopped before this item
            break
        answers.append(mapping.answer(decision, item.ignored))
        decided.append((item.request, decision))
        if stop is not None and stop(decision):
            break
    return Outcome({"evaluations": answers}, decided)


def _single(doc: documents.Evaluations) -> documents.Evaluation:
    """The top-level values as one evaluation (a batch without items)."""
    subject, action, resource = doc.subject, doc.action, doc.resource
    if subject is None or action is None or resource is None:
        missing = next(n for n, v in (("subject", subject), ("action", action), ("resource", resource)) if v is None)
        raise InvalidRequest(missing, "is required (or give evaluations, each with its own)")
    return documents.Evaluation(subject=subject, action=action, resource=resource, context=doc.context)


def _prepare(doc: documents.Evaluations, index: int, raw: object) -> _Ready | InvalidRequest:
    """Item ``index`` with the defaults filled in, as a checked Request, or the error that names
    its field. Raises (a 400 for the call) when the field at fault is a default."""
    prefix = f"evaluations[{index}]."
    try:
        item = documents.validate_item(documents.Item, raw, prefix)
    except InvalidRequest as exc:
        return exc
    own = {name for name in PARTS if getattr(item, name) is not None}
    subject = item.subject or doc.subject
    action = item.action or doc.action
    resource = item.resource or doc.resource
    if subject is None or action is None or resource is None:
        missing = next(n for n, v in (("subject", subject), ("action", action), ("resource", resource)) if v is None)
        return InvalidRequest(f"{prefix}{missing}", "is required, in the item or as a top-level default")
    try:
        context = mapping.context_of(item.context if item.context is not None else doc.context)
        request = mapping.request_of(subject, action, resource, context)
    except InvalidRequest as exc:
        if exc.field.split(".")[0] not in own:
            raise  # the top-level default is at fault: that is the whole call's error
        return mapping.renamed(exc, prefix)
    return _Ready(request, context.ignored)
