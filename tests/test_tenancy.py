"""Tenants stay apart: no cross-tenant access and no existence oracle (IDOR).

Two partners, each with an active delegation on its own customer; the second partner also has a
pending offer with the first partner's customer. Every use case that takes an id is tried with
someone else's id and with an id that does not exist: both are ``Forbidden`` or ``NotFound``,
and for an actor who may not see the object the two answers are indistinguishable (same
exception type, same message once the id itself is blanked out).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

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
    Catalog,
    Delegation,
    Forbidden,
    NotFound,
    OfferLine,
    PartnerKitError,
    Permission,
    Portal,
    Service,
    ServiceRequest,
    Subscription,
    TrialTerms,
    User,
)
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing import FakeClock

CATALOG = Catalog(
    [
        Service(
            sku="EXCHANGE",
            name="Exchange Online",
            min_licenses=1,
            max_licenses=1000,
            trial=TrialTerms(days=30, licenses=25),
        )
    ]
)


@attrs.frozen
class Tenants:
    """Partner A with customer A (active delegation), partner B with customer B (active), and
    B's pending offer to customer A; a service request and a subscription of customer A."""

    portal: Portal
    a: PartnerCast
    b: PartnerCast
    ca: CustomerCast
    cb: CustomerCast
    a_on_ca: Delegation
    b_on_cb: Delegation
    b_pending_on_ca: Delegation
    request_of_ca: ServiceRequest
    subscription_of_ca: Subscription
    link_of_a: str


@pytest.fixture
def tenants() -> Tenants:
    """Build the two tenants through the Portal."""
    portal = make_portal(MemoryStore(), FakeClock(), CATALOG)
    a = add_partner(portal, "Alpha Partners", "alpha")
    b = add_partner(portal, "Beta Partners", "beta")
    ca = add_customer(portal, "Fabrikam", "fabrikam.example")
    cb = add_customer(portal, "Northwind", "northwind.example")
    a_on_ca = consent(portal, a.admin, ca)
    b_on_cb = consent(portal, b.admin, cb)
    b_pending = consent(portal, b.admin, ca, accept=None)
    url, _ = portal.create_purchase_offer(a.admin, lines=[OfferLine(sku="EXCHANGE", licenses=5)])
    [subscription] = portal.redeem(url, ca.admin).subscriptions
    request = portal.create_service_request(a.full, ca.company.id, title="Mail is down")
    link_id = portal.inspect_link(url).link_id
    return Tenants(
        portal, a, b, ca, cb, a_on_ca, b_on_cb, b_pending, request, subscription, link_id
    )


def _nobody(prefix: str) -> str:
    """An id of the right shape that nothing has."""
    return f"{prefix}_{uuid.uuid4().hex}"


def _outcome(call: Callable[[], object], ident: str) -> tuple[type[BaseException], str]:
    """Run *call*; return the exception type and its message with *ident* blanked out."""
    with pytest.raises(PartnerKitError) as caught:
        call()
    assert isinstance(caught.value, Forbidden | NotFound), repr(caught.value)
    return type(caught.value), str(caught.value).replace(ident, "<id>")


def _same_answer(make: Callable[[str], object], theirs: str, prefix: str) -> None:
    """Someone else's *theirs* and an id nobody has get the same refusal."""
    nobody = _nobody(prefix)
    assert _outcome(lambda: make(theirs), theirs) == _outcome(lambda: make(nobody), nobody)


# -- companies: another partner's customer, or no company at all ------------------------------

CompanyCall = Callable[[Portal, User, str], object]
COMPANY_CALLS: dict[str, CompanyCall] = {
    "profile": lambda p, u, c: p.profile(u, c),
    "update_profile": lambda p, u, c: p.update_profile(u, name="Taken Over", company_id=c),
    "list_users": lambda p, u, c: p.list_users(u, c),
    "create_user": lambda p, u, c: p.create_user(
        u, email=f"{uuid.uuid4().hex[:8]}@intruder.example", display_name="X", company_id=c
    ),
    "list_subscriptions": lambda p, u, c: p.list_subscriptions(u, c),
    "list_delegations": lambda p, u, c: p.list_delegations(u, c),
    "create_service_request": lambda p, u, c: p.create_service_request(u, c, title="Hello"),
    "list_service_requests": lambda p, u, c: p.list_service_requests(u, c),
    "audit_trail": lambda p, u, c: p.audit_trail(u, c),
}


