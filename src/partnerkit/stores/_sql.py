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
import logging
import textwrap
import types
import typing
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn, Protocol

import attrs

from partnerkit._build import unfrozen_twin
from partnerkit.audit import AuditChainBroken, AuditEvent
from partnerkit.errors import Conflict, PartnerKitError, ValidationError
from partnerkit.ports import CREDENTIALS, MAX_AUDIT_RANGE, Table, never_stored

__all__ = [
    "AUDIT_COLUMNS",
    "MAX_TIMEOUT",
    "Codec",
    "TableSQL",
    "audit_range_params",
    "audit_range_query",
    "audit_range_rows",
    "audit_range_sql",
    "chain_head",
    "check_appendable",
    "check_audit_range",
    "check_search",
    "check_search_cursor",
    "check_timeout",
    "customer_search",
    "ddl",
    "decode_events",
    "fakes_text",
    "indexes",
    "key_of",
    "log_migrated",
    "migrate_forward",
    "newer_schema",
    "prefix_range",
    "relation_search",
    "stored_version",
    "table_codec",
    "unheld_version",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Times are kept as whole microseconds since the epoch. ``_MICROSECOND * n`` makes the same
# exact timedelta as ``timedelta(microseconds=n)`` in about half the time (the constructor
# takes its arguments apart as numbers of any kind), which every row with a time pays.
_MICROSECOND = timedelta(microseconds=1)
Encoder = Callable[[Any], Any]


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _enc_datetime(value: datetime) -> int:
    return _us(value - _EPOCH)


def _dec_datetime(value: int) -> datetime:
    return _EPOCH + _MICROSECOND * value


def _jsonable(value: Any) -> Any:
    if value.__class__ in _JSON_ATOMS:
        return value
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


@functools.cache
def _json_reader(hint: Any) -> Encoder:
    """Return the function that rebuilds a value of type *hint* from its JSON form (``None``
    stays ``None`` at every level). Built once per type: the type is inspected here, not on
    every row."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return _json_reader(next(a for a in args if a is not type(None)))
    if origin is frozenset:
        item = _json_reader(args[0])
        return _opt(lambda value: frozenset([item(v) for v in value]))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            each = _json_reader(args[0])
            return _opt(lambda value: tuple([each(v) for v in value]))
        readers = [_json_reader(a) for a in args]
        return _opt(lambda value: tuple([r(v) for r, v in zip(readers, value, strict=True)]))
    if isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return _opt(hint)
        if hint is datetime:
            return _opt(_dec_datetime)
        if hint is timedelta:
            return _opt(_dec_timedelta)
        if attrs.has(hint):
            return _attrs_reader(hint)
    return _identity


def _attrs_reader(cls: type[Any]) -> Encoder:
    hints = typing.get_type_hints(cls)
    readers = {f.name: _json_reader(hints[f.name]) for f in attrs.fields(cls)}
    setters = [(name, _setter(cls, name), read) for name, read in readers.items()]

    def read(value: Any) -> Any:
        if value is None:
            return None
        if value.keys() != readers.keys():
            # Not the shape this code writes: let the class's own __init__ judge it.
            return cls(**{k: readers[k](v) for k, v in value.items()})
        # As for rows (see Codec.decode): what the store wrote is not validated again.
        obj = _new(cls)
        for name, set_field, field_reader in setters:
            set_field(obj, field_reader(value[name]))
        return obj

    return read


def _setter(cls: type[Any], name: str) -> Callable[[Any, Any], None]:
    """Return ``set(obj, value)`` for field *name* of *cls*, bypassing a frozen class's
    ``__setattr__``: the slot's own descriptor for a slotted class (the fastest way in)."""
    for klass in cls.__mro__:
        slot = klass.__dict__.get(name)
        if isinstance(slot, types.MemberDescriptorType):
            setter: Callable[[Any, Any], None] = slot.__set__
            return setter
    return functools.partial(_set_named, name=name)


def _set_named(obj: Any, value: Any, *, name: str) -> None:
    _set(obj, name, value)


#: A decoder builds each object as its class's twin (shared with the builders of
#: ``partnerkit._build``), with plain attribute stores, at a slot's own speed: about a third
#: of the time of going round a frozen class's ``__setattr__``, eight fields or so a row,
#: fifty rows a page. It then gives the object its own class back.
_unfrozen_twin = unfrozen_twin


#: Values JSON takes as they are (``bool`` is its own class, so it is listed too).
_JSON_ATOMS = frozenset({str, int, float, bool, type(None)})
# One encoder, made once (json.dumps with options builds a new one on every call); the same
# text as ``json.dumps(value, sort_keys=True, separators=(",", ":"))``.
_JSON_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


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
    #: For a JSON column, whether a value has the shape of its type, all the way down.
    shape: Callable[[Any], bool] | None = None


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
    reader = _json_reader(hint)

    def read_text(value: Any) -> Any:
        return reader(json.loads(value))

    from_text = _remembered(read_text) if _immutable(hint) else read_text
    return Column(
        name, "TEXT", nullable, _opt(_json_text(hint)), _opt(from_text), from_text, _shape(hint)
    )


@functools.cache
def _shape(hint: Any) -> Callable[[Any], bool]:
    """Return whether a value is of type *hint* as a JSON column keeps it, all the way down:
    what :func:`_json_reader` reads back must be what was written. The class of an object a
    caller built checks its values on construction, but not one set up around them: a
    number where a set of roles goes would be stored, and could not be read again. (Every
    write runs these: items are checked with ``map``, no frame per item but the check's.)"""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        options = [_shape(a) for a in args if a is not type(None)]
        nullable = len(options) < len(args)
        return lambda v: (nullable and v is None) or any(ok(v) for ok in options)
    if origin is frozenset:
        item = _shape(args[0])
        return lambda v: type(v) is frozenset and all(map(item, v))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = args[0]
            if item is str:  # ids: the texts checked at once
                return lambda v: type(v) is tuple and _all_text(v)
            inner = typing.get_args(item)
            if typing.get_origin(item) is tuple and inner and all(a is str for a in inner):
                return _texts_of_length(len(inner))  # an audit event's detail
            each = _shape(item)
            return lambda v: type(v) is tuple and all(map(each, v))
        parts = [_shape(a) for a in args]
        return lambda v: type(v) is tuple and len(v) == len(parts) and all(map(_fits, parts, v))
    if hint is str:
        return _is_text
    if hint is bool:
        return lambda v: type(v) is bool
    if hint is int:
        return lambda v: type(v) is int
    if hint is datetime:
        return lambda v: _time_problem(v) is None
    if hint is timedelta:
        return lambda v: type(v) is timedelta
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return lambda v: type(v) is hint
    if isinstance(hint, type) and attrs.has(hint):
        hints = typing.get_type_hints(hint)
        fields = [(f.name, _shape(hints[f.name])) for f in attrs.fields(hint)]
        return lambda v: issubclass(type(v), hint) and all(ok(getattr(v, n)) for n, ok in fields)
    return lambda v: True  # a type this module does not take apart: the encoder judges


def _is_text(value: Any) -> bool:
    """Whether *value* is text a store keeps (plain ASCII without a NUL, at once)."""
    if type(value) is str and value.isascii() and "\x00" not in value:
        return True
    return _text_problem(value) is None


def _all_text(values: Sequence[Any]) -> bool:
    """Whether every one of *values* is text a store keeps: joined and looked at once."""
    try:
        joined = "".join(values)
    except TypeError:
        return False  # one is not text
    if joined.isascii() and "\x00" not in joined:
        return True
    return all(_text_problem(v) is None for v in values)


def _texts_of_length(n: int) -> Callable[[Any], bool]:
    """The check of a tuple of tuples of *n* texts: the tuples looked at in one loop, and
    their texts joined and looked at once (every audit event's detail runs it)."""

    def check(value: Any) -> bool:
        if type(value) is not tuple:
            return False
        texts: list[Any] = []
        for each in value:
            if type(each) is not tuple or len(each) != n:
                return False
            texts += each
        return _all_text(texts)

    return check


def _fits(shape: Callable[[Any], bool], value: Any) -> bool:
    return shape(value)


def _json_text(hint: Any) -> Encoder:
    """Return the function that writes a value of type *hint* as its JSON text: that of
    :func:`_jsonable`'s form, without walking a value that JSON takes as it is."""
    write = _json_writer(hint)
    if write is None:
        return _JSON_ENCODE
    return lambda value: _JSON_ENCODE(write(value))


@functools.cache
def _json_writer(hint: Any) -> Encoder | None:
    """Return the function that turns a value of type *hint* into what JSON takes (as
    :func:`_jsonable` does), or ``None`` where the value is that already: text, numbers,
    and tuples of those (the encoder writes a tuple as an array). Built once per type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint in _JSON_ATOMS or (origin is Literal and all(a.__class__ in _JSON_ATOMS for a in args)):
        return None
    if origin is tuple:
        items = [_json_writer(a) for a in args if a is not Ellipsis]
        if all(item is None for item in items):
            return None
    return _jsonable


#: How many texts each JSON column remembers the value of (see :func:`_remembered`).
_REMEMBERED = 512


def _remembered(from_text: Encoder) -> Encoder:
    """*from_text*, remembering the value of the last texts it read.

    Only for a column whose values are immutable (:func:`_immutable`), so that two rows
    may share one: the value is a function of the text alone, and nothing can change it
    afterwards. The rows that repeat a JSON text are the ones read most (a partner's
    contact, read with its company by every use case its users run: about 3 µs each). At
    most :data:`_REMEMBERED` texts are kept; then the memory starts over (one ``dict``, no
    lock: its ``get``, setting an item and ``clear`` are each atomic).
    """
    seen: dict[str, Any] = {}

    def remembered(text: Any) -> Any:
        value = seen.get(text, seen)
        if value is seen:
            value = from_text(text)
            if len(seen) >= _REMEMBERED:
                seen.clear()
            seen[text] = value
        return value

    return remembered


def _immutable(hint: Any) -> bool:
    """Whether every value of type *hint* is immutable, all the way down: atoms, enums,
    tuples and frozensets of those, and frozen attrs classes whose fields all are."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return all(_immutable(a) for a in args)
    if origin is Literal:
        return True
    if origin in (tuple, frozenset):
        return all(a is Ellipsis or _immutable(a) for a in args)
    if not isinstance(hint, type) or origin is not None:
        return False
    if hint in (str, int, bool, float, type(None), datetime, timedelta):
        return True
    if issubclass(hint, enum.Enum):
        return True
    if attrs.has(hint):
        hints = typing.get_type_hints(hint)
        return _frozen(hint) and all(_immutable(hints[f.name]) for f in attrs.fields(hint))
    return False


def _frozen(cls: type[Any]) -> bool:
    """Whether instances of the attrs class *cls* refuse to have a field set (anything
    else it may do, such as a validator run on setting, counts as not frozen)."""
    probe = _new(cls)
    try:
        setattr(probe, attrs.fields(cls)[0].name, None)
    except attrs.exceptions.FrozenInstanceError:
        return True
    except Exception:  # not known to be frozen: its values are never shared
        return False
    return False


def _dec_timedelta(value: int) -> timedelta:
    return _MICROSECOND * value


_new: Any = object.__new__
_set = object.__setattr__  # frozen attrs classes refuse their own __setattr__


def _identity(value: Any) -> Any:
    return value


def _opt(fn: Encoder) -> Encoder:
    def convert(value: Any) -> Any:
        return None if value is None else fn(value)

    return convert


class _Encode(Protocol):
    def __call__(self, obj: Any, computed: Sequence[Any] = ()) -> list[Any]: ...


class Codec:
    """Converts objects of one attrs class to rows and back."""

    #: Return the row values of an object, in the order of :meth:`names`: its fields, then
    #: the *computed* values given.
    encode: _Encode
    #: Refuse an object with a value no store keeps as it is given: text with a NUL or a
    #: lone surrogate (PostgreSQL and the UTF-8 encoders refuse them), a whole number
    #: outside 64 bits, a flag that is not a bool, a naive time, a value of the wrong type.
    #: Every store runs it before it writes, so that all of them refuse the same objects
    #: with the same ``ValidationError`` (on ``"store"``). What the class's own checks
    #: refuse never gets here; this is for objects set up around them.
    check: Callable[[Any], None]
    #: Build the object from the first ``len(fields)`` values of a row.
    #:
    #: A stored row was validated when it was written, and the database's own constraints
    #: (types, ``CHECK``) keep it so; it is not validated again on every read, which would
    #: cost more than the read itself. The object is built the way its ``__init__`` would,
    #: field by field, without the validators.
    decode: Callable[[Sequence[Any]], Any]
    #: :attr:`decode` each of *rows*, in order, leaving out a row whose first value (the
    #: key) is ``NULL``: a ``LEFT JOIN`` that found no object. One call for a page of rows.
    decode_rows: Callable[[Iterable[Sequence[Any]]], list[Any]]

    def __init__(self, cls: type[Any], computed: Sequence[str] = ()) -> None:
        hints = typing.get_type_hints(cls)
        self.cls = cls
        self.fields = [f.name for f in attrs.fields(cls)]
        self.columns = [_column(name, hints[name]) for name in self.fields]
        self.by_name = {c.name: c for c in self.columns}
        for name in computed:
            self.by_name[name] = Column(name, "TEXT", True, _identity, _identity)
        self.computed = list(computed)
        #: What a value must be for a column to hold it, for the columns reads look up by:
        #: text (``str``) where text is kept, the enum's own member where an enum is.
        self._holds: dict[str, type[Any]] = {
            c.name: c.raw if isinstance(c.raw, type) and issubclass(c.raw, enum.Enum) else str
            for c in self.by_name.values()
            if c.sql_type == "TEXT" and (c.raw is None or isinstance(c.raw, type))
        }
        self.encode = _compile_encoder(cls, self.columns)
        self.decode, self.decode_rows = _compile_decoder(cls, self.columns)
        self.check = _compile_checker(cls, self.columns)

    def names(self) -> list[str]:
        """Every column name, fields first, then computed columns."""
        return [*self.fields, *self.computed]

    def encode_value(self, column: str, value: Any) -> Any:
        """Encode one value for a ``WHERE`` clause on *column*.

        Raises:
            Unheld: *value* is of a kind the column never holds (a number or bytes where
                text is kept, text where an enum is): the read finds nothing.
        """
        kind = self._holds.get(column)
        if kind is not None and value is not None and not isinstance(value, kind):
            raise Unheld(column)
        return self.by_name[column].encode(value)

    def row(self, obj: Any, computed: Sequence[Callable[[Any], Any]] = ()) -> list[Any]:
        """:attr:`check`, then the values of the *computed* columns (functions of *obj*),
        then :attr:`encode`; a value that fails on the way all the same is a
        ``ValidationError`` on ``"store"`` too, never the conversion's own error."""
        self.check(obj)
        try:
            return self.encode(obj, [compute(obj) for compute in computed])
        except PartnerKitError:
            raise
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise ValidationError(
                "store",
                f"a {self.cls.__name__} holds a value its columns cannot take "
                f"({exc.__class__.__name__})",
            ) from None


# Rows are encoded and decoded on every statement, so each codec compiles two small
# functions for its class, one statement per column, with the conversions of the column
# types inlined: no loop over columns, no lookup of a field by name, no type dispatch per
# value. They do exactly what a loop calling each Column's encode and decode would do.


def _compile_encoder(cls: type[Any], columns: Sequence[Column]) -> _Encode:
    env: dict[str, Any] = {}
    values = []
    for i, column in enumerate(columns):
        if column.encode is _identity:
            values.append(f"obj.{column.name}")
        else:
            env[f"e{i}"] = column.encode
            values.append(f"e{i}(obj.{column.name})")
    source = f"def encode(obj, computed=()):\n    return [{', '.join([*values, '*computed'])}]\n"
    encode: _Encode = _compile(source, env, f"encode {cls.__qualname__}")["encode"]
    return encode


#: The bounds of a 64-bit column (SQLite's INTEGER, PostgreSQL's BIGINT).
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: A timedelta is kept in microseconds, in 64 bits: this many days and no more.
_MAX_SPAN_DAYS = _INT64_MAX // 86_400_000_000 - 1


def _text_problem(value: object) -> str | None:
    """What is wrong with a text column's value that no store keeps as given, or ``None``."""
    if not issubclass(type(value), str):  # by its type: a __class__ property can claim str
        return "is not text"
    value = str.__str__(value)  # of a subclass, its text: none of its own methods run
    if "\x00" in value:
        return "holds a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate"
    return None


def _time_problem(value: object) -> str | None:
    if not issubclass(type(value), datetime) or datetime.utcoffset(value) is None:  # type: ignore[arg-type]
        return "is not an aware time"
    return None


def _refuse_if(cls: type[Any], name: str, why: str | None) -> None:
    if why is not None:
        _refuse(cls, name, why)


def _refuse(cls: type[Any], name: str, why: str) -> NoReturn:
    raise ValidationError("store", f"{cls.__name__}.{name} {why}: no store keeps it")


def _compile_checker(cls: type[Any], columns: Sequence[Column]) -> Callable[[Any], None]:
    """``check(obj)`` for :attr:`Codec.check`, one test per column, written out once.

    Each test is one ``if`` whose usual answer is decided by a class comparison and a C
    call or two (plain ASCII text without a NUL, a time in UTC, an int of 64 bits); only a
    value that fails it is looked at closely, and only one that is really wrong refused.
    """
    env: dict[str, Any] = {
        "cls": cls,
        "refuse": _refuse,
        "refuse_if": _refuse_if,
        "text": _text_problem,
        "time": _time_problem,
        "UTC": UTC,
        "dt": datetime,
        "td": timedelta,
        "lo": _INT64_MIN,
        "hi": _INT64_MAX,
        "days": _MAX_SPAN_DAYS,
    }
    lines = ["def check(obj):"]
    for i, column in enumerate(columns):
        name, raw = column.name, column.raw
        quoted = repr(name)
        if column.sql_type == "TEXT" and column.encode is _identity:
            odd = "type(v) is not str or not v.isascii() or '\\x00' in v"
            act = f"refuse_if(cls, {quoted}, text(v))"
        elif raw is bool:
            odd = "type(v) is not bool"
            act = f"refuse(cls, {quoted}, 'is not True or False')"
        elif column.sql_type == "BIGINT" and column.encode is _identity:
            odd = "type(v) is not int or not lo <= v <= hi"
            act = f"refuse(cls, {quoted}, 'is not a whole number of 64 bits')"
        elif raw is _dec_datetime:
            odd = "type(v) is not dt or v.tzinfo is not UTC"
            act = f"refuse_if(cls, {quoted}, time(v))"
        elif raw is _dec_timedelta:
            odd = "type(v) is not td or not -days <= v.days <= days"
            act = f"refuse(cls, {quoted}, 'is not a time span of 64 bits of microseconds')"
        elif isinstance(raw, type) and issubclass(raw, enum.Enum):
            env[f"e{i}"] = raw
            odd = f"type(v) is not e{i}"
            act = f"refuse(cls, {quoted}, 'is not a {raw.__name__}')"
        elif column.shape is not None:
            env[f"j{i}"] = column.shape
            odd = f"not j{i}(v)"
            act = f"refuse(cls, {quoted}, 'is not of its type all the way down')"
        else:
            continue
        if column.nullable:
            odd = f"v is not None and ({odd})"
        lines += [f"    v = obj.{name}", f"    if {odd}:", f"        {act}"]
    lines.append("    return None")
    check: Callable[[Any], None] = _compile(
        "\n".join(lines) + "\n", env, f"check {cls.__qualname__}"
    )["check"]
    return check


def _compile_decoder(
    cls: type[Any], columns: Sequence[Column]
) -> tuple[Callable[[Sequence[Any]], Any], Callable[[Iterable[Sequence[Any]]], list[Any]]]:
    """``decode(row)`` and ``decode_rows(rows)`` for :class:`Codec`: the statements that
    build one object, written once into each (the second loops over its rows itself, with
    no call per row)."""
    twin = _unfrozen_twin(cls)
    env: dict[str, Any] = {
        "new": _new,
        "cls": cls,
        "twin": twin,
        "us": _MICROSECOND,
        "epoch": _EPOCH,
    }
    if twin is None:
        lines = ["    obj = new(cls)"]
    elif cls.__new__ is _new:
        # Called, the twin makes a bare instance as object.__new__ would (its __init__ is
        # object's: see _unfrozen_twin), for less than the call of object.__new__.
        lines = ["    obj = twin()"]
    else:  # a __new__ of its own is not run, as on every decode
        lines = ["    obj = new(twin)"]
    for i, column in enumerate(columns):
        if twin is None:
            env[f"s{i}"] = _setter(cls, column.name)
            store = f"s{i}(obj, {{}})"
        else:
            # Field names are those of our own attrs classes: identifiers.
            store = f"obj.{column.name} = {{}}"
        raw = column.raw
        if raw is None:
            lines.append("    " + store.format(f"row[{i}]"))
            continue
        lines.append(f"    v = row[{i}]")
        if raw is bool:
            value = "True if v else False"
        elif raw is _dec_datetime:
            value = "epoch + us * v"
        elif raw is _dec_timedelta:
            value = "us * v"
        elif isinstance(raw, type) and issubclass(raw, enum.Enum):
            # The member by its value from a dict, and the enum's own lookup (with its
            # error) for anything else.
            env[f"m{i}"] = {member.value: member for member in raw}
            env[f"c{i}"] = functools.partial(_stored_member, raw, f"{cls.__name__}.{column.name}")
            lines += [
                "    if v is not None:",
                "        try:",
                f"            v = m{i}[v]",
                "        except (KeyError, TypeError):",
                f"            v = c{i}(v)",
                "    " + store.format("v"),
            ]
            continue
        else:
            env[f"c{i}"] = raw
            value = f"c{i}(v)"
        lines.append("    " + store.format(f"None if v is None else {value}"))
    if twin is not None:
        lines.append("    obj.__class__ = cls")
    body = "\n".join(lines)
    source = "\n".join(
        [
            "def decode(row):",
            body,
            "    return obj",
            "def decode_rows(rows):",
            "    found = []",
            "    keep = found.append",
            "    for row in rows:",
            "        if row[0] is None:",
            "            continue",
            textwrap.indent(body, "    "),
            "        keep(obj)",
            "    return found",
        ]
    )
    compiled = _compile(source + "\n", env, f"decode {cls.__qualname__}")
    return compiled["decode"], compiled["decode_rows"]


def _stored_member(enum_class: type[enum.Enum], column: str, value: object) -> enum.Enum:
    """The member a stored *value* names (by the enum's own lookup); a value that names
    none (a row written by something else than partnerkit) is a storage error that says
    where, not the enum's ``ValueError``."""
    try:
        return enum_class(value)
    except ValueError:
        raise PartnerKitError(
            f"storage error: {column} holds {str(value)[:40]!r}, no {enum_class.__name__}"
        ) from None


def _compile(source: str, env: dict[str, Any], label: str) -> dict[str, Any]:
    namespace = dict(env)
    code = compile(source, f"<partnerkit codec: {label}>", "exec")
    # The source is made above from the field names of our own attrs classes, nothing else.
    exec(code, namespace)  # noqa: S102
    return namespace


#: The longest ``timeout`` a SQL store takes, in seconds: SQLite's busy timeout and
#: PostgreSQL's ``lock_timeout`` are kept in milliseconds, in 32 bits.
MAX_TIMEOUT = 2_147_483


def check_timeout(value: object, *, zero: bool) -> None:
    """Refuse a store's ``timeout`` that is not a number of seconds up to :data:`MAX_TIMEOUT`,
    above 0 (or 0 itself, where *zero* is allowed: "do not wait")."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not (value >= 0 if zero else value > 0)
        or not value <= MAX_TIMEOUT
    ):
        least = "from 0" if zero else "above 0"
        raise ValidationError("timeout", f"must be seconds {least}, at most {MAX_TIMEOUT:,}")


def table_codec(table: Table[Any]) -> Codec:
    """Return the codec of a port table (one per class and computed columns: a codec is
    never changed once made, so every store shares it)."""
    key = (table.cls, tuple(table.computed))
    codec = _CODECS.get(key)
    if codec is None:
        codec = _CODECS.setdefault(key, Codec(*key))
    return codec


_CODECS: dict[tuple[type[Any], tuple[str, ...]], Codec] = {}


AUDIT_COLUMNS = Codec(AuditEvent)


#: Columns added after the first schema version, by the version that adds them. The tables of
#: version 1 are created without them, and the migration to that version adds them, so that
#: every file and database goes through the same steps whatever version it starts from.
ADDED_COLUMNS: Mapping[int, tuple[tuple[str, str], ...]] = {
    2: (("customer_relations", "delegation_id"),),
    3: (("customer_relations", "delegation_ends_at"),),
    5: (("delegations", "accepted_at"), ("delegations", "accepted_by")),
    6: (("credentials", "delegation_id"),),
}


def migrate_forward(
    current: int,
    migrations: Sequence[Sequence[str | Callable[[Any], None]]],
    target: Any,
    execute: Callable[[str], object],
    record: Callable[[int], object],
) -> int:
    """Bring a schema at version *current* up to ``len(migrations)``, inside the caller's
    transaction: each version's steps (a statement for *execute*, or a function called with
    *target*), then *record* of the version reached. A schema newer than every migration
    here is refused: an older partnerkit must not write to it. Returns *current*, for
    :func:`log_migrated` once the caller has committed."""
    newest = len(migrations)
    if type(current) is not int or current < 0:
        raise PartnerKitError(f"no schema version: {current!r}")
    if current > newest:
        raise PartnerKitError(
            f"the database schema is version {current}, newer than this "
            f"partnerkit knows ({newest}); upgrade partnerkit"
        )
    for version in range(current, newest):
        for step in migrations[version]:
            if callable(step):
                step(target)
            else:
                execute(step)
        record(version + 1)
    return current


def stored_version(value: object, where: str) -> int:
    """The schema version that ``max(version)`` of a ``schema_version`` table read as
    *value* (``None``: no row yet, a new schema). Anything but a whole number from 1 is no
    version of partnerkit's: a table of that name another application keeps (with text
    versions, or a 0) is refused, not taken for a schema to skip or to write into."""
    if value is None:
        return 0
    if type(value) is not int or value < 1:
        raise PartnerKitError(
            f"{where} schema_version table holds {str(value)[:40]!r}, "
            "not a partnerkit schema version"
        )
    return value


def newer_schema(found: int, known: int) -> PartnerKitError:
    """What a write of an older partnerkit meets in a database a newer one migrated while it
    ran (its rows would lack what the new schema adds, and read as less than they are)."""
    return PartnerKitError(
        f"the database was migrated to schema version {found} by a newer partnerkit while "
        f"this process (schema version {known}) ran; it writes nothing more: upgrade it "
        "(stop every older app server before the first upgraded one starts)"
    )


def log_migrated(log: logging.Logger, store: object, found: int, reached: int) -> None:
    """Tell the operators (at ``INFO``) that *store*'s schema was created or migrated, once
    it is committed; nothing when it was current already."""
    if found == reached:
        return
    if found == 0:
        log.info("%r: created the schema (version %d)", store, reached)
    else:
        log.info("%r: migrated the schema from version %d to %d", store, found, reached)


def columns_added_later(table: str) -> frozenset[str]:
    """The columns of *table* that a migration after version 1 adds."""
    return frozenset(c for added in ADDED_COLUMNS.values() for t, c in added if t == table)


def _sql_type(col: Column, text_key: str, integer: str) -> str:
    sql_type = col.sql_type if col.sql_type != "BIGINT" else integer
    return sql_type if sql_type != "TEXT" else text_key


def add_columns(
    version: int, tables: Mapping[str, Codec], *, text_key: str = "TEXT", integer: str = "BIGINT"
) -> list[str]:
    """Return the statements that add the columns of schema *version* (all nullable)."""
    stmts = []
    for table, name in ADDED_COLUMNS.get(version, ()):
        col = tables[table].by_name[name]
        if not col.nullable:
            raise ValueError(f"{table}.{name}: a column added later must be nullable")
        stmts.append(f"ALTER TABLE {table} ADD COLUMN {name} {_sql_type(col, text_key, integer)}")
    return stmts


#: Schema version 2 fills the new ``customer_relations.delegation_id`` from the delegations:
#: the active one of each partner and customer. Several may be stored as active (one past
#: its end date, and the one accepted after it ended): the one that lasts longest (no end
#: date, else the latest) is the one accepted last. (Version 2 as first released took the
#: least id; version 3 runs this again to repair what that chose.)
BACKFILL_V2 = (
    "UPDATE customer_relations SET delegation_id = ("
    "SELECT d.id FROM delegations d WHERE d.partner_id = customer_relations.partner_id "
    "AND d.customer_id = customer_relations.customer_id AND d.status = 'active' "
    "ORDER BY (d.ends_at IS NULL) DESC, d.ends_at DESC, d.id LIMIT 1)"
)


#: Schema version 3 names the right delegation on each relation again (see
#: :data:`BACKFILL_V2`), fills the new ``customer_relations.delegation_ends_at`` from it,
#: and sets ``advises`` from the subscriptions: before version 3, a partner whose trial
#: another partner converted stayed marked as advisor.
BACKFILL_V3 = (
    BACKFILL_V2,
    "UPDATE customer_relations SET delegation_ends_at = ("
    "SELECT d.ends_at FROM delegations d WHERE d.id = customer_relations.delegation_id) "
    "WHERE delegation_id IS NOT NULL",
    "UPDATE customer_relations SET advises = CASE WHEN EXISTS (SELECT 1 FROM subscriptions s "
    "WHERE s.customer_id = customer_relations.customer_id "
    "AND s.partner_id = customer_relations.partner_id) THEN 1 ELSE 0 END",
)


#: Schema version 5 keeps a delegation's acceptance apart from its last decision: an active
#: one's decision is its acceptance. (One revoked or ended before version 5 had its acceptance
#: overwritten; its new columns stay empty, and the customer's audit trail has it.)
BACKFILL_V5 = (
    "UPDATE delegations SET accepted_at = decided_at, accepted_by = decided_by "
    "WHERE status = 'active'"
)

#: Schema version 6 ties a temporary password a partner's user set to the delegation it was
#: set through. One set before it is tied to the delegation of that partner and customer
#: that is active now, if that was accepted before the reset (the consent the reset was
#: made under), in the trail's order: the ``delegation.accept`` event before the user's
#: last ``user.reset_password`` (app servers' clocks may disagree, the trail's order does
#: not). Any other set by a partner's user keeps ``NULL``, and so no longer signs in (it
#: was made under a consent since revoked or ended); one set within the company keeps
#: ``NULL`` too, which is what it means.
BACKFILL_V6 = (
    "WITH reset AS (SELECT target_id AS user_id, max(seq) AS seq FROM audit_events "
    "WHERE action = 'user.reset_password' AND outcome = 'success' GROUP BY target_id), "
    "accepted AS (SELECT delegation_id, max(seq) AS seq FROM audit_events "
    "WHERE action = 'delegation.accept' AND outcome = 'success' "
    "AND delegation_id IS NOT NULL GROUP BY delegation_id) "
    "UPDATE credentials SET delegation_id = ("
    "SELECT d.id FROM users u "
    "JOIN customer_relations r ON r.partner_id = u.company_id "
    "AND r.customer_id = credentials.company_id "
    "JOIN delegations d ON d.id = r.delegation_id "
    "JOIN accepted a ON a.delegation_id = d.id "
    "JOIN reset s ON s.user_id = credentials.id "
    "WHERE u.id = credentials.set_by AND u.company_id <> credentials.company_id "
    "AND d.status = 'active' AND a.seq < s.seq)"
)

#: Version 6 also forgets the temporary passwords that the code of version 6 would have
#: forgotten when a role changed: those whose setter, or whose user, had roles assigned
#: after the reset that set them (the trail's ``user.assign_roles`` events, after the user's
#: last ``user.reset_password``, in the trail's order: app servers' clocks may disagree).
#: Before version 6 such a password signed in again once the role was given back. It errs
#: on the safe side: some are forgotten that the code would have kept (after an assignment
#: that changed nothing, or left the user within its setter's reach), which a new reset
#: mends. Two passes over the trail, each grouped by user.
VOID_V6 = (
    "WITH reset AS (SELECT target_id AS user_id, max(seq) AS seq FROM audit_events "
    "WHERE action = 'user.reset_password' AND outcome = 'success' GROUP BY target_id), "
    "changed AS (SELECT target_id AS user_id, max(seq) AS seq FROM audit_events "
    "WHERE action = 'user.assign_roles' AND outcome = 'success' GROUP BY target_id) "
    "DELETE FROM credentials WHERE id IN ("
    "SELECT c.id FROM credentials c JOIN reset r ON r.user_id = c.id "
    "JOIN changed g ON (g.user_id = c.id OR g.user_id = c.set_by) AND g.seq > r.seq)"
)

#: Version 6 withdraws the open offers whose link was revoked before it (since, revoking an
#: offer's link withdraws the offer: an offer left open behind a dead link could be
#: superseded into a new one).
WITHDRAW_V6 = (
    "UPDATE purchase_offers SET status = 'withdrawn', version = version + 1 "
    "WHERE status = 'open' AND link_id IN (SELECT id FROM links WHERE revoked_at IS NOT NULL)"
)


def schema_v6(added: Sequence[str]) -> list[str]:
    """The steps of schema version 6, after *added* (its column, in the store's types): a
    temporary password tied to the delegation it was set through, the credentials found
    by their setter (whose change of roles forgets them), those a change of roles before
    it would have forgotten gone, and open offers behind revoked links withdrawn."""
    return [*added, BACKFILL_V6, *indexes(CREDENTIALS), VOID_V6, WITHDRAW_V6]


#: The relations whose search name may be stale: of customers renamed before version 3
#: (before it, a relation kept the case-folded name the customer had when it was made). SQL's
#: ``lower`` is not Python's ``casefold``, so this only narrows the rows down (every renamed
#: one is among them) and :func:`rekey_renamed` compares them exactly.
_MAYBE_RENAMED = (
    "SELECT r.id, r.name_key, c.name FROM customer_relations r "
    "JOIN companies c ON c.id = r.customer_id WHERE r.name_key <> lower(c.name)"
)


def rekey_renamed(
    fetchall: Callable[[str], Sequence[Sequence[Any]]],
    executemany: Callable[[str, list[tuple[Any, ...]]], None],
    mark: str = "?",
) -> int:
    """Give every relation the search name of its customer's current name (a step of the
    migration to version 3, run inside it); return how many changed."""
    stale = [
        (name.casefold(), ident)
        for ident, name_key, name in fetchall(_MAYBE_RENAMED)
        if name.casefold() != name_key
    ]
    if stale:
        executemany(
            f"UPDATE customer_relations SET name_key = {mark}, version = version + 1 "
            f"WHERE id = {mark}",
            stale,
        )
    return len(stale)


def ddl(
    table: Table[Any],
    codec: Codec,
    *,
    text_key: str = "TEXT",
    integer: str = "BIGINT",
    suffix: str = "",
    omit: Collection[str] = (),
) -> list[str]:
    """Return the statements that create *table* and its indexes (without the *omit*
    columns, which a later migration adds)."""
    cols = []
    for name in codec.names():
        if name in omit:
            continue
        col = codec.by_name[name]
        sql_type = col.sql_type if col.sql_type != "BIGINT" else integer
        if name == "id":
            cols.append(f"id {text_key} PRIMARY KEY")
            continue
        null = "" if col.nullable else " NOT NULL"
        cols.append(f"{name} {sql_type if sql_type != 'TEXT' else text_key}{null}")
    cols.extend(f"CHECK ({check})" for check in table.checks)
    body = ",\n  ".join(cols)
    return [f"CREATE TABLE IF NOT EXISTS {table.name} (\n  {body}\n){suffix}", *indexes(table)]


def indexes(table: Table[Any]) -> list[str]:
    """The statements that create *table*'s indexes, each if it does not exist yet (a
    migration that adds one runs them all)."""
    stmts = []
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


def page_indexes(table: Table[Any]) -> list[str]:
    """The statements that create, for each lookup *table* lists a page at a time
    (``Table.pages``), an index ending in the key, where :func:`ddl` made none: one whose
    equality a longer index serves reads its rows in that index's order, not the key's."""
    stmts = []
    for group in table.pages:
        if group in table.indexes and not _served_by_longer(group, table):
            continue  # its own index already ends in the key
        name = f"{table.name}_pg_{'_'.join(group)}"
        stmts.append(f"CREATE INDEX IF NOT EXISTS {name} ON {table.name} ({', '.join(group)}, id)")
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
        #: ``find_page``'s statements of each lookup: from the first row, and after a key.
        self.pages: dict[frozenset[str], tuple[str, str]] = {}
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
            self.pages[frozenset(group)] = page_statements(cols, name, where, mark)


def page_statements(cols: str, table: str, where: str, mark: str) -> tuple[str, str]:
    """``find_page``'s two statements for a lookup's *where*: its first rows in key order,
    and its rows after a key; the key, when given, then the limit are their last
    parameters."""
    return (
        f"SELECT {cols} FROM {table} WHERE {where} ORDER BY id LIMIT {mark}",
        f"SELECT {cols} FROM {table} WHERE {where} AND id > {mark} ORDER BY id LIMIT {mark}",
    )


@attrs.frozen
class UpdatePlan:
    """Two ways to write an object back over its stored row, for a store whose engine
    rewrites an index entry whenever its column is assigned, changed or not (SQLite).

    *narrow* assigns only the columns that no index covers, and holds the row to the
    object's values of the others in its ``WHERE``: when none of those changed, the row's
    indexes are not touched at all. *full* assigns every column but the key. Each takes
    ``row[i] for i in assigned``, then the key and the stored version, then (for *narrow*)
    ``row[i] for i in held``, where *row* is the object's full row (``Codec.names`` order).
    """

    narrow: str
    assigned: tuple[int, ...]
    held: tuple[int, ...]
    full: str
    all_but_key: tuple[int, ...]

    @classmethod
    def of(cls, table: Table[Any], codec: Codec) -> UpdatePlan:
        """The plan for *table*."""
        names = codec.names()
        indexed = {"id", *(c for group in table.lookups() for c in group)}
        assigned = tuple(i for i, n in enumerate(names) if n not in indexed)
        held = tuple(i for i, n in enumerate(names) if n in indexed and n != "id")
        all_but_key = tuple(i for i, n in enumerate(names) if n != "id")
        where = "WHERE id = ? AND version = ?"
        held_where = "".join(f" AND {names[i]} IS ?" for i in held)
        return cls(
            narrow=f"UPDATE {table.name} SET {_assign(names, assigned)} {where}{held_where}",
            assigned=assigned,
            held=held,
            full=f"UPDATE {table.name} SET {_assign(names, all_but_key)} {where}",
            all_but_key=all_but_key,
        )


def _assign(names: Sequence[str], indices: Sequence[int]) -> str:
    return ", ".join(f"{names[i]} = ?" for i in indices)


class Unheld(Exception):
    """A read asks by a value of a kind its column never holds: it finds nothing, on every
    store (``MemoryStore`` compares the value with what it keeps, and nothing is equal)."""


def fakes_text(value: object) -> bool:
    """Whether *value* claims to be text (``isinstance`` says so, through a ``__class__``
    property) without being any: it names no row, and a driver cannot bind it."""
    return isinstance(value, str) and not issubclass(type(value), str)


def unheld_version(value: object) -> bool:
    """Whether *value* cannot be any stored row's version: not a whole number of 64 bits
    (a ``remove`` naming it is stale, on every store, before the database is asked)."""
    return type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX


def unheld_key(value: object) -> bool:
    """Whether *value* cannot be any row's key: not text, or text no store keeps."""
    return not issubclass(type(value), str) or never_stored(value)


