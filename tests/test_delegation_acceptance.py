"""A delegation keeps its acceptance (``accepted_at``, ``accepted_by``) once it is revoked or
ended: the consent behind every right it granted can still be shown, where ``decided_at``
and ``decided_by`` name the last decision only. Schema version 5 adds the two columns and
fills them in for the active delegations of an older file or database."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from delegation_kit import add_customer, add_partner, consent, make_portal
from partnerkit import Delegation, DelegationStatus, Portal
from partnerkit.ports import Store
from partnerkit.stores._sql import ADDED_COLUMNS
from partnerkit.stores.sqlite import SCHEMA_VERSION, SQLiteStore
from partnerkit.testing import FakeClock

pytest_plugins = ["pg_fixtures"]

_HOUR = timedelta(hours=1)


def _stored(store: Store, delegation: Delegation) -> Delegation:
    with store.unit_of_work(write=False) as uow:
        found = uow.delegations.get(delegation.id)
    assert found is not None
    return found


def test_the_acceptance_outlives_the_revocation_and_the_end(any_store: Store) -> None:
    """Accepted at one time by the customer's global admin, revoked (or ended) later by
    someone else: the delegation names both, on every store."""
    clock = FakeClock()
    portal = make_portal(any_store, clock)
    partner = add_partner(portal, "Contoso Partners", "contoso")
    revoker = add_customer(portal, "Fabrikam", "fabrikam.example")
    ender = add_customer(portal, "Northwind", "northwind.example")
    accepted_at = clock()
    revoked = consent(portal, partner.admin, revoker)
    ended = consent(portal, partner.admin, ender)
    for active, customer in ((revoked, revoker), (ended, ender)):
        assert (active.accepted_at, active.accepted_by) == (accepted_at, customer.admin.id)
        assert (active.decided_at, active.decided_by) == (accepted_at, customer.admin.id)
    clock.advance(_HOUR)
    revoked = portal.revoke_delegation(revoker.admin, revoked.id)
    ended = portal.end_delegation(partner.full, ended.id)
    for over, by in ((revoked, revoker.admin.id), (ended, partner.full.id)):
        assert over == _stored(any_store, over)
        assert (over.decided_at, over.decided_by) == (accepted_at + _HOUR, by)
    assert (revoked.accepted_at, revoked.accepted_by) == (accepted_at, revoker.admin.id)
    assert (ended.accepted_at, ended.accepted_by) == (accepted_at, ender.admin.id)
    [listed] = portal.list_delegations(revoker.admin)
    assert listed.accepted_at == accepted_at


@pytest.mark.parametrize("how", ["accept_delegation", "redeem", "sign_up"])
def test_every_way_of_consenting_records_the_acceptance(any_store: Store, how: str) -> None:
    """A consent through ``accept_delegation``, through ``redeem(...,
    accept_delegated_admin=True)`` and through a sign-up that consents: all three record
    who accepted, and when; an expired delegation keeps it too."""
    clock = FakeClock()
    portal = make_portal(any_store, clock)
    partner = add_partner(portal, "Contoso Partners", "contoso")
    url = portal.offer_delegated_admin(partner.admin, duration=timedelta(days=1))
    clock.advance(_HOUR)
    if how == "sign_up":
        _, admin, redemption = portal.sign_up(
            url,
            name="Fabrikam",
            domain="fabrikam.example",
            admin_email="kim@fabrikam.example",
            accept_delegated_admin=True,
        )
        delegation = redemption.delegation
    else:
        customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=())
        admin = customer.admin
        if how == "redeem":
            delegation = portal.redeem(url, admin, accept_delegated_admin=True).delegation
        else:
            pending = portal.redeem(url, admin, accept_delegated_admin=None).delegation
            assert pending is not None
            assert (pending.accepted_at, pending.accepted_by) == (None, None)
            delegation = portal.accept_delegation(admin, pending.id)
    assert delegation is not None
    assert (delegation.accepted_at, delegation.accepted_by) == (clock(), admin.id)
    clock.advance(timedelta(days=2))
    [expired] = portal.list_delegations(admin)
    assert expired.status is DelegationStatus.EXPIRED
    assert (expired.accepted_at, expired.accepted_by) == (delegation.accepted_at, admin.id)


def test_a_declined_or_pending_delegation_was_never_accepted(any_store: Store) -> None:
    portal = make_portal(any_store, FakeClock())
    partner = add_partner(portal, "Contoso Partners", "contoso")
    declined = consent(
        portal, partner.admin, add_customer(portal, "F", "f.example", roles=()), accept=False
    )
    pending = consent(
        portal, partner.admin, add_customer(portal, "N", "n.example", roles=()), accept=None
    )
    assert declined.status is DelegationStatus.DECLINED
    assert declined.decided_by is not None
    for delegation in (declined, pending):
        assert (delegation.accepted_at, delegation.accepted_by) == (None, None)
        assert _stored(portal.store, delegation) == delegation


# -- schema version 5 -----------------------------------------------------------------------------


def _scene(store: Store) -> tuple[Delegation, Delegation]:
    """An active delegation, and one accepted and then revoked."""
    clock = FakeClock()
    portal = Portal(store=store, clock=clock)
    partner = add_partner(portal, "Contoso Partners", "contoso")
    active = consent(portal, partner.admin, add_customer(portal, "F", "f.example", roles=()))
    customer = add_customer(portal, "N", "n.example", roles=())
    revoked = consent(portal, partner.admin, customer)
    clock.advance(_HOUR)
    return active, portal.revoke_delegation(customer.admin, revoked.id)


def _check_backfill(store: Store, active: Delegation, revoked: Delegation) -> None:
    assert store.schema_version() == SCHEMA_VERSION == 6  # type: ignore[attr-defined]
    # The active one's decision is its acceptance; the revoked one's was overwritten.
    assert _stored(store, active) == active
    assert _stored(store, revoked) == attrs.evolve(revoked, accepted_at=None, accepted_by=None)


def _drop_version_5(execute: Callable[[str], object]) -> None:
    """Take the schema back to version 4: the columns of version 5 and of every later one."""
    for version, added in ADDED_COLUMNS.items():
        for table, column in added if version >= 5 else ():
            execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    execute("DELETE FROM schema_version WHERE version > 4")


def test_opening_a_version_4_sqlite_file_fills_in_the_acceptances(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    store = SQLiteStore(path)
    active, revoked = _scene(store)
    store.close()
    raw = sqlite3.connect(path)
    _drop_version_5(raw.execute)
    raw.commit()
    raw.close()
    reopened = SQLiteStore(path)
    try:
        _check_backfill(reopened, active, revoked)
    finally:
        reopened.close()


def test_opening_a_version_4_postgres_database_fills_in_the_acceptances(empty_dsn: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    from partnerkit.stores.postgres import PostgresStore

    store = PostgresStore(empty_dsn)
    try:
        active, revoked = _scene(store)
    finally:
        store.close()
    with psycopg.connect(empty_dsn, autocommit=True) as raw:
        _drop_version_5(raw.execute)
    reopened = PostgresStore(empty_dsn)
    try:
        _check_backfill(reopened, active, revoked)
    finally:
        reopened.close()
