"""The AuthZEN 1.0 documents the HTTP front end reads and writes, as pydantic models.

Requests are strict about JSON types (an id of 7 is refused, not turned into "7") and ignore
fields they do not know, as the specification requires of receivers. :func:`parse` turns a body
into a model or raises :class:`~authz.errors.InvalidRequest` naming the first field that is
wrong (``subject.id: is required``), which the app answers with 400.

Responses are built as plain dicts on the hot path; their models here describe them for the
OpenAPI document (:mod:`authz.http.openapi`), and tests hold the answers to them.

Models are immutable and built per request; nothing here is shared between threads.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from authz.errors import InvalidRequest
from servicekit.text import clip

SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")
Semantic = Literal["execute_all", "deny_on_first_deny", "permit_on_first_permit"]

# pydantic's error types, in the words of the rest of the service.
MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "model_type": "must be an object",
    "dict_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be an array",
    "int_type": "must be an integer",
    "bool_type": "must be true or false",
    "greater_than_equal": "must be 0 or more",
    "literal_error": f"must be one of {', '.join(SEMANTICS)}",
}


class Document(BaseModel):
    """A request document: strict types, unknown fields ignored, immutable."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Subject(Document):
    type: StrictStr = Field(description="user, service_account or anonymous")
    id: StrictStr = Field(description="The subject's id; empty for anonymous")
    properties: dict[str, Any] | None = Field(None, description="Accepted and ignored: facts come from the store")


class Action(Document):
    name: StrictStr = Field(description="One of the policy's actions, such as report.edit")
    properties: dict[str, Any] | None = Field(None, description="Accepted and ignored")


class Resource(Document):
    type: StrictStr = Field(description="A resource kind: project, run, report, model_registry, ...")
    id: StrictStr
    properties: dict[str, Any] | None = Field(None, description="Accepted and ignored: facts come from the store")


Context = dict[str, Any]
CONTEXT_HELP = (
    "String values are the decision's context (alias, artifact_type, username, ...); min_revision (an integer "
    "or its digits) is the store revision to wait for; values of other types are ignored."
)


class Evaluation(Document):
    """POST /access/v1/evaluation."""

    subject: Subject
    action: Action
    resource: Resource
    context: Context | None = Field(None, description=CONTEXT_HELP)


class Item(Document):
    """One element of ``evaluations``: whatever it leaves out comes from the top level."""

    subject: Subject | None = None
    action: Action | None = None
    resource: Resource | None = None
    context: Context | None = Field(None, description=CONTEXT_HELP)


class Options(Document):
    evaluations_semantic: Semantic = "execute_all"


class Evaluations(Document):
    """POST /access/v1/evaluations: top-level values are the items' defaults."""

    subject: Subject | None = None
    action: Action | None = None
    resource: Resource | None = None
    context: Context | None = Field(None, description=CONTEXT_HELP)
    # Items are checked one by one (a bad one is a denied item, not a failed call): see evaluations.py.
    evaluations: list[Any] | None = None
    options: Options | None = None


class PageRequest(Document):
    token: StrictStr | None = Field(None, description="The next_token of the previous page")
    limit: StrictInt | None = Field(None, ge=0, description="At most this many results (100 if absent; 1000 at most)")
    properties: dict[str, Any] | None = Field(None, description="Accepted and ignored")


class SearchSubject(Document):
    type: StrictStr
    id: Any = Field(None, description="Ignored")
    properties: dict[str, Any] | None = None


class SearchResource(Document):
    type: StrictStr
    id: Any = Field(None, description="Ignored")
    properties: dict[str, Any] | None = None


class SubjectSearch(Document):
    """POST /access/v1/search/subject: who may do the action on the resource."""

    subject: SearchSubject
    action: Action
    resource: Resource
    context: Context | None = Field(None, description=CONTEXT_HELP)
    page: PageRequest | None = None


