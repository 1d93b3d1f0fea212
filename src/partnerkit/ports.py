"""The ports: what the Portal needs from a store, as small ``typing.Protocol`` classes.

A store keeps *tables* of frozen domain objects. Each table is described once, here, by a
:class:`Table`: its key, its unique keys, the equality lookups it answers (each backed by an
index), and the columns computed from an object (such as the case-folded e-mail). Every store
implements the same small :class:`Repository` over every table, which keeps the three stores
identical in behaviour and lets a third-party store prove itself with one contract suite
(:mod:`partnerkit.testing.contract`).

Versioning: every object has a ``version``. ``add`` stores version 1, ``update`` stores an
object whose version is exactly one more than the stored one, ``remove`` deletes the stored
version it names. Anything else raises :class:`~partnerkit.errors.Conflict`: a concurrent
change won, and the caller may retry from a fresh read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import attrs

from partnerkit.audit import AuditEvent
from partnerkit.consent import Delegation, DelegationOffer
from partnerkit.directory import Company, User, email_key
from partnerkit.errors import ValidationError
from partnerkit.offers import (
    OfferLine,
    PurchaseOffer,
    Subscription,
    TrialInvitation,
    check_licenses,
)
from partnerkit.records import CustomerRelation, LinkRecord, RedemptionRecord
from partnerkit.support import Credential, ServiceRequest

__all__ = [
    "COMPANIES",
    "CREDENTIALS",
    "DELEGATIONS",
    "DELEGATION_OFFERS",
    "LINKS",
    "MAX_AUDIT_RANGE",
    "MAX_FIND_PAGE",
    "MAX_SEARCH_LIMIT",
    "OFFERS",
    "REDEMPTIONS",
    "RELATIONS",
    "SERVICE_REQUESTS",
    "SUBSCRIPTIONS",
    "TABLES",
    "TRIALS",
    "USERS",
    "AuditRanges",
    "Clock",
    "CustomerSearch",
    "EachFinder",
    "EachReader",
    "FindPages",
    "LaterChecks",
    "Repository",
    "Store",
    "Table",
    "UnitOfWork",
    "check_find_page",
    "never_stored",
]

T = TypeVar("T")


class Clock(Protocol):
    """A source of the current time: returns an aware UTC ``datetime``."""

    def __call__(self) -> datetime: ...


@attrs.frozen
class Table(Generic[T]):
    """How a kind of domain object is kept: its name, keys and lookups."""

    #: Table name (also the repository's attribute name on a unit of work).
    name: str
    #: The attrs class of the rows.
    cls: type[T]
    #: Human name of one row, for ``NotFound`` (``"user"``).
    noun: str
    #: Groups of columns whose values are unique together (the key ``id`` always is).
    unique: tuple[tuple[str, ...], ...] = ()
    #: Groups of columns that :meth:`Repository.find` may be asked about (each indexed).
    indexes: tuple[tuple[str, ...], ...] = ()
    #: The lookups the Portal lists a page at a time (``FindPages.find_page``): each has an
    #: index that ends in the key, so that a page is read in key order and no further,
    #: even where a longer index serves the lookup's equality.
    pages: tuple[tuple[str, ...], ...] = ()
    #: Columns computed from the object, such as a case-folded key.
    computed: Mapping[str, Callable[[Any], object]] = attrs.field(factory=dict)
    #: SQL ``CHECK`` constraints the SQL stores add, as a last line of defence.
    checks: tuple[str, ...] = ()
    #: The same rules in Python, which every store runs before a write (raising
    #: ``ValidationError`` naming the field), so that all stores refuse alike.
    validate: Callable[[Any], None] | None = None

    def lookups(self) -> tuple[tuple[str, ...], ...]:
        """Every column group that ``find`` and ``count`` answer."""
        return (*self.unique, *self.indexes)

    def value(self, obj: T, column: str) -> object:
        """Return the value of *column* (a field or a computed column) for *obj*."""
        fn = self.computed.get(column)
        return fn(obj) if fn is not None else getattr(obj, column)


COMPANIES: Table[Company] = Table(
    name="companies",
    cls=Company,
    noun="company",
    unique=(("domain",), ("advisor_id",)),
    indexes=(("kind",),),
    computed={"name_key": lambda c: c.name.casefold()},
)
USERS: Table[User] = Table(
    name="users",
    cls=User,
    noun="user",
    unique=(("email_key",),),
    indexes=(("company_id",), ("company_id", "admin_role")),
    pages=(("company_id",),),
    computed={"email_key": lambda u: email_key(u.email)},
)


def _valid_link_uses(record: LinkRecord) -> None:
    uses, max_uses = record.uses, record.max_uses
    if type(uses) is not int or uses < 0:
        raise ValidationError("uses", "must be a whole number, at least 0")
    if max_uses is not None and (type(max_uses) is not int or not max_uses >= 1 or uses > max_uses):
        raise ValidationError("max_uses", "must be a whole number, at least 1 and the uses")


def _valid_subscription(subscription: Subscription) -> None:
    check_licenses(subscription.licenses)


def _valid_offer(offer: PurchaseOffer) -> None:
    # Its lines are a JSON column, which SQL cannot CHECK: the count of each is checked here.
    lines = offer.lines
    if type(lines) is not tuple or not lines:
        raise ValidationError("lines", "must be a non-empty tuple of OfferLine")
    for line in lines:
        if type(line) is not OfferLine:
            raise ValidationError("lines", "must be a non-empty tuple of OfferLine")
        check_licenses(line.licenses, field=f"licenses[{line.sku}]")


LINKS: Table[LinkRecord] = Table(
    name="links",
    cls=LinkRecord,
    noun="link",
    indexes=(("partner_id",),),
    pages=(("partner_id",),),
    checks=("uses >= 0", "max_uses IS NULL OR (max_uses >= 1 AND uses <= max_uses)"),
    validate=_valid_link_uses,
)
REDEMPTIONS: Table[RedemptionRecord] = Table(
    name="redemptions",
    cls=RedemptionRecord,
    noun="redemption",
    unique=(("link_id", "customer_id"),),
    indexes=(("customer_id",),),
)
TRIALS: Table[TrialInvitation] = Table(
    name="trial_invitations",
    cls=TrialInvitation,
    noun="trial invitation",
    unique=(("link_id",),),
    indexes=(("partner_id",),),
)
OFFERS: Table[PurchaseOffer] = Table(
    name="purchase_offers",
    cls=PurchaseOffer,
    noun="purchase offer",
    unique=(("quote_id",), ("link_id",)),
    indexes=(("partner_id",),),
    pages=(("partner_id",),),
    validate=_valid_offer,
)
SUBSCRIPTIONS: Table[Subscription] = Table(
    name="subscriptions",
    cls=Subscription,
    noun="subscription",
    unique=(("customer_id", "sku"),),
    indexes=(("customer_id",), ("partner_id",)),
    # A customer's own list is not among them: it holds one subscription a service at most.
    pages=(("partner_id",),),
    checks=("licenses >= 1 AND licenses <= 1000000",),
    validate=_valid_subscription,
)
DELEGATION_OFFERS: Table[DelegationOffer] = Table(
    name="delegation_offers",
    cls=DelegationOffer,
    noun="delegation offer",
    indexes=(("partner_id",),),
)
DELEGATIONS: Table[Delegation] = Table(
    name="delegations",
    cls=Delegation,
    noun="delegation",
    indexes=(
        ("partner_id",),
        ("customer_id",),
        ("partner_id", "customer_id"),
        ("partner_id", "customer_id", "status"),
    ),
    pages=(("partner_id",), ("customer_id",)),
)
CREDENTIALS: Table[Credential] = Table(
    name="credentials",
    cls=Credential,
    noun="credential",
    # By their setter: a change of its roles voids the temporary passwords it set.
    indexes=(("company_id",), ("set_by",)),
)
SERVICE_REQUESTS: Table[ServiceRequest] = Table(
    name="service_requests",
    cls=ServiceRequest,
    noun="service request",
    indexes=(("customer_id",),),
    pages=(("customer_id",),),
)
RELATIONS: Table[CustomerRelation] = Table(
    name="customer_relations",
    cls=CustomerRelation,
    noun="customer relation",
    indexes=(
        ("partner_id",),
        ("customer_id",),
        ("partner_id", "name_key"),
        ("partner_id", "domain"),
    ),
)

#: Every table, in the order a store creates them (referenced tables first).
TABLES: tuple[Table[Any], ...] = (
    COMPANIES,
    USERS,
    LINKS,
    REDEMPTIONS,
    TRIALS,
    OFFERS,
    SUBSCRIPTIONS,
    DELEGATION_OFFERS,
    DELEGATIONS,
    CREDENTIALS,
    SERVICE_REQUESTS,
    RELATIONS,
)

#: The most customers one ``search_customers`` call returns.
MAX_SEARCH_LIMIT = 500
#: The most events one ``audit_range`` call returns.
MAX_AUDIT_RANGE = 1000
#: The most objects one ``find_page`` call returns.
MAX_FIND_PAGE = 1000


def never_stored(value: object) -> bool:
    """Whether *value* is text that no stored key or lookup value can equal: one with a NUL
    or a lone surrogate. Ids, keys and the values of lookups are validated text (no control
    characters, valid Unicode), and PostgreSQL and SQLite cannot even take such a parameter.
    A read by it finds nothing, on every store, as on ``MemoryStore``; the SQL stores answer
    so without asking the database, which would refuse the parameter."""
    if not issubclass(type(value), str):  # by its type: a __class__ property can claim str
        return False
    value = str.__str__(value)  # of a subclass, its text: none of its own methods run
    if "\x00" in value:
        return True
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_find_page(limit: object, after: object) -> str | None:
    """Judge the arguments of ``find_page`` as every store does, before anything is read:
    a ``ValidationError`` naming the first that is wrong, else *after* as plain text (of a
    ``str`` subclass, its text: none of its own methods judge the bound)."""
    if type(limit) is not int or not 1 <= limit <= MAX_FIND_PAGE:
        raise ValidationError("limit", f"must be a whole number from 1 to {MAX_FIND_PAGE}")
    if after is None:
        return None
    if not issubclass(type(after), str) or never_stored(after):
        raise ValidationError("after", "must be None or a key's text (no NUL, valid Unicode)")
    return str.__str__(after)


class Repository(Protocol[T]):
    """The operations a store offers on one table, inside a unit of work."""

    def get(self, ident: str) -> T | None:
        """Return the object with key *ident*, or ``None``."""

    def get_many(self, idents: Sequence[str]) -> dict[str, T]:
        """Return the objects among *idents* that exist, by key (one round trip)."""

    def add(self, obj: T) -> None:
        """Insert *obj* (version 1); ``Conflict`` if its key or a unique key is taken."""

    def update(self, obj: T) -> None:
        """Replace the stored object; ``Conflict`` unless *obj* is one version newer."""

    def remove(self, obj: T) -> None:
        """Delete the stored object; ``Conflict`` unless it has *obj*'s version."""

    def find(self, **where: object) -> list[T]:
        """Return the objects whose columns equal *where*, ordered by key.

        The set of columns must be one of the table's lookups; otherwise ``ValueError``.
        """

    def count(self, **where: object) -> int:
        """Return how many objects ``find(**where)`` would return."""


