"""Delegated administration through the Portal's use cases (SPEC F5, section 3).

A partner offers delegated administration through a standalone link; a global admin of the
customer consents (or declines); the customer revokes, the partner ends; the end date and the
90-day lapse are judged by the clock. Each test drives a real Portal on a ``MemoryStore``.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from delegation_kit import (
    CustomerCast,
    PartnerCast,
    add_customer,
    add_partner,
    consent,
    make_portal,
)
from partnerkit import (
    AdminRole,
    AuditEvent,
    DelegationStatus,
    Forbidden,
    LinkKind,
    NotFound,
    PartnerAccess,
    Permission,
    Portal,
    ValidationError,
)
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing import FakeClock

ALL = frozenset(AdminRole)


@attrs.frozen
class Scene:
    """A portal with a partner and two customers."""

    portal: Portal
    clock: FakeClock
    partner: PartnerCast
    customer: CustomerCast
    other: CustomerCast


@pytest.fixture
def scene() -> Scene:
    """A partner (global admin, FULL, LIMITED, plain and billing users) and two customers."""
    clock = FakeClock()
    portal = make_portal(MemoryStore(), clock)
    return Scene(
        portal=portal,
        clock=clock,
        partner=add_partner(portal, "Contoso Partners", "contoso"),
        customer=add_customer(portal, "Fabrikam", "fabrikam.example"),
        other=add_customer(portal, "Northwind", "northwind.example"),
    )


def _events(scene: Scene, action: str) -> list[AuditEvent]:
    with scene.portal.store.unit_of_work(write=False) as uow:
        return [e for e in uow.audit_events() if e.action == action]


def _user(scene: Scene, role: AdminRole | None) -> str:
    return scene.customer.by_role[role].id


# -- offering ---------------------------------------------------------------------------------


def test_a_standalone_offer_is_a_delegated_admin_link_pointing_at_fixed_terms(
    scene: Scene,
) -> None:
    """The link is of kind DELEGATED_ADMIN, its target is the offer; redeemed, it yields a
    delegation with exactly the offered roles and duration (all five and none by default)."""
    portal, partner = scene.portal, scene.partner
    url = portal.offer_delegated_admin(partner.admin)
    claims = portal.inspect_link(url)
    assert claims.kind is LinkKind.DELEGATED_ADMIN
    assert claims.includes_delegated_admin
    assert claims.advisor_id == partner.company.advisor_id
    delegation = portal.redeem(url, scene.customer.admin).delegation
    assert delegation is not None
    assert delegation.offer_id == claims.target
    assert delegation.status is DelegationStatus.PENDING
    assert (delegation.roles, delegation.duration, delegation.ends_at) == (ALL, None, None)
    assert (delegation.partner_id, delegation.customer_id) == (
        partner.company.id,
        scene.customer.company.id,
    )
    assert delegation.offered_by == partner.admin.id


def test_one_link_serves_many_customers_each_with_its_own_delegation(scene: Scene) -> None:
    """The link is not bound to a customer: two customers redeem it and get two delegations
    with the same terms."""
    url = scene.portal.offer_delegated_admin(
        scene.partner.limited, roles={AdminRole.PASSWORD_ADMIN}, duration=timedelta(days=30)
    )
    first = scene.portal.redeem(url, scene.customer.admin).delegation
    second = scene.portal.redeem(url, scene.other.admin).delegation
    assert first is not None
    assert second is not None
    assert first.id != second.id
    assert first.offer_id == second.offer_id
    assert first.roles == second.roles == {AdminRole.PASSWORD_ADMIN}


@pytest.mark.parametrize(
    ("roles", "duration", "field"),
    [
        (set(), None, "roles"),
        (["global_admin"], None, "roles"),
        ("global_admin", None, "roles"),
        (42, None, "roles"),
        (None, timedelta(0), "duration"),
        (None, timedelta(hours=23, minutes=59), "duration"),
        (None, timedelta(days=731), "duration"),
        (None, 30, "duration"),
        (None, -timedelta(days=2), "duration"),
    ],
)
def test_offer_terms_outside_the_rules_are_refused(
    scene: Scene, roles: object, duration: object, field: str
) -> None:
    """Roles must be a non-empty set of AdminRole, the duration 1 to 730 days: anything else is a
    ``ValidationError`` naming the field, and no link is issued."""
    with pytest.raises(ValidationError) as caught:
        scene.portal.offer_delegated_admin(
            scene.partner.admin,
            roles=roles,  # type: ignore[arg-type]
            duration=duration,  # type: ignore[arg-type]
        )
    assert caught.value.field == field
    assert [e.outcome for e in _events(scene, "link.offer_delegated_admin")] == ["failed"]


@pytest.mark.parametrize("days", [1, 730])
def test_the_duration_bounds_themselves_are_accepted(scene: Scene, days: int) -> None:
    """One day and 730 days are both valid end dates; the end date is acceptance plus it."""
    delegation = consent(
        scene.portal, scene.partner.admin, scene.customer, duration=timedelta(days=days)
    )
    assert delegation.ends_at == scene.clock() + timedelta(days=days)


def test_a_single_role_may_be_offered_on_its_own(scene: Scene) -> None:
    """An AdminRole alone is read as the set of that one role."""
    url = scene.portal.offer_delegated_admin(scene.partner.admin, roles=AdminRole.BILLING_ADMIN)
    delegation = scene.portal.redeem(url, scene.customer.admin).delegation
    assert delegation is not None
    assert delegation.roles == {AdminRole.BILLING_ADMIN}


@pytest.mark.parametrize("who", ["plain", "billing"])
def test_only_partner_users_with_partner_access_offer_delegated_admin(
    scene: Scene, who: str
) -> None:
    """A partner user without partner access (whatever its admin role) may not offer; the
    attempt is audited as denied."""
    with pytest.raises(Forbidden):
        scene.portal.offer_delegated_admin(getattr(scene.partner, who))
    [event] = _events(scene, "link.offer_delegated_admin")
    assert (event.outcome, event.reason) == ("denied", "partner-access-required")


def test_a_customer_cannot_offer_delegated_admin(scene: Scene) -> None:
    """Offering is a partner-side permission: a customer's global admin is refused."""
    with pytest.raises(Forbidden):
        scene.portal.offer_delegated_admin(scene.customer.admin)


