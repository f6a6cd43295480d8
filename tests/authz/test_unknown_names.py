"""G3 reasons for an unknown action, kind or subject: the closest known name, and the test the command
line uses to call them usage errors (authz.reasons)."""

from __future__ import annotations

from authz import reasons
from authz.decision import Decision


def test_the_closest_known_name_is_offered() -> None:
    """Among many ids the closest one (a typo away) is offered; nothing when none is close; sets are
    compared in sorted order, so the offer does not depend on hashing."""
    users = [f"u0-{i:05d}" for i in range(10_000)]
    assert reasons.unknown("subject", "u0-0123x", users, "user:").reason == (
        "denied: unknown subject user:u0-0123x (G3); did you mean user:u0-00123?"
    )
    assert reasons.unknown("subject", "zzzzzzzz", users, "user:").reason == "denied: unknown subject user:zzzzzzzz (G3)"
    actions = frozenset({"report.view", "report.edit", "report.delete", "run.view"})
    assert reasons.unknown("action", "report.veiw", actions).reason.endswith("did you mean report.view?")
    for tied in (frozenset({"report.b", "report.a"}), {"report.a", "report.b"}):  # equally close to report.x
        assert reasons.unknown("action", "report.x", tied).reason.endswith("did you mean report.a?")


def test_only_unknown_names_are_usage_errors() -> None:
    """unknown() and wrong_kind() denials are; an unknown resource, another deny, an allow are not."""
    assert reasons.is_unknown_name(reasons.unknown("action", "x.y", ["report.view"]))
    assert reasons.is_unknown_name(reasons.unknown("subject", "carl", ["carol"], "user:"))
    assert reasons.is_unknown_name(reasons.wrong_kind("report.edit", ["report"], "run"))
    assert not reasons.is_unknown_name(Decision(False, "denied: unknown resource report:gone (G3)", ("G3",)))
    assert not reasons.is_unknown_name(Decision(False, "denied: unknown action x.y (G3)", ("G3", "G1")))
    assert not reasons.is_unknown_name(Decision(True, "denied: unknown action x.y (G3)", ("G3",)))
    assert not reasons.is_unknown_name(Decision(False, "denied: no rule grants report.edit on report:r", ("G1",)))
