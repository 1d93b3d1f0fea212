"""Fixes from the seventh session's reviews.

- ``PostgresStore``: a unit of work used from a thread other than the one that opened it
  mixed two conversations on one connection (a raw ``RuntimeError``, then a dead unit of
  work); it refuses the other thread, as ``MemoryStore`` does.
- ``PostgresStore``: a server ``statement_timeout`` shorter than the store's ``timeout``
  turned a writer's wait for the writers' lock into ``StoreUnavailable`` ("the database is
  down", never retried); it is a ``Conflict`` now, as a ``lock_timeout`` is.
- A write unit of work opened in a thread whose own write unit of work is still open waited
  on ``PostgresStore`` for its own lock (eight times the timeout, then ``Conflict``), hung for
  ever on a ``SQLiteStore(":memory:")`` and said "storage error" on a SQLite file. Every
  store now refuses it at once with the same message.
- A server that stops answering (hung, or beyond a network partition) held the caller for
  ever; the connection is taken for lost after the store's timeout and a grace.
- Store arguments: an infinite or too large ``timeout``, a ``dsn`` that is not text, a
  SQLite ``timeout`` that is not a number, and a path that is not one raised raw errors of
  Python or psycopg; ``ValidationError`` now.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from partnerkit import (
    AdminRole,
    Company,
    CompanyKind,
    Conflict,
    NotFound,
    OfferLine,
    PartnerKitError,
    Portal,
    ValidationError,
)
from partnerkit.errors import StoreUnavailable
from partnerkit.ports import Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FAST_HASHER, FakeClock, build_world, sample_catalog

pytest_plugins = ["pg_fixtures"]

try:
    from partnerkit.stores import postgres as pg_module
    from partnerkit.stores.postgres import PostgresStore
except ImportError:  # pragma: no cover - the postgres extra is part of the dev install
    pg_module = None  # type: ignore[assignment]


def _company(i: int) -> Company:
    return Company(
        id=f"cmp_{i}", kind=CompanyKind.CUSTOMER, name=f"Customer {i}", domain=f"c{i}.example"
    )


def _backend_pid(store: PostgresStore) -> int:
    with store.unit_of_work(write=False) as uow:
        row = uow.fetchone("SELECT pg_backend_pid()", ())  # type: ignore[attr-defined]
    return int(row[0])


# -- a unit of work belongs to the thread that opened it ---------------------------------


def test_a_postgres_unit_of_work_refuses_another_thread_and_goes_on(fresh_dsn: str) -> None:
    store = PostgresStore(fresh_dsn, max_size=2)
    try:
        seen: Counter[str] = Counter()
        with store.unit_of_work() as uow:
            uow.companies.add(_company(1))
            barrier = threading.Barrier(4)

            def intruder() -> None:
                barrier.wait()
                for _ in range(50):
                    try:
                        uow.companies.get("cmp_1")
                    except PartnerKitError as exc:
                        seen[str(exc)] += 1

            def rollback_from_elsewhere() -> None:
                barrier.wait()
                try:
                    uow.rollback()
                except PartnerKitError as exc:
                    seen[str(exc)] += 1

            threads = [threading.Thread(target=intruder), threading.Thread(target=intruder)]
            threads.append(threading.Thread(target=rollback_from_elsewhere))
            for t in threads:
                t.start()
            barrier.wait()
            # The owner goes on meanwhile, on the same connection.
            for i in range(2, 40):
                uow.companies.add(_company(i))
            for t in threads:
                t.join()
            uow.commit()
        assert seen == Counter({"unit of work is not open": 101})
        with store.unit_of_work(write=False) as uow:
            assert uow.companies.count(kind=CompanyKind.CUSTOMER) == 39
    finally:
        store.close()


# -- the server's statement_timeout cuts a lock wait short: Conflict ---------------------


def test_a_statement_timeout_during_the_lock_wait_is_a_conflict(fresh_dsn: str) -> None:
    # The DBA put statement_timeout = 300 ms on the sessions; the store waits up to 5 s.
    PostgresStore(fresh_dsn).close()  # the schema, made without a statement timeout
    dsn = fresh_dsn + " options='-c statement_timeout=1000'"
    first, second = PostgresStore(dsn, timeout=5), PostgresStore(dsn, timeout=5)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with first.unit_of_work() as uow:
            uow.companies.add(_company(1))
            uow.companies.get("cmp_1")  # answered: the writers' lock is had
            held.set()
            release.wait(10)
            uow.commit()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)

        def write() -> None:
            with second.unit_of_work() as uow:
                uow.companies.add(_company(2))
                uow.commit()

        with pytest.raises(Conflict, match="busy"):
            write()
    finally:
        release.set()
        holder.join()
    # Nothing of the refused writer was kept, and the next one goes through.
    with second.unit_of_work() as uow:
        assert uow.companies.get("cmp_2") is None
        uow.companies.add(_company(3))
        uow.commit()
    first.close()
    second.close()


# -- a second write unit of work in the same thread: refused at once, everywhere ------------


@pytest.fixture(params=["memory", "sqlite-file", "sqlite-memory", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    store: Store
    if request.param == "memory":
        store = MemoryStore()
    elif request.param == "sqlite-file":
        store = SQLiteStore(tmp_path / "nested.db", timeout=1)
    elif request.param == "sqlite-memory":
        store = SQLiteStore(":memory:", timeout=1)
    else:
        store = PostgresStore(request.getfixturevalue("fresh_dsn"), timeout=1)
    yield store
    # Not in this thread: a store whose unit of work hung (the bug these tests look for)
    # would hang the close too, and the run with it.
    _in_thread(store.close, 5)


def _in_thread(work: Callable[[], object], limit: float) -> tuple[bool, list[Any]]:
    """Run *work* in a daemon thread; whether it ended within *limit* s, and its outcome."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as exc:  # the outcome is what the test looks at
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    return not thread.is_alive(), out