@pytest.mark.parametrize("who", ["admin", "full", "limited"])
@pytest.mark.parametrize("call", list(COMPANY_CALLS))
def test_another_partners_users_get_nothing_in_a_customer_they_do_not_administer(
    tenants: Tenants, call: str, who: str
) -> None:
    """Partner B's users are refused on customer A (B's offer there is only pending), and the
    refusal is the one they get for a company id that does not exist."""
    actor = getattr(tenants.b, who)
    run = COMPANY_CALLS[call]
    _same_answer(lambda c: run(tenants.portal, actor, c), tenants.ca.company.id, "cmp")


@pytest.mark.parametrize("call", list(COMPANY_CALLS))
def test_a_customer_gets_nothing_in_another_customer(tenants: Tenants, call: str) -> None:
    """Customer B's global admin is refused on customer A exactly as on a company that does
    not exist."""
    run = COMPANY_CALLS[call]
    _same_answer(lambda c: run(tenants.portal, tenants.cb.admin, c), tenants.ca.company.id, "cmp")


def test_a_customer_gets_nothing_in_a_partner(tenants: Tenants) -> None:
    """Customer A's global admin, whose company partner A administers, has no right in A."""
    for permission in Permission:
        assert not tenants.portal.decide(tenants.ca.admin, permission, tenants.a.company.id)
    _same_answer(
        lambda c: tenants.portal.list_users(tenants.ca.admin, c), tenants.a.company.id, "cmp"
    )


def test_decisions_about_a_foreign_company_match_those_about_no_company(
    tenants: Tenants,
) -> None:
    """For every permission, ``Portal.decide`` gives partner B the same reason on customer A
    as on an unknown company id, and none is allowed."""
    portal, nobody = tenants.portal, _nobody("cmp")
    for user in (tenants.b.admin, tenants.b.full, tenants.b.limited):
        for permission in Permission:
            foreign = portal.decide(user, permission, tenants.ca.company.id)
            absent = portal.decide(user, permission, nobody)
            assert not foreign
            assert foreign.reason == absent.reason


# -- users: another customer's user ids, another partner's users ------------------------------

UserCall = Callable[[Portal, User, str, str], object]
USER_CALLS: dict[str, UserCall] = {
    "reset_password": lambda p, u, c, t: p.reset_password(u, c, t),
    "assign_roles": lambda p, u, c, t: p.assign_roles(
        u, t, admin_role=AdminRole.GLOBAL_ADMIN, company_id=c
    ),
    "remove_user": lambda p, u, c, t: p.remove_user(u, t, company_id=c),
    "update_user": lambda p, u, c, t: p.update_user(u, t, display_name="Renamed", company_id=c),
}


@pytest.mark.parametrize("call", list(USER_CALLS))
def test_a_delegation_reaches_only_the_users_of_its_own_customer(
    tenants: Tenants, call: str
) -> None:
    """Acting on customer A through its delegation, partner A's FULL user names a user of
    customer B: ``NotFound``, worded as for a user id that does not exist."""
    run = USER_CALLS[call]
    target = tenants.cb.by_role[None].id
    _same_answer(
        lambda t: run(tenants.portal, tenants.a.full, tenants.ca.company.id, t), target, "usr"
    )


@pytest.mark.parametrize("call", list(USER_CALLS))
def test_a_partner_admin_reaches_only_its_own_users(tenants: Tenants, call: str) -> None:
    """In its own company, partner A's global admin names one of partner B's users:
    ``NotFound``, as for a user id that does not exist."""
    run = USER_CALLS[call]
    _same_answer(
        lambda t: run(tenants.portal, tenants.a.admin, tenants.a.company.id, t),
        tenants.b.full.id,
        "usr",
    )


def test_a_customer_user_id_in_a_decision_is_judged_like_an_unknown_one(
    tenants: Tenants,
) -> None:
    """``Portal.decide`` with customer B's user as target on customer A gives the same answer as
    with an unknown user id."""
    portal, nobody = tenants.portal, _nobody("usr")
    for permission in (Permission.RESET_PASSWORD, Permission.MANAGE_USERS):
        foreign = portal.decide(
            tenants.a.full, permission, tenants.ca.company.id, tenants.cb.admin.id
        )
        absent = portal.decide(tenants.a.full, permission, tenants.ca.company.id, nobody)
        assert not foreign
        assert foreign.reason == absent.reason


# -- relationships, links, requests, subscriptions of someone else --------------------------


