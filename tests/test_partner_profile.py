"""A partner's profile, shown to its customers (F1): ``partner_profile`` and ``list_partners``.

F1 gives a partner contact information "shown to its customers"; ``profile`` is only for a
company's own users. A customer's users read the profiles of the partners that advise it or
offered it delegated administration (so that a consent page can say who asks, and an audit
trail's partner ids can be named), and of no other company.
"""

from __future__ import annotations

import pytest

from partnerkit import (
    ContactInfo,
    DelegationStatus,
    Forbidden,
    ValidationError,
)
from partnerkit.roles import Rule
from partnerkit.testing import World

pytest_plugins = ["pg_fixtures"]


def _offer_delegation(world: World) -> str:
    """A standalone delegation link, redeemed by a customer's user without an admin role:
    a pending delegation, for the customer's global admins to answer."""
    url = world.portal.offer_delegated_admin(world.partner_admin)
    result = world.portal.redeem(url, world.customer_user)
    assert result.delegation is not None
    assert result.delegation.status is DelegationStatus.PENDING
    return result.delegation.id


def _rule(excinfo: pytest.ExceptionInfo[Forbidden]) -> Rule:
    return excinfo.value.decision.rule


def test_a_partner_with_no_tie_to_the_customer_is_not_shown(any_world: World) -> None:
    """Before any link was redeemed the partner is a stranger to the customer: refused by the
    rule, audited as denied, and the customer's list of partners is empty."""
    world, portal = any_world, any_world.portal
    with pytest.raises(Forbidden) as refused:
        portal.partner_profile(world.customer_user, world.partner.id)
    assert _rule(refused) is Rule.PARTNER_SHOWN_TO_ITS_CUSTOMERS
    assert portal.list_partners(world.customer_user) == []
    last = portal.audit_trail(world.partner_admin)[-1]
    assert (last.action, last.outcome, last.actor_id) == (
        "partner.view",
        "denied",
        world.customer_user.id,
    )
    assert last.reason == Rule.PARTNER_SHOWN_TO_ITS_CUSTOMERS.value


def test_a_pending_offer_shows_who_asks_to_every_user_of_the_customer(any_world: World) -> None:
    """A consent page has the delegation's partner id: with it, the partner's name and contact
    information, read by any user of the customer (not only its global admins)."""
    world, portal = any_world, any_world.portal
    _offer_delegation(world)
    for reader in (world.customer_user, world.customer_admin):
        shown = portal.partner_profile(reader, world.partner.id)
        assert shown == portal.profile(world.partner_admin)
        assert shown.name == "Contoso Partners"
        assert shown.contact == ContactInfo(email="hello@contoso.example", phone="+1 425 555 0100")
        assert shown.advisor_id == world.partner.advisor_id
        assert portal.list_partners(reader) == [shown]


def test_a_trial_redeemed_makes_the_advisor_shown(any_world: World) -> None:
    """A partner that advises one of the customer's subscriptions is its partner."""
    world, portal = any_world, any_world.portal
    url = portal.create_trial_invitation(world.partner_agent, "EXCHANGE")
    portal.redeem(url, world.customer_admin)
    assert portal.partner_profile(world.customer_user, world.partner.id).id == world.partner.id
    assert [p.id for p in portal.list_partners(world.customer_user)] == [world.partner.id]


def test_the_partner_stays_shown_after_the_delegation_is_over(any_world: World) -> None:
    """Declined, revoked or ended, the partner's ids stay in the customer's audit trail: the
    customer can still name who acted."""
    world, portal = any_world, any_world.portal
    delegation_id = _offer_delegation(world)
    portal.accept_delegation(world.customer_admin, delegation_id)
    portal.revoke_delegation(world.customer_admin, delegation_id)
    partners = portal.list_partners(world.customer_user)
    assert [p.id for p in partners] == [world.partner.id]
    assert portal.partner_profile(world.customer_user, world.partner.id) == partners[0]