class ResourceSearch(Document):
    """POST /access/v1/search/resource: which resources of the type the subject may do the action on."""

    subject: Subject
    action: Action
    resource: SearchResource
    context: Context | None = Field(None, description=CONTEXT_HELP)
    page: PageRequest | None = None


class ActionSearch(Document):
    """POST /access/v1/search/action: what the subject may do on the resource."""

    subject: Subject
    resource: Resource
    context: Context | None = Field(None, description=CONTEXT_HELP)
    page: PageRequest | None = None


# ---- responses (described, and checked by the tests) ----------------------------------------------


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ItemError(Answer):
    status: int
    message: str


class DecisionContext(Answer):
    reason: str | None = Field(None, description="Why, in words, naming the rule ids")
    reason_admin: dict[str, str] | None = Field(None, description="The reason as the spec's Reason Field ({'en': ...})")
    rules: list[str] | None = Field(None, description="Rule ids that granted or refused")
    policy_lines: list[str] | None = Field(None, description="Policy file:line of those rules")
    revision: int | None = Field(None, description="Store revision the decision was made at")
    policy_version: str | None = Field(None, description="Hash of the policy files")
    ignored_context: list[str] | None = Field(None, description="Context keys ignored (values that are not strings)")
    error: ItemError | None = Field(None, description="Why an item of a batch was not evaluated")


class DecisionAnswer(Answer):
    decision: StrictBool
    context: DecisionContext | None = None


class EvaluationsAnswer(Answer):
    evaluations: list[DecisionAnswer]


class PageAnswer(Answer):
    next_token: str = Field(description="Empty at the end; otherwise send it back as page.token")
    count: int = Field(description="Results in this response")


class SearchContext(Answer):
    revision: int
    policy_version: str


class EntityAnswer(Answer):
    type: str
    id: str


class ActionAnswer(Answer):
    name: str


class EntitySearchAnswer(Answer):
    page: PageAnswer
    context: SearchContext | None = None
    results: list[EntityAnswer]


class ActionSearchAnswer(Answer):
    page: PageAnswer
    context: SearchContext | None = None
    results: list[ActionAnswer]


class Metadata(Answer):
    policy_decision_point: str
    access_evaluation_endpoint: str
    access_evaluations_endpoint: str
    search_subject_endpoint: str
    search_resource_endpoint: str
    search_action_endpoint: str


# ---- parsing -------------------------------------------------------------------------------------

M = TypeVar("M", bound=Document)


def parse(model: type[M], body: bytes) -> M:
    """The document in ``body``; InvalidRequest naming what is wrong (the body, or its first bad field)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise field_error(exc) from None


def validate_item(model: type[M], value: object, prefix: str) -> M:
    """A part of a document already decoded (an element of ``evaluations``), its errors under ``prefix``."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise field_error(exc, prefix) from None


def field_error(exc: ValidationError, prefix: str = "") -> InvalidRequest:
    error = exc.errors(include_url=False)[0]
    kind = error["type"]
    if kind == "json_invalid":
        detail = str(error.get("ctx", {}).get("error", error["msg"]))
        if detail.startswith("EOF while parsing a value at line 1 column 0"):
            return InvalidRequest("body", "is empty: send a JSON object")
        return InvalidRequest("body", f"is not JSON: {detail}")
    where = path(error["loc"])
    message = MESSAGES.get(kind, str(error["msg"]))
    if not where:
        return InvalidRequest(
            prefix.rstrip(".") or "body", "must be a JSON object" if kind == "model_type" else message
        )
    if kind.endswith("_type"):  # say what came instead: "must be a string, not the number 7"
        message = f"{message}, not {_json_type(error.get('input'))}"
    return InvalidRequest(f"{prefix}{where}", message)


def path(loc: tuple[int | str, ...]) -> str:
    """``("evaluations", 3, "subject")`` as ``evaluations[3].subject``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {clip(value, 20)}"
    if isinstance(value, str):
        return f"the string {clip(value, 40)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
