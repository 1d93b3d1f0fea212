"""Redeeming trial and offer links: what a customer gets, who may redeem, and sign-up.

The worlds are built through the Portal's own use cases (``partnerkit.testing.build_world``
plus a customer billing admin and password admin) on a real store; the clock is a
``FakeClock``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from _money import (
    EXCHANGE,
    INTUNE,
    Money,
    audit_outcomes_since,
    money_world,
    new_customer,
    state,
    subscriptions_of,
    without_audit,
)
from partnerkit import (
    AdminRole,
    Catalog,
    ContactInfo,
    DelegationStatus,
    Forbidden,
    InvalidLink,
    LinkExhausted,
    LinkExpired,
    LinkRevoked,
    NotFound,
    OfferLine,
    Permission,
    Rule,
    Service,
    SubscriptionStatus,
    User,
    ValidationError,
)
from partnerkit.links import MAX_CLOCK_SKEW
from partnerkit.ports import Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """An empty store: a ``MemoryStore``, or a ``SQLiteStore`` on a file."""
    made: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "p.db")
    yield made
    made.close()


@pytest.fixture
def m(store: Store) -> Money:
    """A partner and a customer with admins of every kind, on *store*."""
    return money_world(store)


@pytest.fixture
def mm() -> Money:
    """The same world on a ``MemoryStore`` only (for rules that do not depend on the store)."""
    return money_world(MemoryStore())


def customer_user(m: Money, role: AdminRole | None, stem: str) -> User:
    """A user of the world's customer holding *role* (or no admin role)."""
    return m.portal.create_user(
        m.admin, email=f"{stem}@fabrikam.example", display_name=stem.title(), admin_role=role
    )


def assert_unchanged_but_audited(m: Money, before: dict[str, object], outcome: str) -> None:
    """Nothing but the audit of the refused attempt was written."""
    assert without_audit(state(m.store)) == without_audit(before)
    assert audit_outcomes_since(m.store, before) == [outcome]


# -- trial links -----------------------------------------------------------------------------


def test_a_trial_link_gives_a_trial_of_the_services_licences_and_length(m: Money) -> None:
    """Redeeming a trial link makes one ``TRIAL`` subscription with the service's trial
    licences, ending the trial's days after now, with the partner as advisor."""
    url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE")
    now = m.clock()

    result = m.portal.redeem(url, m.admin)

    (trial,) = result.subscriptions
    assert result.delegation is None
    assert trial.status is SubscriptionStatus.TRIAL
    assert (trial.sku, trial.licenses) == ("EXCHANGE", EXCHANGE.trial.licenses)  # type: ignore[union-attr]
    assert trial.trial_ends_at == now + timedelta(days=30)
    assert (trial.partner_id, trial.advisor_id) == (m.world.partner.id, m.world.partner.advisor_id)
    assert trial.customer_id == m.customer.id
    assert subscriptions_of(m.store, m.customer.id) == [trial]


def test_a_trial_reads_expired_after_its_end_without_any_job(m: Money) -> None:
    """Up to its end the trial lists as ``TRIAL``; from its end as ``EXPIRED`` — and the
    store was not written to: the status is computed from the clock."""
    url = m.portal.create_trial_invitation(m.partner_admin, "INTUNE")
    (trial,) = m.portal.redeem(url, m.admin).subscriptions
    assert trial.trial_ends_at is not None
    written = without_audit(state(m.store))

    m.clock.set(trial.trial_ends_at - timedelta(seconds=1))
    assert [s.status for s in m.portal.list_subscriptions(m.billing)] == [SubscriptionStatus.TRIAL]
    m.clock.set(trial.trial_ends_at)
    assert [s.status for s in m.portal.list_subscriptions(m.billing)] == [
        SubscriptionStatus.EXPIRED
    ]
    assert [s.status for s in m.portal.list_subscriptions(m.partner_admin)] == [
        SubscriptionStatus.EXPIRED
    ]
    assert without_audit(state(m.store)) == written
    assert subscriptions_of(m.store, m.customer.id)[0].status is SubscriptionStatus.TRIAL


