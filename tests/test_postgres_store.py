"""PostgresStore keeps the store contract on a real PostgreSQL server the tests start themselves."""

from __future__ import annotations

import gc
import os
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _pg_limits import unindexable_relation
from _threads import elsewhere, held_open
from partnerkit.audit import GENESIS_HASH
from partnerkit.directory import Company, CompanyKind, User
from partnerkit.errors import Conflict, PartnerKitError, ValidationError
from partnerkit.links import LinkKind
from partnerkit.ports import Store
from partnerkit.records import CustomerRelation, LinkRecord
from partnerkit.stores._sql import ADDED_COLUMNS
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing.contract import StoreContract
from partnerkit.testing.postgres import PostgresServer

if find_spec("psycopg") is None and not os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"):
    pytest.skip("psycopg is not installed (partnerkit[postgres])", allow_module_level=True)

import psycopg

from partnerkit.stores.postgres import (
    SCHEMA_VERSION,
    PostgresStore,
    StoreUnavailable,
    _Slot,
)

pytest_plugins = ["pg_fixtures"]
pytestmark = pytest.mark.postgres

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
# A function-scoped store is fine across examples here: each example rolls back its writes.
per_example = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def customer(ident: str = "cmp_c", domain: str = "fabrikam.example", version: int = 1) -> Company:
    return Company(
        id=ident, kind=CompanyKind.CUSTOMER, name="Fabrikam", domain=domain, version=version
    )


def user(ident: str, email: str, company_id: str = "cmp_c") -> User:
    return User(id=ident, company_id=company_id, email=email, display_name="Someone")


def link(ident: str = "lnk_1", **changes: object) -> LinkRecord:
    record = LinkRecord(
        id=ident,
        kind=LinkKind.TRIAL_INVITATION,
        partner_id="cmp_p",
        advisor_id="PA-AAAAA-BBBBB",
        target="EXCHANGE",
        includes_delegated_admin=False,
        delegation_offer_id=None,
        created_by="usr_p",
        created_at=NOW,
        expires_at=NOW + timedelta(days=90),
    )
    return attrs.evolve(record, **changes)


class TestPostgresStore(StoreContract):
    """``PostgresStore`` keeps the store contract every partnerkit store keeps."""

    @pytest.fixture
    def store(self, fresh_dsn: str) -> Iterator[Store]:
        """A store on an emptied database, closed after the test."""
        store = PostgresStore(fresh_dsn)
        yield store
        store.close()


# -- unique keys ----------------------------------------------------------------------------


def test_a_unique_clash_on_add_is_a_conflict_and_the_unit_of_work_goes_on(
    pg_store: PostgresStore,
) -> None:
    """E-mails clash case-insensitively; the clash aborts nothing else in the unit of work."""
    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer())
        uow.users.add(user("usr_a", "Ann@Fabrikam.example"))
        with pytest.raises(Conflict, match="taken"):
            uow.users.add(user("usr_b", "ann@fabrikam.EXAMPLE"))
        with pytest.raises(Conflict, match="taken"):
            uow.users.add(user("usr_a", "other@fabrikam.example"))
        uow.users.add(user("usr_c", "cy@fabrikam.example"))
        uow.commit()
    with pg_store.unit_of_work(write=False) as uow:
        assert [u.id for u in uow.users.find(company_id="cmp_c")] == ["usr_a", "usr_c"]


def test_a_unique_clash_on_update_is_a_conflict_and_the_unit_of_work_goes_on(
    pg_store: PostgresStore,
) -> None:
    """Taking another row's unique key by update is refused without spoiling the transaction."""
    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer())
        uow.companies.add(customer("cmp_d", "d.example"))
        with pytest.raises(Conflict, match="taken"):
            uow.companies.update(customer("cmp_d", "fabrikam.example", version=2))
        uow.companies.update(customer("cmp_d", "e.example", version=2))
        uow.commit()
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_d") == customer("cmp_d", "e.example", version=2)


