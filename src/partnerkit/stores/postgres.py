"""``PostgresStore``: one PostgreSQL database shared by many app servers (the ``postgres`` extra).

Transactions. A *write* unit of work begins ``READ COMMITTED`` and at once locks the single row
of ``audit_head`` (``SELECT ... FOR UPDATE``). Every writer of every app server takes that lock
first, so writers run one after another, in one serial order, just as SQLite's ``BEGIN
IMMEDIATE`` makes them; and since each statement of a read-committed transaction sees every
commit made before it started, a writer that waited for the lock reads what the writer before
it committed. Version checks are therefore exact, the audit chain has exactly one head, and
writers never deadlock with each other. The other levels buy nothing here and cost something:
``REPEATABLE READ`` would fail every writer that had to wait for the head row (its snapshot
predates the row's new version), and ``SERIALIZABLE`` adds predicate locks and spurious
serialization failures to transactions that already run one at a time. A *read* unit of work
is ``REPEATABLE READ READ ONLY``: one snapshot for all its statements, never blocked by
writers and never failing because of them.

Why the writers' lock is taken at ``BEGIN`` and not just before the audit append, although
that would let writers overlap: version checks and unique keys would stay exact under read
committed (a row lock and the unique index settle those), and so would the audit chain (the
head is read under the lock, right before the append). But rules decided on counts and
absences would not: two writers that each remove one of two global admins, or each record a
delegation where there is none, would both see the old state and both commit, the write skew
that read committed allows and only a serial order (or ``SERIALIZABLE`` and its retries)
prevents. The store cannot tell those units of work from the others; the ports would have to.
Writers of one row are serialised by that row anyway (all redemptions of one link update its
use count), and with the lock taken late they would meet as stale versions and retries.

Errors. No ``psycopg`` exception reaches a caller: serialization failures, deadlocks and lock
timeouts are :class:`~partnerkit.errors.Conflict` (safe to retry), a unique key clash is
``Conflict``, a ``CHECK`` violation a :class:`~partnerkit.errors.ValidationError` on the field
``"store"``, a broken or unreachable server :class:`StoreUnavailable`, and anything else a
:class:`~partnerkit.errors.PartnerKitError` with the cause chained. Opening a unit of work is
retried on a fresh connection when a pooled connection turns out dead (nothing has happened
yet at that point, so that is always safe). A unique clash is detected without aborting the
transaction (``ON CONFLICT DO NOTHING``, and a guard on ``UPDATE``), so a unit of work goes on
after a ``Conflict`` from ``add`` or ``update`` just as it does on the other stores.

Round trips. A statement's caller waits for its answer, so the time of a unit of work is
mostly round trips to the server. Each connection speaks libpq's pipeline mode directly (see
:class:`_Slot`), so that one round trip carries a read unit of work's ``BEGIN`` with its first
statement, a write unit of work's ``BEGIN`` and lock (sent on entry, not waited for) with the
answers of its first statement, and the audit append with the ``COMMIT``; a unit of work that
ends without committing does not wait for its ``ROLLBACK`` at all. Statements are prepared
once per connection. ``find_each`` reads several keys and lookups in one round trip (the
optional ``ports.EachFinder``, with which ``Portal.redeem`` makes all its reads at once).

Connections. A small pool of its own (below) rather than ``psycopg_pool``: it needs no
background threads, so a process forked after the store was opened simply starts a pool of its
own (the parent's connections are left untouched, never closed by the child), and it adds no
dependency beyond ``psycopg``. Text keys use the ``"C"`` collation, so ``find`` orders by code
point exactly like the other stores, whatever the database's default collation is.

Schema. Created and migrated forward on open, inside a transaction that holds a
``pg_advisory_xact_lock``, so two app servers starting at once do not migrate twice; the
version is kept in ``schema_version`` as in SQLite. Use ``options=-csearch_path=...`` in the
DSN to keep partnerkit's tables in a schema of their own.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import select
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from threading import get_ident
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.adapt import Transformer
    from psycopg.conninfo import conninfo_to_dict
    from psycopg.pq import ConnStatus, DiagnosticField, ExecStatus, TransactionStatus
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("PostgresStore needs psycopg 3: pip install 'partnerkit[postgres]'") from exc

from partnerkit.audit import GENESIS_HASH, AuditEvent
from partnerkit.errors import Conflict, PartnerKitError, StoreUnavailable, ValidationError
from partnerkit.ports import (
    TABLES,
    Repository,
    Table,
    check_find_page,
    never_stored,
)
from partnerkit.stores._sql import (
    AUDIT_COLUMNS,
    BACKFILL_V2,
    BACKFILL_V3,
    BACKFILL_V5,
    MAX_TIMEOUT,
    TableSQL,
    Unheld,
    add_columns,
    audit_range_query,
    audit_range_rows,
    chain_head,
    check_appendable,
    check_search,
    check_timeout,
    columns_added_later,
    ddl,
    decode_events,
    fakes_text,
    key_of,
    listed_sql,
    log_migrated,
    migrate_forward,
    newer_schema,
    page_indexes,
    page_statements,
    prefix_range,
    rekey_renamed,
    schema_v6,
    stored_version,
    table_codec,
    unheld_key,
    unheld_version,
)

if TYPE_CHECKING:
    from partnerkit.directory import Company
    from partnerkit.ports import Store, UnitOfWork
    from partnerkit.records import CustomerRelation

__all__ = ["SCHEMA_VERSION", "PostgresStore", "StoreUnavailable"]

T = TypeVar("T")

_log = logging.getLogger(__name__)

_Connection = psycopg.Connection[tuple[Any, ...]]
_Cursor = psycopg.Cursor[tuple[Any, ...]]

_TEXT = 'TEXT COLLATE "C"'

#: Every open store of this process, for the fork hook below.
_STORES: weakref.WeakSet[PostgresStore] = weakref.WeakSet()


#: This process's id, kept current by :func:`_after_fork_in_child` (a list: read on every
#: statement, where ``os.getpid()`` would be a system call).
_PROCESS = [os.getpid()]


def _after_fork_in_child() -> None:
    # Runs in the child right after fork, while it has one thread: each store's per-process
    # state is replaced before two of the child's threads could both replace it.
    _PROCESS[0] = os.getpid()
    for store in list(_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
#: The key of the advisory lock that serialises schema migrations: the bytes ``partnerk``.
MIGRATION_LOCK = int.from_bytes(b"partnerk", "big")


def _schema_v1() -> list[str]:
    stmts: list[str] = []
    for table in TABLES:
        stmts.extend(
            ddl(
                table,
                table_codec(table),
                text_key=_TEXT,
                integer="BIGINT",
                omit=columns_added_later(table.name),
            )
        )
    audit = ",\n  ".join(
        f"{c.name} {_TEXT if c.sql_type == 'TEXT' else c.sql_type}"
        f"{'' if c.nullable else ' NOT NULL'}"
        for c in AUDIT_COLUMNS.columns
        if c.name != "seq"
    )
    stmts += [
        f"CREATE TABLE IF NOT EXISTS audit_events (\n  seq BIGINT PRIMARY KEY,\n  {audit}\n)",
        "CREATE INDEX IF NOT EXISTS audit_ix_company ON audit_events (company_id, seq)",
        "CREATE INDEX IF NOT EXISTS audit_ix_actor_company ON audit_events (actor_company_id, seq)",
        "CREATE TABLE IF NOT EXISTS audit_head ("
        f"id INTEGER PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash {_TEXT} NOT NULL)",
        f"INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}') "
        "ON CONFLICT (id) DO NOTHING",
    ]
    return stmts


def _schema_v2() -> list[str]:
    # The active delegation of a partner and a customer, on their relation (read by decisions).
    codecs = {table.name: table_codec(table) for table in TABLES}
    return [*add_columns(2, codecs, text_key=_TEXT, integer="BIGINT"), BACKFILL_V2]


def _schema_v3() -> list[str | Callable[[_Cursor], None]]:
    # The end date of that delegation, on the relation too (read by searches).
    codecs = {table.name: table_codec(table) for table in TABLES}
    return [*add_columns(3, codecs, text_key=_TEXT, integer="BIGINT"), *BACKFILL_V3, _rekey]


def _rekey(cur: _Cursor) -> None:
    def fetchall(sql: str) -> list[tuple[Any, ...]]:
        return cur.execute(sql).fetchall()

    rekey_renamed(fetchall, cur.executemany, "%s")


def _schema_v4() -> list[str]:
    # The lists read a page at a time, in key order (a partner's delegations, a company's
    # users): an index ending in the key for each.
    return [stmt for table in TABLES for stmt in page_indexes(table)]


def _schema_v5() -> list[str]:
    # A delegation's acceptance, kept once it is revoked or ended.
    codecs = {table.name: table_codec(table) for table in TABLES}
    return [*add_columns(5, codecs, text_key=_TEXT, integer="BIGINT"), BACKFILL_V5]


def _schema_v6() -> list[str]:
    # A temporary password tied to the delegation it was set through (see schema_v6).
    codecs = {table.name: table_codec(table) for table in TABLES}
    return schema_v6(add_columns(6, codecs, text_key=_TEXT, integer="BIGINT"))


#: Forward migrations: entry *n* takes the schema from version *n* to *n + 1*: statements,
#: and steps that need Python (called with the migration's cursor).
_Step = str | Callable[[_Cursor], None]
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


#: Seconds beyond the store's timeout that a server may stay silent while it owes an
#: answer (a commit's sync on a loaded disk, a long read), before its connection is lost.
SILENCE_GRACE = 30.0


def _patience(timeout: float) -> float:
    """Seconds a connection waits for an answer the server owes before it is taken for lost:
    well beyond the store's *timeout*, the longest a statement waits for a lock."""
    return min(max(2 * timeout, timeout + SILENCE_GRACE), float(MAX_TIMEOUT))


