"""The schema of a decision test file (a world and expected decisions), as pydantic models.

:func:`validate` checks a whole document at once and returns every problem, each as
``file:line: path: what is wrong`` (``tests/x.yaml:42: cases[3].allow: must be true or false, not
'maybe'``): the line is that of the YAML node the problem is about (the key, or the list item),
when the text composes; a missing key is placed at the mapping that lacks it. Unknown keys are
problems too, with a did-you-mean.

The schema is the shape of the document: types, required keys, unknown keys, the enumerations
of the store. What needs the whole world (duplicate ids, references, the domain rules) is the
store's parser's (:mod:`store.world`), which checks the world when a file is run, as ImportWorld
does.
"""

from __future__ import annotations

import re
import types
from difflib import get_close_matches
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, ValidationError
from pydantic_core import PydanticCustomError

from servicekit.text import clip
from store.kinds import CUSTOM_ROLE_BASES, LEGACY_STATES, ORG_ROLES, REGISTRY_VISIBILITIES, VISIBILITIES

REF = re.compile(r"[a-z_]+:[^:\s]+\Z")


# ---- field types: the messages are the store's and the harness's own ---------------------------


def _text(value: Any) -> Any:
    """A name or id: a string (a number is read as its digits), never true/false or a mapping."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PydanticCustomError("text", "must be a string, not {shown}", {"shown": clip(value)})
    return str(value)


def _required(value: Any) -> Any:
    if value is None or value == "":
        raise PydanticCustomError("required", "is required")
    return _text(value)


def _one_of(allowed: tuple[str, ...]) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value is None:
            return None
        if _text(value) not in allowed:
            raise PydanticCustomError("enum", "{shown} is not one of {allowed}",
                                      {"shown": clip(value), "allowed": ", ".join(allowed)})  # fmt: skip
        return str(value)

    return BeforeValidator(check)


def _role(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("role", "needs a role (view_only, member, admin or a custom role id)")
    return _text(value)


def _subject(value: Any) -> Any:
    if not isinstance(value, str) or not (value == "anonymous" or REF.match(value)):
        raise PydanticCustomError("subject", "{shown} must be kind:id or anonymous", {"shown": clip(value)})
    return value


def _resource(value: Any) -> Any:
    if not isinstance(value, str) or not REF.match(value):
        raise PydanticCustomError("resource", "{shown} must be kind:id", {"shown": clip(value)})
    return value


def _action(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("action", "must be a string")
    return value


def _rules(value: Any) -> Any:
    """``rule: RP3`` or ``rule: [P1, P7]``: every one must be among the decision's rules."""
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item for item in items):
        raise PydanticCustomError("rule", "must be a rule id like RP3, or a list of them")
    return items


