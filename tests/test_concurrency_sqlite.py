"""Concurrent writers on one SQLite file lose nothing, because every update names the
version it read; and with that check removed, updates are lost (shown, not assumed)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from partnerkit import AdminRole, Conflict, Portal, User
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FakeClock, World, build_world, snapshot

THREADS = 8
ROUNDS = 12
ROLES = (None, AdminRole.BILLING_ADMIN, AdminRole.SERVICE_ADMIN, AdminRole.PASSWORD_ADMIN)


class UncheckedSQLiteStore(SQLiteStore):
    """A ``SQLiteStore`` whose updates no longer check the version they replace."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        for sql in self.tables.values():
            for name in ("update_narrow", "update_full"):
                checked = sql.statements[name]
                # Keep the parameter count; only drop the condition on the stored version.
                unchecked = checked.replace("AND version = ?", "AND ? IS NOT NULL")
                assert unchecked != checked, "the update statement changed shape; adapt this"
                sql.statements[name] = unchecked


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The testing kit's world on a SQLite file."""
    store = SQLiteStore(tmp_path / "concurrency.db")
    yield build_world(Portal(store=store, clock=FakeClock()))
    store.close()


def _run_threads(targets: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a worker hung"


def _read(store: SQLiteStore, user_id: str) -> User:
    with store.unit_of_work(write=False) as uow:
        user = uow.users.get(user_id)
    assert user is not None
    return user


def test_sixteen_threads_changing_one_user_lose_nothing(world: World) -> None:
    """Eight threads read-modify-write a user's roles through the store (read in one unit of
    work, write in another, retry on ``Conflict``) while eight change them through
    ``portal.assign_roles``. Every call commits or raises ``Conflict``; every acknowledged
    write is exactly one version; the stored user is the last acknowledged write; and the
    audit trail records each Portal write once."""
    portal = world.portal
    store = portal.store
    assert isinstance(store, SQLiteStore)
    target = world.partner_agent
    acknowledged: dict[int, User] = {}
    unexpected: list[BaseException] = []
    conflicts = [0]
    lock = threading.Lock()

    def acknowledge(user: User) -> None:
        with lock:
            assert user.version not in acknowledged
            acknowledged[user.version] = user

    def through_the_store(k: int) -> None:
        try:
            for n in range(ROUNDS):
                while True:
                    seen = _read(store, target.id)
                    mine = attrs.evolve(
                        seen,
                        admin_role=ROLES[(k + n) % len(ROLES)],
                        display_name=f"store writer {k} round {n}",
                        version=seen.version + 1,
                    )
                    try:
                        with store.unit_of_work() as uow:
                            uow.users.update(mine)
                            uow.commit()
                    except Conflict:
                        with lock:
                            conflicts[0] += 1
                        continue
                    acknowledge(mine)
                    break
        except BaseException as exc:  # reported by the main thread
            unexpected.append(exc)

    portal_acks = [0]

    def through_the_portal(k: int) -> None:
        try:
            for n in range(ROUNDS):
                try:
                    user = portal.assign_roles(
                        world.partner_admin, target.id, admin_role=ROLES[(k * 3 + n) % len(ROLES)]
                    )
                except Conflict:
                    continue
                acknowledge(user)
                with lock:
                    portal_acks[0] += 1
        except BaseException as exc:  # reported by the main thread
            unexpected.append(exc)

    _run_threads(
        [lambda k=k: through_the_store(k) for k in range(THREADS)]
        + [lambda k=k: through_the_portal(k) for k in range(THREADS)]
    )

    assert unexpected == []
    final = _read(store, target.id)
    assert final.version == 1 + len(acknowledged)
    assert sorted(acknowledged) == list(range(2, final.version + 1))
    assert final == acknowledged[final.version]
    assert len(acknowledged) >= THREADS * ROUNDS  # every store writer retried to success
    assert conflicts[0] > 0, "no stale write was ever refused: the test proved nothing"
    events = snapshot(store).audit
    portal_events = [
        e for e in events if e.action == "user.assign_roles" and e.target_id == target.id
    ]
    assert [e.outcome for e in portal_events] == ["success"] * portal_acks[0]
    assert portal.verify_audit_trail() == len(events)


def _lockstep_writers(store: SQLiteStore, user_id: str) -> tuple[int, int]:
    """Eight writers read the same version, wait for each other, then all write.

    Returns the number of acknowledged writes and the final stored version.
    """
    barrier = threading.Barrier(THREADS)
    acked: list[int] = []
    refused: list[int] = []
    unexpected: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            seen = _read(store, user_id)
            barrier.wait(10)
            mine = attrs.evolve(seen, display_name=f"writer {k}", version=seen.version + 1)
            with store.unit_of_work() as uow:
                uow.users.update(mine)
                uow.commit()
            acked.append(k)
        except Conflict:
            refused.append(k)
        except BaseException as exc:  # reported by the main thread
            unexpected.append(exc)

    _run_threads([lambda k=k: writer(k) for k in range(THREADS)])
    assert unexpected == []
    assert len(acked) + len(refused) == THREADS
    return len(acked), _read(store, user_id).version


def test_with_the_version_check_only_one_of_eight_stale_writers_wins(world: World) -> None:
    """Eight writers holding the same version: one commits, seven get ``Conflict``."""
    store = world.portal.store
    assert isinstance(store, SQLiteStore)
    acked, version = _lockstep_writers(store, world.partner_agent.id)
    assert (acked, version) == (1, 2)


def test_without_the_version_check_updates_are_lost(tmp_path: Path) -> None:
    """The same eight writers on a store whose updates skip the version check all "succeed",
    yet the user moved only one version: seven acknowledged updates were silently lost.
    This is what the check in the update statement prevents."""
    store = UncheckedSQLiteStore(tmp_path / "unchecked.db")
    try:
        world = build_world(Portal(store=store, clock=FakeClock()))
        acked, version = _lockstep_writers(store, world.partner_agent.id)
    finally:
        store.close()
    assert acked == THREADS
    assert version == 2
    assert version < 1 + acked  # the loss
