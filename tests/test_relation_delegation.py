"""The active delegation kept on the partner's relation to the customer (schema version 2).

Decisions find the delegation a partner administers a customer through by key, through
their relation: consent sets it, revocation and the partner's end clear it, and opening a
database of schema version 1 (without the column) fills it from the delegations. The
decisions themselves are checked against the policy's reference model elsewhere; these
tests pin the bookkeeping (on PostgreSQL: tests/test_postgres_store.py).
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from partnerkit import Delegation, Permission, Portal
from partnerkit.ports import Store
from partnerkit.records import CustomerRelation
from partnerkit.stores._sql import ADDED_COLUMNS
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SCHEMA_VERSION, SQLiteStore
from partnerkit.testing import FakeClock, World, build_world


def _pointer(store: Store, world: World) -> str | None:
    with store.unit_of_work(write=False) as uow:
        relation = uow.customer_relations.get(
            CustomerRelation.key(world.partner.id, world.customer.id)
        )
    return None if relation is None else relation.delegation_id


def _stored(
    store: Store, world: World, delegation_id: str
) -> tuple[CustomerRelation | None, Delegation | None]:
    """The partner's relation to the customer, and the delegation *delegation_id*."""
    with store.unit_of_work(write=False) as uow:
        relation = uow.customer_relations.get(
            CustomerRelation.key(world.partner.id, world.customer.id)
        )
        return relation, uow.delegations.get(delegation_id)


def _may_reset(world: World) -> bool:
    decision = world.portal.decide(
        world.partner_agent.id, Permission.RESET_PASSWORD, world.customer.id
    )
    return bool(decision)


def _consent(world: World, duration: timedelta | None = None) -> str:
    url = world.portal.offer_delegated_admin(world.partner_admin, duration=duration)
    redemption = world.portal.redeem(url, world.customer_admin, accept_delegated_admin=True)
    assert redemption.delegation is not None
    return redemption.delegation.id


@pytest.mark.parametrize("ending", ["revoke", "end"])
def test_consent_sets_the_relation_and_revoking_or_ending_clears_it(ending: str) -> None:
    world = build_world(Portal(store=MemoryStore(), clock=FakeClock()))
    store = world.portal.store
    assert _pointer(store, world) is None
    assert not _may_reset(world)
    first = _consent(world)
    assert _pointer(store, world) == first
    assert _may_reset(world)
    if ending == "revoke":
        world.portal.revoke_delegation(world.customer_admin, first)
    else:
        world.portal.end_delegation(world.partner_admin, first)
    assert _pointer(store, world) is None
    assert not _may_reset(world)
    # A new consent points at the new delegation.
    pending = world.portal.list_delegations(world.customer_admin)
    assert all(d.id == first for d in pending)
    second = _consent(world)
    assert second != first
    assert _pointer(store, world) == second
    assert _may_reset(world)


def test_consent_through_accept_delegation_sets_the_relation_too() -> None:
    world = build_world(Portal(store=MemoryStore(), clock=FakeClock()))
    url = world.portal.offer_delegated_admin(world.partner_admin)
    pending = world.portal.redeem(url, world.customer_admin).delegation
    assert pending is not None
    assert _pointer(world.portal.store, world) is None
    assert not _may_reset(world)
    world.portal.accept_delegation(world.customer_admin, pending.id)
    assert _pointer(world.portal.store, world) == pending.id
    assert _may_reset(world)


def test_a_delegation_with_an_end_date_is_judged_by_the_clock_at_each_decision() -> None:
    clock = FakeClock()
    world = build_world(Portal(store=MemoryStore(), clock=clock))
    _consent(world, duration=timedelta(days=1))
    assert _may_reset(world)
    clock.advance(timedelta(days=1))
    # Still pointed at, no longer active: the end date, read with the clock, decides.
    assert _pointer(world.portal.store, world) is not None
    assert not _may_reset(world)


def _downgrade_sqlite(path: Path, version: int = 1) -> None:
    """Make the file what schema *version* wrote: no later column, *version* recorded."""
    raw = sqlite3.connect(path)
    try:
        for later in range(version + 1, SCHEMA_VERSION + 1):
            for table, column in ADDED_COLUMNS.get(later, ()):
                raw.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        raw.execute("DELETE FROM schema_version WHERE version > ?", (version,))
        raw.commit()
    finally:
        raw.close()