def test_an_offer_for_a_trialled_service_converts_the_trial(m: Money) -> None:
    """The same subscription id, now ``ACTIVE`` with the offer's count (as adjusted), and
    the offering partner as advisor — even when another partner started the trial."""
    other, other_admin = m.portal.register_partner(
        name="Litware",
        contact=ContactInfo(email="hi@litware.example"),
        admin_email="lu@litware.example",
    )
    trial_url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE")
    (trial,) = m.portal.redeem(trial_url, m.admin).subscriptions
    url, _ = m.portal.create_purchase_offer(
        other_admin, [OfferLine("EXCHANGE", 40), OfferLine("PROJECT", 3)]
    )

    converted, fresh = m.portal.redeem(url, m.billing, licenses={"EXCHANGE": 60}).subscriptions

    assert converted.id == trial.id
    assert (converted.status, converted.licenses) == (SubscriptionStatus.ACTIVE, 60)
    assert (converted.partner_id, converted.advisor_id) == (other.id, other.advisor_id)
    assert (fresh.sku, fresh.licenses, fresh.status) == ("PROJECT", 3, SubscriptionStatus.ACTIVE)
    stored = {s.id: s for s in subscriptions_of(m.store, m.customer.id)}
    assert stored == {converted.id: converted, fresh.id: fresh}
    assert [s.id for s in m.portal.list_subscriptions(other_admin)] == sorted(stored)
    assert m.portal.list_subscriptions(m.partner_admin) == []


def test_an_expired_trial_converts_too(mm: Money) -> None:
    """A customer who buys after the trial ended keeps its subscription id."""
    trial_url = mm.portal.create_trial_invitation(mm.partner_admin, "EXCHANGE")
    (trial,) = mm.portal.redeem(trial_url, mm.admin).subscriptions
    mm.clock.advance(days=45)
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("EXCHANGE", 5)])
    (paid,) = mm.portal.redeem(url, mm.admin).subscriptions
    assert (paid.id, paid.status) == (trial.id, SubscriptionStatus.ACTIVE)
    assert [s.status for s in mm.portal.list_subscriptions(mm.admin)] == [SubscriptionStatus.ACTIVE]


def test_one_trial_per_customer_per_service(mm: Money) -> None:
    """A second trial link for a service the customer tried — another link of the same
    partner, running or after the trial expired — is refused naming ``sku``; a trial of
    another service is fine."""
    first = mm.portal.create_trial_invitation(mm.partner_admin, "EXCHANGE")
    second = mm.portal.create_trial_invitation(mm.partner_admin, "EXCHANGE")
    mm.portal.redeem(first, mm.admin)
    for moment in (timedelta(0), timedelta(days=31)):
        mm.clock.advance(moment)
        before = state(mm.store)
        with pytest.raises(ValidationError) as info:
            mm.portal.redeem(second, mm.admin)
        assert info.value.field == "sku"
        assert_unchanged_but_audited(mm, before, "failed")
    other = mm.portal.create_trial_invitation(mm.partner_admin, "INTUNE")
    assert mm.portal.redeem(other, mm.admin).subscriptions[0].sku == "INTUNE"