# -- consent ----------------------------------------------------------------------------------


def test_consent_in_the_link_by_a_customer_global_admin_is_active_at_once(scene: Scene) -> None:
    """Redeemed with ``accept_delegated_admin=True`` by the customer's global admin, the
    delegation is ACTIVE from now, decided by that admin, and grants its roles at once."""
    portal, cust = scene.portal, scene.customer
    delegation = consent(portal, scene.partner.admin, cust, duration=timedelta(days=10))
    assert delegation.status is DelegationStatus.ACTIVE
    assert (delegation.decided_by, delegation.decided_at) == (cust.admin.id, scene.clock())
    assert delegation.ends_at == scene.clock() + timedelta(days=10)
    assert portal.decide(scene.partner.full, Permission.EDIT_PROFILE, cust.company.id)
    offer, accept = _events(scene, "delegation.offer") + _events(scene, "delegation.accept")
    assert offer.delegation_id == accept.delegation_id == delegation.id
    assert accept.actor_id == cust.admin.id
    assert accept.company_id == cust.company.id


@pytest.mark.parametrize(
    "role",
    [
        AdminRole.BILLING_ADMIN,
        AdminRole.PASSWORD_ADMIN,
        AdminRole.SERVICE_ADMIN,
        AdminRole.USER_MANAGEMENT_ADMIN,
        None,
    ],
)
def test_consent_in_the_link_by_anyone_but_a_global_admin_is_forbidden(
    scene: Scene, role: AdminRole | None
) -> None:
    """Only a global admin consents: anyone else of the customer gets ``Forbidden``, no
    delegation is recorded, and the denial is audited."""
    portal = scene.portal
    url = portal.offer_delegated_admin(scene.partner.admin)
    with pytest.raises(Forbidden) as caught:
        portal.redeem(url, scene.customer.by_role[role], accept_delegated_admin=True)
    assert caught.value.permission is Permission.MANAGE_PARTNER_RELATIONSHIPS
    assert portal.list_delegations(scene.customer.admin) == []
    [event] = _events(scene, "link.redeem")
    assert event.outcome == "denied"


