"""The SQL stores' codec: compiled row decoders and encoders, and prefix ranges.

Each codec compiles one decode and one encode function for its class. These tests hold them
to what the columns say: every row a Portal wrote to a SQLite file, of every table, decodes to
an object that its class's own ``__init__`` (validators and all) accepts unchanged, and that
encodes back to the very row; nested values that are not in the shape this code writes still
go through the class's ``__init__``; unknown enum values fail as the enum does; a JSON column
shares the value of a text it read before only when its values are immutable.
"""

from __future__ import annotations

import copy
import json
import pickle
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from delegation_kit import add_customer, add_partner, consent, make_portal
from partnerkit import (
    AdminRole,
    Company,
    CompanyKind,
    ContactInfo,
    OfferLine,
    PartnerKitError,
    ValidationError,
)
from partnerkit.ports import TABLES
from partnerkit.stores import _sql
from partnerkit.stores._sql import AUDIT_COLUMNS, Codec, prefix_range
from partnerkit.stores.sqlite import SQLiteStore


@pytest.fixture
def store() -> Iterator[SQLiteStore]:
    """A SQLite store a Portal has written a bit of everything to."""
    store = SQLiteStore(":memory:")
    portal = make_portal(store)
    partner = add_partner(portal, "Contoso Partners", "contoso")
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    consent(portal, partner.admin, customer, roles={AdminRole.PASSWORD_ADMIN}, duration=None)
    consent(portal, partner.full, customer, duration=timedelta(days=30), accept=None)
    portal.reset_password(partner.admin, customer.company.id, customer.by_role[None].id)
    yield store
    store.close()


def _rows(store: SQLiteStore, table: str, names: list[str]) -> list[tuple[object, ...]]:
    conn = store.acquire()
    try:
        return conn.execute(f"SELECT {', '.join(names)} FROM {table}").fetchall()
    finally:
        store.release(conn)


def test_every_stored_row_decodes_to_a_valid_object_and_encodes_back(store: SQLiteStore) -> None:
    """Decoding skips the validators; the object is still one ``__init__`` accepts as is."""
    seen = set()
    for table in TABLES:
        codec = store.tables[table.name].codec
        for row in _rows(store, table.name, codec.names()):
            obj = codec.decode(row)
            assert type(obj) is table.cls
            assert attrs.evolve(obj) == obj  # evolve runs __init__ with every validator
            with pytest.raises(attrs.exceptions.FrozenInstanceError):
                obj.version = 99  # built unfrozen for speed, given back frozen
            unpickled = pickle.loads(pickle.dumps(obj))  # noqa: S301 - our own bytes
            for again in (unpickled, copy.copy(obj), copy.deepcopy(obj)):
                assert type(again) is table.cls
                assert again == obj
            computed = [fn(obj) for fn in table.computed.values()]
            assert codec.encode(obj, computed) == list(row)
            seen.add(table.name)
    events = _rows(store, "audit_events", AUDIT_COLUMNS.names())
    for row in events:
        event = AUDIT_COLUMNS.decode(row)
        assert attrs.evolve(event) == event
        assert AUDIT_COLUMNS.encode(event) == list(row)
    assert events
    assert {"companies", "users", "delegations", "delegation_offers", "credentials"} <= seen


def test_nested_values_in_another_shape_go_through_init() -> None:
    """Missing keys take the class's defaults; unknown keys and bad values are refused."""
    codec = Codec(Company)
    column = codec.by_name["contact"]
    row = ["cmp_1", "partner", "Contoso", None, None, "PA-1", None, 1]

    def with_contact(value: object) -> Company:
        return codec.decode([*row[:3], column.encode(value) if value else None, *row[4:]])

    contact = ContactInfo(email="a@contoso.example", website="https://contoso.example")
    assert with_contact(contact).contact == contact
    short = json.dumps({"email": "a@contoso.example"})
    assert codec.decode([*row[:3], short, *row[4:]]).contact == ContactInfo("a@contoso.example")
    with pytest.raises(ValidationError):
        codec.decode([*row[:3], json.dumps({"email": "not an address"}), *row[4:]])
    with pytest.raises(KeyError):
        codec.decode([*row[:3], json.dumps({"email": "a@b.example", "fax": "1"}), *row[4:]])