class UnitOfWork(Protocol):
    """One transaction: rolled back on exit unless :meth:`commit` was called.

    A unit of work may also offer ``search_customers``, the optional capability described
    by :class:`CustomerSearch`. It is not part of this protocol, so a store written without
    it keeps working: ``Portal.find_customers`` uses it when the unit of work has it, and
    otherwise :meth:`search_relations` followed by ``companies.get_many``.
    """

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

    def repository(self, table: Table[T]) -> Repository[T]:
        """Return the repository of *table* (``uow.users`` is ``uow.repository(USERS)``)."""

    def audit_head(self) -> tuple[int, str]:
        """Return ``(seq, hash)`` of the newest audit event, ``(0, GENESIS_HASH)`` if none."""

    def append_audit(self, event: AuditEvent) -> None:
        """Append *event*, which must follow the head; ``Conflict`` otherwise."""

    def audit_events(self, company_id: str | None = None) -> list[AuditEvent]:
        """Return events oldest first: all, or those by or on *company_id*."""

    def search_relations(
        self,
        partner_id: str,
        prefix: str,
        limit: int,
        after: tuple[str, str] | None = None,
        now: datetime | None = None,
    ) -> list[CustomerRelation]:
        """Return *partner_id*'s relations whose ``name_key`` or ``domain`` starts with *prefix*,
        among those listed at *now* (``relation.is_listed(now)``: the partner advises the
        customer, or holds a delegation of it that has not ended by *now*).

        *prefix* is already case-folded. Results are ordered by
        ``(relation.search_key(prefix), id)`` (the name when it matches, else the domain) and
        start after the cursor *after*, such a pair (one holding text no store keeps, a NUL
        or a lone surrogate, is a ``ValidationError`` on ``"after"``: no page gave it); at
        most *limit* of them. Each store answers from an index on ``(partner_id, name_key)``
        and one on ``(partner_id, domain)``, each read as one range: no sort of all matches,
        and no scan of other partners' relations.
        """

    def commit(self) -> None:
        """Make every change of this unit of work durable, atomically."""

    def rollback(self) -> None:
        """Discard every change of this unit of work."""

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class CustomerSearch(Protocol):
    """An optional capability of a unit of work: one page of a partner's customers.

    ``Portal.find_customers`` calls it when the unit of work has it (``getattr``, not this
    protocol: a store need not name it), so that a store can answer the page in one step.
    The built-in stores offer it (the SQL ones with one statement); a store without it, such
    as a third-party store written before it existed, is served by ``search_relations`` and
    ``companies.get_many``, with the same results.
    """

    def search_customers(
        self,
        partner_id: str,
        prefix: str,
        limit: int,
        after: tuple[str, str] | None = None,
        now: datetime | None = None,
    ) -> list[Company]:
        """Return the companies of ``search_relations(partner_id, prefix, limit, after, now)``.

        Exactly the companies of those relations, in the same order; a relation whose
        company is not stored is left out (the page may then hold fewer than *limit*).
        """


