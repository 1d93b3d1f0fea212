"""The store contract suite: what every partnerkit store must do, as pytest tests.

Every store partnerkit ships passes it, and so must yours. Subclass :class:`StoreContract`
in a test module (the class name must start with ``Test`` for pytest to collect it) and say
how to make an empty store::

    from partnerkit.testing.contract import StoreContract

    class TestMyStore(StoreContract):
        def make_store(self, tmp_path):
            return MyStore(tmp_path / "portal.db")

A store that needs a server overrides the ``store`` fixture instead (yield the store, clean
up after). The suite covers the repository of every table (versions, unique keys, lookups,
ordering), units of work (rollback, atomic commit, read-only), the audit chain, exact round
trips of every field type, threads, and the Portal's use cases run on the store.

Tables are described by a :class:`TableSample` in :data:`TABLE_SAMPLES`: the generic
repository tests run once per sample. A new table in :data:`partnerkit.ports.TABLES` needs a
sample here (a test says which are missing); rules that only one table has go into that
table's own test class (:class:`UsersContract`, :class:`CompaniesContract`).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import attrs

try:
    import pytest
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "partnerkit.testing.contract needs pytest: pip install 'partnerkit[testing]'"
    ) from exc

from partnerkit.audit import GENESIS_HASH, AuditEvent, verify_chain
from partnerkit.consent import Delegation, DelegationOffer, DelegationStatus
from partnerkit.directory import Company, CompanyKind, ContactInfo, User, email_key
from partnerkit.errors import Conflict, Forbidden, PartnerKitError, ValidationError
from partnerkit.links import LinkKind
from partnerkit.offers import (
    OfferLine,
    OfferStatus,
    PurchaseOffer,
    Subscription,
    SubscriptionStatus,
    TrialInvitation,
)
from partnerkit.portal import Portal
from partnerkit.ports import (
    COMPANIES,
    CREDENTIALS,
    DELEGATION_OFFERS,
    DELEGATIONS,
    LINKS,
    MAX_AUDIT_RANGE,
    MAX_FIND_PAGE,
    OFFERS,
    REDEMPTIONS,
    RELATIONS,
    SERVICE_REQUESTS,
    SUBSCRIPTIONS,
    TABLES,
    TRIALS,
    USERS,
    AuditRanges,
    CustomerSearch,
    FindPages,
    Store,
    Table,
    UnitOfWork,
)
from partnerkit.records import CustomerRelation, LinkRecord, RedemptionRecord
from partnerkit.roles import AdminRole, PartnerAccess, Permission
from partnerkit.support import Credential, RequestStatus, ServiceRequest, Severity
from partnerkit.testing import FakeClock, StoreSnapshot, World, build_world, snapshot

__all__ = [
    "FIND_PAGE_REFUSED",
    "TABLE_SAMPLES",
    "AuditContract",
    "AuditRangeContract",
    "ChecksContract",
    "CompaniesContract",
    "ConcurrencyContract",
    "FindPageContract",
    "LaterChecksContract",
    "PortalContract",
    "RelationsContract",
    "RepositoryContract",
    "RoundTripContract",
    "StoreContract",
    "TableSample",
    "UnitOfWorkContract",
    "UsersContract",
    "WriteIntegrityContract",
]

T = TypeVar("T")
_T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@attrs.frozen
class TableSample(Generic[T]):
    """How the generic repository tests make rows of one table.

    ``make(n)`` must return a valid row at version 1 for every ``n`` from 0 to 15, each with
    its own key and its own unique-key values; rows should share the values of the
    non-unique lookups among them (so that ``find`` returns several), and their ids should
    not sort in the order of ``n`` (so that ordering is tested).
    """

    #: The table described.
    table: Table[T]
    #: Row number *n* of the table.
    make: Callable[[int], T]
    #: A changed copy of a row (same id and version; unique keys unchanged).
    change: Callable[[T], T]
    #: For unique groups with computed columns: ``twin(holder, other)`` returns *other*
    #: changed to share *holder*'s values in that group. Groups of plain fields need none.
    twins: Mapping[tuple[str, ...], Callable[[T, T], T]] = attrs.field(factory=dict)

    def twin(self, group: tuple[str, ...], holder: T, other: T) -> T:
        """Return *other* changed to share *holder*'s values of the unique *group*."""
        special = self.twins.get(group)
        if special is not None:
            return special(holder, other)
        return attrs.evolve(other, **{c: getattr(holder, c) for c in group})  # type: ignore[misc]


# Ids chosen so that code-point order differs from insertion order, case order and
# locale-aware collation: stores must order by the key's code points, as Python does.
_IDS = ("b", "A", "_", "a0", "B", "0", "ab", "a", "Z_", "z")


def _ident(prefix: str, n: int) -> str:
    return f"{prefix}_{_IDS[n]}" if n < len(_IDS) else f"{prefix}_n{n:04d}"


def _make_user(n: int) -> User:
    return User(
        id=_ident("usr", n),
        company_id=("cmp_one", "cmp_two")[n % 2],
        email=f"Person.{n}@Example.COM",
        display_name=f"Person {n}",
        admin_role=(None, AdminRole.GLOBAL_ADMIN, AdminRole.BILLING_ADMIN)[n % 3],
        partner_access=(None, PartnerAccess.LIMITED)[n % 2],
        created_at=_T0 + timedelta(microseconds=n),
    )


def _make_company(n: int) -> Company:
    partner = n % 2 == 0
    return Company(
        id=_ident("cmp", n),
        kind=CompanyKind.PARTNER if partner else CompanyKind.CUSTOMER,
        name=f"Company {n}",
        contact=ContactInfo(email=f"office{n}@company.example") if n % 3 == 0 else None,
        domain=None if partner else f"company{n}.example",
        advisor_id=f"PA-TEST-{n:05d}" if partner else None,
        created_at=_T0 - timedelta(days=n),
    )


USERS_SAMPLE: TableSample[User] = TableSample(
    table=USERS,
    make=_make_user,
    change=lambda u: attrs.evolve(
        u, display_name=f"{u.display_name} (renamed)", must_change_password=True
    ),
    twins={
        ("email_key",): lambda holder, other: attrs.evolve(other, email=holder.email.swapcase())
    },
)
COMPANIES_SAMPLE: TableSample[Company] = TableSample(
    table=COMPANIES,
    make=_make_company,
    change=lambda c: attrs.evolve(
        c, name=f"{c.name} Ltd", contact=ContactInfo(email="new@company.example")
    ),
)

_DAY = timedelta(days=1)


def _make_link(n: int) -> LinkRecord:
    return LinkRecord(
        id=_ident("lnk", n),
        kind=list(LinkKind)[n % len(LinkKind)],
        partner_id=("cmp_p1", "cmp_p2")[n % 2],
        advisor_id=("PA-AAAAA-11111", "PA-BBBBB-22222")[n % 2],
        target=f"SKU{n}",
        includes_delegated_admin=n % 3 == 0,
        delegation_offer_id=f"dof_{n}" if n % 3 == 0 else None,
        created_by=f"usr_{n}",
        created_at=_T0,
        expires_at=_T0 + 90 * _DAY,
        max_uses=(None, 5)[n % 2],
    )


def _make_redemption(n: int) -> RedemptionRecord:
    link_id, customer_id = _ident("lnk", n), ("cmp_c1", "cmp_c2", "cmp_c3")[n % 3]
    return RedemptionRecord(
        id=f"{link_id}:{customer_id}",
        link_id=link_id,
        customer_id=customer_id,
        subscription_ids=tuple(f"sub_{n}_{k}" for k in range(n % 3)),
        delegation_id=f"dlg_{n}" if n % 2 else None,
        redeemed_by=f"usr_{n}",
        redeemed_at=_T0 + timedelta(microseconds=n),
    )


def _make_trial(n: int) -> TrialInvitation:
    return TrialInvitation(
        id=_ident("tri", n),
        partner_id=("cmp_p1", "cmp_p2")[n % 2],
        advisor_id="PA-AAAAA-11111",
        sku=f"SKU{n % 3}",
        includes_delegated_admin=n % 2 == 0,
        delegation_offer_id=f"dof_{n}" if n % 2 == 0 else None,
        created_by=f"usr_{n}",
        created_at=_T0,
        expires_at=_T0 + 30 * _DAY,
        link_id=f"lnk_trial_{n}",
    )


def _make_offer(n: int) -> PurchaseOffer:
    return PurchaseOffer(
        id=_ident("off", n),
        quote_id=f"Q-{n:06d}",
        partner_id=("cmp_p1", "cmp_p2")[n % 2],
        advisor_id="PA-AAAAA-11111",
        lines=tuple(OfferLine(sku=f"SKU{k}", licenses=1 + k * 999) for k in range(1 + n % 3)),
        includes_delegated_admin=n % 2 == 1,
        delegation_offer_id=f"dof_{n}" if n % 2 else None,
        created_by=f"usr_{n}",
        created_at=_T0,
        expires_at=_T0 + 30 * _DAY,
        link_id=f"lnk_offer_{n}",
    )


def _make_subscription(n: int) -> Subscription:
    trial = n % 2 == 0
    return Subscription(
        id=_ident("sub", n),
        customer_id=("cmp_c1", "cmp_c2", "cmp_c3")[n % 3],
        sku=f"SKU{n}",
        licenses=(1, 25, 1_000_000)[n % 3],
        status=SubscriptionStatus.TRIAL if trial else SubscriptionStatus.ACTIVE,
        partner_id=("cmp_p1", None)[n % 2],
        advisor_id=("PA-AAAAA-11111", None)[n % 2],
        created_at=_T0,
        trial_ends_at=_T0 + 30 * _DAY if trial else None,
        source_link_id=f"lnk_{n}" if trial else None,
    )


def _make_delegation_offer(n: int) -> DelegationOffer:
    return DelegationOffer(
        id=_ident("dof", n),
        partner_id=("cmp_p1", "cmp_p2")[n % 2],
        roles=frozenset(list(AdminRole)[: 1 + n % len(AdminRole)]),
        duration=(None, _DAY, 730 * _DAY, timedelta(days=45, microseconds=1))[n % 4],
        offered_by=f"usr_{n}",
        offered_at=_T0,
    )


def _make_delegation(n: int) -> Delegation:
    return Delegation(
        id=_ident("dlg", n),
        partner_id=("cmp_p1", "cmp_p2")[n % 2],
        customer_id=("cmp_c1", "cmp_c2", "cmp_c3")[n % 3],
        offer_id=f"dof_{n}",
        roles=frozenset({AdminRole.PASSWORD_ADMIN, list(AdminRole)[n % len(AdminRole)]}),
        duration=(None, 30 * _DAY)[n % 2],
        status=(DelegationStatus.PENDING, DelegationStatus.ACTIVE)[n % 2],
        offered_at=_T0,
        offered_by=f"usr_{n}",
        decided_at=_T0 + _DAY if n % 2 else None,
        decided_by=f"usr_c{n}" if n % 2 else None,
        ends_at=_T0 + 31 * _DAY if n % 2 else None,
        accepted_at=_T0 + _DAY if n % 2 else None,
        accepted_by=f"usr_c{n}" if n % 2 else None,
    )


def _make_credential(n: int) -> Credential:
    return Credential(
        id=_ident("usr", n),
        company_id=("cmp_c1", "cmp_c2")[n % 2],
        password_hash=f"scrypt$not-a-real-hash${n}",
        set_at=_T0,
        # Setters shared by several (found by ``set_by``), some through a delegation.
        set_by=f"usr_admin{n % 3}",
        delegation_id=f"dlg_{n}" if n % 2 else None,
    )


def _make_service_request(n: int) -> ServiceRequest:
    return ServiceRequest(
        id=_ident("srq", n),
        customer_id=("cmp_c1", "cmp_c2", "cmp_c3")[n % 3],
        title=f"Mail is down ({n})",
        description="" if n % 2 else "Since 09:00.\nAll users.",
        severity=list(Severity)[n % len(Severity)],
        status=RequestStatus.OPEN,
        created_by=f"usr_{n}",
        created_by_company_id=("cmp_c1", "cmp_p1")[n % 2],
        delegation_id=f"dlg_{n}" if n % 2 else None,
        created_at=_T0,
        updated_at=_T0,
    )


def _make_relation(n: int) -> CustomerRelation:
    partner_id, customer_id = ("cmp_p1", "cmp_p2")[n % 2], _ident("cmp", n)
    return CustomerRelation(
        id=CustomerRelation.key(partner_id, customer_id),
        partner_id=partner_id,
        customer_id=customer_id,
        name_key=("fabrikam", "contoso", "litware")[n % 3],
        domain=f"c{n}.example",
        advises=n % 2 == 0,
        administers=n % 3 == 0,
        delegation_id=_ident("dlg", n) if n % 3 == 0 else None,
        delegation_ends_at=_T0 + timedelta(days=n + 1) if n % 3 == 0 and n % 2 else None,
    )


#: The tables the generic repository tests run on.
TABLE_SAMPLES: tuple[TableSample[Any], ...] = (
    COMPANIES_SAMPLE,
    USERS_SAMPLE,
    TableSample(
        table=LINKS,
        make=_make_link,
        change=lambda r: attrs.evolve(r, uses=1, revoked_at=_T0 + _DAY, revoked_by="usr_r"),
    ),
    TableSample(
        table=REDEMPTIONS,
        make=_make_redemption,
        change=lambda r: attrs.evolve(r, subscription_ids=("sub_x",), delegation_id="dlg_x"),
    ),
    TableSample(
        table=TRIALS,
        make=_make_trial,
        change=lambda r: attrs.evolve(r, expires_at=r.expires_at + _DAY),
    ),
    TableSample(
        table=OFFERS,
        make=_make_offer,
        change=lambda r: attrs.evolve(r, status=OfferStatus.SUPERSEDED, superseded_by="off_n"),
    ),
    TableSample(
        table=SUBSCRIPTIONS,
        make=_make_subscription,
        change=lambda r: attrs.evolve(r, licenses=999_999, status=SubscriptionStatus.CANCELLED),
    ),
    TableSample(
        table=DELEGATION_OFFERS,
        make=_make_delegation_offer,
        change=lambda r: attrs.evolve(r, offered_by="usr_other"),
    ),
    TableSample(
        table=DELEGATIONS,
        make=_make_delegation,
        change=lambda r: attrs.evolve(
            r, status=DelegationStatus.REVOKED, decided_at=_T0 + 2 * _DAY, decided_by="usr_c"
        ),
    ),
    TableSample(
        table=CREDENTIALS,
        make=_make_credential,
        change=lambda r: attrs.evolve(
            r, password_hash=f"{r.password_hash}+", set_at=_T0 + _DAY, delegation_id="dlg_new"
        ),
    ),
    TableSample(
        table=SERVICE_REQUESTS,
        make=_make_service_request,
        change=lambda r: attrs.evolve(r, status=RequestStatus.CLOSED, updated_at=_T0 + _DAY),
    ),
    TableSample(
        table=RELATIONS,
        make=_make_relation,
        change=lambda r: attrs.evolve(r, advises=True, administers=True),
    ),
)


# -- helpers ---------------------------------------------------------------------------------


def _bump(obj: T, **changes: Any) -> T:
    return attrs.evolve(obj, version=obj.version + 1, **changes)  # type: ignore[attr-defined,misc]


def _add(store: Store, sample: TableSample[Any], *rows: Any) -> None:
    _each_row(store, sample, "add", rows)


def _each_row(store: Store, sample: TableSample[Any], how: str, rows: Sequence[Any]) -> None:
    """``add`` or ``remove`` each of *rows*, in one unit of work, and commit it."""
    with store.unit_of_work() as uow:
        method = getattr(uow.repository(sample.table), how)
        for row in rows:
            method(row)
        uow.commit()


