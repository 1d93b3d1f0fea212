"""Whom ``find_customers`` finds: the customers a partner advises or administers *now*.

SPEC F6: a partner searches "the customers it advises or administers". A customer is found
while the partner is advisor of one of its subscriptions, or holds a delegation of it that
has not ended: from the instant it is revoked, ended by either side, or past its end date
(judged with the clock at the search, no job needed), it is no longer found, unless the
partner advises it. The same on every built-in store, through the Portal.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from delegation_kit import CustomerCast, PartnerCast, add_customer, add_partner, consent
from partnerkit import OfferLine, Permission, Portal
from partnerkit.testing import FakeClock

pytest_plugins = ["pg_fixtures", "cast_fixtures"]


@pytest.fixture
def customer(portal: Portal) -> CustomerCast:
    return add_customer(portal, "Fabrikam", "fabrikam.example", roles=())


def _finds(portal: Portal, partner: PartnerCast, customer: CustomerCast) -> bool:
    """Whether the partner's FULL user finds the customer, by name and by domain."""
    by_name = [c.id for c in portal.find_customers(partner.full, "fabri")]
    by_domain = [c.id for c in portal.find_customers(partner.full, "fabrikam.ex")]
    assert by_name == by_domain, "the name and the domain find the same customers"
    return customer.company.id in by_name


def test_a_delegation_lists_the_customer_until_it_is_revoked(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    assert not _finds(portal, partner, customer)
    first = consent(portal, partner.admin, customer)
    assert _finds(portal, partner, customer)
    portal.revoke_delegation(customer.admin, first.id)
    assert not _finds(portal, partner, customer)
    # A new consent lists it again.
    consent(portal, partner.admin, customer)
    assert _finds(portal, partner, customer)


def test_the_partner_ending_its_delegation_unlists_the_customer(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    delegation = consent(portal, partner.admin, customer)
    assert _finds(portal, partner, customer)
    portal.end_delegation(partner.admin, delegation.id)
    assert not _finds(portal, partner, customer)


def test_a_delegation_past_its_end_date_lists_nothing_without_any_write(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, clock: FakeClock
) -> None:
    """Judged with the clock at the search: nothing is written when the end date passes."""
    delegation = consent(portal, partner.admin, customer, duration=timedelta(days=2))
    assert delegation.ends_at is not None
    clock.set(delegation.ends_at - timedelta(microseconds=1))
    assert _finds(portal, partner, customer)
    clock.set(delegation.ends_at)
    assert not _finds(portal, partner, customer)


def test_a_declined_or_pending_delegation_never_lists_the_customer(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    consent(portal, partner.admin, customer, accept=None)
    assert not _finds(portal, partner, customer)
    consent(portal, partner.admin, customer, accept=False)
    assert not _finds(portal, partner, customer)


def test_an_advised_customer_stays_listed_when_the_delegation_goes(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    url = portal.create_trial_invitation(partner.full, "EXCHANGE", include_delegated_admin=False)
    portal.redeem(url, customer.admin)
    assert _finds(portal, partner, customer)
    delegation = consent(portal, partner.admin, customer)
    portal.revoke_delegation(customer.admin, delegation.id)
    assert _finds(portal, partner, customer)


def test_a_partner_whose_trial_another_partner_converts_no_longer_advises_the_customer(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """The trial's partner advised the customer through that one subscription; once another
    partner's offer converts it, the other partner is its advisor, and only it finds the
    customer."""
    other = add_partner(portal, "Litware", "litware")
    trial = portal.create_trial_invitation(partner.full, "EXCHANGE", include_delegated_admin=False)
    portal.redeem(trial, customer.admin)
    assert _finds(portal, partner, customer)
    offer, _ = portal.create_purchase_offer(other.full, [OfferLine("EXCHANGE", 10)])
    (converted,) = portal.redeem(offer, customer.admin).subscriptions
    assert converted.partner_id == other.company.id
    assert _finds(portal, other, customer)
    assert not _finds(portal, partner, customer)


def test_a_partner_that_still_advises_another_subscription_stays_listed(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    other = add_partner(portal, "Litware", "litware")
    trial = portal.create_trial_invitation(partner.full, "EXCHANGE", include_delegated_admin=False)
    portal.redeem(trial, customer.admin)
    bought, _ = portal.create_purchase_offer(partner.full, [OfferLine("INTUNE", 5)])
    portal.redeem(bought, customer.admin)
    offer, _ = portal.create_purchase_offer(other.full, [OfferLine("EXCHANGE", 10)])
    portal.redeem(offer, customer.admin)
    assert _finds(portal, other, customer)
    assert _finds(portal, partner, customer)


def test_consent_given_with_accept_delegation_lists_until_the_end_date(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, clock: FakeClock
) -> None:
    pending = consent(portal, partner.admin, customer, duration=timedelta(days=3), accept=None)
    assert not _finds(portal, partner, customer)
    accepted = portal.accept_delegation(customer.admin, pending.id)
    assert accepted.ends_at is not None
    assert _finds(portal, partner, customer)
    clock.set(accepted.ends_at)
    assert not _finds(portal, partner, customer)


def _may_reset(portal: Portal, partner: PartnerCast, customer: CustomerCast) -> bool:
    return bool(portal.decide(partner.full, Permission.RESET_PASSWORD, customer.company.id))


def test_a_delegation_accepted_after_one_ended_by_the_clock_takes_its_place(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, clock: FakeClock
) -> None:
    """The first, past its end date, is still stored as active; the second, accepted on the
    same relation, lists the customer and grants rights until its own end date, on every
    store (those that find the delegation by index as much as those that follow the
    relation)."""
    first = consent(portal, partner.admin, customer, duration=timedelta(days=1))
    assert first.ends_at is not None
    clock.set(first.ends_at + timedelta(hours=1))
    assert not _finds(portal, partner, customer)
    assert not _may_reset(portal, partner, customer)
    second = consent(portal, partner.admin, customer, duration=timedelta(days=30))
    assert second.ends_at is not None
    assert _finds(portal, partner, customer)
    assert _may_reset(portal, partner, customer)
    clock.set(second.ends_at - timedelta(microseconds=1))
    assert _finds(portal, partner, customer)
    assert _may_reset(portal, partner, customer)
    clock.set(second.ends_at)
    assert not _finds(portal, partner, customer)
    assert not _may_reset(portal, partner, customer)


def test_an_advised_customer_outlives_the_end_date_of_a_later_delegation(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, clock: FakeClock
) -> None:
    url = portal.create_trial_invitation(partner.full, "EXCHANGE", include_delegated_admin=False)
    portal.redeem(url, customer.admin)
    delegation = consent(portal, partner.admin, customer, duration=timedelta(days=1))
    assert delegation.ends_at is not None
    clock.set(delegation.ends_at)
    assert not _may_reset(portal, partner, customer)
    assert _finds(portal, partner, customer)
