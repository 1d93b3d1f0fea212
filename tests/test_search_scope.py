"""Whom ``find_customers`` finds: the customers a partner advises or administers *now*.

SPEC F6: a partner searches "the customers it advises or administers". A customer is found
while the partner is advisor of one of its subscriptions, or holds a delegation of it that
has not ended: from the instant it is revoked, ended by either side, or past its end date
(judged with the clock at the search, no job needed), it is no longer found, unless the
partner advises it. The same on every built-in store, through the Portal.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from delegation_kit import CustomerCast, PartnerCast, add_customer, add_partner, consent
from delegation_kit import make_portal as _make_portal
from partnerkit import OfferLine, Portal
from partnerkit.ports import Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FakeClock, sample_catalog

pytest_plugins = ["pg_fixtures"]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgres":
        yield request.getfixturevalue("pg_store")
        return
    made: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    yield made
    made.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def portal(store: Store, clock: FakeClock) -> Portal:
    return _make_portal(store, clock, sample_catalog())


@pytest.fixture
def partner(portal: Portal) -> PartnerCast:
    return add_partner(portal, "Contoso", "contoso")


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
