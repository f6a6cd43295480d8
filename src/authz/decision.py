"""A decision request and its answer, and what makes a request well-formed.

Light on purpose: clients (:mod:`authz.client`), front ends and the core all use these, so this
module imports nothing but the shared vocabulary (:mod:`store.kinds`) and the error types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from authz.errors import InvalidRequest
from servicekit.text import clip
from store.kinds import ACTION, ID, MAX_ID, SUBJECT_KINDS

MAX_ACTION = 128
MAX_CONTEXT = 32
MAX_CONTEXT_VALUE = 256
MAX_BATCH = 1000  # checks in one call, on every front end (BatchCheck, AuthZEN evaluations)
CONTEXT_KEY = re.compile(r"[a-z_]{1,64}\Z")
KIND = re.compile(r"[a-z_]{1,64}\Z")

__all__ = [
    "ACTION", "ID", "MAX_ACTION", "MAX_BATCH", "MAX_CONTEXT", "MAX_CONTEXT_VALUE", "MAX_ID", "Decision", "Request",
    "validate",
]  # fmt: skip


@dataclass(frozen=True)
class Request:
    subject_kind: str
    subject_id: str
    action: str
    resource_kind: str
    resource_id: str
    context: Mapping[str, str] = field(default_factory=dict)
    min_revision: int = 0
    explain: bool = False

    @property
    def subject(self) -> str:
        return "anonymous" if self.subject_kind == "anonymous" else f"{self.subject_kind}:{self.subject_id}"

    @property
    def resource(self) -> str:
        return f"{self.resource_kind}:{self.resource_id}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    rules: tuple[str, ...] = ()
    policy_lines: tuple[str, ...] = ()
    revision: int = 0
    policy_version: str = ""
    explanation: str = ""


# The (subject kind, subject id, action, resource kind, resource id) of requests found well-formed: a
# request with the same five (most are repeats) is not checked again. Validity is a pure function of
# them; bounded, emptied when full. Read and written without a lock: a race checks a request twice.
_WELL_FORMED: set[tuple[str, str, str, str, str]] = set()
_WELL_FORMED_LIMIT = 8192  # ids are at most 256 characters: a few MB at worst


def validate(request: Request, prefix: str = "") -> None:
    """Raise InvalidRequest naming the field of a malformed request (G3: malformed is an error)."""
    names = (request.subject_kind, request.subject_id, request.action, request.resource_kind, request.resource_id)
    if names not in _WELL_FORMED:
        _validate_names(request, prefix)
        if len(_WELL_FORMED) >= _WELL_FORMED_LIMIT:
            _WELL_FORMED.clear()
        _WELL_FORMED.add(names)
    if request.context:
        _validate_context(request.context, prefix)
    if request.min_revision < 0:
        raise InvalidRequest(f"{prefix}min_revision", "must be 0 or more")


def _validate_names(request: Request, prefix: str) -> None:
    if request.subject_kind not in SUBJECT_KINDS:
        raise InvalidRequest(
            f"{prefix}subject.kind", f"{clip(request.subject_kind)} is not one of {', '.join(SUBJECT_KINDS)}"
        )
    if request.subject_kind == "anonymous":
        if request.subject_id:
            raise InvalidRequest(f"{prefix}subject.id", "must be empty for an anonymous subject")
    else:
        _check_id(request.subject_id, f"{prefix}subject.id")
    if len(request.action) > MAX_ACTION:
        raise InvalidRequest(f"{prefix}action", f"is {len(request.action)} characters long; the limit is {MAX_ACTION}")
    if not ACTION.match(request.action):
        raise InvalidRequest(f"{prefix}action", f"{clip(request.action)} is not an action like report.edit")
    if not KIND.match(request.resource_kind):
        raise InvalidRequest(f"{prefix}resource.kind", f"{clip(request.resource_kind)} is not a resource kind")
    _check_id(request.resource_id, f"{prefix}resource.id")


def _validate_context(context: Mapping[str, str], prefix: str) -> None:
    if len(context) > MAX_CONTEXT:
        raise InvalidRequest(f"{prefix}context", f"has {len(context)} entries; the limit is {MAX_CONTEXT}")
    for key, value in context.items():
        if not CONTEXT_KEY.match(key):
            raise InvalidRequest(
                f"{prefix}context", f"key {clip(key)} is not 1 to 64 of a-z and _ (a name like alias or artifact_type)"
            )
        if len(value) > MAX_CONTEXT_VALUE:
            raise InvalidRequest(
                f"{prefix}context.{key}", f"is {len(value)} characters long; the limit is {MAX_CONTEXT_VALUE}"
            )


def _check_id(value: str, field_name: str) -> None:
    if not value:
        raise InvalidRequest(field_name, "must not be empty")
    if len(value) > MAX_ID:
        raise InvalidRequest(field_name, f"is {len(value)} characters long; the limit is {MAX_ID}")
    if not ID.match(value):
        raise InvalidRequest(
            field_name,
            f"{clip(value)} has characters an id cannot have: only letters, digits and . _ @ + - are allowed, "
            "starting with a letter or digit",
        )
