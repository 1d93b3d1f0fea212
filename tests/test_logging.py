"""What partnerkit tells an operator through :mod:`logging` (sixteenth session).

Loggers: ``partnerkit.portal`` (an attempt the audit trail could not take, at WARNING; a
use case run again after a ``Conflict``, at DEBUG), ``partnerkit.stores.sqlite`` and
``partnerkit.stores.postgres`` (a schema created or migrated, at INFO; on PostgreSQL, a
unit of work opened again on a new connection after one was lost, at INFO).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from importlib.util import find_spec
from pathlib import Path

import pytest

from partnerkit import Conflict, ContactInfo, Forbidden, Portal
from partnerkit.stores import sqlite as sqlite_module
from partnerkit.stores.sqlite import SCHEMA_VERSION, SQLiteStore

pytest_plugins = ["pg_fixtures"]


def _messages(caplog: pytest.LogCaptureFixture, logger: str, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == level]


def test_a_new_sqlite_file_logs_its_schema_once_and_a_migration_logs_its_versions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="partnerkit")
    path = tmp_path / "portal.db"
    SQLiteStore(path).close()
    SQLiteStore(path).close()  # current already: nothing to say
    log = "partnerkit.stores.sqlite"
    assert _messages(caplog, log, logging.INFO) == [
        f"SQLiteStore({str(path)!r}): created the schema (version {SCHEMA_VERSION})"
    ]
    caplog.clear()
    migration = ["CREATE TABLE partnerkit_test_extra (id TEXT PRIMARY KEY)"]
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", (*sqlite_module.MIGRATIONS, migration))
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    SQLiteStore(path).close()
    assert _messages(caplog, log, logging.INFO) == [
        f"SQLiteStore({str(path)!r}): migrated the schema from version {SCHEMA_VERSION} "
        f"to {SCHEMA_VERSION + 1}"
    ]


def _busy_portal(tmp_path: Path) -> tuple[Portal, SQLiteStore, sqlite3.Connection]:
    """A portal on a file with no patience (``timeout=0``), a partner's admin in it, and a
    second connection that holds the file's write lock."""
    path = tmp_path / "busy.db"
    store = SQLiteStore(path, timeout=0)
    portal = Portal(store=store)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return portal, store, holder


def test_a_use_case_run_again_after_a_conflict_says_so_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    portal, store, holder = _busy_portal(tmp_path)
    caplog.set_level(logging.DEBUG, logger="partnerkit.portal")
    try:
        with pytest.raises(Conflict):
            portal.register_partner(
                name="Contoso",
                contact=ContactInfo(email="hi@contoso.example"),
                admin_email="ana@contoso.example",
            )
    finally:
        holder.rollback()
        holder.close()
        store.close()
    retries = _messages(caplog, "partnerkit.portal", logging.DEBUG)
    assert len(retries) == portal.conflict_retries >= 1
    assert all(m.startswith("partner.register (correlation ") for m in retries)
    assert "running it again, 1 tries left" in retries[-1]


def test_a_denial_the_audit_trail_could_not_take_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller's ``Forbidden`` carries a note; the operator gets a warning that names
    the attempt, its actor and the store's reason (the correlation id ties it to the
    caller's own logs)."""
    path = tmp_path / "busy.db"
    store = SQLiteStore(path, timeout=0)
    portal = Portal(store=store)
    _, ana = portal.register_partner(
        name="Contoso", contact=ContactInfo(email="hi@contoso.example"), admin_email="a@c.example"
    )
    _, fab = portal.register_customer(
        name="Fabrikam", domain="fabrikam.example", admin_email="f@fabrikam.example"
    )
    caplog.set_level(logging.WARNING, logger="partnerkit")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(Forbidden):
            portal.profile(ana, fab.company_id)
    finally:
        holder.rollback()
        holder.close()
        store.close()
    (warning,) = _messages(caplog, "partnerkit.portal", logging.WARNING)
    assert warning.startswith(
        f"not in the audit trail: profile.view denied by {ana.id} of {ana.company_id} "
        f"on {fab.company_id} (correlation "
    )
    assert warning.endswith("Conflict: the database is busy; retry")


@pytest.mark.postgres
@pytest.mark.skipif(
    find_spec("psycopg") is None and not os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"),
    reason="psycopg is not installed (partnerkit[postgres])",
)
def test_postgres_logs_its_schema_and_the_connections_it_replaced(
    empty_dsn: str, postgres_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    from partnerkit.stores.postgres import PostgresStore
    from test_postgres_reliability import backend_pid, customer, terminate

    caplog.set_level(logging.INFO, logger="partnerkit.stores.postgres")
    store = PostgresStore(empty_dsn, min_size=1, max_size=1)
    try:
        log = "partnerkit.stores.postgres"
        (created,) = _messages(caplog, log, logging.INFO)
        assert created == f"{store!r}: created the schema (version {SCHEMA_VERSION})"
        assert "password" not in created
        caplog.clear()
        terminate(postgres_dsn, backend_pid(store))  # as a server restart does
        with store.unit_of_work() as uow:
            uow.companies.add(customer())
            uow.commit()
        (replaced,) = _messages(caplog, log, logging.INFO)
        assert replaced.startswith(f"{store!r}: a connection was lost (")
        assert replaced.endswith("; opening the unit of work on another, try 1")
    finally:
        store.close()
