"""What the review of the twelfth session's audit pages found, each fixed, on every store.

- An id of a ``str`` subclass that fakes ``__class__`` with a property passed for a plain
  ``str``: its own ``__eq__`` then answered the Portal's "is this the actor's own company?",
  and another company's trail was read (``audit_trail`` and ``audit_trail_page``).
- A stored event numbered by a float (a table rebuilt behind the store's back) made the
  chain check fail with a ``ValidationError`` of its own bounds, not ``AuditChainBroken``.
- Details nested deeper than json reads raised a bare ``RecursionError``.
- A tampered store's events numbered below 1 gave page cursors the same method refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from delegation_kit import CustomerCast, PartnerCast, add_customer, consent
from partnerkit import AuditChainBroken, Forbidden, Permission, Portal, User, ValidationError
from partnerkit.ports import USERS
from partnerkit.stores import check_storable
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore

pytest_plugins = ["pg_fixtures", "cast_fixtures"]


class _FakedStr(str):
    """Equal to everything, and says its class is ``str``."""

    __slots__ = ()

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return str

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


def test_the_faked_class_fools_the_attribute_but_not_type() -> None:
    """The premise: ``x.__class__`` says ``str``, ``type(x)`` does not."""
    faked = _FakedStr("cmp_x")
    assert faked.__class__ is str
    assert type(faked) is not str


def test_an_id_faking_its_class_reads_no_other_company_s_trail(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    consent(portal, partner.admin, customer)
    other = add_customer(portal, "Dunder", "dunder.example", roles=())
    own = portal.audit_trail(other.admin)
    assert portal.audit_trail(other.admin, _FakedStr(other.company.id)) == own
    page = portal.audit_trail_page(other.admin, _FakedStr(other.company.id), limit=500)
    assert list(page.events) == portal.audit_trail(other.admin)
    for company in (customer.company.id, partner.company.id):
        with pytest.raises(Forbidden):
            portal.audit_trail(other.admin, _FakedStr(company))
        with pytest.raises(Forbidden):
            portal.audit_trail_page(other.admin, _FakedStr(company))


def test_an_id_faking_its_class_is_no_own_company_for_a_decision(
    portal: Portal, customer: CustomerCast
) -> None:
    other = add_customer(portal, "Dunder", "dunder.example", roles=())
    for permission in (Permission.MANAGE_USERS, Permission.VIEW_PROFILE):
        assert not portal.decide(other.admin, permission, _FakedStr(customer.company.id))
        assert portal.decide(other.admin, permission, _FakedStr(other.company.id))
    with pytest.raises(Forbidden):
        portal.update_profile(other.admin, company_id=_FakedStr(customer.company.id), name="X")
    # An actor id of a subclass is the actor its text names, for decide as for every use
    # case (decide once answered it as no actor at all), whatever its class claims.
    faked_actor = _FakedStr(other.admin.id)
    assert portal.decide(faked_actor, Permission.MANAGE_USERS, other.company.id)
    assert not portal.decide(faked_actor, Permission.MANAGE_USERS, customer.company.id)
    assert portal.profile(faked_actor).id == other.company.id


def test_a_memory_store_reads_a_faked_id_by_its_text(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """At the store too: a company's events are those of the id's text, never all of them
    (``MemoryStore`` once compared each event's ids with the subclass's ``__eq__``)."""
    consent(portal, partner.admin, customer)
    with portal.store.unit_of_work(write=False) as uow:
        for company in (customer.company.id, partner.company.id):
            faked = _FakedStr(company)
            assert uow.audit_events(faked) == uow.audit_events(company)
            ranges: Any = uow
            assert ranges.audit_range(faked, 1000) == uow.audit_events(company)
        assert uow.users.get(_FakedStr(customer.admin.id)) == customer.admin


@pytest.fixture
def sqlite_portal(tmp_path: Path) -> Iterator[tuple[Portal, Path]]:
    path = tmp_path / "tampered.db"
    store = SQLiteStore(path)
    portal = Portal(store=store)
    _, kim = portal.register_customer(
        name="Fabrikam", domain="fabrikam.example", admin_email="k@f.example"
    )
    portal.create_user(kim, email="jo@f.example", display_name="Jo")
    yield portal, path
    store.close()


def _rebuild_without_integer_seq(path: Path) -> None:
    """Rebuild ``audit_events`` with a ``seq`` of no type, as an attacker with the file can."""
    with sqlite3.connect(path) as raw:
        columns = [row[1] for row in raw.execute("PRAGMA table_info(audit_events)")]
        raw.executescript(
            "ALTER TABLE audit_events RENAME TO old_events;"
            f"CREATE TABLE audit_events ({', '.join(columns)});"  # no types: values as given
            "INSERT INTO audit_events SELECT * FROM old_events;"
            "DROP TABLE old_events;"
        )
    raw.close()


@pytest.mark.parametrize("value", ["1.0", "'1'"])
def test_an_event_numbered_by_what_is_not_a_whole_number_breaks_the_chain(
    sqlite_portal: tuple[Portal, Path], value: str
) -> None:
    portal, path = sqlite_portal
    assert portal.verify_audit_trail() == 2
    _rebuild_without_integer_seq(path)
    assert portal.verify_audit_trail() == 2  # the same rows, the same chain
    with sqlite3.connect(path) as raw:
        raw.execute(f"UPDATE audit_events SET seq = {value} WHERE seq = 1")
    raw.close()
    with pytest.raises(AuditChainBroken):
        portal.verify_audit_trail()


def test_details_nested_too_deep_to_read_break_the_chain(
    sqlite_portal: tuple[Portal, Path],
) -> None:
    portal, path = sqlite_portal
    with sqlite3.connect(path) as raw:
        deep = "[" * 5000 + "]" * 5000
        raw.execute("UPDATE audit_events SET detail = ? WHERE seq = 2", (deep,))
    raw.close()
    with pytest.raises(AuditChainBroken):
        portal.verify_audit_trail()
    admin = portal.store.unit_of_work  # the trail's readers fail the same way
    with pytest.raises(AuditChainBroken), admin(write=False) as uow:
        uow.audit_events()


def test_pages_of_a_store_with_events_below_1_go_on_with_their_cursors(
    sqlite_portal: tuple[Portal, Path],
) -> None:
    """A row slipped in with a number below 1 is in the pages (the chain check refuses the
    store); the cursors the pages give are taken back, not refused as made up."""
    portal, path = sqlite_portal
    with sqlite3.connect(path) as raw:
        raw.execute(
            "INSERT INTO audit_events SELECT -5, at, actor_id, actor_company_id, company_id, "
            "delegation_id, role, action, outcome, target_id, reason, detail, "
            "correlation_id, prev_hash, hash FROM audit_events WHERE seq = 1"
        )
    raw.close()
    with portal.store.unit_of_work(write=False) as uow:
        kim = uow.users.find(email_key="k@f.example")[0]
    oldest = portal.audit_trail_page(kim, limit=1)
    assert [e.seq for e in oldest.events] == [-5]
    assert [e.seq for e in portal.audit_trail_page(kim, cursor=oldest.next_cursor).events] == [
        1,
        2,
    ]
    newest = portal.audit_trail_page(kim, limit=3, newest_first=True)
    assert [e.seq for e in newest.events] == [2, 1, -5]
    after = portal.audit_trail_page(kim, cursor=newest.next_cursor, newest_first=True)
    assert after.events == ()
    with pytest.raises(AuditChainBroken):
        portal.verify_audit_trail()


def test_a_cursor_holds_any_number_of_64_bits_and_no_more() -> None:
    portal = Portal(store=MemoryStore())
    _, admin = portal.register_customer(name="F", domain="f.example", admin_email="a@f.example")
    for cursor in ("o-9223372036854775808", "o-5", "o0"):
        assert len(portal.audit_trail_page(admin, cursor=cursor).events) == 1
    assert portal.audit_trail_page(admin, cursor="o9223372036854775807").events == ()
    assert (
        len(portal.audit_trail_page(admin, cursor="n9223372036854775807", newest_first=True).events)
        == 1
    )
    for cursor in ("n-9223372036854775808", "n0", "n-5"):
        assert portal.audit_trail_page(admin, cursor=cursor, newest_first=True).events == ()
    for cursor in ("o-9223372036854775809", "o9223372036854775808", "n-0"):
        with pytest.raises(ValidationError):
            portal.audit_trail_page(admin, cursor=cursor, newest_first=cursor[0] == "n")


def test_a_value_faking_its_class_is_judged_by_its_text_before_it_is_stored() -> None:
    """``check_storable`` (what every built-in store runs before a write) reads a text
    column's value by its type and its text, not by what its class or ``__contains__`` say."""

    class Sly(str):
        __slots__ = ()

        @property  # type: ignore[misc]
        def __class__(self) -> type:
            return str

        def __contains__(self, item: object) -> bool:
            return False

    user = User(id="usr_1", company_id="cmp_1", email="a@b.example", display_name="A")
    object.__setattr__(user, "display_name", Sly("a\x00b"))
    with pytest.raises(ValidationError) as info:
        check_storable(USERS, user)
    assert info.value.field == "store"
    for store in (MemoryStore(),):
        with pytest.raises(ValidationError), store.unit_of_work() as uow:
            uow.users.add(user)
