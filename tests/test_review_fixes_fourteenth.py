"""What the fourteenth session's reviews found, on every built-in store.

A former partner learned a customer's name after it had lost it, through the place of a
search page; and a temporary password from a reset stayed good for any number of sign-ins.
"""

from __future__ import annotations

import pytest

from delegation_kit import CustomerCast, PartnerCast, add_customer, consent
from partnerkit import Portal, ValidationError

pytest_plugins = ["pg_fixtures", "cast_fixtures"]


# -- find_customers(after=...) of a customer the partner no longer finds ----------------------


def _after_refused(portal: Portal, actor: object, after: str) -> str:
    with pytest.raises(ValidationError) as info:
        portal.find_customers(actor, "", limit=10, after=after)  # type: ignore[arg-type]
    assert info.value.field == "after"
    return str(info.value)


def test_a_former_customer_is_no_place_to_start_a_page(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """Once the delegation is revoked, the customer's id as ``after`` is refused exactly as
    that of a company the partner never knew: the place it would give is the customer's
    current name, which the partner may no longer read."""
    delegation = consent(portal, partner.admin, customer)
    other = add_customer(portal, "Northwind", "northwind.example")
    assert [c.id for c in portal.find_customers(partner.admin, "", after=customer.company.id)] == []
    portal.revoke_delegation(customer.admin, delegation.id)
    portal.update_profile(customer.admin, name="Zeta Holdings")
    former = _after_refused(portal, partner.admin, customer.company.id)
    never = _after_refused(portal, partner.admin, other.company.id)
    assert former.replace(customer.company.id, "?") == never.replace(other.company.id, "?")


def test_a_customer_past_its_delegations_end_is_no_place_either(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, clock: object
) -> None:
    from datetime import timedelta

    consent(portal, partner.admin, customer, duration=timedelta(days=1))
    assert portal.find_customers(partner.admin, "", after=customer.company.id) == []
    clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
    _after_refused(portal, partner.admin, customer.company.id)
