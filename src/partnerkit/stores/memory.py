"""``MemoryStore``: every table in dicts, for tests and prototypes.

It is a real adapter with the semantics and errors of the SQL stores, not a mock: unique keys,
versions, lookups only on declared indexes, atomic units of work. Units of work are
serialised by one lock (like SQLite's ``BEGIN IMMEDIATE``); changes are applied in place and
undone from a log on rollback, so a commit costs nothing.
"""

from __future__ import annotations

import bisect
import enum
import operator
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from threading import get_ident
from types import TracebackType
from typing import Any, TypeVar

from partnerkit.audit import GENESIS_HASH, AuditEvent
from partnerkit.consent import Delegation, DelegationOffer
from partnerkit.directory import Company, User
from partnerkit.errors import Conflict, PartnerKitError, _plain
from partnerkit.offers import PurchaseOffer, Subscription, TrialInvitation
from partnerkit.ports import TABLES, Repository, Table, check_find_page
from partnerkit.records import CustomerRelation, LinkRecord, RedemptionRecord
from partnerkit.stores._sql import (
    AUDIT_COLUMNS,
    check_appendable,
    check_audit_range,
    check_search,
    fakes_text,
    table_codec,
)
from partnerkit.support import Credential, ServiceRequest

__all__ = ["MemoryStore"]

T = TypeVar("T")
_SEQ = operator.attrgetter("seq")
#: Key to the id of the one row that has it, or to the ids of several.
_Index = dict[object, str | set[str]]


class _Lookup:
    """One declared lookup of a table: its columns and the index of keys to row ids (a row's
    keys come from ``_TableData.keys_of``; a ``find``'s key from the values it names)."""

    __slots__ = ("columns", "index", "key_of_where", "unique")

    def __init__(self, columns: tuple[str, ...], unique: bool) -> None:
        self.columns = columns
        self.unique = unique
        #: The key, from the values of a ``find``: one C-level call, a value for one
        #: column, a tuple for several (as ``keys_of`` makes them).
        self.key_of_where: Callable[[dict[str, object]], object] = operator.itemgetter(*columns)
        self.index: _Index = {}


class _TableData:
    """The rows of one table, with one index per lookup; each row is keyed once per write
    and its keys are kept, so that an update or a removal need not compute them again.

    An index maps a key to the id of the one row that has it, or to a set of ids when
    several rows share it. Most keys belong to one row (every unique key, and most others),
    and a plain string costs neither a set's memory nor the garbage collector's time: it
    is not an object the collector has to visit, where a set is, on every full collection,
    for as long as the store lives. The kept keys are tuples for the same reason.
    """

    __slots__ = (
        "by_columns",
        "by_names",
        "check",
        "generation",
        "keys",
        "keys_of",
        "lookups",
        "ordered",
        "ordered_at",
        "rows",
        "table",
        "uniques",
    )

    def __init__(self, table: Table[Any]) -> None:
        self.table = table
        self.rows: dict[str, Any] = {}
        #: The lookup keys each row is indexed under, in the order of ``lookups``.
        self.keys: dict[str, tuple[object, ...]] = {}
        unique = {frozenset(cols) for cols in table.unique}
        self.lookups = [_Lookup(cols, frozenset(cols) in unique) for cols in table.lookups()]
        self.uniques = [(i, lk) for i, lk in enumerate(self.lookups) if lk.unique]
        self.by_columns = {frozenset(lk.columns): lk for lk in self.lookups}
        self.by_names = {lk.columns: lk for lk in self.lookups}

        #: A row's lookup keys, in the order of ``lookups``, from one generated expression.
        self.keys_of: Callable[[Any], tuple[object, ...]] = _key_function(table, self.lookups)
        #: What the SQL stores refuse to write, refused here too (see ``Codec.check``).
        self.check: Callable[[Any], None] = table_codec(table).check
        #: How many writes the table has seen; and the keys of the lookups paged since the
        #: last one, each lookup's in key order (``find_page``), kept until the next write.
        self.generation = 0
        self.ordered: dict[tuple[tuple[str, ...], object], list[str]] = {}
        self.ordered_at = 0

    def in_order(self, lookup: _Lookup, key: object, held: str | set[str]) -> list[str]:
        """The ids *held* under *key* of *lookup*, in key order: sorted once, then reused
        for every page read until the table is written again."""
        if self.ordered_at != self.generation:
            self.ordered.clear()
            self.ordered_at = self.generation
        if not _kept_as_is(key):  # an object of the caller's: its hash may change
            return [held] if type(held) is str else sorted(held)
        found = self.ordered.get((lookup.columns, key))
        if found is None:
            found = [held] if type(held) is str else sorted(held)
            self.ordered[(lookup.columns, key)] = found
        return found

    def put(self, ident: str, obj: Any, keys: tuple[object, ...]) -> None:
        """Store a new row under *keys*."""
        self.generation += 1
        self.rows[ident] = obj
        self.keys[ident] = keys
        for lk, key in zip(self.lookups, keys):  # noqa: B905 - one key per lookup, always
            index = lk.index
            held = index.get(key)
            if held is None:
                index[key] = ident
            elif held.__class__ is str:
                index[key] = {held, ident}
            else:
                held.add(ident)  # type: ignore[union-attr]

    def drop(self, ident: str) -> None:
        """Forget a row and its index entries."""
        self.generation += 1
        del self.rows[ident]
        for lk, key in zip(self.lookups, self.keys.pop(ident), strict=True):
            _leave(lk.index, key, ident)

    def replace(self, ident: str, obj: Any, keys: tuple[object, ...]) -> None:
        """Swap a row for a new version, moving only the index entries that changed."""
        self.generation += 1
        old_keys = self.keys[ident]
        if old_keys != keys:
            for lk, old, new in zip(self.lookups, old_keys, keys, strict=True):
                if old != new:
                    _leave(lk.index, old, ident)
                    _enter(lk.index, new, ident)
            self.keys[ident] = keys
        self.rows[ident] = obj

    def unique_clash(self, keys: tuple[object, ...], ignore: str | None) -> bool:
        for i, lk in self.uniques:
            key = keys[i]
            if key is None or (type(key) is tuple and None in key):
                continue  # as in SQL, NULLs never clash
            holders = lk.index.get(key)
            if holders is None:
                continue
            if type(holders) is str:
                if holders != ignore:
                    return True
            elif any(h != ignore for h in holders):
                return True
        return False


