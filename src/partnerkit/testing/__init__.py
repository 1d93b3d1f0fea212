"""The testing kit: what a portal developer needs to test code built on partnerkit.

- :class:`FakeClock`, a settable clock to hand to ``Portal(clock=...)``;
- :func:`build_world`, a small populated portal (a partner and a customer with their users);
- :func:`snapshot`, everything a store holds about companies, users and the audit trail, to
  show that a refused request changed nothing;
- :mod:`partnerkit.testing.strategies`, hypothesis strategies for the domain objects;
- :mod:`partnerkit.testing.contract`, the store contract suite (``StoreContract``);
- :mod:`partnerkit.testing.plugin`, a pytest plugin with the fixtures ``partnerkit_clock``,
  ``partnerkit_store``, ``partnerkit_portal`` and ``partnerkit_world``; installed with
  partnerkit, pytest loads it by itself.

Importing this package imports neither pytest nor hypothesis; the submodules that need them
import them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from partnerkit.audit import AuditEvent
from partnerkit.directory import Company, CompanyKind, ContactInfo, User
from partnerkit.errors import ValidationError
from partnerkit.offers import Catalog, Service, TrialTerms
from partnerkit.roles import AdminRole, PartnerAccess
from partnerkit.support import PasswordHasher

if TYPE_CHECKING:
    from partnerkit.portal import Portal
    from partnerkit.ports import Store

__all__ = [
    "DEFAULT_START",
    "FAST_HASHER",
    "FakeClock",
    "StoreSnapshot",
    "World",
    "build_world",
    "sample_catalog",
    "snapshot",
]

#: The time a :class:`FakeClock` shows until it is set or advanced.
DEFAULT_START = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)
#: scrypt with a tiny work factor: fast enough for tests, far too weak for production.
FAST_HASHER = PasswordHasher(n=2**8)


def sample_catalog() -> Catalog:
    """Two services: ``EXCHANGE`` (1 to 1,000 licences, a 30-day trial of 25) and
    ``INTUNE`` (no trial)."""
    return Catalog(
        [
            Service(
                sku="EXCHANGE",
                name="Exchange Online",
                min_licenses=1,
                max_licenses=1000,
                trial=TrialTerms(days=30, licenses=25),
            ),
            Service(sku="INTUNE", name="Intune", min_licenses=5, max_licenses=500),
        ]
    )


def _utc(value: object) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError("now", "must be an aware datetime")
    return value.astimezone(UTC)


@attrs.define(repr=False)
class FakeClock:
    """A clock for tests: shows one aware UTC time until it is set or advanced.

    >>> clock = FakeClock()
    >>> clock.advance(days=1) - DEFAULT_START
    datetime.timedelta(days=1)
    >>> clock() == DEFAULT_START + timedelta(days=1)
    True
    """

    _now: datetime = attrs.field(default=DEFAULT_START, converter=_utc)

    def __call__(self) -> datetime:
        """Return the current fake time (aware, UTC)."""
        return self._now

    def set(self, when: datetime) -> None:
        """Move the clock to *when* (aware; kept in UTC); it may go back."""
        self._now = _utc(when)

    def advance(self, delta: timedelta | None = None, /, **units: float) -> datetime:
        """Move the clock forward by *delta* or by ``timedelta(**units)``; return the new time.

        Raises:
            ValidationError: the step is negative (use :meth:`set` to go back).
        """
        step = (delta or timedelta()) + timedelta(**units)
        if step < timedelta():
            raise ValidationError("delta", "a clock advances; use set() to go back")
        self._now += step
        return self._now

    def __repr__(self) -> str:
        return f"<FakeClock {self._now.isoformat()}>"


@attrs.frozen
class StoreSnapshot:
    """What a store holds about companies, users and the audit trail, at one moment."""

    #: Every company, ordered by id.
    companies: tuple[Company, ...]
    #: Every user of those companies, ordered by id.
    users: tuple[User, ...]
    #: The whole audit trail, oldest first.
    audit: tuple[AuditEvent, ...]
    #: ``(seq, hash)`` of the newest event.
    audit_head: tuple[int, str]


def snapshot(store: Store) -> StoreSnapshot:
    """Read everything *store* holds about companies, users and the audit trail.

    Only the store's own operations are used, so this works on any store that passes the
    contract suite. Users are found through their companies.
    """
    with store.unit_of_work(write=False) as uow:
        companies = sorted(
            (c for kind in CompanyKind for c in uow.companies.find(kind=kind)),
            key=lambda c: c.id,
        )
        users = sorted(
            (u for c in companies for u in uow.users.find(company_id=c.id)), key=lambda u: u.id
        )
        return StoreSnapshot(
            companies=tuple(companies),
            users=tuple(users),
            audit=tuple(uow.audit_events()),
            audit_head=uow.audit_head(),
        )


@attrs.frozen
class World:
    """A small populated portal: one partner, one customer, and their people.

    The user objects are as they were created; re-read them from the store after changing
    them.
    """

    portal: Portal
    #: A partner company.
    partner: Company
    #: The partner's first user: global admin with FULL partner access.
    partner_admin: User
    #: A partner user without admin role, with LIMITED partner access.
    partner_agent: User
    #: A billing admin of the partner, without partner access.
    partner_billing: User
    #: A customer company.
    customer: Company
    #: The customer's first user: its global admin.
    customer_admin: User
    #: A customer user without admin role.
    customer_user: User


def build_world(portal: Portal) -> World:
    """Register the companies and users of a :class:`World` through *portal*'s use cases."""
    partner, partner_admin = portal.register_partner(
        name="Contoso Partners",
        contact=ContactInfo(email="hello@contoso.example", phone="+1 425 555 0100"),
        admin_email="ada@contoso.example",
        admin_name="Ada Admin",
    )
    agent = portal.create_user(
        partner_admin,
        email="lee@contoso.example",
        display_name="Lee Agent",
        partner_access=PartnerAccess.LIMITED,
    )
    billing = portal.create_user(
        partner_admin,
        email="bo@contoso.example",
        display_name="Bo Billing",
        admin_role=AdminRole.BILLING_ADMIN,
    )
    customer, customer_admin = portal.register_customer(
        name="Fabrikam",
        domain="fabrikam.example",
        admin_email="cy@fabrikam.example",
        admin_name="Cy Customer",
    )
    customer_user = portal.create_user(
        customer_admin, email="dee@fabrikam.example", display_name="Dee User"
    )
    return World(
        portal=portal,
        partner=partner,
        partner_admin=partner_admin,
        partner_agent=agent,
        partner_billing=billing,
        customer=customer,
        customer_admin=customer_admin,
        customer_user=customer_user,
    )
