"""The terms of a delegation offered with a trial invitation or a purchase offer.

``offer_delegated_admin`` always took the roles and the duration; a delegation included in
a trial or an offer could only ask for all five roles with no end date, and the
``partnerkit link new --trial --with-delegated-admin`` command dropped ``--role`` and
``--days`` without a word (found by the sixteenth session's newcomer review). They now take
``delegation_roles`` and ``delegation_duration``; given without a delegation they are a
``ValidationError``, as they would be ignored.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from partnerkit import (
    AdminRole,
    DelegationStatus,
    OfferLine,
    Portal,
    ValidationError,
)
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing import FakeClock, World, build_world, sample_catalog

_PASSWORD = frozenset({AdminRole.PASSWORD_ADMIN})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(clock: FakeClock) -> World:
    return build_world(Portal(store=MemoryStore(), catalog=sample_catalog(), clock=clock))


def _terms(world: World, url: str) -> tuple[frozenset[AdminRole], timedelta | None]:
    portal = world.portal
    claims = portal.inspect_link(url)
    with portal.store.unit_of_work(write=False) as uow:
        record = uow.links.get(claims.link_id)
        assert record is not None
        assert record.delegation_offer_id is not None
        offer = uow.delegation_offers.get(record.delegation_offer_id)
    assert offer is not None
    return offer.roles, offer.duration


def test_a_trial_asks_for_the_roles_and_the_duration_it_was_given(
    world: World, clock: FakeClock
) -> None:
    """The customer who signs up through it consents to those terms and no more."""
    url = world.portal.create_trial_invitation(
        world.partner_admin,
        "EXCHANGE",
        True,
        delegation_roles={AdminRole.PASSWORD_ADMIN},
        delegation_duration=timedelta(days=30),
    )
    assert _terms(world, url) == (_PASSWORD, timedelta(days=30))
    _, _, result = world.portal.sign_up(
        url,
        name="Tailspin",
        domain="tailspin.example",
        admin_email="ty@tailspin.example",
        accept_delegated_admin=True,
    )
    delegation = result.delegation
    assert delegation is not None
    assert delegation.status is DelegationStatus.ACTIVE
    assert delegation.roles == _PASSWORD
    assert delegation.ends_at == clock() + timedelta(days=30)


def test_a_purchase_offer_asks_for_its_terms_and_the_audit_trail_says_which(
    world: World,
) -> None:
    url, _ = world.portal.create_purchase_offer(
        world.partner_admin,
        [OfferLine("EXCHANGE", 10)],
        True,
        delegation_roles=AdminRole.PASSWORD_ADMIN,
    )
    assert _terms(world, url) == (_PASSWORD, None)
    result = world.portal.redeem(url, world.customer_admin, accept_delegated_admin=True)
    assert result.delegation is not None
    assert result.delegation.roles == _PASSWORD
    assert result.delegation.ends_at is None
    (event,) = [
        e
        for e in world.portal.audit_trail(world.partner_admin)
        if e.action == "link.create_purchase_offer"
    ]
    detail = dict(event.detail)
    assert detail["roles"] == "password_admin"
    assert detail["duration_days"] == "none"


def test_by_default_the_included_delegation_asks_for_all_five_roles_with_no_end(
    world: World,
) -> None:
    url = world.portal.create_trial_invitation(world.partner_admin, "EXCHANGE", True)
    assert _terms(world, url) == (frozenset(AdminRole), None)


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"delegation_roles": {AdminRole.PASSWORD_ADMIN}}, "delegation_roles"),
        ({"delegation_duration": timedelta(days=30)}, "delegation_duration"),
    ],
)
@pytest.mark.parametrize("kind", ["trial", "offer"])
def test_terms_without_a_delegation_are_refused_and_nothing_is_issued(
    world: World, terms: dict[str, Any], field: str, kind: str
) -> None:
    portal = world.portal
    partner_id = world.partner.id
    with portal.store.unit_of_work(write=False) as uow:
        before = uow.links.count(partner_id=partner_id)
    issue = (
        (lambda: portal.create_trial_invitation(world.partner_admin, "EXCHANGE", **terms))
        if kind == "trial"
        else (
            lambda: portal.create_purchase_offer(
                world.partner_admin, [OfferLine("EXCHANGE", 5)], **terms
            )
        )
    )
    with pytest.raises(ValidationError) as refused:
        issue()
    assert refused.value.field == field
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.links.count(partner_id=partner_id) == before


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"delegation_roles": set()}, "delegation_roles"),
        ({"delegation_roles": {"global_admin"}}, "delegation_roles"),
        ({"delegation_duration": timedelta(hours=1)}, "delegation_duration"),
        ({"delegation_duration": 30}, "delegation_duration"),
    ],
)
def test_bad_terms_are_refused_by_the_names_this_call_takes_them_by(
    world: World, terms: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        world.portal.create_trial_invitation(world.partner_admin, "EXCHANGE", True, **terms)
    assert refused.value.field == field


def test_a_superseding_offer_keeps_each_old_term_it_is_not_given(world: World) -> None:
    """Each term stays as the customer was offered it unless given anew: asking for a
    shorter duration keeps the roles (before, giving one term put all five roles back, or
    took the end date away, the review found)."""
    portal, ana = world.portal, world.partner_admin
    _, first = portal.create_purchase_offer(
        ana,
        [OfferLine("EXCHANGE", 10)],
        True,
        delegation_roles={AdminRole.PASSWORD_ADMIN},
        delegation_duration=timedelta(days=7),
    )
    kept_url, kept = portal.supersede_offer(ana, first.id, [OfferLine("EXCHANGE", 12)])
    assert _terms(world, kept_url) == (_PASSWORD, timedelta(days=7))
    shorter_url, shorter = portal.supersede_offer(
        ana, kept.id, [OfferLine("EXCHANGE", 12)], delegation_duration=timedelta(days=3)
    )
    assert _terms(world, shorter_url) == (_PASSWORD, timedelta(days=3))
    wider_url, _ = portal.supersede_offer(
        ana,
        shorter.id,
        [OfferLine("EXCHANGE", 14)],
        delegation_roles={AdminRole.BILLING_ADMIN, AdminRole.PASSWORD_ADMIN},
    )
    assert _terms(world, wider_url) == (
        frozenset({AdminRole.BILLING_ADMIN, AdminRole.PASSWORD_ADMIN}),
        timedelta(days=3),
    )


def test_an_offer_superseded_with_a_delegation_it_had_none_of_asks_for_the_defaults(
    world: World,
) -> None:
    portal, ana = world.portal, world.partner_admin
    _, first = portal.create_purchase_offer(ana, [OfferLine("EXCHANGE", 10)])
    url, _ = portal.supersede_offer(ana, first.id, [OfferLine("EXCHANGE", 10)], True)
    assert _terms(world, url) == (frozenset(AdminRole), None)