def test_no_trial_for_a_service_the_customer_already_pays_for(mm: Money) -> None:
    """After a purchase, a trial link for that service is refused."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("EXCHANGE", 5)])
    mm.portal.redeem(url, mm.admin)
    trial_url = mm.portal.create_trial_invitation(mm.partner_admin, "EXCHANGE")
    with pytest.raises(ValidationError) as info:
        mm.portal.redeem(trial_url, mm.admin)
    assert info.value.field == "sku"


def test_a_trial_invitation_needs_a_service_that_offers_a_trial(mm: Money) -> None:
    """``PROJECT`` has no trial terms: no trial link for it; an unknown sku is not found."""
    with pytest.raises(ValidationError) as info:
        mm.portal.create_trial_invitation(mm.partner_admin, "PROJECT")
    assert info.value.field == "sku"
    with pytest.raises(LookupError):
        mm.portal.create_trial_invitation(mm.partner_admin, "NOPE")


# -- idempotency -----------------------------------------------------------------------------


def test_redeeming_a_trial_link_twice_returns_the_first_result(m: Money) -> None:
    """The second redemption — by another admin of the same customer — returns the same
    subscription and delegation; nothing new is written and no use is counted."""
    url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE", True, max_uses=1)
    first = m.portal.redeem(url, m.admin)
    before = state(m.store)

    again = m.portal.redeem(url, m.password_admin)

    assert again == first
    assert without_audit(state(m.store)) == without_audit(before)


def test_redeeming_an_offer_twice_buys_once_whatever_the_second_asks(m: Money) -> None:
    """Asking for other counts on the second redemption does not buy again or change the
    first purchase."""
    url, _ = m.portal.create_purchase_offer(m.partner_admin, [OfferLine("INTUNE", 50)])
    first = m.portal.redeem(url, m.billing, licenses={"INTUNE": 70})
    again = m.portal.redeem(url, m.admin, licenses={"INTUNE": 90})
    assert again == first
    assert [s.licenses for s in subscriptions_of(m.store, m.customer.id)] == [70]


def test_max_uses_counts_customers_not_redemptions(mm: Money) -> None:
    """A one-use link redeemed by a customer still replays for that customer, but a second
    customer finds it spent: ``LinkExhausted`` (an ``InvalidLink``); only the failed attempt
    is audited."""
    url = mm.portal.create_trial_invitation(mm.partner_admin, "EXCHANGE", max_uses=1)
    first = mm.portal.redeem(url, mm.admin)
    assert mm.portal.redeem(url, mm.admin) == first
    _, other_admin = new_customer(mm.portal)
    before = state(mm.store)
    with pytest.raises(LinkExhausted):
        mm.portal.redeem(url, other_admin)
    assert_unchanged_but_audited(mm, before, "failed")
    with pytest.raises(InvalidLink):
        mm.portal.inspect_link(url)


# -- links that no longer work -------------------------------------------------------------------


def test_a_withdrawn_offer_cannot_be_redeemed(m: Money) -> None:
    """Once withdrawn, the offer's link is revoked: nothing is bought."""
    url, offer = m.portal.create_purchase_offer(m.partner_admin, [OfferLine("INTUNE", 50)])
    m.portal.withdraw_offer(m.partner_admin, offer.id)
    before = state(m.store)
    with pytest.raises(LinkRevoked):
        m.portal.redeem(url, m.billing)
    assert_unchanged_but_audited(m, before, "failed")


def test_a_superseded_offer_cannot_be_redeemed_but_its_successor_can(m: Money) -> None:
    """The old link stops working; the new one sells the new counts."""
    old_url, old = m.portal.create_purchase_offer(m.partner_admin, [OfferLine("INTUNE", 50)])
    new_url, new = m.portal.supersede_offer(m.partner_admin, old.id, [OfferLine("INTUNE", 80)])
    with pytest.raises(LinkRevoked):
        m.portal.redeem(old_url, m.billing)
    (sub,) = m.portal.redeem(new_url, m.billing).subscriptions
    assert sub.licenses == 80
    assert new.id != old.id


def test_a_revoked_link_cannot_be_redeemed(mm: Money) -> None:
    """Revocation stops a trial link at once."""
    url = mm.portal.create_trial_invitation(mm.partner_admin, "EXCHANGE")
    mm.portal.revoke_link(mm.partner_admin, mm.portal.inspect_link(url).link_id)
    before = state(mm.store)
    with pytest.raises(LinkRevoked):
        mm.portal.redeem(url, mm.admin)
    assert_unchanged_but_audited(mm, before, "failed")


