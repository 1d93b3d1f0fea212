"""Rights of use cases that a second mutation pass found no test to pin.

Each test here passed on the code as it is and failed with one check of the Portal removed
(a manual mutation pass over the directory, offer, link and support use cases): the rules
held, but nothing said so. On every store.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from partnerkit import (
    ContactInfo,
    DelegationStatus,
    Forbidden,
    NotFound,
    OfferLine,
    OfferStatus,
    Portal,
    Severity,
    ValidationError,
)
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing import FAST_HASHER, FakeClock, World, build_world, sample_catalog

pytest_plugins = ["pg_fixtures"]


@pytest.fixture
def world(any_world: World) -> World:
    return any_world


def _last_event(world: World, reader: object) -> object:
    return world.portal.audit_trail(reader)[-1]  # type: ignore[arg-type]


# -- purchase offers: only their own partner's users with partner access ------------------


def test_another_partner_can_neither_withdraw_nor_supersede_an_offer(world: World) -> None:
    """Another partner's global admin, FULL access, naming Contoso's offer: the same
    ``NotFound`` as for an offer that does not exist, and the offer stays open."""
    portal = world.portal
    _, offer = portal.create_purchase_offer(world.partner_admin, [OfferLine("EXCHANGE", 5)])
    _, rival = portal.register_partner(
        name="Tailspin", contact=ContactInfo(email="hi@tailspin.example"),
        admin_email="tom@tailspin.example",
    )  # fmt: skip
    with pytest.raises(NotFound):
        portal.withdraw_offer(rival, offer.id)
    with pytest.raises(NotFound):
        portal.supersede_offer(rival, offer.id, [OfferLine("EXCHANGE", 50)])
    with pytest.raises(NotFound):
        portal.withdraw_offer(rival, "off_nothing_by_this_id")
    with portal.store.unit_of_work(write=False) as uow:
        kept = uow.purchase_offers.get(offer.id)
    assert kept is not None
    assert (kept.status, kept.version) == (OfferStatus.OPEN, offer.version)


def test_a_partner_user_without_partner_access_cannot_withdraw_an_offer(world: World) -> None:
    portal = world.portal
    _, offer = portal.create_purchase_offer(world.partner_admin, [OfferLine("EXCHANGE", 5)])
    with pytest.raises(Forbidden) as refused:
        portal.withdraw_offer(world.partner_billing, offer.id)
    assert refused.value.decision.reason == "partner-access-required"
    assert portal.withdraw_offer(world.partner_agent, offer.id).status is OfferStatus.WITHDRAWN


# -- revoking a link: the partner's global admins, or its users with partner access ---------


def test_a_partner_user_with_partner_access_and_no_admin_role_revokes_a_link(
    world: World,
) -> None:
    """Either is enough: the LIMITED agent holds no admin role."""
    portal = world.portal
    url = portal.create_trial_invitation(world.partner_admin, "EXCHANGE")
    assert world.partner_agent.admin_role is None
    portal.revoke_link(world.partner_agent, portal.inspect_link(url).link_id)
    assert _last_event(world, world.partner_admin).action == "link.revoke"  # type: ignore[attr-defined]
    with pytest.raises(Forbidden) as refused:
        portal.revoke_link(world.partner_billing, "lnk_any")
    assert refused.value.decision.reason == "links-revoked-by-global-admins-or-partner-users"


def test_a_customers_global_admin_is_refused_a_partners_link_as_forbidden(world: World) -> None:
    """Not ``NotFound``: a customer holds no link of its own, and the refusal is a denial
    in its trail (``denied``, the rule), not a failure to find the link."""
    portal = world.portal
    url = portal.create_trial_invitation(world.partner_admin, "EXCHANGE")
    link_id = portal.inspect_link(url).link_id
    with pytest.raises(Forbidden) as refused:
        portal.revoke_link(world.customer_admin, link_id)
    assert refused.value.decision.reason == "links-revoked-by-global-admins-or-partner-users"
    event = _last_event(world, world.customer_admin)
    assert (event.action, event.outcome) == ("link.revoke", "denied")  # type: ignore[attr-defined]
    assert portal.inspect_link(url).link_id == link_id


# -- users and service requests ---------------------------------------------------------------


def test_a_user_without_an_admin_role_creates_neither_users_nor_service_requests(
    world: World,
) -> None:
    portal, dee = world.portal, world.customer_user
    with pytest.raises(Forbidden):
        portal.create_user(dee, email="eve@fabrikam.example", display_name="Eve")
    with pytest.raises(Forbidden) as refused:
        portal.create_service_request(dee, world.customer.id, title="Mail is down")
    assert "manage_service_requests" in str(refused.value)
    assert portal.list_service_requests(world.customer_admin, world.customer.id) == []
    assert portal.find_user_by_email("eve@fabrikam.example") is None


def test_a_display_name_changed_later_may_not_hold_bidirectional_controls(world: World) -> None:
    """As a name given at creation: "Eve\u202egnp.exe" shows as something else."""
    portal = world.portal
    with pytest.raises(ValidationError) as refused:
        portal.update_user(
            world.customer_admin, world.customer_user.id, display_name="Eve\u202egnp.exe"
        )
    assert refused.value.field == "display_name"
    assert portal.current_user(world.customer_user).display_name == "Dee User"


# -- the audit of a denial names no delegation past its end date ----------------------------


def test_a_denial_after_the_delegations_end_date_names_no_delegation(world: World) -> None:
    portal = world.portal
    url = portal.offer_delegated_admin(world.partner_admin, duration=timedelta(days=1))
    granted = portal.redeem(url, world.customer_admin, accept_delegated_admin=True).delegation
    assert granted is not None
    clock = portal.clock
    assert isinstance(clock, FakeClock)
    clock.advance(days=2)
    with pytest.raises(Forbidden):
        portal.create_user(
            world.partner_admin, email="late@fabrikam.example", display_name="Late",
            company_id=world.customer.id,
        )  # fmt: skip
    event = _last_event(world, world.customer_admin)
    assert (event.action, event.outcome) == ("user.create", "denied")  # type: ignore[attr-defined]
    assert event.delegation_id is None  # type: ignore[attr-defined]
    assert not (event.role or "").startswith("delegated")  # type: ignore[attr-defined]


# -- from the third pass: records and defaults --------------------------------------------


def test_a_delegated_action_is_recorded_as_the_partners_act_on_the_customer(
    world: World,
) -> None:
    """``actor_company_id`` is the actor's company (the partner), ``company_id`` the one
    acted on (the customer): a trail that put the customer in both would hide who acted."""
    portal = world.portal
    url = portal.offer_delegated_admin(world.partner_admin)
    delegation = portal.redeem(url, world.customer_admin, accept_delegated_admin=True).delegation
    assert delegation is not None
    portal.reset_password(world.partner_admin, world.customer.id, world.customer_user.id)
    event = _last_event(world, world.customer_admin)
    assert event.action == "user.reset_password"  # type: ignore[attr-defined]
    assert event.actor_company_id == world.partner.id  # type: ignore[attr-defined]
    assert event.company_id == world.customer.id  # type: ignore[attr-defined]
    assert event.delegation_id == delegation.id  # type: ignore[attr-defined]


def test_revoking_a_revoked_link_changes_nothing(world: World) -> None:
    """The first revocation stands (who and when), and only it is in the trail."""
    portal = world.portal
    link_id = portal.inspect_link(portal.create_trial_invitation(world.partner_admin, "EXCHANGE"))
    portal.revoke_link(world.partner_admin, link_id.link_id)
    with portal.store.unit_of_work(write=False) as uow:
        first = uow.links.get(link_id.link_id)
    clock = portal.clock
    assert isinstance(clock, FakeClock)
    clock.advance(hours=1)
    portal.revoke_link(world.partner_agent, link_id.link_id)
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.links.get(link_id.link_id) == first
    revocations = [e for e in portal.audit_trail(world.partner_admin) if e.action == "link.revoke"]
    assert [e.actor_id for e in revocations] == [world.partner_admin.id]


def test_a_user_with_an_address_of_the_longest_length_is_found(world: World) -> None:
    email = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
    assert len(email) == 254
    user = world.portal.create_user(world.customer_admin, email=email, display_name="Long")
    assert world.portal.find_user_by_email(email.upper()) == user


def test_an_unknown_actor_reading_its_own_record_is_recorded_by_the_id_given(
    world: World,
) -> None:
    with pytest.raises(Forbidden):
        world.portal.current_user("usr_nobody")
    with world.portal.store.unit_of_work(write=False) as uow:
        event = uow.audit_events()[-1]
    assert (event.action, event.outcome) == ("user.view_own", "denied")
    assert event.details.get("unknown_actor") == "usr_nobody"


def test_a_sign_up_declines_an_offered_delegation_unless_told_otherwise(world: World) -> None:
    """``sign_up``'s ``accept_delegated_admin`` defaults to ``False`` (SPEC section 3): the
    purchase stands, the delegation is declined, not left pending."""
    url = world.portal.create_trial_invitation(world.partner_admin, "EXCHANGE", True)
    _, _, result = world.portal.sign_up(
        url, name="Northwind", domain="northwind.example", admin_email="nia@northwind.example"
    )
    assert result.delegation is not None
    assert result.delegation.status is DelegationStatus.DECLINED
    assert len(result.subscriptions) == 1


def test_a_service_request_is_moderate_unless_told_otherwise(world: World) -> None:
    request = world.portal.create_service_request(
        world.customer_admin, world.customer.id, title="Mail is slow"
    )
    assert request.severity is Severity.MODERATE


def test_a_page_of_a_memory_stores_list_starts_after_the_last_one_seen() -> None:
    """Paging a list (``after`` the last id of a page) neither repeats that id nor skips
    one, walking a company's users two at a time."""
    portal = Portal(store=MemoryStore(), catalog=sample_catalog(), password_hasher=FAST_HASHER)
    world = build_world(portal)
    for n in range(5):
        portal.create_user(
            world.partner_admin, email=f"u{n}@contoso.example", display_name=f"User {n}"
        )
    everyone = [u.id for u in portal.list_users(world.partner_admin)]
    walked: list[str] = []
    after = None
    for _ in range(len(everyone)):  # bounded: a walk that repeats fails, it does not hang
        page = portal.list_users(world.partner_admin, limit=2, after=after)
        walked += [u.id for u in page]
        if len(page) < 2:
            break
        after = page[-1].id
    assert walked == sorted(everyone)


