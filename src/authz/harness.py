"""`authz test`: run decision test files (a world + expected decisions, DECISION_TESTS format).

In-process, each file gets a fresh world checked by the store's own rules; with a server and a
store, each file's world replaces the store's content and the cases go over gRPC. A case passes
when the decision's `allowed` matches `allow` and, when the case names a `rule` (one id, or a
list of them), the decision names every one among its rules (the rules that granted it, or that
refused it).

A file is checked whole against its schema (:mod:`authz.casefile`, pydantic models) before it is
run: every problem is reported at once, each with its path and the line of its YAML node. Every
case knows the line of the YAML where it starts, so failures name it as ``file:line`` (the
position comes from the YAML composer's node marks).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from authz import casefile
from authz.client import Client
from authz.decider import Decider
from authz.decision import Decision, Request
from authz.errors import AuthzError
from authz.policy import Policy
from authz.testing import decider_for, state_from_document
from store.client import StoreClient
from store.errors import StoreError
from store.world import load_document

CASE_KEYS = casefile.CASE_KEYS


class CaseFileError(ValueError):
    """A decision test file that is not in the format: every problem, one per line, each naming the
    file (and line) and the path inside it; ``problems`` holds them."""

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems) or (message,)


@dataclass(frozen=True)
class Case:
    file: str
    index: int
    subject: str
    action: str
    resource: str
    allow: bool
    context: dict[str, str] = field(default_factory=dict)
    rules: tuple[str, ...] = ()  # rule ids the decision must name, every one
    revision_at_least: int = 0
    line: int = 0  # where the case starts in its file (1-based; 0: unknown)

    @property
    def rule(self) -> str:
        """The expected rule ids as written for people: ``RP3``, ``P1, P7``; "" for none."""
        return ", ".join(self.rules)

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
        if not set(self.case.rules) <= set(self.decision.rules):
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


def case_lines(text: str | bytes) -> list[int]:
    """The line (1-based) where each item of the document's ``cases`` list starts; [] when the text
    does not compose or has no such list."""
    lines = casefile.node_lines(text)
    found: list[int] = []
    while ("cases", len(found)) in lines:
        found.append(lines[("cases", len(found))])
    return found


def parse_cases(path: str, document: casefile.Document, lines: list[int] | None = None) -> tuple[Case, ...]:
    """The cases of a checked decision test document; ``lines`` (from :func:`case_lines`) places each one."""
    cases = []
    for i, item in enumerate(document.cases):
        cases.append(
            Case(
                file=path,
                index=i,
                subject=item.subject,
                action=item.action,
                resource=item.resource,
                allow=item.allow,
                context=dict(item.context),
                rules=tuple(item.rule),
                revision_at_least=item.revision_at_least,
                line=lines[i] if lines is not None and i < len(lines) else 0,
            )
        )
    return tuple(cases)


def load_file(path: Path) -> TestFile:
    """Read one decision test file and check it whole; CaseFileError lists every problem, each with
    the file, the line where known, and the path inside the document."""
    try:
        text = path.read_bytes()
        document = load_document(text, str(path))
    except OSError as exc:
        raise CaseFileError(f"{path}: cannot read: {exc.strerror}") from None
    except StoreError as exc:
        raise CaseFileError(str(exc)) from None
    checked, problems = casefile.validate(document, text, str(path))
    if checked is None:
        raise CaseFileError("\n".join(problems), problems)
    name = checked.name or path.stem
    return TestFile(str(path), str(name), document, parse_cases(str(path), checked, case_lines(text)))


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