class AuditRanges(Protocol):
    """An optional capability of a unit of work: a bounded part of the audit trail, read in
    order from an index.

    ``Portal.audit_trail_page`` reads its pages with it, and ``Portal.verify_audit_trail``
    reads the chain with it a part at a time, so that neither holds more than one part of
    a long trail at once. The built-in stores offer it (the SQL ones read it from the
    indexes on ``(company_id, seq)`` and ``(actor_company_id, seq)``). A store without it,
    such as a third-party store written before it existed, is served by ``audit_events``
    with the same results, and the whole trail in memory.
    """

    def audit_range(
        self,
        company_id: str | None,
        limit: int,
        *,
        above: int | None = None,
        below: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEvent]:
        """Return the events of ``audit_events(company_id)`` whose ``seq`` is greater than
        *above* and less than *below* (``None``: no bound on that side): the *limit* oldest
        of them, oldest first, or with *newest_first* the *limit* newest, newest first.

        *limit* is a whole number from 1 to :data:`MAX_AUDIT_RANGE`, *above* and *below*
        ``None`` or whole numbers of 64 bits, *newest_first* a ``bool``; anything else is a
        ``ValidationError`` naming the argument, before anything is read. A *company_id*
        that is not text names no company: nothing is found, as by ``audit_events``.
        """


