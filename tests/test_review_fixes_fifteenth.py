"""Fixes from the fifteenth session's reviews (operating a portal for months)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from partnerkit import ContactInfo, PartnerKitError, Portal, User
from partnerkit.stores.sqlite import SQLiteStore


def _contoso(path: str | Path) -> tuple[SQLiteStore, Portal, User]:
    """A store on *path*, a portal on it, and the global admin of its one partner."""
    store = SQLiteStore(path)
    portal = Portal(store=store)
    _, ana = portal.register_partner(
        name="Contoso",
        contact=ContactInfo(email="hi@contoso.example"),
        admin_email="ana@contoso.example",
    )
    return store, portal, ana


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd")
def test_a_thread_per_request_leaves_no_connection_behind(tmp_path: Path) -> None:
    """A server that runs each request in a thread of its own: each thread's connection
    (two descriptors: the file and its WAL) is closed as the thread ends, not kept until
    the store closes (the review's server ran out of descriptors after about 500)."""
    store, portal, ana = _contoso(tmp_path / "portal.db")
    before = _open_descriptors()
    failures: list[BaseException] = []

    def request() -> None:
        try:
            portal.profile(ana)
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    for _ in range(300):
        thread = threading.Thread(target=request)
        thread.start()
        thread.join()
    assert failures == []
    assert _open_descriptors() <= before + 4
    assert len(store._all) <= 2
    store.close()


def test_a_connection_kept_for_a_running_unit_of_work_survives_the_close(
    tmp_path: Path,
) -> None:
    """``close()`` keeps the connection of a unit of work running in another thread until
    it ends: dropping the threads' local storage (whose holders close connections) does
    not close that one under it."""
    store = SQLiteStore(tmp_path / "portal.db")
    opened, closed = threading.Event(), threading.Event()
    seen: list[object] = []

    def worker() -> None:
        with store.unit_of_work(write=False) as uow:
            opened.set()
            closed.wait(10)
            seen.append(uow.companies.get("nobody"))

    thread = threading.Thread(target=worker)
    thread.start()
    assert opened.wait(10)
    store.close()
    closed.set()
    thread.join(10)
    assert seen == [None]
    assert store._all == {}


_FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
from partnerkit.stores.sqlite import SQLiteStore
try:
    SQLiteStore(sys.argv[1])
except Exception as exc:
    print(type(exc).__name__, exc, sep=": ")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="RLIMIT_FSIZE is POSIX's")
def test_a_full_disk_at_the_first_open_says_so(tmp_path: Path) -> None:
    """The schema cannot be written (files limited to 16 KiB): the error is the disk's, not
    a ROLLBACK's "no transaction is active" (SQLite had rolled the failed COMMIT back)."""
    import subprocess
    import sys

    path = tmp_path / "portal.db"
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", _FULL_DISK, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("PartnerKitError: cannot open the SQLite store"), done.stdout
    assert "disk I/O error" in done.stdout or "disk is full" in done.stdout, done.stdout
    assert "no transaction" not in done.stdout
    store = SQLiteStore(path)  # with room again, the same file opens
    assert store.schema_version() >= 1
    store.close()


def test_a_wal_grown_under_a_long_reader_is_cut_back(tmp_path: Path) -> None:
    """A read unit of work held open (a report, a backup) keeps SQLite from emptying the
    WAL, which grows; once it ends, the next checkpoints empty it and the file is cut back
    to ``WAL_SIZE_LIMIT`` instead of keeping its largest size."""
    from partnerkit.stores.sqlite import WAL_SIZE_LIMIT

    path = tmp_path / "portal.db"
    store, portal, ana = _contoso(path)
    wal = Path(f"{path}-wal")
    held, done = threading.Event(), threading.Event()

    def reader() -> None:
        with store.unit_of_work(write=False) as uow:
            uow.companies.get(ana.company_id)  # the read snapshot is taken
            held.set()
            done.wait(60)

    thread = threading.Thread(target=reader)
    thread.start()
    assert held.wait(10)
    n = 0
    while wal.stat().st_size <= WAL_SIZE_LIMIT * 1.5:
        n += 1
        portal.create_user(ana, email=f"u{n}@contoso.example", display_name=f"U {n}")
    done.set()
    thread.join(10)
    grown = wal.stat().st_size
    for i in range(n):  # enough commits for SQLite's automatic checkpoints to run again
        portal.create_user(ana, email=f"v{i}@contoso.example", display_name=f"V {i}")
    assert wal.stat().st_size <= WAL_SIZE_LIMIT < grown
    store.close()


def _in_a_new_thread(work: Callable[[], object]) -> object:
    """What *work* returned (or raised) in a thread of its own."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)
    return result[0]


@pytest.mark.parametrize("name", ["portal.db", "a b?c#d%20e;f=&.db", "Fabrikam Ünïcødé ☃.db"])
def test_every_thread_opens_the_file_the_store_opened(tmp_path: Path, name: str) -> None:
    """Later connections open the file by a URI: any name a file may have, in any thread."""
    store, portal, ana = _contoso(tmp_path / name)
    assert _in_a_new_thread(lambda: portal.profile(ana).name) == "Contoso"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".db")) == [name]
    store.close()


def test_a_relative_path_stays_the_file_opened_after_a_change_of_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store, portal, ana = _contoso("portal.db")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert _in_a_new_thread(lambda: portal.profile(ana).name) == "Contoso"
    assert list(elsewhere.iterdir()) == []
    store.close()


def test_a_file_deleted_under_a_running_store_is_not_made_again_empty(tmp_path: Path) -> None:
    """A new thread's unit of work fails with a storage error; no new, empty database
    appears in the deleted one's place (for the next start to take for the portal)."""
    path = tmp_path / "portal.db"
    store, portal, ana = _contoso(path)
    for leftover in tmp_path.iterdir():
        leftover.unlink()
    failed = _in_a_new_thread(lambda: portal.profile(ana))
    assert type(failed) is PartnerKitError, failed
    assert "unable to open database file" in str(failed)
    assert not path.exists()
    store.close()


_FORK_BESIDE_A_THREAD = """
import os, sys, threading
from partnerkit.stores.sqlite import SQLiteStore

store = SQLiteStore(sys.argv[1])
ready, finish = threading.Event(), threading.Event()
theirs = []

def worker():  # a thread with a connection of its own, alive and idle at the fork
    with store.unit_of_work(write=False) as uow:
        uow.fetchone("SELECT 1", ())
    theirs.append(store._local.session.own)
    ready.set()
    finish.wait(30)

thread = threading.Thread(target=worker)
thread.start()
ready.wait(10)
pid = os.fork()
if pid == 0:
    # fork() cleared the worker's local storage here: its connection must not be closed
    try:
        theirs[0].execute("SELECT 1").fetchone()
        os._exit(0)
    except Exception:
        os._exit(3)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
finish.set()
thread.join()
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks")
def test_a_forked_child_does_not_close_the_connections_of_its_parents_threads(
    tmp_path: Path,
) -> None:
    """``fork`` clears the other threads' local storage in the child before the fork hooks
    run: the holder that closes a thread's connection as it ends must not take that for
    the thread's end (the review's child closed them, and hung in ``os.fork()`` on one
    that was inside a statement)."""
    import subprocess
    import sys

    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", _FORK_BESIDE_A_THREAD, str(tmp_path / "portal.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0"], done.stdout + done.stderr