def _kept_as_is(key: object) -> bool:
    """Whether a lookup's *key* is made of values whose hash and equality nothing but their
    value decides (text, enum members, ``None``): fit to key a memory kept between calls."""
    parts = key if type(key) is tuple else (key,)
    return all(
        part is None or type(part) is str or isinstance(type(part), enum.EnumMeta) for part in parts
    )


def _key_function(table: Table[Any], lookups: list[_Lookup]) -> Callable[[Any], tuple[object, ...]]:
    """``lambda row: (key of lookup 1, key of lookup 2, ...)``, written out once per table.

    Plain columns are read as attributes, computed ones through their function; the column
    names are the table's own identifiers, checked here before they go into the source.
    """
    namespace: dict[str, Any] = {}

    def value(column: str) -> str:
        if not column.isidentifier():
            raise ValueError(f"{table.name}: column {column!r} is not an identifier")
        computed = table.computed.get(column)
        if computed is None:
            return f"row.{column}"
        namespace[f"_c_{column}"] = computed
        return f"_c_{column}(row)"

    parts = []
    for lk in lookups:
        values = [value(c) for c in lk.columns]
        parts.append(values[0] if len(values) == 1 else f"({', '.join(values)},)")
    source = f"lambda row: ({', '.join(parts)},)" if parts else "lambda row: ()"
    function: Callable[[Any], tuple[object, ...]] = eval(source, namespace)  # noqa: S307
    return function


def _enter(index: _Index, key: object, ident: str) -> None:
    held = index.get(key)
    if held is None:
        index[key] = ident
    elif isinstance(held, str):
        index[key] = {held, ident}
    else:
        held.add(ident)


def _leave(index: _Index, key: object, ident: str) -> None:
    held = index.get(key)
    if held is None:
        return
    if isinstance(held, str):
        if held == ident:
            del index[key]
        return
    held.discard(ident)
    if len(held) == 1:
        index[key] = held.pop()
    elif not held:
        del index[key]


def _plain_values(where: dict[str, object]) -> dict[str, object]:
    """*where* with any value of a ``str`` subclass as its plain text: a dict lookup would
    otherwise take the subclass's own ``__eq__`` and ``__hash__``, and find rows whose text
    differs (the SQL stores bind the text)."""
    for value in where.values():
        if type(value) is not str and isinstance(value, str):
            return {name: _lookup_value(v) for name, v in where.items()}
    return where


