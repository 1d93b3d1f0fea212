"""PostgresStore under trouble: lost connections, forks, lock waits, deadlocks and many threads."""

from __future__ import annotations

import os
import threading
import time
from importlib.util import find_spec

import attrs
import pytest

from _forking import in_child
from _pg_limits import unindexable_relation
from _threads import held_open
from partnerkit.directory import Company, CompanyKind
from partnerkit.errors import Conflict, PartnerKitError, ValidationError

if find_spec("psycopg") is None and not os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"):
    pytest.skip("psycopg is not installed (partnerkit[postgres])", allow_module_level=True)

import psycopg

from partnerkit.stores.postgres import PostgresStore, StoreUnavailable

pytest_plugins = ["pg_fixtures"]
pytestmark = pytest.mark.postgres


def customer(ident: str = "cmp_c", domain: str = "fabrikam.example") -> Company:
    return Company(id=ident, kind=CompanyKind.CUSTOMER, name="Fabrikam", domain=domain)


def backend_pid(store: PostgresStore) -> int:
    with store.unit_of_work(write=False) as uow:
        return int(uow.fetchone("SELECT pg_backend_pid()", ())[0])


def terminate(admin_dsn: str, pid: int) -> None:
    """End a server session as a crash, a failover or a DBA would; wait until it is gone."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, "the backend outlived pg_terminate_backend"
            time.sleep(0.005)


def wait_until_blocked(admin_dsn: str, pid: int) -> None:
    """Wait until server session *pid* waits for a lock."""
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        deadline = time.monotonic() + 10
        query = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s"
        while admin.execute(query, (pid,)).fetchone() != ("Lock",):
            assert time.monotonic() < deadline, "the session never waited for the lock"
            time.sleep(0.005)


# -- connection loss ------------------------------------------------------------------------


@pytest.mark.parametrize("fails_at", ["next statement", "commit"])
def test_a_connection_lost_mid_transaction_fails_typed_keeps_nothing_and_the_next_call_works(
    pg_store: PostgresStore, postgres_dsn: str, fails_at: str
) -> None:
    """The server ends the session mid-transaction: StoreUnavailable, no half write, recovery."""
    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer())
        terminate(postgres_dsn, int(uow.fetchone("SELECT pg_backend_pid()", ())[0]))
        next_step = {
            "commit": uow.commit,
            "next statement": lambda: uow.companies.add(customer("cmp_d", "d.example")),
        }[fails_at]
        with pytest.raises(StoreUnavailable) as caught:
            next_step()
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_c") is None
        assert uow.audit_head()[0] == 0
    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer())
        uow.commit()
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_c") == customer()


def test_a_connection_lost_before_the_commit_leaves_its_outcome_unknown(
    pg_store: PostgresStore, postgres_dsn: str
) -> None:
    """The session ends while the unit of work holds uncommitted writes: the commit is a
    ``StoreUnavailable``, and every later call says the outcome is unknown (the client
    cannot tell whether a ``COMMIT`` reached the server before the connection broke)."""
    with pg_store.unit_of_work() as uow:
        uow.check_writes_later()  # type: ignore[attr-defined]
        pid = int(uow.fetchone("SELECT pg_backend_pid()", ())[0])  # type: ignore[attr-defined]
        uow.companies.add(customer())
        terminate(postgres_dsn, pid)
        with pytest.raises(StoreUnavailable):
            uow.commit()
        with pytest.raises(PartnerKitError, match="may or may not have been committed"):
            uow.commit()


def test_a_commit_the_server_refuses_is_not_taken_for_a_lost_connection(
    pg_store: PostgresStore,
) -> None:
    """A write checked at the commit that the server refuses with an error of its own
    (here ``program_limit_exceeded``: a key too large for its index row), which psycopg
    files under ``OperationalError`` like a broken connection: a ``ValidationError`` on
    ``"store"``, and every later call says that nothing was committed, not that the outcome
    is unknown; the connection goes on serving (found in review: it said the connection was
    lost and the commit's outcome unknown)."""
    relation = unindexable_relation()
    with pg_store.unit_of_work() as uow:
        uow.check_writes_later()  # type: ignore[attr-defined]
        uow.customer_relations.add(relation)
        with pytest.raises(ValidationError) as first:
            uow.commit()
        assert first.value.field == "store"
        assert isinstance(first.value.__cause__, psycopg.errors.ProgramLimitExceeded)
        with pytest.raises(PartnerKitError, match="nothing was committed"):
            uow.commit()
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.customer_relations.get(relation.id) is None
    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer())
        uow.commit()


