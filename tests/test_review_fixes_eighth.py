"""Fixes from the eighth session's review of its own change to the stores (closing a store,
and units of work used from another thread); the rules themselves are in the contract suite
(``partnerkit.testing.contract``).

- ``SQLiteStore.close()`` raised a raw ``sqlite3.ProgrammingError`` after a connection had
  been discarded (a failed ``ROLLBACK``), leaving the other connections open.
- It kept, for ever, the connection of a unit of work whose thread had ended without ending
  it: that connection held the file's write lock until the process exited.
- On ``SQLiteStore(":memory:")``, ``close()`` inside the thread's own unit of work waited for
  ever for itself.
- A unit of work that began while the store was closing opened, and then failed with
  "storage error" as its connection was closed under it.
- ``MemoryStore``: a unit of work waiting for its turn when the store was closed got it.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from partnerkit import Company, CompanyKind, PartnerKitError
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore


def _company(i: int) -> Company:
    return Company(
        id=f"cmp_{i}", kind=CompanyKind.CUSTOMER, name=f"Customer {i}", domain=f"c{i}.example"
    )


def _add(store: SQLiteStore | MemoryStore, i: int) -> None:
    with store.unit_of_work() as uow:
        uow.companies.add(_company(i))
        uow.commit()


def test_closing_after_a_connection_was_discarded_closes_the_rest(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    _add(store, 1)
    other: list[object] = []
    worker = threading.Thread(target=lambda: other.append(store.acquire()))
    worker.start()
    worker.join()
    store.discard(store.acquire())  # what a ROLLBACK that failed does
    store.close()
    with pytest.raises(Exception, match="closed"):
        other[0].execute("SELECT 1")  # type: ignore[attr-defined]


def test_a_unit_of_work_its_thread_never_ended_does_not_keep_the_file_locked(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path, timeout=0)

    def abandon() -> None:
        uow = store.unit_of_work()
        uow.__enter__()
        uow.companies.add(_company(1))  # holds the write lock; never committed nor left

    thread = threading.Thread(target=abandon)
    thread.start()
    thread.join()
    store.close()
    again = SQLiteStore(path, timeout=0)
    try:
        _add(again, 2)  # was Conflict("the database is busy"): the lock outlived the store
        with again.unit_of_work(write=False) as uow:
            assert uow.companies.get("cmp_1") is None  # never committed: rolled back
            assert uow.companies.get("cmp_2") is not None
    finally:
        again.close()


def test_closing_an_in_memory_store_inside_its_own_unit_of_work_is_refused() -> None:
    store = SQLiteStore(":memory:")
    outcome: list[object] = []

    def run() -> None:
        with store.unit_of_work() as uow:
            uow.companies.add(_company(1))
            try:
                store.close()
                outcome.append("closed")
            except PartnerKitError as exc:
                outcome.append(exc)
            uow.commit()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "close() waited for its own thread's unit of work"
    assert isinstance(outcome[0], PartnerKitError), outcome
    with store.unit_of_work(write=False) as uow:  # not closed: the data is still there
        assert uow.companies.get("cmp_1") is not None
    store.close()


def test_closing_a_file_store_inside_its_own_unit_of_work_lets_it_finish(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    with store.unit_of_work() as uow:
        uow.companies.add(_company(1))
        store.close()
        uow.companies.add(_company(2))
        uow.commit()
    with pytest.raises(PartnerKitError, match="closed"), store.unit_of_work(write=False):
        pass
    again = SQLiteStore(path)
    try:
        with again.unit_of_work(write=False) as uow:
            assert uow.companies.count(kind=CompanyKind.CUSTOMER) == 2
    finally:
        again.close()


def test_a_unit_of_work_that_begins_while_the_store_closes_is_refused_as_after(
    tmp_path: Path,
) -> None:
    """The store is closed between the moment a unit of work takes its connection and its
    ``BEGIN``: it is refused with "the store is closed", not a "storage error"."""
    store = SQLiteStore(tmp_path / "s.db")
    _add(store, 1)
    taken = store._connection_of

    def connection_then_close(session):  # type: ignore[no-untyped-def]
        conn = taken(session)
        closer = threading.Thread(target=store.close)
        closer.start()
        closer.join()
        return conn

    store._connection_of = connection_then_close  # type: ignore[method-assign]
    with pytest.raises(PartnerKitError) as refused, store.unit_of_work(write=False):
        pass
    assert str(refused.value) == "the store is closed"


def test_a_memory_unit_of_work_waiting_for_its_turn_when_the_store_closes_is_refused() -> None:
    store = MemoryStore()
    outcome: list[object] = []

    def wait_then_write() -> None:
        try:
            with store.unit_of_work() as uow:
                uow.companies.add(_company(2))
                uow.commit()
            outcome.append("written")
        except PartnerKitError as exc:
            outcome.append(exc)

    waiting = threading.Thread(target=wait_then_write)
    with store.unit_of_work() as uow:
        uow.companies.add(_company(1))
        waiting.start()
        _until_waiting_for_the_lock(waiting)
        store.close()
        uow.commit()  # the open one runs to its end
    waiting.join(30)
    assert [str(o) for o in outcome] == ["the store is closed"]


def _until_waiting_for_the_lock(thread: threading.Thread) -> None:
    """Return once *thread* is inside ``MemoryStore``'s ``__enter__`` (waiting for the lock
    this thread holds)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or 0)
        while frame is not None:
            if frame.f_code.co_name == "__enter__" and "memory" in frame.f_code.co_filename:
                return
            frame = frame.f_back
        time.sleep(0.001)
    raise AssertionError("the other unit of work never began")
