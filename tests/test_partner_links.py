"""A partner's own lists of what it issued: ``list_links`` and ``list_offers``.

A partner's console shows the links it sent out and the offers it made, and lets its people
revoke a link that leaked. The URL is never stored (SPEC 4: records are keyed on the link
id), so before these lists a link whose URL nobody kept could not be revoked at all.
Each link's status must be what a customer redeeming it now would be told: the tests hold
it to ``inspect_link`` of the same URL at every step.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from delegation_kit import CustomerCast, PartnerCast, add_customer, add_partner
from partnerkit import (
    AdminRole,
    Forbidden,
    InvalidLink,
    InvalidState,
    IssuedLink,
    LinkExhausted,
    LinkExpired,
    LinkKind,
    LinkRevoked,
    LinkStatus,
    OfferLine,
    OfferStatus,
    Permission,
    Portal,
    User,
)
from partnerkit.links import MAX_CLOCK_SKEW
from partnerkit.testing import FakeClock

pytest_plugins = ["pg_fixtures", "cast_fixtures"]

#: What ``inspect_link`` says of a link in each status.
TOLD: dict[LinkStatus, type[InvalidLink] | None] = {
    LinkStatus.LIVE: None,
    LinkStatus.EXPIRED: LinkExpired,
    LinkStatus.REVOKED: LinkRevoked,
    LinkStatus.WITHDRAWN: LinkRevoked,
    LinkStatus.EXHAUSTED: LinkExhausted,
}


def _told(portal: Portal, url: str) -> type[InvalidLink] | None:
    try:
        portal.inspect_link(url)
    except InvalidLink as error:
        return type(error)
    return None


def _by_id(portal: Portal, actor: User) -> dict[str, IssuedLink]:
    return {link.id: link for link in portal.list_links(actor)}


def _agrees(portal: Portal, actor: User, urls: dict[str, str]) -> dict[str, LinkStatus]:
    """Every listed link's status, checked against what ``inspect_link`` says of its URL."""
    listed = _by_id(portal, actor)
    assert set(listed) == set(urls)
    for link_id, url in urls.items():
        assert TOLD[listed[link_id].status] is _told(portal, url), listed[link_id]
    return {link_id: link.status for link_id, link in listed.items()}


def test_every_kind_is_listed_with_what_it_is_for(
    portal: Portal, clock: FakeClock, partner: PartnerCast
) -> None:
    """Trial invitations, purchase offers and standalone delegation offers, with their
    targets, authors, times, uses and the terms of the delegation they offer."""
    trial = portal.create_trial_invitation(partner.full, "EXCHANGE", False, max_uses=3)
    offer_url, offer = portal.create_purchase_offer(
        partner.admin,
        [OfferLine("EXCHANGE", 10)],
        True,
        delegation_roles={AdminRole.PASSWORD_ADMIN},
    )
    standalone = portal.offer_delegated_admin(
        partner.limited, roles=None, duration=timedelta(days=30)
    )
    ids = {portal.inspect_link(url).link_id: url for url in (trial, offer_url, standalone)}
    listed = _by_id(portal, partner.admin)
    assert set(listed) == set(ids)
    t, o, s = (listed[portal.inspect_link(u).link_id] for u in (trial, offer_url, standalone))
    claims = portal.inspect_link(trial)
    assert (t.kind, t.target, t.includes_delegated_admin) == (
        LinkKind.TRIAL_INVITATION,
        "EXCHANGE",
        False,
    )
    assert (t.created_by, t.created_at, t.expires_at) == (
        partner.full.id,
        clock(),
        claims.expires_at,
    )
    assert (t.max_uses, t.uses, t.revoked_at, t.revoked_by) == (3, 0, None, None)
    assert (t.delegation_roles, t.delegation_duration) == (None, None)
    assert (o.kind, o.target, o.created_by) == (LinkKind.PURCHASE_OFFER, offer.id, partner.admin.id)
    assert o.delegation_roles == frozenset({AdminRole.PASSWORD_ADMIN})
    assert o.delegation_duration is None
    assert (s.kind, s.created_by, s.max_uses) == (
        LinkKind.DELEGATED_ADMIN,
        partner.limited.id,
        None,
    )
    assert s.delegation_roles == frozenset(AdminRole)
    assert s.delegation_duration == timedelta(days=30)
    assert {link.partner_id for link in listed.values()} == {partner.company.id}
    assert {link.status for link in listed.values()} == {LinkStatus.LIVE}
    assert offer.link_id == o.id