#: What a lookup value that only claims to be text is looked up as: it equals no key.
_NO_ROW = object()


def _lookup_value(value: object) -> object:
    # Its text; or, when its __class__ only claims str, what no row holds.
    return _NO_ROW if fakes_text(value) else _plain(value)


class _MemoryRepository(Repository[T]):
    """One table's operations; one per store, usable only by the thread whose unit of work
    is open (the store's lock makes that one thread at a time)."""

    __slots__ = ("_data", "_store")

    def __init__(self, store: MemoryStore, data: _TableData) -> None:
        self._store = store
        self._data = data

    def get(self, ident: str) -> T | None:
        if self._store.owner != get_ident():
            self._store.check_open()
        if type(ident) is not str:
            ident = _plain(ident)  # looked up by its text, as the SQL stores bind it
            if type(ident) is not str:
                return None  # not text, whatever its __class__ claims: no row's key
        row: T | None = self._data.rows.get(ident)
        return row

    def get_many(self, idents: Sequence[str]) -> dict[str, T]:
        if self._store.owner != get_ident():
            self._store.check_open()
        rows = self._data.rows
        plain = [i if type(i) is str else _plain(i) for i in idents]
        return {i: rows[i] for i in plain if type(i) is str and i in rows}

    def add(self, obj: T) -> None:
        store = self._store
        if store.owner != get_ident() or not store.writable:
            store.check_writable()
        data = self._data
        ident: str = obj.id  # type: ignore[attr-defined]
        if obj.version != 1:  # type: ignore[attr-defined]
            raise Conflict(f"a new {data.table.noun} starts at version 1")
        validate = data.table.validate
        if validate is not None:
            validate(obj)
        data.check(obj)
        keys = data.keys_of(obj)
        if ident in data.rows or data.unique_clash(keys, None):
            raise Conflict(f"{data.table.noun} key already taken")
        data.put(ident, obj, keys)
        store.undo.append(lambda: data.drop(ident))

    def update(self, obj: T) -> None:
        store = self._store
        if store.owner != get_ident() or not store.writable:
            store.check_writable()
        data = self._data
        ident: str = obj.id  # type: ignore[attr-defined]
        # What the object holds is judged before its version, as the SQL stores do.
        validate = data.table.validate
        if validate is not None:
            validate(obj)
        data.check(obj)
        old = data.rows.get(ident)
        if old is None or old.version + 1 != obj.version:  # type: ignore[attr-defined]
            raise Conflict(f"stale {data.table.noun}: a concurrent change won")
        keys = data.keys_of(obj)
        old_keys = data.keys[ident]
        if keys != old_keys and data.unique_clash(keys, ident):
            raise Conflict(f"{data.table.noun} key already taken")
        data.replace(ident, obj, keys)
        store.undo.append(lambda: data.replace(ident, old, old_keys))

    def remove(self, obj: T) -> None:
        store = self._store
        if store.owner != get_ident() or not store.writable:
            store.check_writable()
        data = self._data
        ident: str = obj.id  # type: ignore[attr-defined]
        old = data.rows.get(ident)
        if old is None or old.version != obj.version:  # type: ignore[attr-defined]
            raise Conflict(f"stale {data.table.noun}: a concurrent change won")
        keys = data.keys[ident]
        data.drop(ident)
        store.undo.append(lambda: data.put(ident, old, keys))

    def find(self, **where: object) -> list[T]:
        if self._store.owner != get_ident():
            self._store.check_open()
        where = _plain_values(where)
        data = self._data
        lookup = data.by_names.get(tuple(where))
        try:
            held = (
                lookup.index.get(lookup.key_of_where(where))
                if lookup is not None
                else self._held(where)  # the columns named in another order, or no such lookup
            )
        except TypeError:  # a value no row can hold (a list, a dict): nothing is found
            return []
        if held is None:
            return []
        rows = data.rows
        if held.__class__ is str:
            return [rows[held]]
        return [rows[i] for i in sorted(held)]

    def find_page(
        self, where: Mapping[str, object], limit: int, after: str | None = None
    ) -> list[T]:
        self._store.check_open()
        where = _plain_values(dict(where))
        data = self._data
        lookup = data.by_names.get(tuple(where)) or data.by_columns.get(frozenset(where))
        if lookup is None:
            raise ValueError(f"{data.table.name} has no lookup on {sorted(where)}")
        bound = check_find_page(limit, after)
        key = lookup.key_of_where(where)
        try:
            held = lookup.index.get(key)
        except TypeError:  # a value no row can hold (a list, a dict): nothing is found
            return []
        if held is None:
            return []
        ordered = data.in_order(lookup, key, held)
        start = 0 if bound is None else bisect.bisect_right(ordered, bound)
        rows = data.rows
        return [rows[k] for k in ordered[start : start + limit]]

    def count(self, **where: object) -> int:
        if self._store.owner != get_ident():
            self._store.check_open()
        held = self._held(_plain_values(where))
        return 0 if held is None else 1 if type(held) is str else len(held)

    def _held(self, where: dict[str, object]) -> str | set[str] | None:
        data = self._data
        # Callers name the columns in the declared order almost always: a tuple of the names
        # finds the lookup without building a frozenset.
        lookup = data.by_names.get(tuple(where)) or data.by_columns.get(frozenset(where))
        if lookup is None:
            raise ValueError(f"{self._data.table.name} has no lookup on {sorted(where)}")
        try:
            return lookup.index.get(lookup.key_of_where(where))
        except TypeError:  # a value no row can hold (a list, a dict): nothing is found
            return None