def test_a_temporary_password_not_used_is_forgotten_when_the_user_changes_theirs(
    world: World,
) -> None:
    """Also when the flag was cleared some other way (the host's own write): the unused
    temporary password is forgotten all the same."""
    portal, dee = world.portal, world.customer_user
    first = portal.reset_password(world.customer_admin, world.customer.id, dee.id)
    portal.password_changed(dee.id)
    assert not portal.verify_password(dee.id, first.temporary_password)
    second = portal.reset_password(world.customer_admin, world.customer.id, dee.id)
    with portal.store.unit_of_work(write=True) as uow:
        stored = uow.users.get(dee.id)
        assert stored is not None
        uow.users.update(
            attrs.evolve(stored, must_change_password=False, version=stored.version + 1)
        )
        uow.commit()
    portal.password_changed(dee.id)
    assert not portal.verify_password(dee.id, second.temporary_password)


def test_a_temporary_password_lasts_seven_days_unless_the_portal_says_otherwise(
    world: World,
) -> None:
    portal, dee = world.portal, world.customer_user
    clock = portal.clock
    assert isinstance(clock, FakeClock)
    kept = portal.reset_password(world.customer_admin, world.customer.id, dee.id)
    clock.advance(days=6, hours=23)
    assert portal.verify_password(dee.id, kept.temporary_password)
    late = portal.reset_password(world.customer_admin, world.customer.id, dee.id)
    clock.advance(days=7, seconds=1)
    assert not portal.verify_password(dee.id, late.temporary_password)
    longest = Portal(store=portal.store, temporary_password_lifetime=timedelta(days=90))
    assert longest.temporary_password_lifetime == timedelta(days=90)


def test_an_update_of_a_service_request_records_when(world: World) -> None:
    portal = world.portal
    clock = portal.clock
    assert isinstance(clock, FakeClock)
    opened = portal.create_service_request(world.customer_admin, world.customer.id, title="Slow")
    clock.advance(hours=3)
    changed = portal.update_service_request(world.customer_admin, opened.id, severity="critical")
    assert changed.updated_at == portal.now() != opened.updated_at


def test_a_first_admin_without_a_name_is_named_by_the_address_before_the_at(
    world: World,
) -> None:
    _, nia = world.portal.register_customer(
        name="Northwind", domain="northwind.example", admin_email="nia.ng@northwind.example"
    )
    assert nia.display_name == "nia.ng"
