"""``Portal.audit_trail_page`` and the audit chain read a part at a time, on every store.

``audit_trail`` and ``verify_audit_trail`` used to read a trail whole: a portal that records
every change and every denied attempt holds millions of events after a while, and a page of
an audit screen, or a nightly check of the chain, should not need them all in memory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _sqlite_steps import steps_of
from delegation_kit import CustomerCast, PartnerCast, add_customer, add_partner, consent
from partnerkit import (
    AdminRole,
    AuditChainBroken,
    AuditEvent,
    AuditPage,
    Forbidden,
    Portal,
    ValidationError,
)
from partnerkit.audit import GENESIS_HASH
from partnerkit.ports import MAX_AUDIT_RANGE, Store
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import DEFAULT_START

pytest_plugins = ["pg_fixtures", "cast_fixtures"]


@pytest.fixture
def busy(portal: Portal, partner: PartnerCast, customer: CustomerCast) -> Portal:
    """A trail where the customer's events (its own, its partner's on it, denied ones) lie
    among another partner's and another customer's."""
    other = add_partner(portal, "Northwind", "northwind")
    stranger = add_customer(portal, "Tailspin", "tailspin.example", roles=())
    consent(portal, partner.admin, customer)
    for n in range(6):
        portal.create_user(customer.admin, email=f"u{n}@fabrikam.example", display_name=f"U{n}")
        portal.update_profile(other.admin, name=f"Northwind {n}")
        with pytest.raises(Forbidden):
            portal.audit_trail(other.admin, customer.company.id)  # denied: on the customer
        portal.reset_password(partner.full, customer.company.id, customer.by_role[None].id)
        portal.create_user(stranger.admin, email=f"s{n}@tailspin.example", display_name="S")
    return portal


def _walk(portal: Portal, reader: Any, limit: int, newest_first: bool) -> list[AuditEvent]:
    seen: list[AuditEvent] = []
    cursor = None
    while True:
        page = portal.audit_trail_page(
            reader, limit=limit, cursor=cursor, newest_first=newest_first
        )
        assert isinstance(page, AuditPage)
        assert len(page.events) <= limit
        seen.extend(page.events)
        cursor = page.next_cursor
        if not page.has_more:
            return seen


@pytest.mark.parametrize("limit", [1, 4, 7, 500])
def test_pages_walk_the_whole_trail_in_either_order(
    busy: Portal, customer: CustomerCast, limit: int
) -> None:
    """Page after page, the walk gives exactly ``audit_trail``: oldest first, or reversed."""
    trail = busy.audit_trail(customer.admin)
    assert len(trail) > 20
    assert _walk(busy, customer.admin, limit, newest_first=False) == trail
    assert _walk(busy, customer.admin, limit, newest_first=True) == trail[::-1]


def test_a_page_says_whether_more_followed(busy: Portal, customer: CustomerCast) -> None:
    """``has_more`` is true on every page but the last; a full last page says no more."""
    trail = busy.audit_trail(customer.admin)
    page = busy.audit_trail_page(customer.admin, limit=len(trail) - 1)
    assert page.has_more
    assert page.events == tuple(trail[:-1])
    last = busy.audit_trail_page(customer.admin, limit=5, cursor=page.next_cursor)
    assert not last.has_more
    assert last.events == (trail[-1],)
    whole = busy.audit_trail_page(customer.admin, limit=len(trail))
    assert not whole.has_more
    assert whole.events == tuple(trail)


def test_a_walk_that_caught_up_gets_what_was_recorded_since(
    busy: Portal, customer: CustomerCast
) -> None:
    """Oldest first, the last page's cursor leads to the events recorded after it; asked
    again with nothing new, the page is empty and the cursor stays where it was."""
    page = busy.audit_trail_page(customer.admin, limit=500)
    assert not page.has_more
    nothing = busy.audit_trail_page(customer.admin, cursor=page.next_cursor)
    assert nothing.events == ()
    assert nothing.next_cursor == page.next_cursor
    busy.create_user(customer.admin, email="late@fabrikam.example", display_name="Late")
    later = busy.audit_trail_page(customer.admin, cursor=page.next_cursor)
    assert [e.action for e in later.events] == ["user.create"]
    assert later.events == tuple(busy.audit_trail(customer.admin)[-1:])


def test_a_walk_newest_first_ends_at_the_oldest_event(busy: Portal, customer: CustomerCast) -> None:
    """Newest first, what is recorded after the walk began is not in it: it is newer than
    the walk's start, and the walk goes back in time."""
    first = busy.audit_trail_page(customer.admin, limit=3, newest_first=True)
    busy.create_user(customer.admin, email="late@fabrikam.example", display_name="Late")
    rest = busy.audit_trail_page(
        customer.admin, limit=500, cursor=first.next_cursor, newest_first=True
    )
    trail = busy.audit_trail(customer.admin)
    assert first.events + rest.events == tuple(trail[-2::-1])
    assert not rest.has_more
    after = busy.audit_trail_page(customer.admin, cursor=rest.next_cursor, newest_first=True)
    assert after.events == ()
    assert not after.has_more