def test_the_status_is_what_a_customer_would_be_told(
    portal: Portal, clock: FakeClock, partner: PartnerCast
) -> None:
    """Through uses, withdrawal, supersession, revocation and the clock, each link's status
    matches ``inspect_link`` of its URL, to the microsecond of the clocks' leeway."""
    trial = portal.create_trial_invitation(partner.full, "EXCHANGE", False, max_uses=2)
    short = portal.create_trial_invitation(
        partner.full, "EXCHANGE", False, expires_in=timedelta(days=1)
    )
    withdrawn_url, withdrawn = portal.create_purchase_offer(
        partner.full, [OfferLine("EXCHANGE", 10)], False
    )
    old_url, old = portal.create_purchase_offer(partner.full, [OfferLine("INTUNE", 10)], False)
    revoked = portal.offer_delegated_admin(partner.full)
    ids = {
        u: portal.inspect_link(u).link_id for u in (trial, short, withdrawn_url, old_url, revoked)
    }
    urls = {link_id: url for url, link_id in ids.items()}
    assert set(_agrees(portal, partner.admin, urls).values()) == {LinkStatus.LIVE}

    for n in range(2):
        buyer = add_customer(portal, f"Buyer {n}", f"buyer{n}.example", roles=())
        portal.redeem(trial, buyer.admin)
    portal.withdraw_offer(partner.full, withdrawn.id)
    new_url, _ = portal.supersede_offer(partner.full, old.id, [OfferLine("INTUNE", 20)])
    ids[new_url] = portal.inspect_link(new_url).link_id
    urls[ids[new_url]] = new_url
    portal.revoke_link(partner.limited, ids[revoked])
    statuses = _agrees(portal, partner.admin, urls)
    assert statuses == {
        ids[trial]: LinkStatus.EXHAUSTED,
        ids[short]: LinkStatus.LIVE,
        ids[withdrawn_url]: LinkStatus.WITHDRAWN,
        ids[old_url]: LinkStatus.WITHDRAWN,
        ids[revoked]: LinkStatus.REVOKED,
        ids[new_url]: LinkStatus.LIVE,
    }
    listed = _by_id(portal, partner.admin)
    assert (listed[ids[trial]].uses, listed[ids[withdrawn_url]].uses) == (2, 0)
    assert listed[ids[revoked]].revoked_by == partner.limited.id

    # The short link at the end of its day, at the end of the leeway, and a microsecond on.
    ends = listed[ids[short]].expires_at
    for at, status in [
        (ends, LinkStatus.LIVE),
        (ends + MAX_CLOCK_SKEW, LinkStatus.LIVE),
        (ends + MAX_CLOCK_SKEW + timedelta(microseconds=1), LinkStatus.EXPIRED),
    ]:
        clock.set(at)
        assert _agrees(portal, partner.admin, urls)[ids[short]] is status
    # Expiry is told first, as a redemption judges it: a revoked link past its time too.
    clock.set(ends + timedelta(days=800))
    assert set(_agrees(portal, partner.admin, urls).values()) == {LinkStatus.EXPIRED}


def test_a_leaked_link_is_found_and_revoked_without_its_url(
    portal: Portal, partner: PartnerCast
) -> None:
    """The partner lost the URL: the list finds the link and ``revoke_link`` takes its id;
    the URL stops working and the revocation names who did it."""
    leaked = portal.create_trial_invitation(partner.full, "EXCHANGE", True)
    del_url = portal.offer_delegated_admin(partner.full)
    [found] = [
        link
        for link in portal.list_links(partner.limited)
        if link.kind is LinkKind.TRIAL_INVITATION and link.target == "EXCHANGE"
    ]
    portal.revoke_link(partner.limited, found.id)
    with pytest.raises(LinkRevoked):
        portal.inspect_link(leaked)
    portal.inspect_link(del_url)  # the other stands
    after = _by_id(portal, partner.admin)[found.id]
    assert (after.status, after.revoked_by) == (LinkStatus.REVOKED, partner.limited.id)
    assert after.revoked_at is not None


def test_offers_are_listed_in_every_status(portal: Portal, partner: PartnerCast) -> None:
    """Open, withdrawn and superseded offers, as stored, each with its link in the links."""
    _, kept = portal.create_purchase_offer(partner.full, [OfferLine("EXCHANGE", 5)], False)
    _, gone = portal.create_purchase_offer(partner.full, [OfferLine("EXCHANGE", 6)], False)
    _, old = portal.create_purchase_offer(partner.full, [OfferLine("INTUNE", 7)], True)
    portal.withdraw_offer(partner.full, gone.id)
    _, new = portal.supersede_offer(partner.full, old.id, [OfferLine("INTUNE", 8)])
    offers = portal.list_offers(partner.limited)
    assert [o.id for o in offers] == sorted(o.id for o in offers)
    by_id = {o.id: o for o in offers}
    assert set(by_id) == {kept.id, gone.id, old.id, new.id}
    assert by_id[kept.id] == kept
    assert by_id[gone.id].status is OfferStatus.WITHDRAWN
    assert (by_id[old.id].status, by_id[old.id].superseded_by) == (OfferStatus.SUPERSEDED, new.id)
    assert by_id[new.id].lines == (OfferLine("INTUNE", 8),)
    assert by_id[new.id].includes_delegated_admin is True
    links = _by_id(portal, partner.admin)
    assert all(links[o.link_id].target == o.id for o in offers)