@pytest.mark.parametrize("later", [False, True], ids=["checked-at-once", "checked-later"])
def test_a_writer_whose_transaction_failed_on_the_server_is_over(
    pg_store: PostgresStore, later: bool
) -> None:
    """A write the server refuses aborts the transaction there: the unit of work ends with
    it. Its commit, and every later statement, raise, and nothing of it is stored (before,
    a commit answered with ROLLBACK left the connection outside any transaction, and what
    the unit of work sent next was committed on its own)."""
    with pg_store.unit_of_work() as uow:
        if later:
            uow.check_writes_later()
        uow.companies.add(customer())
        # A key too large for its index row: the server refuses it (with the commit, when
        # checked later). (A count of 2**63 did this before; every store now refuses a value
        # no column holds before it writes.)
        if later:
            uow.customer_relations.add(unindexable_relation())
        else:
            with pytest.raises(ValidationError):
                uow.customer_relations.add(unindexable_relation())
        with pytest.raises(PartnerKitError):
            uow.commit()
        with pytest.raises(PartnerKitError):
            uow.users.add(user("usr_a", "ann@fabrikam.example"))
        with pytest.raises(PartnerKitError):
            uow.commit()
        with pytest.raises(PartnerKitError):
            uow.companies.get("cmp_c")
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_c") is None
        assert uow.users.get("usr_a") is None
        assert uow.links.get("lnk_big") is None
    with pg_store.unit_of_work() as uow:  # the connection and the writers' turn came back
        uow.companies.add(customer())
        uow.commit()
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_c") == customer()


# -- lookups --------------------------------------------------------------------------------


@pytest.fixture
def icu_store(postgres_server: PostgresServer) -> Iterator[PostgresStore]:
    """A store on a database whose default collation is ICU en-US, not the code-point C."""
    dsn = postgres_server.create_database(icu_locale="en-US")
    store = PostgresStore(dsn)
    yield store
    store.close()


def test_find_orders_by_code_point_like_the_memory_store_whatever_the_collation(
    icu_store: PostgresStore,
) -> None:
    """Ids sort by code point (``B`` < ``a`` < ``é``), not by the database's language rules."""
    ids = ["cmp_b", "cmp_B", "cmp_a", "cmp_é", "cmp_Z", "cmp_~", "cmp_ä", "cmp_1", "cmp_😀"]
    memory = MemoryStore()
    for store in (memory, icu_store):
        with store.unit_of_work() as uow:
            for n, ident in enumerate(ids):
                uow.companies.add(customer(ident, f"d{n}.example"))
            uow.commit()
    with memory.unit_of_work(write=False) as uow:
        expected = [c.id for c in uow.companies.find(kind=CompanyKind.CUSTOMER)]
    with icu_store.unit_of_work(write=False) as uow:
        found = [c.id for c in uow.companies.find(kind=CompanyKind.CUSTOMER)]
    assert found == expected == sorted(ids)


names_and_domains = st.text(alphabet="aAbß-éz\uffff\U0001f600\ud7ff.", max_size=4)


@per_example
@given(
    rows=st.lists(st.tuples(names_and_domains, names_and_domains), max_size=12),
    prefix=names_and_domains,
    limit=st.integers(0, 6),
    after=st.none() | st.tuples(names_and_domains, st.sampled_from(["rel_0", "rel_3", "rel_9"])),
)
def test_customer_search_finds_what_the_memory_store_finds(
    pg_store: PostgresStore,
    rows: list[tuple[str, str]],
    prefix: str,
    limit: int,
    after: tuple[str, str] | None,
) -> None:
    """Prefix search by name or domain, paged by cursor, agrees with MemoryStore exactly."""
    relations = [
        CustomerRelation(
            id=f"rel_{n}",
            partner_id="cmp_p",
            customer_id=f"cmp_{n}",
            name_key=k,
            domain=d,
            # Every third one is neither advised nor administered now: never found.
            advises=n % 3 != 2,
        )
        for n, (k, d) in enumerate(rows)
    ]
    other = CustomerRelation(
        id="rel_x",
        partner_id="cmp_q",
        customer_id="cmp_x",
        name_key=prefix,
        domain=prefix,
        advises=True,
    )
    memory = MemoryStore()
    results = []
    for store in (memory, pg_store):
        with store.unit_of_work() as uow:
            for relation in [*relations, other]:
                uow.customer_relations.add(relation)
            results.append(uow.search_relations("cmp_p", prefix, limit, after))
    assert results[0] == results[1]