def test_a_nested_writer_in_the_same_thread_is_refused_at_once(any_store: Store) -> None:
    def nested() -> float:
        with any_store.unit_of_work() as outer:
            outer.companies.add(_company(1))
            start = time.monotonic()
            with (
                pytest.raises(PartnerKitError, match="already open in this thread"),
                any_store.unit_of_work(),
            ):
                pass  # pragma: no cover - never entered
            waited = time.monotonic() - start
            # The outer unit of work is untouched by the refusal, and commits.
            outer.companies.add(_company(2))
            outer.commit()
        return waited

    ended, out = _in_thread(nested, 15)
    assert ended, "the nested unit of work hung"
    assert isinstance(out[0], float), out
    assert out[0] < 0.5
    with any_store.unit_of_work(write=False) as uow:
        assert [c.id for c in uow.companies.find(kind=CompanyKind.CUSTOMER)] == [
            "cmp_1",
            "cmp_2",
        ]


def test_after_the_commit_the_next_unit_of_work_opens(any_store: Store) -> None:
    """On every store (``MemoryStore`` refused until the block ended, before the ninth
    session): a committed unit of work is over, and the thread may open the next one."""
    with any_store.unit_of_work() as outer:
        outer.companies.add(_company(1))
        outer.commit()
        with any_store.unit_of_work(write=False) as inner:
            assert inner.companies.get("cmp_1") is not None


# -- a server that stops answering ----------------------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP")
def test_a_silent_server_is_a_lost_connection_not_a_hang(
    fresh_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_module, "SILENCE_GRACE", 1.0)
    store = PostgresStore(fresh_dsn, timeout=1, min_size=1, max_size=1)  # silence: 2 s
    try:
        pid = _backend_pid(store)
        stopped: list[int] = []

        def read_twice() -> object:
            with store.unit_of_work(write=False) as uow:
                uow.companies.get("cmp_1")  # the transaction has begun on that server
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
                return uow.companies.get("cmp_2")

        try:
            start = time.monotonic()
            ended, out = _in_thread(read_twice, 15)
            assert ended, "the call waited for the silent server for ever"
            assert isinstance(out[0], StoreUnavailable), out
            assert "did not answer" in str(out[0].__cause__)
            assert time.monotonic() - start < 12
            # A unit of work that has done nothing yet opens on a new connection instead.
            ended, out = _in_thread(lambda: _backend_pid(store), 10)
            assert ended
            assert out[0] != pid
        finally:
            for stopped_pid in stopped:
                os.kill(stopped_pid, signal.SIGCONT)
    finally:
        store.close()