def chain_head(row: Sequence[Any] | None) -> tuple[int, str]:
    """The audit chain's head from its row, or ``AuditChainBroken`` when the row is missing
    or holds what no store writes there (it was edited behind the store's back)."""
    if row is None or len(row) != 2 or type(row[0]) is not int or type(row[1]) is not str:
        raise AuditChainBroken(0, "the chain head is missing or malformed")
    return row[0], row[1]


def decode_events(rows: Sequence[Sequence[Any]]) -> list[AuditEvent]:
    """The audit events of *rows*, or ``AuditChainBroken`` at the first row that cannot be
    an event (edited behind the store's back: a time that is not one, details that are not
    the pairs written, ...)."""
    decode = AUDIT_COLUMNS.decode
    events = []
    for row in rows:
        if type(row[0]) is not int:  # a number stored as text or a float, say
            raise AuditChainBroken(0, "a stored event's number is not a whole number")
        try:
            events.append(decode(row))
        except (TypeError, ValueError, KeyError, OverflowError, RecursionError) as exc:
            # RecursionError: details nested deeper than json can read.
            raise AuditChainBroken(row[0], "a stored event cannot be read") from exc
    return events


def check_appendable(event: AuditEvent, head: tuple[int, str]) -> None:
    """What every store checks of an audit event it is asked to append after *head*.

    Raises:
        Conflict: the event does not follow the head (another one was appended first).
        ValidationError: its time is not in UTC. Its hash covers the time as text, and the
            SQL stores give every time back in UTC: such an event would break the chain
            the moment it was read again.
    """
    seq, prev = head
    if event.seq != seq + 1 or event.prev_hash != prev:
        raise Conflict("audit event does not follow the chain head")
    at = event.at
    if not (type(at) is datetime and at.tzinfo is UTC) and (
        not issubclass(type(at), datetime) or datetime.utcoffset(at) != _NO_OFFSET
    ):
        raise ValidationError("at", "an audit event's time must be in UTC")