def test_a_prefix_ending_in_the_last_code_point_finds_only_its_own_names(
    pg_store: PostgresStore,
) -> None:
    """ "a" + U+10FFFF is a prefix of nothing but itself and longer text: not of "b"."""
    with pg_store.unit_of_work() as uow:
        for n, name in enumerate(["b", "a\U0010ffff", "a\U0010ffffz", "a"]):
            uow.customer_relations.add(
                CustomerRelation(
                    id=f"rel_{n}",
                    partner_id="cmp_p",
                    customer_id=f"cmp_{n}",
                    name_key=name,
                    domain=f"d{n}.example",
                    advises=True,
                )
            )
        found = uow.search_relations("cmp_p", "a\U0010ffff", 10)
    assert [r.name_key for r in found] == ["a\U0010ffff", "a\U0010ffffz"]


def test_opening_a_version_1_database_fills_in_the_active_delegations(empty_dsn: str) -> None:
    """Schema versions 2 and 3 add the relation's delegation and its end date, filled in from
    the delegations, and version 3 gives the relation its customer's current name."""
    from partnerkit import Portal
    from partnerkit.testing import FakeClock, build_world

    store = PostgresStore(empty_dsn)
    try:
        world = build_world(Portal(store=store, clock=FakeClock()))
        url = world.portal.offer_delegated_admin(world.partner_admin, duration=timedelta(days=9))
        redemption = world.portal.redeem(url, world.customer_admin, accept_delegated_admin=True)
        assert redemption.delegation is not None
    finally:
        store.close()
    with psycopg.connect(empty_dsn, autocommit=True) as raw:
        for added in ADDED_COLUMNS.values():
            for table, column in added:
                raw.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        raw.execute("DELETE FROM schema_version WHERE version > 1")
        # A rename by a version before 3, which left the relation's search name as it was.
        raw.execute("UPDATE companies SET name = 'Northwind' WHERE id = %s", (world.customer.id,))
    reopened = PostgresStore(empty_dsn)
    try:
        assert reopened.schema_version() == SCHEMA_VERSION == 6
        key = CustomerRelation.key(world.partner.id, world.customer.id)
        with reopened.unit_of_work(write=False) as uow:
            relation = uow.customer_relations.get(key)
        assert relation is not None
        assert relation.delegation_id == redemption.delegation.id
        # Version 3: the end date of that delegation, copied onto the relation.
        assert redemption.delegation.ends_at is not None
        assert relation.delegation_ends_at == redemption.delegation.ends_at
        assert relation.name_key == "northwind"  # version 3: the customer's name now
    finally:
        reopened.close()


# -- units of work --------------------------------------------------------------------------


def test_a_read_unit_of_work_sees_one_snapshot(pg_store: PostgresStore) -> None:
    """A read unit of work does not see commits made while it is open (repeatable read)."""

    def write() -> None:
        with pg_store.unit_of_work() as writer:
            writer.companies.add(customer())
            writer.commit()

    with pg_store.unit_of_work(write=False) as reader:
        assert reader.companies.get("cmp_c") is None
        elsewhere(write)  # a thread opens one unit of work at a time
        assert reader.companies.get("cmp_c") is None
    with pg_store.unit_of_work(write=False) as reader:
        assert reader.companies.get("cmp_c") is not None


def test_a_read_unit_of_work_opens_with_its_first_statement_and_leaves_no_transaction(
    pg_store: PostgresStore, postgres_dsn: str
) -> None:
    """A read unit of work sends BEGIN with its first statement and does not wait for its
    ROLLBACK; the server has still ended the transaction, and the connection serves the
    next unit of work, read or write, cleanly."""
    with pg_store.unit_of_work(write=False) as reader:
        pid, started = reader.fetchone("SELECT pg_backend_pid(), now()", ())
        # One transaction: now() is its start, the same for every statement in it.
        assert reader.fetchone("SELECT pg_backend_pid(), now()", ())[1] == started
        assert reader.companies.get("cmp_c") is None
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        deadline = time.monotonic() + 10
        query = "SELECT state FROM pg_stat_activity WHERE pid = %s"
        while admin.execute(query, (pid,)).fetchone() != ("idle",):
            assert time.monotonic() < deadline, "the read transaction was never ended"
            time.sleep(0.005)
    with pg_store.unit_of_work(write=False) as reader:
        pass  # asks nothing, sends nothing
    with pg_store.unit_of_work() as writer:
        assert writer.fetchone("SELECT pg_backend_pid()", ())[0] == pid  # the same connection
        writer.companies.add(customer())
        writer.commit()
    with pg_store.unit_of_work(write=False) as reader:
        assert reader.companies.get("cmp_c") == customer()