def test_anyone_of_the_customer_may_record_an_offer_for_its_global_admins(scene: Scene) -> None:
    """Redeemed without an answer by a user without an admin role, the offer waits PENDING;
    the global admin then accepts it."""
    portal = scene.portal
    url = portal.offer_delegated_admin(scene.partner.admin)
    pending = portal.redeem(url, scene.customer.by_role[None]).delegation
    assert pending is not None
    assert pending.status is DelegationStatus.PENDING
    assert not portal.decide(scene.partner.full, Permission.VIEW_PROFILE, scene.customer.company.id)
    accepted = portal.accept_delegation(scene.customer.admin, pending.id)
    assert accepted.status is DelegationStatus.ACTIVE
    assert portal.decide(scene.partner.full, Permission.VIEW_PROFILE, scene.customer.company.id)


@pytest.mark.parametrize("who", ["admin", "full", "limited"])
def test_a_partner_user_never_redeems_a_delegation_link(scene: Scene, who: str) -> None:
    """A partner cannot consent on its customer's behalf by redeeming its own link."""
    url = scene.portal.offer_delegated_admin(scene.partner.admin)
    with pytest.raises(Forbidden):
        scene.portal.redeem(url, getattr(scene.partner, who), accept_delegated_admin=True)


def test_redeeming_the_same_link_again_returns_the_first_delegation(scene: Scene) -> None:
    """A second redemption by the same customer records nothing new."""
    portal = scene.portal
    url = portal.offer_delegated_admin(scene.partner.admin)
    first = portal.redeem(url, scene.customer.admin, accept_delegated_admin=True).delegation
    again = portal.redeem(url, scene.customer.admin, accept_delegated_admin=True).delegation
    assert again == first
    assert len(portal.list_delegations(scene.customer.admin)) == 1


def test_declining_in_the_link_records_a_declined_delegation(scene: Scene) -> None:
    """``accept_delegated_admin=False`` records the refusal; it grants nothing and is final."""
    portal = scene.portal
    url = portal.offer_delegated_admin(scene.partner.admin)
    declined = portal.redeem(url, scene.customer.admin, accept_delegated_admin=False).delegation
    assert declined is not None
    assert declined.status is DelegationStatus.DECLINED
    with pytest.raises(ValidationError):
        portal.accept_delegation(scene.customer.admin, declined.id)
    assert not portal.decide(scene.partner.full, Permission.VIEW_PROFILE, scene.customer.company.id)


@pytest.mark.parametrize("action", ["accept", "decline"])
def test_a_pending_delegation_is_answered_once(scene: Scene, action: str) -> None:
    """After an accept or a decline, neither may follow: the answer stands."""
    portal = scene.portal
    pending = consent(portal, scene.partner.admin, scene.customer, accept=None)
    getattr(portal, f"{action}_delegation")(scene.customer.admin, pending.id)
    for again in ("accept", "decline"):
        with pytest.raises(ValidationError) as caught:
            getattr(portal, f"{again}_delegation")(scene.customer.admin, pending.id)
        assert caught.value.field == "status"


@pytest.mark.parametrize("action", ["accept", "decline", "revoke"])
@pytest.mark.parametrize(
    "who", ["password_admin", "user_management_admin", "user", "partner-full", "partner-admin"]
)
def test_only_the_customers_global_admin_accepts_declines_or_revokes(
    scene: Scene, action: str, who: str
) -> None:
    """Customer users without the global admin role are ``Forbidden``; partner users (whose own
    company has no such delegation) get ``NotFound``. The delegation is unchanged."""
    portal = scene.portal
    accept = None if action != "revoke" else True
    delegation = consent(portal, scene.partner.admin, scene.customer, accept=accept)
    actors = {
        "password_admin": scene.customer.by_role[AdminRole.PASSWORD_ADMIN],
        "user_management_admin": scene.customer.by_role[AdminRole.USER_MANAGEMENT_ADMIN],
        "user": scene.customer.by_role[None],
        "partner-full": scene.partner.full,
        "partner-admin": scene.partner.admin,
    }
    expected: type[Exception] = NotFound if who.startswith("partner") else Forbidden
    with pytest.raises(expected):
        getattr(portal, f"{action}_delegation")(actors[who], delegation.id)
    [listed] = portal.list_delegations(scene.customer.admin)
    assert listed == delegation


