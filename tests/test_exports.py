"""The public surface of the packages is what __all__ says."""

from __future__ import annotations

import store


def test_store_exports() -> None:
    """`store` re-exports its client, config and factories."""
    assert sorted(store.__all__) == ["Database", "StoreClient", "StoreConfig", "create_server", "open_database"]
    for name in store.__all__:
        assert getattr(store, name).__module__.startswith("store.")
