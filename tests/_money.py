"""Helpers shared by the money-path tests: a catalogue, a populated portal, a full store
snapshot, and a fault injector over the real stores.

Nothing here is a mock: the portals run on a real ``MemoryStore`` or ``SQLiteStore`` file, and
the fault injectors are those stores with one write made to fail.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

import attrs

from partnerkit import (
    AdminRole,
    Catalog,
    Company,
    Portal,
    Service,
    Subscription,
    TrialTerms,
    User,
)
from partnerkit.links import code_from_url
from partnerkit.ports import TABLES, Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore, _SQLiteUnitOfWork, translate_errors
from partnerkit.testing import FakeClock, World, build_world

#: A service with a trial: 1 to 1,000 licences, a 30-day trial of 25.
EXCHANGE = Service(
    sku="EXCHANGE",
    name="Exchange Online",
    min_licenses=1,
    max_licenses=1000,
    trial=TrialTerms(days=30, licenses=25),
)
#: A service with narrow bounds (5 to 500) and a 14-day trial of 10.
INTUNE = Service(
    sku="INTUNE",
    name="Windows Intune",
    min_licenses=5,
    max_licenses=500,
    trial=TrialTerms(days=14, licenses=10),
)
#: A service without a trial, with the widest bounds.
PROJECT = Service(sku="PROJECT", name="Project Online", min_licenses=1, max_licenses=1_000_000)

SERVICES = (EXCHANGE, INTUNE, PROJECT)


def catalog() -> Catalog:
    """The catalogue every money-path test uses."""
    return Catalog(SERVICES)


@attrs.frozen
class Money:
    """A populated portal: the testing kit's world plus customer admins of every kind."""

    world: World
    clock: FakeClock
    #: The customer's billing admin (holds ``PURCHASE``).
    billing: User
    #: The customer's password admin (an admin role, but no ``PURCHASE``).
    password_admin: User

    @property
    def portal(self) -> Portal:
        return self.world.portal

    @property
    def store(self) -> Store:
        return self.world.portal.store

    @property
    def customer(self) -> Company:
        return self.world.customer

    @property
    def admin(self) -> User:
        """The customer's global admin."""
        return self.world.customer_admin

    @property
    def partner_admin(self) -> User:
        return self.world.partner_admin


def money_world(store: Store, clock: FakeClock | None = None) -> Money:
    """Build a :class:`Money` world on *store* with the test catalogue."""
    clock = clock or FakeClock()
    portal = Portal(store=store, catalog=catalog(), clock=clock)
    world = build_world(portal)
    billing = portal.create_user(
        world.customer_admin,
        email="bill@fabrikam.example",
        display_name="Bill Billing",
        admin_role=AdminRole.BILLING_ADMIN,
    )
    password_admin = portal.create_user(
        world.customer_admin,
        email="pat@fabrikam.example",
        display_name="Pat Password",
        admin_role=AdminRole.PASSWORD_ADMIN,
    )
    return Money(world, clock, billing, password_admin)


_domains = itertools.count(1)


def new_customer(portal: Portal, stem: str = "cust") -> tuple[Company, User]:
    """Register a fresh customer with a unique domain; return it and its global admin."""
    n = next(_domains)
    return portal.register_customer(
        name=f"{stem.title()} {n}",
        domain=f"{stem}{n}.example",
        admin_email=f"admin@{stem}{n}.example",
    )


# -- what a store holds ----------------------------------------------------------------------


def state(store: Store) -> dict[str, Any]:
    """Everything *store* holds, table by table, plus the audit trail and its head.

    Read from below the ports (the memory store's dicts, the SQLite file itself), so that
    nothing a use case wrote can hide from the comparison.
    """
    if isinstance(store, MemoryStore):
        with store.lock:
            found: dict[str, Any] = {
                name: dict(sorted(data.rows.items())) for name, data in store.tables.items()
            }
            found["audit_events"] = list(store.audit)
            found["audit_head"] = store.audit_head
        return found
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path)
        try:
            found = {
                t.name: conn.execute(f"SELECT * FROM {t.name} ORDER BY id").fetchall()
                for t in TABLES
            }
            found["audit_events"] = conn.execute(
                "SELECT * FROM audit_events ORDER BY seq"
            ).fetchall()
            found["audit_head"] = conn.execute("SELECT seq, hash FROM audit_head").fetchall()
        finally:
            conn.close()
        return found
    raise TypeError(f"no snapshot for {store!r}")


