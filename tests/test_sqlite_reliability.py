"""SQLiteStore under processes: four writers on one file, and writers killed with SIGKILL.

The writers are forked processes that register customers through the Portal (a company, its
first admin and an audit event in one unit of work) and acknowledge each registration on a
pipe only after it returned. Whatever happens to them, the file must hold every acknowledged
registration whole, nothing half-written, and an audit chain that verifies.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from partnerkit import Conflict, PartnerKitError, Portal
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FakeClock, snapshot

#: Exit codes of a writer process.
DONE, REFUSED, RAW_ERROR = 0, 2, 3


def register_customers(path: Path, stem: str, count: int, ack: int) -> int:
    """Register *count* customers on the file at *path*; acknowledge each on the fd *ack*.

    A ``Conflict`` (the file stayed busy beyond the timeout) is retried; any other
    partnerkit error, and above all any error that is not a partnerkit one (a raw
    ``sqlite3.OperationalError: database is locked``), is written to *ack* and ends the
    writer with its exit code.
    """
    store = SQLiteStore(path)
    portal = Portal(store=store, clock=FakeClock())
    for n in range(count):
        name = f"{stem}{n}"
        while True:
            try:
                company, _ = portal.register_customer(
                    name=name.title(), domain=f"{name}.example", admin_email=f"admin@{name}.example"
                )
            except Conflict:
                continue
            except PartnerKitError as exc:
                os.write(ack, f"! {type(exc).__name__}: {exc}\n".encode())
                return REFUSED
            except Exception as exc:
                os.write(
                    ack, f"! raw {type(exc).__module__}.{type(exc).__name__}: {exc}\n".encode()
                )
                return RAW_ERROR
            break
        os.write(ack, f"{company.id}\n".encode())
    store.close()
    return DONE


def fork(work: Callable[[int], int]) -> tuple[int, int]:
    """Run *work(ack_fd)* in a forked child; return the child's pid and the pipe's read end."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns to pytest
        code = RAW_ERROR
        try:
            os.close(read_end)
            code = work(write_end)
        except BaseException as exc:
            os.write(write_end, f"! {type(exc).__module__}.{type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def collect(pid: int, read_end: int) -> tuple[int, list[str]]:
    """Wait for the child; return its exit code (or -signal) and the lines it wrote."""
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text.splitlines()


def check_file(path: Path, acknowledged: set[str]) -> int:
    """Assert the file is sound and holds every acknowledged registration, whole."""
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    raw.close()
    store = SQLiteStore(path)
    try:
        portal = Portal(store=store)
        events = portal.verify_audit_trail()
        state = snapshot(store)
    finally:
        store.close()
    companies = {c.id for c in state.companies}
    assert acknowledged <= companies, "an acknowledged registration is missing"
    # Whole units of work only: each company with exactly its admin and its one event.
    assert sorted(u.company_id for u in state.users) == sorted(companies)
    registered = [e for e in state.audit if e.action == "customer.register"]
    assert sorted(str(e.company_id) for e in registered) == sorted(companies)
    assert events == len(state.audit)
    return len(companies)


def test_four_writer_processes_on_one_file_lose_nothing(tmp_path: Path) -> None:
    """Four processes writing at once: every acknowledged row is there, and no writer ever
    saw an error that was not a partnerkit one (no raw "database is locked")."""
    path = tmp_path / "portal.db"
    SQLiteStore(path).close()  # create the schema before the race
    writers = [fork(lambda ack, k=k: register_customers(path, f"w{k}x", 40, ack)) for k in range(4)]
    results = [collect(pid, fd) for pid, fd in writers]
    problems = [line for _, lines in results for line in lines if line.startswith("!")]
    assert problems == []
    assert [code for code, _ in results] == [DONE] * 4
    acknowledged = {line for _, lines in results for line in lines}
    assert len(acknowledged) == 4 * 40
    assert check_file(path, acknowledged) == 4 * 40


def test_writers_killed_at_random_moments_leave_a_sound_file(tmp_path: Path) -> None:
    """50 times, a writer is killed with SIGKILL at a random moment (opening the file, mid
    unit of work, mid commit): the file always checks, with every acknowledged commit."""
    path = tmp_path / "portal.db"
    moments = random.Random(20240501)  # noqa: S311 - reproducible timing, not secrets
    acknowledged: set[str] = set()
    killed = 0
    for cycle in range(50):
        pid, read_end = fork(
            lambda ack, cycle=cycle: register_customers(path, f"c{cycle}x", 10_000, ack)
        )
        time.sleep(moments.uniform(0.0, 0.1))
        os.kill(pid, signal.SIGKILL)
        code, lines = collect(pid, read_end)
        killed += code == -signal.SIGKILL
        assert not [line for line in lines if line.startswith("!")]
        acknowledged |= set(lines)
        check_file(path, acknowledged)
    assert killed >= 45, "the writers finished before they were killed; nothing was tested"
    assert len(acknowledged) > 50, "too few commits were acknowledged to prove much"