class FindPages(Protocol[T]):
    """An optional capability of a repository: a bounded part of ``find``, in key order.

    The Portal's lists (``list_users``, ``list_subscriptions``, ``list_delegations``,
    ``list_service_requests``) read a page with it when they are given a ``limit``: a
    partner advising a million subscriptions lists them a page at a time, without the
    store reading them all. The built-in stores offer it (the SQL ones read it from the
    lookup's index, whose last column is the key). A store without it is served by
    ``find``, with the same pages, and the whole list read each time.
    """

    def find_page(
        self, where: Mapping[str, object], limit: int, after: str | None = None
    ) -> list[T]:
        """Return the objects ``find(**where)`` returns whose key is greater than *after*
        (``None``: from the first), the *limit* first of them, in key order.

        *limit* is a whole number from 1 to :data:`MAX_FIND_PAGE`, *after* ``None`` or
        text that a key can be (no NUL, no lone surrogate); anything else is a
        ``ValidationError`` naming the argument, before anything is read. *where* is as
        for ``find``: one of the table's lookups, else ``ValueError``.
        """


class EachReader(Protocol):
    """An optional capability of a unit of work: several reads by key in one step.

    ``Portal.decide`` reads the actor and the company with it when the unit of work has it,
    so that a store with a network between it and its database (``PostgresStore``) answers
    a decision in one round trip. A store without it is read key by key, with the same
    results; the in-process stores do not offer it, as it would save them nothing.
    """

    def get_each(self, *keys: tuple[Table[Any], str]) -> list[Any]:
        """Return the object of each ``(table, id)`` (``None`` where there is none), in order,
        as ``uow.repository(table).get(id)`` would, read together."""


