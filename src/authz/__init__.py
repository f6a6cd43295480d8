"""Policy-as-code authorization for an ML platform: may subject S do action A on resource R, and why.

The public surface, for callers of the decision service:

    from authz import Client, Check
    with Client("127.0.0.1:50051") as client:
        decision = client.check("user:bob", "report.edit", "report:rep1")

Names are imported on first use, so ``import authz`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from authz.calls import Check as Check
    from authz.client import Client as Client
    from authz.decision import Decision as Decision
    from authz.decision import Request as Request
    from authz.errors import AuthzError as AuthzError
    from authz.errors import InvalidRequest as InvalidRequest

_WHERE = {
    "AuthzError": "authz.errors",
    "Check": "authz.calls",
    "Client": "authz.client",
    "Decision": "authz.decision",
    "InvalidRequest": "authz.errors",
    "Request": "authz.decision",
}

__all__ = ["AuthzError", "Check", "Client", "Decision", "InvalidRequest", "Request"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'authz' has no attribute {name!r}")