def test_a_company_without_events_gives_empty_pages(portal: Portal) -> None:
    """A company whose events are all elsewhere (none here: a fresh Portal's first company
    has its own) pages to nothing in either order, and a cursor made then still works."""
    cast = add_partner(portal, "Contoso", "contoso")
    trail = portal.audit_trail(cast.admin)
    newest = portal.audit_trail_page(cast.admin, limit=len(trail), newest_first=True)
    ended = portal.audit_trail_page(cast.admin, cursor=newest.next_cursor, newest_first=True)
    assert ended.events == ()
    assert not ended.has_more
    assert portal.audit_trail_page(cast.admin, cursor=ended.next_cursor, newest_first=True) == (
        AuditPage((), ended.next_cursor, False)
    )


@pytest.mark.parametrize("reader", ["full", "limited", "billing"])
def test_only_the_company_s_own_global_admins_read_its_pages(
    busy: Portal, partner: PartnerCast, customer: CustomerCast, reader: str
) -> None:
    """The rule of ``audit_trail``: partner users (a delegation grants no reading of the
    customer's trail) and the company's other admins are refused, and the refusal is
    recorded."""
    actor = getattr(partner, reader)
    before = len(busy.audit_trail(customer.admin))
    for company in (customer.company.id, partner.company.id):
        with pytest.raises(Forbidden) as info:
            busy.audit_trail_page(actor, company)
        assert info.value.decision.reason == "audit-trail-readable-by-own-global-admins"
    with pytest.raises(Forbidden):
        busy.audit_trail_page(customer.by_role[AdminRole.BILLING_ADMIN])
    denied = busy.audit_trail(customer.admin)[before:]
    assert denied
    assert all(e.outcome == "denied" and e.action == "audit.read" for e in denied)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "o",
        "x5",
        "o-0",
        "o+1",
        "n-01",
        "o-9223372036854775809",
        "o01",
        "o 5",
        "o5 ",
        "O5",
        "o9223372036854775808",
        "o１",
        "o" + "9" * 40,
        5,
        b"o5",
    ],
)
def test_a_cursor_this_method_did_not_give_is_refused(
    busy: Portal, customer: CustomerCast, cursor: object
) -> None:
    with pytest.raises(ValidationError) as info:
        busy.audit_trail_page(customer.admin, cursor=cursor)  # type: ignore[arg-type]
    assert info.value.field == "cursor"


def test_a_cursor_is_for_the_order_it_was_made_for(busy: Portal, customer: CustomerCast) -> None:
    oldest = busy.audit_trail_page(customer.admin, limit=2)
    newest = busy.audit_trail_page(customer.admin, limit=2, newest_first=True)
    for cursor, newest_first in ((oldest.next_cursor, True), (newest.next_cursor, False)):
        with pytest.raises(ValidationError, match="other order") as info:
            busy.audit_trail_page(customer.admin, cursor=cursor, newest_first=newest_first)
        assert info.value.field == "cursor"


@pytest.mark.parametrize(
    ("name", "value"),
    [("limit", 0), ("limit", 501), ("limit", True), ("limit", 2.0), ("newest_first", 1)],
)
def test_bad_paging_arguments_are_refused_by_name(
    busy: Portal, customer: CustomerCast, name: str, value: object
) -> None:
    with pytest.raises(ValidationError) as info:
        busy.audit_trail_page(customer.admin, **{name: value})  # type: ignore[arg-type]
    assert info.value.field == name