@pytest.mark.parametrize("action", ["accept", "decline", "revoke"])
def test_a_customer_cannot_touch_another_customers_delegations(
    tenants: Tenants, action: str
) -> None:
    """Customer B's global admin names customer A's delegations: ``NotFound``, as for an
    unknown id; customer A's delegations are unchanged."""
    call = getattr(tenants.portal, f"{action}_delegation")
    for theirs in (tenants.a_on_ca.id, tenants.b_pending_on_ca.id):
        _same_answer(lambda d: call(tenants.cb.admin, d), theirs, "dlg")
    listed = {d.id: d for d in tenants.portal.list_delegations(tenants.ca.admin)}
    assert listed[tenants.a_on_ca.id] == tenants.a_on_ca
    assert listed[tenants.b_pending_on_ca.id] == tenants.b_pending_on_ca


@pytest.mark.parametrize("who", ["admin", "full"])
def test_a_partner_cannot_end_another_partners_delegation(tenants: Tenants, who: str) -> None:
    """Partner B's global admin or FULL user names partner A's delegation: ``NotFound``, as for
    an unknown id; A's delegation stays active."""
    actor = getattr(tenants.b, who)
    _same_answer(lambda d: tenants.portal.end_delegation(actor, d), tenants.a_on_ca.id, "dlg")
    assert tenants.portal.decide(tenants.a.full, Permission.EDIT_PROFILE, tenants.ca.company.id)


def test_a_partner_cannot_revoke_another_partners_link(tenants: Tenants) -> None:
    """Partner B's global admin names partner A's link: ``NotFound``, as for an unknown id."""
    _same_answer(lambda i: tenants.portal.revoke_link(tenants.b.admin, i), tenants.link_of_a, "lnk")


def test_a_partner_sees_only_its_own_relationships(tenants: Tenants) -> None:
    """Partner B lists its own two delegations, never partner A's."""
    listed = {d.id for d in tenants.portal.list_delegations(tenants.b.admin)}
    assert listed == {tenants.b_on_cb.id, tenants.b_pending_on_ca.id}


@pytest.mark.parametrize("who", ["customer-b", "partner-b"])
def test_another_tenants_service_request_is_indistinguishable_from_none(
    tenants: Tenants, who: str
) -> None:
    """Naming customer A's service request, an outsider gets the answer an unknown request id
    gets, so it cannot probe which ids exist."""
    actor = tenants.cb.admin if who == "customer-b" else tenants.b.admin
    _same_answer(
        lambda r: tenants.portal.update_service_request(actor, r, status="closed"),
        tenants.request_of_ca.id,
        "srq",
    )


@pytest.mark.parametrize("who", ["customer-b", "partner-b"])
def test_another_tenants_service_request_is_never_changed(tenants: Tenants, who: str) -> None:
    """Whatever the wording, an outsider's update of customer A's request is refused and
    changes nothing."""
    actor = tenants.cb.admin if who == "customer-b" else tenants.b.admin
    with pytest.raises((Forbidden, NotFound)):
        tenants.portal.update_service_request(actor, tenants.request_of_ca.id, status="closed")
    [request] = tenants.portal.list_service_requests(tenants.a.full, tenants.ca.company.id)
    assert request == tenants.request_of_ca


def test_another_customers_subscription_is_indistinguishable_from_none(
    tenants: Tenants,
) -> None:
    """Naming customer A's subscription, customer B's global admin gets the answer an unknown
    subscription id gets."""
    _same_answer(
        lambda s: tenants.portal.change_licenses(tenants.cb.admin, s, 7),
        tenants.subscription_of_ca.id,
        "sub",
    )


def test_refusals_are_audited_without_revealing_more_to_the_actor(tenants: Tenants) -> None:
    """Both refusals of a foreign and of an unknown delegation id are recorded as failed with
    the same reason."""
    portal = tenants.portal
    nobody = _nobody("dlg")
    for ident in (tenants.a_on_ca.id, nobody):
        with pytest.raises(NotFound):
            portal.revoke_delegation(tenants.cb.admin, ident)
    events = [
        e
        for e in portal.audit_trail(tenants.cb.admin)
        if e.action == "delegation.revoke" and e.actor_id == tenants.cb.admin.id
    ]
    assert [(e.outcome, e.reason) for e in events] == [("failed", "delegation-not-found")] * 2
    assert [e.target_id for e in events] == [tenants.a_on_ca.id, nobody]