# -- revoking and ending ----------------------------------------------------------------------


def test_revocation_takes_effect_the_same_instant(scene: Scene) -> None:
    """A reset works before the revocation and is refused right after, at the same clock time;
    the revocation is audited with the delegation and its actor."""
    portal, cust = scene.portal, scene.customer
    delegation = consent(portal, scene.partner.admin, cust)
    portal.reset_password(scene.partner.full, cust.company.id, _user(scene, None))
    revoked = portal.revoke_delegation(cust.admin, delegation.id)
    assert revoked.status is DelegationStatus.REVOKED
    assert (revoked.decided_by, revoked.decided_at) == (cust.admin.id, scene.clock())
    with pytest.raises(Forbidden) as caught:
        portal.reset_password(scene.partner.full, cust.company.id, _user(scene, None))
    assert caught.value.decision.reason == "no-active-delegation"
    for permission in Permission:
        assert not portal.decide(scene.partner.full, permission, cust.company.id)
    [event] = _events(scene, "delegation.revoke")
    assert (event.outcome, event.delegation_id, event.actor_id) == (
        "success",
        delegation.id,
        cust.admin.id,
    )
    with pytest.raises(ValidationError):
        portal.revoke_delegation(cust.admin, delegation.id)


@pytest.mark.parametrize(
    ("who", "allowed"),
    [("admin", True), ("full", True), ("limited", False), ("plain", False), ("billing", False)],
)
def test_the_partner_ends_a_delegation_by_its_global_admin_or_a_full_user(
    scene: Scene, who: str, allowed: bool
) -> None:
    """Ending is for the partner's global admin and FULL users; others are ``Forbidden`` and
    the delegation stays active."""
    portal = scene.portal
    delegation = consent(portal, scene.partner.admin, scene.customer)
    actor = getattr(scene.partner, who)
    if allowed:
        ended = portal.end_delegation(actor, delegation.id)
        assert ended.status is DelegationStatus.ENDED
        assert ended.decided_by == actor.id
        [event] = _events(scene, "delegation.end")
        assert (event.company_id, event.delegation_id) == (scene.customer.company.id, delegation.id)
        assert not portal.decide(actor, Permission.VIEW_PROFILE, scene.customer.company.id)
    else:
        with pytest.raises(Forbidden):
            portal.end_delegation(actor, delegation.id)
        assert portal.list_delegations(scene.customer.admin) == [delegation]


def test_the_partner_may_withdraw_a_pending_offer_by_ending_it(scene: Scene) -> None:
    """A pending delegation ended by the partner can no longer be accepted."""
    portal = scene.portal
    pending = consent(portal, scene.partner.admin, scene.customer, accept=None)
    assert portal.end_delegation(scene.partner.full, pending.id).status is DelegationStatus.ENDED
    with pytest.raises(ValidationError):
        portal.accept_delegation(scene.customer.admin, pending.id)


def test_a_customer_cannot_end_and_a_partner_cannot_revoke(scene: Scene) -> None:
    """Each side has its own verb: the customer's ``end_delegation`` and the partner's
    ``revoke_delegation`` find no such delegation of theirs."""
    portal = scene.portal
    delegation = consent(portal, scene.partner.admin, scene.customer)
    with pytest.raises(NotFound):
        portal.end_delegation(scene.customer.admin, delegation.id)
    with pytest.raises(NotFound):
        portal.revoke_delegation(scene.partner.admin, delegation.id)
    assert portal.list_delegations(scene.customer.admin)[0].status is DelegationStatus.ACTIVE


