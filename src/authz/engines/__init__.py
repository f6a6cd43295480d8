"""Policy evaluation: the :class:`Engine` protocol and its two implementations.

* :mod:`authz.engines.base`: the protocol, :class:`Verdict`, the context mapping (G7).
* :mod:`authz.engines.index`: what both engines need from a policy's structure, computed once.
* :mod:`authz.engines.casbin`: pycasbin's Enforcer, the reference semantics (``--engine casbin``).
* :mod:`authz.engines.compiled`: the same answers from a compiled index (the default).

The casbin engine imports pycasbin when first asked for, so the compiled path never loads it.
"""

from __future__ import annotations

from collections.abc import Callable

from authz.engines.base import Context, Engine, Verdict
from authz.engines.compiled import CompiledEngine
from authz.engines.index import ActionIndex, role_closure
from authz.policy import Policy

ENGINES = ("compiled", "casbin")

__all__ = ["ENGINES", "ActionIndex", "CompiledEngine", "Context", "Engine", "Verdict", "engine_factory", "role_closure"]


def engine_factory(name: str) -> Callable[[Policy], Engine]:
    """The engine class for ``--engine``: ``compiled`` (default) or ``casbin`` (the reference)."""
    if name == "compiled":
        return CompiledEngine
    if name == "casbin":
        from authz.engines.casbin import CasbinEngine

        return CasbinEngine
    raise ValueError(f"unknown engine {name!r}; choose {' or '.join(ENGINES)}")