def _context(value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
        raise PydanticCustomError("context", "must be a mapping of names to values")
    return {key: str(item) for key, item in value.items()}


def _revision(value: Any) -> Any:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PydanticCustomError("revision", "must be a revision number")
    return value


def _list(value: Any) -> Any:
    return [] if value is None else value


def _mapping(value: Any) -> Any:
    return {} if value is None else value


def _org_user(value: Any) -> Any:
    return {"id": value} if isinstance(value, str | int) and not isinstance(value, bool) else value


Text = Annotated[str, BeforeValidator(_text)]
Required = Annotated[str, BeforeValidator(_required)]
Names = Annotated[list[Text], BeforeValidator(_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrgUser(_Strict):
    id: Required
    role: Annotated[str | None, _one_of(ORG_ROLES)] = None


class Org(_Strict):
    id: Required
    users: Annotated[list[Annotated[OrgUser, BeforeValidator(_org_user)]], BeforeValidator(_list)] = []


class CustomRole(_Strict):
    id: Required
    org: Required
    base: Annotated[str, _one_of(CUSTOM_ROLE_BASES), BeforeValidator(_required)]
    permissions: Names = []


class TeamSettings(_Strict):
    members_can_invite: StrictBool | None = None
    public_projects_disabled: StrictBool | None = None


class Team(_Strict):
    id: Required
    org: Required
    members: Annotated[dict[Text, Annotated[str, BeforeValidator(_role)]], BeforeValidator(_mapping)] = {}
    service_accounts: Names = []
    settings: Annotated[TeamSettings, BeforeValidator(_mapping)] = TeamSettings()
    storage_bucket: Text | None = None


class Project(_Strict):
    id: Required
    owner: Required
    visibility: Annotated[str | None, _one_of(VISIBILITIES)] = None
    creator: Text | None = None
    members: Names = []


class Content(_Strict):
    id: Required
    project: Required
    creator: Required


class Run(Content):
    attributed_to: Text | None = None


class Artifact(Content):
    type: Text | None = None
    aliases: Names = []


class Provenance(_Strict):
    created_at: StrictInt | None = None
    lineage: Any = None


class ModelVersion(Provenance):
    id: Required
    aliases: Names = []


class Model(Provenance):
    id: Required
    versions: Annotated[list[ModelVersion], BeforeValidator(_list)] = []


class ModelRegistry(_Strict):
    team: Required
    admins: Names = []
    protected_aliases: Names = []
    state: Annotated[str | None, _one_of(LEGACY_STATES)] = None
    models: Annotated[list[Model], BeforeValidator(_list)] = []


class CollectionVersion(Provenance):
    id: Required
    type: Text | None = None
    aliases: Names = []


class Collection(Provenance):
    id: Required
    team: Text | None = None
    protected_aliases: Names = []
    versions: Annotated[list[CollectionVersion], BeforeValidator(_list)] = []


class Registry(_Strict):
    id: Required
    org: Required
    visibility: Annotated[str | None, _one_of(REGISTRY_VISIBILITIES)] = None
    accepted_types: list[Text] | None = None
    creator: Text | None = None
    members: Annotated[dict[Text, Text | None], BeforeValidator(_mapping)] = {}
    collections: Annotated[list[Collection], BeforeValidator(_list)] = []


class World(_Strict):
    orgs: Annotated[list[Org], BeforeValidator(_list)] = []
    system_admins: Names = []
    custom_roles: Annotated[list[CustomRole], BeforeValidator(_list)] = []
    teams: Annotated[list[Team], BeforeValidator(_list)] = []
    projects: Annotated[list[Project], BeforeValidator(_list)] = []
    runs: Annotated[list[Run], BeforeValidator(_list)] = []
    sweeps: Annotated[list[Content], BeforeValidator(_list)] = []
    reports: Annotated[list[Content], BeforeValidator(_list)] = []
    artifacts: Annotated[list[Artifact], BeforeValidator(_list)] = []
    model_registries: Annotated[list[ModelRegistry], BeforeValidator(_list)] = []
    registries: Annotated[list[Registry], BeforeValidator(_list)] = []


class Case(_Strict):
    subject: Annotated[str, BeforeValidator(_subject)]
    action: Annotated[str, BeforeValidator(_action)]
    resource: Annotated[str, BeforeValidator(_resource)]
    allow: StrictBool
    context: Annotated[dict[str, str], BeforeValidator(_context)] = {}
    rule: Annotated[list[str], BeforeValidator(_rules)] = []
    revision_at_least: Annotated[int, BeforeValidator(_revision)] = 0
    note: Any = None


class Document(_Strict):
    name: Text | None = None
    world: World
    cases: Annotated[list[Case], BeforeValidator(_list)] = Field(default_factory=list)


CASE_KEYS = tuple(Case.model_fields)

# What a wrong type says, by pydantic's error type (the input's own type is named).
_KIND = {"model_type": "a mapping", "dict_type": "a mapping", "list_type": "a list",
         "bool_type": "true or false", "int_type": "an integer"}  # fmt: skip
# Containers whose items or entries are named in the message of a wrong type.
_WHAT = {
    ("cases",): "must be a list of cases",
    ("cases", 0): "must be a mapping with subject, action, resource and allow",
}


# ---- validation: every problem at once, with its path and its line --------------------------


def validate(document: dict[str, Any], text: str | bytes = b"", name: str = "") -> tuple[Document | None, list[str]]:
    """The checked document, or None and every problem as ``name:line: path: message``."""
    try:
        return Document.model_validate(document), []
    except ValidationError as exc:
        lines = node_lines(text)
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            line = _line_of(lines, loc)
            where = f"{name}:{line}" if line else name
            problems.append(f"{where}: {dotted(loc) or 'the document'}: {_message(error, loc)}")
        return None, problems


def dotted(loc: tuple[Any, ...]) -> str:
    """``("world", "teams", 0, "members", "dave")`` as ``world.teams[0].members.dave``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: Any, loc: tuple[Any, ...]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        allowed = _fields_at(loc[:-1])
        hint = get_close_matches(str(loc[-1]), allowed, n=1)
        return "unknown key" + (f"; did you mean {hint[0]!r}?" if hint else "") + f" (allowed: {', '.join(allowed)})"
    shape = tuple(0 if isinstance(part, int) else part for part in loc)
    if kind in _KIND:
        if shape in _WHAT:
            return _WHAT[shape]
        value = error.get("input")
        shown = type(value).__name__ if kind in ("model_type", "dict_type", "list_type") else clip(value)
        return f"must be {_KIND[kind]}, not {shown}"
    return str(error["msg"])


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation holds (through Annotated, Optional, list and dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models_in(get_args(annotation)[0])
    if origin in (list, dict, Union, types.UnionType):
        return [model for arg in get_args(annotation) for model in _models_in(arg)]
    return []


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the mapping at ``loc`` may hold (for an unknown key's message)."""
    model: type[BaseModel] = Document
    for part in loc:
        if not isinstance(part, str) or part not in model.model_fields:
            continue  # an index of a list or a key of a mapping: the model stays the items'
        found = _models_in(model.model_fields[part].annotation)
        if not found:
            return []
        model = found[0]
    return list(model.model_fields)


def node_lines(text: str | bytes) -> dict[tuple[Any, ...], int]:
    """The line (1-based) of every key and list item of the YAML text, by path; {} if it does not
    compose. A key of a mapping is a string in the path, an index of a list a number."""
    import yaml

    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return {}
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    lines[(*path, key.value)] = key.start_mark.line + 1
                    walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*path, i)] = item.start_mark.line + 1
                walk(item, (*path, i))

    if root is not None:
        lines[()] = root.start_mark.line + 1
        walk(root, ())
    return lines


def _line_of(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    """The line of the deepest node of ``loc`` the text has (0 if none)."""
    path: tuple[Any, ...] = ()
    found = lines.get((), 0)
    for part in loc:
        step = (*path, part)
        if step not in lines and not isinstance(part, str):
            step = (*path, str(part))  # a number written as a mapping's key
        if step not in lines:
            break
        path, found = step, lines[step]
    return found