#: A statement cut short while it waited: for a lock (``lock_timeout``), or by the server's
#: ``statement_timeout`` or a cancel request.
_WAITED_TOO_LONG = (pg_errors.LockNotAvailable, pg_errors.QueryCanceled)


def _translate(exc: psycopg.Error) -> PartnerKitError:
    """Return the partnerkit error for a ``psycopg`` one (the caller chains the cause)."""
    if isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
        return Conflict("a concurrent transaction won; retry")
    if isinstance(exc, _WAITED_TOO_LONG):
        # The wait for a lock ran out: lock_timeout, or a statement_timeout (or a cancel
        # request) the server's own settings put on the session. Nothing was committed.
        return Conflict("the database is busy; retry")
    if isinstance(exc, pg_errors.UniqueViolation):
        return Conflict("key already taken")
    if isinstance(exc, pg_errors.CheckViolation):
        return ValidationError("store", "a stored value breaks a constraint")
    if isinstance(exc, psycopg.IntegrityError):
        return PartnerKitError("storage integrity error")
    if isinstance(exc, psycopg.DataError):
        return ValidationError("store", "a value cannot be stored in PostgreSQL")
    if isinstance(exc, pg_errors.ProgramLimitExceeded):
        # An answer, not a failure of the connection: a value too large for an index row.
        return ValidationError("store", "a value is too large for PostgreSQL to store")
    if isinstance(exc, psycopg.OperationalError):
        if _connection_broke(exc):
            return StoreUnavailable("the database connection failed")
        # The server answered with an error of its own (out of resources, a cancelled
        # statement, ...): the connection itself is fine.
        return StoreUnavailable(f"the database refused the statement (SQLSTATE {exc.sqlstate})")
    # The server's primary message ("permission denied for table users"): what to mend.
    # Values of rows go to its detail, which is left out.
    primary = exc.diag.message_primary or type(exc).__name__
    return PartnerKitError(f"storage error: {primary[:200]} (SQLSTATE {exc.sqlstate})")


#: What libpq says when a connection fails (every fragment of a row), and how a
#: PostgresStore says it: nothing of the DSN, since a malformed one can put part of its
#: password where libpq quotes the host.
_CONNECT_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("password authentication failed",), "the server refused the user's password"),
    (("no password supplied",), "the server asks for a password and the DSN gives none"),
    (('database "', "does not exist"), "the database the DSN names does not exist"),
    (('role "', "does not exist"), "the role (user) the DSN names does not exist"),
    (("pg_hba.conf",), "the server's pg_hba.conf admits no such connection"),
    (("connection refused",), "no server accepts connections there (connection refused)"),
    (("no such file or directory",), "no server's socket is there"),
    (("could not translate host name",), "the host name does not resolve"),
    (("failed to resolve host",), "the host name does not resolve"),
    (("timeout expired",), "the server did not answer in time"),
    (("too many clients",), "the server has no connection slot left"),
    (("remaining connection slots",), "the server has no connection slot left"),
    (("starting up",), "the server is starting up"),
    (("shutting down",), "the server is shutting down"),
)


def _connect_reason(exc: psycopg.Error) -> str:
    """Why a connection failed, in :data:`_CONNECT_REASONS`'s words (the driver's own
    are the error's cause)."""
    said = str(exc).lower()
    for fragments, reason in _CONNECT_REASONS:
        if all(fragment in said for fragment in fragments):
            return reason
    return "see the error's cause"


def _connect(dsn: str, args: dict[str, Any], timeout: float) -> _Connection:
    """A new connection of a :class:`PostgresStore` to *dsn* (*args* for psycopg)."""
    with translate_errors():
        try:
            conn: _Connection = psycopg.connect(dsn, **args)
        except psycopg.OperationalError as exc:
            # Why (a refused password, an unknown database or role, no server there) tells
            # an outage from a mistake in the settings; said in words of our own, since
            # libpq's repeat parts of the DSN, where a password may have strayed.
            raise StoreUnavailable(
                f"the database connection failed: {_connect_reason(exc)}"
            ) from exc
        try:
            conn.execute(
                f"SET lock_timeout = {max(1, round(timeout * 1000))}; SET client_encoding = 'UTF8'"
            )
        except BaseException:
            conn.close()
            raise
    return conn


def _connection_broke(exc: psycopg.Error) -> bool:
    """Whether *exc* means the session ended (no answer from the server, a connection
    error, or the server ending the session) rather than the server refusing a statement,
    which it answers with an error code of its own while the session goes on. Only the
    former can leave a ``COMMIT`` with an unknown outcome."""
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


