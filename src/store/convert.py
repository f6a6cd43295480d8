"""Rows <-> protobuf messages. Message fields carry the same names as table columns.

The decision service's replica turns Watch and Snapshot messages into rows with this module, so
it imports the generated messages and :mod:`store.kinds` only, never the database layer
(tests/store/test_imports.py holds it to that). Its tables are built at import and only read.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from store.kinds import Row
from store.v1 import store_pb2

_CHANGE_OPS = {
    "upsert": store_pb2.Change.UPSERT,
    "delete": store_pb2.Change.DELETE,
    "reset": store_pb2.Change.RESET,
}
_OP_NAMES = {value: name for name, value in _CHANGE_OPS.items()}


def message_to_values(message: Message) -> dict[str, Any]:
    """Every field of ``message`` as a plain value (repeated fields as lists)."""
    values: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        values[field.name] = list(value) if field.is_repeated else value
    return values


def entity(kind: str, row: Row) -> store_pb2.Entity:
    return store_pb2.Entity(**{kind: _message_class(kind)(**row)})


def entity_row(message: store_pb2.Entity) -> tuple[str, Row]:
    kind = message.WhichOneof("kind")
    if kind is None:
        raise ValueError("empty entity")
    return kind, message_to_values(getattr(message, kind))


def change(op: str, kind: str, row: Row) -> store_pb2.Change:
    if op == "reset":
        return store_pb2.Change(op=store_pb2.Change.RESET)
    return store_pb2.Change(op=_CHANGE_OPS[op], entity=entity(kind, row))


def change_op(message: store_pb2.Change) -> str:
    return _OP_NAMES[message.op]


def _message_class(kind: str) -> Any:
    return _CLASSES[kind]


_CLASSES: dict[str, Any] = {
    field.name: getattr(store_pb2, field.message_type.name)  # type: ignore[union-attr]
    for field in store_pb2.Entity.DESCRIPTOR.fields
}
