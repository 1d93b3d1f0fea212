"""Sixteen threads of read-modify-writes through the Portal lose nothing, on a SQLite file and on
PostgreSQL; and with the protection taken away, the same threads do lose updates.

Two kinds of read-modify-write, on one subscription that every thread changes:

- *Inside one use case*: ``Portal.change_licenses`` reads the subscription (its version and
  its licence count, which the audit event records as ``was``) and writes the next version,
  in one unit of work. Nothing may be lost: the acknowledged writes are exactly the versions
  2, 3, ... of the subscription, the stored one is the last of them, and in the audit trail
  every change's ``was`` is what the change before it wrote.
- *Across calls*: a portal page shows the subscription (``list_subscriptions``: version *v*,
  licences *n*) and a later request saves *n + 1* as version *v + 1* through the store. The
  version check refuses every stale save with ``Conflict``, so the final count is the
  initial one plus the acknowledged saves, exactly.

Every call either succeeds or raises ``Conflict``; anything else fails the test. Portals run
with ``conflict_retries=0``, so that a conflict is seen rather than retried away. (Both
stores queue the Portal's writers, SQLite with ``BEGIN IMMEDIATE`` and PostgreSQL with its
writers' lock, so the Portal's own changes rarely meet one; the saves across calls meet many.)

The last two tests take the protection away and show the loss: without the version check the
saves across calls lose increments on either store; and on PostgreSQL, whose read committed
transactions let two writers read the same row, the Portal's own writes are lost once both
the writers' lock and the version check are gone.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import attrs
import pytest

from partnerkit import Catalog, Conflict, OfferLine, Portal, Service, Subscription
from partnerkit.ports import Store
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FAST_HASHER, FakeClock, World, build_world, snapshot

pytest_plugins = ["pg_fixtures"]

THREADS = 16
ROUNDS = 200
#: A service whose bounds leave room for a distinct licence count per write.
SEATS = Service(sku="SEATS", name="Seats", min_licenses=1, max_licenses=1_000_000)


@attrs.frozen
class Shop:
    """A portal whose world's customer holds one subscription of ``SEATS``, 1 licence."""

    world: World
    subscription: Subscription

    @property
    def portal(self) -> Portal:
        return self.world.portal

    @property
    def store(self) -> Store:
        return self.world.portal.store


def open_shop(store: Store) -> Shop:
    """Populate *store* through a Portal that never retries a conflict."""
    portal = Portal(
        store=store,
        catalog=Catalog([SEATS]),
        clock=FakeClock(),
        password_hasher=FAST_HASHER,
        conflict_retries=0,
    )
    world = build_world(portal)
    url, _ = portal.create_purchase_offer(world.partner_admin, [OfferLine(sku="SEATS", licenses=1)])
    (subscription,) = portal.redeem(url, world.customer_admin).subscriptions
    return Shop(world, subscription)


def stored(shop: Shop) -> Subscription:
    with shop.store.unit_of_work(write=False) as uow:
        found = uow.subscriptions.get(shop.subscription.id)
    assert found is not None
    return found


def postgres_store(dsn: str) -> Store:
    from partnerkit.stores.postgres import PostgresStore

    return PostgresStore(dsn, max_size=THREADS)


def needs_postgres() -> None:
    if find_spec("psycopg") is None and not os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"):
        pytest.skip("psycopg is not installed (partnerkit[postgres])")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A SQLite file, or a PostgreSQL database of the test session's throwaway server."""
    if request.param == "sqlite":
        made: Store = SQLiteStore(tmp_path / "portal.db")
    else:
        needs_postgres()
        made = postgres_store(request.getfixturevalue("fresh_dsn"))
    yield made
    made.close()


def in_threads(work: Callable[[int], None], threads: int = THREADS) -> None:
    """Run ``work(k)`` for k in 0..threads-1, released together; re-raise what went wrong."""
    start = threading.Barrier(threads)
    failures: list[BaseException] = []

    def run(k: int) -> None:
        try:
            start.wait(30)
            work(k)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert not any(w.is_alive() for w in workers), "a worker hung"
    if failures:
        raise failures[0]


# -- inside one use case ---------------------------------------------------------------------