_NO_OFFSET = timedelta(0)


def check_search_cursor(after: tuple[str, str] | None) -> None:
    """Refuse a search cursor that no stored relation can have given: anything but a pair
    of texts, or one holding text no store keeps (see :func:`never_stored`). Every store
    refuses it alike, ``MemoryStore`` too (a cursor is a bound of a range, so unlike a key
    it cannot simply find nothing, and the SQL stores cannot take it as a parameter)."""
    if after is not None and (
        type(after) is not tuple
        or len(after) != 2
        or not all(type(part) is str for part in after)
        or any(never_stored(part) for part in after)
    ):
        raise ValidationError("after", "is not the cursor of a stored relation")


def check_search(
    partner_id: object,
    prefix: object,
    limit: object,
    after: tuple[str, str] | None,
    now: datetime | None,
) -> bool:
    """Judge the arguments of a customer search (``UnitOfWork.search_relations``) as every
    store does, before anything is read: whether anything can match at all (no relation
    is keyed on a partner id or starts with a prefix that is not text: nothing is found,
    as by any read), after a ``ValidationError`` for a *limit* that is not a whole number
    from 0 (of 64 bits), a cursor no page gave, or a *now* that is not an aware time."""
    if type(limit) is not int or not 0 <= limit <= _INT64_MAX:
        raise ValidationError("limit", "must be a whole number, 0 or more (64 bits)")
    check_search_cursor(after)
    if now is not None and (not isinstance(now, datetime) or now.utcoffset() is None):
        raise ValidationError("now", "must be an aware time or None")
    return issubclass(type(partner_id), str) and issubclass(type(prefix), str)


