"""``SQLiteStore``: the embedded default, one file.

The file runs in WAL mode with ``synchronous=FULL`` (an acknowledged commit survives a power
cut), foreign keys on and a busy timeout; write units of work begin with ``BEGIN IMMEDIATE``
so that writers queue instead of failing half-way. Each thread gets its own connection (and a
forked child its own, too). The schema is versioned and migrated forward on open. Every
``sqlite3`` error is translated: a lock that outlasts the timeout is a ``Conflict`` (safe to
retry), anything else a ``PartnerKitError`` with the cause chained.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from threading import get_ident
from types import TracebackType
from typing import Any, TypeVar

from partnerkit.audit import GENESIS_HASH, AuditEvent
from partnerkit.consent import Delegation, DelegationOffer
from partnerkit.directory import Company, User
from partnerkit.errors import Conflict, PartnerKitError, ValidationError, _plain
from partnerkit.offers import PurchaseOffer, Subscription, TrialInvitation
from partnerkit.ports import (
    TABLES,
    Repository,
    Table,
    check_find_page,
    never_stored,
)
from partnerkit.records import CustomerRelation, LinkRecord, RedemptionRecord
from partnerkit.stores._sql import (
    AUDIT_COLUMNS,
    BACKFILL_V2,
    BACKFILL_V3,
    BACKFILL_V5,
    TableSQL,
    Unheld,
    UpdatePlan,
    add_columns,
    audit_range_query,
    audit_range_rows,
    chain_head,
    check_appendable,
    check_search,
    check_timeout,
    columns_added_later,
    customer_search,
    ddl,
    decode_events,
    fakes_text,
    key_of,
    log_migrated,
    migrate_forward,
    newer_schema,
    page_indexes,
    rekey_renamed,
    relation_search,
    schema_v6,
    stored_version,
    table_codec,
    unheld_key,
    unheld_version,
)
from partnerkit.support import Credential, ServiceRequest

__all__ = ["SCHEMA_VERSION", "SQLiteStore"]

T = TypeVar("T")


# STRICT tables (SQLite 3.37+) refuse a value of the wrong type, as PostgreSQL does, instead
# of storing 25.5 or "25" in an INTEGER column.
_STRICT = " STRICT" if sqlite3.sqlite_version_info >= (3, 37) else ""


def _schema_v1() -> list[str]:
    stmts: list[str] = []
    for table in TABLES:
        stmts.extend(
            ddl(
                table,
                table_codec(table),
                integer="INTEGER",
                suffix=_STRICT,
                omit=columns_added_later(table.name),
            )
        )
    audit = ",\n  ".join(
        f"{c.name} {'INTEGER' if c.sql_type == 'BIGINT' else c.sql_type}"
        f"{'' if c.nullable or c.name == 'seq' else ' NOT NULL'}"
        for c in AUDIT_COLUMNS.columns
        if c.name != "seq"
    )
    stmts += [
        f"CREATE TABLE IF NOT EXISTS audit_events (\n  seq INTEGER PRIMARY KEY,\n  {audit}\n)",
        "CREATE INDEX IF NOT EXISTS audit_ix_company ON audit_events (company_id, seq)",
        "CREATE INDEX IF NOT EXISTS audit_ix_actor_company ON audit_events (actor_company_id, seq)",
        "CREATE TABLE IF NOT EXISTS audit_head ("
        "id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL)",
        f"INSERT OR IGNORE INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}')",
    ]
    return stmts


def _schema_v2() -> list[str]:
    # The active delegation of a partner and a customer, on their relation (read by decisions).
    codecs = {table.name: table_codec(table) for table in TABLES}
    return [*add_columns(2, codecs, integer="INTEGER"), BACKFILL_V2]


def _schema_v3() -> list[str | Callable[[sqlite3.Connection], None]]:
    # The end date of that delegation, on the relation too (read by searches).
    codecs = {table.name: table_codec(table) for table in TABLES}
    return [*add_columns(3, codecs, integer="INTEGER"), *BACKFILL_V3, _rekey_renamed]


def _rekey_renamed(conn: sqlite3.Connection) -> None:
    def executemany(sql: str, rows: list[tuple[Any, ...]]) -> None:
        conn.executemany(sql, rows)

    rekey_renamed(lambda sql: conn.execute(sql).fetchall(), executemany)


def _schema_v4() -> list[str]:
    # The lists read a page at a time, in key order (a partner's delegations, a company's
    # users): an index ending in the key for each.
    return [stmt for table in TABLES for stmt in page_indexes(table)]


def _schema_v5() -> list[str]:
    # A delegation's acceptance, kept once it is revoked or ended.
    codecs = {table.name: table_codec(table) for table in TABLES}
    return [*add_columns(5, codecs, integer="INTEGER"), BACKFILL_V5]


def _schema_v6() -> list[str]:
    # A temporary password tied to the delegation it was set through (see schema_v6).
    codecs = {table.name: table_codec(table) for table in TABLES}
    return schema_v6(add_columns(6, codecs, integer="INTEGER"))


#: Forward migrations: entry *n* takes the schema from version *n* to *n + 1*: statements,
#: and steps that need Python (called with the connection).
_Step = str | Callable[[sqlite3.Connection], None]
MIGRATIONS: tuple[list[_Step], ...] = (
    [*_schema_v1()],
    [*_schema_v2()],
    _schema_v3(),
    [*_schema_v4()],
    [*_schema_v5()],
    [*_schema_v6()],
)
#: The schema version this code writes.
SCHEMA_VERSION = len(MIGRATIONS)


#: What the driver may raise for a statement: its own errors, and Python's for values it
#: cannot bind (a huge int, a string with a lone surrogate).
_TRANSLATED = (sqlite3.Error, OverflowError, UnicodeError)


_BATCH = 500

_log = logging.getLogger(__name__)
#: What a unit of work open when the process forked answers in the child.
_FORKED = (
    "this unit of work was open when the process forked; its transaction belongs to the "
    "parent: open a unit of work in this process"
)

#: What a write unit of work answers in a process forked while its parent was writing to
#: the same file (see ``_WRITING_AT_FORK``).
_WRITER_FORKED = (
    "this process was forked while its parent was inside a write unit of work on this "
    "SQLite file: SQLite keeps that write lock in this process for as long as it lives, so "
    "nothing in it can write to the file (fork outside write units of work)"
)

#: In a forked child, the files (device, inode) its parent was writing to at the fork.
#: SQLite keeps the locks of a process's connections to a file in one table per file, which
#: the child inherits with its parent's write lock in it: every connection the child opens
#: to that file, of any store, finds the lock taken (by "another connection" of its own
#: process, which never lets it go). Its writes would wait out their timeout and then be
#: told to retry, for ever; they are refused at once instead.
_WRITING_AT_FORK: set[tuple[int, int]] = set()

#: The size, in bytes, a WAL file is cut back to after a checkpoint that emptied it (twice
#: what SQLite's automatic checkpoint of 1,000 pages lets it reach in normal work).
WAL_SIZE_LIMIT = 8 * 1024 * 1024

#: How many times this process has been forked from its parent (0 in the first process).
#: A store remembers the count it was made (or last used) with: when it differs, the store
#: is in a forked child and opens its own connections.
_forks = 0


#: Every session (a thread's way into a store) of this process, so that a forked child can
#: end the units of work that were open in its parent at the fork.
_SESSIONS: weakref.WeakSet[_Session] = weakref.WeakSet()

#: In a forked child, the connections its parent had open: kept, never used nor closed (a
#: close would end on the parent's file what the parent's transactions hold).
_INHERITED: list[sqlite3.Connection] = []


class _ThreadConnection:
    """Closes a thread's own connection when the thread ends.

    It is kept in the store's thread-local storage and nowhere else, and Python clears a
    thread's local storage as the thread ends: a server that runs each request in a new
    thread leaves no connection (two file descriptors each) behind it. Also when the
    thread's connection is replaced, or the store itself is garbage (no thread can be
    using its connections then).
    """

    __slots__ = ("conn", "pid", "store")

    def __init__(self, store: SQLiteStore, conn: sqlite3.Connection) -> None:
        self.store = weakref.ref(store)
        self.conn = conn
        # By process id, not _forks: os.fork() clears the other threads' local storage in
        # the child before the after-fork hooks count the fork.
        self.pid = os.getpid()

    def __del__(
        self,
        _getpid: Callable[[], int] = os.getpid,
        _finalizing: Callable[[], bool] = sys.is_finalizing,
    ) -> None:
        # Bound as defaults: while the interpreter ends, a main thread's storage is
        # cleared after the modules' globals, and the process's end closes the file.
        if _finalizing() or self.pid != _getpid():
            return  # the interpreter is ending, or the parent's (see _INHERITED)
        store = self.store()
        if store is None:
            _close(self.conn)
        else:
            store._close_if_kept(self.conn)


def _close(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.close()


def _count_fork() -> None:
    global _forks
    _forks += 1
    # A unit of work open at the fork is the parent's: its transaction holds the parent's
    # locks, on the parent's connection. In the child it answers every call with an error
    # and ends without a statement (a ROLLBACK or COMMIT here would act on the parent's
    # file state).
    for session in list(_SESSIONS):
        uow = session.uow
        if uow is not None:
            if uow._write and uow._store._inode is not None:
                _WRITING_AT_FORK.add(uow._store._inode)
            uow._forked = True
            uow._conn = uow._head = None
        session.uow = session.conn = None


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_count_fork)


def _enter_wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Put the file in WAL mode (it stays so; a file already in it is left as it is).

    The change takes the file's exclusive lock, and SQLite answers "busy" at once, without
    its busy handler, while another connection is in the middle of the same change or of
    opening the WAL: app servers starting together on a new file. So it is tried again, a
    little later each time, for up to *timeout* seconds, as a lock is waited for.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            left = deadline - time.monotonic()
            if left <= 0 or ("locked" not in str(exc) and "busy" not in str(exc)):
                raise
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)


def _version_in(value: object) -> int:
    """The schema version a file's ``schema_version`` table holds (``None``: no row yet)."""
    return stored_version(value, "the file's")