@attrs.define
class Tally:
    """What the threads saw and were told, kept under a lock."""

    lock: threading.Lock = attrs.Factory(threading.Lock)
    #: version -> licences, for every acknowledged write.
    acknowledged: dict[int, int] = attrs.Factory(dict)
    conflicts: int = 0
    #: Per thread, in order: the (version, licences) it read, and the version of its own
    #: last acknowledged write before that read (0 if none).
    reads: dict[int, list[tuple[int, int, int]]] = attrs.Factory(dict)

    def ack(self, version: int, licenses: int) -> None:
        with self.lock:
            assert version not in self.acknowledged, f"two writes were told version {version}"
            self.acknowledged[version] = licenses

    def conflict(self) -> None:
        with self.lock:
            self.conflicts += 1


def change_from_threads(shop: Shop, rounds: int) -> Tally:
    """Every thread reads the subscription through the Portal and changes it, *rounds* times,
    each write with a licence count no other write uses."""
    portal, admin, sub_id = shop.portal, shop.world.customer_admin, shop.subscription.id
    tally = Tally()

    def work(k: int) -> None:
        reads = tally.reads[k] = []
        mine = 0
        for n in range(rounds):
            (seen,) = portal.list_subscriptions(admin)
            reads.append((seen.version, seen.licenses, mine))
            try:
                changed = portal.change_licenses(admin, sub_id, 2 + k * rounds + n)
            except Conflict:
                tally.conflict()
            else:
                tally.ack(changed.version, changed.licenses)
                mine = changed.version

    in_threads(work)
    return tally


def change_events(shop: Shop) -> list[dict[str, str]]:
    """The details of the successful licence changes, in audit order."""
    return [
        dict(e.detail)
        for e in snapshot(shop.store).audit
        if e.action == "subscription.change_licenses" and e.outcome == "success"
    ]


def test_sixteen_threads_changing_licences_through_the_portal_lose_no_write(
    store: Store,
) -> None:
    """16 threads x 200 ``change_licenses``, each after a ``list_subscriptions``: every call
    is acknowledged or refused with ``Conflict``; the acknowledged writes are exactly one
    version each, the stored subscription is the newest of them; in the audit trail each
    change read what the change before it wrote; and every read saw a committed state, never
    older than the reader's own last write."""
    shop = open_shop(store)
    tally = change_from_threads(shop, ROUNDS)

    acknowledged = tally.acknowledged
    assert len(acknowledged) + tally.conflicts == THREADS * ROUNDS
    final = stored(shop)
    assert sorted(acknowledged) == list(range(2, final.version + 1))
    assert final.licenses == acknowledged[final.version]

    events = change_events(shop)
    assert [int(e["licenses"]) for e in events] == [acknowledged[v] for v in sorted(acknowledged)]
    assert [int(e["was"]) for e in events] == [1] + [int(e["licenses"]) for e in events[:-1]]

    committed = {1: 1, **acknowledged}
    for k, reads in tally.reads.items():
        assert all(committed.get(v) == n for v, n, _ in reads), f"thread {k} read a torn state"
        assert all(v >= mine for v, _, mine in reads), f"thread {k} missed its own write"
        versions = [v for v, _, _ in reads]
        assert versions == sorted(versions), f"thread {k} read an older state after a newer one"
    assert shop.portal.verify_audit_trail() == len(snapshot(shop.store).audit)


# -- across calls ----------------------------------------------------------------------------


def increment_from_threads(shop: Shop, rounds: int) -> tuple[int, int]:
    """Every thread, *rounds* times: read the subscription through the Portal, then save its
    licences + 1 as the next version through the store. Returns (acknowledged, conflicts)."""
    portal, admin, store = shop.portal, shop.world.customer_admin, shop.store
    counts = {"acknowledged": 0, "conflicts": 0}
    lock = threading.Lock()

    def work(_k: int) -> None:
        for _ in range(rounds):
            (seen,) = portal.list_subscriptions(admin)
            saved = attrs.evolve(seen, licenses=seen.licenses + 1, version=seen.version + 1)
            try:
                with store.unit_of_work() as uow:
                    uow.subscriptions.update(saved)
                    uow.commit()
            except Conflict:
                outcome = "conflicts"
            else:
                outcome = "acknowledged"
            with lock:
                counts[outcome] += 1

    in_threads(work)
    return counts["acknowledged"], counts["conflicts"]