def test_a_customer_who_redeemed_a_later_revoked_link_keeps_what_it_bought(mm: Money) -> None:
    """Revoking stops the link, also for a replay, but takes nothing away."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)])
    (sub,) = mm.portal.redeem(url, mm.billing).subscriptions
    mm.portal.revoke_link(mm.partner_admin, mm.portal.inspect_link(url).link_id)
    with pytest.raises(LinkRevoked):
        mm.portal.redeem(url, mm.billing)
    assert subscriptions_of(mm.store, mm.customer.id) == [sub]


def test_an_expired_link_cannot_be_redeemed(mm: Money) -> None:
    """A link works until its expiry (plus the allowed clock skew), then ``LinkExpired``."""
    url, offer = mm.portal.create_purchase_offer(
        mm.partner_admin, [OfferLine("INTUNE", 50)], expires_in=timedelta(days=7)
    )
    mm.clock.set(offer.expires_at + MAX_CLOCK_SKEW + timedelta(seconds=1))
    before = state(mm.store)
    with pytest.raises(LinkExpired):
        mm.portal.redeem(url, mm.billing)
    assert_unchanged_but_audited(mm, before, "failed")
    mm.clock.set(offer.expires_at)
    assert mm.portal.redeem(url, mm.billing).subscriptions[0].licenses == 50


def test_a_tampered_link_is_invalid_and_buys_nothing(mm: Money) -> None:
    """One changed character in the code: ``InvalidLink``; only the failed attempt is
    audited."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)])
    tampered = url[:-1] + ("A" if url[-1] != "A" else "B")
    before = state(mm.store)
    with pytest.raises(InvalidLink):
        mm.portal.redeem(tampered, mm.billing)
    assert_unchanged_but_audited(mm, before, "failed")


def test_an_offer_for_a_service_the_customer_already_pays_for_is_refused(mm: Money) -> None:
    """A second purchase of a subscribed service would be a second subscription: refused
    naming ``lines`` (the customer changes its licences instead), nothing written."""
    url1, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)])
    mm.portal.redeem(url1, mm.billing)
    url2, _ = mm.portal.create_purchase_offer(
        mm.partner_admin, [OfferLine("PROJECT", 2), OfferLine("INTUNE", 60)]
    )
    before = state(mm.store)
    with pytest.raises(ValidationError) as info:
        mm.portal.redeem(url2, mm.billing)
    assert info.value.field == "lines"
    assert_unchanged_but_audited(mm, before, "failed")


# -- who may redeem ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(AdminRole))
def test_any_admin_of_the_customer_may_start_a_trial(mm: Money, role: AdminRole) -> None:
    """Trials need an admin role of the customer, any of the five."""
    url = mm.portal.create_trial_invitation(mm.partner_admin, "EXCHANGE")
    admin = customer_user(mm, role, "someone")
    assert mm.portal.redeem(url, admin).subscriptions[0].status is SubscriptionStatus.TRIAL


def test_a_customer_user_without_admin_role_cannot_start_a_trial(m: Money) -> None:
    """A plain user is ``Forbidden`` by the trial rule; the denial is audited, nothing else
    is written."""
    url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE")
    before = state(m.store)
    with pytest.raises(Forbidden) as info:
        m.portal.redeem(url, m.world.customer_user)
    assert info.value.decision.rule is Rule.TRIAL_NEEDS_ADMIN_ROLE
    assert_unchanged_but_audited(m, before, "denied")


@pytest.mark.parametrize("role", [AdminRole.GLOBAL_ADMIN, AdminRole.BILLING_ADMIN])
def test_customer_admins_with_purchase_may_accept_an_offer(mm: Money, role: AdminRole) -> None:
    """Global and billing admins hold ``PURCHASE``."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)])
    buyer = customer_user(mm, role, "buyer")
    assert mm.portal.redeem(url, buyer).subscriptions[0].licenses == 50


@pytest.mark.parametrize(
    "role",
    [
        AdminRole.PASSWORD_ADMIN,
        AdminRole.SERVICE_ADMIN,
        AdminRole.USER_MANAGEMENT_ADMIN,
        None,
    ],
)
def test_customer_users_without_purchase_cannot_accept_an_offer(
    mm: Money, role: AdminRole | None
) -> None:
    """Password, service and user-management admins and plain users are ``Forbidden``
    to buy; the denial names ``PURCHASE`` and nothing is bought."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)])
    actor = customer_user(mm, role, "nobuyer")
    before = state(mm.store)
    with pytest.raises(Forbidden) as info:
        mm.portal.redeem(url, actor)
    assert info.value.permission is Permission.PURCHASE
    assert_unchanged_but_audited(mm, before, "denied")