def check_audit_range(
    company_id: object, limit: object, above: object, below: object, newest_first: object
) -> bool:
    """Judge the arguments of ``UnitOfWork.audit_range`` as every store does, before
    anything is read: a ``ValidationError`` naming the first that is wrong, else whether any
    event can match (none is by or on a company named by what is not text, or by text no
    store keeps, and none lies in a range without a whole number in it)."""
    if type(limit) is not int or not 1 <= limit <= MAX_AUDIT_RANGE:
        raise ValidationError("limit", f"must be a whole number from 1 to {MAX_AUDIT_RANGE}")
    for name, bound in (("above", above), ("below", below)):
        if bound is not None and not (type(bound) is int and _INT64_MIN <= bound <= _INT64_MAX):
            raise ValidationError(name, "must be None or a whole number (64 bits)")
    if type(newest_first) is not bool:
        raise ValidationError("newest_first", "must be True or False")
    if company_id is not None and (
        not issubclass(type(company_id), str) or never_stored(company_id)
    ):
        return False
    if isinstance(above, int) and isinstance(below, int):
        return below > above + 1
    return True


def audit_range_sql(
    select: str, mark: str, company: bool, above: bool, below: bool, newest_first: bool
) -> str:
    """The statement of ``audit_range`` on a SQL store, *select* being its ``SELECT ...
    FROM audit_events``, with the bounds that are given; its parameters are those of
    :func:`audit_range_params`, and its rows go through :func:`audit_range_rows`.

    A company's events are those on it and those by it: two index ranges, on ``(company_id,
    seq)`` and ``(actor_company_id, seq)``, each read only up to the limit, in chain order.
    An event on the company by its own users is in both and comes twice, one row after the
    other; :func:`audit_range_rows` keeps it once. (Asking the second range for events by
    the company *on another* would read every event the company caused on itself, which
    no index holds apart, before the limit could stop it: a page newest first of a company
    with a long trail of its own took milliseconds a thousand events.)"""
    order = "DESC" if newest_first else ""
    bounds = "".join([f" AND seq > {mark}" if above else "", f" AND seq < {mark}" if below else ""])
    if not company:
        where = f" WHERE {bounds[5:]}" if bounds else ""
        return f"{select}{where} ORDER BY seq {order} LIMIT {mark}"
    sides = [
        f"SELECT * FROM ({select} WHERE {column} = {mark}{bounds} "
        f"ORDER BY seq {order} LIMIT {mark}) AS {name}"
        for column, name in (("company_id", "event_on"), ("actor_company_id", "event_by"))
    ]
    return f"{sides[0]} UNION ALL {sides[1]} ORDER BY seq {order}"