def test_opening_a_version_1_sqlite_file_fills_in_the_active_delegations(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v1.db"
    store = SQLiteStore(path)
    world = build_world(Portal(store=store, clock=FakeClock()))
    active = _consent(world)
    store.close()
    _downgrade_sqlite(path)
    reopened = SQLiteStore(path)
    try:
        assert reopened.schema_version() == SCHEMA_VERSION == 6
        assert _pointer(reopened, world) == active
        moved = attrs.evolve(world, portal=Portal(store=reopened, clock=world.portal.clock))
        assert _may_reset(moved)
    finally:
        reopened.close()


def test_the_backfill_leaves_relations_without_an_active_delegation_empty(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v1.db"
    store = SQLiteStore(path)
    world = build_world(Portal(store=store, clock=FakeClock()))
    revoked = _consent(world)
    world.portal.revoke_delegation(world.customer_admin, revoked)
    store.close()
    _downgrade_sqlite(path)
    reopened = SQLiteStore(path)
    try:
        assert _pointer(reopened, world) is None
    finally:
        reopened.close()


@pytest.mark.parametrize("version", [1, 2])
def test_opening_an_older_sqlite_file_fills_in_the_end_date_of_the_delegation(
    tmp_path: Path, version: int
) -> None:
    """Schema version 3 copies the end date of the delegation a relation names onto it, so
    that a search leaves the customer out once it has passed."""
    path = tmp_path / f"v{version}.db"
    store = SQLiteStore(path)
    world = build_world(Portal(store=store, clock=FakeClock()))
    active = _consent(world, duration=timedelta(days=30))
    store.close()
    _downgrade_sqlite(path, version)
    reopened = SQLiteStore(path)
    try:
        assert reopened.schema_version() == SCHEMA_VERSION
        relation, delegation = _stored(reopened, world, active)
        assert relation is not None
        assert delegation is not None
        assert delegation.ends_at is not None
        assert relation.delegation_id == active
        assert relation.delegation_ends_at == delegation.ends_at
    finally:
        reopened.close()


def test_version_3_repairs_what_version_2_chose_and_who_advises(tmp_path: Path) -> None:
    """A file at version 2 may name, on a relation, a delegation past its end date where a
    later one is active (version 2's backfill took the least id), and may mark as advisor a
    partner whose trial another partner converted: opening it names the later delegation,
    with its end date, and marks advisors from the subscriptions."""
    path = tmp_path / "v2.db"
    clock = FakeClock()
    store = SQLiteStore(path)
    world = build_world(Portal(store=store, clock=clock))
    first = _consent(world, duration=timedelta(days=1))
    clock.advance(days=2)
    second = _consent(world, duration=timedelta(days=30))
    store.close()
    _downgrade_sqlite(path, 2)
    raw = sqlite3.connect(path)
    try:
        # What version 2 could have left: the first delegation named, and a stale advisor.
        raw.execute(
            "UPDATE customer_relations SET delegation_id = ?, advises = 1 WHERE id = ?",
            (first, CustomerRelation.key(world.partner.id, world.customer.id)),
        )
        raw.commit()
    finally:
        raw.close()
    reopened = SQLiteStore(path)
    try:
        relation, later = _stored(reopened, world, second)
        assert relation is not None
        assert later is not None
        assert relation.delegation_id == second
        assert relation.delegation_ends_at == later.ends_at
        assert relation.advises is False  # the partner advises no subscription here
    finally:
        reopened.close()


def test_version_3_gives_relations_the_names_of_customers_renamed_before_it(
    tmp_path: Path,
) -> None:
    """Before version 3 a relation kept the search name its customer had when it was made;
    opening an older file gives each the case-folded name of its customer now (Python's
    ``casefold``, which SQL's ``lower`` is not: a name it folds differently is left as it
    is when it is right)."""
    path = tmp_path / "v2.db"
    store = SQLiteStore(path)
    world = build_world(Portal(store=store, clock=FakeClock()))
    _consent(world)
    other, other_admin = world.portal.register_customer(
        name="Straße AG", domain="strasse.example", admin_email="a@strasse.example"
    )
    url = world.portal.offer_delegated_admin(world.partner_admin)
    world.portal.redeem(url, other_admin, accept_delegated_admin=True)
    key = CustomerRelation.key(world.partner.id, world.customer.id)
    other_key = CustomerRelation.key(world.partner.id, other.id)
    with store.unit_of_work(write=False) as uow:
        before = {k: uow.customer_relations.get(k) for k in (key, other_key)}
    store.close()
    _downgrade_sqlite(path, 2)
    raw = sqlite3.connect(path)
    try:  # a rename by a version before 3: the company only
        raw.execute(
            "UPDATE companies SET name = 'Northwind Traders' WHERE id = ?", (world.customer.id,)
        )
        raw.commit()
    finally:
        raw.close()
    reopened = SQLiteStore(path)
    try:
        with reopened.unit_of_work(write=False) as uow:
            renamed = uow.customer_relations.get(key)
            untouched = uow.customer_relations.get(other_key)
        assert renamed is not None
        assert before[key] is not None
        assert renamed.name_key == "northwind traders"
        assert renamed.version == before[key].version + 1
        assert untouched == before[other_key]  # "straße ag" is right: casefold says so
        found = Portal(store=reopened, clock=world.portal.clock).find_customers(
            world.partner_admin, "northwind"
        )
        assert [c.id for c in found] == [world.customer.id]
    finally:
        reopened.close()
