"""`authz test`: run decision test files (a world + expected decisions, DECISION_TESTS format).

In-process, each file gets a fresh world checked by the store's own rules; with a server and a
store, each file's world replaces the store's content and the cases go over gRPC. A case passes
when the decision's `allowed` matches `allow` and, when the case names a `rule`, the decision
names that rule among its rules (the rules that granted it, or that refused it).

Every case knows the line of the YAML where it starts, so failures and format errors name it as
``file:line`` (the position comes from the YAML composer's node marks).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from authz.client import Client
from authz.decider import Decider
from authz.decision import Decision, Request
from authz.errors import AuthzError
from authz.policy import Policy
from authz.testing import decider_for, state_from_document
from store.client import StoreClient
from store.errors import StoreError
from store.world import load_document

CASE_KEYS = ("subject", "action", "resource", "context", "allow", "rule", "revision_at_least", "note")
REF = re.compile(r"[a-z_]+:[^:\s]+\Z")


class CaseFileError(ValueError):
    """A decision test file that is not in the format; names the file and the path inside it."""


@dataclass(frozen=True)
class Case:
    file: str
    index: int
    subject: str
    action: str
    resource: str
    allow: bool
    context: dict[str, str] = field(default_factory=dict)
    rule: str = ""
    revision_at_least: int = 0
    line: int = 0  # where the case starts in its file (1-based; 0: unknown)

    @property
    def where(self) -> str:
        """``file:line`` of the case, or ``file[index]`` when its line is unknown."""
        return f"{self.file}:{self.line}" if self.line else f"{self.file}[{self.index}]"

    @property
    def id(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in sorted(self.context.items()))
        return f"{Path(self.file).name}[{self.index}] {self.subject} {self.action} {self.resource}{extra}"

    def request(self, min_revision: int = 0) -> Request:
        subject_kind, _, subject_id = self.subject.partition(":")
        resource_kind, _, resource_id = self.resource.partition(":")
        return Request(
            subject_kind=subject_kind,
            subject_id=subject_id,
            action=self.action,
            resource_kind=resource_kind,
            resource_id=resource_id,
            context=self.context,
            min_revision=min_revision,
        )


@dataclass(frozen=True)
class Result:
    case: Case
    decision: Decision | None
    error: str = ""

    @property
    def passed(self) -> bool:
        if self.decision is None:
            return False
        if self.decision.allowed != self.case.allow:
            return False
        if self.case.rule and self.case.rule not in self.decision.rules:
            return False
        return self.decision.revision >= self.case.revision_at_least

    @property
    def got(self) -> str:
        if self.decision is None:
            return f"error: {self.error}"
        return "allow" if self.decision.allowed else "deny"


@dataclass(frozen=True)
class TestFile:
    path: str
    name: str
    document: dict[str, Any]
    cases: tuple[Case, ...]


def _fail(path: str, where: str, message: str) -> CaseFileError:
    return CaseFileError(f"{path}: {where}: {message}")


def case_lines(text: str | bytes) -> list[int]:
    """The line (1-based) where each item of the document's ``cases`` list starts; [] when the text
    does not compose or has no such list (the loader then reports what is wrong with it)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return []
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "cases" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def parse_cases(path: str, document: dict[str, Any], lines: list[int] | None = None) -> tuple[Case, ...]:
    """The cases of a decision test file; ``lines`` (from :func:`case_lines`) places each one."""
    raw = document.get("cases")
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _fail(path, "cases", "must be a list of cases")
    cases = []
    for i, item in enumerate(raw):
        where = f"cases[{i}]"
        line = lines[i] if lines is not None and i < len(lines) else 0
        at = f"{path}:{line}" if line else path
        if not isinstance(item, dict):
            raise _fail(at, where, "must be a mapping with subject, action, resource and allow")
        for key in item:
            if key not in CASE_KEYS:
                raise _fail(at, f"{where}.{key}", f"unknown key (allowed: {', '.join(CASE_KEYS)})")
        for key in ("subject", "action", "resource", "allow"):
            if key not in item:
                raise _fail(at, f"{where}.{key}", "is required")
        subject, resource = item["subject"], item["resource"]
        if not isinstance(subject, str) or not (subject == "anonymous" or REF.match(subject)):
            raise _fail(at, f"{where}.subject", f"{subject!r} must be kind:id or anonymous")
        if not isinstance(resource, str) or not REF.match(resource):
            raise _fail(at, f"{where}.resource", f"{resource!r} must be kind:id")
        if not isinstance(item["action"], str):
            raise _fail(at, f"{where}.action", "must be a string")
        if not isinstance(item["allow"], bool):
            raise _fail(at, f"{where}.allow", f"must be true or false, not {item['allow']!r}")
        context = item.get("context") or {}
        if not isinstance(context, dict) or not all(isinstance(k, str) for k in context):
            raise _fail(at, f"{where}.context", "must be a mapping of names to values")
        rule = item.get("rule") or ""
        if not isinstance(rule, str):
            raise _fail(at, f"{where}.rule", "must be a rule id like RP3")
        at_least = item.get("revision_at_least", 0)
        if not isinstance(at_least, int) or isinstance(at_least, bool) or at_least < 0:
            raise _fail(at, f"{where}.revision_at_least", "must be a revision number")
        cases.append(
            Case(
                file=path,
                index=i,
                subject=subject,
                action=item["action"],
                resource=resource,
                allow=item["allow"],
                context={str(k): str(v) for k, v in context.items()},
                rule=rule,
                revision_at_least=at_least,
                line=line,
            )
        )
    return tuple(cases)