def audit_range_params(
    company_id: str | None, limit: int, above: int | None, below: int | None
) -> list[Any]:
    """The parameters of :func:`audit_range_sql`'s statement."""
    bounds = [bound for bound in (above, below) if bound is not None]
    if company_id is None:
        return [*bounds, limit]
    company = str.__str__(company_id)
    return [company, *bounds, limit, company, *bounds, limit]


def audit_range_query(
    select: str,
    mark: str,
    company_id: str | None,
    limit: int,
    above: int | None,
    below: int | None,
    newest_first: bool,
) -> tuple[str, list[Any]] | None:
    """The statement and parameters of ``audit_range`` on a SQL store (*select* its
    ``SELECT ... FROM audit_events``), after :func:`check_audit_range`; ``None`` when no
    event can match. Its rows go through :func:`audit_range_rows`."""
    if not check_audit_range(company_id, limit, above, below, newest_first):
        return None
    sql = audit_range_sql(
        select, mark, company_id is not None, above is not None, below is not None, newest_first
    )
    return sql, audit_range_params(company_id, limit, above, below)


def audit_range_rows(rows: Sequence[Sequence[Any]], limit: int) -> list[Sequence[Any]]:
    """The rows of :func:`audit_range_sql`'s statement, each event once, *limit* at most:
    an event in both of a company's ranges comes as two rows, one after the other."""
    kept: list[Sequence[Any]] = []
    last = None
    for row in rows:
        if row[0] != last:
            kept.append(row)
            if len(kept) == limit:
                break
            last = row[0]
    return kept


