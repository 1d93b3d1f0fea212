"""Which ``ValidationError`` a refusal is: wrong input, a value taken, or a state that refuses.

A portal answers the three differently (``422``, ``409``, ``409``), so each is its own class:
``AlreadyExists`` and ``InvalidState`` are subclasses of ``ValidationError`` (code that
catches that still catches them), and input that is wrong in itself stays a plain
``ValidationError``. Each case below is checked on every built-in store, and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import attrs
import pytest

from partnerkit import (
    AdminRole,
    AlreadyExists,
    Catalog,
    ContactInfo,
    InvalidState,
    Keyring,
    OfferLine,
    Portal,
    Service,
    ValidationError,
)
from partnerkit.testing import FAST_HASHER, World, snapshot

pytest_plugins = ["pg_fixtures"]


def _refused(
    call: Callable[[], object], kind: type[ValidationError], field: str, world: World
) -> None:
    """*call* raises exactly *kind* on *field*, and the companies and users stay as they were."""
    before = snapshot(world.portal.store)
    with pytest.raises(ValidationError) as raised:
        call()
    assert type(raised.value) is kind, repr(raised.value)
    assert raised.value.field == field
    after = snapshot(world.portal.store)
    assert (after.companies, after.users) == (before.companies, before.users)


def test_a_value_another_holds_is_already_exists(any_world: World) -> None:
    """E-mail addresses (compared case-insensitively) and customer domains are unique."""
    world, portal = any_world, any_world.portal
    cases: list[tuple[Callable[[], object], str]] = [
        (
            lambda: portal.register_customer(
                name="Other", domain="FABRIKAM.example", admin_email="o@other.example"
            ),
            "domain",
        ),
        (
            lambda: portal.register_customer(
                name="Other", domain="other.example", admin_email="Cy@fabrikam.example"
            ),
            "admin_email",
        ),
        (
            lambda: portal.register_partner(
                name="Other",
                contact=ContactInfo(email="hi@other.example"),
                admin_email="ada@contoso.example",
            ),
            "admin_email",
        ),
        (
            lambda: portal.create_user(
                world.partner_admin, email="LEE@contoso.example", display_name="Lee Two"
            ),
            "email",
        ),
        (
            lambda: portal.update_user(
                world.partner_admin, world.partner_agent.id, email="bo@contoso.example"
            ),
            "email",
        ),
    ]
    url = portal.create_trial_invitation(world.partner_admin, "EXCHANGE")
    cases.append(
        (
            lambda: portal.sign_up(
                url, name="Again", domain="fabrikam.example", admin_email="n@again.example"
            ),
            "domain",
        )
    )
    for call, field in cases:
        _refused(call, AlreadyExists, field, world)


def test_a_request_the_state_refuses_is_invalid_state(any_world: World) -> None:
    """Transitions out of final statuses, the last global admin, a second trial, a service
    already bought, a second active delegation: each well-formed, each refused by what is."""
    world, portal = any_world, any_world.portal
    customer, kim = world.customer, world.customer_admin

    # A delegation revoked is revoked for good; a second active one is refused.
    first = portal.redeem(portal.offer_delegated_admin(world.partner_admin), kim).delegation
    second = portal.redeem(portal.offer_delegated_admin(world.partner_admin), kim).delegation
    assert first is not None
    assert second is not None
    portal.accept_delegation(kim, first.id)
    _refused(lambda: portal.accept_delegation(kim, second.id), InvalidState, "delegation", world)
    portal.revoke_delegation(kim, first.id)
    _refused(lambda: portal.accept_delegation(kim, first.id), InvalidState, "status", world)
    _refused(lambda: portal.revoke_delegation(kim, first.id), InvalidState, "status", world)

    # One trial per service; a trial's count does not change; an offer for a bought service.
    trial_url = portal.create_trial_invitation(world.partner_admin, "EXCHANGE")
    (trial,) = portal.redeem(trial_url, kim).subscriptions
    other_trial = portal.create_trial_invitation(world.partner_agent, "EXCHANGE")
    _refused(lambda: portal.redeem(other_trial, kim), InvalidState, "sku", world)
    _refused(lambda: portal.change_licenses(kim, trial.id, 30), InvalidState, "status", world)
    offer_url, _ = portal.create_purchase_offer(
        world.partner_admin, lines=[OfferLine(sku="EXCHANGE", licenses=10)]
    )
    portal.redeem(offer_url, kim)  # converts the trial
    again_url, _ = portal.create_purchase_offer(
        world.partner_admin, lines=[OfferLine(sku="EXCHANGE", licenses=12)]
    )
    _refused(lambda: portal.redeem(again_url, kim), InvalidState, "lines", world)

    # A withdrawn offer stays withdrawn; a closed service request stays closed.
    _, offer = portal.create_purchase_offer(
        world.partner_admin, lines=[OfferLine(sku="INTUNE", licenses=5)]
    )
    portal.withdraw_offer(world.partner_admin, offer.id)
    _refused(
        lambda: portal.withdraw_offer(world.partner_admin, offer.id), InvalidState, "status", world
    )
    request = portal.create_service_request(kim, customer.id, title="Mail is slow")
    portal.update_service_request(kim, request.id, status="closed")
    _refused(
        lambda: portal.update_service_request(kim, request.id, status="open"),
        InvalidState,
        "status",
        world,
    )

    # A company keeps a global admin.
    _refused(lambda: portal.remove_user(kim, kim.id), InvalidState, "user_id", world)
    _refused(
        lambda: portal.assign_roles(kim, kim.id, admin_role=AdminRole.BILLING_ADMIN),
        InvalidState,
        "admin_role",
        world,
    )


def _with_catalog(world: World, *services: Service) -> Portal:
    """The same portal (store, keys, clock, links) after its catalogue changed."""
    old = world.portal
    return Portal(
        store=old.store,
        keyring=old.keyring,
        catalog=Catalog(list(services)),
        base_url=old.base_url,
        clock=old.clock,
        password_hasher=FAST_HASHER,
    )


def test_a_link_the_catalogue_changed_under_is_invalid_state(any_world: World) -> None:
    """A trial link for a service that has since stopped offering trials, and an offer
    whose counts the service's bounds no longer take: the link and the request are what
    they were, the state refuses them. A count the customer gives out of bounds is still
    wrong input."""
    world = any_world
    trial_url = world.portal.create_trial_invitation(world.partner_admin, "EXCHANGE")
    offer_url, _ = world.portal.create_purchase_offer(
        world.partner_admin, lines=[OfferLine(sku="INTUNE", licenses=10)]
    )
    changed = _with_catalog(
        world,
        Service(sku="EXCHANGE", name="Exchange Online", min_licenses=1, max_licenses=1000),
        Service(sku="INTUNE", name="Intune", min_licenses=20, max_licenses=500),
    )
    world = attrs.evolve(world, portal=changed)
    kim = world.customer_admin
    _refused(lambda: changed.redeem(trial_url, kim), InvalidState, "sku", world)
    _refused(lambda: changed.redeem(offer_url, kim), InvalidState, "licenses[INTUNE]", world)
    _refused(
        lambda: changed.redeem(offer_url, kim, licenses={"INTUNE": 10}),
        ValidationError,
        "licenses[INTUNE]",
        world,
    )
    assert [
        s.licenses for s in changed.redeem(offer_url, kim, licenses={"INTUNE": 20}).subscriptions
    ] == [20]


def test_input_wrong_in_itself_stays_a_plain_validation_error(any_world: World) -> None:
    """Neither subclass is given to a malformed address, a count out of bounds, a duration
    out of range or a name that is empty: the request is wrong whatever is stored."""
    world, portal = any_world, any_world.portal
    for call, field in [
        (
            lambda: portal.create_user(world.partner_admin, email="no-at-sign", display_name="X"),
            "email",
        ),
        (
            lambda: OfferLine(sku="EXCHANGE", licenses=0),
            "licenses",
        ),
        (
            lambda: portal.offer_delegated_admin(world.partner_admin, duration=timedelta(hours=1)),
            "duration",
        ),
        (lambda: portal.update_profile(world.partner_admin, name=" "), "name"),
    ]:
        _refused(call, ValidationError, field, world)


def test_the_signing_key_is_not_removed() -> None:
    """The key ring refuses to remove the key that signs: rotate first."""
    ring = Keyring.generate()
    with pytest.raises(InvalidState) as refused:
        ring.remove(ring.active_key_id)
    assert refused.value.field == "kid"
    assert ring.active_key_id in ring.key_ids
