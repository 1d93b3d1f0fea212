"""``SQLiteStore``'s units of work share their thread's repositories and connection.

A thread's repositories are made once and run in whatever unit of work is open in that
thread; these tests hold the edges of that: a unit of work made in one thread and opened in
another, a second unit of work that fails to open beside the first, two threads with a unit
of work open at once, and a forked child. Every test uses a real file in ``tmp_path``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _forking import in_child
from partnerkit import PartnerKitError
from partnerkit.directory import Company, CompanyKind
from partnerkit.stores.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A store on a new file."""
    store = SQLiteStore(tmp_path / "portal.db")
    yield store
    store.close()


def _company(n: int) -> Company:
    return Company(
        id=f"cmp_{n:03d}", kind=CompanyKind.CUSTOMER, name=f"Customer {n}", domain=f"c{n}.example"
    )


class _Thread(threading.Thread):
    """A thread whose failure is raised again by :meth:`finish`, in the test's thread."""

    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__()
        self.work = work
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        self.join(timeout=30)
        assert not self.is_alive()
        if self.error is not None:
            raise self.error


def _in_thread(work: Callable[[], None]) -> None:
    thread = _Thread(work)
    thread.start()
    thread.finish()


def test_a_unit_of_work_made_in_one_thread_runs_in_the_thread_that_opens_it(
    store: SQLiteStore,
) -> None:
    """Made here, opened, used and committed in another thread: its repositories are that
    thread's, on that thread's connection."""
    uow = store.unit_of_work()

    def work() -> None:
        with uow:
            uow.companies.add(_company(1))
            assert uow.companies.get(_company(1).id) == _company(1)
            uow.commit()

    _in_thread(work)
    with store.unit_of_work(write=False) as reader:
        assert reader.companies.get(_company(1).id) == _company(1)


def test_a_unit_of_work_that_cannot_open_beside_another_leaves_that_one_working(
    store: SQLiteStore,
) -> None:
    """A second unit of work in the same thread fails to begin (the connection is in a
    transaction); the first one's repositories still run in the first one, which commits."""
    with store.unit_of_work() as first:
        first.companies.add(_company(1))
        with pytest.raises(PartnerKitError), store.unit_of_work(write=False):
            pass
        first.companies.add(_company(2))
        assert first.companies.count(kind=CompanyKind.CUSTOMER) == 2
        first.commit()
    with store.unit_of_work(write=False) as reader:
        assert set(reader.companies.get_many([_company(1).id, _company(2).id])) == {
            _company(1).id,
            _company(2).id,
        }


def test_each_thread_reads_and_writes_in_its_own_unit_of_work(store: SQLiteStore) -> None:
    """A writer's uncommitted row is visible to its own repositories only; a reader open at
    the same time in another thread sees the committed state, and cannot write."""
    added = threading.Event()
    checked = threading.Event()

    def writer() -> None:
        with store.unit_of_work() as uow:
            uow.companies.add(_company(1))
            added.set()
            assert checked.wait(timeout=30)
            assert uow.companies.get(_company(1).id) == _company(1)
            uow.commit()

    thread = _Thread(writer)
    thread.start()
    try:
        assert added.wait(timeout=30)
        with store.unit_of_work(write=False) as reader:
            assert reader.companies.get(_company(1).id) is None
            with pytest.raises(PartnerKitError, match="read-only"):
                reader.companies.add(_company(2))
            checked.set()
            thread.join(timeout=30)  # the writer reads and commits while the reader is open
            assert reader.companies.get(_company(1).id) is None
    finally:
        checked.set()
        thread.finish()
    with store.unit_of_work(write=False) as reader:
        assert reader.companies.get(_company(1).id) == _company(1)
        assert reader.companies.get(_company(2).id) is None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connection(store: SQLiteStore) -> None:
    """A store used before a fork gives the child a connection of its own (not the
    parent's), through which the child reads and writes."""
    with store.unit_of_work() as uow:
        uow.companies.add(_company(1))
        uow.commit()
    parent_conn = store.acquire()
    store.release(parent_conn)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            conn = store.acquire()
            store.release(conn)
            with store.unit_of_work() as uow:
                found = uow.companies.get(_company(1).id) == _company(1)
                uow.companies.add(_company(2))
                uow.commit()
            code = 0 if conn is not parent_conn and found else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.acquire() is parent_conn
    store.release(parent_conn)
    with store.unit_of_work(write=False) as uow:
        assert uow.companies.get(_company(2).id) == _company(2)