@pytest.mark.parametrize("who", ["partner_admin", "partner_agent", "partner_billing"])
def test_partner_users_never_redeem(mm: Money, who: str) -> None:
    """No user of a partner redeems a trial or an offer, whatever its roles."""
    actor: User = getattr(mm.world, who)
    trial_url = mm.portal.create_trial_invitation(mm.partner_admin, "EXCHANGE")
    offer_url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)])
    for url in (trial_url, offer_url):
        with pytest.raises(Forbidden) as info:
            mm.portal.redeem(url, actor)
        assert info.value.decision.rule is Rule.PARTNER_USERS_NEVER_REDEEM
    assert mm.portal.list_subscriptions(mm.partner_admin) == []


def test_an_unknown_actor_cannot_redeem(mm: Money) -> None:
    """An actor id the store does not know is ``Forbidden``."""
    url = mm.portal.create_trial_invitation(mm.partner_admin, "EXCHANGE")
    with pytest.raises(Forbidden) as info:
        mm.portal.redeem(url, "usr_nobody")
    assert info.value.decision.rule is Rule.ACTOR_UNKNOWN


# -- delegated administration carried by a link --------------------------------------------------


def test_a_global_admin_can_consent_to_delegation_while_redeeming(m: Money) -> None:
    """``accept_delegated_admin=True`` makes the delegation ``ACTIVE`` with the purchase."""
    url, _ = m.portal.create_purchase_offer(m.partner_admin, [OfferLine("INTUNE", 50)], True)
    result = m.portal.redeem(url, m.admin, accept_delegated_admin=True)
    assert result.delegation is not None
    assert result.delegation.status is DelegationStatus.ACTIVE
    assert result.delegation.customer_id == m.customer.id
    assert result.subscriptions[0].licenses == 50


def test_declining_the_delegation_keeps_the_purchase(mm: Money) -> None:
    """``False`` from a global admin declines the delegation; the customer still gets what
    it bought."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)], True)
    result = mm.portal.redeem(url, mm.admin, accept_delegated_admin=False)
    assert result.delegation is not None
    assert result.delegation.status is DelegationStatus.DECLINED
    assert result.delegation.decided_by == mm.admin.id
    assert [s.licenses for s in result.subscriptions] == [50]


def test_only_a_global_admin_declines_anyone_else_leaves_the_delegation_pending(
    mm: Money,
) -> None:
    """SPEC F2: the global admin is the only role that accepts or declines. A billing admin
    who buys with ``False`` keeps the purchase and leaves the delegation pending; the global
    admin then consents through the same link (or ``accept_delegation``), once."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)], True)
    bought = mm.portal.redeem(url, mm.billing, accept_delegated_admin=False)
    assert bought.delegation is not None
    assert bought.delegation.status is DelegationStatus.PENDING
    assert [s.licenses for s in bought.subscriptions] == [50]
    consented = mm.portal.redeem(url, mm.admin, accept_delegated_admin=True)
    assert consented.subscriptions == bought.subscriptions
    assert consented.delegation is not None
    assert consented.delegation.id == bought.delegation.id
    assert consented.delegation.status is DelegationStatus.ACTIVE
    assert consented.delegation.decided_by == mm.admin.id
    events = [e for e in mm.portal.audit_trail(mm.admin) if e.action == "delegation.accept"]
    assert [(e.actor_id, e.delegation_id) for e in events] == [(mm.admin.id, bought.delegation.id)]
    # Once: the same call again replays the active delegation and records nothing.
    trail = mm.portal.audit_trail(mm.admin)
    again = mm.portal.redeem(url, mm.admin, accept_delegated_admin=True)
    assert again == consented
    assert mm.portal.audit_trail(mm.admin) == trail


