"""Policies: read `policies/` at once, check everything in it, keep what serves and where it came from.

A :class:`Policy` is immutable: the model, its lines in load order (each with its ``file:line``
and its text), the text of every file, and a version hash over all of it; a reload builds a new
one from a snapshot of the files and the server swaps one reference. So explanations always cite
the text of the version serving, whatever the files on disk say meanwhile.

:func:`build_policy` is what `authz policy lint`, `serve` at start and every reload run: it
collects every problem (syntax of each line, the model in :mod:`authz.model`, the catalogue in
:mod:`authz.catalogue`, the meaning of it all in :mod:`authz.lint`) and raises one
:class:`PolicyError` listing them as ``file:line: what is wrong``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from authz.catalogue import CATALOGUE_FILE, Catalogue, parse_catalogue
from authz.errors import PolicyError, Problem
from authz.model import GROUPINGS, POLICY, ModelSpec, parse_model
from authz.syntax import PARSER_LOCK, ROLE, RULE_ID, check_condition, split_line
from store.kinds import ACTION

MODEL_FILE = "model.conf"
MARKER = "# lint:"
ALLOW_WIDE = "allow-wide"

__all__ = ["PARSER_LOCK", "Line", "Policy", "build_policy", "custom_role_lines", "load_policy", "read_files"]


@dataclass(frozen=True)
class Line:
    """One policy line with where it came from, its text, and a wide-grant marker's reason if any."""

    ptype: str
    values: tuple[str, ...]
    source: str  # "policies/reports.csv:12", or "store: custom role ml-lead (from ...)"
    text: str = field(default="", compare=False)
    allow_wide: str = field(default="", compare=False)

    @property
    def rule(self) -> str:
        return self.values[0]

    @property
    def act(self) -> str:
        return self.values[1]

    @property
    def role(self) -> str:
        return self.values[2]

    @property
    def cond(self) -> str:
        return self.values[3]

    @property
    def eft(self) -> str:
        return self.values[4]


@dataclass(frozen=True)
class Policy:
    """A checked policy: the model, its lines in load order, the files' text and a version hash."""

    model_text: str
    lines: tuple[Line, ...]
    version: str
    directory: str
    extra: tuple[Line, ...] = field(default=())
    model: ModelSpec | None = field(default=None, compare=False)
    texts: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (file name, text)
    catalogue: Catalogue | None = field(default=None, compare=False)

    @cached_property
    def p_lines(self) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.ptype == "p")

    def grouping(self, ptype: str) -> tuple[Line, ...]:
        return tuple(line for line in self.lines if line.ptype == ptype)

    @cached_property
    def actions(self) -> frozenset[str]:
        return frozenset(line.values[0] for line in self.grouping("g2"))

    @cached_property
    def kinds(self) -> frozenset[str]:
        return frozenset(line.values[1] for line in self.grouping("g2"))

    def text_of(self, name: str) -> str:
        """The text of the file ``name`` in this version ("" if it has none)."""
        return dict(self.texts).get(name, "")

    def with_lines(self, extra: Iterable[Line]) -> Policy:
        """This policy plus generated lines (custom roles); same version, file lines unchanged."""
        extra = tuple(extra)
        return Policy(
            self.model_text, self.lines + extra, self.version, self.directory, extra, self.model, self.texts,
            self.catalogue,
        )  # fmt: skip


def ignored(name: str) -> bool:
    """Editors' lock, swap and backup files, which are not part of a policy."""
    return name.startswith((".", "#")) or name.endswith("~")


def read_files(directory: Path | str) -> dict[str, bytes]:
    """The bytes of every file of the policy directory (a snapshot: what is checked is what serves)."""
    root = Path(directory)
    try:
        paths = sorted(path for path in root.iterdir() if path.is_file() and not ignored(path.name))
        return {path.name: path.read_bytes() for path in paths}
    except OSError as exc:
        raise PolicyError(f"{root}: not a readable policy directory ({exc.strerror or exc})") from None


def load_policy(directory: Path | str) -> Policy:
    """Read and check ``directory``; raises PolicyError listing every problem as file:line."""
    return build_policy(read_files(directory), directory)