# -- store arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timeout", [float("inf"), float("nan"), 1e300, 3_000_000, True, "5", -1, 0]
)
def test_postgres_store_refuses_a_bad_timeout(fresh_dsn: str, timeout: object) -> None:
    with pytest.raises(ValidationError) as caught:
        PostgresStore(fresh_dsn, timeout=timeout)  # type: ignore[arg-type]
    assert caught.value.field == "timeout"


@pytest.mark.parametrize("dsn", [None, 123, b"dbname=x", "dbname=\ud800", "dbname=x\x00"])
def test_postgres_store_refuses_a_dsn_that_is_not_text(dsn: object) -> None:
    """Not a str, or text libpq cannot take (a lone surrogate, a NUL): refused up front."""
    with pytest.raises(ValidationError) as caught:
        PostgresStore(dsn)  # type: ignore[arg-type]
    assert caught.value.field == "dsn"


def test_postgres_store_takes_the_longest_timeout(fresh_dsn: str) -> None:
    store = PostgresStore(fresh_dsn, timeout=pg_module.MAX_TIMEOUT)
    with store.unit_of_work() as uow:
        uow.companies.add(_company(1))
        uow.commit()
    store.close()


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 3_000_000, True, "5", -0.5])
def test_sqlite_store_refuses_a_bad_timeout(timeout: object) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "x.db"
        with pytest.raises(ValidationError) as caught:
            SQLiteStore(path, timeout=timeout)  # type: ignore[arg-type]
        assert caught.value.field == "timeout"
        assert not path.exists()  # refused before anything was written


@pytest.mark.parametrize("path", [None, 42, b"x.db"])
def test_sqlite_store_refuses_a_path_that_is_not_one(path: object) -> None:
    with pytest.raises(ValidationError) as caught:
        SQLiteStore(path)  # type: ignore[arg-type]
    assert caught.value.field == "path"


def test_sqlite_store_takes_a_timeout_of_zero(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "x.db", timeout=0)
    with store.unit_of_work() as uow:
        uow.companies.add(_company(1))
        uow.commit()
    store.close()


# -- ids of a str subclass that answers == for other text -------------------------------------