class _MemoryUnitOfWork:
    """A unit of work on a :class:`MemoryStore`; holds the store's lock while open."""

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

    def __init__(self, store: MemoryStore, write: bool) -> None:
        # The store's repositories are attributes of the store's own subclass of this class
        # (see MemoryStore.__init__): ``uow.users`` is a class dict hit, and opening a unit
        # of work copies nothing.
        self._store = store
        self._write = write

    def repository(self, table: Table[T]) -> Repository[T]:
        repo: Repository[T] = self._store.repositories[table.name]
        return repo

    def check_open(self) -> None:
        if self._store.current is not self:
            raise PartnerKitError("unit of work is not open")
        self._store.check_open()

    def check_writable(self) -> None:
        if self._store.current is not self:
            raise PartnerKitError("unit of work is not open")
        self._store.check_writable()

    def audit_head(self) -> tuple[int, str]:
        self.check_open()
        return self._store.audit_head

    def append_audit(self, event: AuditEvent) -> None:
        self.check_writable()
        store = self._store
        head = store.audit_head
        check_appendable(event, head)
        AUDIT_COLUMNS.check(event)
        store.audit.append(event)
        store.audit_head = (event.seq, event.hash)
        companies = {event.company_id, event.actor_company_id}
        companies.discard(None)
        of = store.audit_of
        for company in companies:
            of.setdefault(company, []).append(event)  # type: ignore[arg-type]

        def undo() -> None:
            store.audit.pop()
            store.audit_head = head
            for company in companies:
                of[company].pop()  # type: ignore[index]

        store.undo.append(undo)

    def audit_events(self, company_id: str | None = None) -> list[AuditEvent]:
        self.check_open()
        if company_id is None:
            return list(self._store.audit)
        if not issubclass(type(company_id), str):
            return []  # no event names a company by what is not text (whatever it claims)
        return list(self._store.audit_of.get(str.__str__(company_id), ()))

    def audit_range(
        self,
        company_id: str | None,
        limit: int,
        *,
        above: int | None = None,
        below: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEvent]:
        self.check_open()
        if not check_audit_range(company_id, limit, above, below, newest_first):
            return []
        if company_id is None:
            events = self._store.audit
        else:
            events = self._store.audit_of.get(str.__str__(company_id), [])
        start = 0 if above is None else bisect.bisect_right(events, above, key=_SEQ)
        end = len(events) if below is None else bisect.bisect_left(events, below, key=_SEQ)
        if newest_first:
            return events[max(start, end - limit) : end][::-1]
        return events[start : min(end, start + limit)]

    def search_relations(
        self,
        partner_id: str,
        prefix: str,
        limit: int,
        after: tuple[str, str] | None = None,
        now: datetime | None = None,
    ) -> list[CustomerRelation]:
        self.check_open()
        if not check_search(partner_id, prefix, limit, after, now):
            return []
        relations: list[CustomerRelation] = self.customer_relations.find(partner_id=partner_id)
        keyed = [
            ((r.search_key(prefix), r.id), r)
            for r in relations
            if (r.name_key.startswith(prefix) or r.domain.startswith(prefix)) and r.is_listed(now)
        ]
        keyed.sort(key=lambda pair: pair[0])
        return [r for key, r in keyed if after is None or key > after][:limit]

    def search_customers(
        self,
        partner_id: str,
        prefix: str,
        limit: int,
        after: tuple[str, str] | None = None,
        now: datetime | None = None,
    ) -> list[Company]:
        companies = self._store.tables["companies"].rows
        relations = self.search_relations(partner_id, prefix, limit, after, now)
        return [companies[r.customer_id] for r in relations if r.customer_id in companies]

    def commit(self) -> None:
        store = self._store
        if store.current is not self:
            raise PartnerKitError("unit of work is not open")
        store.check_writable()
        store.undo.clear()
        # As on SQL stores, a committed unit of work is over: nothing more goes through it,
        # and the thread may open another one at once, inside the same block or not.
        self._end()

    def rollback(self) -> None:
        """Undo what this unit of work wrote and end it, as the SQL stores do (nothing more
        goes through it). A unit of work that is over (its block left, or another one open
        now) has nothing to undo: the log is the open one's."""
        store = self._store
        if store.current is not self:
            return
        if store.owner != get_ident():
            # Its owner may be in the middle of a write: refused, as on the other stores.
            raise PartnerKitError("unit of work is not open")
        undo = store.undo
        try:
            while undo:
                undo.pop()()
        finally:
            self._end()

    def _end(self) -> None:
        """Let the store go: this unit of work is over, and another may begin."""
        store = self._store
        store.owner = None
        store.current = None
        store.lock.release()

    def __enter__(self) -> _MemoryUnitOfWork:
        store = self._store
        if store.closed:
            raise PartnerKitError("the store is closed")
        me = get_ident()
        if store.owner == me:
            # The lock is not re-entrant: waiting for it here would wait forever.
            raise PartnerKitError("a unit of work is already open in this thread")
        store.lock.acquire()
        if store.closed:  # closed while this one waited for its turn
            store.lock.release()
            raise PartnerKitError("the store is closed")
        store.owner = me
        store.current = self
        store.writable = self._write
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        store = self._store
        if store.current is not self:
            return  # never entered, or already left
        if store.owner != get_ident():
            # Its opener's block: ending it here would keep what it wrote uncommitted.
            raise PartnerKitError("unit of work is not open")
        self.rollback()


