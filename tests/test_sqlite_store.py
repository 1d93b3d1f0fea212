"""What ``SQLiteStore`` promises beyond the contract: SPEC section 5's settings, a versioned
schema migrated forward on open, indexes for every lookup, and no ``sqlite3`` error ever
reaching a caller. Every test uses a real file in ``tmp_path``."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from partnerkit import Conflict, PartnerKitError, Portal, ValidationError
from partnerkit.links import LinkKind
from partnerkit.ports import TABLES
from partnerkit.records import LinkRecord
from partnerkit.roles import AdminRole
from partnerkit.stores import sqlite as sqlite_module
from partnerkit.stores.sqlite import SCHEMA_VERSION, SQLiteStore
from partnerkit.testing import FakeClock, build_world, snapshot


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the database file goes."""
    return tmp_path / "portal.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteStore]:
    """A store on a new file."""
    store = SQLiteStore(path)
    yield store
    store.close()


def _pragma(store: SQLiteStore, name: str) -> object:
    conn = store.acquire()
    try:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        store.release(conn)


def test_every_connection_has_the_settings_of_the_spec(store: SQLiteStore) -> None:
    """WAL, ``synchronous=FULL``, foreign keys on and the busy timeout, on each thread's
    connection."""
    seen: list[tuple[object, ...]] = []

    def read_settings() -> None:
        seen.append(
            tuple(
                _pragma(store, name)
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            )
        )

    read_settings()
    worker = threading.Thread(target=read_settings)
    worker.start()
    worker.join()
    assert seen == [("wal", 2, 1, 10_000)] * 2


def test_a_new_file_records_the_current_schema_version_once(path: Path) -> None:
    """The schema version is written on creation and not again when the file is reopened."""
    for _ in range(3):
        store = SQLiteStore(path)
        assert store.schema_version() == SCHEMA_VERSION
        store.close()
    with sqlite3.connect(path) as raw:
        versions = [v for (v,) in raw.execute("SELECT version FROM schema_version ORDER BY 1")]
    raw.close()
    assert versions == list(range(1, SCHEMA_VERSION + 1))