class _WithoutRanges:
    """A store whose units of work lack the optional ``audit_range``: a third-party store
    written before it existed."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def unit_of_work(self, *, write: bool = True) -> Any:
        return _HiddenRanges(self._store.unit_of_work(write=write))

    def close(self) -> None:
        self._store.close()


class _HiddenRanges:
    def __init__(self, uow: Any) -> None:
        self._uow = uow

    def __enter__(self) -> Any:
        self._inner = self._uow.__enter__()
        return self

    def __exit__(self, *exc: object) -> Any:
        return self._uow.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        if name == "audit_range":
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_a_store_without_ranges_gives_the_same_pages(busy: Portal, customer: CustomerCast) -> None:
    """Without ``audit_range`` the Portal pages ``audit_events``: the same pages, cursors
    included, and the chain verifies the same."""
    plain = Portal(store=busy.store, keyring=busy.keyring, catalog=busy.catalog, clock=busy.clock)
    plain.store = _WithoutRanges(busy.store)  # type: ignore[assignment]
    for limit in (1, 5, 500):
        for newest_first in (False, True):
            cursor = None
            while True:
                ours = busy.audit_trail_page(
                    customer.admin, limit=limit, cursor=cursor, newest_first=newest_first
                )
                theirs = plain.audit_trail_page(
                    customer.admin, limit=limit, cursor=cursor, newest_first=newest_first
                )
                assert ours == theirs
                cursor = ours.next_cursor
                if not ours.has_more:
                    break
    assert plain.verify_audit_trail() == busy.verify_audit_trail()


# -- the chain checked a part at a time ----------------------------------------------------


def _append_chain(
    store: Store, count: int, company_id: str = "cmp_bulk", actor_company_id: str | None = None
) -> list[AuditEvent]:
    """*count* events after the store's head, on *company_id* by *actor_company_id*'s
    users, appended in one unit of work."""
    with store.unit_of_work() as uow:
        seq, prev = uow.audit_head()
        events = []
        for n in range(seq + 1, seq + count + 1):
            event = AuditEvent.chained(
                seq=n,
                prev_hash=prev,
                at=DEFAULT_START,
                action="test.event",
                outcome="success",
                actor_company_id=actor_company_id,
                company_id=company_id,
                detail={"n": n},
                correlation_id="bulk",
            )
            uow.append_audit(event)
            events.append(event)
            prev = event.hash
        uow.commit()
    return events


class _Counting:
    """A store that counts what its units of work read of the audit trail."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.whole = 0
        self.parts: list[int] = []
        self.open_at_once = 0
        self._open = 0

    def unit_of_work(self, *, write: bool = True) -> Any:
        return _CountingUoW(self, self._store.unit_of_work(write=write))

    def close(self) -> None:
        self._store.close()


class _CountingUoW:
    def __init__(self, counter: _Counting, uow: Any) -> None:
        self._counter = counter
        self._uow = uow

    def __enter__(self) -> Any:
        self._inner = self._uow.__enter__()
        self._counter._open += 1
        self._counter.open_at_once = max(self._counter.open_at_once, self._counter._open)
        return self

    def __exit__(self, *exc: object) -> Any:
        self._counter._open -= 1
        return self._uow.__exit__(*exc)

    def audit_events(self, company_id: str | None = None) -> list[AuditEvent]:
        self._counter.whole += 1
        found: list[AuditEvent] = self._inner.audit_events(company_id)
        return found

    def audit_range(self, *args: Any, **kwargs: Any) -> list[AuditEvent]:
        found: list[AuditEvent] = self._inner.audit_range(*args, **kwargs)
        self._counter.parts.append(len(found))
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_the_chain_is_checked_a_part_at_a_time(portal: Portal) -> None:
    """Past ``MAX_AUDIT_RANGE`` events, the check reads parts of at most that many, one
    read unit of work at a time, and never the whole trail."""
    _append_chain(portal.store, 2 * MAX_AUDIT_RANGE + 17)
    counting = _Counting(portal.store)
    checker = Portal(store=portal.store, keyring=portal.keyring, clock=portal.clock)
    checker.store = counting  # type: ignore[assignment]
    assert checker.verify_audit_trail() == 2 * MAX_AUDIT_RANGE + 17
    assert counting.whole == 0
    # First the look past the head (nothing there), then the chain in parts.
    assert counting.parts == [0, MAX_AUDIT_RANGE, MAX_AUDIT_RANGE, 17]
    assert counting.open_at_once == 1


def test_events_appended_during_a_check_are_left_for_the_next(portal: Portal) -> None:
    """The check ends at the head it read first; a part read later sees nothing newer."""
    _append_chain(portal.store, MAX_AUDIT_RANGE + 3)
    head = MAX_AUDIT_RANGE + 3
    parts = portal._audit_parts(head)  # the reader verify_audit_trail gives verify_chain
    first = [next(parts) for _ in range(MAX_AUDIT_RANGE)]
    _append_chain(portal.store, 50)
    rest = list(parts)
    assert [e.seq for e in first + rest] == list(range(1, head + 1))
    assert portal.verify_audit_trail() == head + 50


