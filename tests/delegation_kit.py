"""A cast of companies and users for the delegation and support tests, built through a Portal.

Not a test module: the delegation, tenancy, support and concurrency tests import it. Everything
here goes through the Portal's own use cases on a real store, so what the tests see is what a
portal developer's code would see.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import attrs

from partnerkit import (
    AdminRole,
    Catalog,
    Company,
    ContactInfo,
    Delegation,
    PartnerAccess,
    PasswordHasher,
    Portal,
    User,
)
from partnerkit.ports import Store
from partnerkit.testing import FakeClock

#: scrypt with the production algorithm and cheaper parameters, to keep the suite fast.
FAST_HASHER = PasswordHasher(n=2**10)


def make_portal(
    store: Store, clock: FakeClock | None = None, catalog: Catalog | None = None
) -> Portal:
    """Return a Portal on *store* with a fake clock and the fast hasher."""
    return Portal(
        store=store,
        catalog=catalog,
        clock=clock if clock is not None else FakeClock(),
        base_url="https://portal.example/join",
        password_hasher=FAST_HASHER,
    )


@attrs.frozen
class PartnerCast:
    """A partner company and one user of each kind the delegation rules tell apart."""

    company: Company
    #: Global admin with FULL partner access (the partner's first user).
    admin: User
    #: FULL partner access, no admin role.
    full: User
    #: LIMITED partner access, no admin role.
    limited: User
    #: Neither partner access nor an admin role.
    plain: User
    #: Billing admin of the partner, without partner access.
    billing: User


@attrs.frozen
class CustomerCast:
    """A customer company with one user per admin role and one without."""

    company: Company
    #: The customer's first user, its global admin.
    admin: User
    #: Users by their admin role; the key ``None`` is a user without an admin role.
    by_role: dict[AdminRole | None, User]

    @property
    def users(self) -> list[User]:
        """Every user of the customer."""
        return list(self.by_role.values())


def add_partner(portal: Portal, name: str, slug: str) -> PartnerCast:
    """Register a partner called *name* (e-mails at ``slug.example``) with its users."""
    company, admin = portal.register_partner(
        name=name,
        contact=ContactInfo(email=f"hello@{slug}.example"),
        admin_email=f"admin@{slug}.example",
    )

    def user(local: str, role: AdminRole | None, access: PartnerAccess | None) -> User:
        return portal.create_user(
            admin,
            email=f"{local}@{slug}.example",
            display_name=local.title(),
            admin_role=role,
            partner_access=access,
        )

    return PartnerCast(
        company=company,
        admin=admin,
        full=user("full", None, PartnerAccess.FULL),
        limited=user("limited", None, PartnerAccess.LIMITED),
        plain=user("plain", None, None),
        billing=user("billing", AdminRole.BILLING_ADMIN, None),
    )


def add_customer(
    portal: Portal,
    name: str,
    domain: str,
    roles: Iterable[AdminRole | None] = (*AdminRole, None),
) -> CustomerCast:
    """Register a customer with its global admin and one user for each of *roles*."""
    company, admin = portal.register_customer(
        name=name, domain=domain, admin_email=f"admin@{domain}"
    )
    by_role: dict[AdminRole | None, User] = {}
    for role in roles:
        if role is AdminRole.GLOBAL_ADMIN:
            by_role[role] = admin
            continue
        local = role.value.replace("_", "-") if role is not None else "user"
        by_role[role] = portal.create_user(
            admin, email=f"{local}@{domain}", display_name=local.title(), admin_role=role
        )
    return CustomerCast(company=company, admin=admin, by_role=by_role)


def consent(
    portal: Portal,
    offered_by: User,
    customer: CustomerCast,
    roles: Iterable[AdminRole] | None = None,
    duration: timedelta | None = None,
    accept: bool | None = True,
) -> Delegation:
    """Offer delegated administration through a standalone link and redeem it as the customer's
    global admin: consent now (``True``), decline (``False``) or leave it pending (``None``)."""
    url = portal.offer_delegated_admin(
        offered_by, roles=None if roles is None else frozenset(roles), duration=duration
    )
    delegation = portal.redeem(url, customer.admin, accept_delegated_admin=accept).delegation
    assert delegation is not None
    return delegation