def test_each_partner_sees_only_its_own(portal: Portal, partner: PartnerCast) -> None:
    """Another partner's lists hold none of this partner's links or offers."""
    other = add_partner(portal, "Northwind", "northwind")
    portal.create_trial_invitation(partner.full, "EXCHANGE", False)
    portal.create_purchase_offer(partner.full, [OfferLine("EXCHANGE", 5)], False)
    url = portal.offer_delegated_admin(other.full)
    assert [link.id for link in portal.list_links(other.admin)] == [
        portal.inspect_link(url).link_id
    ]
    assert portal.list_offers(other.admin) == []
    assert len(portal.list_links(partner.admin)) == 2
    assert len(portal.list_offers(partner.admin)) == 1


@pytest.mark.parametrize("use_case", ["list_links", "list_offers"])
def test_who_may_read_what_the_partner_issued(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, use_case: str
) -> None:
    """Those who may revoke its links: the partner's global admins and its users with
    partner access. Not its other users, and nobody of a customer (not even one of the
    partner's delegates acting there: the lists take no company). Each refusal is recorded
    as denied, and no page is handed out."""
    portal.create_purchase_offer(partner.full, [OfferLine("EXCHANGE", 5)], False)
    listing = getattr(portal, use_case)
    for allowed in (partner.admin, partner.full, partner.limited):
        assert len(listing(allowed)) == 1
    refused = [partner.plain, partner.billing, customer.admin, *customer.by_role.values()]
    action = {"list_links": "link.list", "list_offers": "offer.list"}[use_case]
    for user in refused:
        with pytest.raises(Forbidden):
            listing(user, limit=1)
        trail = portal.audit_trail(
            partner.admin if user.company_id == partner.company.id else customer.admin,
            user.company_id,
        )
        last = trail[-1]
        assert (last.action, last.actor_id, last.outcome) == (action, user.id, "denied")
    with pytest.raises(TypeError):
        listing(partner.admin, customer.company.id)  # no company to act in: keyword-free


def test_revoking_an_offers_link_withdraws_the_offer(portal: Portal, partner: PartnerCast) -> None:
    """A global admin without partner access may revoke links but not withdraw offers: an
    offer left OPEN behind its revoked link read as one that could still be accepted, and
    a LIMITED user could supersede it into a new working link. The offer goes with its
    link, in the same unit of work, and the revocation's event says so."""
    gus = portal.create_user(
        partner.admin,
        email="gus@contoso.example",
        display_name="Gus",
        admin_role=AdminRole.GLOBAL_ADMIN,
    )
    url, offer = portal.create_purchase_offer(partner.full, [OfferLine("EXCHANGE", 5)], False)
    portal.revoke_link(gus, offer.link_id)
    [listed] = portal.list_offers(partner.limited)
    assert (listed.status, listed.version) == (OfferStatus.WITHDRAWN, offer.version + 1)
    with pytest.raises(InvalidState):
        portal.supersede_offer(partner.limited, offer.id, [OfferLine("EXCHANGE", 6)])
    with pytest.raises(LinkRevoked):
        portal.inspect_link(url)
    [event] = [e for e in portal.audit_trail(partner.admin) if e.action == "link.revoke"]
    assert event.details["withdrew_offer"] == offer.id
    assert _by_id(portal, gus)[offer.link_id].status is LinkStatus.REVOKED


def test_a_refusal_names_the_partner_access_that_is_lacking(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """Who may not list what the partner issued is refused for VIEW_PARTNER_OVERVIEW, the
    permission partner access gives, as ``decide`` answers it (not for a permission the
    lists do not need)."""
    for user in (partner.plain, partner.billing, customer.admin):
        for listing in (portal.list_links, portal.list_offers):
            with pytest.raises(Forbidden) as info:
                listing(user)
            assert info.value.permission is Permission.VIEW_PARTNER_OVERVIEW
            expected = portal.decide(user, Permission.VIEW_PARTNER_OVERVIEW, user.company_id)
            assert info.value.decision == expected