class _Translating:
    """The ``with`` block of :func:`translate_errors` (a class: cheaper than a generator)."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, psycopg.Error):
            raise _translate(exc) from exc
        if isinstance(exc, UnicodeEncodeError):  # lone surrogates cannot be encoded
            raise ValidationError(
                "store", "text that is not valid Unicode cannot be stored"
            ) from exc
        if isinstance(exc, OSError):  # waiting on the connection's socket
            raise StoreUnavailable("the database connection failed") from exc


_TRANSLATING = _Translating()


def translate_errors() -> _Translating:
    """Turn ``psycopg`` errors into partnerkit errors, chaining the cause (``with`` it)."""
    return _TRANSLATING


# A write unit of work opens with these two statements, sent together in one round trip: it
# begins and takes the writers' lock.
_BEGIN_WRITE = b"BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE"
#: The writers' lock, which answers the chain's head and, read under it, the schema's
#: version (a newer partnerkit's migration is refused writes of this one).
_LOCK_HEAD = (
    "SELECT seq, hash, (SELECT max(version) FROM schema_version) "
    "FROM audit_head WHERE id = 1 FOR UPDATE"
)
_BEGIN_READ = b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
_COMMIT = b"COMMIT"
#: What a write unit of work answers when its COMMIT finds its transaction failed.
_FAILED = "the unit of work had failed; nothing was committed"
#: What a unit of work opened before a fork answers in the child.
_FORKED = (
    "this unit of work was opened before the process forked; its connection and transaction "
    "belong to the parent: open a unit of work in this process"
)
#: What a write unit of work whose connection was lost during its COMMIT answers from then on.
_UNKNOWN = (
    "the unit of work is over: the connection was lost during its commit, "
    "which may or may not have been committed"
)
_ROLLBACK = b"ROLLBACK"

_FATAL = ExecStatus.FATAL_ERROR
_COMMAND_OK = ExecStatus.COMMAND_OK
_BAD = ConnStatus.BAD
_IDLE = TransactionStatus.IDLE
_OPEN = (TransactionStatus.INTRANS, TransactionStatus.INERROR)
#: Statements prepared on one connection at most; further ones are sent unnamed.
_MAX_PREPARED = 256
#: Tags of a batch's answers: checked only (a plain statement, a deferred write), left alone
#: (the answers of an earlier batch read with it), a sync, and the answers wanted.
_PLAIN, _DRAIN, _SYNC, _MAIN = "plain", "drain", "sync", "main"
_UNIQUE_VIOLATION = b"23505"
_DIVISION_BY_ZERO = b"22012"


class _Checked:
    """The tag of a write checked later (``check_writes_later``): only its error is read.

    Its statement fails on the server when the write fails, so that the transaction is
    aborted and a ``COMMIT`` in the same batch commits nothing: an insert fails on a clash
    (a unique violation), a guarded update on a stale version or a clash (it divides by the
    number of rows it changed). Those two errors are the write's ``Conflict``; any other is
    translated as usual.
    """

    __slots__ = ("stale", "taken")

    def __init__(self, taken: str, stale: str | None = None) -> None:
        self.taken = taken
        self.stale = stale

    def conflict(self, result: Any) -> _WriteRefused | None:
        """The ``Conflict`` a failed answer of this write stands for, if it is one."""
        state = result.error_field(DiagnosticField.SQLSTATE)
        if state == _UNIQUE_VIOLATION:
            return _WriteRefused(self.taken)
        if state == _DIVISION_BY_ZERO and self.stale is not None:
            return _WriteRefused(self.stale)
        return None


class _WriteRefused(Conflict):
    """A write checked later failed: its unit of work is over (see ``_refuse``)."""


class _Unsupported(TypeError):
    """A parameter the wire path does not encode itself (psycopg's cursor adapts it)."""


def _text(value: str) -> bytes:
    value = str.__str__(value)  # of a subclass, its text: none of its own methods run
    if "\x00" in value:
        raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    return value.encode()


def _array_item(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        text = str.__str__(value)  # of a subclass, its text: none of its own methods run
        if "\x00" in text:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int):
        return str(int.__int__(value))
    raise _Unsupported(type(value).__name__)


def _encode(params: Sequence[Any]) -> list[bytes | None]:
    """The parameters in PostgreSQL's text format; their types are the server's to infer.

    The stores' codecs only ever pass text, whole numbers, NULL and lists of text (for
    ``unnest``); anything else raises :class:`_Unsupported`.
    """
    out: list[bytes | None] = []
    for value in params:
        kind = type(value)  # not __class__, which a str subclass can fake
        if kind is str:  # the common case first, inline
            if "\x00" in value:
                raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
            out.append(value.encode())
        elif value is None:
            out.append(None)
        elif kind is int:
            out.append(b"%d" % value)
        elif issubclass(kind, str):
            out.append(_text(value))
        elif issubclass(kind, int):
            out.append(b"%d" % int.__int__(value))
        elif isinstance(value, list | tuple):
            out.append(("{" + ",".join(_array_item(v) for v in value) + "}").encode())
        else:
            raise _Unsupported(type(value).__name__)
    return out


_numbered: dict[str, bytes] = {}


def _numbered_marks(sql: str) -> bytes:
    """*sql* with psycopg's ``%s`` marks as the protocol's ``$1, $2, ...`` (``%%`` is ``%``)."""
    found = _numbered.get(sql)
    if found is None:
        count = 0

        def number(mark: re.Match[str]) -> str:
            nonlocal count
            if mark.group() == "%%":
                return "%"
            count += 1
            return f"${count}"

        found = re.sub(r"%%|%s", number, sql).encode()
        if len(_numbered) < 4096:
            _numbered[sql] = found
    return found


class _Slot:
    """A pooled connection, the process that opened it, and the short way to talk to it.

    The hot path does not go through psycopg's cursor: it sends each batch of statements
    with libpq's pipeline mode (``psycopg.pq``), in one round trip, as named prepared
    statements with text parameters, and reads the rows with psycopg's own loaders. A batch
    may carry statements whose answer is only checked (``BEGIN``, a deferred write) ahead of
    the one whose answer is wanted. After a unit of work ends without a commit, ``ROLLBACK``
    is sent and its answer left unread (:attr:`pending`); the next batch on the connection
    reads it first. A write transaction's opening is sent the same way (:attr:`opening`), and
    its answers are read with the next batch, which continues the same pipeline. Anything
    else (statements without parameters, which may hold several statements, and parameters
    of other types) goes through psycopg's cursor, which :attr:`cursor` settles the
    connection for first.
    """

    __slots__ = (
        "_cursor",
        "_names",
        "_poll",
        "conn",
        "opening",
        "patience",
        "pending",
        "pgconn",
        "pid",
        "prepared",
        "rows",
        "turn",
    )

    def __init__(self, conn: _Connection, patience: float) -> None:
        self.conn = conn
        #: Milliseconds the server may stay silent while it owes an answer (see ``_wait``).
        self.patience = int(patience * 1000)
        self._cursor: _Cursor = conn.cursor()
        self.pid = os.getpid()
        self.pgconn = conn.pgconn
        #: Loads the rows of a result as psycopg's cursor would.
        self.rows = Transformer(conn)
        #: The statements prepared on this connection, by their SQL.
        self.prepared: dict[str, bytes] = {}
        self._names = 0
        #: A ``ROLLBACK`` was sent (in pipeline mode) and its answer is still unread.
        self.pending = False
        #: The tags of a write transaction's opening (``BEGIN`` and the writers' lock), sent
        #: in pipeline mode and not answered yet: the next batch reads those answers first.
        self.opening: list[Any] | None = None
        self._poll: Any = None
        #: This connection's writer holds the process's turn (see ``PostgresStore.begin``).
        self.turn = False

    @property
    def cursor(self) -> _Cursor:
        """psycopg's cursor on this connection (after reading any answer still pending)."""
        if self.pending:
            self.settle()
        return self._cursor

    def usable(self) -> bool:
        conn = self.conn
        return (
            self.pid == os.getpid()
            and not conn.closed
            and not conn.broken
            and self.opening is None
            and (self.pending or conn.info.transaction_status is _IDLE)
        )

    def close(self) -> None:
        # A connection opened by another process is never closed here: closing would end
        # the parent's session. psycopg does not close it on garbage collection either.
        if self.pid == os.getpid():
            with contextlib.suppress(psycopg.Error, OSError):
                self.conn.close()

    # -- batches -----------------------------------------------------------------------

    def start(self) -> list[Any]:
        """Begin a batch; return its list of tags (one per answer to read)."""
        opening = self.opening
        if opening is not None:
            self.opening = None
            return opening  # still in pipeline mode: its answers are read with this batch
        if self.pending:
            self.pending = False
            return [_DRAIN, _DRAIN]  # the ROLLBACK sent before, and its sync
        self.pgconn.enter_pipeline_mode()
        return []

    def send(self, tags: list[Any]) -> None:
        """Send the batch without waiting for its answers (the next batch reads them)."""
        pgconn = self.pgconn
        pgconn.pipeline_sync()
        tags.append(_SYNC)
        while pgconn.flush():
            self._wait(select.POLLIN | select.POLLOUT)
            pgconn.consume_input()

    def plain(self, tags: list[Any], sql: bytes, tag: Any = _PLAIN) -> None:
        """Add a statement without parameters, not prepared (``BEGIN``, ``COMMIT``)."""
        self.pgconn.send_query_params(sql, None)
        tags.append(tag)

    def query(self, tags: list[Any], sql: str, params: list[bytes | None], tag: Any) -> None:
        """Add *sql* with its encoded *params*, prepared on first use."""
        pgconn = self.pgconn
        name = self.prepared.get(sql)
        if name is None:
            if len(self.prepared) >= _MAX_PREPARED:
                pgconn.send_query_params(_numbered_marks(sql), params)
                tags.append(tag)
                return
            self._names += 1
            name = b"partnerkit_%d" % self._names
            pgconn.send_prepare(name, _numbered_marks(sql))
            tags.append((sql, name))  # recorded once the server has accepted it
        pgconn.send_query_prepared(name, params)
        tags.append(tag)

    def finish(self, tags: list[Any]) -> list[Any]:
        """Send the batch, wait for every answer, and return them in the order of *tags*."""
        self.send(tags)
        return self.receive(tags)

    def receive(self, tags: list[Any]) -> list[Any]:
        """Wait for every answer of a batch sent, and return them in the order of *tags*."""
        results = self._collect(len(tags))
        self.pgconn.exit_pipeline_mode()
        return results

    def answer(self, tags: list[Any], results: list[Any]) -> Any:
        """Return the (last) answer tagged ``_MAIN``; raise the batch's first error, if any."""
        mains = self.answers(tags, results)
        return mains[-1] if mains else None

    def answers(self, tags: list[Any], results: list[Any]) -> list[Any]:
        """Return the answers tagged ``_MAIN``, in order; raise the batch's first error.

        Statements the server prepared are recorded here, even when a later one failed.
        """
        mains = []
        error = failed = None
        for tag, result in zip(tags, results, strict=True):
            status = result.status
            if status == _FATAL:
                if error is None and tag is not _DRAIN:
                    error, failed = result, tag
            elif tag is _MAIN:
                mains.append(result)
            elif tag.__class__ is tuple and status == _COMMAND_OK:
                self.prepared[tag[0]] = tag[1]
        if error is not None:
            if failed.__class__ is _Checked:
                conflict = failed.conflict(error)
                if conflict is not None:
                    raise conflict from self._error(error)
            raise self._error(error)
        return mains

    def send_rollback(self) -> None:
        """Send ``ROLLBACK`` without waiting for its answer (see :attr:`pending`)."""
        pgconn = self.pgconn
        pgconn.enter_pipeline_mode()
        pgconn.send_query_params(_ROLLBACK, None)
        pgconn.pipeline_sync()
        while pgconn.flush():
            self._wait(select.POLLIN | select.POLLOUT)
            pgconn.consume_input()
        self.pending = True

    def settle(self) -> None:
        """Read the answer of a pending ``ROLLBACK`` and leave pipeline mode."""
        if self.pending:
            self.pending = False
            tags = [_DRAIN, _DRAIN]
            self.answer(tags, self._collect(2))
            self.pgconn.exit_pipeline_mode()

    def _collect(self, count: int) -> list[Any]:
        pgconn = self.pgconn
        results: list[Any] = []
        empty = 0
        while len(results) < count:
            if pgconn.is_busy():
                self._wait(select.POLLIN)
                pgconn.consume_input()
                continue
            result = pgconn.get_result()
            if result is not None:
                results.append(result)
                empty = 0
                continue
            empty += 1
            # One empty answer ends each command; two in a row mean nothing more will come.
            if pgconn.status == _BAD or empty > 1:
                with contextlib.suppress(psycopg.Error, OSError):
                    self.conn.close()
                raise psycopg.OperationalError("the connection to the database was lost")
        return results

    def _wait(self, events: int) -> None:
        poll = self._poll
        if poll is None:
            self._poll = poll = select.poll()
        poll.register(self.pgconn.socket, events)
        # The wait releases the GIL while the server works. A server that says nothing for
        # this long (hung, or beyond a network partition) is taken for lost, rather than
        # holding the caller (and a writer's turn) for ever.
        if not poll.poll(self.patience):
            with contextlib.suppress(psycopg.Error, OSError):
                self.conn.close()
            raise psycopg.OperationalError(
                f"the database did not answer within {self.patience // 1000} s"
            )

    def _error(self, result: Any) -> psycopg.Error:
        if self.pgconn.status == _BAD and not result.error_field(DiagnosticField.SQLSTATE):
            message = result.error_message.decode("utf-8", "replace").strip()
            return psycopg.OperationalError(message or "the connection to the database was lost")
        return pg_errors.error_from_result(result, encoding="utf-8")


class _Pool:
    """At most *max_size* connections, opened on demand, reused last-in first-out."""

    def __init__(
        self, connect: Callable[[], _Connection], min_size: int, max_size: int, timeout: float
    ) -> None:
        self._connect = connect
        self._max = max_size
        self._min = min_size
        self._timeout = timeout
        self._cond = threading.Condition()
        self._idle: list[_Slot] = []
        self._size = 0
        self._closed = False
        self._pid = os.getpid()
        #: Connections inherited through ``fork``: kept referenced, never used or closed.
        self._inherited: list[_Slot] = []

    def _after_fork(self) -> None:
        # The parent's lock may have been held by one of its threads at the fork: replace it.
        self._cond = threading.Condition()
        self._inherited.extend(self._idle)
        self._idle = []
        self._size = 0
        self._pid = os.getpid()

    def get(self) -> _Slot:
        """Take an idle connection, open a new one, or wait up to the timeout for one."""
        if self._pid != os.getpid():
            self._after_fork()
        deadline: float | None = None
        with self._cond:
            while True:
                if self._closed:
                    raise PartnerKitError("the store is closed")
                if self._idle:
                    return self._idle.pop()
                if self._size < self._max:
                    self._size += 1
                    break
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._timeout
                if now >= deadline:
                    raise StoreUnavailable(
                        f"no database connection came free within {self._timeout} s"
                    )
                self._cond.wait(deadline - now)
        try:
            return _Slot(self._connect(), _patience(self._timeout))
        except BaseException:
            with self._cond:
                self._size -= 1
                self._cond.notify()
            raise

    def fill(self) -> None:
        """Open connections until *min_size* are idle."""
        slots: list[_Slot] = []
        try:
            while len(slots) < self._min:
                slots.append(self.get())
        finally:
            for slot in slots:
                self.put(slot)

    def put(self, slot: _Slot) -> None:
        """Give a connection back: idle again if it is healthy, closed otherwise."""
        if slot.pid != os.getpid() or self._pid != os.getpid():
            self._inherited.append(slot)
            return
        if not slot.usable():
            self.discard(slot)
            return
        with self._cond:
            if not self._closed:
                self._idle.append(slot)
                self._cond.notify()
                return
            self._size -= 1
        slot.close()

    def discard(self, slot: _Slot, *, flush: bool = False) -> None:
        """Close a connection that can no longer be trusted (with *flush*, every idle one too).

        A connection found dead usually means the server restarted or failed over, which
        kills the idle ones as well: flushing them spares the next callers the same error.
        """
        if slot.pid != os.getpid():
            self._inherited.append(slot)
            return
        dropped = [slot]
        with self._cond:
            if flush:
                dropped += self._idle
                self._idle = []
            self._size -= len(dropped)
            self._cond.notify(len(dropped))
        for each in dropped:
            each.close()

    def close(self) -> None:
        """Close the idle connections now and the busy ones when they come back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            self._cond.notify_all()
        for slot in idle:
            slot.close()


class _PostgresRepository(Repository[T]):
    __slots__ = (
        "_clash",
        "_codec",
        "_computed",
        "_find_sql",
        "_find_statements",
        "_guarded_update",
        "_sql",
        "_table",
        "_tsql",
        "_uow",
    )

    def __init__(self, uow: _PostgresUnitOfWork, sql: _PostgresTableSQL) -> None:
        self._uow = uow
        self._tsql = sql
        self._table: Table[T] = sql.table
        self._codec = sql.codec
        self._computed = tuple(sql.table.computed.values())
        self._sql = sql.statements
        self._find_sql = sql.groups
        self._find_statements = sql.find_statements
        self._guarded_update = sql.guarded_update
        self._clash = sql.clash_positions

    def get(self, ident: str) -> T | None:
        if not issubclass(type(ident), str):  # no key is anything but text (by its type)
            self._uow._open(False)
            return None
        try:
            row = self._uow.fetchone(self._sql["get"], (ident,))
        except ValidationError:
            if self._uow._slot is not None and never_stored(ident):
                return None  # no stored key is such text; PostgreSQL cannot take it
            raise
        return None if row is None else self._codec.decode(row)

    def get_many(self, idents: Sequence[str]) -> dict[str, T]:
        self._uow._open(False)  # a finished unit of work refuses, whatever the ids
        idents = [i for i in idents if not unheld_key(i)]
        if not idents:
            return {}
        rows = self._uow.fetchall(
            f"{self._sql['get_many']} (SELECT unnest(%s::text[]))", (list(idents),)
        )
        decode = self._codec.decode
        found: dict[str, T] = {}
        for row in rows:
            obj = decode(row)
            found[obj.id] = obj
        return found

    def add(self, obj: T) -> None:
        self._uow._open(True)  # the unit of work is judged before what it is given
        if key_of(obj)[1] != 1:
            raise Conflict(f"a new {self._table.noun} starts at version 1")
        if self._table.validate is not None:
            self._table.validate(obj)
        row = self._row(obj)
        uow, tsql = self._uow, self._tsql
        if uow.later and uow.write_later(tsql.strict_insert, row, tsql.insert_check):
            return
        if uow.execute(self._sql["insert"], row, write=True) != 1:
            raise Conflict(f"{self._table.noun} key already taken")

    def update(self, obj: T) -> None:
        self._uow._open(True)
        ident, version = key_of(obj)
        if self._table.validate is not None:
            self._table.validate(obj)
        row = self._row(obj)
        guard = [ident, *(row[i] for i in self._clash)] if self._clash else []
        params = (*row, ident, version - 1, *guard)
        uow, tsql = self._uow, self._tsql
        if uow.later and uow.write_later(tsql.checked_update, params, tsql.update_check):
            return
        n = uow.execute(self._guarded_update, params, True)
        if n != 1:
            current = self._uow.fetchone(self._sql["version"], (ident,))
            if current is not None and current[0] == version - 1:
                raise Conflict(f"{self._table.noun} key already taken")
            raise Conflict(f"stale {self._table.noun}: a concurrent change won")

    def remove(self, obj: T) -> None:
        self._uow._open(True)  # the unit of work is judged before what it is given
        ident, version = key_of(obj)
        if unheld_key(ident) or unheld_version(version):  # no row has it
            raise Conflict(f"stale {self._table.noun}: a concurrent change won")
        if self._uow.execute(self._sql["delete"], (ident, version), write=True) != 1:
            raise Conflict(f"stale {self._table.noun}: a concurrent change won")

    def find(self, **where: object) -> list[T]:
        self._uow._open(False)
        try:
            select, _, params = self._sql_of(where)
        except Unheld:
            return []
        return self._rows(select, params, where)

    def find_page(
        self, where: Mapping[str, object], limit: int, after: str | None = None
    ) -> list[T]:
        self._uow._open(False)
        where = dict(where)
        if self._find_sql.get(frozenset(where)) is None:
            raise ValueError(f"{self._table.name} has no lookup on {sorted(where)}")
        bound = check_find_page(limit, after)
        try:
            group, values = self._lookup_params(where)
        except Unheld:
            return []
        first, following = self._tsql.page_sql(group, tuple(v is None for v in values))
        params = [v for v in values if v is not None]
        params += [limit] if bound is None else [bound, limit]
        return self._rows(first if bound is None else following, params, where)

    def _rows(self, select: str, params: list[Any], where: dict[str, object]) -> list[T]:
        """The objects of a lookup's *select*; none for a value no row can hold."""
        try:
            rows = self._uow.fetchall(select, params)
        except ValidationError:
            if self._uow._slot is not None and _never_read(where):
                return []  # no row holds such text; PostgreSQL cannot take it
            raise
        found: list[T] = self._codec.decode_rows(rows)
        return found

    def count(self, **where: object) -> int:
        self._uow._open(False)
        try:
            _, count, params = self._sql_of(where)
        except Unheld:
            return 0
        try:
            row = self._uow.fetchone(count, params)
        except ValidationError:
            if self._uow._slot is not None and _never_read(where):
                return 0
            raise
        assert row is not None
        return int(row[0])

    def _sql_of(self, where: dict[str, object]) -> tuple[str, str, list[Any]]:
        """The statements for a lookup and their parameters (``None`` matches NULL)."""
        group, values = self._lookup_params(where)
        nulls = tuple(v is None for v in values)
        select, count = self._find_statements(group, nulls)
        return select, count, [v for v in values if v is not None]

    def _lookup_params(self, where: dict[str, object]) -> tuple[tuple[str, ...], list[Any]]:
        """A lookup's columns and its values encoded (``None`` where the row has none)."""
        group = self._find_sql.get(frozenset(where))
        if group is None:
            raise ValueError(f"{self._table.name} has no lookup on {sorted(where)}")
        enc = self._codec.encode_value
        if any(fakes_text(where[c]) for c in group):
            raise Unheld  # claims to be text and is none: no row has it
        return group, [enc(c, where[c]) for c in group]

    def _row(self, obj: T) -> list[Any]:
        return self._codec.row(obj, self._computed)


class _PostgresTableSQL(TableSQL):
    """The shared statements with ``%s`` marks, plus the ones that keep a clash non-fatal."""

    def __init__(self, table: Table[Any]) -> None:
        super().__init__(table, mark="%s")
        name = table.name
        stmts = self.statements
        #: The insert whose clash is an error, for a write checked later: the error aborts
        #: the transaction, and so keeps the commit it travels with from committing.
        self.strict_insert = stmts["insert"]
        # A clash on any unique key inserts nothing instead of aborting the transaction.
        stmts["insert"] += " ON CONFLICT DO NOTHING"
        stmts["version"] = f"SELECT version FROM {name} WHERE id = %s"
        #: The field columns, in the order the codec decodes them.
        self.columns = ", ".join(self.codec.fields)
        names = self.codec.names()
        #: Where in a row the unique columns are that the update guard compares, in order.
        self.clash_positions = [names.index(c) for group in table.unique for c in group]
        update = stmts["update"]
        if table.unique:
            # Writers are serialised, so this check cannot race another writer; a row-value
            # comparison with a NULL in it is not true, as a unique index treats NULLs.
            same = " OR ".join(
                f"({', '.join(f'o.{c}' for c in group)}) = ({', '.join('%s' for _ in group)})"
                for group in table.unique
            )
            update += f" AND NOT EXISTS (SELECT 1 FROM {name} AS o WHERE o.id <> %s AND ({same}))"
        self.guarded_update = update
        #: The guarded update, for a write checked later: it divides by the number of rows
        #: it changed, so that a stale version (no row) is an error of the statement itself,
        #: as a clash is for :attr:`strict_insert` (see :class:`_Checked`).
        self.checked_update = (
            f"WITH changed AS ({update} RETURNING 1) SELECT 1 / count(*) FROM changed"
        )
        noun = table.noun
        #: The tags those two travel with, which turn their errors into ``Conflict``.
        self.insert_check = _Checked(f"{noun} key already taken")
        self.update_check = _Checked(
            f"{noun} key already taken", f"stale {noun} (or its key taken): a concurrent change won"
        )
        #: The column group of each lookup, by its set of columns.
        self.groups = {frozenset(group): group for group in table.lookups()}
        self._finds: dict[tuple[tuple[str, ...], tuple[bool, ...]], tuple[str, str]] = {}
        self._pages: dict[tuple[tuple[str, ...], tuple[bool, ...]], tuple[str, str]] = {}

    def find_statements(self, group: tuple[str, ...], nulls: tuple[bool, ...]) -> tuple[str, str]:
        """``SELECT`` and ``count`` for *group*, with ``IS NULL`` where *nulls* says so.

        ``col = NULL`` is never true in SQL, while ``find(col=None)`` means "has no value",
        as on the other stores; ``IS NULL`` (unlike ``IS NOT DISTINCT FROM``) still uses
        the index. One statement per pattern of missing values, made once.
        """
        key = (group, nulls)
        found = self._finds.get(key)
        if found is None:
            where = self._where(group, nulls)
            found = (
                f"SELECT {self.columns} FROM {self.table.name} WHERE {where} ORDER BY id",
                f"SELECT count(*) FROM {self.table.name} WHERE {where}",
            )
            self._finds[key] = found
        return found

    def page_sql(self, group: tuple[str, ...], nulls: tuple[bool, ...]) -> tuple[str, str]:
        """``find_page``'s two statements for *group* (:func:`page_statements`), with
        ``IS NULL`` where *nulls* says so, made once."""
        key = (group, nulls)
        found = self._pages.get(key)
        if found is None:
            where = self._where(group, nulls)
            found = self._pages[key] = page_statements(self.columns, self.table.name, where, "%s")
        return found

    @staticmethod
    def _where(group: tuple[str, ...], nulls: tuple[bool, ...]) -> str:
        return " AND ".join(
            f"{c} IS NULL" if null else f"{c} = %s" for c, null in zip(group, nulls, strict=True)
        )


def _never_read(key: object) -> bool:
    """Whether a read by *key* (a key, or a lookup's values) can find nothing stored."""
    if isinstance(key, Mapping):
        return any(never_stored(value) for value in key.values())
    return never_stored(key)


def _storable(text: str) -> bool:
    """Whether PostgreSQL text can hold *text* (no NUL, no lone surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _prefix_range(column: str, prefix: str) -> tuple[str, tuple[str, ...]]:
    """Return a ``WHERE`` fragment that finds *prefix* on *column* as an index range.

    Under the ``"C"`` collation text compares by code point, as in SQLite: the same range
    as :func:`partnerkit.stores._sql.prefix_range` (trailing U+10FFFF included).
    """
    return prefix_range(column, prefix, "%s")


_AUDIT_NAMES = [c.name for c in AUDIT_COLUMNS.columns]
_AUDIT_SELECT = f"SELECT {', '.join(_AUDIT_NAMES)} FROM audit_events"
# The event and the new head in one statement: one round trip per appended event.
_AUDIT_APPEND = (
    f"WITH event AS (INSERT INTO audit_events ({', '.join(_AUDIT_NAMES)}) "
    f"VALUES ({', '.join('%s' for _ in _AUDIT_NAMES)})) "
    "UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1"
)


class _PostgresUnitOfWork:
    """A transaction on one pooled connection of a :class:`PostgresStore`.

    ``uow.<table name>`` is the repository of that table, for every table of ``ports.TABLES``.

    A write unit of work begins (and takes the writers' lock) on entry: it sends ``BEGIN``
    and the lock then, and reads their answers with its first statement's, in the same round
    trip (the server runs that statement after the lock either way). A read one takes no
    lock, so it begins with its first statement, in the same round trip (its snapshot is
    taken by that statement either way); a read that asks nothing sends nothing.
    """

    def __init__(self, store: PostgresStore, write: bool) -> None:
        self._store = store
        self._write = write
        self._slot: _Slot | None = None
        self._begun = False
        #: The thread that opened it: the only one its statements may come from (its
        #: connection carries one conversation with the server at a time).
        self._thread: int | None = None
        #: The chain head, read under the writers' lock (write units of work only).
        self._head: tuple[int, str] | None = None
        #: Writes sent with the next statement (or the commit), whose answer is only checked,
        #: with the tag that checks it.
        self._deferred: list[tuple[str, list[bytes | None], Any]] = []
        #: ``add`` and ``update`` are checked by a later call (``check_writes_later``).
        self.later = False
        #: The connection was lost during the commit: whether it committed is not known.
        self._unknown = False
        #: Why this unit of work was ended early (the writers' lock was refused, or its
        #: transaction failed on the server), if it was.
        self._refused: PartnerKitError | None = None

    def _refuse(self, why: PartnerKitError) -> None:
        """End this unit of work now: *why* is raised by everything it is asked later."""
        self._refused = why
        self._end()

    def __getattr__(self, name: str) -> Any:
        # Repositories are made on first use, from statements the store built once. The
        # result is typed Any so that every table of the ports, present and future, is
        # typed by the UnitOfWork protocol rather than listed here.
        sql = self._store.tables.get(name)
        if sql is None:
            raise AttributeError(name)
        repo: _PostgresRepository[Any] = _PostgresRepository(self, sql)
        setattr(self, name, repo)
        return repo

    def repository(self, table: Table[T]) -> Repository[T]:
        repo: Repository[T] = getattr(self, table.name)
        return repo

    def _open(self, write: bool) -> _Slot:
        slot = self._slot
        if slot is None:
            refused = self._refused
            if refused is not None:
                if isinstance(refused, Conflict):
                    raise Conflict(str(refused)) from refused
                # The cause says what failed.
                raise PartnerKitError(_UNKNOWN if self._unknown else _FAILED) from refused
            raise PartnerKitError("unit of work is not open")
        if self._thread != get_ident():
            raise PartnerKitError("unit of work is not open")  # in this thread: as elsewhere
        if write and not self._write:
            raise PartnerKitError("read-only unit of work")
        if slot.pid != _PROCESS[0]:
            # Opened before a fork: its connection and transaction are the parent's.
            raise PartnerKitError(_FORKED)
        return slot

    def _results(self, statements: Sequence[tuple[str, Any]], write: bool) -> list[Any] | None:
        """Run *statements* in one round trip and return their libpq results, or ``None`` if
        psycopg's cursor must run them (a statement without parameters, whose text may hold
        several statements, or parameters of other types).
        """
        slot = self._open(write)
        try:
            batch = [(sql, _encode(params)) for sql, params in statements if params]
        except _Unsupported:
            return None
        if len(batch) != len(statements):
            return None
        if not self._begun:
            return self._store.begin_with(self, batch)
        return self._batch(slot, batch)

    def _batch(self, slot: _Slot, batch: list[tuple[str, list[bytes | None]]]) -> list[Any]:
        """Run *batch* (encoded) with any deferred writes, in one round trip; return the
        results of *batch*. The first batch of a write unit of work also reads the answers
        of its opening, and takes the chain head from them."""
        if slot.opening is not None:
            try:
                answers = self._store.finish_opening(self, batch)
            except PartnerKitError as exc:
                if self._slot is not None:
                    self._refuse(exc)  # its transaction failed on the server: it is over
                raise
            self._take_head(answers[0])
            return answers[1:]
        tags = slot.start()
        self._send_deferred(slot, tags)
        for sql, values in batch:
            slot.query(tags, sql, values, _MAIN)
        try:
            return slot.answers(tags, slot.finish(tags))
        except _WriteRefused as exc:
            self._refuse(exc)  # its transaction failed on the server: nothing more of it
            raise
        except psycopg.Error as exc:
            # Any error aborts a transaction on the server: a writer is over, so that
            # nothing it sends later runs (or, after its failed commit, commits alone); a
            # reader too, whose later statements would all fail, saying less of why.
            failed = _translate(exc)
            self._refuse(failed)
            raise failed from exc

    def _take_head(self, result: Any) -> None:
        rows = self._slot.rows  # type: ignore[union-attr]
        rows.set_pgresult(result)
        row = rows.load_row(0, tuple) if result.ntuples else None
        if row is not None and type(row[2]) is int and row[2] > SCHEMA_VERSION:
            refused = newer_schema(row[2], SCHEMA_VERSION)
            self._refuse(refused)
            raise refused
        self._head = chain_head(row[:2] if row is not None else None)

    def _opened_now(self) -> _Slot:
        """The connection, once the answers of this writer's opening are read (a round trip
        of their own, when no statement came to carry them)."""
        slot = self._open(False)
        if slot.opening is not None:
            with translate_errors():
                self._batch(slot, [])
            slot = self._open(False)
        return slot

    def _send_deferred(self, slot: _Slot, tags: list[Any]) -> None:
        for sql, values, tag in self._deferred:
            slot.query(tags, sql, values, tag)
        self._deferred.clear()

    def _classic(self, sql: str, params: Any, write: bool) -> _Cursor:
        """Run *sql* through psycopg's cursor, in this unit of work's transaction."""
        slot = self._open(write)
        if not self._begun:
            self._store.begin_with(self, [])
            slot = self._open(write)
        elif self._deferred or slot.opening is not None:
            self._batch(slot, [])
            slot = self._open(write)
        cur = slot.cursor
        cur.execute(sql, params)
        return cur

    def execute(self, sql: str, params: Any, write: bool = False) -> int:
        with translate_errors():
            results = self._results(((sql, params),), write)
            if results is None:
                return self._classic(sql, params, write).rowcount
            rowcount = results[0].command_tuples
            return -1 if rowcount is None else int(rowcount)

    def fetchone(self, sql: str, params: Any) -> Any:
        with translate_errors():
            results = self._results(((sql, params),), False)
            if results is None:
                return self._classic(sql, params, False).fetchone()
            result = results[0]
            if not result.ntuples:
                return None
            rows = self._slot.rows  # type: ignore[union-attr]
            rows.set_pgresult(result)
            return rows.load_row(0, tuple)

    def fetchall(self, sql: str, params: Any) -> list[Any]:
        with translate_errors():
            results = self._results(((sql, params),), False)
            if results is None:
                return self._classic(sql, params, False).fetchall()
            result = results[0]
            rows = self._slot.rows  # type: ignore[union-attr]
            rows.set_pgresult(result)
            return rows.load_rows(0, result.ntuples, tuple)

    def fetch_each(self, statements: Sequence[tuple[str, Any]]) -> list[Any]:
        """The first row of each statement's answer (``None`` for none), in one round trip."""
        # Not through _all_rows: a decision's one round trip, loading only the row it needs.
        with translate_errors():
            results = self._results(statements, False)
            if results is None:
                return [self._classic(sql, params, False).fetchone() for sql, params in statements]
            rows = self._slot.rows  # type: ignore[union-attr]
            found = []
            for result in results:
                if result.ntuples:
                    rows.set_pgresult(result)
                    found.append(rows.load_row(0, tuple))
                else:
                    found.append(None)
            return found

    def get_each(self, *keys: tuple[Table[Any], str]) -> list[Any]:
        """The objects with these keys, from their tables (``None`` where there is none).

        The reads travel in one round trip, as one statement would: the optional
        ``get_each`` of ``partnerkit.ports.EachReader``, with which ``Portal.decide`` reads
        the actor and the company at once.
        """
        if not all(issubclass(type(key), str) for _, key in keys):
            return self._each(keys, self._get_each, None)  # no key is anything but text
        try:
            return self._get_each(keys)
        except ValidationError as exc:
            return self._each(keys, self._get_each, exc)

    def _get_each(self, keys: Sequence[tuple[Table[Any], str]]) -> list[Any]:
        sqls = [self._store.tables[table.name] for table, _ in keys]
        rows = self.fetch_each(
            [(sql.statements["get"], (ident,)) for sql, (_, ident) in zip(sqls, keys, strict=True)]
        )
        return [
            None if row is None else sql.codec.decode(row)
            for sql, row in zip(sqls, rows, strict=True)
        ]

    def find_each(self, *reads: tuple[Table[Any], str | Mapping[str, object]]) -> list[Any]:
        """The answer of each read by key (the object or ``None``) or by lookup (the list
        ``find`` returns), in order.

        The reads travel in one round trip: the optional ``find_each`` of
        ``partnerkit.ports.EachFinder``, with which ``Portal.redeem`` reads what a
        redemption needs at once.
        """
        if not all(issubclass(type(key), str) or isinstance(key, Mapping) for _, key in reads):
            return self._each(reads, self._find_each, None)  # a key that is not text
        try:
            return self._find_each(reads)
        except Unheld:  # raised before anything was sent
            return self._each(reads, self._find_each, None)
        except ValidationError as exc:
            return self._each(reads, self._find_each, exc)

    def _each(
        self,
        reads: Sequence[tuple[Table[Any], Any]],
        run: Callable[[Any], list[Any]],
        error: ValidationError | None,
    ) -> list[Any]:
        """The *reads* by a key or lookup value no row can hold (text PostgreSQL refuses as
        a parameter: see ``never_stored``; a value of another kind than its column's) answer
        ``None`` or ``[]``, and the others are *run*; after *run* of all of them raised
        *error*, which is raised again where there is no such read."""
        if error is not None and self._slot is None:
            raise error
        self._open(False)  # a finished unit of work refuses, whatever it is asked
        held = [not self._unheld_read(table, key) for table, key in reads]
        if all(held):
            if error is not None:
                raise error
            return run(reads)
        answers = iter(run([read for read, ok in zip(reads, held, strict=True) if ok]))
        return [
            next(answers) if ok else ([] if isinstance(key, Mapping) else None)
            for (_, key), ok in zip(reads, held, strict=True)
        ]

    def _unheld_read(self, table: Table[Any], key: object) -> bool:
        """Whether a read by *key* (a key, or a lookup's values) can find nothing stored."""
        if not isinstance(key, Mapping):
            return unheld_key(key)
        encode = self._store.tables[table.name].codec.encode_value
        for column, value in key.items():
            if never_stored(value) or fakes_text(value):
                return True
            try:
                encode(column, value)
            except Unheld:
                return True
            except (KeyError, TypeError, ValueError, AttributeError):
                return False  # not a lookup the table has: the read itself says so
        return False

    def _find_each(self, reads: Sequence[tuple[Table[Any], Any]]) -> list[Any]:
        statements: list[tuple[str, Any]] = []
        for table, key in reads:
            if isinstance(key, str):
                statements.append((self._store.tables[table.name].statements["get"], (key,)))
            else:
                select, _, params = getattr(self, table.name)._sql_of(dict(key))
                statements.append((select, params))
        answers = self._all_rows(statements)
        found: list[Any] = []
        for (table, key), got in zip(reads, answers, strict=True):
            decode = self._store.tables[table.name].codec.decode
            if isinstance(key, str):
                found.append(decode(got[0]) if got else None)
            else:
                found.append([decode(row) for row in got])
        return found

    def defer(self, sql: str, params: Any) -> None:
        """Send a write with the next statement or the commit, checking only that it worked.

        Only for a write whose outcome the caller does not wait for: an error it meets is
        raised by the statement (or the commit) it travels with, which then fails too.
        """
        if self._open(True).opening is not None:
            self._opened_now()  # a deferred write never travels with the opening
        with translate_errors():
            self._deferred.append((sql, _encode(params), _PLAIN))

    def check_writes_later(self) -> None:
        """Let ``add`` and ``update`` return before their answer (``ports.LaterChecks``).

        Each is sent with the next statement or the commit, in its round trip; one that
        fails (a clash, a stale version) raises its ``Conflict`` from that statement or that
        commit, which then commits nothing (the failed write aborts the transaction on the
        server, before the ``COMMIT`` that follows it). The Portal turns it on for its write
        units of work: a redemption, its reads made together, is then 2 round trips, not 7.
        """
        self._open(True)
        self.later = True

    def write_later(self, sql: str, params: Any, check: _Checked) -> bool:
        """Defer the write *sql*, checked by *check* (see :meth:`check_writes_later`);
        ``False`` if its parameters must go through psycopg's cursor instead, now."""
        slot = self._open(True)
        try:
            with translate_errors():
                values = _encode(params)
        except _Unsupported:
            return False
        if slot.opening is not None:
            self._opened_now()  # a deferred write never travels with the opening
        self._deferred.append((sql, values, check))
        return True

    def audit_head(self) -> tuple[int, str]:
        slot = self._slot
        if slot is not None and (slot.pid != _PROCESS[0] or self._thread != get_ident()):
            self._open(False)  # raises: the unit of work is the parent's, or another thread's
        if slot is not None and slot.opening is not None:
            self._opened_now()  # the head comes with the opening's answers
        if self._head is not None and self._slot is not None:
            return self._head
        return chain_head(self.fetchone("SELECT seq, hash FROM audit_head WHERE id = 1", ()))

    def append_audit(self, event: AuditEvent) -> None:
        self._open(True)
        check_appendable(event, self.audit_head())
        # Under the writers' lock nothing but a broken connection can refuse the event (its
        # key follows the head it was checked against): it travels with the commit.
        self.defer(_AUDIT_APPEND, (*AUDIT_COLUMNS.row(event), event.seq, event.hash))
        self._head = (event.seq, event.hash)

    def audit_events(self, company_id: str | None = None) -> list[AuditEvent]:
        if company_id is not None and unheld_key(company_id):
            self._open(False)  # refuses in a finished unit of work
            return []  # no event names a company by what is not text, or text no row holds
        if company_id is None:
            rows = self.fetchall(f"{_AUDIT_SELECT} ORDER BY seq", ())
        else:
            rows = self.fetchall(
                f"{_AUDIT_SELECT} WHERE company_id = %s UNION ALL "
                f"{_AUDIT_SELECT} WHERE actor_company_id = %s "
                "AND company_id IS DISTINCT FROM %s ORDER BY seq",
                (company_id, company_id, company_id),
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
        self._open(False)  # a finished unit of work, or another thread's, refuses first
        query = audit_range_query(
            _AUDIT_SELECT, "%s", company_id, limit, above, below, newest_first
        )
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
        sql = self._store.tables["customer_relations"]
        rows = self._search(partner_id, prefix, limit, after, now, sql.columns, joined=False)
        decode = sql.codec.decode
        return [decode(row) for row in rows]

    def search_customers(
        self,
        partner_id: str,
        prefix: str,
        limit: int,
        after: tuple[str, str] | None = None,
        now: datetime | None = None,
    ) -> list[Company]:
        codec = self._store.tables["companies"].codec
        selected = ", ".join(f"c.{name}" for name in codec.fields)
        rows = self._search(partner_id, prefix, limit, after, now, selected, joined=True)
        decode = codec.decode
        # A row without a company id is a relation whose company is missing: left out.
        return [decode(row) for row in rows if row[0] is not None]

    def _search(
        self,
        partner_id: str,
        prefix: str,
        limit: int,
        after: tuple[str, str] | None,
        now: datetime | None,
        selected: str,
        *,
        joined: bool,
    ) -> list[tuple[Any, ...]]:
        """The rows of one page of the customer search (see ``search_relations``): the
        *selected* columns of each relation (*joined*: of its company, ``NULL`` where it has
        none), then its key and id, in order of ``(key, id)``.

        Two statements in one round trip, each an index range already in order with its own
        ``LIMIT`` (the names that match, and the domains that match where the name does
        not), and *joined* to the companies only for the rows it keeps; the page is merged
        here. (One ``UNION ALL`` under a single ``LIMIT`` is what SQLite wants; PostgreSQL's
        planner then joins every match, by hash or after a sort of all of them.)
        """
        self._open(False)
        if not check_search(partner_id, prefix, limit, after, now):
            return []
        key, ident = after if after is not None else ("", "")
        if (
            limit <= 0
            or not _storable(prefix)
            or _never_read({"p": partner_id, "k": key, "i": ident})
        ):
            return []  # no text PostgreSQL holds starts with, or is, what it cannot hold
        r, source = "", "customer_relations"
        if joined:
            r, source = "r.", "customer_relations r LEFT JOIN companies c ON c.id = r.customer_id"
        by_name, name_bounds = _prefix_range(f"{r}name_key", prefix)
        by_domain, domain_bounds = _prefix_range(f"{r}domain", prefix)
        listed = listed_sql("%s", now is not None, r)
        codec = self._store.tables["customer_relations"].codec
        when = [] if now is None else [codec.encode_value("delegation_ends_at", now)]
        sides = []
        for column, where, bounds in (
            ("name_key", by_name, name_bounds),
            ("domain", f"{by_domain} AND NOT ({by_name})", (*domain_bounds, *name_bounds)),
        ):
            sides.append(
                (
                    f"SELECT {selected}, {r}{column}, {r}id FROM {source} "
                    f"WHERE {r}partner_id = %s AND {where} AND {listed} "
                    f"AND ({r}{column}, {r}id) > (%s, %s) ORDER BY {r}{column}, {r}id LIMIT %s",
                    (partner_id, *bounds, *when, key, ident, limit),
                )
            )
        named, domained = self._all_rows(sides)
        # Merge the two ranges by (key, id): Python orders text by code point, as "C" does.
        page = named + domained
        page.sort(key=lambda row: (row[-2], row[-1]))
        return page[:limit]

    def _all_rows(self, statements: Sequence[tuple[str, Any]]) -> list[list[tuple[Any, ...]]]:
        """Every row of each statement's answer, in one round trip."""
        with translate_errors():
            results = self._results(statements, False)
            if results is None:
                return [self._classic(sql, params, False).fetchall() for sql, params in statements]
            rows = self._slot.rows  # type: ignore[union-attr]
            answers = []
            for result in results:
                rows.set_pgresult(result)
                answers.append(rows.load_rows(0, result.ntuples, tuple))
            return answers

    def commit(self) -> None:
        slot = self._open(True)
        if slot.opening is not None:
            slot = self._opened_now()
        with translate_errors():
            tags = slot.start()
            self._send_deferred(slot, tags)
            slot.plain(tags, _COMMIT, _MAIN)
            try:
                slot.send(tags)
                # The COMMIT is on its way; the server holds the writers' lock until it has
                # synced it. The next writer of this process may send its opening now: it
                # waits at the server, and gets the lock the moment the commit is durable,
                # instead of after this answer has come back and been read here.
                turn, slot.turn = slot.turn, False
                if turn:
                    self._store.end_turn()
                done = slot.answer(tags, slot.receive(tags))
            except _WriteRefused as exc:
                self._refuse(exc)  # the COMMIT after the failed write was not run
                raise
            except psycopg.Error as exc:
                failed = _translate(exc)
                # A lost connection leaves the commit's outcome unknown; anything else (an
                # error the server answered with) failed before it. Either way nothing may
                # run after it.
                self._unknown = _connection_broke(exc)
                self._refuse(failed)
                raise failed from exc
        if done.command_status != _COMMIT:
            # COMMIT of a transaction that failed earlier rolls it back instead. The
            # connection is out of any transaction now: the unit of work must end here, or
            # what it sent later would run, and commit, on its own.
            failed = PartnerKitError(_FAILED)
            self._refuse(failed)
            raise failed
        self._slot = None
        self._store.pool.put(slot)

    def rollback(self) -> None:
        if self._slot is not None and self._thread != get_ident():
            # Its connection is in use by the thread that opened it: given back now, it
            # would carry two units of work's statements at once.
            raise PartnerKitError("unit of work is not open")
        self._end()

    def _end(self, *, report: bool = False) -> None:
        """Roll back and give the connection back. The answers of an opening no statement
        came to read are read first; with *report*, a ``Conflict`` they hold (the writers'
        lock could not be had) is raised once the connection is back."""
        slot, self._slot = self._slot, None
        self._head = None
        self._deferred.clear()
        here = self._store._open_here
        if getattr(here, "uow", None) is self:
            here.uow = None
        if slot is None:
            return
        if slot.pid != _PROCESS[0]:
            # Left in a child forked while it was open: its connection, its transaction
            # and its turn are the parent's. Nothing is sent, nothing is given up.
            self._store.pool.put(slot)
            return
        turn, slot.turn = slot.turn, False
        refused = None
        try:
            if slot.opening is not None:
                try:
                    with translate_errors():
                        tags = slot.start()
                        slot.answers(tags, slot.finish(tags))
                except PartnerKitError as exc:
                    refused = exc
                except BaseException:
                    # Interrupted mid-answer: the connection is of no further use.
                    self._store.pool.discard(slot)
                    raise
            self._give_back(slot)
        finally:
            if turn:
                self._store.end_turn()
        if report and isinstance(refused, Conflict):
            raise refused

    def _give_back(self, slot: _Slot) -> None:
        pool = self._store.pool
        if slot.pending:
            pool.put(slot)  # this unit of work never sent anything
            return
        conn = slot.conn
        try:
            if not conn.broken and conn.info.transaction_status in _OPEN:
                # The server ends the transaction as soon as it reads this; nobody waits.
                slot.send_rollback()
        except (psycopg.Error, OSError):
            # The server ends a transaction whose connection is gone; nothing is kept.
            pool.discard(slot, flush=True)
        else:
            if conn.broken or conn.closed:
                pool.discard(slot, flush=True)
            else:
                pool.put(slot)  # a connection left mid-answer is not usable: closed there

    def __enter__(self) -> _PostgresUnitOfWork:
        store = self._store
        if store.pool._closed:
            raise PartnerKitError("the store is closed")
        here = store._open_here
        open_here: _PostgresUnitOfWork | None = getattr(here, "uow", None)
        if open_here is not None and open_here._is_open_in_this_process():
            # One unit of work at a time in a thread, as on every store: a second one would
            # not see the first one's writes (or, for a writer, wait for itself).
            raise PartnerKitError("a unit of work is already open in this thread")
        self._thread = get_ident()
        if self._write:
            self._slot, self._head = store.begin(True)
            self._begun = True
        else:
            self._slot = store.pool.get()
        here.uow = self
        return self

    def _is_open_in_this_process(self) -> bool:
        """Whether this unit of work holds a connection of this process (one left open in
        a parent before a fork is not the child's)."""
        slot = self._slot
        return slot is not None and slot.pid == _PROCESS[0]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._slot is not None and self._thread != get_ident():
            raise PartnerKitError("unit of work is not open")  # its opener's, as rollback
        # A writer that leaves without a statement still learns if it never got the lock.
        self._end(report=exc is None)


class PostgresStore:
    """Keeps everything in one PostgreSQL database; safe to share between threads and app servers.

    Args:
        dsn: a libpq connection string or URI (``"host=/run/postgresql dbname=portal"``).
        min_size: connections opened at once (and kept open).
        max_size: connections open at most; more concurrent units of work wait for one.
        timeout: seconds to wait for a connection, for connecting, and for the writers' lock
            (PostgreSQL's ``lock_timeout``); after that, ``StoreUnavailable`` or ``Conflict``.
            At most :data:`MAX_TIMEOUT`. A server that owes an answer and stays silent for
            ``SILENCE_GRACE`` (30) seconds beyond it (or twice it) is taken for lost.
        retries: how many times opening a unit of work tries again on a new connection when
            the pooled one turns out dead, or when taking the writers' lock meets a deadlock
            or serialization failure. Nothing has happened yet then, so trying is safe.

    Raises:
        StoreUnavailable: the server cannot be reached.
        Conflict: another app server held the migration lock for longer than *timeout*.
        ValidationError: an argument is out of range, or *dsn* is not a connection string.
        PartnerKitError: the database is not UTF-8, or its schema is newer than this code.
    """

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        timeout: float = 10.0,
        retries: int = 5,
    ) -> None:
        if type(max_size) is not int or max_size < 1:
            raise ValidationError("max_size", "must be a whole number, at least 1")
        if type(min_size) is not int or not 0 <= min_size <= max_size:
            raise ValidationError("min_size", "must be a whole number from 0 to max_size")
        check_timeout(timeout, zero=False)  # a lock_timeout of 0 would wait for ever
        if type(retries) is not int or retries < 0:
            raise ValidationError("retries", "must be a whole number, at least 0")
        if not isinstance(dsn, str):
            raise ValidationError("dsn", "must be a libpq connection string (a str)")
        dsn = str.__str__(dsn)
        if "\x00" in dsn or never_stored(dsn):  # libpq takes UTF-8 without NUL
            raise ValidationError("dsn", "is not a valid libpq connection string")
        self._dsn = dsn
        self.timeout = timeout
        self.retries = retries
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.Error:
            # Not chained: psycopg's message quotes the string, password and all, and a
            # logged traceback would print it.
            raise ValidationError("dsn", "is not a valid libpq connection string") from None
        self._describe = " ".join(
            f"{k}={params[k]}" for k in ("host", "port", "dbname") if params.get(k)
        )
        self._connect_args: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            self._connect_args["connect_timeout"] = max(2, round(timeout))
        self.tables = {table.name: _PostgresTableSQL(table) for table in TABLES}
        self.pool = _Pool(
            functools.partial(_connect, dsn, self._connect_args, timeout),
            min_size,
            max_size,
            timeout,
        )
        # A store dropped without close() closes its idle connections as it goes (the pool
        # holds nothing of the store's, or the store would never be garbage): the server's
        # sessions end then, and psycopg has no open connection to warn about.
        weakref.finalize(self, self.pool.close)
        self._turn = threading.Lock()
        self._turn_pid = os.getpid()
        #: The thread whose writer holds the turn, if one does.
        self._turn_holder: int | None = None
        #: Each thread's open unit of work (``.uow``), so that it cannot open a second one.
        self._open_here = threading.local()
        _STORES.add(self)
        try:
            self._migrate()
            self.pool.fill()
        except BaseException:
            self.pool.close()
            raise

    def begin(self, write: bool) -> tuple[_Slot, tuple[int, str] | None]:
        """Take a connection and open a transaction on it (a write one asks for the writers'
        lock at once, and its first statement reads the answer: see :meth:`finish_opening`).

        Returns the connection and, when it is known already, the audit chain's head
        (``None`` here: it comes with the opening's answers).
        """
        if not write:
            return self._opened(self.pool.get(), False, [])[0], None
        # The writers of this process queue here, so that one at a time waits at the server
        # for the lock (while the one before it syncs its commit: see ``commit``): sixteen
        # sessions queued for one row cost the server more than one does. The lock is still
        # what orders writers; after the timeout a writer goes on to it (and its
        # lock_timeout) without a turn.
        if self._turn_pid != os.getpid():
            self._turn = threading.Lock()  # a parent's writer may have held it at the fork
            self._turn_pid = os.getpid()
            self._turn_holder = None
        if self.pool._closed:  # as for a reader, whatever else is open
            raise PartnerKitError("the store is closed")
        me = threading.get_ident()
        if self._turn_holder == me:
            # Its own writer holds the turn, and soon the lock at the server: waiting for
            # either would wait for itself (for the timeout, and then in vain).
            raise PartnerKitError("a unit of work is already open in this thread")
        turn = self._turn.acquire(timeout=self.timeout)
        if turn:
            self._turn_holder = me
        try:
            slot = self._send_opening(self.pool.get())
        except BaseException:
            if turn:
                self.end_turn()
            raise
        slot.turn = turn
        return slot, None

    def _send_opening(self, slot: _Slot) -> _Slot:
        """Send ``BEGIN`` and the writers' lock on *slot*, without waiting for the answers
        (``slot.opening``). A connection that cannot be written to is closed and another
        tried; nothing has happened yet then."""
        attempt = 0
        while True:
            try:
                with translate_errors():
                    tags = slot.start()
                    slot.plain(tags, _BEGIN_WRITE)
                    slot.query(tags, _LOCK_HEAD, [], _MAIN)
                    slot.send(tags)
                slot.opening = tags
                return slot
            except StoreUnavailable as exc:
                self.pool.discard(slot, flush=True)
                if attempt >= self.retries:
                    raise
                attempt += 1
                self._log_retry(True, exc, attempt)
                slot = self.pool.get()
            except BaseException:
                self.pool.discard(slot)  # a connection left mid-batch is not usable
                raise

    def finish_opening(
        self, uow: _PostgresUnitOfWork, statements: list[tuple[str, list[bytes | None]]]
    ) -> list[Any]:
        """Read the answers of *uow*'s opening (sent by :meth:`begin`) with those of its
        first *statements*, which travel in the same round trip; return the head's row and
        then their results.

        As in :meth:`_opened`, a connection found dead, or a deadlock or serialization
        failure, is retried on another connection, where the transaction is opened again
        with the statements: the one that failed is gone, and nothing of it was committed.
        """
        slot = uow._slot
        assert slot is not None
        try:
            with translate_errors():
                tags = slot.start()
                for sql, params in statements:
                    slot.query(tags, sql, params, _MAIN)
                return slot.answers(tags, slot.finish(tags))
        except (StoreUnavailable, Conflict) as exc:
            dead = slot.conn.broken or slot.conn.closed
            if isinstance(exc, Conflict) and isinstance(exc.__cause__, _WAITED_TOO_LONG):
                # The writers' lock was not had in time: nothing of the unit of work ran, and
                # it cannot go on (its transaction is aborted). As on SQLite, where such a
                # writer is refused as it opens, it is over: the connection goes back now,
                # and each later statement and its commit raise this Conflict, which is
                # safe to retry from the start.
                uow._refuse(exc)
                raise
            if self.retries < 1 or not (dead or isinstance(exc, Conflict)):
                raise  # the unit of work keeps the connection, and rolls it back
            self._log_retry(dead, exc, 1)
        turn, slot.turn = slot.turn, False
        uow._slot = None
        self._abandon(slot)
        try:
            uow._slot, answers = self._opened(self.pool.get(), True, statements, attempt=1)
        except BaseException:
            if turn:
                self.end_turn()
            raise
        uow._slot.turn = turn
        return answers

    def _after_fork(self) -> None:
        """In a forked child, before any of its threads runs: a turn and a pool of its own
        (a parent's writer may have held the turn at the fork, and its connections are the
        parent's)."""
        self._turn = threading.Lock()
        self._turn_pid = os.getpid()
        self._turn_holder = None
        self.pool._after_fork()

    def end_turn(self) -> None:
        """Give up the writers' turn a connection took in :meth:`begin` (``slot.turn``)."""
        self._turn_holder = None
        self._turn.release()

    def begin_with(
        self, uow: _PostgresUnitOfWork, statements: list[tuple[str, list[bytes | None]]]
    ) -> list[Any]:
        """Open *uow*'s read transaction and run its first *statements* in the same round trip.

        Returns their libpq results. If they fail, the unit of work has no connection any
        more, as if it had failed to open.
        """
        slot, uow._slot = uow._slot, None
        assert slot is not None
        try:
            uow._slot, answers = self._opened(slot, False, statements)
        except PartnerKitError as exc:
            uow._refused = exc  # what its later calls raise, rather than "not open"
            raise
        uow._begun = True
        return answers

    def _opened(
        self,
        slot: _Slot,
        write: bool,
        statements: list[tuple[str, list[bytes | None]]],
        *,
        attempt: int = 0,
    ) -> tuple[_Slot, list[Any]]:
        """Begin a transaction on *slot* and run *statements* in it, in one round trip; a
        write one takes the writers' lock first. Answers their results, after the head's row
        for a write one.

        A connection found dead, or a deadlock or serialization failure, is retried on
        another connection: nothing has been committed, and the failed transaction is gone
        (*attempt* counts the tries made already). A lock wait beyond the timeout is not
        retried (``Conflict``). On failure the connection goes back.
        """
        while True:
            try:
                with translate_errors():
                    tags = slot.start()
                    if write:
                        slot.plain(tags, _BEGIN_WRITE)
                        slot.query(tags, _LOCK_HEAD, [], _MAIN)
                    else:
                        slot.plain(tags, _BEGIN_READ)
                    for sql, params in statements:
                        slot.query(tags, sql, params, _MAIN)
                    return slot, slot.answers(tags, slot.finish(tags))
            except (StoreUnavailable, Conflict) as exc:
                dead = slot.conn.broken or slot.conn.closed
                self._abandon(slot)
                lock_wait = isinstance(exc.__cause__, _WAITED_TOO_LONG)
                if attempt >= self.retries or lock_wait or not (dead or isinstance(exc, Conflict)):
                    raise
                attempt += 1
                self._log_retry(dead, exc, attempt)
                slot = self.pool.get()
            except BaseException:
                self._abandon(slot)
                raise

    def _log_retry(self, dead: bool, exc: PartnerKitError, attempt: int) -> None:
        """Tell the operators that a unit of work opens again, before anything of it ran: on
        another connection (``INFO``: one to the server was lost, as after a restart), or
        after a deadlock or serialization failure (``DEBUG``)."""
        if dead:
            _log.info(
                "%r: a connection was lost (%s); opening the unit of work on another, try %d",
                self,
                exc,
                attempt,
            )
        else:
            _log.debug("%r: %s; opening the unit of work again, try %d", self, exc, attempt)

    def _abandon(self, slot: _Slot) -> None:
        conn = slot.conn
        if conn.broken or conn.closed:
            self.pool.discard(slot, flush=True)
            return
        try:
            if not slot.pending and conn.info.transaction_status in _OPEN:
                slot.send_rollback()
        except (psycopg.Error, OSError):
            self.pool.discard(slot, flush=True)
        else:
            self.pool.put(slot)

    def _migrate(self) -> None:
        slot = self.pool.get()
        cur = slot.cursor
        try:
            with translate_errors():
                encoding = cur.execute("SHOW server_encoding").fetchone()
                if encoding is None or encoding[0] != "UTF8":
                    raise PartnerKitError(
                        f"the database must use the UTF8 encoding, not {encoding}"
                    )
                cur.execute("BEGIN")
                try:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                    row = cur.execute("SELECT to_regclass('schema_version')").fetchone()
                    if row is None or row[0] is None:
                        cur.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                    row = cur.execute("SELECT max(version) FROM schema_version").fetchone()
                    current = stored_version(row[0], "the database's") if row else 0
                    if 0 < current < len(MIGRATIONS):
                        # Writers of older code read the version with their lock on the
                        # head (_LOCK_HEAD): held off until this commits, they see the new
                        # version then, and refuse. Readers go on.
                        cur.execute("LOCK TABLE audit_head IN EXCLUSIVE MODE")
                    found = migrate_forward(
                        current,
                        MIGRATIONS,
                        cur,
                        cur.execute,
                        lambda version: cur.execute(
                            "INSERT INTO schema_version (version) VALUES (%s)", (version,)
                        ),
                    )
                    cur.execute("COMMIT")
                    log_migrated(_log, self, found, len(MIGRATIONS))
                except BaseException:
                    if not slot.conn.broken:
                        # The migration's own error is the caller's to hear, not the
                        # ROLLBACK's (the connection is discarded either way).
                        with contextlib.suppress(psycopg.Error):
                            cur.execute("ROLLBACK")
                    raise
        except BaseException:
            self.pool.discard(slot)
            raise
        self.pool.put(slot)

    def schema_version(self) -> int:
        """Return the schema version recorded in the database."""
        with self.unit_of_work(write=False) as uow:
            row = uow.fetchone("SELECT max(version) FROM schema_version", ())
            return int(row[0])

    def unit_of_work(self, *, write: bool = True) -> _PostgresUnitOfWork:
        """Begin a unit of work (use it in a ``with`` block)."""
        return _PostgresUnitOfWork(self, write)

    def close(self) -> None:
        """Close every connection; units of work still open close theirs when they end."""
        self.pool.close()

    def __repr__(self) -> str:
        return f"<PostgresStore {self._describe}>"


if TYPE_CHECKING:

    def _conforms(store: PostgresStore) -> tuple[Store, UnitOfWork]:
        """Checked by mypy, never run: the store and its units of work satisfy the ports."""
        return store, store.unit_of_work()
