"""What the decision service imports of the store stays light: no database layer, no server."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "alembic")
SERVER_SIDE = ("store.server", "store.service", "store.database")

PROBE = f"""
import sys
import store, store.convert, store.client, store.kinds
heavy = {HEAVY!r}
server_side = {SERVER_SIDE!r}
loaded = sorted(
    name for name in sys.modules
    if name in server_side or any(name == h or name.startswith(h + ".") for h in heavy)
)
print("\\n".join(loaded))
"""


def test_the_client_side_does_not_load_the_server_side() -> None:
    """`import store, store.convert, store.client, store.kinds` loads neither SQLAlchemy, Alembic nor the server."""
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.split() == []
