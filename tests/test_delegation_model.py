"""Every delegated decision agrees with a reference model written from SPEC, exhaustively.

The model below is plain data copied from SPEC (F2's role table, section 3's permission list and
delegation rules, F2's target limits), written with the enum *values* as strings and without
importing anything from ``partnerkit.roles`` but the enums themselves. The world is built
through the Portal's own use cases on a real store (``MemoryStore`` and a SQLite file): one
partner with a user for every (own admin role, partner access) pair, and one customer for every
(delegation roles, delegation status) pair, each customer with a user in every admin role and
one without. Every question goes through ``Portal.decide``.

The axes: partner access FULL / LIMITED / none (with and without the partner's own global admin
role) x delegation roles (all five, {PASSWORD_ADMIN}, {BILLING_ADMIN},
{USER_MANAGEMENT_ADMIN, SERVICE_ADMIN}) x delegation status (none, pending, active,
active-but-expired-by-clock, declined, revoked, ended, lapsed pending) x target (none, a
customer user in each admin role or none, a privileged partner user) x every Permission.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from delegation_kit import CustomerCast, add_customer, make_portal
from partnerkit import (
    AdminRole,
    ContactInfo,
    DelegationStatus,
    PartnerAccess,
    Permission,
    Portal,
    User,
)
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FakeClock
from spec_model import (
    ALL_ROLES,
    PARTNER_SIDE,
    Who,
    model_customer,
    model_own_partner,
)

# -- the world, built through the Portal ----------------------------------------------------

ROLE_SETS: dict[str, frozenset[str]] = {
    "all-five": ALL_ROLES,
    "password": frozenset({"password_admin"}),
    "billing": frozenset({"billing_admin"}),
    "users-and-services": frozenset({"user_management_admin", "service_admin"}),
}
STATUSES = ("none", "pending", "active", "expired", "declined", "revoked", "ended", "lapsed")
#: What ``list_delegations`` must report for each world (as of now).
REPORTED = {
    "pending": DelegationStatus.PENDING,
    "active": DelegationStatus.ACTIVE,
    "expired": DelegationStatus.EXPIRED,
    "declined": DelegationStatus.DECLINED,
    "revoked": DelegationStatus.REVOKED,
    "ended": DelegationStatus.ENDED,
    "lapsed": DelegationStatus.EXPIRED,
}
ACTOR_KINDS = list(itertools.product((None, "global_admin"), ("full", "limited", None)))
CUSTOMER_TARGET_ROLES: tuple[str | None, ...] = (None, *sorted(ALL_ROLES))


def _roles(names: frozenset[str]) -> frozenset[AdminRole]:
    return frozenset(AdminRole(name) for name in names)


@attrs.frozen
class World:
    """The populated portal and how the model names its people."""

    portal: Portal
    partner_id: str
    #: (own role, access) -> the partner user
    actors: dict[tuple[str | None, str | None], User]
    #: partner users who are only ever targets: "privileged" (FULL, no role), "colleague"
    partner_targets: dict[str, User]
    #: (role set name, status) -> customer
    customers: dict[tuple[str, str], CustomerCast]


def build_world(portal: Portal, clock: FakeClock) -> World:
    """Populate *portal*: a partner, its users, and a customer per (roles, status) world."""
    partner, admin = portal.register_partner(
        name="Model Partners",
        contact=ContactInfo(email="hello@model-partners.example"),
        admin_email="admin@model-partners.example",
    )
    actors: dict[tuple[str | None, str | None], User] = {("global_admin", "full"): admin}
    for role, access in ACTOR_KINDS:
        if (role, access) in actors:
            continue
        actors[role, access] = portal.create_user(
            admin,
            email=f"{role or 'norole'}.{access or 'noaccess'}@model-partners.example",
            display_name=f"{role or 'no role'} {access or 'no access'}",
            admin_role=None if role is None else AdminRole(role),
            partner_access=None if access is None else PartnerAccess(access),
        )
    partner_targets = {
        "privileged": portal.create_user(
            admin,
            email="privileged@model-partners.example",
            display_name="Privileged",
            partner_access=PartnerAccess.FULL,
        ),
        "colleague": portal.create_user(
            admin, email="colleague@model-partners.example", display_name="Colleague"
        ),
    }
    customers = {
        (set_name, status): add_customer(
            portal, f"{set_name} {status}", f"{set_name}-{status}.example"
        )
        for set_name in ROLE_SETS
        for status in STATUSES
    }

    # Offers that will lapse: pending from the start, 90 days pass before anyone answers.
    for set_name, roles in ROLE_SETS.items():
        url = portal.offer_delegated_admin(admin, roles=_roles(roles))
        portal.redeem(url, customers[set_name, "lapsed"].admin)
    clock.advance(days=91)

    for set_name, roles in ROLE_SETS.items():
        url = portal.offer_delegated_admin(admin, roles=_roles(roles))
        short = portal.offer_delegated_admin(admin, roles=_roles(roles), duration=timedelta(days=1))

        def redeem(status: str, accept: bool | None, link: str = url) -> tuple[Any, Any]:
            cust = customers[set_name, status]  # noqa: B023 - used at once, inside the loop
            result = portal.redeem(link, cust.admin, accept_delegated_admin=accept)
            return cust, result.delegation

        redeem("pending", None)
        cust, pending = redeem("active", None)
        portal.accept_delegation(cust.admin, pending.id)
        redeem("expired", True, short)
        cust, pending = redeem("declined", None)
        portal.decline_delegation(cust.admin, pending.id)
        cust, active = redeem("revoked", True)
        portal.revoke_delegation(cust.admin, active.id)
        _, active = redeem("ended", True)
        portal.end_delegation(admin, active.id)
    clock.advance(days=2)  # the one-day delegations are past their end date now
    return World(portal, partner.id, actors, partner_targets, customers)


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """The model world on a MemoryStore and on a SQLite file."""
    clock = FakeClock()
    if request.param == "memory":
        store: Any = MemoryStore()
    else:
        store = SQLiteStore(Path(tmp_path_factory.mktemp("model")) / "model.db")
    portal = make_portal(store, clock)
    yield build_world(portal, clock)
    store.close()


def _who(name: str, user: User, company: str) -> Who:
    return Who(
        name=name,
        company=company,
        role=None if user.admin_role is None else user.admin_role.value,
        access=None if user.partner_access is None else user.partner_access.value,
    )


def _mismatches(found: list[str]) -> str:
    head = "\n  ".join(found[:25])
    return f"{len(found)} decisions disagree with the model, e.g.:\n  {head}"


# -- the tests --------------------------------------------------------------------------------


def test_the_worlds_stand_where_the_model_puts_them(world: World) -> None:
    """Each customer's delegation is reported in the status its world names, and the one-day
    delegation is still stored ACTIVE: only the clock says it expired."""
    portal = world.portal
    for (set_name, status), cust in world.customers.items():
        listed = portal.list_delegations(cust.admin)
        if status == "none":
            assert listed == []
            continue
        assert [d.status for d in listed] == [REPORTED[status]], (set_name, status)
        assert listed[0].roles == _roles(ROLE_SETS[set_name])
    stored = world.customers["password", "expired"]
    with portal.store.unit_of_work(write=False) as uow:
        [raw] = uow.delegations.find(customer_id=stored.company.id)
    assert raw.status is DelegationStatus.ACTIVE


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("set_name", list(ROLE_SETS))
def test_delegated_decisions_on_a_customer_agree_with_the_model(
    world: World, set_name: str, status: str
) -> None:
    """For every partner user, target and permission, ``Portal.decide`` on a customer whose
    delegation grants these roles and stands at this status answers what the model says."""
    cust = world.customers[set_name, status]
    roles = ROLE_SETS[set_name]
    privileged = world.partner_targets["privileged"]
    targets: list[tuple[Who | None, str | None]] = [(None, None)]
    targets += [
        (_who(f"customer-{r}", cust.by_role[_role(r)], "customer"), cust.by_role[_role(r)].id)
        for r in CUSTOMER_TARGET_ROLES
    ]
    targets.append((_who("privileged", privileged, "partner"), privileged.id))
    wrong: list[str] = []
    for (own_role, access), user in world.actors.items():
        actor = _who(f"actor-{own_role}-{access}", user, "partner")
        for (target, target_id), permission in itertools.product(targets, Permission):
            expected = model_customer(actor, permission.value, roles, status, target)
            decision = world.portal.decide(user, permission, cust.company.id, target_id)
            if bool(decision) != expected:
                wrong.append(
                    f"{actor.name} {permission.value} on {target.name if target else '-'}: "
                    f"model {expected}, portal {decision!r}"
                )
    assert not wrong, _mismatches(wrong)


def test_decisions_in_the_partners_own_company_agree_with_the_model(world: World) -> None:
    """In its own partner company a user's rights come from its own admin role and its partner
    access; privileged colleagues are reset only by a global admin; nobody resets itself."""
    partner_people = {**world.partner_targets}
    wrong: list[str] = []
    for (own_role, access), user in world.actors.items():
        actor = _who(f"actor-{own_role}-{access}", user, "partner")
        targets: list[tuple[Who | None, str | None]] = [(None, None), (actor, user.id)]
        targets += [(_who(n, u, "partner"), u.id) for n, u in partner_people.items()]
        some_customer = world.customers["all-five", "active"].admin
        targets.append((_who("customer-admin", some_customer, "customer"), some_customer.id))
        for (target, target_id), permission in itertools.product(targets, Permission):
            expected = model_own_partner(actor, permission.value, target)
            decision = world.portal.decide(user, permission, world.partner_id, target_id)
            if bool(decision) != expected:
                wrong.append(
                    f"{actor.name} {permission.value} on {target.name if target else '-'}: "
                    f"model {expected}, portal {decision!r}"
                )
    assert not wrong, _mismatches(wrong)


def _role(value: str | None) -> AdminRole | None:
    return None if value is None else AdminRole(value)


def test_the_model_never_lets_a_delegate_manage_relationships_or_use_partner_rights() -> None:
    """A guard on the model: whatever the inputs, it never lets a delegate manage the customer's
    partner relationships or use a partner-side permission in the customer."""
    actor = Who("a", "partner", "global_admin", "full")
    for status, permission in itertools.product(
        STATUSES, [*PARTNER_SIDE, "manage_partner_relationships"]
    ):
        assert not model_customer(actor, permission, ALL_ROLES, status, None)
    assert model_customer(actor, "edit_profile", ALL_ROLES, "active", None)
