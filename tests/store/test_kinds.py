"""The shared vocabulary (store.kinds) and the store's entity table (store.entities) agree."""

from __future__ import annotations

from store import kinds
from store.entities import SPECS


def test_kinds_are_the_specs_in_order() -> None:
    """Every entity kind is named in both places, in the same dependency order."""
    assert tuple(SPECS) == kinds.KINDS


def test_keys_are_the_specs_keys() -> None:
    """KEYS names exactly the kinds whose key is not "id", with the same fields in the same order."""
    assert {kind: spec.key for kind, spec in SPECS.items() if spec.key != ("id",)} == kinds.KEYS
    for kind, spec in SPECS.items():
        row = {name: f"{name}-value" for name in spec.columns}
        assert kinds.key_of(kind, row) == spec.key_of(row)


def test_enums_come_from_the_vocabulary() -> None:
    """The roles, visibilities and states the store accepts are the ones the decision service knows."""
    assert SPECS["user"].enums["role"] == kinds.ORG_ROLES
    assert SPECS["custom_role"].enums["base"] == kinds.CUSTOM_ROLE_BASES
    assert SPECS["project"].enums["visibility"] == kinds.VISIBILITIES
    assert SPECS["model_registry"].enums["state"] == kinds.LEGACY_STATES
    assert SPECS["registry"].enums["visibility"] == kinds.REGISTRY_VISIBILITIES
    assert SPECS["registry_member"].enums["role"] == kinds.REGISTRY_ROLES