def test_get_many_finds_keys_with_every_character_an_array_literal_treats_specially(
    pg_store: PostgresStore,
) -> None:
    """Keys sent as one text array come back exactly, whatever characters they hold."""
    idents = ['cmp_"q"', "cmp_\\b", "cmp_{c,d}", "cmp_ NULL", "NULL", "cmp_é", "cmp_'s"]
    with pg_store.unit_of_work() as uow:
        for n, ident in enumerate(idents):
            uow.companies.add(customer(ident, f"d{n}.example"))
        uow.commit()
    with pg_store.unit_of_work(write=False) as uow:
        found = uow.companies.get_many([*idents, "cmp_missing"])
    assert sorted(found) == sorted(idents)
    assert all(found[i].id == i for i in idents)


def test_get_each_reads_several_tables_in_one_snapshot(pg_store: PostgresStore) -> None:
    """``get_each`` answers as ``get`` would, table by table, from the reader's snapshot."""
    from partnerkit.ports import COMPANIES, USERS

    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer())
        uow.users.add(user("usr_a", "ann@fabrikam.example"))
        uow.commit()

    def write() -> None:
        with pg_store.unit_of_work() as writer:
            writer.companies.update(customer(version=2, domain="new.example"))
            writer.commit()

    with pg_store.unit_of_work(write=False) as reader:
        first = reader.get_each((USERS, "usr_a"), (COMPANIES, "cmp_c"), (USERS, "usr_none"))
        elsewhere(write)
        again = reader.get_each((COMPANIES, "cmp_c"), (USERS, "usr_a"))
    assert first == [user("usr_a", "ann@fabrikam.example"), customer(), None]
    assert again == [customer(), user("usr_a", "ann@fabrikam.example")]


def test_more_distinct_statements_than_one_connection_prepares_still_run(
    pg_store: PostgresStore,
) -> None:
    """Past the number of statements prepared per connection, the rest run unprepared."""
    with pg_store.unit_of_work(write=False) as uow:
        sums = [uow.fetchone(f"SELECT %s::int + {n}", (1,))[0] for n in range(300)]
        again = [uow.fetchone(f"SELECT %s::int + {n}", (2,))[0] for n in range(300)]
    assert sums == [1 + n for n in range(300)]
    assert again == [2 + n for n in range(300)]


def test_committing_a_transaction_that_failed_is_an_error_and_keeps_nothing(
    pg_store: PostgresStore,
) -> None:
    """PostgreSQL answers COMMIT of a failed transaction by rolling it back: that is an
    error for the caller, never a silent success."""
    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer())
        with pytest.raises(PartnerKitError):
            uow.fetchone("SELECT 1 / (0 * %s::int)", (1,))
        with pytest.raises(PartnerKitError, match="nothing was committed"):
            uow.commit()
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_c") is None
    with pg_store.unit_of_work() as uow:  # the connection went back to the pool clean
        uow.companies.add(customer())
        uow.commit()


def test_a_writer_whose_first_statement_fails_is_over_at_once(pg_store: PostgresStore) -> None:
    """The first statement travels with the writer's opening; when the server refuses it,
    the transaction is aborted there and the unit of work is over, as after any later
    statement: each later call says so, and the next writer gets the lock at once."""
    with pg_store.unit_of_work() as uow:
        with pytest.raises(ValidationError):
            uow.fetchone("SELECT 1 / (0 * %s::int)", (1,))
        for call in (lambda: uow.companies.get("cmp_c"), uow.commit):
            with pytest.raises(PartnerKitError, match="had failed"):
                call()
    started = time.monotonic()
    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer())
        uow.commit()
    assert time.monotonic() - started < pg_store.timeout / 2