def _assert_nothing_found(
    store: Store,
    table: Table[Any],
    row: Any,
    unheld: object,
    lookups: Sequence[Mapping[str, object]],
) -> None:
    """In one read unit of work: a read by the key *unheld*, and each of the *lookups*,
    find nothing (also through the optional ``get_each`` and ``find_each``), while *row*
    is read beside them, and after them."""
    with store.unit_of_work(write=False) as uow:
        repo = uow.repository(table)
        assert repo.get(unheld) is None  # type: ignore[arg-type]
        assert repo.get_many([unheld, row.id]) == {row.id: row}  # type: ignore[list-item]
        for where in lookups:
            assert repo.find(**where) == [], where
            assert repo.count(**where) == 0, where
        get_each = getattr(uow, "get_each", None)
        if get_each is not None:  # the optional reads answer alike
            assert get_each((table, unheld), (table, row.id)) == [None, row]
        find_each = getattr(uow, "find_each", None)
        if find_each is not None:
            reads = [(table, unheld), (table, row.id), *((table, w) for w in lookups)]
            assert find_each(*reads) == [None, row, *([] for _ in lookups)]
        assert repo.get(row.id) == row  # the unit of work goes on


def _run_in_a_thread(target: Callable[[], None], hung: str) -> None:
    """Run *target* in a thread of its own (which it may leave holding a unit of work
    open, had the store let it wait for itself), and fail with *hung* if it never ends."""
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), hung


class _Liar(str):
    """Text whose own methods lie: it equals everything and hashes alike. A store that asks
    them (``==`` in a loop, a ``dict`` lookup, sqlite3's ``__conform__``) finds a row the
    text does not name."""

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __conform__(self, protocol: object) -> str:  # sqlite3 binds what this returns
        return "cmp_one"


class _ClaimsStr:
    """Not text at all, whose ``__class__`` says it is."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return str

    def __hash__(self) -> int:
        return hash("cmp_one")

    def __eq__(self, other: object) -> bool:
        return True


def _kinds_differ(written: object, read: object, where: str = "row") -> str | None:
    """Where *read* differs from *written* in type, not only in value (``1 == True`` and
    ``set == frozenset`` hold; a row read back with those breaks the code that reads it):
    attrs objects field by field, tuples, frozensets and dicts item by item. ``None``:
    the same types all the way down."""
    if type(read) is not type(written):
        return f"{where} is {type(read).__name__}, written as {type(written).__name__}"
    if attrs.has(type(written)):
        for field in attrs.fields(cast("type[attrs.AttrsInstance]", type(written))):
            found = _kinds_differ(
                getattr(written, field.name), getattr(read, field.name), f"{where}.{field.name}"
            )
            if found:
                return found
    elif isinstance(written, tuple | list):
        assert isinstance(read, tuple | list)
        for n, (a, b) in enumerate(zip(written, read, strict=False)):
            found = _kinds_differ(a, b, f"{where}[{n}]")
            if found:
                return found
    elif isinstance(written, frozenset | set):
        assert isinstance(read, frozenset | set)
        for a, b in zip(sorted(written, key=repr), sorted(read, key=repr), strict=False):
            found = _kinds_differ(a, b, f"{where} item")
            if found:
                return found
    elif isinstance(written, dict):
        assert isinstance(read, dict)
        for key, value in written.items():
            found = _kinds_differ(value, read.get(key), f"{where}[{key!r}]")
            if found:
                return found
    return None


def _get(store: Store, table: Table[T], ident: str) -> T | None:
    with store.unit_of_work(write=False) as uow:
        return uow.repository(table).get(ident)


def _event(
    seq: int,
    prev_hash: str,
    *,
    company_id: str | None = "cmp_one",
    actor_company_id: str | None = "cmp_one",
    action: str = "test.event",
) -> AuditEvent:
    return AuditEvent.chained(
        seq=seq,
        prev_hash=prev_hash,
        at=_T0 + timedelta(seconds=seq, microseconds=seq),
        action=action,
        outcome="success",
        actor_id=None if actor_company_id is None else f"usr_{seq}",
        actor_company_id=actor_company_id,
        company_id=company_id,
        role="global_admin",
        target_id=f"usr_t{seq}",
        reason="contract",
        detail={"n": seq, "note": "ü"},
        correlation_id=f"corr-{seq}",
    )


def _chain(*companies: tuple[str | None, str | None]) -> list[AuditEvent]:
    """Events in a chain; each given as ``(actor_company_id, company_id)``."""
    events: list[AuditEvent] = []
    prev = GENESIS_HASH
    for seq, (actor_company, company) in enumerate(companies, start=1):
        event = _event(seq, prev, company_id=company, actor_company_id=actor_company)
        events.append(event)
        prev = event.hash
    return events


def _append(store: Store, events: list[AuditEvent]) -> None:
    with store.unit_of_work() as uow:
        for event in events:
            uow.append_audit(event)
        uow.commit()


# -- the contract ------------------------------------------------------------------------------


class _Base:
    """The ``store`` fixture every part of the contract uses."""

    def make_store(self, tmp_path: Path) -> Store:
        """Return a new, empty store; subclasses implement this or override ``store``."""
        raise NotImplementedError("a StoreContract subclass implements make_store()")

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        """An empty store, closed after the test."""
        store = self.make_store(tmp_path)
        yield store
        store.close()

    @pytest.fixture(params=TABLE_SAMPLES, ids=lambda s: s.table.name)
    def sample(self, request: pytest.FixtureRequest) -> TableSample[Any]:
        """One table's sample (the tests that take it run once per table)."""
        chosen: TableSample[Any] = request.param
        return chosen