# -- one active delegation, end dates, lapses ------------------------------------------------


def test_there_is_never_a_second_active_delegation_for_a_partner_and_customer(
    scene: Scene,
) -> None:
    """Consent in a second link returns the active delegation; accepting a second pending one
    is refused while the first is active, and allowed once it is revoked."""
    portal, cust = scene.portal, scene.customer
    first = consent(portal, scene.partner.admin, cust, roles={AdminRole.PASSWORD_ADMIN})
    again = consent(portal, scene.partner.admin, cust, roles={AdminRole.BILLING_ADMIN})
    assert again.id == first.id
    assert again.roles == {AdminRole.PASSWORD_ADMIN}
    pending = consent(portal, scene.partner.admin, cust, accept=None)
    with pytest.raises(ValidationError) as caught:
        portal.accept_delegation(cust.admin, pending.id)
    assert caught.value.field == "delegation"
    statuses = [d.status for d in portal.list_delegations(cust.admin)]
    assert statuses.count(DelegationStatus.ACTIVE) == 1
    portal.revoke_delegation(cust.admin, first.id)
    assert portal.accept_delegation(cust.admin, pending.id).status is DelegationStatus.ACTIVE


def test_an_end_date_ends_every_right_at_that_instant(scene: Scene) -> None:
    """One day after consent the delegation grants nothing; a microsecond before, it still
    does. No job ran: the clock alone decides, and the listing says EXPIRED."""
    portal, cust, clock = scene.portal, scene.customer, scene.clock
    delegation = consent(portal, scene.partner.admin, cust, duration=timedelta(days=1))
    assert delegation.ends_at is not None
    clock.set(delegation.ends_at - timedelta(microseconds=1))
    assert portal.decide(scene.partner.full, Permission.RESET_PASSWORD, cust.company.id)
    portal.reset_password(scene.partner.limited, cust.company.id, _user(scene, None))
    clock.set(delegation.ends_at)
    assert not portal.decide(scene.partner.full, Permission.RESET_PASSWORD, cust.company.id)
    with pytest.raises(Forbidden):
        portal.reset_password(scene.partner.limited, cust.company.id, _user(scene, None))
    [listed] = portal.list_delegations(cust.admin)
    assert listed.status is DelegationStatus.EXPIRED
    with pytest.raises(ValidationError):
        portal.revoke_delegation(cust.admin, delegation.id)
    with pytest.raises(ValidationError):
        portal.end_delegation(scene.partner.admin, delegation.id)


def test_an_expired_delegation_makes_room_for_a_new_consent(scene: Scene) -> None:
    """Once the first delegation is past its end date, a new one may become active."""
    portal, cust = scene.portal, scene.customer
    consent(portal, scene.partner.admin, cust, duration=timedelta(days=1))
    scene.clock.advance(days=2)
    renewed = consent(portal, scene.partner.admin, cust)
    assert renewed.status is DelegationStatus.ACTIVE
    statuses = sorted(d.status.value for d in portal.list_delegations(cust.admin))
    assert statuses == ["active", "expired"]


def test_a_pending_offer_nobody_answers_lapses_after_90_days(scene: Scene) -> None:
    """At 90 days less a second an offer can still be accepted; at 90 days it has expired."""
    portal, clock = scene.portal, scene.clock
    early = consent(portal, scene.partner.admin, scene.customer, accept=None)
    late = consent(portal, scene.partner.admin, scene.other, accept=None)
    clock.advance(days=90, seconds=-1)
    assert portal.accept_delegation(scene.customer.admin, early.id).status is (
        DelegationStatus.ACTIVE
    )
    clock.advance(seconds=1)
    [listed] = portal.list_delegations(scene.other.admin)
    assert listed.status is DelegationStatus.EXPIRED
    with pytest.raises(ValidationError):
        portal.accept_delegation(scene.other.admin, late.id)
    [event] = [e for e in _events(scene, "delegation.accept") if e.outcome == "failed"]
    assert event.delegation_id == late.id