def prefix_range(column: str, prefix: str, mark: str = "?") -> tuple[str, tuple[str, ...]]:
    """Return a ``WHERE`` fragment matching *prefix* on *column* as an index range.

    ``LIKE`` would not use a binary-ordered index (and would treat ``%`` and ``_`` as
    wildcards); ``column >= prefix AND column < successor`` does, for any text.
    """
    if not prefix:
        return "1 = 1", ()
    upper = _successor(prefix)
    if upper is None:
        return f"{column} >= {mark}", (prefix,)
    return f"{column} >= {mark} AND {column} < {mark}", (prefix, upper)


def _successor(prefix: str) -> str | None:
    """The least text greater than every text that starts with *prefix* (``None``: none).

    The last code point of the prefix, plus one; trailing U+10FFFF have no successor, so the
    one before them is raised ("a\U0010ffff" is followed by "b"); a prefix of nothing else is
    followed by no text at all.
    """
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return None
    last = ord(stem[-1])
    # The next code point, stepping over the surrogates, which are not text.
    following = 0xE000 if 0xD7FF <= last < 0xE000 else last + 1
    return stem[:-1] + chr(following)


def relation_search(
    columns: Sequence[str],
    partner_id: str,
    prefix: str,
    limit: int,
    after: tuple[str, str] | None = None,
    mark: str = "?",
    now: datetime | None = None,
) -> tuple[str, list[Any]]:
    """Return the statement and parameters of one page of a partner's customer relations
    whose ``name_key`` or ``domain`` starts with *prefix* (see ``UnitOfWork.search_relations``),
    among those listed at *now* (:meth:`CustomerRelation.is_listed`).

    Rows are *columns* of ``customer_relations`` followed by the key each was found by, in
    order of ``(key, id)``, after the cursor *after*. One statement, two ranges: the names
    that match, on the ``(partner_id, name_key, id)`` index, and the domains that match where
    the name does not, on ``(partner_id, domain, id)``; each is read in index order, and the
    ``UNION ALL ... ORDER BY ... LIMIT`` merges them as they come (SQLite plans it as
    ``MERGE (UNION ALL)``), so each range is read only up to the page's end: no sort of all
    matches, at 10,000 customers or a million. A cursor moves the start of both ranges, so
    a deep page costs what the first one does.
    """
    params, upper = _search_params(partner_id, prefix, limit, after, now)
    sql = _relation_search_sql(
        tuple(columns), bool(prefix), upper, after is not None, mark, now is not None
    )
    return sql, params


