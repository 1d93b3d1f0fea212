"""``Portal.find_customers_page``: a walk through a partner's customers with a cursor that
holds its place, on every built-in store.

``find_customers(after=...)`` starts the next page after the named customer's place *now*;
a customer renamed between two pages moves that place, and the walk skips or repeats the
customers in between. The cursor of ``find_customers_page`` keeps the place itself.
"""

from __future__ import annotations

import base64
import json

import pytest

from delegation_kit import CustomerCast, PartnerCast, add_customer, consent
from partnerkit import CustomerPage, Forbidden, Portal, ValidationError

pytest_plugins = ["pg_fixtures", "cast_fixtures"]

NAMES = [f"Cust {n:02d}" for n in range(20)]


def _customers(portal: Portal, partner: PartnerCast) -> dict[str, CustomerCast]:
    """Twenty customers the partner administers, by company id."""
    casts = {}
    for n, name in enumerate(NAMES):
        customer = add_customer(portal, name, f"c{n:02d}.example", roles=())
        consent(portal, partner.admin, customer)
        casts[customer.company.id] = customer
    return casts


def _walk(portal: Portal, partner: PartnerCast, limit: int, between: object = None) -> list[str]:
    """Every page of the prefix "cust"; *between* runs after the first page."""
    seen: list[str] = []
    cursor = None
    while True:
        page = portal.find_customers_page(partner.full, "cust", limit=limit, cursor=cursor)
        assert isinstance(page, CustomerPage)
        assert len(page.companies) <= limit
        seen += [c.name for c in page.companies]
        if callable(between) and cursor is None:
            between(page)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


def test_a_walk_visits_every_customer_once_in_order(portal: Portal, partner: PartnerCast) -> None:
    """Pages of 7, of 10 (two full pages) and of 20 (one) give what one search gives; the
    last page has no cursor, full or not."""
    _customers(portal, partner)
    whole = [c.name for c in portal.find_customers(partner.full, "cust", limit=500)]
    assert whole == NAMES
    assert _walk(portal, partner, 7) == NAMES
    assert _walk(portal, partner, 10) == NAMES
    last = portal.find_customers_page(partner.full, "cust", limit=20)
    assert [c.name for c in last.companies] == NAMES
    assert last.next_cursor is None
    assert not last.has_more
    first = portal.find_customers_page(partner.full, "cust", limit=10)
    assert first.next_cursor is not None
    assert first.has_more
    second = portal.find_customers_page(partner.full, "cust", limit=10, cursor=first.next_cursor)
    assert (len(second.companies), second.next_cursor, second.has_more) == (10, None, False)


@pytest.mark.parametrize("new_name", ["Cust 99 renamed", "Zeta Ltd", "Aaa first"])
def test_a_customer_renamed_between_pages_moves_and_nobody_else_does(
    portal: Portal, partner: PartnerCast, new_name: str
) -> None:
    """The last customer of page 1 renames itself: the walk goes on from the place the
    cursor held, so every other customer is seen exactly once."""
    casts = _customers(portal, partner)

    def rename(page: CustomerPage) -> None:
        last = page.companies[-1]
        assert last.name == "Cust 06"
        portal.update_profile(casts[last.id].admin, name=new_name)

    seen = _walk(portal, partner, 7, between=rename)
    others = [name for name in NAMES if name != "Cust 06"]
    assert [name for name in seen if name in others] == others
    assert seen.count("Cust 06") == 1  # page 1 showed it under its old name


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64!",
        "x" * 3000,
        base64.urlsafe_b64encode(json.dumps(["a", "b"]).encode()).decode() + "!",
        base64.urlsafe_b64encode(b'["a","b"]').decode() + "====",
        base64.urlsafe_b64encode(b'[ "a" , "b" ]').decode().rstrip("="),
        base64.urlsafe_b64encode(b"not json").decode(),
        base64.urlsafe_b64encode(json.dumps(["only one"]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(["a", 5]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(["a\x00", "b"]).encode()).decode(),
        base64.urlsafe_b64encode(b'["\\ud800", "b"]').decode(),
        42,
        "é",
    ],
)
def test_a_cursor_it_did_not_give_is_a_validation_error(
    portal: Portal, partner: PartnerCast, cursor: object
) -> None:
    with pytest.raises(ValidationError) as info:
        portal.find_customers_page(partner.full, "", cursor=cursor)  # type: ignore[arg-type]
    assert info.value.field == "cursor"


def test_a_page_needs_the_right_to_search(portal: Portal, partner: PartnerCast) -> None:
    """The same right as ``find_customers``: partner access."""
    with pytest.raises(Forbidden):
        portal.find_customers_page(partner.billing, "")