def test_a_global_admin_declines_through_the_link_what_a_purchase_left_pending(
    mm: Money,
) -> None:
    """The billing admin buys (the delegation waits); the global admin answers ``False``
    through the same link: declined, once, and the purchase stands."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)], True)
    bought = mm.portal.redeem(url, mm.billing, accept_delegated_admin=False)
    assert bought.delegation is not None
    refused = mm.portal.redeem(url, mm.admin, accept_delegated_admin=False)
    assert refused.subscriptions == bought.subscriptions
    assert refused.delegation is not None
    assert (refused.delegation.id, refused.delegation.status) == (
        bought.delegation.id,
        DelegationStatus.DECLINED,
    )
    assert refused.delegation.decided_by == mm.admin.id
    trail = mm.portal.audit_trail(mm.admin)
    assert [e.action for e in trail].count("delegation.decline") == 1
    assert mm.portal.redeem(url, mm.admin, accept_delegated_admin=False) == refused
    assert mm.portal.audit_trail(mm.admin) == trail


def test_anyone_who_records_a_delegation_link_cannot_decline_it(mm: Money) -> None:
    """Any user of the customer may redeem a standalone delegation link, to record it for
    its global admins; ``False`` from one who is not a global admin records it pending too,
    and a global admin may still accept it."""
    url = mm.portal.offer_delegated_admin(mm.partner_admin)
    recorded = mm.portal.redeem(url, mm.password_admin, accept_delegated_admin=False)
    assert recorded.delegation is not None
    assert recorded.delegation.status is DelegationStatus.PENDING
    accepted = mm.portal.accept_delegation(mm.admin, recorded.delegation.id)
    assert accepted.status is DelegationStatus.ACTIVE


def test_an_offer_is_held_to_the_catalogue_of_the_day_it_is_redeemed(mm: Money) -> None:
    """The catalogue may change after an offer is made: a count no longer within its
    service's bounds is refused (the customer may adjust it), and a service no longer sold
    is not found; nothing is written."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("EXCHANGE", 900)])
    shrunk = Catalog(
        [
            Service(sku="EXCHANGE", name="Exchange Online", min_licenses=1, max_licenses=100),
            Service(sku="INTUNE", name="Intune", min_licenses=5, max_licenses=500),
        ]
    )
    mm.portal.catalog = shrunk
    before = state(mm.store)
    with pytest.raises(ValidationError) as info:
        mm.portal.redeem(url, mm.billing)
    assert info.value.field == "licenses[EXCHANGE]"
    assert_unchanged_but_audited(mm, before, "failed")
    (sub,) = mm.portal.redeem(url, mm.billing, licenses={"EXCHANGE": 100}).subscriptions
    assert sub.licenses == 100
    other, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 5)])
    mm.portal.catalog = Catalog([shrunk.get("EXCHANGE")])
    before = state(mm.store)
    with pytest.raises(NotFound):
        mm.portal.redeem(other, mm.billing)
    assert_unchanged_but_audited(mm, before, "failed")


def test_without_an_answer_the_delegation_waits_for_a_global_admin(mm: Money) -> None:
    """``None`` (the default) records it ``PENDING``."""
    url = mm.portal.create_trial_invitation(mm.partner_admin, "EXCHANGE", True)
    result = mm.portal.redeem(url, mm.password_admin)
    assert result.delegation is not None
    assert result.delegation.status is DelegationStatus.PENDING


def test_only_a_global_admin_consents_and_a_refused_consent_buys_nothing(mm: Money) -> None:
    """A billing admin may buy but not consent: ``True`` from it is ``Forbidden`` and the
    whole redemption is refused."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)], True)
    before = state(mm.store)
    with pytest.raises(Forbidden) as info:
        mm.portal.redeem(url, mm.billing, accept_delegated_admin=True)
    assert info.value.permission is Permission.MANAGE_PARTNER_RELATIONSHIPS
    assert_unchanged_but_audited(mm, before, "denied")


def test_consenting_to_a_delegation_the_link_does_not_offer_is_refused(mm: Money) -> None:
    """``True`` on a link without delegated administration is a ``ValidationError``."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)])
    with pytest.raises(ValidationError) as info:
        mm.portal.redeem(url, mm.admin, accept_delegated_admin=True)
    assert info.value.field == "accept_delegated_admin"


# -- changing licences and listing ----------------------------------------------------------------


def active_intune(m: Money, count: int = 50) -> str:
    url, _ = m.portal.create_purchase_offer(m.partner_admin, [OfferLine("INTUNE", count)])
    return m.portal.redeem(url, m.billing).subscriptions[0].id


@pytest.mark.parametrize("who", ["admin", "billing"])
def test_the_customers_global_and_billing_admins_change_licences(mm: Money, who: str) -> None:
    """Both hold ``MANAGE_SUBSCRIPTIONS``; the new count is stored."""
    sub_id = active_intune(mm)
    changed = mm.portal.change_licenses(getattr(mm, who), sub_id, 75)
    assert changed.licenses == 75
    assert subscriptions_of(mm.store, mm.customer.id) == [changed]