def test_partners_are_listed_by_name_then_id(any_world: World) -> None:
    """Several partners, in the order a page lists them: by name case-folded, each once
    (a partner that both advises and offered a delegation is one partner)."""
    world, portal = any_world, any_world.portal
    _offer_delegation(world)
    portal.redeem(
        portal.create_trial_invitation(world.partner_admin, "EXCHANGE"), world.customer_admin
    )
    names = ["beta Resellers", "Alpha Advisors"]
    for number, name in enumerate(names):
        _, admin = portal.register_partner(
            name=name,
            contact=ContactInfo(email=f"hi@p{number}.example"),
            admin_email=f"admin@p{number}.example",
        )
        portal.redeem(portal.offer_delegated_admin(admin), world.customer_user)
    listed = [p.name for p in portal.list_partners(world.customer_admin)]
    assert listed == ["Alpha Advisors", "beta Resellers", "Contoso Partners"]


def test_no_other_company_is_shown(any_world: World) -> None:
    """Another partner, a customer (another, or the actor's own), an id nobody has: one
    refusal, which does not tell a company that exists from one that does not."""
    world, portal = any_world, any_world.portal
    _offer_delegation(world)
    stranger, stranger_admin = portal.register_partner(
        name="Northwind", contact=ContactInfo(email="hi@northwind.example"), admin_email="n@nw.ex"
    )
    other_customer, _ = portal.register_customer(
        name="Tailspin", domain="tailspin.example", admin_email="t@tailspin.example"
    )
    for reader, company_id in [
        (world.customer_user, stranger.id),
        (world.customer_user, other_customer.id),
        (world.customer_user, world.customer.id),
        (world.customer_user, "cmp_nobody"),
        (stranger_admin, world.partner.id),  # a partner is no customer of another partner
        (world.partner_admin, stranger.id),
    ]:
        with pytest.raises(Forbidden) as refused:
            portal.partner_profile(reader, company_id)
        assert _rule(refused) is Rule.PARTNER_SHOWN_TO_ITS_CUSTOMERS


def test_a_partner_user_reads_its_own_company(any_world: World) -> None:
    """Any user of a partner, with no admin role or partner access, reads its own profile."""
    world, portal = any_world, any_world.portal
    colleague = portal.create_user(
        world.partner_admin, email="col@contoso.example", display_name="Col League"
    )
    assert portal.partner_profile(colleague, world.partner.id) == portal.profile(colleague)


def test_a_delegate_never_lists_its_customers_partners(any_world: World) -> None:
    """Through an active delegation, even a FULL one, the partner does not see which other
    partners its customer has."""
    world, portal = any_world, any_world.portal
    delegation_id = _offer_delegation(world)
    portal.accept_delegation(world.customer_admin, delegation_id)
    assert portal.profile(world.partner_admin, world.customer.id) == world.customer
    with pytest.raises(Forbidden) as refused:
        portal.list_partners(world.partner_admin, world.customer.id)
    assert _rule(refused) is Rule.DELEGATES_NEVER_MANAGE_RELATIONSHIPS


def test_bad_arguments_are_typed_errors(any_world: World) -> None:
    """A partner has no partners; an id that is not text names no company; an unknown actor
    is refused as in every use case."""
    world, portal = any_world, any_world.portal
    with pytest.raises(ValidationError) as partner_list:
        portal.list_partners(world.partner_admin)
    assert partner_list.value.field == "company_id"
    with pytest.raises(ValidationError) as not_text:
        portal.partner_profile(world.customer_user, 42)  # type: ignore[arg-type]
    assert not_text.value.field == "partner_id"
    for call in (
        lambda: portal.partner_profile("usr_nobody", world.partner.id),
        lambda: portal.list_partners("usr_nobody"),
    ):
        with pytest.raises(Forbidden) as unknown:
            call()
        assert _rule(unknown) is Rule.ACTOR_UNKNOWN


def test_reading_a_partner_is_not_audited_and_changes_nothing(any_world: World) -> None:
    """Allowed reads leave the trail as it was (denied ones are recorded, above)."""
    world, portal = any_world, any_world.portal
    _offer_delegation(world)
    before = portal.audit_trail(world.partner_admin)
    portal.partner_profile(world.customer_user, world.partner.id)
    portal.list_partners(world.customer_user)
    assert portal.audit_trail(world.partner_admin) == before
