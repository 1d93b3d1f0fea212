"""``Portal.customer_profile``: a partner's console opens one customer's page by its id.

A partner that only advises a customer (no delegation) could find it by searching, but not
read it by id: ``profile`` needs a delegation. The new use case answers by id exactly what
``find_customers`` finds, and for every other id says ``NotFound`` alike.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from delegation_kit import CustomerCast, PartnerCast, add_customer, add_partner, consent
from partnerkit import Forbidden, NotFound, Portal, User, ValidationError
from partnerkit.testing import FakeClock

pytest_plugins = ["pg_fixtures", "cast_fixtures"]


def _everyone_found(portal: Portal, actor: User) -> dict[str, object]:
    found: dict[str, object] = {}
    after = None
    while True:
        page = portal.find_customers(actor, "", limit=2, after=after)
        found.update((c.id, c) for c in page)
        if len(page) < 2:
            return found
        after = page[-1].id


def _answer(portal: Portal, actor: User, company_id: str) -> object:
    try:
        return portal.customer_profile(actor, company_id)
    except NotFound as error:
        return type(error)


def test_it_answers_by_id_what_the_search_finds(
    portal: Portal, clock: FakeClock, partner: PartnerCast, customer: CustomerCast
) -> None:
    """Advised, administered (with and without an end date), revoked, expired, pending,
    another partner's, a partner, an id of nothing: for every user with partner access,
    the company exactly when ``find_customers`` finds it, ``NotFound`` otherwise."""
    other = add_partner(portal, "Northwind", "northwind")
    advised = add_customer(portal, "Advised", "advised.example", roles=())
    portal.redeem(portal.create_trial_invitation(partner.full, "EXCHANGE", False), advised.admin)
    consent(portal, partner.admin, customer)
    short = add_customer(portal, "Short", "short.example", roles=())
    consent(portal, partner.admin, short, duration=timedelta(days=1))
    revoked = add_customer(portal, "Revoked", "revoked.example", roles=())
    portal.revoke_delegation(revoked.admin, consent(portal, partner.admin, revoked).id)
    pending = add_customer(portal, "Pending", "pending.example", roles=())
    consent(portal, partner.admin, pending, accept=None)
    theirs = add_customer(portal, "Theirs", "theirs.example", roles=())
    consent(portal, other.admin, theirs)
    ids = [c.company.id for c in (customer, advised, short, revoked, pending, theirs)] + [
        partner.company.id,
        other.company.id,
        "cmp_nobody",
    ]
    for when in (clock(), clock() + timedelta(days=2)):
        clock.set(when)
        for actor in (partner.admin, partner.full, partner.limited):
            found = _everyone_found(portal, actor)
            answers = {cid: _answer(portal, actor, cid) for cid in ids}
            assert {cid for cid, a in answers.items() if a is not NotFound} == set(found)
            assert all(answers[cid] == found[cid] for cid in found)
    assert set(_everyone_found(portal, partner.full)) == {customer.company.id, advised.company.id}


def test_users_without_partner_access_are_refused(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    consent(portal, partner.admin, customer)
    for user in (partner.plain, partner.billing, customer.admin):
        with pytest.raises(Forbidden):
            portal.customer_profile(user, customer.company.id)
    with pytest.raises(ValidationError) as info:
        portal.customer_profile(partner.full, 7)  # type: ignore[arg-type]
    assert info.value.field == "customer_id"


def test_an_id_the_partner_may_not_know_reads_as_one_of_nothing(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """Another partner's customer and an id of no company get the same refusal, but for
    the id it names."""
    other = add_partner(portal, "Northwind", "northwind")
    consent(portal, other.admin, customer)
    errors = []
    for cid in (customer.company.id, "cmp_nobody"):
        with pytest.raises(NotFound) as info:
            portal.customer_profile(partner.full, cid)
        errors.append(str(info.value).replace(cid, "<id>"))
    assert errors[0] == errors[1]