def _search_params(
    partner_id: str,
    prefix: str,
    limit: int,
    after: tuple[str, str] | None,
    now: datetime | None,
) -> tuple[list[Any], bool]:
    """The parameters of a search statement, and whether its ranges have an upper bound
    (the arguments judged already, by :func:`check_search`)."""
    upper = _successor(prefix) if prefix else None
    # Every key on the page is at least the prefix and, after a cursor, its key.
    low = prefix if after is None else max(prefix, after[0])
    key_range: list[Any] = [partner_id]
    if prefix or after is not None:
        key_range.append(low)
    if upper is not None:
        key_range.append(upper)
    cursor = list(after) if after is not None else []
    listed = [] if now is None else [_enc_datetime(now)]
    params = [*key_range, *listed, *cursor]
    if prefix:
        # The domain side, for names that do not match (with the empty prefix, all do).
        params += [*key_range, prefix, *([] if upper is None else [upper]), *listed, *cursor]
    params.append(limit)
    return params, upper is not None


def listed_sql(mark: str, now: bool, table: str = "") -> str:
    """The ``WHERE`` condition of :meth:`CustomerRelation.is_listed`, with one parameter,
    the time (encoded), where *now* is true; *table* qualifies the columns (``"r."``)."""
    ends = (
        f"{table}delegation_ends_at IS NULL OR {table}delegation_ends_at > {mark}"
        if now
        else (f"{table}delegation_ends_at IS NULL")
    )
    return f"({table}advises = 1 OR ({table}delegation_id IS NOT NULL AND ({ends})))"