@pytest.mark.parametrize("who", ["password_admin", "customer_user"])
def test_customer_users_without_subscription_rights_cannot_change_licences(
    mm: Money, who: str
) -> None:
    """A password admin or a plain user is ``Forbidden``; the count stays."""
    sub_id = active_intune(mm)
    actor = mm.password_admin if who == "password_admin" else mm.world.customer_user
    with pytest.raises(Forbidden):
        mm.portal.change_licenses(actor, sub_id, 75)
    assert subscriptions_of(mm.store, mm.customer.id)[0].licenses == 50


def delegate(m: Money, roles: set[AdminRole] | None) -> None:
    """The customer's global admin consents to a delegation of *roles* to the partner."""
    url = m.portal.offer_delegated_admin(m.partner_admin, roles=roles)
    m.portal.redeem(url, m.admin, accept_delegated_admin=True)


def test_a_partner_user_changes_licences_through_a_delegation_that_grants_it(mm: Money) -> None:
    """A FULL partner user acting through a delegation with the billing role may change
    the count; without a delegation it may not."""
    sub_id = active_intune(mm)
    with pytest.raises(Forbidden):
        mm.portal.change_licenses(mm.partner_admin, sub_id, 60)
    delegate(mm, {AdminRole.BILLING_ADMIN})
    assert mm.portal.change_licenses(mm.partner_admin, sub_id, 60).licenses == 60


def test_a_delegation_without_subscription_rights_does_not_change_licences(mm: Money) -> None:
    """Through a password-admin-only delegation, and as a LIMITED user through any, the
    partner may not change counts."""
    sub_id = active_intune(mm)
    delegate(mm, {AdminRole.PASSWORD_ADMIN})
    with pytest.raises(Forbidden):
        mm.portal.change_licenses(mm.partner_admin, sub_id, 60)
    with pytest.raises(Forbidden):
        mm.portal.change_licenses(mm.world.partner_agent, sub_id, 60)
    assert subscriptions_of(mm.store, mm.customer.id)[0].licenses == 50


def test_a_partner_lists_the_subscriptions_it_advises_and_no_others(mm: Money) -> None:
    """The customer sees its own; the partner sees those it advises across customers."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)])
    mine = mm.portal.redeem(url, mm.billing).subscriptions
    _, other_admin = new_customer(mm.portal)
    theirs = mm.portal.redeem(url, other_admin).subscriptions
    _, loner_admin = new_customer(mm.portal)
    _, other_partner_admin = mm.portal.register_partner(
        name="Litware", contact=ContactInfo(email="hi@litware.example"), admin_email="l@lit.example"
    )
    elsewhere, _ = mm.portal.create_purchase_offer(other_partner_admin, [OfferLine("PROJECT", 1)])
    mm.portal.redeem(elsewhere, loner_admin)

    assert mm.portal.list_subscriptions(mm.billing) == list(mine)
    advised = mm.portal.list_subscriptions(mm.world.partner_agent)
    assert sorted(s.id for s in advised) == sorted(s.id for s in (*mine, *theirs))
    assert all(s.partner_id == mm.world.partner.id for s in advised)


def test_a_plain_customer_user_cannot_list_subscriptions(mm: Money) -> None:
    """Listing a customer's subscriptions needs ``MANAGE_SUBSCRIPTIONS``."""
    with pytest.raises(Forbidden):
        mm.portal.list_subscriptions(mm.world.customer_user)


# -- sign-up: company, admin and redemption in one unit of work ----------------------------------