def test_an_older_file_is_migrated_forward_on_open_keeping_its_data(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the code knows one more migration than the file has, opening the file runs it
    and keeps everything stored before."""
    store = SQLiteStore(path)
    build_world(Portal(store=store, clock=FakeClock()))
    before = snapshot(store)
    store.close()
    migration = ["CREATE TABLE partnerkit_test_extra (id TEXT PRIMARY KEY)"]
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", (*sqlite_module.MIGRATIONS, migration))
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    store = SQLiteStore(path)
    try:
        assert store.schema_version() == SCHEMA_VERSION + 1
        assert snapshot(store) == before
        assert Portal(store=store).verify_audit_trail() == len(before.audit)
    finally:
        store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM partnerkit_test_extra").fetchone() == (0,)
    raw.close()


def test_a_file_written_by_a_newer_partnerkit_is_refused(path: Path) -> None:
    """A schema newer than the code is not touched: a ``PartnerKitError`` says to upgrade."""
    SQLiteStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    raw.close()
    with pytest.raises(PartnerKitError, match="upgrade partnerkit"):
        SQLiteStore(path)


def test_committed_data_survives_closing_and_reopening(path: Path) -> None:
    """Everything a portal committed is there, equal, after the file is reopened."""
    store = SQLiteStore(path)
    build_world(Portal(store=store, clock=FakeClock()))
    before = snapshot(store)
    store.close()
    reopened = SQLiteStore(path)
    try:
        assert snapshot(reopened) == before
        assert Portal(store=reopened).verify_audit_trail() == len(before.audit)
    finally:
        reopened.close()


def _plan(store: SQLiteStore, sql: str, params: tuple[object, ...]) -> str:
    conn = store.acquire()
    try:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    finally:
        store.release(conn)
    return " | ".join(str(row[-1]) for row in rows)


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_every_lookup_is_answered_from_an_index(store: SQLiteStore, table: object) -> None:
    """No ``find``, ``count`` or ``get`` of any table scans it."""
    sql = store.tables[table.name]  # type: ignore[attr-defined]
    plans = [_plan(store, sql.statements["get"], ("x",))]
    for group, select, count in sql.lookups.values():
        params = tuple("x" for _ in group)
        plans += [_plan(store, select, params), _plan(store, count, params)]
    for plan in plans:
        assert "USING" in plan, plan
        assert "SCAN" not in plan.replace("USING COVERING INDEX", ""), plan


def test_the_audit_trail_of_a_company_is_read_from_indexes(store: SQLiteStore) -> None:
    """Reading one company's events uses the two audit indexes, not a scan."""
    from partnerkit.stores.sqlite import _AUDIT_SELECT

    plan = _plan(
        store,
        f"{_AUDIT_SELECT} WHERE company_id = ? UNION "
        f"{_AUDIT_SELECT} WHERE actor_company_id = ? ORDER BY seq",
        ("cmp_x", "cmp_x"),
    )
    assert "audit_ix_company" in plan
    assert "audit_ix_actor_company" in plan


def test_a_write_unit_of_work_takes_the_write_lock_at_its_start(store: SQLiteStore) -> None:
    """``BEGIN IMMEDIATE``: while a write unit of work is open, even before it writes,
    nobody else can start writing; readers still read."""
    with store.unit_of_work() as uow:
        uow.users.get("usr_x")  # reads only
        other = sqlite3.connect(store.path, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            other.execute("BEGIN")
            assert other.execute("SELECT count(*) FROM users").fetchone() == (0,)
            other.execute("ROLLBACK")
        finally:
            other.close()


def test_a_writer_that_waits_too_long_gets_a_conflict(path: Path) -> None:
    """A busy database is a ``Conflict`` after the store's timeout, never a ``sqlite3``
    error."""
    store = SQLiteStore(path, timeout=0.2)
    holding = threading.Event()
    release = threading.Event()

    def hold_the_lock() -> None:
        with store.unit_of_work():
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    try:
        assert holding.wait(5)
        started = time.monotonic()
        with pytest.raises(Conflict) as info:
            store.unit_of_work().__enter__()
        waited = time.monotonic() - started
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert 0.15 < waited < 3
    finally:
        release.set()
        holder.join()
        store.close()


def test_a_damaged_file_raises_a_partnerkit_error_with_the_cause_chained(path: Path) -> None:
    """A file that is not a database is refused with ``PartnerKitError``, not
    ``sqlite3.DatabaseError``."""
    path.write_bytes(b"this is not a database file" * 200)
    with pytest.raises(PartnerKitError) as info:
        SQLiteStore(path)
    assert isinstance(info.value.__cause__, sqlite3.Error)


@pytest.mark.parametrize("bad", ["", "a\x00b.db"])
def test_a_path_naming_no_file_is_a_validation_error(bad: str) -> None:
    """``""`` (a private temporary database per connection, which no other thread of the
    store would see) and a path with a NUL are refused before anything is opened."""
    with pytest.raises(ValidationError) as info:
        SQLiteStore(bad)
    assert info.value.field == "path"


def test_a_file_that_cannot_be_opened_says_why_and_leaves_no_directory(tmp_path: Path) -> None:
    """A directory, a file that is not a database, a directory that cannot be made: the
    error says what SQLite (or the system) said, and the directories the store made for a
    file it then could not open are gone again."""
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 300)
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    for path, why in [
        (tmp_path, "unable to open database file"),
        (junk, "file is not a database"),
        (blocker / "under" / "x.db", "cannot create its directory"),
    ]:
        with pytest.raises(PartnerKitError) as info:
            SQLiteStore(path)
        assert f"cannot open the SQLite store {str(path)!r}" in str(info.value)
        assert why in str(info.value)
    # The directories made on the way to a file that then cannot be opened (its name is
    # too long for the file system) are removed again; a directory name too long is said.
    with pytest.raises(PartnerKitError):
        SQLiteStore(tmp_path / "new" / "a" / ("x" * 300 + ".db"))
    with pytest.raises(PartnerKitError, match="cannot create its directory"):
        SQLiteStore(tmp_path / "new" / ("d" * 300) / "x.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.db", "plain-file"]


def test_a_directory_another_process_made_meanwhile_is_not_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only what the failed open made itself is removed: a directory that another process
    created between the store's look and its ``mkdir`` stays (that process may be about to
    write into it)."""
    shared = tmp_path / "shared"
    real_mkdir = os.mkdir

    def racing_mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path) == shared and not shared.exists():
            real_mkdir(shared)  # the other process wins the race
        real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", racing_mkdir)
    with pytest.raises(PartnerKitError):
        SQLiteStore(shared / "mine" / ("x" * 300 + ".db"))
    assert shared.is_dir()
    assert list(shared.iterdir()) == []


def test_a_row_breaking_a_check_constraint_is_a_validation_error(store: SQLiteStore) -> None:
    """The SQL ``CHECK`` constraints are a last line of defence, and speak partnerkit."""
    at = datetime(2024, 1, 1, tzinfo=UTC)
    link = LinkRecord(
        id="lnk_1",
        kind=LinkKind.TRIAL_INVITATION,
        partner_id="cmp_p",
        advisor_id="PA-AAAAA-BBBBB",
        target="EXCHANGE",
        includes_delegated_admin=False,
        delegation_offer_id=None,
        created_by="usr_1",
        created_at=at,
        expires_at=at + timedelta(days=1),
        max_uses=1,
        uses=0,
    )
    with store.unit_of_work() as uow:
        uow.links.add(link)
        uow.commit()
    with store.unit_of_work() as uow, pytest.raises(ValidationError):
        uow.links.update(attrs.evolve(link, uses=2, version=2))
    with store.unit_of_work(write=False) as uow:
        assert uow.links.get("lnk_1") == link


def test_in_memory_databases_are_private_to_their_store() -> None:
    """Two ``SQLiteStore(":memory:")`` never see each other's data."""
    first, second = SQLiteStore(":memory:"), SQLiteStore(":memory:")
    try:
        build_world(Portal(store=first, clock=FakeClock()))
        assert len(snapshot(first).users) == 5
        assert snapshot(second).users == ()
    finally:
        first.close()
        second.close()


