"""The rule catalogue (policies/catalogue.yaml): the files a policy is made of and the rule ids it cites.

Lint holds every policy to it: no file it does not list, no listed file missing or empty, no rule
id it does not list, no listed rule without a line in its file (authz/lint.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from authz.errors import Problem
from authz.syntax import RULE_ID

CATALOGUE_FILE = "catalogue.yaml"


@dataclass(frozen=True)
class Rule:
    says: str
    file: str = ""  # the file whose lines implement it ("" for rules decided around the lines)


@dataclass(frozen=True)
class Catalogue:
    source: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> what it holds
    rules: dict[str, Rule] = field(default_factory=dict)  # rule id -> rule


def parse_catalogue(text: str, source: str) -> tuple[Catalogue | None, list[Problem]]:
    """The catalogue in ``text`` and every problem with its shape."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        return None, [Problem(source, mark.line + 1 if mark else 0, f"not valid YAML: {exc}")]
    if not isinstance(document, dict) or set(document) != {"files", "rules"}:
        return None, [Problem(source, 0, "must be a mapping with two keys, files and rules")]
    problems: list[Problem] = []
    files, rules = document["files"], document["rules"]
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        problems.append(Problem(source, 0, "files: must map file names to what each holds"))
        files = {}
    parsed: dict[str, Rule] = {}
    if not isinstance(rules, dict):
        problems.append(Problem(source, 0, "rules: must map rule ids to {says: ..., file: ...}"))
        rules = {}
    for rule, entry in rules.items():
        if not isinstance(rule, str) or not RULE_ID.match(rule):
            problems.append(Problem(source, 0, f"rules: {rule!r} is not a rule id like RP3, T3a or G-R6"))
        elif not isinstance(entry, dict) or not isinstance(entry.get("says"), str) or set(entry) - {"says", "file"}:
            problems.append(Problem(source, 0, f"rules.{rule}: must be {{says: <what it says>, file: <file>}}"))
        elif "file" in entry and entry["file"] not in files:
            problems.append(Problem(source, 0, f"rules.{rule}.file: {entry['file']!r} is not one of the files listed"))
        else:
            parsed[rule] = Rule(entry["says"], entry.get("file", ""))
    if problems:
        return None, problems
    return Catalogue(source, dict(files), parsed), []