def without_audit(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The business tables of a snapshot (a refusal by a known actor is audited)."""
    return {k: v for k, v in snapshot.items() if k not in ("audit_events", "audit_head")}


def audit_outcomes_since(store: Store, before: dict[str, Any]) -> list[str]:
    """The outcomes of the audit events appended since *before* was taken."""
    with store.unit_of_work(write=False) as uow:
        events = uow.audit_events()
    return [e.outcome for e in events[len(before["audit_events"]) :]]


def subscriptions_of(store: Store, customer_id: str) -> list[Subscription]:
    """The customer's subscriptions as stored (status not computed from the clock)."""
    with store.unit_of_work(write=False) as uow:
        return uow.subscriptions.find(customer_id=customer_id)


def link_id_of(url: str) -> str:
    """The id of the link in *url*, read from its claims (which are signed, not secret).

    Unlike ``inspect_link`` this also works for revoked, spent and expired links.
    """
    payload = code_from_url(url).split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    link_id: str = claims["jti"]
    return link_id


def smuggle(obj: Any, **changes: Any) -> Any:
    """A copy of a frozen attrs object with *changes* set past its validators.

    ``attrs.evolve`` runs the validators, so a bad value can only reach a store this way: as a
    bug in some other code path, or a third-party caller, would deliver it.
    """
    duplicate = copy.copy(obj)  # no validators run on a copy
    for name, value in changes.items():
        object.__setattr__(duplicate, name, value)
    return duplicate


# -- fault injection over the real stores ------------------------------------------------------


class InjectedFault(Exception):
    """The failure a fault-injecting store raises; not a partnerkit error on purpose."""


class _Faults:
    """Counts the writes of armed units of work and fails the N-th one."""

    def __init__(self) -> None:
        self.fail_at: int | None = None
        self.writes = 0
        self.counting = False

    def arm(self, n: int | None) -> None:
        """Fail the *n*-th write of the next write unit of work (``None``: only count)."""
        self.fail_at = n
        self.writes = 0
        self.counting = True

    def write(self) -> None:
        if not self.counting:
            return
        self.writes += 1
        if self.writes == self.fail_at:
            self.counting = False
            raise InjectedFault(f"injected failure at write {self.writes}")

    def finish(self) -> None:
        """Stop counting: the armed unit of work is over."""
        self.counting = False


class _FaultyRepository:
    """A repository of the real store whose writes go through the fault counter first."""

    def __init__(self, inner: Any, faults: _Faults) -> None:
        self._inner = inner
        self._faults = faults

    def add(self, obj: Any) -> None:
        self._faults.write()
        self._inner.add(obj)

    def update(self, obj: Any) -> None:
        self._faults.write()
        self._inner.update(obj)

    def remove(self, obj: Any) -> None:
        self._faults.write()
        self._inner.remove(obj)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _FaultyUnitOfWork:
    """The real store's unit of work, with a fault counter in front of every write."""

    def __init__(self, inner: Any, faults: _Faults) -> None:
        self._inner = inner
        self._faults = faults
        for table in TABLES:
            setattr(self, table.name, _FaultyRepository(getattr(inner, table.name), faults))

    def repository(self, table: Any) -> Any:
        return getattr(self, table.name)

    def append_audit(self, event: Any) -> None:
        self._faults.write()
        self._inner.append_audit(event)

    def commit(self) -> None:
        self._faults.write()
        self._inner.commit()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __enter__(self) -> _FaultyUnitOfWork:
        self._inner.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._faults.finish()
        self._inner.__exit__(*exc)


class FaultyMemoryStore(MemoryStore):
    """A ``MemoryStore`` whose armed unit of work fails at its N-th write (or commit)."""

    def __init__(self) -> None:
        super().__init__()
        self.faults = _Faults()

    def unit_of_work(self, *, write: bool = True) -> Any:
        inner = super().unit_of_work(write=write)
        return _FaultyUnitOfWork(inner, self.faults) if write else inner


class FaultySQLiteStore(SQLiteStore):
    """A ``SQLiteStore`` whose armed unit of work fails at its N-th write (or commit)."""

    def __init__(self, path: str | Path) -> None:
        self.faults = _Faults()
        super().__init__(path)

    def unit_of_work(self, *, write: bool = True) -> Any:
        inner = super().unit_of_work(write=write)
        return _FaultyUnitOfWork(inner, self.faults) if write else inner


class _DiskFailingUnitOfWork(_SQLiteUnitOfWork):
    """A SQLite unit of work whose N-th write *statement* fails as a disk error would.

    Finer than :class:`_FaultyUnitOfWork`: an audit append is two statements, and this
    fails between them too. The error goes through the store's own translation.
    """

    faults: _Faults

    def execute(self, sql: str, params: Any, *, write: bool = False) -> int:
        if write:
            self._fail_like_sqlite()
        return super().execute(sql, params, write=write)

    def commit(self) -> None:
        self._fail_like_sqlite()
        super().commit()

    def _fail_like_sqlite(self) -> None:
        try:
            self.faults.write()
        except InjectedFault as exc:
            with translate_errors():
                raise sqlite3.OperationalError("disk I/O error") from exc

    def __exit__(self, *exc: Any) -> None:
        self.faults.finish()
        super().__exit__(*exc)


class DiskFailingSQLiteStore(SQLiteStore):
    """A ``SQLiteStore`` whose armed unit of work fails at its N-th SQL write statement."""

    def __init__(self, path: str | Path) -> None:
        self.faults = _Faults()
        super().__init__(path)

    def unit_of_work(self, *, write: bool = True) -> Any:
        if not write:
            return super().unit_of_work(write=write)
        uow = _DiskFailingUnitOfWork(self, write)
        uow.faults = self.faults
        return uow


FaultyStore = FaultyMemoryStore | FaultySQLiteStore | DiskFailingSQLiteStore


def faulty_store(kind: str, tmp_path: Path) -> FaultyStore:
    """A fresh fault-injecting store: ``"memory"``, ``"sqlite"`` or ``"sqlite-disk"``."""
    if kind == "memory":
        return FaultyMemoryStore()
    path = tmp_path / f"faulty-{next(_domains)}.db"
    if kind == "sqlite":
        return FaultySQLiteStore(path)
    return DiskFailingSQLiteStore(path)