@attrs.frozen(slots=False)
class _Unslotted:
    """A frozen class whose instances have a ``__dict__``: decoded without a twin."""

    id: str
    seen_at: datetime
    version: int = 1


@attrs.frozen
class _Slotted:
    """The same, slotted, as the domain's classes are: decoded through a twin."""

    id: str
    seen_at: datetime
    version: int = 1


def test_a_class_without_slots_decodes_to_itself_too() -> None:
    """Slotted classes are built as an unfrozen twin that is then given its own class; a
    class whose instances have a ``__dict__`` has no such twin and is built field by field.
    Both give an instance of the class itself, frozen, equal to the one written."""
    for cls in (_Unslotted, _Slotted):
        codec = Codec(cls)
        obj = cls("x_1", datetime(2024, 1, 15, 9, 30, 0, 5, tzinfo=UTC), 3)
        back = codec.decode(codec.encode(obj))
        assert (_sql._unfrozen_twin(cls) is None) is (cls is _Unslotted)
        assert type(back) is cls
        assert back == obj
        assert back.seen_at.tzinfo is UTC
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            back.version = 4


@attrs.frozen
class _Counted:
    """A slotted class with a ``__new__`` of its own, which no decode runs."""

    id: str
    version: int = 1

    def __new__(cls, *args: object, **kwargs: object) -> _Counted:
        raise AssertionError("a decode ran __new__")


def test_decode_rows_decodes_each_row_and_leaves_out_one_without_a_key() -> None:
    """``decode_rows`` gives what ``decode`` gives for each row, in order, leaving out a row
    whose key is ``NULL`` (a ``LEFT JOIN`` that found no object); a class's own ``__new__``
    is not run by either, as its ``__init__`` is not."""
    codec = Codec(_Slotted)
    objs = [_Slotted(f"x_{n}", datetime(2024, 1, 15, tzinfo=UTC) + timedelta(n), n) for n in (1, 2)]
    rows = [codec.encode(objs[0]), (None, None, None), tuple(codec.encode(objs[1]))]
    back = codec.decode_rows(rows)
    assert back == objs == [codec.decode(rows[0]), codec.decode(rows[2])]
    assert [type(o) for o in back] == [_Slotted, _Slotted]
    assert codec.decode_rows([]) == []
    counted = Codec(_Counted)
    for obj in (counted.decode(["c_1", 2]), *counted.decode_rows([("c_1", 2)])):
        assert type(obj) is _Counted
        assert (obj.id, obj.version) == ("c_1", 2)


@attrs.frozen
class _Tagged:
    """A frozen class with a mutable field: its JSON values must never be shared."""

    tags: dict[str, int]


@attrs.define
class _Checked:
    """A mutable class whose setting runs a validator (refusing the probe's ``None``)."""

    name: str = attrs.field(validator=attrs.validators.instance_of(str))


@attrs.frozen
class _Holder:
    id: str
    contact: ContactInfo | None
    tagged: _Tagged | None
    names: tuple[str, ...]
    counts: list[int]
    checked: _Checked | None = None
    version: int = 1


def test_json_columns_share_a_value_only_when_it_is_immutable() -> None:
    """A text read again gives the very value read before (it is immutable, so nothing can
    tell), within a bounded memory; a column whose values could be changed decodes afresh
    every time, so that changing one row's value never changes another's."""
    codec = Codec(_Holder)
    contact = ContactInfo(email="a@contoso.example")
    row = [
        "h1",
        codec.by_name["contact"].encode(contact),
        codec.by_name["tagged"].encode(_Tagged({"a": 1})),
        codec.by_name["names"].encode(("x", "y")),
        codec.by_name["counts"].encode([1, 2]),
        codec.by_name["checked"].encode(_Checked("a")),
        1,
    ]
    first, second = codec.decode(row), codec.decode(row)
    assert first == second
    assert first.contact == contact
    assert first.names == ("x", "y")
    assert first.contact is second.contact
    assert first.names is second.names
    assert first.tagged == second.tagged
    assert first.tagged is not second.tagged
    assert first.counts == second.counts
    assert first.counts is not second.counts
    assert first.checked == second.checked
    assert first.checked is not second.checked
    assert _sql._json_writer(_Checked) is _sql._jsonable
    assert not _sql._immutable(_Checked)
    first.tagged.tags["a"] = 99
    assert codec.decode(row).tagged == _Tagged({"a": 1})
    # More texts than it keeps: every value is still the text's own.
    encode = codec.by_name["contact"].encode
    for i in range(_sql._REMEMBERED * 2 + 3):
        text = encode(ContactInfo(email=f"u{i}@contoso.example"))
        assert codec.decode([row[0], text, *row[2:]]).contact == ContactInfo(
            email=f"u{i}@contoso.example"
        )
    # A text that fails is not remembered: it fails again.
    bad = json.dumps({"email": "not an address"})
    for _ in range(2):
        with pytest.raises(ValidationError):
            codec.decode([row[0], bad, *row[2:]])