def _current_schema(conn: sqlite3.Connection) -> bool:
    """Whether the file's schema is this partnerkit's, read without a write lock (a file
    with no schema, or an older or newer one, is left to the migration, under the lock)."""
    try:
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == SCHEMA_VERSION


_KEY_TAKEN = "key already taken"


def translate(exc: Exception) -> PartnerKitError:
    """Return the partnerkit error for a ``sqlite3`` error (raise it ``from`` the cause)."""
    if isinstance(exc, sqlite3.IntegrityError):
        text = str(exc)
        if "UNIQUE" in text or "PRIMARY KEY" in text:
            return Conflict(_KEY_TAKEN)
        if "CHECK" in text or "cannot store" in text:
            return ValidationError("store", "a stored value breaks a constraint")
        return PartnerKitError("storage integrity error")
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            return Conflict("the database is busy; retry")
    if isinstance(exc, OverflowError):
        return ValidationError("store", "a number is too large to store")
    if isinstance(exc, UnicodeError):
        return ValidationError("store", "text must be valid Unicode (no lone surrogates)")
    # SQLite's own words ("database or disk is full", "attempt to write a readonly
    # database"): what to mend, with no value of a row in them.
    return PartnerKitError(f"storage error: {exc}")


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn ``sqlite3`` errors into partnerkit errors, chaining the cause."""
    try:
        yield
    except _TRANSLATED as exc:
        raise translate(exc) from exc


class _SQLiteRepository(Repository[T]):
    """One table's operations for one thread of a store: made once, they run their
    statements in whatever unit of work is open in that thread (see :class:`_Session`)."""

    __slots__ = (
        "_codec",
        "_computed",
        "_find_sql",
        "_pages",
        "_sql",
        "_table",
        "_uow",
        "_update",
    )

    def __init__(self, session: _Session, sql: TableSQL, plan: UpdatePlan) -> None:
        self._uow = session
        self._table: Table[T] = sql.table
        self._codec = sql.codec
        self._computed = tuple(sql.table.computed.values())
        self._sql = sql.statements
        self._find_sql = sql.lookups
        self._pages = sql.pages
        self._update = plan

    def get(self, ident: str) -> T | None:
        if not issubclass(type(ident), str):  # no key is anything but text (by its type)
            self._uow.check_open()
            return None
        key = ident if type(ident) is str else _plain(ident)  # its text, not its __conform__
        try:
            row = self._uow.fetchone(self._sql["get"], (key,))
        except ValidationError:
            if self._uow.conn is not None and never_stored(ident):
                return None  # no stored key is such text; SQLite cannot take it
            raise
        return None if row is None else self._codec.decode(row)

    def get_many(self, idents: Sequence[str]) -> dict[str, T]:
        self._uow.check_open()  # a finished unit of work refuses, whatever the ids
        found: dict[str, T] = {}
        decode = self._codec.decode
        # What no row can be keyed by (not text: perhaps not even hashable) is left out first.
        unique = list(dict.fromkeys(i for i in map(_plain, idents) if not unheld_key(i)))
        for start in range(0, len(unique), _BATCH):  # SQLite binds at most 999 values
            batch = unique[start : start + _BATCH]
            marks = ", ".join("?" * len(batch))
            for row in self._uow.fetchall(f"{self._sql['get_many']} ({marks})", batch):
                obj = decode(row)
                found[obj.id] = obj
        return found

    def add(self, obj: T) -> None:
        self._uow.check_writable()  # the unit of work is judged before what it is given
        if key_of(obj)[1] != 1:
            raise Conflict(f"a new {self._table.noun} starts at version 1")
        if self._table.validate is not None:
            self._table.validate(obj)
        self._write(self._sql["insert"], self._row(obj))

    def update(self, obj: T) -> None:
        self._uow.check_writable()
        ident, version = key_of(obj)
        if self._table.validate is not None:
            self._table.validate(obj)
        row = self._row(obj)
        plan = self._update
        execute = self._uow.execute
        # SQLite rewrites the entry of every index whose column a statement assigns, even
        # to the same value: each is a page more in the WAL and the commit's sync. So the
        # columns of the indexes are first held to their values rather than assigned, and
        # only when one of them changed (or the version is stale) is every column assigned.
        keys = (ident, version - 1)
        if plan.held:
            params = [*[row[i] for i in plan.assigned], *keys, *[row[i] for i in plan.held]]
            if execute(self._sql["update_narrow"], params, write=True) == 1:
                return
        params = [*[row[i] for i in plan.all_but_key], *keys]
        n = self._write(self._sql["update_full"], params)
        if n != 1:
            raise Conflict(f"stale {self._table.noun}: a concurrent change won")

    def _write(self, sql: str, params: Any) -> int:
        """Run an insert or update; a unique key taken is a ``Conflict`` naming the table's
        noun, as on the other stores."""
        try:
            return self._uow.execute(sql, params, write=True)
        except Conflict as exc:
            if str(exc) == _KEY_TAKEN:
                raise Conflict(f"{self._table.noun} {_KEY_TAKEN}") from exc.__cause__
            raise

    def remove(self, obj: T) -> None:
        self._uow.check_writable()
        ident, version = key_of(obj)
        if unheld_key(ident) or unheld_version(version):  # no row has it
            raise Conflict(f"stale {self._table.noun}: a concurrent change won")
        n = self._uow.execute(self._sql["delete"], (ident, version), write=True)
        if n != 1:
            raise Conflict(f"stale {self._table.noun}: a concurrent change won")

    def find(self, **where: object) -> list[T]:
        self._uow.check_open()
        group, select, _ = self._lookup(where)
        return self._rows(select, group, where)

    def find_page(
        self, where: Mapping[str, object], limit: int, after: str | None = None
    ) -> list[T]:
        self._uow.check_open()
        where = dict(where)
        group, _, _ = self._lookup(where)
        bound = check_find_page(limit, after)
        first, following = self._pages[frozenset(group)]
        tail = [limit] if bound is None else [bound, limit]
        return self._rows(first if bound is None else following, group, where, tail)

    def _rows(
        self,
        select: str,
        group: tuple[str, ...],
        where: dict[str, object],
        tail: Sequence[Any] = (),
    ) -> list[T]:
        """The objects of a lookup's *select*, its values then *tail* its parameters; none
        for a value no row can hold."""
        try:
            rows = self._uow.fetchall(select, [*self._params(group, where), *tail])
        except Unheld:
            return []
        except ValidationError:
            if self._unmatched(where):
                return []
            raise
        found: list[T] = self._codec.decode_rows(rows)
        return found

    def count(self, **where: object) -> int:
        self._uow.check_open()
        group, _, count = self._lookup(where)
        try:
            row = self._uow.fetchone(count, self._params(group, where))
        except Unheld:
            return 0
        except ValidationError:
            if self._unmatched(where):
                return 0
            raise
        assert row is not None
        return int(row[0])

    def _unmatched(self, where: dict[str, object]) -> bool:
        """Whether a lookup value is text no row holds, which SQLite refused (the read then
        finds nothing, as on every store)."""
        return self._uow.conn is not None and any(never_stored(v) for v in where.values())

    def _lookup(self, where: dict[str, object]) -> tuple[tuple[str, ...], str, str]:
        entry = self._find_sql.get(frozenset(where))
        if entry is None:
            raise ValueError(f"{self._table.name} has no lookup on {sorted(where)}")
        return entry

    def _params(self, group: tuple[str, ...], where: dict[str, object]) -> list[Any]:
        enc = self._codec.encode_value
        # A value of a str subclass by its text: sqlite3 would bind what its __conform__ says.
        if any(fakes_text(where[c]) for c in group):
            raise Unheld  # claims to be text and is none: no row has it
        return [enc(c, _plain(where[c])) for c in group]

    def _row(self, obj: T) -> list[Any]:
        return self._codec.row(obj, self._computed)


_AUDIT_NAMES = [c.name for c in AUDIT_COLUMNS.columns]
_AUDIT_SELECT = f"SELECT {', '.join(_AUDIT_NAMES)} FROM audit_events"
_AUDIT_INSERT = (
    f"INSERT INTO audit_events ({', '.join(_AUDIT_NAMES)}) "
    f"VALUES ({', '.join('?' for _ in _AUDIT_NAMES)})"
)


class _Session:
    """One thread's way into a :class:`SQLiteStore`: its connection, the unit of work open on
    it, and the store's repositories for the thread, made once and reused by every unit of
    work the thread opens (a unit of work costs what its statements cost, not a repository
    per table it touches).

    The repositories read on the open unit of work's connection and write through its
    :meth:`_SQLiteUnitOfWork.execute` (the one path of every write statement, which refuses
    writes in a read-only unit of work). With none open, they refuse to run.
    """

    __slots__ = (
        "__weakref__",
        "conn",
        "depth",
        "own",
        "owner",
        "repositories",
        "thread",
        "uow",
        "using",
    )

    def __init__(self, store: SQLiteStore) -> None:
        #: The thread this session belongs to: statements from any other thread are refused
        #: (a connection carries one conversation at a time), as on the other stores.
        self.thread = get_ident()
        self.owner = threading.current_thread()
        #: This thread's own connection to a file, opened on first use.
        self.own: sqlite3.Connection | None = None
        #: Held by this thread while it uses ``own`` (``depth`` counts its acquires), so
        #: that :meth:`SQLiteStore.close` in another thread closes the connection only
        #: between two uses: sqlite3 crashes the process on a connection closed while
        #: another thread runs a statement on it.
        self.using = threading.Lock()
        self.depth = 0
        #: The unit of work open in this thread, and its connection.
        self.uow: _SQLiteUnitOfWork | None = None
        self.conn: sqlite3.Connection | None = None
        self.repositories: dict[str, _SQLiteRepository[Any]] = {
            name: _SQLiteRepository(self, sql, store.update_plans[name])
            for name, sql in store.tables.items()
        }
        _SESSIONS.add(self)

    def execute(self, sql: str, params: Any, *, write: bool = False) -> int:
        uow = self.uow
        if uow is None:
            raise PartnerKitError("unit of work is not open")
        return uow.execute(sql, params, write=write)

    def check_open(self) -> None:
        """Refuse to run outside this thread's open unit of work."""
        if self.conn is None or self.thread != get_ident():
            raise PartnerKitError("unit of work is not open")

    def check_writable(self) -> None:
        """Refuse a write outside this thread's open, writable unit of work."""
        uow = self.uow
        if uow is None:
            raise PartnerKitError("unit of work is not open")
        uow._connection(True)  # another thread's, forked, or read-only: refused

    def fetchone(self, sql: str, params: Any) -> Any:
        conn = self.conn
        if conn is None or self.thread != get_ident():
            raise PartnerKitError("unit of work is not open")
        try:
            return conn.execute(sql, params).fetchone()
        except _TRANSLATED as exc:
            raise translate(exc) from exc

    def fetchall(self, sql: str, params: Any) -> list[Any]:
        conn = self.conn
        if conn is None or self.thread != get_ident():
            raise PartnerKitError("unit of work is not open")
        try:
            return conn.execute(sql, params).fetchall()
        except _TRANSLATED as exc:
            raise translate(exc) from exc