# -- what a delegation grants ---------------------------------------------------------------


def test_delegates_never_manage_the_customers_partner_relationships(scene: Scene) -> None:
    """A FULL user with all five roles acts as the customer's global admin, yet may neither
    decide, list, accept nor revoke the customer's delegations."""
    portal, cust, full = scene.portal, scene.customer, scene.partner.full
    active = consent(portal, scene.partner.admin, cust)
    pending = consent(portal, scene.partner.admin, cust, accept=None)
    assert portal.decide(full, Permission.ASSIGN_ROLES, cust.company.id)
    decision = portal.decide(full, Permission.MANAGE_PARTNER_RELATIONSHIPS, cust.company.id)
    assert not decision
    assert decision.reason == "delegates-never-manage-partner-relationships"
    with pytest.raises(Forbidden):
        portal.list_delegations(full, cust.company.id)
    with pytest.raises(NotFound):
        portal.accept_delegation(full, pending.id)
    with pytest.raises(NotFound):
        portal.revoke_delegation(full, active.id)


def test_a_delegations_roles_bound_what_its_full_and_limited_users_do(scene: Scene) -> None:
    """With a billing-only delegation, the FULL user manages subscriptions but resets no
    password, and the LIMITED user (capped at password admin) gets nothing at all."""
    portal, cust = scene.portal, scene.customer
    consent(portal, scene.partner.admin, cust, roles={AdminRole.BILLING_ADMIN})
    assert portal.list_subscriptions(scene.partner.full, cust.company.id) == []
    with pytest.raises(Forbidden) as caught:
        portal.reset_password(scene.partner.full, cust.company.id, _user(scene, None))
    assert caught.value.decision.reason == "delegation-roles-lack-permission"
    with pytest.raises(Forbidden) as caught:
        portal.list_service_requests(scene.partner.limited, cust.company.id)
    assert caught.value.decision.reason == "no-active-delegation"


def test_a_partner_users_access_is_reread_at_every_decision(scene: Scene) -> None:
    """Taking a user's partner access away ends its delegated rights at once; giving LIMITED
    caps them at password admin."""
    portal, cust, agent = scene.portal, scene.customer, scene.partner.full
    consent(portal, scene.partner.admin, cust)
    assert portal.decide(agent, Permission.EDIT_PROFILE, cust.company.id)
    portal.assign_roles(scene.partner.admin, agent.id, partner_access=PartnerAccess.LIMITED)
    assert not portal.decide(agent, Permission.EDIT_PROFILE, cust.company.id)
    assert portal.decide(agent, Permission.RESET_PASSWORD, cust.company.id)
    portal.assign_roles(scene.partner.admin, agent.id, partner_access=None)
    assert not portal.decide(agent, Permission.VIEW_PROFILE, cust.company.id)


def test_a_delegation_with_one_customer_grants_nothing_in_another(scene: Scene) -> None:
    """Rights are per customer: the other customer stays closed to the partner."""
    portal = scene.portal
    consent(portal, scene.partner.admin, scene.customer)
    for permission in Permission:
        assert not portal.decide(scene.partner.admin, permission, scene.other.company.id)


# -- listing -----------------------------------------------------------------------------------


def test_each_side_lists_its_own_relationships(scene: Scene) -> None:
    """The partner's global admin and its partner-access users list every delegation the
    partner offered; a customer's global admin lists its own; others are refused."""
    portal, partner = scene.portal, scene.partner
    mine = consent(portal, partner.admin, scene.customer)
    theirs = consent(portal, partner.admin, scene.other, accept=None)
    for user in (partner.admin, partner.full, partner.limited):
        assert {d.id for d in portal.list_delegations(user)} == {mine.id, theirs.id}
    assert [d.id for d in portal.list_delegations(scene.customer.admin)] == [mine.id]
    assert [d.id for d in portal.list_delegations(scene.other.admin)] == [theirs.id]
    for refused in (partner.plain, partner.billing, scene.customer.by_role[None]):
        with pytest.raises(Forbidden):
            portal.list_delegations(refused)