def test_a_new_customer_signs_up_through_a_trial_link(m: Money) -> None:
    """The company, its first global admin and the trial arrive together."""
    url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE", True)
    company, admin, result = m.portal.sign_up(
        url,
        name="Northwind",
        domain="Northwind.example",
        admin_email="nia@northwind.example",
        accept_delegated_admin=True,
    )
    assert (company.name, company.domain) == ("Northwind", "northwind.example")
    assert (admin.company_id, admin.admin_role) == (company.id, AdminRole.GLOBAL_ADMIN)
    (trial,) = result.subscriptions
    assert (trial.customer_id, trial.status) == (company.id, SubscriptionStatus.TRIAL)
    assert result.delegation is not None
    assert result.delegation.status is DelegationStatus.ACTIVE
    assert result.delegation.decided_by == admin.id
    assert m.portal.list_subscriptions(admin) == [trial]
    # SPEC F7: who acted. The new global admin signed up, and gave the consent.
    events = [e for e in m.portal.audit_trail(admin) if e.company_id == company.id]
    assert [e.action for e in events] == ["delegation.offer", "delegation.accept", "link.sign_up"]
    assert {(e.actor_id, e.actor_company_id, e.role) for e in events} == {
        (admin.id, company.id, "global_admin")
    }


def test_a_sign_up_through_an_offer_takes_adjusted_counts(mm: Money) -> None:
    """A new customer may adjust counts within bounds as it signs up."""
    url, _ = mm.portal.create_purchase_offer(mm.partner_admin, [OfferLine("INTUNE", 50)])
    _, _, result = mm.portal.sign_up(
        url,
        name="Adatum",
        domain="adatum.example",
        admin_email="a@adatum.example",
        licenses={"INTUNE": 500},
    )
    assert [s.licenses for s in result.subscriptions] == [500]


@pytest.mark.parametrize("failure", ["revoked", "bad-count", "spent", "withdrawn"])
def test_a_sign_up_whose_redemption_fails_leaves_no_company_and_no_user(
    m: Money, failure: str
) -> None:
    """A revoked link, a bad licence count, a spent link or a withdrawn offer: the error
    reaches the caller and the store is exactly as before — no company, no admin, no
    audit event."""
    url, offer = m.portal.create_purchase_offer(
        m.partner_admin, [OfferLine("INTUNE", 50)], max_uses=1
    )
    licenses = None
    if failure == "revoked":
        m.portal.revoke_link(m.partner_admin, offer.link_id)
    elif failure == "bad-count":
        licenses = {"INTUNE": 501}
    elif failure == "spent":
        m.portal.redeem(url, m.billing)
    else:
        m.portal.withdraw_offer(m.partner_admin, offer.id)
    before = state(m.store)

    expected = {"revoked": LinkRevoked, "bad-count": ValidationError, "spent": LinkExhausted}
    with pytest.raises(expected.get(failure, LinkRevoked)):
        m.portal.sign_up(
            url,
            name="Northwind",
            domain="northwind.example",
            admin_email="nia@northwind.example",
            licenses=licenses,
        )
    assert state(m.store) == before


@pytest.mark.parametrize(
    ("domain", "email", "field"),
    [
        ("fabrikam.example", "new@elsewhere.example", "domain"),
        ("FABRIKAM.example", "new@elsewhere.example", "domain"),
        ("elsewhere.example", "CY@fabrikam.example", "admin_email"),
        ("elsewhere.example", "not-an-email", "admin_email"),
    ],
)
def test_a_sign_up_with_a_taken_domain_or_email_writes_nothing(
    m: Money, domain: str, email: str, field: str
) -> None:
    """A domain already registered (in any case) or an e-mail already in use is a
    ``ValidationError`` naming it; nothing is written."""
    url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE")
    before = state(m.store)
    with pytest.raises(ValidationError) as info:
        m.portal.sign_up(url, name="Again", domain=domain, admin_email=email)
    assert info.value.field == field
    assert state(m.store) == before


def test_a_sign_up_through_an_expired_link_writes_nothing(mm: Money) -> None:
    """Expiry is checked before anything is written."""
    url = mm.portal.create_trial_invitation(
        mm.partner_admin, "EXCHANGE", expires_in=timedelta(hours=1)
    )
    mm.clock.advance(hours=2)
    before = state(mm.store)
    with pytest.raises(LinkExpired):
        mm.portal.sign_up(url, name="Late", domain="late.example", admin_email="l@late.example")
    assert state(mm.store) == before


def test_intune_bounds_are_the_catalogues() -> None:
    """The bounds these tests rely on (a guard against a silently edited catalogue)."""
    assert (INTUNE.min_licenses, INTUNE.max_licenses) == (5, 500)