class _SQLiteUnitOfWork:
    """A transaction on one connection of a :class:`SQLiteStore`."""

    companies: Repository[Company]
    users: Repository[User]
    links: Repository[LinkRecord]
    redemptions: Repository[RedemptionRecord]
    trial_invitations: Repository[TrialInvitation]
    purchase_offers: Repository[PurchaseOffer]
    subscriptions: Repository[Subscription]
    delegation_offers: Repository[DelegationOffer]
    delegations: Repository[Delegation]
    credentials: Repository[Credential]
    service_requests: Repository[ServiceRequest]
    customer_relations: Repository[CustomerRelation]

    def __init__(self, store: SQLiteStore, write: bool) -> None:
        self._store = store
        self._write = write
        self._conn: sqlite3.Connection | None = None
        self._head: tuple[int, str] | None = None
        #: Whether the process forked while this unit of work was open (``_count_fork``).
        self._forked = False
        self._session = session = store._session_of_thread()
        # The thread's repositories, as plain attributes: ``uow.users`` is a dict hit.
        self.__dict__.update(session.repositories)

    def repository(self, table: Table[T]) -> Repository[T]:
        repo: Repository[T] = getattr(self, table.name)
        return repo

    def _connection(self, write: bool) -> sqlite3.Connection:
        conn = self._conn
        if conn is None:
            if self._forked:
                raise PartnerKitError(_FORKED)
            raise PartnerKitError("unit of work is not open")
        if self._session.thread != get_ident():
            raise PartnerKitError("unit of work is not open")  # in this thread: as elsewhere
        if write and not self._write:
            raise PartnerKitError("read-only unit of work")
        return conn

    def execute(self, sql: str, params: Any, *, write: bool = False) -> int:
        conn = self._conn
        if conn is None or (write and not self._write) or self._session.thread != get_ident():
            conn = self._connection(write)
        # try/except rather than a context manager: this runs for every statement.
        try:
            return conn.execute(sql, params).rowcount
        except _TRANSLATED as exc:
            raise translate(exc) from exc

    def fetchone(self, sql: str, params: Any) -> Any:
        conn = self._conn
        if conn is None or self._session.thread != get_ident():
            conn = self._connection(False)
        try:
            return conn.execute(sql, params).fetchone()
        except _TRANSLATED as exc:
            raise translate(exc) from exc

    def fetchall(self, sql: str, params: Any) -> list[Any]:
        conn = self._conn
        if conn is None or self._session.thread != get_ident():
            conn = self._connection(False)
        try:
            return conn.execute(sql, params).fetchall()
        except _TRANSLATED as exc:
            raise translate(exc) from exc

    def audit_head(self) -> tuple[int, str]:
        # Inside one transaction the head only moves by this unit of work's own appends.
        head = self._head
        if head is None or self._session.thread != get_ident():  # another thread: refused
            row = self.fetchone("SELECT seq, hash FROM audit_head WHERE id = 1", ())
            head = self._head = chain_head(row)
        return head

    def append_audit(self, event: AuditEvent) -> None:
        self._connection(True)  # the unit of work is judged before the event
        check_appendable(event, self.audit_head())
        self.execute(_AUDIT_INSERT, AUDIT_COLUMNS.row(event), write=True)
        self.execute(
            "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1",
            (event.seq, event.hash),
            write=True,
        )
        self._head = (event.seq, event.hash)

    def audit_events(self, company_id: str | None = None) -> list[AuditEvent]:
        if company_id is not None and unheld_key(company_id):
            self._connection(False)  # refuses in a finished unit of work
            return []  # no event names a company by what is not text, or text no row holds
        if company_id is None:
            rows = self.fetchall(f"{_AUDIT_SELECT} ORDER BY seq", ())
        else:
            rows = self.fetchall(
                f"{_AUDIT_SELECT} WHERE company_id = ? UNION "
                f"{_AUDIT_SELECT} WHERE actor_company_id = ? ORDER BY seq",
                (company_id, company_id),
            )
        return decode_events(rows)

    def audit_range(
        self,
        company_id: str | None,
        limit: int,
        *,
        above: int | None = None,
        below: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEvent]:
        self._connection(False)  # a finished unit of work, or another thread's, refuses first
        query = audit_range_query(_AUDIT_SELECT, "?", company_id, limit, above, below, newest_first)
        if query is None:
            return []
        return decode_events(audit_range_rows(self.fetchall(*query), limit))

    def search_relations(
        self,
        partner_id: str,
        prefix: str,
        limit: int,
        after: tuple[str, str] | None = None,
        now: datetime | None = None,
    ) -> list[CustomerRelation]:
        self._connection(False)  # a finished unit of work, or another thread's, refuses first
        if not check_search(partner_id, prefix, limit, after, now):
            return []
        codec = self._store.tables["customer_relations"].codec
        # One statement: both index ranges merged in order, read only up to the page's end.
        statement, params = relation_search(codec.fields, partner_id, prefix, limit, after, now=now)
        decode = codec.decode
        return [decode(row) for row in self._search(statement, params)]

    def search_customers(
        self,
        partner_id: str,
        prefix: str,
        limit: int,
        after: tuple[str, str] | None = None,
        now: datetime | None = None,
    ) -> list[Company]:
        self._connection(False)  # a finished unit of work, or another thread's, refuses first
        if not check_search(partner_id, prefix, limit, after, now):
            return []
        codec = self._store.tables["companies"].codec
        # The same statement joined to the companies: one round trip from search to page.
        statement, params = customer_search(codec.fields, partner_id, prefix, limit, after, now=now)
        # A row without a company id is a relation whose company is missing: left out.
        return codec.decode_rows(self._search(statement, params))

    def _search(self, statement: str, params: list[Any]) -> list[Any]:
        """The rows of a search; none when it asks by text no row holds (SQLite cannot take
        a lone surrogate as a parameter), as on every store."""
        try:
            return self.fetchall(statement, params)
        except ValidationError:
            if self._conn is not None and any(never_stored(v) for v in params):
                return []
            raise

    def commit(self) -> None:
        conn = self._connection(True)
        try:
            conn.execute("COMMIT")
        except _TRANSLATED as exc:
            raise translate(exc) from exc
        self._close()
        self._store.release(conn)

    def rollback(self) -> None:
        conn = self._conn
        if conn is None:
            return
        if self._session.thread != get_ident():
            # Its connection is the opening thread's, perhaps in the middle of a statement.
            raise PartnerKitError("unit of work is not open")
        self._close()
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            # A failed rollback leaves the connection unusable: drop it, keep the file safe.
            self._store.discard(conn)
        else:
            self._store.release(conn)

    def _close(self) -> None:
        """Forget the connection: this unit of work, and the repositories, are done with it."""
        self._conn = self._head = None
        session = self._session
        if session.uow is self:
            session.uow = session.conn = None

    def __enter__(self) -> _SQLiteUnitOfWork:
        store = self._store
        store._refuse_if_closed()  # first, as every store: also in a thread with one open
        session = store._session_of_thread()
        if session is not self._session:  # made in one thread, opened in another
            self._session = session
            self.__dict__.update(session.repositories)
        if session.uow is not None:
            # The thread's connection is in that one's transaction (and, for ":memory:",
            # the store's lock is held by it: waiting here would wait for ever).
            raise PartnerKitError("a unit of work is already open in this thread")
        if _WRITING_AT_FORK and self._write and store._inode in _WRITING_AT_FORK:
            raise PartnerKitError(_WRITER_FORKED)
        conn = store._connection_of(session)
        try:
            conn.execute("BEGIN IMMEDIATE" if self._write else "BEGIN")
            if self._write and not store._memory:
                store._check_schema(conn)  # under the write lock: no migration can follow
        except BaseException as exc:
            if conn.in_transaction:  # begun, and then refused
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            store.release(conn)
            if store._closed:  # closed while this one was opening
                raise PartnerKitError("the store is closed") from exc
            if isinstance(exc, _TRANSLATED):
                raise translate(exc) from exc
            raise
        self._conn = session.conn = conn
        session.uow = self
        if store._closed:  # closed while this one was opening: refused as after it
            self.rollback()
            raise PartnerKitError("the store is closed")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()


