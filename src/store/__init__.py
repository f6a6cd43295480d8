"""The store service: the platform's data with revisions and a change feed (store.v1.Store).

The names below are resolved on first use (PEP 562), not at import: the decision service imports
``store.convert``, ``store.client`` and ``store.kinds``, and importing this package for them must
not load the server side (SQLAlchemy, Alembic, health, Prometheus).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.client import StoreClient as StoreClient
    from store.database import Database as Database
    from store.database import open_database as open_database
    from store.server import StoreConfig as StoreConfig
    from store.server import create_server as create_server

__all__ = ["Database", "StoreClient", "StoreConfig", "create_server", "open_database"]

# Exported name -> the module that defines it.
_HOMES = {
    "Database": "store.database",
    "StoreClient": "store.client",
    "StoreConfig": "store.server",
    "create_server": "store.server",
    "open_database": "store.database",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'store' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later lookups find it without coming here again
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