def version_of(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return digest.hexdigest()[:12]


def build_policy(files: Mapping[str, bytes], directory: Path | str) -> Policy:
    """The policy of these files (names -> bytes), checked whole; PolicyError lists every problem."""
    from authz import lint

    root = Path(directory)
    label = root.name or str(root)
    problems: list[Problem] = []
    texts: dict[str, str] = {}
    for name, data in files.items():
        try:
            texts[name] = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(Problem(f"{label}/{name}", 0, f"is not UTF-8 text: {exc.reason} at byte {exc.start}"))
    model: ModelSpec | None = None
    if MODEL_FILE in texts:
        model, found = parse_model(texts[MODEL_FILE], f"{label}/{MODEL_FILE}")
        problems += found
    else:
        problems.append(Problem(f"{label}/{MODEL_FILE}", 0, "is missing: the policy needs its Casbin model"))
    catalogue: Catalogue | None = None
    if CATALOGUE_FILE in texts:
        catalogue, found = parse_catalogue(texts[CATALOGUE_FILE], f"{label}/{CATALOGUE_FILE}")
        problems += found
    else:
        problems.append(Problem(f"{label}/{CATALOGUE_FILE}", 0, "is missing: the policy needs its rule catalogue"))
    lines: list[Line] = []
    seen: dict[tuple[str, tuple[str, ...]], str] = {}
    for name in sorted(texts):
        if not name.endswith(".csv"):
            continue
        for number, raw in enumerate(texts[name].splitlines(), start=1):
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            source = f"{label}/{name}:{number}"
            try:
                line = parse_line(stripped, source)
            except PolicyError as exc:
                problems.append(Problem(f"{label}/{name}", number, str(exc).split(": ", 1)[1]))
                continue
            key = (line.ptype, line.values)
            if key in seen:
                problems.append(Problem(f"{label}/{name}", number, f"the same line is already at {seen[key]}"))
                continue
            seen[key] = source
            lines.append(line)
    policy = Policy(
        texts.get(MODEL_FILE, ""), tuple(lines), version_of(files), str(root), (), model,
        tuple(sorted(texts.items())), catalogue,
    )  # fmt: skip
    problems += lint.check(policy, label)
    if problems:
        raise PolicyError(problems)
    return policy


def _marker(text: str, source: str) -> tuple[str, str]:
    """A line's body and the reason of its ``# lint: allow-wide <reason>`` marker ("" without one)."""
    body, found, directive = text.partition(MARKER)
    if not found:
        return text, ""
    kind, _, reason = directive.strip().partition(" ")
    if kind != ALLOW_WIDE:
        raise PolicyError(f"{source}: unknown lint directive {kind!r}; the one there is '{MARKER} {ALLOW_WIDE} <why>'")
    if not reason.strip():
        raise PolicyError(f"{source}: '{MARKER} {ALLOW_WIDE}' needs a reason after it")
    return body.rstrip(), reason.strip()


def parse_line(text: str, source: str) -> Line:
    """One non-comment line of a policy file, checked alone; PolicyError names ``source``."""
    body, allow_wide = _marker(text, source)
    values = split_line(body)
    ptype = values[0]
    rest = tuple(values[1:])
    if ptype == "p":
        if len(rest) != len(POLICY):
            raise PolicyError(
                f"{source}: a p line has {len(POLICY)} fields ({', '.join(POLICY)}), this one has {len(rest)}"
            )
        rule, act, role, cond, eft = rest
        if not RULE_ID.match(rule):
            raise PolicyError(f"{source}: {rule!r} is not a rule id like RP3, T3a or G-R6")
        if not ACTION.match(act):
            raise PolicyError(f"{source}: {act!r} is not an action like report.edit")
        if not ROLE.match(role):
            raise PolicyError(f"{source}: {role!r} is not a role token like team:member")
        if eft not in ("allow", "deny"):
            raise PolicyError(f"{source}: the effect must be allow or deny, not {eft!r}")
        try:
            check_condition(cond)
        except ValueError as exc:
            raise PolicyError(f"{source}: {exc}") from None
    elif ptype in GROUPINGS:
        if len(rest) != 2 or not all(rest):
            raise PolicyError(f"{source}: a {ptype} line has two fields, this one has {len(rest)}")
        if ptype in ("g2", "g3") and not ACTION.match(rest[0]):
            raise PolicyError(f"{source}: {rest[0]!r} is not an action like report.edit")
        if ptype == "g3" and not ACTION.match(rest[1]):
            raise PolicyError(f"{source}: {rest[1]!r} is not an action like project.view")
    else:
        raise PolicyError(f"{source}: unknown line type {ptype!r}; expected p, g, g2 or g3")
    return Line(ptype, rest, source, text, allow_wide)


TEAM_CHAIN = ("team:admin", "team:member", "team:view_only")


def custom_role_lines(policy: Policy, roles: Iterable[dict[str, Any]]) -> list[Line]:
    """Policy lines for the org's custom roles (section 2), from the store's custom-role rows.

    A custom role holds its base role; an extra permission grants its action as the admin
    column does (a copy, for the role, of every team-role line of that action); an org viewer's
    seat holds only view_only (G8), without extras.
    """
    lines: list[Line] = []
    by_action: dict[str, list[Line]] = {}
    for line in policy.p_lines:
        if line.eft == "allow" and line.role in TEAM_CHAIN:
            by_action.setdefault(line.act, []).append(line)
    for role in sorted(roles, key=lambda r: r["id"]):
        token = f"team:custom:{role['id']}"
        where = f"store: custom role {role['id']} (org {role['org']})"
        lines.append(Line("g", (token, f"team:{role['base']}"), where))
        lines.append(Line("g", (f"{token}@viewer", "team:view_only"), f"{where}, G8"))
        seen: set[tuple[str, ...]] = set()
        for action in role["permissions"]:
            for template in by_action.get(action, ()):
                values = (template.rule, action, token, template.cond, "allow")
                if values not in seen:
                    seen.add(values)
                    lines.append(Line("p", values, f"{where}, as {template.source}", template.text))
    return lines