@pytest.fixture
def long_sqlite(tmp_path: Path) -> Iterator[tuple[Portal, Path]]:
    path = tmp_path / "long.db"
    store = SQLiteStore(path)
    portal = Portal(store=store)
    _append_chain(store, 2 * MAX_AUDIT_RANGE + 5)
    yield portal, path
    store.close()


@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE audit_events SET detail = '[]' WHERE seq = {MAX_AUDIT_RANGE + 500}",
        f"DELETE FROM audit_events WHERE seq = {MAX_AUDIT_RANGE}",
        f"DELETE FROM audit_events WHERE seq = {MAX_AUDIT_RANGE + 1}",
        f"DELETE FROM audit_events WHERE seq > {2 * MAX_AUDIT_RANGE}",
        f"UPDATE audit_events SET prev_hash = '{GENESIS_HASH}' WHERE seq = {MAX_AUDIT_RANGE + 1}",
        "INSERT INTO audit_events SELECT 0, at, actor_id, actor_company_id, company_id, "
        "delegation_id, role, action, outcome, target_id, reason, detail, correlation_id, "
        "prev_hash, hash FROM audit_events WHERE seq = 1",
        "INSERT INTO audit_events SELECT -9223372036854775808, at, actor_id, actor_company_id, "
        "company_id, delegation_id, role, action, outcome, target_id, reason, detail, "
        "correlation_id, prev_hash, hash FROM audit_events WHERE seq = 1",
        f"INSERT INTO audit_events SELECT {2 * MAX_AUDIT_RANGE + 6}, at, actor_id, "
        "actor_company_id, company_id, delegation_id, role, action, outcome, target_id, "
        "reason, detail, correlation_id, hash, hash FROM audit_events "
        f"WHERE seq = {2 * MAX_AUDIT_RANGE + 5}",
        "INSERT INTO audit_events SELECT 9223372036854775807, at, actor_id, actor_company_id, "
        "company_id, delegation_id, role, action, outcome, target_id, reason, detail, "
        "correlation_id, prev_hash, hash FROM audit_events WHERE seq = 3",
    ],
    ids=[
        "edit-in-second-part",
        "end-of-first-part",
        "start-of-second",
        "tail",
        "relink",
        "row-0",
        "row-at-the-least-number",
        "row-past-the-head",
        "row-at-the-greatest-number",
    ],
)
def test_tampering_in_any_part_is_found(long_sqlite: tuple[Portal, Path], statement: str) -> None:
    portal, path = long_sqlite
    assert portal.verify_audit_trail() == 2 * MAX_AUDIT_RANGE + 5
    with sqlite3.connect(path) as raw:
        assert raw.execute(statement).rowcount > 0
    raw.close()
    with pytest.raises(AuditChainBroken):
        portal.verify_audit_trail()


def _own_events(store: Store, company_id: str, count: int) -> None:
    """*count* events a company's users caused on the company itself."""
    _append_chain(store, count, company_id, company_id)


def _page_work(store: SQLiteStore, portal: Portal, admin: Any, newest_first: bool) -> int:
    """SQLite's virtual-machine steps (in thousands) for one page of 20."""
    steps, page = steps_of(
        store, lambda: portal.audit_trail_page(admin, limit=20, newest_first=newest_first)
    )
    assert len(page.events) == 20
    return steps


@pytest.mark.parametrize("newest_first", [False, True])
def test_a_page_reads_no_more_as_the_trail_grows(tmp_path: Path, newest_first: bool) -> None:
    """A page is two index ranges read up to the limit: the work of a page of 20 is the
    same with 40 times more events. (Each range once asked for more than the limit: one
    of the company's events on others, so a company's events on itself were read through,
    all of them, to find there were none.)"""
    store = SQLiteStore(tmp_path / "grow.db")
    portal = Portal(store=store)
    customer, admin = portal.register_customer(
        name="Fabrikam", domain="fabrikam.example", admin_email="kim@fabrikam.example"
    )
    _own_events(store, customer.id, 500)
    short = _page_work(store, portal, admin, newest_first)
    _own_events(store, customer.id, 20_000)
    long = _page_work(store, portal, admin, newest_first)
    store.close()
    assert long <= 2 * short + 2, (short, long)