@functools.cache
def _relation_search_sql(
    columns: tuple[str, ...],
    prefix: bool,
    upper: bool,
    after: bool,
    mark: str,
    now: bool,
    companies: tuple[str, ...] = (),
) -> str:
    """The statement of :func:`relation_search`; with *companies*, of :func:`customer_search`
    (those columns of each relation's company, ``NULL`` where it has none, then the key and
    the relation's id): each side joins its own rows to the companies as it reads them, so
    the merge and the limit stay as they are, with no sort of the page after them."""
    r = "r." if companies else ""
    if companies:
        selected = ", ".join(f"c.{name}" for name in companies)
        source = "customer_relations r LEFT JOIN companies c ON c.id = r.customer_id"
        order = "search_key, relation_id"
    else:
        selected = ", ".join(columns)
        source = "customer_relations"
        order = "search_key, id"
    sides = []
    for column in ("name_key", "domain") if prefix else ("name_key",):
        where = [f"{r}partner_id = {mark}"]
        if prefix or after:
            where.append(f"{r}{column} >= {mark}")
        if upper:
            where.append(f"{r}{column} < {mark}")
        if column == "domain":
            where.append(
                f"NOT ({r}name_key >= {mark} AND {r}name_key < {mark})"
                if upper
                else f"NOT ({r}name_key >= {mark})"
            )
        where.append(listed_sql(mark, now, r))
        if after:
            where.append(f"({r}{column} > {mark} OR {r}id > {mark})")
        key = f"{r}{column} AS search_key"
        if companies:
            key += f", {r}id AS relation_id"
        sides.append(f"SELECT {selected}, {key} FROM {source} WHERE {' AND '.join(where)}")
    return f"{' UNION ALL '.join(sides)} ORDER BY {order} LIMIT {mark}"


def customer_search(
    columns: Sequence[str],
    partner_id: str,
    prefix: str,
    limit: int,
    after: tuple[str, str] | None = None,
    mark: str = "?",
    now: datetime | None = None,
) -> tuple[str, list[Any]]:
    """Return the statement and parameters of the same page as :func:`relation_search`, as
    the *columns* of each relation's company, in the same order, followed by two columns
    to leave out (the key and the relation's id). A relation whose company is missing
    gives a row of ``NULL`` company columns, for the caller to leave out (so that the page
    is that of :func:`relation_search`): one statement from the search to the rows a
    ``find_customers`` page returns, each company read once, by key, and only for the page.

    ``SQLiteStore`` answers the optional ``search_customers`` of its units of work with it
    (see ``partnerkit.ports.CustomerSearch``), which spares ``find_customers`` decoding the
    relations and reading the companies with a second statement.
    """
    params, upper = _search_params(partner_id, prefix, limit, after, now)
    sql = _relation_search_sql(
        (), bool(prefix), upper, after is not None, mark, now is not None, tuple(columns)
    )
    return sql, params