def _frames_of_one_update(path: Path, store: SQLiteStore, change: dict[str, object]) -> int:
    """WAL frames (pages) one committed update of the customer's plain user writes."""
    world = build_world(Portal(store=store, clock=FakeClock()))
    with store.unit_of_work(write=False) as uow:
        user = uow.users.get(world.customer_user.id)
    assert user is not None
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with store.unit_of_work() as uow:
            uow.users.update(attrs.evolve(user, version=user.version + 1, **change))
            uow.commit()
        page_size = raw.execute("PRAGMA page_size").fetchone()[0]
    finally:
        raw.close()
    wal = Path(f"{path}-wal").stat().st_size
    frames, rest = divmod(wal - 32, 24 + page_size)
    assert rest == 0
    return frames


def test_an_update_that_keeps_its_indexed_columns_writes_only_the_row(
    path: Path, store: SQLiteStore
) -> None:
    """SQLite rewrites an index entry whenever a statement assigns its column, to the same
    value or not: an update that changes no indexed column assigns none (one page, the
    row's, where assigning every column wrote one page per index of ``users``)."""
    assert _frames_of_one_update(path, store, {"display_name": "Dee Renamed"}) == 1


def test_an_update_that_changes_an_indexed_column_moves_its_index_entries(
    store: SQLiteStore,
) -> None:
    """When an indexed column changes, every column is assigned: lookups find the new
    value and no longer the old one, and a stale version is still a ``Conflict``."""
    world = build_world(Portal(store=store, clock=FakeClock()))
    with store.unit_of_work(write=False) as uow:
        user = uow.users.get(world.customer_user.id)
    assert user is not None
    promoted = attrs.evolve(user, admin_role=AdminRole.BILLING_ADMIN, version=user.version + 1)
    with store.unit_of_work() as uow:
        uow.users.update(promoted)
        uow.commit()
    with store.unit_of_work(write=False) as uow:
        assert uow.users.find(company_id=user.company_id, admin_role=AdminRole.BILLING_ADMIN) == [
            promoted
        ]
        assert user not in uow.users.find(company_id=user.company_id, admin_role=None)
    with store.unit_of_work() as uow, pytest.raises(Conflict):
        uow.users.update(attrs.evolve(user, display_name="Stale", version=user.version + 1))