def test_sixteen_threads_saving_what_the_portal_showed_them_lose_no_increment(
    store: Store,
) -> None:
    """16 threads x 200 read (through the Portal) then save licences + 1 with the version they
    read: every save is acknowledged or refused with ``Conflict``, and the licence count is
    the initial one plus the acknowledged saves, exactly."""
    shop = open_shop(store)
    acknowledged, conflicts = increment_from_threads(shop, ROUNDS)
    assert acknowledged + conflicts == THREADS * ROUNDS
    final = stored(shop)
    assert final.licenses == 1 + acknowledged
    assert final.version == 1 + acknowledged
    assert conflicts > 0, "no save was ever stale: the threads never raced, the test proved nothing"


# -- without the protection ------------------------------------------------------------------


class UncheckedSQLiteStore(SQLiteStore):
    """A ``SQLiteStore`` whose updates no longer check the version they replace."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        for sql in self.tables.values():
            for name in ("update_narrow", "update_full"):
                checked = sql.statements[name]
                sql.statements[name] = checked.replace("AND version = ?", "AND ? IS NOT NULL")
                assert sql.statements[name] != checked, "the update changed shape; adapt this"


def unchecked_postgres_store(dsn: str, *, unlocked: bool = False) -> Store:
    """A ``PostgresStore`` whose updates no longer check versions; with *unlocked*, whose
    writers no longer queue for the writers' lock either."""
    from partnerkit.stores.postgres import PostgresStore

    class Unchecked(PostgresStore):
        def __init__(self) -> None:
            super().__init__(dsn, max_size=THREADS)
            for sql in self.tables.values():
                # The update as run at once, and as checked later (the Portal's way).
                for name in ("guarded_update", "checked_update"):
                    checked = getattr(sql, name)
                    unchecked = checked.replace("AND version = %s", "AND %s::bigint IS NOT NULL")
                    assert unchecked != checked, "the update changed shape; adapt this"
                    setattr(sql, name, unchecked)

        def begin(self, write: bool) -> Any:
            if not unlocked:
                return super().begin(write)
            slot = self.pool.get()
            slot.cursor.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            return slot, None  # no chain head read under the lock: read when appending

    return Unchecked()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def unchecked_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store of either kind without the version check."""
    if request.param == "sqlite":
        made: Store = UncheckedSQLiteStore(tmp_path / "unchecked.db")
    else:
        needs_postgres()
        made = unchecked_postgres_store(request.getfixturevalue("fresh_dsn"))
    yield made
    made.close()


def test_without_the_version_check_saving_what_the_portal_showed_loses_increments(
    unchecked_store: Store,
) -> None:
    """The same read-then-save threads on a store that ignores versions: no save is refused,
    and the licence count ends below the initial one plus the acknowledged saves. This loss
    is what the version check prevents."""
    shop = open_shop(unchecked_store)
    acknowledged, conflicts = increment_from_threads(shop, rounds=50)
    assert conflicts == 0
    assert stored(shop).licenses < 1 + acknowledged, "nothing was lost: the threads never raced"


@pytest.mark.postgres
def test_on_postgres_without_the_writers_lock_and_the_version_check_portal_writes_are_lost(
    fresh_dsn: str,
) -> None:
    """On PostgreSQL (read committed) the Portal's own read-modify-write is safe only because
    writers queue for one lock and updates check versions: with both gone, two
    ``change_licenses`` read the same version, both are acknowledged, and one is lost."""
    needs_postgres()
    store = unchecked_postgres_store(fresh_dsn, unlocked=True)
    try:
        shop = open_shop(store)
        acknowledged: list[int] = []
        lock = threading.Lock()
        portal, admin, sub_id = shop.portal, shop.world.customer_admin, shop.subscription.id

        def work(k: int) -> None:
            for n in range(50):
                try:
                    changed = portal.change_licenses(admin, sub_id, 2 + k * 50 + n)
                except Conflict:
                    continue
                with lock:
                    acknowledged.append(changed.version)

        in_threads(work)
        final = stored(shop)
    finally:
        store.close()
    assert final.version < 1 + len(acknowledged), "nothing was lost: the threads never raced"
    assert len(set(acknowledged)) < len(acknowledged)  # two writes were told the same version