def test_idle_connections_killed_by_the_server_are_replaced_unnoticed(
    fresh_dsn: str, postgres_dsn: str
) -> None:
    """After a server restart or failover the pool's dead connections never reach a caller."""
    store = PostgresStore(fresh_dsn, min_size=3, max_size=3)
    try:
        with held_open(
            store, 2, lambda u: int(u.fetchone("SELECT pg_backend_pid()", ())[0])
        ) as pids:
            pass
        pids.append(backend_pid(store))
        for pid in set(pids):
            terminate(postgres_dsn, pid)
        with store.unit_of_work() as uow:
            uow.companies.add(customer())
            uow.commit()
        assert backend_pid(store) not in pids
    finally:
        store.close()


def test_a_server_that_is_gone_is_store_unavailable_not_a_hang(
    fresh_dsn: str, postgres_dsn: str
) -> None:
    """With the database refusing connections, a unit of work fails typed and at once."""
    store = PostgresStore(fresh_dsn, min_size=1, max_size=1, retries=2)
    dbname = fresh_dsn.rsplit("dbname=", 1)[1]
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
        try:
            terminate(postgres_dsn, backend_pid(store))
            with pytest.raises(StoreUnavailable), store.unit_of_work() as uow:
                uow.companies.get("cmp_c")
        finally:
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
    with store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_c") is None
    store.close()


# -- fork -----------------------------------------------------------------------------------


def test_a_child_forked_after_opening_gets_its_own_connection(pg_store: PostgresStore) -> None:
    """The child talks to the server on a session of its own; the parent's survives intact."""
    parent_backend = backend_pid(pg_store)

    def child() -> str:
        with pg_store.unit_of_work() as uow:
            backend = int(uow.fetchone("SELECT pg_backend_pid()", ())[0])
            uow.companies.add(customer())
            uow.commit()
        pg_store.close()
        return str(backend)

    assert int(in_child(child)) != parent_backend
    # The parent's pooled connection was neither used nor closed by the child.
    assert backend_pid(pg_store) == parent_backend
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_c") == customer()


def test_a_unit_of_work_open_at_a_fork_is_the_parents_alone(pg_store: PostgresStore) -> None:
    """Forked while a write unit of work is open, the child inherits that unit of work and
    its connection. Everything the child asks of it raises, and leaving it in the child
    sends nothing: neither a ``ROLLBACK`` that would end the parent's transaction nor the
    writers' turn (found in review: the child rolled the parent's transaction back on the
    parent's connection, and freeing the turn raised ``RuntimeError``). The parent's unit of
    work goes on and commits."""
    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer())

        def child() -> str:
            outcome = []
            for step in (
                lambda: uow.companies.get("cmp_c"),
                lambda: uow.companies.add(customer("cmp_d", "d.example")),
                uow.commit,
            ):
                try:
                    step()
                    outcome.append("ran")
                except PartnerKitError as exc:
                    outcome.append(type(exc).__name__)
            # The parent's unit of work is not the child's: the child opens its own.
            with pg_store.unit_of_work(write=False) as own:
                outcome.append("own" if own.companies.get("cmp_c") is None else "saw it")
            uow.__exit__(None, None, None)
            return " ".join([*outcome, "left"])

        assert in_child(child) == "PartnerKitError PartnerKitError PartnerKitError own left"
        uow.companies.add(customer("cmp_e", "e.example"))
        uow.commit()
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_c") == customer()
        assert uow.companies.get("cmp_d") is None
        assert uow.companies.get("cmp_e") == customer("cmp_e", "e.example")