class RepositoryContract(_Base):
    """The generic repository rules, run on every table of :data:`TABLE_SAMPLES`."""

    def test_every_table_of_the_ports_has_a_contract_sample(self) -> None:
        """Every table the ports declare is covered by the generic repository tests."""
        sampled = {s.table.name for s in TABLE_SAMPLES}
        missing = [t.name for t in TABLES if t.name not in sampled]
        assert not missing, f"tables without a TableSample in TABLE_SAMPLES: {missing}"

    def test_the_sample_rows_are_distinct_and_start_at_version_1(
        self, sample: TableSample[Any]
    ) -> None:
        """The sample itself is fit for the tests: distinct keys, version 1."""
        rows = [sample.make(n) for n in range(16)]
        assert len({r.id for r in rows}) == len(rows)
        assert all(r.version == 1 for r in rows)

    def test_get_returns_none_for_an_unknown_key(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """Looking up a key nobody stored gives ``None``, not an error."""
        assert _get(store, sample.table, "nobody_here") is None

    @pytest.mark.parametrize(
        "unheld", ["a\x00b", "\x00", "a\ud800b"], ids=["nul", "only-nul", "surrogate"]
    )
    def test_a_read_by_text_no_row_can_hold_finds_nothing(
        self, store: Store, sample: TableSample[Any], unheld: str
    ) -> None:
        """Keys and lookup values are validated text (no control characters, valid Unicode):
        a read by text with a NUL or a lone surrogate finds nothing, as a read by a key that
        is not there does, also on a store whose database cannot take it as a parameter.
        (The Portal passes on whatever ids its callers give.)"""
        row = sample.make(0)
        _add(store, sample, row)
        table = sample.table
        lookups = []
        for group in table.lookups():
            values = {c: table.value(row, c) for c in group}
            for column in group:
                if type(values[column]) is str:  # not an enum member: any text may be asked
                    lookups.append({**values, column: unheld})
        _assert_nothing_found(store, table, row, unheld, lookups)

    @pytest.mark.parametrize(
        "unheld", [5, 2.5, True, b"cmp_one"], ids=["int", "float", "bool", "bytes"]
    )
    def test_a_read_by_a_value_of_a_kind_no_column_holds_finds_nothing(
        self, store: Store, sample: TableSample[Any], unheld: object
    ) -> None:
        """Keys are text, and lookups ask by text or by an enum's member: a read by anything
        else (a number, bytes, or an enum member's value as text) finds nothing, as a read by
        a key that is not there does, rather than raising whatever the database would."""
        row = sample.make(0)
        _add(store, sample, row)
        table = sample.table
        lookups = []
        for group in table.lookups():
            values = {c: table.value(row, c) for c in group}
            for column in group:
                lookups.append({**values, column: unheld})
                held = values[column]
                if isinstance(held, enum.Enum):  # its value is not the member
                    lookups.append({**values, column: held.value})
        _assert_nothing_found(store, table, row, unheld, lookups)

    def test_an_added_row_is_read_back_equal_after_commit(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """A committed row is read back, in a later unit of work, equal to what was added."""
        rows = [sample.make(n) for n in range(3)]
        _add(store, sample, *rows)
        for row in rows:
            assert _get(store, sample.table, row.id) == row

    def test_a_row_is_read_back_with_the_types_it_was_written_with(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """Equal is not enough: a flag read back as ``1`` equals ``True`` and a ``set``
        equals a ``frozenset``, and both break the code that reads the row (a flag must be
        a bool before the next write; a delegation's roles a frozenset). Every field, all
        the way down, comes back of the type it was written as, by ``get``, ``get_many``
        and ``find``."""
        rows = [sample.make(n) for n in range(3)]
        _add(store, sample, *rows)
        table = sample.table
        with store.unit_of_work(write=False) as uow:
            repo = uow.repository(table)
            many = repo.get_many([row.id for row in rows])
            group = table.lookups()[0] if table.lookups() else ()
            for row in rows:
                found = repo.find(**{c: table.value(row, c) for c in group}) if group else []
                for how, read in [
                    ("get", repo.get(row.id)),
                    ("get_many", many.get(row.id)),
                    *(("find", other) for other in found if other.id == row.id),
                ]:
                    differs = _kinds_differ(row, read)
                    assert differs is None, f"{table.name} {row.id} by {how}: {differs}"

    def test_a_unique_key_of_several_columns_is_taken_only_by_all_of_them(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """A unique key of several columns (a redemption's link and customer, a
        subscription's customer and service) clashes only when every column is the same:
        rows that share one of them (one link redeemed by two customers, one customer with
        two services) are both stored. A store that keys on one column refuses the second."""
        table = sample.table
        for group in table.unique:
            if len(group) < 2 or any(c in table.computed for c in group):
                continue
            for column in group:
                holder, other = self._holders(sample, group)
                partner = attrs.evolve(other, **{column: getattr(holder, column)})
                if any(
                    all(table.value(holder, c) == table.value(partner, c) for c in rival)
                    for rival in table.unique
                    if rival != group
                ):
                    continue  # sharing this column would clash on another key
                _add(store, sample, holder, partner)
                assert _get(store, table, partner.id) == partner, (table.name, column)
                _each_row(store, sample, "remove", [holder, partner])

    def test_a_key_of_a_str_subclass_is_read_by_its_text(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """Text is read by its text, never by the methods of a subclass (``==``, ``hash``,
        sqlite3's ``__conform__``), which may lie; and a value that only claims to be text
        (its ``__class__``), or cannot be hashed, names no row: nothing is found, and no
        ``TypeError`` comes out."""
        row = sample.make(0)
        _add(store, sample, row)
        table = sample.table
        with store.unit_of_work(write=False) as uow:
            repo = uow.repository(table)
            assert repo.get(_Liar(row.id)) == row
            for unheld in (_Liar("nobody_here"), _ClaimsStr(), ["nobody_here"], {"a": 1}):
                assert repo.get(unheld) is None, type(unheld).__name__  # type: ignore[arg-type]
                many = repo.get_many([unheld, row.id])  # type: ignore[list-item]
                assert many == {row.id: row}, type(unheld).__name__
            for group in table.lookups():
                values = {c: table.value(row, c) for c in group}
                for column in group:
                    if type(values[column]) is not str:
                        continue
                    held = {**values, column: _Liar(values[column])}
                    assert row in repo.find(**held), (column, "its own text")
                    for unheld in (_Liar("nobody_here"), _ClaimsStr(), ["x"]):
                        where = {**values, column: unheld}
                        assert repo.find(**where) == [], (column, type(unheld).__name__)
                        assert repo.count(**where) == 0, (column, type(unheld).__name__)

    def test_get_many_returns_the_rows_that_exist_by_key(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """``get_many`` answers several keys at once: the stored rows by key, unknown keys
        left out, a key asked twice answered once, nothing for nothing."""
        rows = [sample.make(n) for n in range(3)]
        _add(store, sample, *rows)
        with store.unit_of_work(write=False) as uow:
            repo = uow.repository(sample.table)
            found = repo.get_many([rows[2].id, "nobody_here", rows[0].id, rows[2].id])
            assert repo.get_many([]) == {}
        assert found == {rows[0].id: rows[0], rows[2].id: rows[2]}

    def test_get_many_answers_from_the_unit_of_work_s_own_writes(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """``get_many`` in a write unit of work sees its adds, updates and removals, as
        ``get`` does: one unit of work, one state."""
        kept, changed, removed, added = (sample.make(n) for n in range(4))
        _add(store, sample, kept, changed, removed)
        newer = _bump(sample.change(changed))
        ids = [kept.id, changed.id, removed.id, added.id]
        with store.unit_of_work() as uow:
            repo = uow.repository(sample.table)
            repo.add(added)
            repo.update(newer)
            repo.remove(removed)
            expected = {kept.id: kept, changed.id: newer, added.id: added}
            assert repo.get_many(ids) == expected
            assert {i: repo.get(i) for i in ids if repo.get(i) is not None} == expected

    def test_add_refuses_a_version_other_than_1(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """A new row starts at version 1; any other version is a ``Conflict``."""
        row = sample.make(0)
        for version in (2, 7):
            with pytest.raises(Conflict), store.unit_of_work() as uow:
                uow.repository(sample.table).add(attrs.evolve(row, version=version))
        assert _get(store, sample.table, row.id) is None

    def test_add_refuses_a_key_already_taken(self, store: Store, sample: TableSample[Any]) -> None:
        """Adding a second row under an existing key is a ``Conflict``; the first stays."""
        first = sample.make(0)
        _add(store, sample, first)
        other = attrs.evolve(sample.make(1), id=first.id)
        with pytest.raises(Conflict), store.unit_of_work() as uow:
            uow.repository(sample.table).add(other)
        assert _get(store, sample.table, first.id) == first

    def test_update_stores_exactly_the_next_version(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """An update carrying the stored version plus one replaces the row."""
        row = sample.make(0)
        _add(store, sample, row)
        changed = _bump(sample.change(row))
        with store.unit_of_work() as uow:
            uow.repository(sample.table).update(changed)
            uow.commit()
        assert _get(store, sample.table, row.id) == changed
        again = _bump(sample.change(changed))
        with store.unit_of_work() as uow:
            uow.repository(sample.table).update(again)
            uow.commit()
        assert _get(store, sample.table, row.id) == again

    @pytest.mark.parametrize("step", [0, 2, -1], ids=["same", "skip", "older"])
    def test_update_refuses_any_other_version(
        self, store: Store, sample: TableSample[Any], step: int
    ) -> None:
        """An update whose version is not the stored one plus one is a ``Conflict``."""
        row = sample.make(0)
        _add(store, sample, row)
        with store.unit_of_work() as uow:
            uow.repository(sample.table).update(_bump(row))
            uow.commit()
        stored = _bump(row)
        version = stored.version + step
        stale = attrs.evolve(sample.change(row), version=version)
        with pytest.raises(Conflict), store.unit_of_work() as uow:
            uow.repository(sample.table).update(stale)
        assert _get(store, sample.table, row.id) == stored

    def test_update_of_a_missing_row_is_a_conflict(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """Updating a row that is not there (removed by someone else) is a ``Conflict``."""
        row = sample.make(0)
        with store.unit_of_work() as uow, pytest.raises(Conflict):
            uow.repository(sample.table).update(_bump(row))
        assert _get(store, sample.table, row.id) is None

    def test_remove_deletes_the_named_version(self, store: Store, sample: TableSample[Any]) -> None:
        """Removing with the stored version deletes the row, and only that row."""
        row, keep = sample.make(0), sample.make(1)
        _add(store, sample, row, keep)
        with store.unit_of_work() as uow:
            uow.repository(sample.table).remove(row)
            uow.commit()
        assert _get(store, sample.table, row.id) is None
        assert _get(store, sample.table, keep.id) == keep

    def test_remove_refuses_a_stale_version(self, store: Store, sample: TableSample[Any]) -> None:
        """Removing a version that was since updated is a ``Conflict``; the row stays."""
        row = sample.make(0)
        _add(store, sample, row)
        newer = _bump(sample.change(row))
        with store.unit_of_work() as uow:
            uow.repository(sample.table).update(newer)
            uow.commit()
        with pytest.raises(Conflict), store.unit_of_work() as uow:
            uow.repository(sample.table).remove(row)
        assert _get(store, sample.table, row.id) == newer

    def test_remove_of_a_missing_row_is_a_conflict(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """Removing a row that is not there is a ``Conflict``."""
        with pytest.raises(Conflict), store.unit_of_work() as uow:
            uow.repository(sample.table).remove(sample.make(0))

    @staticmethod
    def _holders(sample: TableSample[Any], group: tuple[str, ...]) -> tuple[Any, Any]:
        """Two sample rows that both have values in every column of *group*."""
        table = sample.table
        rows = (sample.make(n) for n in range(16))
        fit = [r for r in rows if all(table.value(r, c) is not None for c in group)]
        assert len(fit) >= 2, f"the sample has no two rows with values for {group}"
        return fit[0], fit[1]

    def test_every_unique_key_refuses_a_second_holder_on_add(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """For each unique group, adding a row with the same values is a ``Conflict``."""
        for group in sample.table.unique:
            holder, other = self._holders(sample, group)
            _add(store, sample, holder)
            rival = sample.twin(group, holder, other)
            with pytest.raises(Conflict), store.unit_of_work() as uow:
                uow.repository(sample.table).add(rival)
            assert _get(store, sample.table, rival.id) is None
            with store.unit_of_work() as uow:
                uow.repository(sample.table).remove(holder)
                uow.commit()

    def test_every_unique_key_refuses_a_second_holder_on_update(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """For each unique group, updating a row to another row's values is a ``Conflict``."""
        for group in sample.table.unique:
            holder, other = self._holders(sample, group)
            _add(store, sample, holder, other)
            rival = _bump(sample.twin(group, holder, other))
            with pytest.raises(Conflict), store.unit_of_work() as uow:
                uow.repository(sample.table).update(rival)
            assert _get(store, sample.table, other.id) == other
            with store.unit_of_work() as uow:
                uow.repository(sample.table).remove(holder)
                uow.repository(sample.table).remove(other)
                uow.commit()

    def test_a_removed_row_frees_its_unique_keys(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """Once a row is removed, another row may take its unique values."""
        for group in sample.table.unique:
            holder, other = self._holders(sample, group)
            _add(store, sample, holder)
            with store.unit_of_work() as uow:
                uow.repository(sample.table).remove(holder)
                uow.commit()
            rival = sample.twin(group, holder, other)
            _add(store, sample, rival)
            assert _get(store, sample.table, rival.id) == rival
            with store.unit_of_work() as uow:
                uow.repository(sample.table).remove(rival)
                uow.commit()

    def test_find_answers_every_declared_lookup_in_key_order(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """``find`` returns exactly the rows with those values, ordered by key; ``count``
        agrees."""
        table = sample.table
        rows = [sample.make(n) for n in range(10)]
        _add(store, sample, *rows[5:], *reversed(rows[:5]))
        with store.unit_of_work(write=False) as uow:
            repo = uow.repository(table)
            for group in table.lookups():
                wanted = {tuple(table.value(r, c) for c in group) for r in rows}
                for values in wanted:
                    where = dict(zip(group, values, strict=True))
                    if any(v is None for v in values):
                        continue  # equality with None is pinned per table
                    expected = sorted(
                        (r for r in rows if all(table.value(r, c) == where[c] for c in group)),
                        key=lambda r: r.id,
                    )
                    assert repo.find(**where) == expected, where
                    assert repo.count(**where) == len(expected), where

    def test_find_returns_nothing_from_an_empty_table(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """``find`` and ``count`` on an empty table give ``[]`` and ``0`` for every lookup."""
        table = sample.table
        with store.unit_of_work(write=False) as uow:
            repo = uow.repository(table)
            for group in table.lookups():
                row = self._holders(sample, group)[0]
                where = {c: table.value(row, c) for c in group}
                assert repo.find(**where) == []
                assert repo.count(**where) == 0

    def test_find_and_count_refuse_lookups_the_table_does_not_declare(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """Only declared column groups may be looked up; anything else is a ``ValueError``."""
        table = sample.table
        row = sample.make(0)
        declared = {frozenset(g) for g in table.lookups()}
        candidates: list[tuple[str, ...]] = [(), ("no_such_column",), ("id",), ("version",)]
        for group in table.lookups():
            candidates.extend(
                sub for size in range(1, len(group)) for sub in itertools.combinations(group, size)
            )
            candidates.append((*group, "version"))
        _add(store, sample, row)
        with store.unit_of_work(write=False) as uow:
            repo = uow.repository(table)
            for cols in candidates:
                if frozenset(cols) in declared:
                    continue
                where = {c: getattr(row, c, "x") for c in cols}
                with pytest.raises(ValueError):  # noqa: PT011 - the type is the contract
                    repo.find(**where)
                with pytest.raises(ValueError):  # noqa: PT011
                    repo.count(**where)


class UsersContract(_Base):
    """Rules of the ``users`` table."""

    def _user(self, n: int, **changes: Any) -> User:
        return attrs.evolve(_make_user(n), **changes)

    def test_email_is_unique_whatever_its_case(self, store: Store) -> None:
        """Two users whose e-mails differ only in case cannot both exist (``Conflict``)."""
        first = self._user(0, email="Ada.Lovelace@Example.com")
        _add(store, USERS_SAMPLE, first)
        for variant in ("ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM"):
            with pytest.raises(Conflict), store.unit_of_work() as uow:
                uow.users.add(self._user(1, email=variant))
        assert _get(store, USERS, self._user(1).id) is None

    def test_users_are_found_by_the_case_folded_email_key(self, store: Store) -> None:
        """``find(email_key=...)`` matches the case-folded e-mail of the stored user."""
        user = self._user(0, email="Ada.Lovelace@Example.com")
        _add(store, USERS_SAMPLE, user, self._user(1))
        with store.unit_of_work(write=False) as uow:
            assert uow.users.find(email_key=email_key("ADA.lovelace@example.COM")) == [user]
            assert uow.users.count(email_key="ada.lovelace@example.com") == 1

    def test_changing_an_email_frees_the_old_one(self, store: Store) -> None:
        """After a user's e-mail changes, another user may take the old address."""
        user = self._user(0, email="old@example.com")
        _add(store, USERS_SAMPLE, user)
        with store.unit_of_work() as uow:
            uow.users.update(_bump(user, email="new@example.com"))
            uow.commit()
        _add(store, USERS_SAMPLE, self._user(1, email="OLD@example.com"))
        with store.unit_of_work(write=False) as uow:
            assert uow.users.count(email_key="old@example.com") == 1
            assert uow.users.count(email_key="new@example.com") == 1

    def test_users_are_found_by_company_and_by_company_and_role(self, store: Store) -> None:
        """The lookups the Portal uses: a company's users, and its users holding a role."""
        ga = AdminRole.GLOBAL_ADMIN
        users = [
            self._user(0, company_id="cmp_x", admin_role=ga),
            self._user(1, company_id="cmp_x", admin_role=AdminRole.BILLING_ADMIN),
            self._user(2, company_id="cmp_x", admin_role=ga),
            self._user(3, company_id="cmp_y", admin_role=ga),
        ]
        _add(store, USERS_SAMPLE, *users)
        with store.unit_of_work(write=False) as uow:
            by_id = sorted(users[:3], key=lambda u: u.id)
            assert uow.users.find(company_id="cmp_x") == by_id
            admins = sorted([users[0], users[2]], key=lambda u: u.id)
            assert uow.users.find(company_id="cmp_x", admin_role=ga) == admins
            assert uow.users.count(company_id="cmp_x", admin_role=ga) == 2
            assert uow.users.count(company_id="cmp_y", admin_role=ga) == 1

    def test_find_with_none_matches_users_without_that_setting(self, store: Store) -> None:
        """``find(admin_role=None)`` means "no admin role", as ``==`` does in Python."""
        plain = self._user(0, company_id="cmp_x", admin_role=None)
        admin = self._user(1, company_id="cmp_x", admin_role=AdminRole.GLOBAL_ADMIN)
        _add(store, USERS_SAMPLE, plain, admin)
        with store.unit_of_work(write=False) as uow:
            assert uow.users.find(company_id="cmp_x", admin_role=None) == [plain]
            assert uow.users.count(company_id="cmp_x", admin_role=None) == 1


class CompaniesContract(_Base):
    """Rules of the ``companies`` table."""

    def test_a_domain_belongs_to_one_company(self, store: Store) -> None:
        """A second customer with a registered domain is a ``Conflict``."""
        first = _make_company(1)
        _add(store, COMPANIES_SAMPLE, first)
        rival = attrs.evolve(_make_company(3), domain=first.domain)
        with pytest.raises(Conflict), store.unit_of_work() as uow:
            uow.companies.add(rival)
        assert _get(store, COMPANIES, rival.id) is None

    def test_an_advisor_id_belongs_to_one_partner(self, store: Store) -> None:
        """A second partner with a taken advisor id is a ``Conflict``."""
        first = _make_company(0)
        _add(store, COMPANIES_SAMPLE, first)
        rival = attrs.evolve(_make_company(2), advisor_id=first.advisor_id)
        with pytest.raises(Conflict), store.unit_of_work() as uow:
            uow.companies.add(rival)
        assert _get(store, COMPANIES, rival.id) is None

    def test_missing_unique_values_never_clash(self, store: Store) -> None:
        """Many partners have no domain and many customers no advisor id: no ``Conflict``."""
        rows = [_make_company(n) for n in range(6)]
        _add(store, COMPANIES_SAMPLE, *rows)
        with store.unit_of_work(write=False) as uow:
            assert uow.companies.count(kind=CompanyKind.PARTNER) == 3
            assert uow.companies.count(kind=CompanyKind.CUSTOMER) == 3

    def test_companies_are_found_by_domain_advisor_id_and_kind(self, store: Store) -> None:
        """The lookups the Portal uses answer with the right company."""
        rows = [_make_company(n) for n in range(4)]
        _add(store, COMPANIES_SAMPLE, *rows)
        with store.unit_of_work(write=False) as uow:
            assert uow.companies.find(domain=rows[1].domain) == [rows[1]]
            assert uow.companies.find(advisor_id=rows[2].advisor_id) == [rows[2]]
            partners = sorted([rows[0], rows[2]], key=lambda c: c.id)
            assert uow.companies.find(kind=CompanyKind.PARTNER) == partners


#: The time the contract's searches are made at.
_SEARCH_AT = _T0 + timedelta(days=10)
#: How a relation of the search tests is listed, or not, at ``_SEARCH_AT``: its
#: ``(advises, administers, delegation_id, delegation_ends_at)``.
_LISTED = (
    (True, False, None, None),  # an advisor
    (False, True, "dlg_1", None),  # a delegation without an end date
    (False, True, "dlg_2", _SEARCH_AT + timedelta(microseconds=1)),  # one that ends later
    (True, True, "dlg_3", _SEARCH_AT - timedelta(days=1)),  # an advisor, delegation ended
)
_UNLISTED = (
    (False, True, "dlg_4", _SEARCH_AT),  # a delegation that ends at that very instant
    (False, True, "dlg_5", _SEARCH_AT - timedelta(days=1)),  # one that ended before
    (False, True, None, None),  # a delegation revoked or ended: cleared
    (False, False, None, None),  # nothing at all
)


def _relation(
    partner_id: str,
    n: int,
    name_key: str,
    domain: str,
    state: tuple[bool, bool, str | None, datetime | None] = _LISTED[0],
) -> CustomerRelation:
    customer_id = f"cmp_c{n:03d}"
    advises, administers, delegation_id, ends_at = state
    return CustomerRelation(
        id=CustomerRelation.key(partner_id, customer_id),
        partner_id=partner_id,
        customer_id=customer_id,
        name_key=name_key,
        domain=domain,
        advises=advises,
        administers=administers,
        delegation_id=delegation_id,
        delegation_ends_at=ends_at,
    )


class RelationsContract(_Base):
    """``search_relations``: a partner's customers by name or domain prefix, paged."""

    @pytest.fixture
    def relations(self, store: Store) -> list[CustomerRelation]:
        """Relations of partner ``cmp_p`` (and a few of ``cmp_q``), stored."""
        names = [
            ("fabrikam", "fabrikam.example"),
            ("fabrikam", "fab2.example"),
            ("contoso", "fabcontoso.example"),
            ("fa_bulous", "fabulous.example"),
            ("fa%ncy", "fancy.example"),
            ("litware", "litware.example"),
            ("zoë", "zoe.example"),
            ("\U0010ffffmax", "max.example"),
            ("fabulous", "f.example"),
            # Code-point order, not UTF-16's (where U+20000B sorts before U+FF71); and a
            # character past U+FFFF right after a prefix, inside the prefix's range.
            ("tokyo \uff71\uff72\uff73 trading", "tokyo1.example"),
            ("tokyo \U0002000b holdings", "tokyo2.example"),
            ("rocket\U0001f680 labs", "rocket.example"),
        ]
        # Every one listed at the search's time, each in one of the ways a relation can be;
        # and, under the same names, relations that are not (the partner neither advises
        # those customers nor holds a delegation of them that has not ended).
        rows = [
            _relation("cmp_p", n, k, d, _LISTED[n % len(_LISTED)]) for n, (k, d) in enumerate(names)
        ]
        rows += [
            _relation("cmp_p", 20 + n, k, f"x{d}", _UNLISTED[n % len(_UNLISTED)])
            for n, (k, d) in enumerate(names)
        ]
        rows += [_relation("cmp_q", 50 + n, k, d) for n, (k, d) in enumerate(names[:3])]
        with store.unit_of_work() as uow:
            for row in reversed(rows):
                uow.customer_relations.add(row)
            uow.commit()
        return rows

    def _search(
        self,
        store: Store,
        prefix: str,
        limit: int = 100,
        after: tuple[str, str] | None = None,
    ) -> list[CustomerRelation]:
        with store.unit_of_work(write=False) as uow:
            return uow.search_relations("cmp_p", prefix, limit, after, now=_SEARCH_AT)

    def _expected(
        self, rows: list[CustomerRelation], prefix: str, now: datetime | None = _SEARCH_AT
    ) -> list[CustomerRelation]:
        hits = [
            r
            for r in rows
            if r.partner_id == "cmp_p"
            and (r.name_key.startswith(prefix) or r.domain.startswith(prefix))
            and r.is_listed(now)
        ]
        return sorted(hits, key=lambda r: (r.search_key(prefix), r.id))

    @pytest.mark.parametrize(
        "prefix",
        [
            "fab",
            "fa",
            "f",
            "fabrikam",
            "lit",
            "zo",
            "zoë",
            "x",
            "fabcon",
            "\U0010ffff",
            "tokyo ",
            "rocket",
        ],
    )
    def test_a_prefix_finds_names_and_domains_of_the_partner_only(
        self, store: Store, relations: list[CustomerRelation], prefix: str
    ) -> None:
        """Matches on name or domain, each relation once, ordered by the key that matched
        (the name when it does, else the domain) and id; another partner's relations never
        show."""
        assert self._search(store, prefix) == self._expected(relations, prefix)

    @pytest.mark.parametrize("prefix", ["fa_", "fa%", "%", "_"])
    def test_wildcard_characters_in_a_prefix_are_literal(
        self, store: Store, relations: list[CustomerRelation], prefix: str
    ) -> None:
        """``_`` and ``%`` match themselves only (no ``LIKE`` semantics)."""
        assert self._search(store, prefix) == self._expected(relations, prefix)

    def test_an_empty_prefix_finds_every_relation_of_the_partner(
        self, store: Store, relations: list[CustomerRelation]
    ) -> None:
        """With no prefix, the partner's whole list comes back, in order."""
        found = self._search(store, "")
        assert found == self._expected(relations, "")
        assert len(found) == 12

    @pytest.mark.parametrize("prefix", ["", "f", "x", "fabrikam"])
    def test_only_customers_advised_or_administered_at_the_time_are_found(
        self, store: Store, relations: list[CustomerRelation], prefix: str
    ) -> None:
        """A relation is found while its partner advises the customer or holds a delegation
        of it whose end date, if any, is after *now*; never one cleared on revocation or one
        whose delegation has ended by the clock. With no time given, a delegation with an end
        date counts as ended."""
        with store.unit_of_work(write=False) as uow:
            for now in (None, _T0, _SEARCH_AT, _SEARCH_AT + timedelta(days=365)):
                expected = self._expected(relations, prefix, now)
                assert uow.search_relations("cmp_p", prefix, 100, None, now=now) == expected
        unlisted = [r for r in relations if not r.is_listed(_SEARCH_AT)]
        assert unlisted
        assert not set(unlisted) & set(self._search(store, prefix))

    @pytest.mark.parametrize("limit", [1, 2, 3, 4, 100])
    @pytest.mark.parametrize("prefix", ["f", "tokyo"])
    def test_pages_walk_the_results_once_each(
        self, store: Store, relations: list[CustomerRelation], limit: int, prefix: str
    ) -> None:
        """Following the cursor of the last result, pages of *limit* cover every match once,
        each full but the last (the order and the cursor compare code points alike: a store
        that sorts by UTF-16 units skips customers)."""
        expected = self._expected(relations, prefix)
        pages: list[list[CustomerRelation]] = []
        after: tuple[str, str] | None = None
        for _ in range(len(relations) + 1):  # a store that ignores the cursor fails, not hangs
            page = self._search(store, prefix, limit=limit, after=after)
            if not page:
                break
            pages.append(page)
            after = (page[-1].search_key(prefix), page[-1].id)
        else:
            pytest.fail("the pages never ended: the cursor is not honoured")
        assert [r for page in pages for r in page] == expected
        assert [len(page) for page in pages] == [
            min(limit, len(expected) - start) for start in range(0, len(expected), limit)
        ]

    @pytest.mark.parametrize(
        "after",
        [("fab\x00", "cmp_1"), ("fab\ud800", "cmp_1"), ("fabrikam", "cmp\x00"), ("f", "\udfff")],
        ids=["nul-key", "surrogate-key", "nul-id", "surrogate-id"],
    )
    def test_a_cursor_no_stored_relation_can_give_is_refused(
        self, store: Store, relations: list[CustomerRelation], after: tuple[str, str]
    ) -> None:
        """A cursor holding text no store keeps (a NUL, a lone surrogate) cannot come from a
        page: it is a ``ValidationError`` on ``after``, from ``search_relations`` and from
        ``search_customers`` where a store offers it, on every store alike (a cursor bounds
        a range, so it cannot just find nothing as such a key does)."""
        with store.unit_of_work(write=False) as uow:
            searches: list[Callable[..., object]] = [uow.search_relations]
            if hasattr(uow, "search_customers"):
                searches.append(cast(CustomerSearch, uow).search_customers)
            for search in searches:
                with pytest.raises(ValidationError) as raised:
                    search("cmp_p", "f", 10, after, now=_SEARCH_AT)
                assert raised.value.field == "after"
            # The unit of work goes on: a storable cursor still pages as before.
            page = uow.search_relations("cmp_p", "f", 10, ("fab", ""), now=_SEARCH_AT)
        assert page == [r for r in self._expected(relations, "f") if r.search_key("f") >= "fab"]

    @pytest.mark.parametrize(
        ("field", "args"),
        [
            ("limit", ("cmp_p", "f", -1, None, _SEARCH_AT)),
            ("limit", ("cmp_p", "f", True, None, _SEARCH_AT)),
            ("limit", ("cmp_p", "f", 2.5, None, _SEARCH_AT)),
            ("limit", ("cmp_p", "f", "3", None, _SEARCH_AT)),
            ("limit", ("cmp_p", "f", 2**63, None, _SEARCH_AT)),
            ("after", ("cmp_p", "f", 10, ["fab", ""], _SEARCH_AT)),
            ("after", ("cmp_p", "f", 10, ("fab",), _SEARCH_AT)),
            ("after", ("cmp_p", "f", 10, ("fab", 1), _SEARCH_AT)),
            ("now", ("cmp_p", "f", 10, None, _SEARCH_AT.replace(tzinfo=None))),
            ("now", ("cmp_p", "f", 10, None, "2024-03-05")),
            (None, (5, "f", 10, None, _SEARCH_AT)),
            (None, (None, "f", 10, None, _SEARCH_AT)),
            (None, ("cmp_p", 5, 10, None, _SEARCH_AT)),
            (None, ("cmp_p", b"f", 10, None, _SEARCH_AT)),
        ],
        ids=[
            "negative-limit",
            "bool-limit",
            "float-limit",
            "text-limit",
            "huge-limit",
            "list-cursor",
            "short-cursor",
            "number-in-cursor",
            "naive-now",
            "text-now",
            "number-partner",
            "no-partner",
            "number-prefix",
            "bytes-prefix",
        ],
    )
    def test_search_arguments_of_another_kind(
        self,
        store: Store,
        relations: list[CustomerRelation],
        field: str | None,
        args: tuple[Any, ...],
    ) -> None:
        """A search judges its arguments before it reads, on every store alike: a *limit*
        that is not a whole number from 0 (of 64 bits), a cursor that is not a pair of
        texts, or a *now* that is not an aware time is a ``ValidationError`` naming it; a
        partner id or prefix that is not text finds nothing, as every read by a value of
        another kind does. Nothing raised is a dependency's error, and the unit of work
        goes on."""
        with store.unit_of_work(write=False) as uow:
            searches: list[Callable[..., object]] = [uow.search_relations]
            if hasattr(uow, "search_customers"):
                searches.append(cast(CustomerSearch, uow).search_customers)
            for search in searches:
                if field is None:
                    assert search(*args) == []
                    continue
                with pytest.raises(ValidationError) as raised:
                    search(*args)
                assert raised.value.field == field
            page = uow.search_relations("cmp_p", "f", 10, None, now=_SEARCH_AT)
        assert page == self._expected(relations, "f")[:10]

    def test_a_search_sees_the_unit_of_work_s_own_writes_and_a_limit_of_0_finds_nothing(
        self, store: Store, relations: list[CustomerRelation]
    ) -> None:
        """Inside a write unit of work a search answers from its own writes (a relation
        added, one removed, a company added), as every read of the unit of work does; and
        a page of 0 is empty, not everything."""
        gone = next(r for r in relations if r.partner_id == "cmp_p" and r.is_listed(_SEARCH_AT))
        added = _relation("cmp_p", 90, "fabled", "fabled.example")
        company = Company(
            id=added.customer_id,
            kind=CompanyKind.CUSTOMER,
            name="Fabled",
            domain="fabled.example",
            created_at=_T0,
        )
        with store.unit_of_work() as uow:
            uow.customer_relations.add(added)
            uow.customer_relations.remove(gone)
            uow.companies.add(company)
            found = uow.search_relations("cmp_p", "", 100, None, now=_SEARCH_AT)
            assert added in found
            assert gone not in found
            assert uow.search_relations("cmp_p", "", 0, None, now=_SEARCH_AT) == []
            search = getattr(uow, "search_customers", None)
            if search is not None:
                assert company in search("cmp_p", "fabled", 10, None, now=_SEARCH_AT)
                assert search("cmp_p", "", 0, None, now=_SEARCH_AT) == []
        with store.unit_of_work(write=False) as uow:
            assert added not in uow.search_relations("cmp_p", "", 100, None, now=_SEARCH_AT)
            assert uow.search_relations("cmp_p", "f", 0, None, now=_SEARCH_AT) == []

    @pytest.mark.parametrize("prefix", ["", "f", "fab", "fabrikam", "zo", "\U0010ffff", "x"])
    def test_search_customers_returns_the_companies_of_search_relations(
        self, store: Store, relations: list[CustomerRelation], prefix: str
    ) -> None:
        """The optional ``search_customers``, where a store offers it: the companies of
        ``search_relations``'s page, in its order, without the relations whose company is
        not stored, page by page. (``Portal.find_customers`` serves a store without it from
        ``search_relations`` and ``companies.get_many``.)"""
        with store.unit_of_work(write=False) as uow:
            if not hasattr(uow, "search_customers"):
                pytest.skip("this store's units of work do not offer search_customers")
        # Every third customer has no company; the other partner's customers have theirs.
        with store.unit_of_work() as uow:
            for n, relation in enumerate(relations):
                if n % 3:
                    uow.companies.add(
                        Company(
                            id=relation.customer_id,
                            kind=CompanyKind.CUSTOMER,
                            name=f"Customer {n}",
                            domain=f"customer{n}.example",
                            contact=ContactInfo(email=f"it{n}@customer.example"),
                            created_at=_T0 + timedelta(seconds=n),
                        )
                    )
            uow.commit()
        for limit in (2, 100):
            after: tuple[str, str] | None = None
            pages = 0
            with store.unit_of_work(write=False) as uow:
                search = cast(CustomerSearch, uow).search_customers
                at = _SEARCH_AT
                while page := uow.search_relations("cmp_p", prefix, limit, after, now=at):
                    if pages > len(relations):  # a store that ignores the cursor: fail, not hang
                        pytest.fail("the pages never ended: the cursor is not honoured")
                    companies = uow.companies.get_many([r.customer_id for r in page])
                    expected = [
                        companies[r.customer_id] for r in page if r.customer_id in companies
                    ]
                    assert search("cmp_p", prefix, limit, after, now=at) == expected, after
                    after = (page[-1].search_key(prefix), page[-1].id)
                    pages += 1
                assert search("cmp_p", prefix, limit, after, now=at) == []
            assert pages == len(range(0, len(self._expected(relations, prefix)), limit))


class LaterChecksContract(_Base):
    """The optional ``check_writes_later`` of a write unit of work (``ports.LaterChecks``).

    A store whose units of work do not offer it skips these (the Portal then runs with the
    port's rule: each write checked as it returns). Each test runs over every table of
    :data:`TABLE_SAMPLES`.
    """

    @pytest.fixture
    def later(self, store: Store) -> Store:
        """The store, if its write units of work offer ``check_writes_later``."""
        with store.unit_of_work() as uow:
            if not callable(getattr(uow, "check_writes_later", None)):
                pytest.skip("this store's units of work do not offer check_writes_later")
        return store

    def test_writes_checked_later_are_read_back_and_committed(self, later: Store) -> None:
        """Reads after an ``add`` or ``update`` checked later see it, and the commit keeps
        exactly those rows."""
        for sample in TABLE_SAMPLES:
            row, fresh = sample.make(0), sample.make(1)
            _add(later, sample, row)
            changed = _bump(sample.change(row))
            with later.unit_of_work() as uow:
                uow.check_writes_later()  # type: ignore[attr-defined]
                repo = uow.repository(sample.table)
                repo.add(fresh)
                repo.update(changed)
                assert repo.get(fresh.id) == fresh, sample.table.name
                assert repo.get(row.id) == changed, sample.table.name
                uow.commit()
            assert _get(later, sample.table, fresh.id) == fresh, sample.table.name
            assert _get(later, sample.table, row.id) == changed, sample.table.name

    def test_an_add_of_a_key_taken_fails_by_the_commit_and_commits_nothing(
        self, later: Store
    ) -> None:
        """A clash on the key, reported later: ``Conflict`` at the latest from ``commit``,
        and none of the unit of work's writes are kept, those before it included."""
        for sample in TABLE_SAMPLES:
            row, fresh = sample.make(0), sample.make(1)
            _add(later, sample, row)
            taken = attrs.evolve(sample.make(2), id=row.id)
            with pytest.raises(Conflict):
                _write_later(later, sample, ("add", fresh), ("add", taken))
            assert _get(later, sample.table, fresh.id) is None, sample.table.name
            assert _get(later, sample.table, row.id) == row, sample.table.name

    def test_a_clash_on_a_unique_key_fails_by_the_commit_and_commits_nothing(
        self, later: Store
    ) -> None:
        """Another row's values of a unique group, added or updated to, reported later: a
        ``Conflict`` by the commit; nothing of the unit of work is kept."""
        for sample in TABLE_SAMPLES:
            for group in sample.table.unique:
                holder, other = RepositoryContract._holders(sample, group)
                fresh = next(
                    row
                    for row in (sample.make(n) for n in range(16))
                    if row.id not in (holder.id, other.id)
                )
                rival = sample.twin(group, holder, other)
                # A new row with the holder's values, then the other row updated to them.
                for how, stored, clash in (
                    ("add", (holder,), rival),
                    ("update", (holder, other), _bump(rival)),
                ):
                    _add(later, sample, *stored)
                    with pytest.raises(Conflict):
                        _write_later(later, sample, ("add", fresh), (how, clash))
                    assert _get(later, sample.table, fresh.id) is None, (group, how)
                    for row in stored:
                        assert _get(later, sample.table, row.id) == row, (group, how)
                    _remove(later, sample, *stored)

    def test_an_update_of_a_stale_version_fails_by_the_commit_and_commits_nothing(
        self, later: Store
    ) -> None:
        """An update whose version is not the stored one plus one (the same, one skipped, an
        older one) or of a row that is not there, reported later: ``Conflict`` by the
        commit; nothing of it is kept."""
        for sample, step in itertools.product(TABLE_SAMPLES, (0, 2, -1)):
            first, fresh, missing = sample.make(0), sample.make(1), sample.make(2)
            _add(later, sample, first)
            row = _bump(first)  # stored at version 2: a version before it exists
            with later.unit_of_work() as uow:
                uow.repository(sample.table).update(row)
                uow.commit()
            stale = attrs.evolve(sample.change(row), version=row.version + step)
            for target in (stale, _bump(missing)):
                with pytest.raises(Conflict):
                    _write_later(later, sample, ("add", fresh), ("update", target))
                assert _get(later, sample.table, fresh.id) is None, sample.table.name
                assert _get(later, sample.table, missing.id) is None, sample.table.name
                assert _get(later, sample.table, row.id) == row, sample.table.name
            _remove(later, sample, row)

    def test_a_unit_of_work_that_failed_a_later_check_raises_conflict_from_then_on(
        self, later: Store
    ) -> None:
        """Once a write checked later is found to fail, the unit of work is over: each
        later call raises ``Conflict``, and nothing is committed."""
        sample = TABLE_SAMPLES[0]
        row = sample.make(0)
        _add(later, sample, row)
        with later.unit_of_work() as uow:
            uow.check_writes_later()  # type: ignore[attr-defined]
            repo = uow.repository(sample.table)
            repo.add(attrs.evolve(sample.make(1), id=row.id))
            with contextlib.suppress(Conflict):  # here, or at the latest by the commit
                repo.get(row.id)
            with pytest.raises(Conflict):
                uow.commit()
            with pytest.raises(Conflict):
                repo.get(row.id)
        assert _get(later, sample.table, row.id) == row


def _write_later(store: Store, sample: TableSample[Any], *writes: tuple[str, Any]) -> None:
    """Make *writes* (``("add" | "update", row)``) checked later, in one unit of work, and
    commit it."""
    with store.unit_of_work() as uow:
        uow.check_writes_later()  # type: ignore[attr-defined]
        repo = uow.repository(sample.table)
        for how, row in writes:
            getattr(repo, how)(row)
        uow.commit()


def _remove(store: Store, sample: TableSample[Any], *rows: Any) -> None:
    _each_row(store, sample, "remove", rows)


class UnitOfWorkContract(_Base):
    """Transactions: nothing without commit, all or nothing, read-only, closed after use."""

    def _snapshot(self, store: Store) -> StoreSnapshot:
        return snapshot(store)

    def test_changes_are_visible_inside_their_own_unit_of_work(self, store: Store) -> None:
        """A unit of work reads its own writes (get, find, count) before committing."""
        user = _make_user(0)
        with store.unit_of_work() as uow:
            uow.users.add(user)
            assert uow.users.get(user.id) == user
            assert uow.users.find(company_id=user.company_id) == [user]
            assert uow.users.count(email_key=email_key(user.email)) == 1
            uow.commit()

    def test_a_read_unit_of_work_sees_one_state(self, store: Store) -> None:
        """Every read of a read unit of work answers from the same state: a write another
        thread commits meanwhile is not seen until the next unit of work (a store may
        instead make the writer wait until the reader is done)."""
        company = _make_company(1)
        _add(store, COMPANIES_SAMPLE, company)
        renamed = _bump(attrs.evolve(company, name="Renamed"))
        newcomer = _make_user(3)
        relation = _relation("cmp_p", 1, "renamed", "company1.example")
        errors: list[BaseException] = []

        def write() -> None:
            try:
                with store.unit_of_work() as uow:
                    uow.companies.update(renamed)
                    uow.users.add(newcomer)
                    uow.customer_relations.add(relation)
                    uow.append_audit(_event(1, GENESIS_HASH))
                    uow.commit()
            except BaseException as exc:  # reported below, in the test's own thread
                errors.append(exc)

        writer = threading.Thread(target=write)
        with store.unit_of_work(write=False) as uow:
            assert uow.companies.get(company.id) == company
            writer.start()
            writer.join(0.5)  # committed by now, or waiting for this reader to end
            assert uow.companies.get(company.id) == company
            assert uow.companies.find(domain=company.domain) == [company]
            assert uow.companies.get_many([company.id]) == {company.id: company}
            # Tables this unit of work had not read before the commit: the same state too
            # (a store that takes each table's state when first read mixes two).
            assert uow.users.get(newcomer.id) is None
            assert uow.customer_relations.find(partner_id="cmp_p") == []
            assert uow.search_relations("cmp_p", "", 10, None, now=_SEARCH_AT) == []
            assert uow.audit_head() == (0, GENESIS_HASH)
            assert uow.audit_events() == []
        writer.join()
        assert not errors, errors
        assert _get(store, COMPANIES, company.id) == renamed
        assert _get(store, USERS, newcomer.id) == newcomer

    def test_a_second_writer_in_the_thread_of_an_open_one_is_refused_at_once(
        self, store: Store
    ) -> None:
        """A thread whose write unit of work is open and opens another one is refused with a
        ``PartnerKitError`` (not a ``Conflict``: retrying cannot help) at once, not after
        waiting for itself; the open one goes on and commits."""
        outcome: list[object] = []

        def nested() -> None:
            try:
                with store.unit_of_work() as outer:
                    outer.companies.add(_make_company(1))
                    started = time.monotonic()
                    try:
                        with store.unit_of_work():
                            outcome.append("opened")
                    except PartnerKitError as exc:
                        outcome.append(exc)
                    outcome.append(time.monotonic() - started)
                    outer.companies.add(_make_company(3))
                    outer.commit()
            except BaseException as exc:  # reported below, in the test's own thread
                outcome.append(exc)

        _run_in_a_thread(nested, "the second unit of work waited for its own thread")
        refused, waited = outcome[:2]
        assert isinstance(refused, PartnerKitError), outcome
        assert not isinstance(refused, Conflict), outcome
        assert isinstance(waited, float), outcome
        assert waited < 5, outcome
        assert len(outcome) == 2, outcome  # the outer one committed
        assert _get(store, COMPANIES, _make_company(3).id) is not None

    @pytest.mark.parametrize("outer_writes", [True, False], ids=["in-writer", "in-reader"])
    def test_one_unit_of_work_at_a_time_in_a_thread(self, store: Store, outer_writes: bool) -> None:
        """A thread opens one unit of work at a time: a second one, read or write, opened
        while its first is open is refused with a ``PartnerKitError`` (it would not see the
        first one's writes, or would wait for itself) and the first goes on. Once the first
        commits or rolls back it is over, and the next opens, inside the same block or not."""
        outcome: list[object] = []

        def run() -> None:
            try:
                with store.unit_of_work(write=outer_writes) as outer:
                    for write in (True, False):
                        try:
                            with store.unit_of_work(write=write):
                                outcome.append("opened")
                        except PartnerKitError as exc:
                            outcome.append(str(exc))
                    outer.companies.get(_make_company(2).id)  # still open, and answering
                    if outer_writes:
                        outer.companies.add(_make_company(1))
                        outer.commit()
                    else:
                        outer.rollback()
                    with store.unit_of_work(write=False) as after:
                        outcome.append(after.companies.get(_make_company(1).id))
            except BaseException as exc:  # reported below, in the test's own thread
                outcome.append(exc)

        _run_in_a_thread(run, "a unit of work waited for its own thread")
        refused = "a unit of work is already open in this thread"
        assert outcome == [refused, refused, _make_company(1) if outer_writes else None]

    def test_another_thread_cannot_use_an_open_unit_of_work(self, store: Store) -> None:
        """A unit of work belongs to the thread that opened it. From another thread, a read,
        a write, the audit head, ``commit``, ``rollback`` and leaving its block each raise
        ``PartnerKitError`` and change nothing (a connection carries one conversation at a
        time); the opening thread goes on and commits what it wrote."""
        mine, theirs = _make_user(0), _make_user(1)
        _add(store, USERS_SAMPLE, _make_user(2))
        outcomes: list[object] = []
        with store.unit_of_work() as uow:
            uow.users.add(mine)
            calls: list[Callable[[], object]] = [
                functools.partial(uow.users.get, _make_user(2).id),
                functools.partial(uow.users.find, company_id="cmp_one"),
                functools.partial(uow.users.add, theirs),
                uow.audit_head,
                uow.commit,
                uow.rollback,
                functools.partial(uow.__exit__, None, None, None),
            ]

            def other() -> None:
                for call in calls:
                    try:
                        outcomes.append(call())
                    except BaseException as exc:  # judged below, in the test's thread
                        outcomes.append(exc)

            thread = threading.Thread(target=other, daemon=True)
            thread.start()
            thread.join(30)
            assert not thread.is_alive(), "a call from another thread waited"
            assert len(outcomes) == len(calls)
            names = ["get", "find", "add", "audit_head", "commit", "rollback", "__exit__"]
            for name, outcome in zip(names, outcomes, strict=True):
                assert isinstance(outcome, PartnerKitError), (
                    f"{name} from another thread gave {outcome!r}, not a PartnerKitError"
                )
                assert not isinstance(outcome, Conflict), f"{name}: a Conflict invites a retry"
            assert uow.users.get(mine.id) == mine
            uow.commit()
        assert _get(store, USERS, mine.id) == mine
        assert _get(store, USERS, theirs.id) is None

    def test_a_closed_store_takes_no_unit_of_work(self, store: Store) -> None:
        """After ``close()`` a store refuses every unit of work with ``PartnerKitError``
        (it does not quietly open again, nor lose what it held behind the caller's back);
        closing again is harmless."""
        _add(store, USERS_SAMPLE, _make_user(0))
        store.close()
        for write in (False, True):
            with pytest.raises(PartnerKitError) as info, store.unit_of_work(write=write) as uow:
                uow.users.get(_make_user(0).id)
            assert not isinstance(info.value, Conflict)
        store.close()

    def test_a_unit_of_work_open_when_another_thread_closes_the_store_runs_to_its_end(
        self, store: Store
    ) -> None:
        """``close()`` from another thread does not cut short a unit of work that is open:
        it reads, writes and commits; only the next one is refused."""
        closer = threading.Thread(target=store.close, daemon=True)
        with store.unit_of_work() as uow:
            uow.users.add(_make_user(0))
            closer.start()
            closer.join(0.5)  # a store may wait for the open unit of work, or not
            assert uow.users.get(_make_user(0).id) == _make_user(0)
            uow.users.add(_make_user(1))
            uow.commit()
        closer.join(30)
        assert not closer.is_alive(), "close() never returned"
        with pytest.raises(PartnerKitError), store.unit_of_work(write=False) as uow:
            uow.users.get(_make_user(0).id)

    def test_repository_of_a_table_is_its_named_attribute(self, store: Store) -> None:
        """``uow.repository(USERS)`` and ``uow.users`` are the same table."""
        user = _make_user(0)
        with store.unit_of_work() as uow:
            uow.repository(USERS).add(user)
            assert uow.users.get(user.id) == user
            uow.commit()

    def test_changes_without_commit_are_discarded(self, store: Store) -> None:
        """Leaving the block without ``commit`` rolls every change back."""
        _add(store, USERS_SAMPLE, _make_user(1))
        before = self._snapshot(store)
        with store.unit_of_work() as uow:
            uow.companies.add(_make_company(0))
            uow.users.add(_make_user(0))
            uow.users.update(_bump(_make_user(1), display_name="Changed"))
            uow.append_audit(_event(1, GENESIS_HASH))
        assert self._snapshot(store) == before
        assert _get(store, USERS, _make_user(1).id) == _make_user(1)
        assert _get(store, USERS, _make_user(0).id) is None

    def test_rollback_discards_the_changes_so_far(self, store: Store) -> None:
        """An explicit ``rollback`` discards everything written before it."""
        with store.unit_of_work() as uow:
            uow.users.add(_make_user(0))
            uow.rollback()
        assert _get(store, USERS, _make_user(0).id) is None

    def test_an_exception_inside_the_block_discards_everything(self, store: Store) -> None:
        """An error raised inside the block propagates and leaves nothing behind."""

        class Boom(Exception):
            pass

        def fail_inside() -> None:
            with store.unit_of_work() as uow:
                uow.companies.add(_make_company(0))
                uow.users.add(_make_user(0))
                uow.append_audit(_event(1, GENESIS_HASH))
                raise Boom

        with pytest.raises(Boom):
            fail_inside()
        with store.unit_of_work(write=False) as uow:
            assert uow.companies.get(_make_company(0).id) is None
            assert uow.users.get(_make_user(0).id) is None
            assert uow.audit_head() == (0, GENESIS_HASH)

    def test_a_failure_half_way_leaves_nothing(self, store: Store) -> None:
        """Writes before a refused write are undone when the error leaves the block."""
        _add(store, USERS_SAMPLE, _make_user(0))
        before = self._snapshot(store)

        def three_writes_then_a_refused_one() -> None:
            with store.unit_of_work() as uow:
                uow.companies.add(_make_company(0))
                uow.users.add(_make_user(1))
                uow.append_audit(_event(1, GENESIS_HASH))
                uow.users.add(attrs.evolve(_make_user(2), email=_make_user(0).email))
                uow.commit()

        with pytest.raises(Conflict):
            three_writes_then_a_refused_one()
        assert self._snapshot(store) == before
        assert _get(store, USERS, _make_user(1).id) is None

    def test_a_refused_write_keeps_the_earlier_writes_of_the_unit_of_work(
        self, store: Store
    ) -> None:
        """A write refused with ``Conflict`` changes nothing itself; the unit of work goes on."""
        _add(store, USERS_SAMPLE, _make_user(0))
        with store.unit_of_work() as uow:
            uow.users.add(_make_user(1))
            with pytest.raises(Conflict):
                uow.users.add(attrs.evolve(_make_user(2), email=_make_user(0).email))
            uow.commit()
        assert _get(store, USERS, _make_user(1).id) == _make_user(1)
        assert _get(store, USERS, _make_user(2).id) is None

    def test_a_read_only_unit_of_work_refuses_every_write(self, store: Store) -> None:
        """Writes in a read-only unit of work raise ``PartnerKitError`` (not ``Conflict``)."""
        user = _make_user(0)
        _add(store, USERS_SAMPLE, user)
        before = self._snapshot(store)
        writes: list[Callable[[UnitOfWork], None]] = [
            lambda uow: uow.users.add(_make_user(1)),
            lambda uow: uow.users.update(_bump(user, display_name="Changed")),
            lambda uow: uow.users.remove(user),
            lambda uow: uow.companies.add(_make_company(0)),
            lambda uow: uow.append_audit(_event(1, GENESIS_HASH)),
            # The unit of work is judged before what it is given:
            lambda uow: uow.users.add(_bump(_make_user(1))),  # a version other than 1
            lambda uow: uow.users.update(_bump(_bump(user))),  # a stale version
            lambda uow: uow.users.remove(_bump(user)),
            lambda uow: uow.append_audit(_event(7, GENESIS_HASH)),  # not after the head
        ]
        for write in writes:
            with store.unit_of_work(write=False) as uow:
                with pytest.raises(PartnerKitError) as info:
                    write(uow)
                assert not isinstance(info.value, Conflict)
        assert self._snapshot(store) == before

    def test_a_unit_of_work_cannot_be_used_after_its_block(self, store: Store) -> None:
        """Reading or writing through a finished unit of work raises ``PartnerKitError``."""
        with store.unit_of_work() as uow:
            users = uow.users
        with pytest.raises(PartnerKitError):
            users.get("usr_x")
        with pytest.raises(PartnerKitError):
            users.add(_make_user(0))
        # Also by text no row holds, which a store may answer without asking its database.
        for unheld in ("a\x00", "a\ud800"):
            reads: list[Callable[[], object]] = [
                functools.partial(users.get, unheld),
                functools.partial(users.get_many, [unheld]),
                functools.partial(users.find, company_id=unheld),
                functools.partial(users.count, company_id=unheld),
                functools.partial(uow.audit_events, unheld),
                functools.partial(uow.search_relations, unheld, "", 5),
                functools.partial(uow.search_relations, "cmp_p", unheld, 5),
            ]
            for read in reads:
                with pytest.raises(PartnerKitError):
                    read()
        assert _get(store, USERS, _make_user(0).id) is None

    def test_a_unit_of_work_takes_no_writes_after_commit(self, store: Store) -> None:
        """After ``commit`` the unit of work is finished: a further write raises
        ``PartnerKitError`` instead of being silently lost."""
        with store.unit_of_work() as uow:
            uow.users.add(_make_user(0))
            uow.commit()
            with pytest.raises(PartnerKitError):
                uow.users.add(_make_user(1))
        assert _get(store, USERS, _make_user(0).id) == _make_user(0)

    def test_a_stale_read_modify_write_across_units_of_work_is_a_conflict(
        self, store: Store
    ) -> None:
        """Two writers read the same version; the second to write gets ``Conflict`` and the
        first one's change stays."""
        user = _make_user(0)
        _add(store, USERS_SAMPLE, user)
        with store.unit_of_work(write=False) as uow:
            seen_by_a = uow.users.get(user.id)
        with store.unit_of_work(write=False) as uow:
            seen_by_b = uow.users.get(user.id)
        assert seen_by_a is not None
        assert seen_by_b is not None
        won = _bump(seen_by_a, admin_role=AdminRole.SERVICE_ADMIN)
        with store.unit_of_work() as uow:
            uow.users.update(won)
            uow.commit()
        with store.unit_of_work() as uow, pytest.raises(Conflict):
            uow.users.update(_bump(seen_by_b, admin_role=AdminRole.PASSWORD_ADMIN))
        with store.unit_of_work() as uow, pytest.raises(Conflict):
            uow.users.remove(seen_by_b)
        assert _get(store, USERS, user.id) == won


class AuditContract(_Base):
    """The audit chain a store keeps: append after the head, read back in order."""

    def test_an_empty_store_has_the_genesis_head_and_no_events(self, store: Store) -> None:
        """Before any event the head is ``(0, GENESIS_HASH)``."""
        with store.unit_of_work(write=False) as uow:
            assert uow.audit_head() == (0, GENESIS_HASH)
            assert uow.audit_events() == []

    def test_appended_events_are_read_back_in_chain_order(self, store: Store) -> None:
        """Events come back equal, oldest first, and the head names the newest."""
        events = _chain(("cmp_a", "cmp_a"), ("cmp_b", "cmp_b"), (None, "cmp_a"))
        _append(store, events[:1])
        _append(store, events[1:])
        with store.unit_of_work(write=False) as uow:
            assert uow.audit_events() == events
            assert uow.audit_head() == (3, events[-1].hash)
            assert verify_chain(uow.audit_events(), uow.audit_head()) == 3

    def test_an_event_that_does_not_follow_the_head_is_a_conflict(self, store: Store) -> None:
        """Skipping a number, repeating one or naming another predecessor is a ``Conflict``."""
        events = _chain(("cmp_a", "cmp_a"), ("cmp_a", "cmp_a"))
        _append(store, events)
        wrong = [
            _event(4, events[1].hash),  # skips 3
            _event(2, events[0].hash),  # repeats 2
            _event(3, events[0].hash),  # follows the wrong event
            _event(3, GENESIS_HASH),
        ]
        for event in wrong:
            with pytest.raises(Conflict), store.unit_of_work() as uow:
                uow.append_audit(event)
        with store.unit_of_work(write=False) as uow:
            assert uow.audit_events() == events
            assert uow.audit_head() == (2, events[1].hash)

    def test_events_of_a_company_are_those_by_it_or_on_it(self, store: Store) -> None:
        """``audit_events(company_id)`` returns the events its users caused and those that
        acted on it, once each, in chain order."""
        events = _chain(
            ("cmp_a", "cmp_b"),
            ("cmp_a", "cmp_a"),
            ("cmp_c", "cmp_c"),
            (None, "cmp_b"),
            ("cmp_b", "cmp_b"),
            ("cmp_b", None),
        )
        _append(store, events)
        with store.unit_of_work(write=False) as uow:
            assert uow.audit_events("cmp_a") == [events[0], events[1]]
            assert uow.audit_events("cmp_b") == [events[0], events[3], events[4], events[5]]
            assert uow.audit_events("cmp_c") == [events[2]]
            assert uow.audit_events("cmp_none") == []

    def test_the_list_of_events_read_is_the_reader_s_own(self, store: Store) -> None:
        """``audit_events`` returns a new list each time: a caller that sorts, filters or
        empties the list it was given changes nothing the store holds (a store that hands
        out its own list would let a caller erase the trail)."""
        with store.unit_of_work() as uow:
            uow.append_audit(_event(1, GENESIS_HASH))
            uow.commit()
        with store.unit_of_work(write=False) as uow:
            for company_id in (None, "cmp_one"):
                given = uow.audit_events(company_id)
                assert len(given) == 1
                given.clear()
                assert len(uow.audit_events(company_id)) == 1, company_id
        with store.unit_of_work(write=False) as uow:
            assert [e.seq for e in uow.audit_events()] == [1]

    def test_uncommitted_events_are_discarded(self, store: Store) -> None:
        """Events appended in a unit of work that does not commit leave no trace."""
        events = _chain(("cmp_a", "cmp_a"), ("cmp_a", "cmp_a"))
        _append(store, events[:1])
        with store.unit_of_work() as uow:
            uow.append_audit(events[1])
        with store.unit_of_work(write=False) as uow:
            assert uow.audit_events() == events[:1]
            assert uow.audit_head() == (1, events[0].hash)
        _append(store, events[1:])

    def test_every_field_of_an_event_round_trips(self, store: Store) -> None:
        """Times with microseconds, missing values and details come back exactly."""
        event = AuditEvent.chained(
            seq=1,
            prev_hash=GENESIS_HASH,
            at=datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            action="user.create",
            outcome="denied",
            detail={"z": "last", "a": "first; ünïcode ✓", "quote": 'it\'s "quoted"'},
            correlation_id="req-42",
        )
        _append(store, [event])
        with store.unit_of_work(write=False) as uow:
            (back,) = uow.audit_events()
        assert back == event
        assert back.at.utcoffset() == timedelta(0)
        assert back.expected_hash() == back.hash


def _ranges(store: Store, uow: UnitOfWork) -> AuditRanges:
    """The unit of work's ``audit_range``, or a skip for a store that does not offer it."""
    if not hasattr(uow, "audit_range"):
        pytest.skip("this store's units of work do not offer audit_range")
    return cast(AuditRanges, uow)


#: Who acted and on whom, for the events of :class:`AuditRangeContract`: two companies'
#: events interleaved with others', on each other, on no company and by none.
_RANGE_PAIRS: tuple[tuple[str | None, str | None], ...] = tuple(
    itertools.islice(
        itertools.cycle(
            [
                ("cmp_a", "cmp_a"),
                ("cmp_b", "cmp_b"),
                ("cmp_a", "cmp_b"),
                (None, "cmp_a"),
                ("cmp_c", "cmp_c"),
                ("cmp_b", None),
                ("cmp_b", "cmp_a"),
                ("cmp_c", "cmp_a"),
            ]
        ),
        41,
    )
)


class AuditRangeContract(_Base):
    """The optional ``audit_range`` (``partnerkit.ports.AuditRanges``): a bounded part of
    ``audit_events``, in either order. A store whose units of work do not offer it skips
    these (the Portal then reads ``audit_events`` whole)."""

    def test_a_range_is_the_part_of_audit_events_it_names(self, store: Store) -> None:
        """For every company (and none), bounds and limit, in both orders: exactly the
        events of ``audit_events`` in the bounds, the *limit* first in the order asked."""
        events = _chain(*_RANGE_PAIRS)
        _append(store, events)
        with store.unit_of_work(write=False) as uow:
            ranges = _ranges(store, uow)
            for company in (None, "cmp_a", "cmp_b", "cmp_c", "cmp_none"):
                trail = uow.audit_events(company)
                for limit, above, below in itertools.product(
                    (1, 3, 50),
                    (None, -(2**63), -1, 0, 1, 7, 40, 41, 99, 2**63 - 1),
                    (None, -(2**63), 0, 1, 2, 9, 41, 42, 200, 2**63 - 1),
                ):
                    inside = [
                        e
                        for e in trail
                        if (above is None or e.seq > above) and (below is None or e.seq < below)
                    ]
                    for newest_first in (False, True):
                        wanted = (inside[::-1] if newest_first else inside)[:limit]
                        got = ranges.audit_range(
                            company, limit, above=above, below=below, newest_first=newest_first
                        )
                        assert got == wanted, (company, limit, above, below, newest_first)

    def test_a_range_reaches_the_largest_limit(self, store: Store) -> None:
        """``MAX_AUDIT_RANGE`` events come back in one call, and no more."""
        events = _chain(*[("cmp_a", "cmp_a")] * (MAX_AUDIT_RANGE + 2))
        _append(store, events)
        with store.unit_of_work(write=False) as uow:
            ranges = _ranges(store, uow)
            assert ranges.audit_range(None, MAX_AUDIT_RANGE) == events[:MAX_AUDIT_RANGE]
            newest = ranges.audit_range("cmp_a", MAX_AUDIT_RANGE, newest_first=True)
            assert newest == events[::-1][:MAX_AUDIT_RANGE]

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("limit", 0),
            ("limit", MAX_AUDIT_RANGE + 1),
            ("limit", True),
            ("limit", 5.0),
            ("limit", "5"),
            ("above", True),
            ("above", 2**63),
            ("above", -(2**63) - 1),
            ("above", 1.5),
            ("above", "1"),
            ("below", False),
            ("below", 2**63),
            ("below", -(2**63) - 1),
            ("below", 3.5),
            ("newest_first", 1),
            ("newest_first", "yes"),
            ("newest_first", None),
        ],
    )
    def test_a_bad_argument_is_a_validation_error_naming_it(
        self, store: Store, name: str, value: object
    ) -> None:
        """Every store refuses the same arguments, by name, whatever the company."""
        _append(store, _chain(("cmp_a", "cmp_a")))
        arguments: dict[str, Any] = {
            "limit": 5,
            "above": None,
            "below": None,
            "newest_first": False,
        }
        arguments[name] = value
        limit = arguments.pop("limit")
        with store.unit_of_work(write=False) as uow:
            ranges = _ranges(store, uow)
            for company in ("cmp_a", None, 7, "cmp\x00a"):
                with pytest.raises(ValidationError) as info:
                    ranges.audit_range(cast(Any, company), limit, **arguments)
                assert info.value.field == name

    def test_a_company_no_event_can_name_finds_nothing(self, store: Store) -> None:
        """An id that is not text, or text no store keeps, names no company: nothing is
        found, as by ``audit_events``, and the unit of work goes on."""
        events = _chain(("cmp_a", "cmp_a"), ("cmp_a", "cmp_a"))
        _append(store, events)
        with store.unit_of_work(write=False) as uow:
            ranges = _ranges(store, uow)
            for company in (7, b"cmp_a", "cmp\x00a", "cmp_\ud800"):
                assert ranges.audit_range(cast(Any, company), 10) == []
            assert ranges.audit_range("cmp_a", 10) == events

    def test_a_range_is_refused_outside_its_open_unit_of_work(self, store: Store) -> None:
        """After its unit of work ended, ``audit_range`` refuses, as every read does."""
        with store.unit_of_work(write=False) as uow:
            ranges = _ranges(store, uow)
        with pytest.raises(PartnerKitError):
            ranges.audit_range(None, 10)

    def test_a_range_sees_the_unit_of_work_s_own_appends(self, store: Store) -> None:
        """Events appended in the unit of work are in its ranges, and gone after a rollback."""
        events = _chain(("cmp_a", "cmp_a"), ("cmp_b", "cmp_a"))
        _append(store, events[:1])
        with store.unit_of_work() as uow:
            uow.append_audit(events[1])
            assert _ranges(store, uow).audit_range("cmp_a", 10, newest_first=True) == [
                events[1],
                events[0],
            ]
        with store.unit_of_work(write=False) as uow:
            assert _ranges(store, uow).audit_range("cmp_a", 10) == events[:1]


def _pages(repo: Any) -> FindPages[Any]:
    """The repository's ``find_page``, or a skip for a store that does not offer it."""
    if not hasattr(repo, "find_page"):
        pytest.skip("this store's repositories do not offer find_page")
    return cast(FindPages[Any], repo)


#: Arguments every ``find_page`` refuses, by the name a ``ValidationError`` gives.
FIND_PAGE_REFUSED: tuple[tuple[str, object], ...] = (
    ("limit", 0),
    ("limit", -1),
    ("limit", MAX_FIND_PAGE + 1),
    ("limit", True),
    ("limit", 2.0),
    ("limit", "2"),
    ("limit", None),
    ("after", 7),
    ("after", b"usr_"),
    ("after", "usr\x00"),
    ("after", "usr\ud800"),
)


class FindPageContract(_Base):
    """The optional ``find_page`` (``partnerkit.ports.FindPages``): a bounded part of
    ``find``, in key order, run on every table of :data:`TABLE_SAMPLES`. A store whose
    repositories do not offer it skips these (the Portal's lists then read ``find``)."""

    def test_a_page_is_the_part_of_find_it_names(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """For every lookup, limit and bound: exactly the rows of ``find`` whose key follows
        the bound, the *limit* first, in key order. The bound is any text: a key, text
        between keys, before the first or past the last."""
        table = sample.table
        rows = [sample.make(n) for n in range(16)]
        _add(store, sample, *rows[8:], *reversed(rows[:8]))
        ids = sorted(r.id for r in rows)
        bounds = [None, "", "~", *ids, *(i + "\x01" for i in ids), *(i[:-1] for i in ids)]
        with store.unit_of_work(write=False) as uow:
            repo = uow.repository(table)
            pages = _pages(repo)
            for group in table.lookups():
                for values in {tuple(table.value(r, c) for c in group) for r in rows}:
                    where = dict(zip(group, values, strict=True))
                    found = repo.find(**where)
                    for after in bounds:
                        following = [r for r in found if after is None or r.id > after]
                        for limit in (1, 3, MAX_FIND_PAGE):
                            got = pages.find_page(where, limit, after)
                            assert got == following[:limit], (where, limit, after)

    @pytest.mark.parametrize(("name", "value"), FIND_PAGE_REFUSED)
    def test_a_bad_argument_is_a_validation_error_naming_it(
        self, store: Store, name: str, value: object
    ) -> None:
        """Every store refuses the same arguments, by name, whatever the lookup's value."""
        sample = USERS_SAMPLE
        row = sample.make(0)
        _add(store, sample, row)
        arguments: dict[str, Any] = {"limit": 2, "after": None, name: value}
        with store.unit_of_work(write=False) as uow:
            pages = _pages(uow.users)
            for company in (row.company_id, "cmp_none", 7, "cmp\x00a"):
                with pytest.raises(ValidationError) as info:
                    pages.find_page({"company_id": company}, **arguments)
                assert info.value.field == name

    def test_a_lookup_the_table_does_not_declare_is_a_value_error(self, store: Store) -> None:
        """As for ``find``: only declared column groups may be looked up."""
        with store.unit_of_work(write=False) as uow:
            pages = _pages(uow.users)
            for where in ({}, {"display_name": "x"}, {"company_id": "c", "version": 1}):
                with pytest.raises(ValueError):  # noqa: PT011 - the type is the contract
                    pages.find_page(where, 2)

    def test_a_value_no_row_can_hold_finds_nothing(self, store: Store) -> None:
        """A lookup value that is not text, or text no store keeps, finds nothing."""
        row = USERS_SAMPLE.make(0)
        _add(store, USERS_SAMPLE, row)
        with store.unit_of_work(write=False) as uow:
            pages = _pages(uow.users)
            unheld: tuple[object, ...] = (7, b"x", "cmp\x00a", "cmp_\ud800", None, [], {})
            for company in unheld:
                assert pages.find_page({"company_id": company}, 5) == []
            assert pages.find_page({"company_id": row.company_id}, 5) == [row]

    def test_a_page_is_refused_outside_its_open_unit_of_work(self, store: Store) -> None:
        """After its unit of work ended, ``find_page`` refuses, as every read does."""
        with store.unit_of_work(write=False) as uow:
            pages = _pages(uow.users)
        with pytest.raises(PartnerKitError):
            pages.find_page({"company_id": "cmp_a"}, 5)

    def test_a_page_sees_the_unit_of_work_s_own_writes(self, store: Store) -> None:
        """Rows added or removed in the unit of work are in its pages, and gone after a
        rollback."""
        first, second = USERS_SAMPLE.make(0), USERS_SAMPLE.make(2)
        assert first.company_id == second.company_id
        _add(store, USERS_SAMPLE, first)
        where = {"company_id": first.company_id}
        with store.unit_of_work() as uow:
            uow.users.add(second)
            uow.users.remove(first)
            assert _pages(uow.users).find_page(where, 5) == [second]
        with store.unit_of_work(write=False) as uow:
            assert _pages(uow.users).find_page(where, 5) == [first]

    def test_a_page_follows_an_update_of_its_lookup_column(self, store: Store) -> None:
        """A row moved to another value of a looked-up column (a user to another company)
        leaves the pages of the old value and joins those of the new, in the unit of work
        that moved it and in every one after it, as ``find`` does."""
        first, second = USERS_SAMPLE.make(0), USERS_SAMPLE.make(2)
        _add(store, USERS_SAMPLE, first, second)
        old, new = {"company_id": first.company_id}, {"company_id": "cmp_elsewhere"}
        with store.unit_of_work(write=False) as uow:  # pages read once, before the move
            assert _pages(uow.users).find_page(old, 5) == uow.users.find(**old)
        moved = _bump(second, company_id="cmp_elsewhere")
        with store.unit_of_work() as uow:
            uow.users.update(moved)
            assert _pages(uow.users).find_page(old, 5) == [first]
            assert _pages(uow.users).find_page(new, 5) == [moved]
            uow.commit()
        with store.unit_of_work(write=False) as uow:
            pages = _pages(uow.users)
            assert pages.find_page(old, 5) == [first] == uow.users.find(**old)
            assert pages.find_page(new, 5) == [moved] == uow.users.find(**new)


_EDGE_TIMES = (
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=UTC),
)


class RoundTripContract(_Base):
    """Objects come back exactly as they were stored, every field type included."""

    def test_every_field_type_of_a_user_round_trips(self, store: Store) -> None:
        """Enums, booleans, missing values and aware times (to the microsecond) come back."""
        users = [
            attrs.evolve(
                _make_user(n),
                admin_role=role,
                partner_access=access,
                must_change_password=n % 2 == 0,
                created_at=_EDGE_TIMES[n % len(_EDGE_TIMES)] if n % 4 else None,
                display_name=f"Zoë „{n}“ 𝔘ser",
            )
            for n, (role, access) in enumerate(
                itertools.product([None, *AdminRole], [None, *PartnerAccess])
            )
        ]
        _add(store, USERS_SAMPLE, *users)
        with store.unit_of_work(write=False) as uow:
            for user in users:
                back = uow.users.get(user.id)
                assert back == user
                assert back is not None
                assert type(back.must_change_password) is bool
                if back.created_at is not None:
                    assert back.created_at.utcoffset() == timedelta(0)

    def test_every_field_type_of_a_company_round_trips(self, store: Store) -> None:
        """Contact information (nested, with missing parts) and both kinds come back."""
        full = ContactInfo(
            email="office@contoso.example",
            phone="+44 20 7946 0958",
            website="https://contoso.example:8443/partners?x=1",
            address="1 Main Street\nSpringfield\tUSA · Ünïcode",
        )
        companies = [
            attrs.evolve(_make_company(0), contact=full, created_at=_EDGE_TIMES[1]),
            attrs.evolve(_make_company(1), contact=ContactInfo(email="a@b.example")),
            attrs.evolve(_make_company(2), contact=None, created_at=None),
            attrs.evolve(_make_company(3), created_at=_EDGE_TIMES[3]),
        ]
        _add(store, COMPANIES_SAMPLE, *companies)
        with store.unit_of_work(write=False) as uow:
            for company in companies:
                assert uow.companies.get(company.id) == company

    def test_generated_users_and_companies_round_trip(self, store: Store) -> None:
        """Any valid user or company the strategies generate comes back equal."""
        # Imported here: the rest of the contract needs only pytest, not hypothesis.
        pytest.importorskip("hypothesis")
        from hypothesis import given

        from partnerkit.testing import strategies as pks

        @given(
            company=pks.companies(),
            user=pks.users(company=pks.companies(kind=CompanyKind.PARTNER)),
        )
        def round_trip(company: Company, user: User) -> None:
            # Each example writes and reads in one unit of work that never commits, so the
            # store is empty again for the next one.
            with store.unit_of_work() as uow:
                uow.companies.add(attrs.evolve(company, version=1))
                uow.users.add(attrs.evolve(user, version=1))
                assert uow.companies.get(company.id) == attrs.evolve(company, version=1)
                assert uow.users.get(user.id) == attrs.evolve(user, version=1)

        round_trip()


def _in_threads(worker: Callable[[int], None], count: int) -> None:
    """Run ``worker(k)`` in *count* threads at once (k from 0) and wait for them all."""
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class ConcurrencyContract(_Base):
    """A store is safe to share between threads."""

    def test_threads_doing_read_modify_write_lose_nothing(self, store: Store) -> None:
        """Four threads bump one user's version with retries; every acknowledged write is
        one version, and the final version counts them all."""
        user = _make_user(0)
        _add(store, USERS_SAMPLE, user)
        acked: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def worker(k: int) -> None:
            done = 0
            while done < 10:
                try:
                    with store.unit_of_work(write=False) as uow:
                        seen = uow.users.get(user.id)
                    assert seen is not None
                    new = _bump(seen, display_name=f"Writer {k}")
                    with store.unit_of_work() as uow:
                        uow.users.update(new)
                        uow.commit()
                except Conflict:
                    continue
                except BaseException as exc:  # reported to the main thread
                    errors.append(exc)
                    return
                with lock:
                    acked.append(new.version)
                done += 1

        _in_threads(worker, 4)
        assert errors == []
        final = _get(store, USERS, user.id)
        assert final is not None
        assert final.version == 1 + len(acked) == 41
        assert sorted(acked) == list(range(2, 42))

    def test_a_writer_opened_while_another_is_open_loses_neither_commit(self, store: Store) -> None:
        """Thread A holds a write unit of work open, having written, while thread B opens
        another, writes and commits; then A commits. The store may make B wait for A, or
        let B go first and refuse the later commit with ``Conflict`` (each writer its own
        row and event, both chained to the head they read): either way every commit that
        returned is there afterwards. A store that lets each writer work on a copy and puts
        it back on commit loses B's row and B's event, and its chain still verifies.

        Not left to the threads' timing (a unit of work of an in-process store is too
        short for two to overlap by chance): A is held open on purpose."""
        first, second = _make_company(0), _make_company(1)
        outcome: dict[str, str] = {}
        errors: list[BaseException] = []
        b_started = threading.Event()

        def write(row: Company, name: str) -> None:
            with store.unit_of_work() as uow:
                uow.companies.add(row)
                seq, prev = uow.audit_head()
                uow.append_audit(_event(seq + 1, prev, action=f"test.writer.{name}"))
                uow.commit()

        def writer_b() -> None:
            b_started.set()
            try:
                write(second, "b")
                outcome["b"] = "committed"
            except Conflict:
                outcome["b"] = "conflict"
            except BaseException as exc:  # reported to the main thread
                errors.append(exc)

        thread = threading.Thread(target=writer_b, daemon=True)
        try:
            with store.unit_of_work() as uow:
                uow.companies.add(first)
                seq, prev = uow.audit_head()
                uow.append_audit(_event(seq + 1, prev, action="test.writer.a"))
                thread.start()
                b_started.wait(10)
                thread.join(0.5)  # B waits for A (still alive), or has committed already
                uow.commit()
            outcome["a"] = "committed"
        except Conflict:
            outcome["a"] = "conflict"
        if thread.ident is not None:  # started: A's own writes went through
            thread.join(60)
            assert not thread.is_alive(), "the second writer never ended"
        assert errors == []
        assert "committed" in outcome.values(), f"neither writer committed: {outcome}"
        with store.unit_of_work(write=False) as uow:
            events, head = uow.audit_events(), uow.audit_head()
            for name, row in (("a", first), ("b", second)):
                if outcome.get(name) == "committed":
                    assert uow.companies.get(row.id) == row, f"writer {name}'s row was lost"
                    assert f"test.writer.{name}" in [e.action for e in events], (
                        f"writer {name}'s audit event was lost"
                    )
        assert verify_chain(events, head) == len(events)

    def test_threads_appending_to_the_audit_chain_keep_one_chain(self, store: Store) -> None:
        """Four threads, released together, each append events in write units of work of
        their own, each chained to the head it reads, retrying on ``Conflict``: the events
        are numbered 1 to their count with no gap or repeat, and the chain verifies (a store
        whose head another writer could move between its read and the commit would fork
        the chain)."""
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def worker(k: int) -> None:
            try:
                for n in range(5):
                    barrier.wait()
                    while True:
                        try:
                            with store.unit_of_work() as uow:
                                seq, prev = uow.audit_head()
                                event = _event(seq + 1, prev, action=f"test.thread{k}.{n}")
                                uow.append_audit(event)
                                uow.commit()
                            break
                        except Conflict:
                            continue
            except BaseException as exc:  # reported to the main thread
                errors.append(exc)
                barrier.abort()

        _in_threads(worker, 4)
        assert errors == []
        with store.unit_of_work(write=False) as uow:
            events, head = uow.audit_events(), uow.audit_head()
        assert [e.seq for e in events] == list(range(1, 21))
        assert sorted(e.action for e in events) == sorted(
            f"test.thread{k}.{n}" for k in range(4) for n in range(5)
        )
        assert verify_chain(events, head) == 20


class PortalContract(_Base):
    """The Portal's use cases behave the same on this store."""

    @pytest.fixture
    def portal_world(self, store: Store) -> World:
        """A partner and a customer with their users, registered on this store."""
        return build_world(Portal(store=store, clock=FakeClock()))

    def test_registration_stores_the_companies_and_their_first_admins(
        self, portal_world: World
    ) -> None:
        """Registered companies and users are read back as the Portal returned them."""
        store = portal_world.portal.store
        assert _get(store, COMPANIES, portal_world.partner.id) == portal_world.partner
        assert _get(store, COMPANIES, portal_world.customer.id) == portal_world.customer
        admin = _get(store, USERS, portal_world.partner_admin.id)
        assert admin == portal_world.partner_admin
        assert admin is not None
        assert admin.admin_role is AdminRole.GLOBAL_ADMIN
        assert admin.partner_access is PartnerAccess.FULL
        assert portal_world.partner.advisor_id
        assert portal_world.customer.domain == "fabrikam.example"

    def test_a_duplicate_domain_or_email_is_refused_and_changes_nothing(
        self, portal_world: World
    ) -> None:
        """Registering a taken domain or e-mail (in any case) is a ``ValidationError``
        naming the field, and the store is exactly as before."""
        portal = portal_world.portal
        before = snapshot(portal.store)
        with pytest.raises(ValidationError) as info:
            portal.register_customer(
                name="Other", domain="FABRIKAM.example.", admin_email="x@other.example"
            )
        assert info.value.field == "domain"
        with pytest.raises(ValidationError) as info:
            portal.register_customer(
                name="Other", domain="other.example", admin_email="ADA@contoso.EXAMPLE"
            )
        assert info.value.field == "admin_email"
        assert snapshot(portal.store) == before

    def test_a_duplicate_email_for_a_new_user_is_refused_and_only_audited(
        self, portal_world: World
    ) -> None:
        """``create_user`` with a taken e-mail (other case) changes nothing but the trail."""
        portal = portal_world.portal
        before = snapshot(portal.store)
        with pytest.raises(ValidationError) as info:
            portal.create_user(
                portal_world.partner_admin, email="DEE@Fabrikam.example", display_name="Dup"
            )
        assert info.value.field == "email"
        after = snapshot(portal.store)
        assert (after.companies, after.users) == (before.companies, before.users)
        assert after.audit[: len(before.audit)] == before.audit
        (event,) = after.audit[len(before.audit) :]
        assert (event.action, event.outcome) == ("user.create", "failed")

    def test_assigning_roles_and_removing_a_user_are_stored(self, portal_world: World) -> None:
        """A role assignment is stored as the next version; a removal deletes the user."""
        portal = portal_world.portal
        user = portal.assign_roles(
            portal_world.partner_admin,
            portal_world.partner_agent.id,
            admin_role=AdminRole.PASSWORD_ADMIN,
        )
        assert user.version == portal_world.partner_agent.version + 1
        assert user.partner_access is None
        assert _get(portal.store, USERS, user.id) == user
        portal.remove_user(portal_world.partner_admin, user.id)
        assert _get(portal.store, USERS, user.id) is None
        assert portal.verify_audit_trail() == len(snapshot(portal.store).audit)

    def test_the_last_global_admin_is_kept(self, portal_world: World) -> None:
        """Demoting or removing a company's only global admin is a ``ValidationError``."""
        portal = portal_world.portal
        before = snapshot(portal.store)
        with pytest.raises(ValidationError):
            portal.assign_roles(
                portal_world.customer_admin, portal_world.customer_admin.id, admin_role=None
            )
        with pytest.raises(ValidationError):
            portal.remove_user(portal_world.customer_admin, portal_world.customer_admin.id)
        after = snapshot(portal.store)
        assert after.users == before.users
        assert [e.outcome for e in after.audit[len(before.audit) :]] == ["failed", "failed"]

    def test_a_denied_request_changes_nothing_and_is_audited(self, portal_world: World) -> None:
        """A billing admin's role assignment is ``Forbidden``; only the denial is recorded."""
        portal = portal_world.portal
        before = snapshot(portal.store)
        with pytest.raises(Forbidden) as info:
            portal.assign_roles(
                portal_world.partner_billing,
                portal_world.partner_agent.id,
                admin_role=AdminRole.GLOBAL_ADMIN,
            )
        assert info.value.permission is Permission.ASSIGN_ROLES
        after = snapshot(portal.store)
        assert after.users == before.users
        (event,) = after.audit[len(before.audit) :]
        assert (event.outcome, event.actor_id) == ("denied", portal_world.partner_billing.id)
        assert event.reason == info.value.decision.reason

    def test_decisions_are_taken_on_what_the_store_holds_now(self, portal_world: World) -> None:
        """A stale ``User`` handed in as actor is re-read: a demoted admin is denied."""
        portal = portal_world.portal
        stale = portal_world.partner_billing
        assert portal.decide(stale, Permission.PURCHASE, portal_world.partner.id)
        portal.assign_roles(portal_world.partner_admin, stale.id, admin_role=None)
        assert not portal.decide(stale, Permission.PURCHASE, portal_world.partner.id)

    def test_the_audit_trail_of_the_whole_story_verifies(self, portal_world: World) -> None:
        """After registrations, creations and a denial, the chain verifies end to end."""
        portal = portal_world.portal
        with pytest.raises(Forbidden):
            portal.remove_user(portal_world.customer_user, portal_world.customer_admin.id)
        count = portal.verify_audit_trail()
        assert count == len(snapshot(portal.store).audit) >= 6


class ChecksContract(_Base):
    """Every store runs a table's own checks (``Table.validate``) before a write, so that a
    row the domain would refuse is refused by every store alike, naming the field."""

    @staticmethod
    def _smuggled(count: object) -> Subscription:
        """A subscription whose licence count skipped the constructor's validation."""
        sample = next(s for s in TABLE_SAMPLES if s.table is SUBSCRIPTIONS)
        row: Subscription = sample.make(0)
        object.__setattr__(row, "licenses", count)  # bypass the frozen class, as a bug might
        return row

    @pytest.mark.parametrize("count", [0, -1, 1_000_001, True, 2.5, "25", 2**63])
    def test_a_subscription_with_a_bad_count_is_refused_on_add_and_update(
        self, store: Store, count: object
    ) -> None:
        """``add`` and ``update`` refuse the row with ``ValidationError("licenses")``, and
        nothing is written."""
        good = next(s for s in TABLE_SAMPLES if s.table is SUBSCRIPTIONS).make(0)
        with store.unit_of_work() as uow:
            with pytest.raises(ValidationError) as added:
                uow.subscriptions.add(self._smuggled(count))
            assert added.value.field == "licenses"
            uow.subscriptions.add(good)
            uow.commit()
        bumped = attrs.evolve(good, version=2)
        object.__setattr__(bumped, "licenses", count)
        with store.unit_of_work() as uow:
            with pytest.raises(ValidationError) as updated:
                uow.subscriptions.update(bumped)
            assert updated.value.field == "licenses"
        assert _get(store, SUBSCRIPTIONS, good.id) == good


def _lookup_state(store: Store, sample: TableSample[Any], rows: list[Any]) -> dict[Any, Any]:
    """find and count of every lookup value any of *rows* has, as the store answers."""
    table = sample.table
    out: dict[Any, Any] = {}
    with store.unit_of_work(write=False) as uow:
        repo = uow.repository(table)
        for group in table.lookups():
            for r in rows:
                where = {c: table.value(r, c) for c in group}
                if any(v is None for v in where.values()):
                    continue
                key = (group, tuple(where.values()))
                out[key] = ([x.id for x in repo.find(**where)], repo.count(**where))
        out["get"] = {r.id: repo.get(r.id) for r in rows}
    return out


def _expected_state(
    sample: TableSample[Any], stored: list[Any], probe: list[Any]
) -> dict[Any, Any]:
    table = sample.table
    out: dict[Any, Any] = {}
    for group in table.lookups():
        for r in probe:
            where = {c: table.value(r, c) for c in group}
            if any(v is None for v in where.values()):
                continue
            hits = sorted(
                (x for x in stored if all(table.value(x, c) == where[c] for c in group)),
                key=lambda x: x.id,
            )
            out[(group, tuple(where.values()))] = ([x.id for x in hits], len(hits))
    by_id = {x.id: x for x in stored}
    out["get"] = {r.id: by_id.get(r.id) for r in probe}
    return out


class WriteIntegrityContract(_Base):
    """What a unit of work leaves behind: a rollback undoes every kind of write with its
    lookups, a refused write leaves nothing for a later commit, lookups follow updates and
    removals, versions hold for removals too, values no store keeps are refused, and a unit
    of work that is over answers nothing (each test here catches a store broken that way
    that the rest of the contract let through)."""

    # -- unique keys among the writes of one unit of work -----------------------------------

    @staticmethod
    def _holders(sample: TableSample[Any], group: tuple[str, ...]) -> tuple[Any, Any]:
        """Two rows of *sample* whose values of *group* are all set (NULLs never clash)."""
        rows = [
            r
            for r in (sample.make(n) for n in range(16))
            if all(sample.table.value(r, c) is not None for c in group)
        ]
        return rows[0], rows[1]

    def test_a_unique_key_added_in_a_unit_of_work_is_held_within_it(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """A row added and not committed yet holds its unique values: another row with the
        same values, added in the same unit of work, is a ``Conflict``, and the commit keeps
        the first row only (checking only what was committed before lets both in)."""
        for group in sample.table.unique:
            first, other = self._holders(sample, group)
            twin = sample.twin(group, first, other)
            with store.unit_of_work() as uow:
                repo = uow.repository(sample.table)
                repo.add(first)
                with pytest.raises(Conflict):
                    repo.add(twin)
                uow.commit()
            assert _get(store, sample.table, first.id) == first
            assert _get(store, sample.table, twin.id) is None
            _each_row(store, sample, "remove", [first])

    def test_a_unique_key_removed_in_a_unit_of_work_is_free_within_it(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """A row removed in a unit of work gives up its unique values at once: another row
        may take them in the same unit of work (no ``Conflict`` from the removed row)."""
        for group in sample.table.unique:
            first, other = self._holders(sample, group)
            twin = sample.twin(group, first, other)
            _add(store, sample, first)
            with store.unit_of_work() as uow:
                repo = uow.repository(sample.table)
                repo.remove(first)
                repo.add(twin)
                uow.commit()
            assert _get(store, sample.table, first.id) is None
            assert _get(store, sample.table, twin.id) == twin
            _each_row(store, sample, "remove", [twin])

    # -- rollback ------------------------------------------------------------------------------

    def test_rollback_undoes_adds_updates_and_removes_with_their_lookups(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """A unit of work that removes, updates and adds rows and does not commit leaves
        every get, find, count and unique key as before (index entries included)."""
        rows = [sample.make(n) for n in range(4)]
        _add(store, sample, *rows)
        fresh = sample.make(4)
        with store.unit_of_work() as uow:
            repo = uow.repository(sample.table)
            repo.remove(rows[0])
            repo.update(_bump(sample.change(rows[1])))
            repo.add(fresh)
        assert _lookup_state(store, sample, [*rows, fresh]) == _expected_state(
            sample, rows, [*rows, fresh]
        )
        for group in sample.table.unique:  # the removed row's unique values are held again
            if any(sample.table.value(rows[0], c) is None for c in group):
                continue
            other = next(
                r
                for r in (sample.make(n) for n in range(5, 16))
                if all(sample.table.value(r, c) is not None for c in group)
            )
            with pytest.raises(Conflict), store.unit_of_work() as uow:
                uow.repository(sample.table).add(sample.twin(group, rows[0], other))

    def test_rollback_of_changed_lookup_columns_restores_the_old_keys(self, store: Store) -> None:
        """An update that moves a user to another e-mail, company and role, rolled back:
        the user is found under the old values only, and the old e-mail is still taken."""
        user = _make_user(0)
        _add(store, USERS_SAMPLE, user)
        with store.unit_of_work() as uow:
            uow.users.update(
                _bump(user, email="moved@example.com", company_id="cmp_z", admin_role=None)
            )
        with store.unit_of_work(write=False) as uow:
            assert uow.users.find(email_key=email_key(user.email)) == [user]
            assert uow.users.count(email_key="moved@example.com") == 0
            assert uow.users.find(company_id="cmp_z") == []
            assert uow.users.find(company_id=user.company_id) == [user]
        _add(store, USERS_SAMPLE, attrs.evolve(_make_user(1), email="moved@example.com"))
        with pytest.raises(Conflict), store.unit_of_work() as uow:
            uow.users.add(attrs.evolve(_make_user(2), email=user.email.upper()))

    def test_several_writes_to_one_row_roll_back_to_the_committed_row(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """Update, update again, then remove one row in one unit of work; roll back: the row
        is as committed. Also add-update-remove of a new row leaves nothing."""
        row, new = sample.make(0), sample.make(1)
        _add(store, sample, row)
        with store.unit_of_work() as uow:
            repo = uow.repository(sample.table)
            v2 = _bump(sample.change(row))
            repo.update(v2)
            v3 = _bump(v2)
            repo.update(v3)
            repo.remove(v3)
            repo.add(new)
            repo.update(_bump(sample.change(new)))
            uow.rollback()
        assert _get(store, sample.table, row.id) == row
        assert _get(store, sample.table, new.id) is None
        assert _lookup_state(store, sample, [row, new]) == _expected_state(
            sample, [row], [row, new]
        )

    # -- refused writes leave nothing ----------------------------------------------------------

    def test_a_refused_update_changes_nothing_and_the_unit_of_work_goes_on(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """An update refused for a unique clash is not kept by a later commit."""
        for group in sample.table.unique:
            rows = [sample.make(n) for n in range(16)]
            fit = [r for r in rows if all(sample.table.value(r, c) is not None for c in group)]
            holder, other = fit[0], fit[1]
            _add(store, sample, holder, other)
            with store.unit_of_work() as uow:
                with pytest.raises(Conflict):
                    uow.repository(sample.table).update(_bump(sample.twin(group, holder, other)))
                uow.commit()
            assert _get(store, sample.table, other.id) == other
            with store.unit_of_work() as uow:
                uow.repository(sample.table).remove(holder)
                uow.repository(sample.table).remove(other)
                uow.commit()

    def test_a_refused_audit_event_is_not_kept_by_a_later_commit(self, store: Store) -> None:
        events = _chain(("cmp_a", "cmp_a"), ("cmp_a", "cmp_a"))
        with store.unit_of_work() as uow:
            uow.append_audit(events[0])
            with pytest.raises(Conflict):
                uow.append_audit(_event(3, events[0].hash))
            uow.commit()
        with store.unit_of_work(write=False) as uow:
            assert uow.audit_events() == events[:1]
            assert uow.audit_head() == (1, events[0].hash)

    # -- versions ------------------------------------------------------------------------------

    def test_remove_refuses_a_newer_version(self, store: Store, sample: TableSample[Any]) -> None:
        row = sample.make(0)
        _add(store, sample, row)
        with pytest.raises(Conflict), store.unit_of_work() as uow:
            uow.repository(sample.table).remove(_bump(row))
        assert _get(store, sample.table, row.id) == row

    # -- lookups -------------------------------------------------------------------------------

    def test_find_and_count_take_the_columns_in_any_order(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        rows = [sample.make(n) for n in range(6)]
        _add(store, sample, *rows)
        table = sample.table
        with store.unit_of_work(write=False) as uow:
            repo = uow.repository(table)
            for group in table.lookups():
                if len(group) < 2:
                    continue
                where = {c: table.value(rows[1], c) for c in group}
                for order in itertools.permutations(group):
                    shuffled = {c: where[c] for c in order}
                    assert repo.find(**shuffled) == repo.find(**where), order
                    assert repo.count(**shuffled) == repo.count(**where), order

    def test_find_and_count_follow_updates_and_removals(
        self, store: Store, sample: TableSample[Any]
    ) -> None:
        """After an update (which may change looked-up columns) and a removal, every lookup
        answers from the rows as they are now."""
        rows = [sample.make(n) for n in range(6)]
        _add(store, sample, *rows)
        changed = _bump(sample.change(rows[2]))
        with store.unit_of_work() as uow:
            repo = uow.repository(sample.table)
            repo.update(changed)
            repo.remove(rows[3])
            uow.commit()
        now = [changed if r.id == changed.id else r for r in rows if r.id != rows[3].id]
        probe = [*rows, changed]
        assert _lookup_state(store, sample, probe) == _expected_state(sample, now, probe)

    def test_users_move_between_lookups_when_updated(self, store: Store) -> None:
        ga = AdminRole.GLOBAL_ADMIN
        a = attrs.evolve(_make_user(0), company_id="cmp_x", admin_role=ga)
        b = attrs.evolve(_make_user(1), company_id="cmp_x", admin_role=ga)
        _add(store, USERS_SAMPLE, a, b)
        moved = _bump(a, company_id="cmp_y", admin_role=None)
        with store.unit_of_work() as uow:
            uow.users.update(moved)
            uow.commit()
        with store.unit_of_work(write=False) as uow:
            assert uow.users.find(company_id="cmp_x") == [b]
            assert uow.users.count(company_id="cmp_x", admin_role=ga) == 1
            assert uow.users.find(company_id="cmp_y", admin_role=None) == [moved]
        with store.unit_of_work() as uow:
            uow.users.remove(b)
            uow.commit()
        with store.unit_of_work(write=False) as uow:
            assert uow.users.count(company_id="cmp_x") == 0
            assert uow.users.count(company_id="cmp_x", admin_role=ga) == 0

    def test_get_many_answers_many_keys(self, store: Store, sample: TableSample[Any]) -> None:
        rows = [sample.make(n) for n in range(16)]
        _add(store, sample, *rows)
        asked = [r.id for r in reversed(rows)] + ["nobody_1", rows[0].id, "nobody_2"]
        with store.unit_of_work(write=False) as uow:
            assert uow.repository(sample.table).get_many(asked) == {r.id: r for r in rows}

    # -- audit ---------------------------------------------------------------------------------

    def test_an_audit_event_not_in_utc_is_refused(self, store: Store) -> None:
        event = AuditEvent.chained(
            seq=1,
            prev_hash=GENESIS_HASH,
            at=datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            action="user.create",
            outcome="success",
            correlation_id="c",
        )
        with store.unit_of_work() as uow:
            with pytest.raises(ValidationError) as info:
                uow.append_audit(event)
            assert info.value.field == "at"
        with store.unit_of_work(write=False) as uow:
            assert uow.audit_events() == []

    def test_an_audit_event_with_text_no_store_keeps_is_refused(self, store: Store) -> None:
        event = _event(1, GENESIS_HASH)
        object.__setattr__(event, "action", "user.\x00create")
        with store.unit_of_work() as uow, pytest.raises(ValidationError):
            uow.append_audit(event)
        with store.unit_of_work(write=False) as uow:
            assert uow.audit_head() == (0, GENESIS_HASH)

    # -- values no store keeps -----------------------------------------------------------------

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("display_name", "a\x00b"),
            ("email", "x\ud800@e.example"),
            ("created_at", datetime(2024, 1, 1)),  # naive
            ("must_change_password", 1),
            ("admin_role", "global_admin"),
        ],
    )
    def test_a_user_with_a_value_no_store_keeps_is_refused(
        self, store: Store, field: str, value: object
    ) -> None:
        good = _make_user(0)
        bad = _make_user(1)
        object.__setattr__(bad, field, value)
        _add(store, USERS_SAMPLE, good)
        bumped = _bump(good)
        object.__setattr__(bumped, field, value)
        with store.unit_of_work() as uow:
            with pytest.raises(ValidationError):
                uow.users.add(bad)
            with pytest.raises(ValidationError):
                uow.users.update(bumped)
            uow.commit()
        assert _get(store, USERS, bad.id) is None
        assert _get(store, USERS, good.id) == good

    def test_a_link_whose_uses_no_store_keeps_is_refused(self, store: Store) -> None:
        big = _make_link(0)
        object.__setattr__(big, "uses", 2**63)
        over = _make_link(1)  # max_uses 5
        object.__setattr__(over, "uses", 6)
        with store.unit_of_work() as uow:
            with pytest.raises(ValidationError):
                uow.links.add(big)
            with pytest.raises(ValidationError) as info:
                uow.links.add(over)
            assert info.value.field == "max_uses"
        assert _get(store, LINKS, big.id) is None

    @pytest.mark.parametrize(
        ("make", "table", "field", "value"),
        [
            (_make_delegation_offer, DELEGATION_OFFERS, "roles", 1),
            (_make_delegation_offer, DELEGATION_OFFERS, "roles", "global_admin"),
            (_make_delegation_offer, DELEGATION_OFFERS, "roles", frozenset({"global_admin"})),
            (_make_company, COMPANIES, "contact", "office@company.example"),
            (_make_offer, OFFERS, "lines", (("EXCHANGE", 5),)),
        ],
        ids=["roles-int", "roles-text", "roles-of-text", "contact-text", "lines-of-tuples"],
    )
    def test_a_structured_value_of_the_wrong_shape_is_refused(
        self, store: Store, make: Callable[[int], Any], table: Table[Any], field: str, value: object
    ) -> None:
        """A value kept as JSON (a set of roles, a contact, offer lines) must be what its
        type says all the way down, or it could be written and never read back: one of
        another shape, on an object set up around its class's checks, is a
        ``ValidationError`` (on ``"store"``, or the field), on ``add`` and on ``update``."""
        good = make(0)
        bad = make(1)
        object.__setattr__(bad, field, value)
        with store.unit_of_work() as uow:
            uow.repository(table).add(good)
            uow.commit()
        bumped = _bump(good)
        object.__setattr__(bumped, field, value)
        with store.unit_of_work() as uow:
            repo = uow.repository(table)
            with pytest.raises(ValidationError) as added:
                repo.add(bad)
            with pytest.raises(ValidationError) as updated:
                repo.update(bumped)
            uow.commit()
        # The table's own rules come first, and may name the field.
        assert added.value.field == updated.value.field
        assert added.value.field in ("store", field)
        assert _get(store, table, bad.id) is None
        assert _get(store, table, good.id) == good

    def test_an_offer_without_lines_is_refused(self, store: Store) -> None:
        offer = _make_offer(0)
        object.__setattr__(offer, "lines", ())
        with store.unit_of_work() as uow, pytest.raises(ValidationError) as info:
            uow.purchase_offers.add(offer)
        assert info.value.field == "lines"
        assert _get(store, OFFERS, offer.id) is None

    # -- finished units of work ----------------------------------------------------------------

    def test_a_finished_unit_of_work_answers_nothing(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            uow.users.add(_make_user(0))
            uow.commit()
            with pytest.raises(PartnerKitError):  # committed: over, reads too
                uow.users.get(_make_user(0).id)
            with pytest.raises(PartnerKitError):
                uow.audit_head()
        with pytest.raises(PartnerKitError):
            uow.audit_head()
        if hasattr(uow, "search_customers"):
            with pytest.raises(PartnerKitError):
                uow.search_customers("cmp_p", "", 5)

    def test_a_read_only_unit_of_work_cannot_commit(self, store: Store) -> None:
        with store.unit_of_work(write=False) as uow, pytest.raises(PartnerKitError):
            uow.commit()

    def test_rollback_of_a_finished_unit_of_work_touches_no_other(self, store: Store) -> None:
        """``rollback`` of a unit of work whose block has ended does not undo the writes of
        the unit of work open now."""
        with store.unit_of_work() as old:
            pass
        with store.unit_of_work() as uow:
            uow.users.add(_make_user(0))
            old.rollback()
            uow.commit()
        assert _get(store, USERS, _make_user(0).id) == _make_user(0)

    def test_an_explicit_rollback_ends_the_unit_of_work(self, store: Store) -> None:
        """After ``rollback`` (SQLiteStore's behaviour) the unit of work refuses use."""
        with store.unit_of_work() as uow:
            uow.users.add(_make_user(0))
            uow.rollback()
            with pytest.raises(PartnerKitError):
                uow.users.add(_make_user(1))
        assert _get(store, USERS, _make_user(1).id) is None


class StoreContract(
    ChecksContract,
    WriteIntegrityContract,
    RepositoryContract,
    UsersContract,
    CompaniesContract,
    RelationsContract,
    UnitOfWorkContract,
    LaterChecksContract,
    AuditContract,
    AuditRangeContract,
    FindPageContract,
    RoundTripContract,
    ConcurrencyContract,
    PortalContract,
):
    """The whole contract. Subclass it as ``Test...`` and implement :meth:`make_store`
    (or override the ``store`` fixture)."""