def test_a_unit_of_work_open_at_a_fork_is_the_parents_alone(store: SQLiteStore) -> None:
    """Forked while a write unit of work is open, the child inherits it, and its
    connection and transaction. Every call the child makes on it raises, and leaving it
    sends nothing (found in review: the child ran statements and committed on the parent's
    connection, appending to the parent's write-ahead log under the parent's lock); the
    parent goes on and commits, and the child's write is nowhere."""
    with store.unit_of_work() as uow:
        uow.companies.add(_company(1))

        def child() -> str:
            outcome = []
            for step in (
                lambda: uow.companies.get(_company(1).id),
                lambda: uow.companies.add(_company(2)),
                uow.commit,
            ):
                try:
                    step()
                    outcome.append("ran")
                except PartnerKitError as exc:
                    outcome.append("forked" if "forked" in str(exc) else type(exc).__name__)
            uow.__exit__(None, None, None)
            # A unit of work of the child's own works.
            with store.unit_of_work(write=False) as own:
                outcome.append(str(own.companies.get(_company(1).id)))
            return " ".join(outcome)

        reported = in_child(child)
        assert reported.split(" ", 3)[:3] == ["PartnerKitError", "PartnerKitError", "forked"]
        assert reported.endswith("None")  # the parent's write is not committed yet
        uow.companies.add(_company(3))
        uow.commit()
    with store.unit_of_work(write=False) as uow:
        assert uow.companies.get(_company(1).id) == _company(1)
        assert uow.companies.get(_company(2).id) is None
        assert uow.companies.get(_company(3).id) == _company(3)
    conn = store.acquire()
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        store.release(conn)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_during_a_write_is_refused_writes_at_once_and_says_why(
    tmp_path: Path,
) -> None:
    """SQLite keeps the write lock of the parent's unit of work in the child's copy of its
    lock table for as long as the child lives: every write of the child, through the store
    or a new one on the same file (by another spelling of its path), waited out the
    timeout and got ``Conflict`` ("retry"), for ever. It is refused at once with a
    ``PartnerKitError`` that says why; the child still reads, and the parent still writes."""
    path = tmp_path / "portal.db"
    store = SQLiteStore(path, timeout=5)
    try:
        with store.unit_of_work() as uow:
            uow.companies.add(_company(1))

            def child() -> str:
                import time

                outcome = []
                for each in (store, SQLiteStore(tmp_path / "." / "portal.db", timeout=5)):
                    began = time.monotonic()
                    try:
                        with each.unit_of_work() as own:
                            own.companies.add(_company(2))
                            own.commit()
                        outcome.append("wrote")
                    except PartnerKitError as exc:
                        waited = time.monotonic() - began
                        said = "forked while its parent was inside a write" in str(exc)
                        outcome.append(f"{type(exc).__name__}:{said}:{waited < 1}")
                with store.unit_of_work(write=False) as reader:
                    outcome.append(str(reader.companies.get(_company(2).id)))
                return " ".join(outcome)

            reported = in_child(child)
            uow.commit()
        assert reported == "PartnerKitError:True:True PartnerKitError:True:True None"
        with store.unit_of_work() as uow:  # the parent is not held back
            uow.companies.add(_company(3))
            uow.commit()
    finally:
        store.close()
