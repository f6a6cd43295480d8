"""The AuthZEN searches, answered by the core's exact listings (:mod:`authz.listing`).

* Resource search: ``ListResources`` — the resources of ``resource.type`` the subject may do the
  action on (``resource.id`` is ignored, as the spec says).
* Subject search: ``ListSubjects`` — the users or service accounts (``subject.type``) who may do
  the action on the resource (``subject.id`` ignored); for ``anonymous``, the one anonymous
  subject when it may.
* Action search: ``list_actions`` — the actions, among those that apply to the resource's kind
  (the policy's actions table, g2 lines), the subject may do on it.

An unknown subject or resource type, or an unknown id, is an empty answer (200), not an error;
a malformed id or context is a 400 naming the field, as for an evaluation.

Paging: ``page.limit`` is at most this many results (absent: 100; above 1000: 1000; 0: none, with
a ``next_token`` that says whether any exist). ``page.next_token`` is ``""`` at the end. A token
carries the listing's own position and a fingerprint of the search; a token sent back with a
different subject, action, resource, context or limit is a 400 (the spec's SHOULD), so a caller
cannot page through one search with another's position. Each page says the revision it was read
at (``context.revision``); a page is read at the replica's revision of the moment, at least
``context.min_revision``.

These run on a worker thread, like the evaluations.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from authz import listing
from authz.decider import Decider
from authz.errors import InvalidRequest
from authz.http import documents, mapping
from servicekit import pages
from store.kinds import RESOURCE_KINDS, SUBJECT_KINDS

ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class _Query:
    after: str  # the listing's own page token ("" from the start)
    size: int
    fingerprint: str
    peek: bool  # limit 0: no results, only whether there are any


def resources(decider: Decider, doc: documents.ResourceSearch, timeout: float) -> dict[str, Any]:
    context = mapping.context_of(doc.context)
    kind = doc.resource.type
    query = _query("resource", [doc.subject.type, doc.subject.id, doc.action.name, kind], context, doc.page)
    decider.admit(context.min_revision, timeout)
    if kind not in RESOURCE_KINDS or doc.subject.type not in SUBJECT_KINDS:
        return _nothing(decider)
    try:
        page = listing.list_resources(
            decider, subject_kind=doc.subject.type, subject_id=doc.subject.id, action=doc.action.name, kind=kind,
            context=dict(context.values), size=query.size, token=query.after,
        )  # fmt: skip
    except InvalidRequest as exc:
        raise mapping.renamed(exc) from None
    return _answer(query, page, [{"type": kind, "id": ident} for ident in page.ids])


def subjects(decider: Decider, doc: documents.SubjectSearch, timeout: float) -> dict[str, Any]:
    context = mapping.context_of(doc.context)
    kind = doc.subject.type
    resource = doc.resource
    query = _query("subject", [kind, doc.action.name, resource.type, resource.id], context, doc.page)
    decider.admit(context.min_revision, timeout)
    if resource.type not in RESOURCE_KINDS or kind not in SUBJECT_KINDS:
        return _nothing(decider)
    if kind == ANONYMOUS:
        subject = documents.Subject(type=ANONYMOUS, id="", properties=None)
        request = mapping.request_of(subject, doc.action, resource, context)
        decision = decider.decide(request)
        page = listing.Page(("",) if decision.allowed else (), "", decision.revision, decision.policy_version)
    else:
        try:
            page = listing.list_subjects(
                decider, action=doc.action.name, kind=resource.type, ident=resource.id, subject_kind=kind,
                context=dict(context.values), size=query.size, token=query.after,
            )  # fmt: skip
        except InvalidRequest as exc:
            raise mapping.renamed(exc) from None
    return _answer(query, page, [{"type": kind, "id": ident} for ident in page.ids])


def actions(decider: Decider, doc: documents.ActionSearch, timeout: float) -> dict[str, Any]:
    context = mapping.context_of(doc.context)
    subject, resource = doc.subject, doc.resource
    query = _query("action", [subject.type, subject.id, resource.type, resource.id], context, doc.page)
    decider.admit(context.min_revision, timeout)
    if resource.type not in RESOURCE_KINDS or subject.type not in SUBJECT_KINDS:
        return _nothing(decider)
    try:
        page = listing.list_actions(
            decider, subject_kind=subject.type, subject_id=subject.id, kind=resource.type, ident=resource.id,
            context=dict(context.values), size=query.size, token=query.after,
        )  # fmt: skip
    except InvalidRequest as exc:
        raise mapping.renamed(exc) from None
    return _answer(query, page, [{"name": action} for action in page.ids])


def _query(what: str, entities: list[str], context: mapping.Context, page: documents.PageRequest | None) -> _Query:
    limit = page.limit if page is not None else None
    search = [what, entities, sorted(context.values.items()), context.min_revision, limit]
    fingerprint = hashlib.sha256(json.dumps(search).encode()).hexdigest()[:16]
    after = ""
    if page is not None and page.token:
        try:
            after, issued_for = pages.decode(page.token, 2)
        except pages.BadToken as exc:
            raise InvalidRequest("page.token", str(exc)) from None
        if issued_for != fingerprint:
            raise InvalidRequest(
                "page.token",
                "was issued for another search: keep subject, action, resource, context and page.limit the same "
                "from page to page",
            )
    size = listing.DEFAULT_PAGE if limit is None else min(max(limit, 1), listing.MAX_PAGE)
    return _Query(after, size, fingerprint, limit == 0)


def _answer(query: _Query, page: listing.Page, results: list[dict[str, str]]) -> dict[str, Any]:
    if query.peek:  # one result was looked for; none is shown, the token says whether it is there
        results = []
        next_token = pages.encode([query.after, query.fingerprint]) if page.ids else ""
    else:
        next_token = pages.encode([page.next_token, query.fingerprint]) if page.next_token else ""
    return {
        "page": {"next_token": next_token, "count": len(results)},
        "context": {"revision": page.revision, "policy_version": page.policy_version},
        "results": results,
    }


def _nothing(decider: Decider) -> dict[str, Any]:
    """The answer for a type we do not have: nothing, at the replica's revision."""
    return {
        "page": {"next_token": "", "count": 0},
        "context": {"revision": decider.source.revision, "policy_version": decider.engines.policy.version},
        "results": [],
    }