def test_json_columns_write_the_text_of_the_general_encoder() -> None:
    """Each JSON column writes its values with a writer made for its type (tuples of text
    go to the encoder as they are); the text is byte for byte that of the general path,
    ``json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"))``, which the
    stores have always written."""
    samples: dict[str, list[object]] = {
        "contact": [ContactInfo(email="a@contoso.example", phone="+1 555 0100")],
        "subscription_ids": [(), ("sub_1",), ('sub_\u00e9"1', "sub_2")],
        "lines": [(OfferLine("INTUNE", 25), OfferLine("EXCHANGE", 1))],
        "roles": [frozenset(AdminRole), frozenset({AdminRole.PASSWORD_ADMIN})],
        "detail": [
            (),
            (("kind", "purchase_offer"), ("name", 'Caf\u00e9 "Zo\u00eb" \\ \U0001f600')),
        ],
    }
    checked = set()
    for codec in [*(Codec(table.cls) for table in TABLES), AUDIT_COLUMNS]:
        for column in codec.columns:
            if column.name not in samples:
                continue
            for value in samples[column.name]:
                general = json.dumps(_sql._jsonable(value), sort_keys=True, separators=(",", ":"))
                assert column.encode(value) == general
                checked.add(column.name)
    assert checked == set(samples)
    assert _sql._json_writer(tuple[tuple[str, str], ...]) is None


def test_an_unknown_enum_value_is_a_storage_error_that_says_where() -> None:
    """A stored value no member has (a row written by something else) is a typed storage
    error naming the column, not the enum's own ValueError."""
    codec = Codec(Company)
    row = ["cmp_1", "partner", "Contoso", None, None, "PA-1", None, 1]
    assert codec.decode(row).kind is CompanyKind.PARTNER
    with pytest.raises(PartnerKitError, match=r"Company\.kind holds 'reseller', no CompanyKind"):
        codec.decode([row[0], "reseller", *row[2:]])
    with pytest.raises(PartnerKitError, match=r"Company\.kind"):
        codec.decode_rows([[row[0], "reseller", *row[2:]]])


@pytest.mark.parametrize(
    ("prefix", "inside", "outside"),
    [
        ("ab", ["ab", "abz", "ab\U0010ffff"], ["aa\U0010ffff", "ac", "b"]),
        ("a\U0010ffff", ["a\U0010ffff", "a\U0010ffffz"], ["a\U0010fffe", "b", "b\U0010ffff"]),
        ("\U0010ffff\U0010ffff", ["\U0010ffff\U0010ffff!"], ["\U0010ffff", "\U0010fffe"]),
        ("a\ud7ff", ["a\ud7ff", "a\ud7ffz"], ["a\ue000", "a\ud7fe"]),
    ],
)
def test_a_prefix_range_holds_exactly_the_texts_that_start_with_it(
    prefix: str, inside: list[str], outside: list[str]
) -> None:
    """Even when the prefix ends in the last code point, whose successor does not exist."""
    where, params = prefix_range("t", prefix)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE x (t TEXT)")
    conn.executemany("INSERT INTO x VALUES (?)", [(t,) for t in inside + outside])
    found = {row[0] for row in conn.execute(f"SELECT t FROM x WHERE {where}", params)}
    conn.close()
    assert found == set(inside)
