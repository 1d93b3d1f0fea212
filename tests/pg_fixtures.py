"""Fixtures for the tests that need PostgreSQL: one throwaway server per test session.

Test modules load this file as a plugin (``pytest_plugins = ["pg_fixtures"]``), so the server
starts once however many modules use it. Without PostgreSQL binaries (or without psycopg)
the tests skip and say why; when ``PARTNERKIT_REQUIRE_POSTGRES`` is non-empty (``.ci/run``
sets it in CI) they fail instead. A server that exists but does not start always fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from partnerkit.testing.postgres import PostgresNotFound, PostgresServer, PostgresStartError

if TYPE_CHECKING:
    from partnerkit.ports import Store
    from partnerkit.stores.postgres import PostgresStore
    from partnerkit.testing import World

#: The database most tests share, emptied before each of them.
SHARED = "partnerkit_tests"


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL is required (PARTNERKIT_REQUIRE_POSTGRES is set), but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test session's own, stopped and removed at its end."""
    server = PostgresServer()
    try:
        server.start()
    except PostgresNotFound as exc:
        _unavailable(str(exc))
    except PostgresStartError as exc:
        pytest.fail(f"the PostgreSQL binaries exist but the server did not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """The DSN of the server's maintenance database, as its superuser (for admin work)."""
    return postgres_server.dsn()


@pytest.fixture(scope="session")
def shared_database(postgres_server: PostgresServer) -> tuple[str, str]:
    """One database with partnerkit's current schema, shared by the session.

    Returns its DSN and the statement that empties it again.
    """
    import psycopg
    from psycopg import sql

    from partnerkit.audit import GENESIS_HASH
    from partnerkit.stores.postgres import PostgresStore

    dsn = postgres_server.create_database(SHARED)
    PostgresStore(dsn, min_size=0).close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename <> 'schema_version' ORDER BY tablename"
        ).fetchall()
        empty = sql.SQL("; ").join(
            [
                sql.SQL("BEGIN"),
                *(sql.SQL("DELETE FROM {}").format(sql.Identifier(t)) for (t,) in tables),
                sql.SQL("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, {})").format(
                    sql.Literal(GENESIS_HASH)
                ),
                sql.SQL("COMMIT"),
            ]
        )
        return dsn, empty.as_string(conn)


@pytest.fixture
def fresh_dsn(shared_database: tuple[str, str]) -> str:
    """The DSN of a database with partnerkit's current schema and no rows at all.

    Emptying the shared database takes a few milliseconds; creating one from a template
    takes a third of a second here. Tests that change the schema itself use ``empty_dsn``.
    """
    import psycopg

    dsn, empty = shared_database
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(empty.encode())  # one round trip; no parameters, so no placeholders
    return dsn


@pytest.fixture
def empty_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """The DSN of a new, empty database (no partnerkit schema yet)."""
    dsn = postgres_server.create_database()
    yield dsn
    postgres_server.drop_database(dsn.rsplit("dbname=", 1)[1])


@pytest.fixture
def pg_store(fresh_dsn: str) -> Iterator[PostgresStore]:
    """A ``PostgresStore`` on a fresh database, closed after the test."""
    from partnerkit.stores.postgres import PostgresStore

    store = PostgresStore(fresh_dsn)
    yield store
    store.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each built-in store in turn: a ``MemoryStore``, a ``SQLiteStore`` on a file, and a
    ``PostgresStore`` on a fresh database (``pg_store``)."""
    from partnerkit.stores.memory import MemoryStore
    from partnerkit.stores.sqlite import SQLiteStore

    if request.param == "postgres":
        yield request.getfixturevalue("pg_store")
        return
    made: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield made
    made.close()


@pytest.fixture
def any_world(any_store: Store) -> World:
    """The testing kit's small world on each built-in store in turn, with a clock that only
    moves when told (``FakeClock``) and a cheap password hash."""
    from partnerkit import Portal
    from partnerkit.testing import FAST_HASHER, FakeClock, build_world, sample_catalog

    portal = Portal(
        store=any_store, catalog=sample_catalog(), clock=FakeClock(), password_hasher=FAST_HASHER
    )
    return build_world(portal)
