"""``Portal.link_terms``: what a link offers, read before it is redeemed.

A customer's consent is to terms it can be shown; before ``link_terms`` no public call gave a
link's delegation roles and duration (``inspect_link`` gives the claims, which carry only
whether a delegation is included), so a consent page could not show what it asked for.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from partnerkit import (
    AdminRole,
    Catalog,
    ContactInfo,
    InvalidLink,
    LinkExhausted,
    LinkExpired,
    LinkRevoked,
    NotFound,
    OfferLine,
    Portal,
    Service,
    TrialTerms,
)
from partnerkit.testing import FakeClock, World

pytest_plugins = ["pg_fixtures"]


@pytest.fixture
def world(any_world: World) -> World:
    return any_world


def test_a_trial_invitation_shows_its_service_trial_and_partner(world: World) -> None:
    url = world.portal.create_trial_invitation(world.partner_admin, "EXCHANGE")
    terms = world.portal.link_terms(url)
    assert terms.claims == world.portal.inspect_link(url)
    assert terms.partner_name == world.partner.name
    assert (terms.sku, terms.trial) == ("EXCHANGE", world.portal.catalog.get("EXCHANGE").trial)
    assert (terms.quote_id, terms.lines) == (None, ())
    assert (terms.delegation_roles, terms.delegation_duration) == (None, None)


def test_a_purchase_offer_shows_its_quote_and_lines(world: World) -> None:
    lines = [OfferLine("EXCHANGE", 40), OfferLine("INTUNE", 50)]
    url, offer = world.portal.create_purchase_offer(world.partner_admin, lines, False)
    terms = world.portal.link_terms(url)
    assert (terms.quote_id, terms.lines) == (offer.quote_id, tuple(lines))
    assert (terms.sku, terms.trial, terms.delegation_roles) == (None, None, None)


ROLE_SETS = [
    None,
    AdminRole.PASSWORD_ADMIN,
    frozenset({AdminRole.BILLING_ADMIN, AdminRole.SERVICE_ADMIN}),
]
DURATIONS = [None, timedelta(days=1), timedelta(days=45, hours=6)]


@pytest.mark.parametrize("roles", ROLE_SETS)
@pytest.mark.parametrize("duration", DURATIONS)
@pytest.mark.parametrize("how", ["standalone", "trial", "offer"])
def test_a_consent_in_the_link_grants_exactly_the_terms_it_shows(
    world: World, roles: object, duration: timedelta | None, how: str
) -> None:
    """Whatever the link (standalone, with a trial, with an offer), the delegation a consent
    in it makes has the roles and duration ``link_terms`` gave before."""
    portal, ana = world.portal, world.partner_admin
    if how == "standalone":
        url = portal.offer_delegated_admin(ana, roles=roles, duration=duration)  # type: ignore[arg-type]
    elif how == "trial":
        url = portal.create_trial_invitation(
            ana,
            "EXCHANGE",
            True,
            delegation_roles=roles,
            delegation_duration=duration,  # type: ignore[arg-type]
        )
    else:
        url, _ = portal.create_purchase_offer(
            ana, [OfferLine("EXCHANGE", 5)], True,
            delegation_roles=roles, delegation_duration=duration,  # type: ignore[arg-type]
        )  # fmt: skip
    shown = portal.link_terms(url)
    assert shown.delegation_roles == (
        frozenset(AdminRole) if roles is None
        else frozenset({roles}) if isinstance(roles, AdminRole)
        else roles
    )  # fmt: skip
    assert shown.delegation_duration == duration
    granted = portal.redeem(url, world.customer_admin, accept_delegated_admin=True).delegation
    assert granted is not None
    assert (granted.roles, granted.duration) == (shown.delegation_roles, duration)


def test_a_link_that_no_longer_works_shows_nothing(world: World) -> None:
    """Each refusal as ``inspect_link`` gives it, and redeeming would."""
    portal, ana, clock = world.portal, world.partner_admin, world.portal.clock
    assert isinstance(clock, FakeClock)
    revoked = portal.create_trial_invitation(ana, "EXCHANGE")
    portal.revoke_link(ana, portal.inspect_link(revoked).link_id)
    withdrawn, offer = portal.create_purchase_offer(ana, [OfferLine("EXCHANGE", 5)])
    portal.withdraw_offer(ana, offer.id)
    superseded, old = portal.create_purchase_offer(ana, [OfferLine("INTUNE", 10)])
    portal.supersede_offer(ana, old.id, [OfferLine("INTUNE", 20)])
    spent = portal.create_trial_invitation(ana, "EXCHANGE", max_uses=1)
    portal.redeem(spent, world.customer_admin)
    short = portal.create_trial_invitation(ana, "EXCHANGE", expires_in=timedelta(days=1))
    cases = [
        (revoked, LinkRevoked),
        (withdrawn, LinkRevoked),
        (superseded, LinkRevoked),
        (spent, LinkExhausted),
        (revoked.replace("code=", "code=x"), InvalidLink),
        ("https://portal.example/join", InvalidLink),
        (None, InvalidLink),
    ]
    for url, error in cases:
        with pytest.raises(error):
            portal.link_terms(url)  # type: ignore[arg-type]
        with pytest.raises(error):
            portal.inspect_link(url)  # type: ignore[arg-type]
    assert portal.link_terms(short).sku == "EXCHANGE"
    clock.advance(days=2)
    with pytest.raises(LinkExpired):
        portal.link_terms(short)


def test_reading_the_terms_writes_nothing_and_is_not_audited(world: World) -> None:
    portal = world.portal
    url = portal.offer_delegated_admin(world.partner_admin)
    trail = portal.audit_trail(world.partner_admin)
    for _ in range(3):
        portal.link_terms(url)
    assert portal.audit_trail(world.partner_admin) == trail
    assert portal.redeem(url, world.customer_admin).delegation is not None  # still unused


def test_the_partner_name_is_the_one_it_has_now(world: World) -> None:
    portal = world.portal
    url = portal.create_trial_invitation(world.partner_admin, "EXCHANGE")
    portal.update_profile(world.partner_admin, name="Contoso Cloud Partners")
    assert portal.link_terms(url).partner_name == "Contoso Cloud Partners"


def test_a_trial_of_a_service_the_catalogue_dropped_is_not_found(world: World) -> None:
    """As redeeming it would be: the catalogue of the day decides."""
    url = world.portal.create_trial_invitation(world.partner_admin, "EXCHANGE")
    other = Service(sku="INTUNE", name="Intune", trial=TrialTerms(days=30, licenses=5))
    narrowed = Portal(store=world.portal.store, keyring=world.portal.keyring,
                      catalog=Catalog([other]), clock=world.portal.clock)  # fmt: skip
    with pytest.raises(NotFound):
        narrowed.link_terms(url)
    with pytest.raises(NotFound):
        narrowed.redeem(url, world.customer_admin)


def test_a_partner_and_contact_are_never_shown_beyond_the_name(world: World) -> None:
    """The terms hold the partner's name, not its contact details or users."""
    world.portal.update_profile(
        world.partner_admin, contact=ContactInfo(email="private@contoso.example")
    )
    url = world.portal.offer_delegated_admin(world.partner_admin)
    shown = repr(world.portal.link_terms(url))
    assert "private@contoso.example" not in shown
    assert world.partner_admin.id not in shown