def test_a_writer_gives_up_its_turn_in_the_process_once_its_commit_is_sent(
    pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the server syncs a commit (holding the writers' lock until it is durable), the
    next writer of the process may already send its opening and queue at the server: the
    commit's answer is awaited with the process's turn free. The commit still counts."""
    states: list[bool] = []
    receive = _Slot.receive

    def noted(slot: _Slot, tags: list[Any]) -> list[Any]:
        states.append(pg_store._turn.locked())
        return receive(slot, tags)

    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer())
        monkeypatch.setattr(_Slot, "receive", noted)
        uow.commit()
    assert states == [False]
    monkeypatch.undo()
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_c") == customer()


def test_readers_are_not_blocked_by_an_open_writer(pg_store: PostgresStore) -> None:
    """While a writer holds the writers' lock, reads go on and see the last commit."""

    def read() -> tuple[object, tuple[int, str]]:
        with pg_store.unit_of_work(write=False) as reader:
            return reader.companies.get("cmp_c"), reader.audit_head()

    with pg_store.unit_of_work() as writer:
        writer.companies.add(customer())
        assert elsewhere(read) == (None, (0, GENESIS_HASH))


# -- errors ---------------------------------------------------------------------------------


def test_a_check_constraint_violation_is_a_validation_error_on_the_store(
    pg_store: PostgresStore,
) -> None:
    """The SQL CHECKs are the last line of defence behind the tables' own checks (which
    name the field); a write that gets past those and breaks one says so, typed."""
    with pg_store.unit_of_work() as uow, pytest.raises(ValidationError) as refused:
        uow.links.add(link(uses=-1))
    assert refused.value.field == "uses"
    with pg_store.unit_of_work() as uow:
        uow.links.add(link())
        with pytest.raises(ValidationError) as caught:
            uow.execute("UPDATE links SET uses = -1", (), write=True)
    assert caught.value.field == "store"
    assert isinstance(caught.value.__cause__, psycopg.errors.CheckViolation)


@pytest.mark.parametrize("text", ["EXCH\x00ANGE", "EXCH\ud800ANGE"], ids=["nul", "surrogate"])
def test_text_postgresql_cannot_hold_is_a_validation_error(
    pg_store: PostgresStore, text: str
) -> None:
    """PostgreSQL text holds no NUL and no lone surrogate: a ValidationError, never a driver
    error; searching for such text finds nothing, as nothing stored can contain it."""
    with pg_store.unit_of_work() as uow:
        with pytest.raises(ValidationError) as caught:
            uow.links.add(link(target=text))
        assert caught.value.field == "store"
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.search_relations("cmp_p", text, 10) == []


@pytest.mark.parametrize(
    ("sqlstate", "expected"),
    [
        ("serialization_failure", Conflict),
        ("deadlock_detected", Conflict),
        ("lock_not_available", Conflict),
        ("unique_violation", Conflict),
        ("check_violation", ValidationError),
        ("not_null_violation", PartnerKitError),
        ("numeric_value_out_of_range", ValidationError),
        ("admin_shutdown", StoreUnavailable),
        ("internal_error", PartnerKitError),
    ],
)
def test_every_server_error_reaches_the_caller_as_a_partnerkit_error(
    pg_store: PostgresStore, sqlstate: str, expected: type[PartnerKitError]
) -> None:
    """Each class of server error is translated; the psycopg error is only the cause."""
    with pg_store.unit_of_work() as uow, pytest.raises(PartnerKitError) as caught:
        uow.execute(
            f"DO $$ BEGIN RAISE EXCEPTION 'provoked' USING ERRCODE = '{sqlstate}'; END $$",
            (),
        )
    assert type(caught.value) is expected
    assert isinstance(caught.value.__cause__, psycopg.Error)
    with pg_store.unit_of_work() as uow:  # the connection went back to the pool clean
        uow.companies.add(customer())
        uow.commit()


def test_an_unreachable_server_is_store_unavailable(postgres_server: PostgresServer) -> None:
    """Opening a store on a port where nothing listens fails typed, quickly."""
    with pytest.raises(StoreUnavailable):
        PostgresStore(f"host=127.0.0.1 port={_closed_port()} dbname=x user=x", timeout=2)


def test_a_malformed_dsn_is_a_validation_error() -> None:
    """A connection string libpq cannot parse names the argument."""
    with pytest.raises(ValidationError) as caught:
        PostgresStore("host='unterminated")
    assert caught.value.field == "dsn"


@pytest.mark.parametrize(
    ("argument", "value"),
    [("max_size", 0), ("min_size", 9), ("min_size", -1), ("timeout", 0), ("retries", -1)],
)
def test_settings_out_of_range_are_refused_before_connecting(argument: str, value: int) -> None:
    """A pool without connections or a negative retry count is a ValidationError naming it."""
    with pytest.raises(ValidationError) as caught:
        PostgresStore("host=/nonexistent dbname=x", **{argument: value})  # type: ignore[arg-type]
    assert caught.value.field == argument


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- schema ---------------------------------------------------------------------------------


def test_opening_creates_the_schema_once_and_records_its_version(empty_dsn: str) -> None:
    """A new database gets the schema; opening again migrates nothing."""
    for _ in range(2):
        store = PostgresStore(empty_dsn)
        try:
            assert store.schema_version() == SCHEMA_VERSION
        finally:
            store.close()
    with psycopg.connect(empty_dsn) as conn:
        versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert [v for (v,) in versions] == list(range(1, SCHEMA_VERSION + 1))


def test_app_servers_opening_at_once_migrate_the_database_once(empty_dsn: str) -> None:
    """Eight stores opened at the same instant on an empty database all work; one migrated."""
    start = threading.Barrier(8)
    stores: list[PostgresStore] = []
    failures: list[BaseException] = []

    def open_store() -> None:
        start.wait()
        try:
            stores.append(PostgresStore(empty_dsn, min_size=0))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert failures == []
    with psycopg.connect(empty_dsn) as conn:
        versions = conn.execute("SELECT version FROM schema_version").fetchall()
    assert sorted(v for (v,) in versions) == list(range(1, SCHEMA_VERSION + 1))


def test_a_database_from_a_newer_partnerkit_is_refused(empty_dsn: str) -> None:
    """Code never writes into a schema newer than it knows."""
    PostgresStore(empty_dsn, min_size=0).close()
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(PartnerKitError, match="newer"):
        PostgresStore(empty_dsn)


# -- the store object -----------------------------------------------------------------------


def test_the_pool_never_opens_more_than_max_size_connections(fresh_dsn: str) -> None:
    """A unit of work beyond max_size waits for a connection, then gives up typed."""
    store = PostgresStore(fresh_dsn, max_size=2, timeout=0.3)
    try:
        with (
            held_open(store, 2),
            pytest.raises(StoreUnavailable, match="no database connection"),
        ):
            store.unit_of_work(write=False).__enter__()
        with store.unit_of_work(write=False) as uow:
            assert uow.companies.get("cmp_c") is None
    finally:
        store.close()


def test_close_releases_every_connection(empty_dsn: str, postgres_dsn: str) -> None:
    """After close no session of the store is left on the server, and the store refuses work."""
    store = PostgresStore(empty_dsn, min_size=3)
    dbname = empty_dsn.rsplit("dbname=", 1)[1]
    count = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        assert admin.execute(count, (dbname,)).fetchone() == (3,)
        store.close()
        deadline = time.monotonic() + 5
        while admin.execute(count, (dbname,)).fetchone() != (0,):
            assert time.monotonic() < deadline, "the store's sessions outlived close()"
            time.sleep(0.01)
    with pytest.raises(PartnerKitError, match="closed"):
        store.unit_of_work().__enter__()


def test_a_store_dropped_unclosed_ends_its_sessions_without_a_warning(
    empty_dsn: str, postgres_dsn: str
) -> None:
    """A store that goes out of use without close() (a script, a test) closes its idle
    connections as it is collected: no session lingers on the server until it exits, and
    psycopg is left no open connection to warn about."""
    dbname = empty_dsn.rsplit("dbname=", 1)[1]
    count = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store = PostgresStore(empty_dsn, min_size=2)
        with store.unit_of_work() as uow:
            uow.companies.add(customer("cmp_dropped"))
            uow.commit()
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            assert admin.execute(count, (dbname,)).fetchone() == (2,)
            del store, uow
            gc.collect()
            deadline = time.monotonic() + 5
            while admin.execute(count, (dbname,)).fetchone() != (0,):
                assert time.monotonic() < deadline, "the dropped store's sessions lingered"
                time.sleep(0.01)
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    reopened = PostgresStore(empty_dsn, min_size=0)
    try:
        with reopened.unit_of_work(write=False) as uow:
            assert uow.companies.get("cmp_dropped") is not None
    finally:
        reopened.close()


def test_the_repr_shows_where_but_never_the_password(fresh_dsn: str) -> None:
    """A password in the DSN stays out of logs."""
    store = PostgresStore(f"{fresh_dsn} password=hunter2", min_size=0)
    try:
        assert "hunter2" not in repr(store)
        assert "dbname=" in repr(store)
    finally:
        store.close()
