"""The Portal's lists a page at a time: ``limit`` and ``after`` on ``list_users``,
``list_subscriptions``, ``list_delegations``, ``list_service_requests``, ``list_links`` and
``list_offers``, on every store.

A partner advising a million subscriptions, or administering a hundred thousand customers,
should not have its whole list read to show fifty. Pages are in key (id) order, read from an
index that ends in the key (``Table.pages``), and walk exactly the whole list.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from _proxy_units import ProxyStore, ProxyUnit
from _sqlite_steps import steps_of
from delegation_kit import CustomerCast, PartnerCast, add_customer, consent
from partnerkit import (
    AdminRole,
    ContactInfo,
    Forbidden,
    LinkKind,
    OfferLine,
    Portal,
    User,
    ValidationError,
)
from partnerkit.consent import Delegation, DelegationStatus
from partnerkit.ports import MAX_FIND_PAGE
from partnerkit.records import LinkRecord
from partnerkit.stores._sql import ADDED_COLUMNS
from partnerkit.stores.sqlite import SCHEMA_VERSION, SQLiteStore
from partnerkit.testing import DEFAULT_START
from partnerkit.testing.contract import FIND_PAGE_REFUSED

pytest_plugins = ["pg_fixtures", "cast_fixtures"]

#: Each list, as (name, how to call it for the world's reader).
Lister = Callable[..., list[Any]]


@pytest.fixture
def world(portal: Portal, partner: PartnerCast, customer: CustomerCast) -> dict[str, Lister]:
    """A partner with several users, delegations and advised subscriptions, and a customer
    with several service requests; each list as a call taking ``limit`` and ``after``."""
    for n in range(7):
        portal.create_user(partner.admin, email=f"agent{n}@contoso.example", display_name="A")
    trial = portal.create_trial_invitation(partner.admin, "EXCHANGE", False)
    for n in range(7):
        other = add_customer(portal, f"Customer {n}", f"c{n}.example", roles=())
        consent(portal, partner.admin, other)
        portal.redeem(trial, other.admin)
    consent(portal, partner.admin, customer)
    for n in range(7):
        portal.create_service_request(partner.full, customer.company.id, title=f"Request {n}")
        portal.create_purchase_offer(partner.full, [OfferLine("EXCHANGE", n + 1)], False)
    return {
        "users": lambda **kw: portal.list_users(partner.admin, **kw),
        "advised subscriptions": lambda **kw: portal.list_subscriptions(partner.admin, **kw),
        "partner's delegations": lambda **kw: portal.list_delegations(partner.admin, **kw),
        "customer's delegations": lambda **kw: portal.list_delegations(customer.admin, **kw),
        "service requests": lambda **kw: portal.list_service_requests(
            partner.full, customer.company.id, **kw
        ),
        "partner's links": lambda **kw: portal.list_links(partner.limited, **kw),
        "partner's offers": lambda **kw: portal.list_offers(partner.full, **kw),
    }


LISTS = [
    "users",
    "advised subscriptions",
    "partner's delegations",
    "customer's delegations",
    "service requests",
    "partner's links",
    "partner's offers",
]


def _walk(listing: Lister, limit: int) -> list[Any]:
    seen: list[Any] = []
    after = None
    while True:
        page = listing(limit=limit, after=after)
        assert len(page) <= limit
        seen.extend(page)
        if len(page) < limit:
            return seen
        after = page[-1].id


@pytest.mark.parametrize("which", LISTS)
def test_pages_walk_the_whole_list_in_id_order(world: dict[str, Lister], which: str) -> None:
    """Page after page, for every limit, the walk gives exactly the unpaged list."""
    listing = world[which]
    whole = listing()
    assert len(whole) >= 7 or which == "customer's delegations"
    assert [x.id for x in whole] == sorted(x.id for x in whole)
    for limit in (1, 2, 3, len(whole), MAX_FIND_PAGE):
        assert _walk(listing, limit) == whole, limit


@pytest.mark.parametrize("which", LISTS)
def test_after_any_text_starts_after_it(world: dict[str, Lister], which: str) -> None:
    """*after* is a bound, not a lookup: an id of the list, text between ids, before the
    first or past the last (a removed object's id keeps a walk going)."""
    listing = world[which]
    whole = listing()
    ids = [x.id for x in whole]
    for bound in ["", "!", "zzzz", *ids, *(i + "\x01" for i in ids), *(i[:-1] for i in ids)]:
        expected = [x for x in whole if x.id > bound]
        assert listing(after=bound) == expected, bound
        assert listing(limit=2, after=bound) == expected[:2], bound


@pytest.mark.parametrize(
    ("name", "value"),
    # A list without a limit is the whole list: every other refusal is the store's own.
    [(name, value) for name, value in FIND_PAGE_REFUSED if (name, value) != ("limit", None)],
)
def test_bad_paging_arguments_are_refused_by_name(
    world: dict[str, Lister], name: str, value: object
) -> None:
    """Every list refuses the same arguments, naming them, on every store."""
    for which in LISTS:
        arguments: dict[str, object] = {"limit": 2, "after": None, name: value}
        if name == "after":
            for limit in (None, 2):  # whole lists judge *after* too
                with pytest.raises(ValidationError) as info:
                    world[which](limit=limit, after=value)
                assert info.value.field == "after", which
        else:
            with pytest.raises(ValidationError) as info:
                world[which](**arguments)
            assert info.value.field == "limit", which


def test_a_page_needs_the_right_the_whole_list_needs(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """Paging grants nothing: who may not list may not page (and is refused before the
    paging arguments are judged)."""
    consent(portal, partner.admin, customer)
    with pytest.raises(Forbidden):
        portal.list_users(partner.plain, limit=1)
    with pytest.raises(Forbidden):
        portal.list_delegations(partner.plain, limit=0)
    with pytest.raises(Forbidden):
        portal.list_subscriptions(customer.by_role[None], limit=5, after="x")


class _HiddenPages(ProxyUnit):
    """A real unit of work whose repositories lack the optional ``find_page``: a
    third-party store written before it existed."""

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        return _NoFindPage(found) if hasattr(found, "find_page") else found


class _NoFindPage:
    def __init__(self, repo: Any) -> None:
        self._repo = repo

    def __getattr__(self, name: str) -> Any:
        if name == "find_page":
            raise AttributeError(name)
        return getattr(self._repo, name)


def test_a_store_without_pages_gives_the_same_pages(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """Without ``find_page`` the Portal pages ``find``: the same pages and refusals."""
    for n in range(5):
        portal.create_user(partner.admin, email=f"u{n}@contoso.example", display_name="U")
    plain = Portal(
        store=portal.store, keyring=portal.keyring, catalog=portal.catalog, clock=portal.clock
    )
    plain.store = ProxyStore(portal.store, _HiddenPages)  # type: ignore[assignment]
    ids = [u.id for u in portal.list_users(partner.admin)]
    for limit in (1, 3, 100):
        for after in (None, "", *ids):
            ours = portal.list_users(partner.admin, limit=limit, after=after)
            assert plain.list_users(partner.admin, limit=limit, after=after) == ours
    with pytest.raises(ValidationError):
        plain.list_users(partner.admin, limit=0)


def _steps(store: SQLiteStore, call: Callable[[], list[Any]]) -> int:
    steps, page = steps_of(store, call)
    assert len(page) == 20
    return steps


def test_a_page_reads_no_more_as_the_list_grows(tmp_path: Path) -> None:
    """A page of 20 of a partner's delegations or links, or of a company's users, costs SQLite the
    same with 40 times more rows: it is read in key order from an index ending in the key
    (without ``Table.pages``, the lookup's longer index serves the equality and the whole
    list is sorted for each page)."""
    store = SQLiteStore(tmp_path / "grow.db")
    portal = Portal(store=store)
    _, admin = portal.register_partner(
        name="Contoso",
        contact=ContactInfo(email="hello@contoso.example"),
        admin_email="admin@contoso.example",
    )

    def grow(start: int, stop: int) -> None:
        with store.unit_of_work() as uow:
            for n in range(start, stop):
                uow.delegations.add(_delegation(n, admin.company_id))
                uow.users.add(_user(n, admin.company_id))
                uow.links.add(_link(n, admin.company_id))
            uow.commit()

    grow(0, 100)
    short = [
        _steps(store, lambda: portal.list_delegations(admin, limit=20, after="dlg_0050")),
        _steps(store, lambda: portal.list_users(admin, limit=20, after="usr_0050")),
        _steps(store, lambda: portal.list_links(admin, limit=20, after="lnk_0050")),
    ]
    grow(100, 4000)
    long = [
        _steps(store, lambda: portal.list_delegations(admin, limit=20, after="dlg_0050")),
        _steps(store, lambda: portal.list_users(admin, limit=20, after="usr_0050")),
        _steps(store, lambda: portal.list_links(admin, limit=20, after="lnk_0050")),
    ]
    store.close()
    assert all(b <= 2 * a + 2 for a, b in zip(short, long, strict=True)), (short, long)


def _delegation(n: int, partner_id: str) -> Delegation:
    return Delegation(
        id=f"dlg_{n:04d}",
        partner_id=partner_id,
        customer_id=f"cmp_c{n:04d}",
        offer_id="dof_x",
        roles=frozenset(AdminRole),
        duration=None,
        status=DelegationStatus.ACTIVE,
        offered_at=DEFAULT_START,
        offered_by="usr_x",
    )


def _link(n: int, partner_id: str) -> LinkRecord:
    return LinkRecord(
        id=f"lnk_{n:04d}",
        kind=LinkKind.TRIAL_INVITATION,
        partner_id=partner_id,
        advisor_id="ADV",
        target="EXCHANGE",
        includes_delegated_admin=False,
        delegation_offer_id=None,
        created_by="usr_x",
        created_at=DEFAULT_START,
        expires_at=DEFAULT_START,
    )


def _user(n: int, company_id: str) -> User:
    return User(
        id=f"usr_{n:04d}",
        company_id=company_id,
        email=f"user{n}@contoso.example",
        display_name=f"User {n}",
    )


def test_opening_a_version_3_file_adds_the_page_indexes(tmp_path: Path) -> None:
    """Schema version 4 gives the lists the Portal pages an index ending in the key; a file
    of version 3 gets them when it is opened, and its pages read the same."""
    path = tmp_path / "v3.db"
    store = SQLiteStore(path)
    portal = Portal(store=store)
    _, admin = portal.register_partner(
        name="Contoso",
        contact=ContactInfo(email="hello@contoso.example"),
        admin_email="a@c.example",
    )
    with store.unit_of_work() as uow:
        for n in range(30):
            uow.users.add(_user(n, admin.company_id))
        uow.commit()
    page = portal.list_users(admin, limit=5, after="usr_0010")
    store.close()
    added = ["users_pg_company_id", "delegations_pg_partner_id"]
    raw = sqlite3.connect(path)
    for name in added:
        raw.execute(f"DROP INDEX {name}")
    for later in range(4, SCHEMA_VERSION + 1):  # what versions after 3 added
        for table, column in ADDED_COLUMNS.get(later, ()):
            raw.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    raw.execute("DELETE FROM schema_version WHERE version > 3")
    raw.commit()
    raw.close()
    reopened = SQLiteStore(path)
    try:
        assert reopened.schema_version() == SCHEMA_VERSION
        assert Portal(store=reopened).list_users(admin, limit=5, after="usr_0010") == page
    finally:
        reopened.close()
    raw = sqlite3.connect(path)
    indexes = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    raw.close()
    assert set(added) <= indexes