# -- locks ----------------------------------------------------------------------------------


def test_a_writer_waits_for_the_one_before_it_and_reads_what_it_committed(
    pg_store: PostgresStore,
) -> None:
    """Write units of work run one at a time, each seeing every earlier commit."""
    first_in = threading.Event()
    seen: list[Company | None] = []

    def second_writer() -> None:
        first_in.wait()
        with pg_store.unit_of_work() as uow:
            seen.append(uow.companies.get("cmp_c"))

    thread = threading.Thread(target=second_writer)
    thread.start()
    with pg_store.unit_of_work() as uow:
        first_in.set()
        time.sleep(0.2)  # the second writer is now waiting for the writers' lock
        uow.companies.add(customer())
        uow.commit()
    thread.join()
    assert seen == [customer()]


def test_a_writer_that_waits_longer_than_the_timeout_gets_conflict(fresh_dsn: str) -> None:
    """A lock wait beyond the store's timeout is Conflict (safe to retry), not a hang."""
    # Two app servers: the other one's writer holds the writers' lock meanwhile.
    store, other = PostgresStore(fresh_dsn, timeout=0.2), PostgresStore(fresh_dsn)
    try:
        with other.unit_of_work() as holding:
            holding.companies.get("cmp_none")  # its lock is had once it answers
            started = time.monotonic()
            with pytest.raises(Conflict, match="busy") as caught, store.unit_of_work():
                pass
            assert time.monotonic() - started < 5
        assert isinstance(caught.value.__cause__, psycopg.errors.LockNotAvailable)
        with store.unit_of_work() as uow:
            uow.companies.add(customer())
            uow.commit()
    finally:
        store.close()
        other.close()


def test_a_deadlock_with_another_client_is_a_conflict(
    pg_store: PostgresStore, fresh_dsn: str, postgres_dsn: str
) -> None:
    """A real deadlock (store against a foreign client) reaches the caller as Conflict."""
    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer())
        uow.commit()
    other = psycopg.connect(fresh_dsn)
    try:
        with pg_store.unit_of_work() as uow:
            uow.audit_head()  # answered: the writers' lock is held (its opening is pipelined)
            other.execute("SET deadlock_timeout = '10s'")  # the store's side detects it
            other.execute("UPDATE companies SET name = 'Other' WHERE id = 'cmp_c'")
            blocked = threading.Thread(
                target=other.execute,
                args=("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE",),
            )
            blocked.start()
            wait_until_blocked(postgres_dsn, other.info.backend_pid)
            uow.execute("SET LOCAL deadlock_timeout = '20ms'", ())
            with pytest.raises(Conflict) as caught:
                uow.companies.update(attrs.evolve(customer(), name="Mine", version=2))
        blocked.join()
        other.rollback()
    finally:
        other.close()
    assert isinstance(caught.value.__cause__, psycopg.errors.DeadlockDetected)


# -- many threads ---------------------------------------------------------------------------


def hammer(store: PostgresStore, threads: int, writes: int) -> tuple[list[int], int, Company]:
    """*threads* threads each make *writes* acknowledged read-modify-writes of one row.

    Each write reads in one unit of work and writes the bumped copy in another, so it races
    every other thread; on Conflict it starts again from a fresh read. Returns the versions
    the acknowledged writes wrote, the number of conflicts, and the row at the end.
    """
    with store.unit_of_work() as uow:
        uow.companies.add(customer())
        uow.commit()
    acknowledged: list[int] = []
    conflicts: list[int] = []
    failures: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(n: int) -> None:
        try:
            start.wait()
            done = 0
            while done < writes:
                with store.unit_of_work(write=False) as uow:
                    current = uow.companies.get("cmp_c")
                assert current is not None
                bumped = attrs.evolve(current, name=f"w{n}-{done}", version=current.version + 1)
                try:
                    with store.unit_of_work() as uow:
                        uow.companies.update(bumped)
                        uow.commit()
                except Conflict:
                    conflicts.append(n)
                    continue
                acknowledged.append(bumped.version)
                done += 1
        except BaseException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    with store.unit_of_work(write=False) as uow:
        final = uow.companies.get("cmp_c")
    assert final is not None
    return acknowledged, len(conflicts), final