class _CaseBlindId(str):
    """An id equal (and hashing equal) to any text that differs from it only in case."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and str.lower(self) == str.lower(other)

    def __hash__(self) -> int:
        return hash(str.lower(self))


def _blind(ident: str) -> str:
    """Not *ident*, but a subclass that says it is."""
    return _CaseBlindId(ident.upper())


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def portal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Portal]:
    store: Store
    if request.param == "memory":
        store = MemoryStore()
    elif request.param == "sqlite":
        store = SQLiteStore(tmp_path / "p.db")
    else:
        store = PostgresStore(request.getfixturevalue("fresh_dsn"))
    yield Portal(
        store=store, catalog=sample_catalog(), clock=FakeClock(), password_hasher=FAST_HASHER
    )
    store.close()


def test_an_id_that_only_says_it_is_another_finds_nothing(portal: Portal) -> None:
    w = build_world(portal)
    user_id = w.customer_user.id
    for act in (
        lambda: portal.remove_user(w.customer_admin, _blind(user_id)),
        lambda: portal.assign_roles(
            w.customer_admin, _blind(user_id), admin_role=AdminRole.BILLING_ADMIN
        ),
        lambda: portal.reset_password(w.customer_admin, w.customer.id, _blind(user_id)),
    ):
        with pytest.raises(NotFound):
            act()
    _, offer = portal.create_purchase_offer(w.partner_admin, [OfferLine("EXCHANGE", 10)])
    with pytest.raises(NotFound):
        portal.withdraw_offer(w.partner_admin, _blind(offer.id))
    with pytest.raises(NotFound):
        portal.supersede_offer(w.partner_admin, _blind(offer.id), [OfferLine("EXCHANGE", 12)])
    with pytest.raises(NotFound):
        portal.revoke_link(w.partner_admin, _blind(offer.link_id))
    pending = portal.redeem(portal.offer_delegated_admin(w.partner_admin), w.customer_admin)
    assert pending.delegation is not None
    with pytest.raises(NotFound):
        portal.accept_delegation(w.customer_admin, _blind(pending.delegation.id))
    assert portal.verify_password(_blind(user_id), "anything") is False
    # Nothing changed: the real ids still find what they name, as they were.
    assert portal.accept_delegation(w.customer_admin, pending.delegation.id).status.value == (
        "active"
    )
    portal.withdraw_offer(w.partner_admin, offer.id)
    portal.remove_user(w.customer_admin, user_id)


def test_a_memory_store_reads_a_subclass_id_by_its_text() -> None:
    store = MemoryStore()
    with store.unit_of_work() as uow:
        uow.companies.add(_company(1))
        uow.commit()
    with store.unit_of_work(write=False) as uow:
        assert uow.companies.get(_blind("cmp_1")) is None
        assert uow.companies.get_many([_blind("cmp_1")]) == {}
        assert uow.companies.find(domain=_blind("c1.example")) == []
        assert uow.companies.count(domain=_blind("c1.example")) == 0
        # A subclass whose text is the id still finds it, as on the SQL stores.
        assert uow.companies.get(_CaseBlindId("cmp_1")) is not None
        assert uow.companies.count(domain=_CaseBlindId("c1.example")) == 1


# -- a read unit of work whose statement the server refused ----------------------------------


@pytest.mark.parametrize("first", [True, False])
def test_a_refused_read_says_why_on_every_later_call(fresh_dsn: str, first: bool) -> None:
    # The server aborts the transaction on any error: every later statement of the unit of
    # work fails. They say what failed (the cause), not "not open" or "storage error".
    PostgresStore(fresh_dsn).close()  # the schema, made without a statement timeout
    store = PostgresStore(fresh_dsn + " options='-c statement_timeout=500'")
    try:
        with store.unit_of_work(write=False) as uow:
            if not first:
                uow.fetchone("SELECT 1, %s", ("x",))  # type: ignore[attr-defined]
            with pytest.raises(Conflict, match="busy"):
                uow.fetchone("SELECT pg_sleep(3), %s", ("x",))  # type: ignore[attr-defined]
            with pytest.raises(Conflict, match="busy") as later:
                uow.companies.get("cmp_1")
            assert isinstance(later.value.__cause__, Conflict)
        with store.unit_of_work(write=False) as uow:  # the next one is fine
            assert uow.companies.get("cmp_1") is None
    finally:
        store.close()


# -- the checks a store of one's own runs, public ---------------------------------------------


def test_check_storable_runs_the_tables_rules_first_then_the_values() -> None:
    from partnerkit.ports import COMPANIES, SUBSCRIPTIONS
    from partnerkit.stores import check_storable
    from partnerkit.testing.contract import TABLE_SAMPLES

    subscription = next(s for s in TABLE_SAMPLES if s.table is SUBSCRIPTIONS).make(0)
    check_storable(SUBSCRIPTIONS, subscription)  # a good one passes
    object.__setattr__(subscription, "licenses", True)  # set up around the class's checks
    with pytest.raises(ValidationError) as caught:
        check_storable(SUBSCRIPTIONS, subscription)
    assert caught.value.field == "licenses"
    company = _company(1)
    object.__setattr__(company, "name", "nul\x00inside")
    with pytest.raises(ValidationError) as caught:
        check_storable(COMPANIES, company)
    assert caught.value.field == "store"


def test_check_audit_event_refuses_what_every_store_refuses() -> None:
    from partnerkit.audit import GENESIS_HASH, AuditEvent
    from partnerkit.stores import check_audit_event

    def event(at: datetime, seq: int = 1) -> AuditEvent:
        return AuditEvent.chained(
            seq=seq, prev_hash=GENESIS_HASH, at=at, action="user.create", outcome="success"
        )

    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    check_audit_event(event(now), (0, GENESIS_HASH))
    with pytest.raises(Conflict):
        check_audit_event(event(now, seq=2), (0, GENESIS_HASH))
    with pytest.raises(ValidationError) as caught:
        check_audit_event(event(now.astimezone(timezone(timedelta(hours=2)))), (0, GENESIS_HASH))
    assert caught.value.field == "at"
    with pytest.raises(ValidationError) as caught:
        check_audit_event(
            attrs.evolve(event(now), reason="nul\x00inside"),  # type: ignore[misc]
            (0, GENESIS_HASH),
        )
    assert caught.value.field == "store"