class MemoryStore:
    """Keeps everything in memory; safe to share between threads.

    >>> store = MemoryStore()
    >>> with store.unit_of_work(write=False) as uow:
    ...     uow.users.count(company_id="cmp_x")
    0
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tables = {table.name: _TableData(table) for table in TABLES}
        self.repositories: dict[str, _MemoryRepository[Any]] = {
            name: _MemoryRepository(self, data) for name, data in self.tables.items()
        }
        self._unit_of_work: type[_MemoryUnitOfWork] = type(
            "_MemoryUnitOfWork", (_MemoryUnitOfWork,), dict(self.repositories)
        )
        self.audit: list[AuditEvent] = []
        #: The events by or on each company, once each, in chain order (what
        #: ``audit_events(company_id)`` returns): the index the SQL stores keep twice.
        self.audit_of: dict[str, list[AuditEvent]] = {}
        self.audit_head: tuple[int, str] = (0, GENESIS_HASH)
        #: The thread whose unit of work is open, and holds the lock, until that unit of work
        #: commits, rolls back or leaves its block; that unit of work, whether it may write,
        #: and its undo log.
        self.owner: int | None = None
        self.current: _MemoryUnitOfWork | None = None
        self.writable = False
        self.undo: list[Callable[[], None]] = []
        self.closed = False

    def check_open(self) -> None:
        """Refuse use of a repository outside the calling thread's open unit of work."""
        if self.owner != get_ident():
            raise PartnerKitError("unit of work is not open")

    def check_writable(self) -> None:
        """Refuse a write outside an open, writable unit of work."""
        if self.owner != get_ident():
            raise PartnerKitError("unit of work is not open")
        if not self.writable:
            raise PartnerKitError("read-only unit of work")

    def unit_of_work(self, *, write: bool = True) -> _MemoryUnitOfWork:
        """Begin a unit of work (use it in a ``with`` block)."""
        return self._unit_of_work(self, write)

    def close(self) -> None:
        """Take no unit of work after this (``PartnerKitError``), as every store does; one
        open now runs to its end. There is nothing else to release."""
        self.closed = True

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(t.rows)}" for name, t in self.tables.items())
        return f"<MemoryStore {sizes}>"