def test_sixteen_threads_of_read_modify_write_lose_no_update(fresh_dsn: str) -> None:
    """16 threads x 50 acknowledged writes of one row: each write acknowledged is one version,
    and the final version counts them all; the losers of each race got Conflict."""
    store = PostgresStore(fresh_dsn, max_size=8)
    try:
        acknowledged, conflicts, final = hammer(store, threads=16, writes=50)
    finally:
        store.close()
    assert sorted(acknowledged) == list(range(2, 16 * 50 + 2))
    assert final.version == len(acknowledged) + 1
    assert conflicts > 0, "the threads never raced; the test proves nothing"


class UncheckedPostgresStore(PostgresStore):
    """A ``PostgresStore`` whose updates no longer check the version they replace."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn, max_size=8)
        for sql in self.tables.values():
            # Same parameters; only the condition on the stored version is gone.
            sql.guarded_update = sql.guarded_update.replace(
                "AND version = %s", "AND %s::bigint IS NOT NULL"
            )


def test_without_the_version_check_the_same_threads_lose_updates(fresh_dsn: str) -> None:
    """The protection is the version check: without it, acknowledged writes vanish."""
    store = UncheckedPostgresStore(fresh_dsn)
    try:
        acknowledged, conflicts, final = hammer(store, threads=16, writes=10)
    finally:
        store.close()
    assert conflicts == 0
    assert final.version < len(acknowledged) + 1, "no update was lost; the race never happened"


def test_a_writer_refused_the_lock_at_its_first_statement_is_over(
    fresh_dsn: str,
) -> None:
    """A write unit of work sends its lock with ``BEGIN`` and reads the answer with its first
    statement. When the lock is not had in time, that statement raises ``Conflict``, and so
    does everything the unit of work is asked after it (its commit too): it cannot go on,
    and the caller must start again, as on SQLite, whose writer is refused as it opens. Its
    connection and the writers' turn are given back at once."""
    store = PostgresStore(fresh_dsn, timeout=0.2)
    holder = psycopg.connect(fresh_dsn)
    try:
        holder.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        with store.unit_of_work() as uow:
            with pytest.raises(Conflict, match="busy") as first:
                uow.companies.add(customer())
            assert isinstance(first.value.__cause__, psycopg.errors.LockNotAvailable)
            with pytest.raises(Conflict, match="busy"):
                uow.companies.get("cmp_c")
            with pytest.raises(Conflict, match="busy"):
                uow.commit()
            assert not store._turn.locked()
        holder.rollback()
        with store.unit_of_work() as uow:
            assert uow.companies.get("cmp_c") is None
            uow.companies.add(customer())
            uow.commit()
        with store.unit_of_work(write=False) as uow:
            assert uow.companies.get("cmp_c") == customer()
    finally:
        holder.close()
        store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_has_a_turn_and_a_pool_of_its_own_before_any_call(
    pg_store: PostgresStore,
) -> None:
    """The writers' turn and the pool are replaced in the child as it starts, while it has
    one thread: not lazily by whichever of its threads comes first, two of which could
    then replace them twice and release each other's turn."""
    with pg_store.unit_of_work(write=False) as uow:
        uow.companies.get("cmp_c")  # a connection in the pool
    assert pg_store.pool._idle
    parents = pg_store._turn
    parents.acquire()  # as a parent's writer holding its turn at the fork
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            ok = (
                pg_store._turn is not parents
                and not pg_store._turn.locked()
                and not pg_store.pool._idle
                and pg_store.pool._size == 0
            )
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        parents.release()
    assert os.waitstatus_to_exitcode(status) == 0
