"""What the SQL stores share: mapping attrs classes to rows, and the schema built from ports.

Column types follow the field annotations: ``str`` is text, ``int`` and ``bool`` integers,
enums their value as text, datetimes microseconds since the epoch (UTC) as integers,
timedeltas microseconds, and anything composite (contact info, role sets, offer lines, audit
details) canonical JSON text. The mapping is exact both ways, so a store returns objects equal
to the ones it was given.
"""

from __future__ import annotations

import enum
import functools
import json
import types
import typing
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import attrs

from partnerkit.audit import AuditEvent
from partnerkit.ports import Table

__all__ = [
    "AUDIT_COLUMNS",
    "Codec",
    "TableSQL",
    "ddl",
    "key_of",
    "prefix_range",
    "table_codec",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Encoder = Callable[[Any], Any]


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _enc_datetime(value: datetime) -> int:
    return _us(value - _EPOCH)


def _dec_datetime(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return _enc_datetime(value)
    if isinstance(value, timedelta):
        return _us(value)
    if isinstance(value, frozenset | set):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if attrs.has(type(value)):
        return {f.name: _jsonable(getattr(value, f.name)) for f in attrs.fields(type(value))}
    return value


def _from_json(hint: Any, value: Any) -> Any:
    """Rebuild a value of type *hint* from its JSON form."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        return _from_json(inner[0], value)
    if origin is frozenset:
        return frozenset(_from_json(args[0], v) for v in value)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_from_json(args[0], v) for v in value)
        return tuple(_from_json(a, v) for a, v in zip(args, value, strict=True))
    if isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return hint(value)
        if hint is datetime:
            return _dec_datetime(value)
        if hint is timedelta:
            return timedelta(microseconds=value)
        if attrs.has(hint):
            hints = _hints(hint)
            return hint(**{k: _from_json(hints[k], v) for k, v in value.items()})
    return value


@functools.cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    # Resolving string annotations compiles code: do it once per class, not once per row.
    return typing.get_type_hints(cls)


def _dumps(value: Any) -> str:
    return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"))


@attrs.frozen
class Column:
    """One column: its name, SQL type, and the conversions to and from the database."""

    name: str
    sql_type: str
    nullable: bool
    encode: Encoder
    decode: Encoder
    #: The conversion from a non-NULL database value (``None``: the value is used as is).
    raw: Encoder | None = None


def _column(name: str, hint: Any) -> Column:
    nullable = False
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(hint))
        hint = args[0] if len(args) == 1 else hint
    base = hint if isinstance(hint, type) else None
    ident: Encoder = _identity
    if typing.get_origin(hint) is Literal or base is str:
        return Column(name, "TEXT", nullable, ident, ident)
    if base is bool:
        return Column(name, "INTEGER", nullable, _opt(int), _opt(bool), bool)
    if base is int:
        return Column(name, "BIGINT", nullable, ident, ident)
    if base is datetime:
        return Column(
            name, "BIGINT", nullable, _opt(_enc_datetime), _opt(_dec_datetime), _dec_datetime
        )
    if base is timedelta:
        return Column(name, "BIGINT", nullable, _opt(_us), _opt(_dec_timedelta), _dec_timedelta)
    if base is not None and issubclass(base, enum.Enum):
        enum_cls = base
        return Column(name, "TEXT", nullable, _opt(lambda v: v.value), _opt(enum_cls), enum_cls)
    decode_hint = hint

    def from_text(value: Any) -> Any:
        return _from_json(decode_hint, json.loads(value))

    return Column(name, "TEXT", nullable, _opt(_dumps), _opt(from_text), from_text)


def _dec_timedelta(value: int) -> timedelta:
    return timedelta(microseconds=value)


_new = object.__new__
_set = object.__setattr__  # frozen attrs classes refuse their own __setattr__


def _identity(value: Any) -> Any:
    return value


def _opt(fn: Encoder) -> Encoder:
    def convert(value: Any) -> Any:
        return None if value is None else fn(value)

    return convert


class Codec:
    """Converts objects of one attrs class to rows and back."""

    def __init__(self, cls: type[Any], computed: Sequence[str] = ()) -> None:
        hints = typing.get_type_hints(cls)
        self.cls = cls
        self.fields = [f.name for f in attrs.fields(cls)]
        self.columns = [_column(name, hints[name]) for name in self.fields]
        self.by_name = {c.name: c for c in self.columns}
        for name in computed:
            self.by_name[name] = Column(name, "TEXT", True, _identity, _identity)
        self.computed = list(computed)
        self._plain = [(i, c.name) for i, c in enumerate(self.columns) if c.raw is None]
        self._converted = [
            (i, c.name, c.raw) for i, c in enumerate(self.columns) if c.raw is not None
        ]
        self._encoders = [c.encode for c in self.columns]

    def names(self) -> list[str]:
        """Every column name, fields first, then computed columns."""
        return [*self.fields, *self.computed]

    def encode(self, obj: Any, computed: Sequence[Any] = ()) -> list[Any]:
        """Return the row values of *obj*, in the order of :meth:`names`."""
        values = [enc(getattr(obj, n)) for enc, n in zip(self._encoders, self.fields, strict=True)]
        values.extend(computed)
        return values

    def encode_value(self, column: str, value: Any) -> Any:
        """Encode one value for a ``WHERE`` clause on *column*."""
        return self.by_name[column].encode(value)

    def decode(self, row: Sequence[Any]) -> Any:
        """Build the object from the first ``len(fields)`` values of *row*.

        A stored row was validated when it was written, and the database's own constraints
        (types, ``CHECK``) keep it so; it is not validated again on every read, which would
        cost more than the read itself. The object is built the way its ``__init__`` would,
        field by field, without the validators.
        """
        obj = _new(self.cls)
        for i, name in self._plain:
            _set(obj, name, row[i])
        for i, name, convert in self._converted:
            value = row[i]
            _set(obj, name, None if value is None else convert(value))
        return obj


def table_codec(table: Table[Any]) -> Codec:
    """Return the codec of a port table."""
    return Codec(table.cls, list(table.computed))


AUDIT_COLUMNS = Codec(AuditEvent)


def ddl(
    table: Table[Any],
    codec: Codec,
    *,
    text_key: str = "TEXT",
    integer: str = "BIGINT",
    suffix: str = "",
) -> list[str]:
    """Return the statements that create *table* and its indexes."""
    cols = []
    for name in codec.names():
        col = codec.by_name[name]
        sql_type = col.sql_type if col.sql_type != "BIGINT" else integer
        if name == "id":
            cols.append(f"id {text_key} PRIMARY KEY")
            continue
        null = "" if col.nullable else " NOT NULL"
        cols.append(f"{name} {sql_type if sql_type != 'TEXT' else text_key}{null}")
    cols.extend(f"CHECK ({check})" for check in table.checks)
    body = ",\n  ".join(cols)
    stmts = [f"CREATE TABLE IF NOT EXISTS {table.name} (\n  {body}\n){suffix}"]
    for cols_group in table.unique:
        name = f"{table.name}_uq_{'_'.join(cols_group)}"
        stmts.append(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {table.name} ({', '.join(cols_group)})"
        )
    for cols_group in table.indexes:
        if _served_by_longer(cols_group, table):
            continue
        name = f"{table.name}_ix_{'_'.join(cols_group)}"
        stmts.append(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table.name} ({', '.join(cols_group)}, id)"
        )
    return stmts


def _served_by_longer(columns: tuple[str, ...], table: Table[Any]) -> bool:
    """Whether another index of *table* starts with *columns*, and so answers an equality
    lookup on them: every index costs pages and work on each write, so keep only that one."""
    return any(
        len(other) > len(columns) and other[: len(columns)] == columns
        for other in (*table.unique, *table.indexes)
    )


def key_of(obj: Any) -> tuple[str, int]:
    """Return ``(id, version)`` of a stored object."""
    return obj.id, obj.version


class TableSQL:
    """The statements of one table, built once per store."""

    def __init__(self, table: Table[Any], mark: str = "?") -> None:
        self.table = table
        self.codec = codec = table_codec(table)
        names = codec.names()
        cols = ", ".join(codec.fields)
        name = table.name
        self.statements = {
            "get": f"SELECT {cols} FROM {name} WHERE id = {mark}",
            "get_many": f"SELECT {cols} FROM {name} WHERE id IN",
            "insert": f"INSERT INTO {name} ({', '.join(names)}) "
            f"VALUES ({', '.join(mark for _ in names)})",
            "update": f"UPDATE {name} SET {', '.join(f'{n} = {mark}' for n in names)} "
            f"WHERE id = {mark} AND version = {mark}",
            "delete": f"DELETE FROM {name} WHERE id = {mark} AND version = {mark}",
        }
        self.lookups: dict[frozenset[str], tuple[tuple[str, ...], str, str]] = {}
        for group in table.lookups():
            # A nullable column is compared with IS, so that None finds the rows without a
            # value (as the memory store does), not none at all as "= NULL" would.
            where = " AND ".join(
                f"{c} IS {mark}" if codec.by_name[c].nullable and mark == "?" else f"{c} = {mark}"
                for c in group
            )
            self.lookups[frozenset(group)] = (
                group,
                f"SELECT {cols} FROM {name} WHERE {where} ORDER BY id",
                f"SELECT count(*) FROM {name} WHERE {where}",
            )


def prefix_range(column: str, prefix: str, mark: str = "?") -> tuple[str, tuple[str, ...]]:
    """Return a ``WHERE`` fragment matching *prefix* on *column* as an index range.

    ``LIKE`` would not use a binary-ordered index (and would treat ``%`` and ``_`` as
    wildcards); ``column >= prefix AND column < successor`` does, for any text.
    """
    if not prefix:
        return "1 = 1", ()
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return f"{column} >= {mark}", (prefix,)
    # The next code point, stepping over the surrogates, which are not text.
    following = 0xE000 if 0xD7FF <= last < 0xE000 else last + 1
    upper = prefix[:-1] + chr(following)
    return f"{column} >= {mark} AND {column} < {mark}", (prefix, upper)
