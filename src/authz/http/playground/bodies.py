"""The JSON bodies the playground page posts, as pydantic models, and the fields they hold as text.

Every body carries the editors' contents: ``files`` (policy file name -> text) and, where a world
is needed, ``world`` (the YAML of the decision-test format) with the name it was loaded as. A body
that is not one is refused with 400 naming the field (:func:`authz.http.documents.parse`); so is a
file name that could not be a policy file, or a check whose subject, resource or context lines are
not in the command line's forms (``user:carol``, ``report:rep-1``, ``KEY=VALUE``).
"""

from __future__ import annotations

import re

from pydantic import Field, StrictStr

from authz.errors import InvalidRequest
from authz.http.documents import Document
from authz.policy import ignored
from servicekit.text import clip

MAX_FILES = 64
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
CONTEXT_LINE = re.compile(r"\s*([^=\s]+)\s*=(.*)\Z")


class Files(Document):
    """POST /playground/api/lint and /matrix: the policy files in the editors."""

    files: dict[StrictStr, StrictStr] = Field(
        description="Policy file name (model.conf, catalogue.yaml, *.csv) -> text"
    )


class FilesAndWorld(Files):
    """POST /playground/api/tests and /diff: the policy files and the world."""

    world: StrictStr = Field(description="The world editor: YAML of the decision-test format (world and cases)")
    world_name: StrictStr = Field("world.yaml", description="The name the world was loaded as, for its errors")


class Check(FilesAndWorld):
    """POST /playground/api/check: one request, as `authz check` takes it."""

    subject: StrictStr = Field(description="user:<id>, service_account:<id> or anonymous")
    action: StrictStr
    resource: StrictStr = Field(description="kind:id")
    context: StrictStr = Field("", description="KEY=VALUE lines")


def file_texts(body: Files) -> dict[str, str]:
    """The posted files, their names checked: plain names a policy directory could hold."""
    if not body.files:
        raise InvalidRequest("files", "is empty: send the policy files (model.conf, catalogue.yaml, *.csv)")
    if len(body.files) > MAX_FILES:
        raise InvalidRequest("files", f"has {len(body.files)} files; the limit is {MAX_FILES}")
    for name in body.files:
        if not FILE_NAME.match(name) or ignored(name):
            raise InvalidRequest("files", f"{clip(name)} is not a policy file name (letters, digits, . _ -)")
    return dict(body.files)


def reference(text: str, field: str, *, subject: bool = False) -> tuple[str, str]:
    """``kind:id`` (or ``anonymous`` for a subject) as kind and id; InvalidRequest naming ``field``."""
    text = text.strip()
    if subject and text == "anonymous":
        return "anonymous", ""
    kind, sep, ident = text.partition(":")
    if not sep or not kind or not ident:
        forms = "kind:id (user:carol) or anonymous" if subject else "kind:id (report:rep-weekly-vision)"
        raise InvalidRequest(field, f"{clip(text) or 'nothing'} is not {forms}")
    return kind, ident


def context(text: str) -> dict[str, str]:
    """KEY=VALUE lines (blank lines and lines starting with # skipped); InvalidRequest naming the line."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = CONTEXT_LINE.match(line)
        if match is None:
            raise InvalidRequest("context", f"line {number}: {clip(line)} is not KEY=VALUE")
        found[match.group(1)] = match.group(2).strip()
    return found