def _make_parents(path: Path) -> list[Path]:
    """Create the missing directories above *path*, outermost first, and return those this
    call made: one that another process made meanwhile (``FileExistsError``) is not ours,
    and is never removed on our behalf."""
    made: list[Path] = []
    try:
        for directory in reversed(path.parents):
            try:
                os.mkdir(directory)
            except FileExistsError:
                continue
            made.append(directory)
    except OSError as exc:
        for directory in reversed(made):
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise PartnerKitError(
            f"cannot open the SQLite store {str(path)!r}: cannot create its directory "
            f"({exc.strerror})"
        ) from None
    return made


class SQLiteStore:
    """Keeps everything in one SQLite file (``":memory:"`` for a private in-memory one).

    Args:
        path: the database file; created with its schema if absent when the store opens.
            Only then: the connections the store opens later (one per thread) open the
            file as it is, so that one deleted or moved away under a running store fails
            the units of work of new threads ("unable to open database file") instead of
            giving them a new, empty database. A relative path is taken from the working
            directory at the store's opening.
        timeout: seconds a writer waits for the write lock before ``Conflict`` (0: it does
            not wait; at most ``MAX_TIMEOUT``, about 24 days). Opening waits as long for a
            writer of another process before a schema migration, then raises ``Conflict``.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        check_timeout(timeout, zero=True)
        try:
            self.path = os.fspath(path)
        except TypeError:
            raise ValidationError("path", "must be a file path (str or os.PathLike)") from None
        if not isinstance(self.path, str):
            raise ValidationError("path", "must be a file path as text, not bytes")
        if not self.path or "\x00" in self.path:
            # SQLite gives "" a private temporary database per connection: one no other
            # thread of the store would see.
            raise ValidationError("path", "must name a file (or be ':memory:'), without NUL")
        self.timeout = timeout
        self.tables = {table.name: TableSQL(table) for table in TABLES}
        #: How each table's rows are updated (see UpdatePlan), made once per store; its
        #: statements stand beside the table's others.
        self.update_plans = {
            name: UpdatePlan.of(sql.table, sql.codec) for name, sql in self.tables.items()
        }
        for name, sql in self.tables.items():
            sql.statements["update_narrow"] = self.update_plans[name].narrow
            sql.statements["update_full"] = self.update_plans[name].full
        self._memory = self.path == ":memory:"
        #: What the store's first connection opens (and may create), and what the later
        #: ones open: the same file, never created (see the class's ``path``).
        try:
            self._first = self.path if self._memory else str(Path(self.path).absolute())
        except OSError as exc:  # a relative path, and the working directory is gone
            raise PartnerKitError(
                f"cannot open the SQLite store {self.path!r}: {exc.strerror}"
            ) from None
        self._later = None if self._memory else f"{Path(self._first).as_uri()}?mode=rw"
        self._opened = False
        self._lock = threading.Lock()
        self._local = threading.local()
        self._forks = _forks
        self._shared: sqlite3.Connection | None = None
        #: Every connection open (but ``":memory:"``'s shared one), with its thread's
        #: session. Whoever takes a connection out of it (under ``_lock``) closes it.
        self._all: dict[sqlite3.Connection, _Session] = {}
        self._closed = False
        made: list[Path] = []
        if not self._memory:
            made = _make_parents(Path(self.path))
        # The file goes over to WAL only once its schema is known to be this partnerkit's
        # (or made so): a file the store refuses is left in its journal mode.
        self._wal = False
        #: The file's (device, inode) once open: what SQLite tells its files apart by.
        self._inode: tuple[int, int] | None = None
        try:
            self._migrate()
            if not self._memory:
                with contextlib.suppress(OSError):
                    info = os.stat(self._first)
                    self._inode = (info.st_dev, info.st_ino)
            if not self._memory:
                self._wal = True
                conn = self.acquire()
                try:
                    with translate_errors():
                        _enter_wal(conn, self.timeout)
                finally:
                    self.release(conn)
        except PartnerKitError as exc:
            self.close()
            for directory in reversed(made):  # nothing is left behind by a failed open
                with contextlib.suppress(OSError):
                    directory.rmdir()
            if type(exc) is PartnerKitError and isinstance(exc.__cause__, sqlite3.Error):
                # Why the file cannot be used ("unable to open database file", "file is
                # not a database") is the caller's to know; it holds no secret.
                raise PartnerKitError(
                    f"cannot open the SQLite store {self.path!r}: {exc.__cause__}"
                ) from exc.__cause__
            raise

    def _connect(self, session: _Session) -> sqlite3.Connection:
        self._refuse_if_closed()
        later = self._later if self._opened else None
        with translate_errors():
            conn = sqlite3.connect(
                later or self._first,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
                uri=later is not None,
            )
            self._opened = True
            if self._wal:
                _enter_wal(conn, self.timeout)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            # A WAL that grew while a reader held it (a long report, a backup) is cut back
            # to this once a checkpoint has emptied it, instead of keeping its size for ever.
            conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        with self._lock:
            if self._closed:  # closed meanwhile: close() did not see this one
                _close(conn)
                raise PartnerKitError("the store is closed")
            self._all[conn] = session
        return conn

    def _session_of_thread(self) -> _Session:
        """Return the calling thread's :class:`_Session` (a forked child makes its own)."""
        if self._forks != _forks:
            self._after_fork()
        try:
            session: _Session = self._local.session
        except AttributeError:
            session = self._local.session = _Session(self)
        return session

    def acquire(self) -> sqlite3.Connection:
        """Return this thread's connection (the one shared connection for ``:memory:``)."""
        return self._connection_of(self._session_of_thread())

    def _connection_of(self, session: _Session) -> sqlite3.Connection:
        """Return the connection of *session*'s thread, as :meth:`acquire` does."""
        if self._memory:
            self._lock.acquire()
            if self._shared is None:
                try:
                    self._shared = self._connect_unlocked()
                except BaseException:
                    self._lock.release()
                    raise
            return self._shared
        if session.depth == 0:
            # Free, but for the moment a close() takes to close this idle connection.
            session.using.acquire()
        session.depth += 1
        conn = session.own
        if conn is None:
            try:
                conn = session.own = self._connect(session)
            except BaseException:
                self._done_with(session)
                raise
            self._local.closer = _ThreadConnection(self, conn)
        return conn

    def _done_with(self, session: _Session) -> None:
        """This thread no longer uses its connection (one of its acquires is given back)."""
        if session.depth > 0:
            session.depth -= 1
            if session.depth == 0:
                session.using.release()

    def _close_if_kept(self, conn: sqlite3.Connection) -> None:
        """Close *conn* unless someone else took it out of ``_all`` to close it."""
        with self._lock:
            mine = self._all.pop(conn, None) is not None
        if mine:
            _close(conn)

    def _connect_unlocked(self) -> sqlite3.Connection:
        self._refuse_if_closed()
        with translate_errors():
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def release(self, conn: sqlite3.Connection) -> None:
        """Give back a connection taken with :meth:`acquire`."""
        if self._memory:
            self._lock.release()
            return
        session = self._session_of_thread()
        self._done_with(session)
        # Only now: close() sets _closed before it tries ``using``, so either it found the
        # connection free (and closed it) or this sees it closed (and closes it here).
        # Read before letting go of ``using``, a close() in between would leave it open.
        if self._closed and session.depth == 0:
            self._close_if_kept(conn)
            if session.own is conn:
                session.own = None

    def discard(self, conn: sqlite3.Connection) -> None:
        """Forget a connection that can no longer be trusted."""
        if self._memory:
            _close(conn)
            self._shared = None
            self._lock.release()
            return
        session = self._session_of_thread()
        self._close_if_kept(conn)
        if session.own is conn:
            session.own = None
        self._done_with(session)

    def _after_fork(self) -> None:
        # A child must not use its parent's connections: forget them (closing them here
        # could disturb the parent's locks) and open its own.
        self._forks = _forks
        # The lock first: the parent's may have been held by one of its threads at the fork.
        self._lock = threading.Lock()
        _INHERITED.extend(self._all)
        self._all = {}
        self._local = threading.local()
        if self._memory:
            raise PartnerKitError("an in-memory SQLite store cannot be shared with a child")

    def _migrate(self) -> None:
        conn = self.acquire()
        try:
            if _current_schema(conn):
                # Nothing to do: no write lock taken (an app server starting, or a command
                # reading the file, does not wait for the portal's writers).
                return
            with translate_errors():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
                    )
                    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
                    found = migrate_forward(
                        _version_in(row[0]),
                        MIGRATIONS,
                        conn,
                        conn.execute,
                        lambda version: conn.execute(
                            "INSERT INTO schema_version (version) VALUES (?)", (version,)
                        ),
                    )
                    conn.execute("COMMIT")
                    log_migrated(_log, self, found, len(MIGRATIONS))
                except BaseException:
                    # Not over a failed COMMIT that SQLite rolled back itself (a full disk):
                    # the caller hears why the migration failed, not that nothing is open.
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
        finally:
            self.release(conn)

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        """Refuse a write once a newer partnerkit has migrated the file (read under the
        write lock, every time: a migration that only moves data leaves SQLite's schema
        cookie as it was, so the cookie cannot stand in for the version)."""
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        found = _version_in(row[0]) if row is not None else 0
        if found > SCHEMA_VERSION:
            raise newer_schema(found, SCHEMA_VERSION)

    def schema_version(self) -> int:
        """Return the schema version recorded in the file."""
        conn = self.acquire()
        try:
            with translate_errors():
                row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            return int(row[0])
        finally:
            self.release(conn)

    def unit_of_work(self, *, write: bool = True) -> _SQLiteUnitOfWork:
        """Begin a unit of work (use it in a ``with`` block)."""
        return _SQLiteUnitOfWork(self, write)

    def _refuse_if_closed(self) -> None:
        if self._closed:
            raise PartnerKitError("the store is closed")

    def close(self) -> None:
        """Close every connection this store opened; the store takes no unit of work after
        this (``PartnerKitError``), as every store does.

        A connection another live thread is using (a unit of work of its own, or a
        statement about to run) is that thread's to close: the unit of work runs to its
        end, and its connection is closed then, or as the thread ends. Closing it here,
        under the statement, would crash the process in sqlite3.
        """
        if self._forks != _forks:
            # A forked child's first call: its parent's lock may be held for ever (by a
            # thread the child does not have), and its parent's connections are kept.
            with contextlib.suppress(PartnerKitError):  # ":memory:" refuses the child
                self._after_fork()
            if self._shared is not None:
                _INHERITED.append(self._shared)
                self._shared = None
        if self._memory:
            session = getattr(self._local, "session", None)
            if session is not None and session.uow is not None:
                # Its one connection is this thread's to give back first: waiting for it
                # here would wait for ever.
                raise PartnerKitError("end this thread's unit of work before closing the store")
        self._closed = True
        with self._lock:
            if self._shared is not None:
                _close(self._shared)
                self._shared = None
            for conn, session in list(self._all.items()):
                if not session.owner.is_alive():
                    del self._all[conn]
                    _close(conn)
                elif session.using.acquire(blocking=False):
                    try:  # its thread waits for this to use its connection again
                        del self._all[conn]
                        session.own = None
                        _close(conn)
                    finally:
                        session.using.release()
                # else in use: closed by its thread (``release``, or as the thread ends)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"