class EachFinder(Protocol):
    """An optional capability of a unit of work: several reads, by key or by lookup, in one step.

    ``Portal.redeem`` reads the link, its offer, an earlier redemption and the customer's
    subscriptions with it (and the actor and its company, given the actor as a ``User``)
    when the unit of work has it, so that ``PostgresStore`` answers them in one round trip.
    A unit of work without it is read with ``get_each`` if it has that, and ``find`` for
    the lookups, else read by read, with the same results. The in-process stores do not
    offer it, as it would save them nothing.
    """

    def find_each(self, *reads: tuple[Table[Any], str | Mapping[str, object]]) -> list[Any]:
        """Return the answer of each read, in order, read together: for ``(table, id)`` the
        object or ``None``, as ``uow.repository(table).get(id)`` would; for ``(table,
        where)`` the list ``uow.repository(table).find(**where)`` would return (``where``
        must be one of the table's lookups, else ``ValueError``)."""


class LaterChecks(Protocol):
    """An optional capability of a write unit of work: writes answered later.

    By the port's rule, ``add``, ``update`` and ``remove`` report a clash or a stale version
    as they return. After ``check_writes_later()``, ``add`` and ``update`` may return before
    the store has checked them: a write that fails raises its ``Conflict`` (or the error it
    meets) from a later call on the same unit of work, at the latest from ``commit``, and
    nothing of the unit of work is committed then. Reads after a write still see it.

    The Portal turns it on in every write unit of work when the unit of work has it: none of
    its use cases goes on after a ``Conflict``, it retries the whole unit of work. A store
    across a network (``PostgresStore``) then sends the writes with the next statement or the
    commit, instead of waiting for each one's answer; the in-process stores do not offer it,
    as it would save them nothing.
    """

    def check_writes_later(self) -> None:
        """Let this unit of work's ``add`` and ``update`` be checked by a later call."""


class Store(Protocol):
    """A persistence adapter: hands out units of work; safe to share between threads."""

    def unit_of_work(self, *, write: bool = True) -> UnitOfWork:
        """Begin a unit of work; *write* ones are serialised against each other."""

    def close(self) -> None:
        """Release connections and files."""