def load_file(path: Path) -> TestFile:
    """Read one decision test file; CaseFileError names the file and the path inside it."""
    try:
        text = path.read_bytes()
        document = load_document(text, str(path))
    except OSError as exc:
        raise CaseFileError(f"{path}: cannot read: {exc.strerror}") from None
    except StoreError as exc:
        raise CaseFileError(str(exc)) from None
    if "world" not in document:
        raise _fail(str(path), "world", "is required")
    name = document.get("name") or path.stem
    return TestFile(str(path), str(name), document, parse_cases(str(path), document, case_lines(text)))


def collect(paths: Iterable[Path]) -> list[Path]:
    """Files named, and *.yaml / *.yml under directories named, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
        else:
            found.append(path)
    return found


def run_in_process(test: TestFile, policy: Policy | None = None, engine: str = "compiled") -> Iterator[Result]:
    """Each case against a fresh in-memory world of this file only."""
    try:
        state = state_from_document(test.document)
    except StoreError as exc:
        raise CaseFileError(f"{test.path}: {exc}") from None
    decider = decider_for(state, policy, engine)
    for case in test.cases:
        yield _decide(decider, case)


def _decide(decider: Decider, case: Case) -> Result:
    try:
        return Result(case, decider.check(case.request()))
    except AuthzError as exc:
        return Result(case, None, str(exc))


def run_remote(test: TestFile, store: StoreClient, client: Client) -> Iterator[Result]:
    """Load the file's world into a running store (replacing its content), then ask over gRPC."""
    import yaml

    document = {"world": test.document["world"]}
    try:
        revision = store.import_world(yaml.safe_dump(document).encode(), name=test.path, replace=True).revision
    except grpc.RpcError as exc:
        raise CaseFileError(f"{test.path}: the store refused the world: {exc.code().name}: {exc.details()}") from None
    for case in test.cases:
        try:
            decision = client.check(
                case.subject,
                case.action,
                case.resource,
                case.context,
                min_revision=max(revision, case.revision_at_least),
            )
        except grpc.RpcError as exc:
            yield Result(case, None, f"{exc.code().name}: {exc.details()}")
            continue
        yield Result(case, decision)
