"""Edges of the policy that a mutation review found untested (seventh session).

Each test here failed on one of the mutants the review made (a rule dropped or loosened)
and passes on the code: the pure ``roles.decide`` judging the delegation it is handed (its
pair, its state, its end), ``Delegation`` answering without a clock and refusing to expire
twice, the exported role table, a redemption deciding with the time at the moment it
decides (a clock that moves while it waits), and consent given on a replayed link.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from _money import money_world
from _proxy_units import ProxyStore, ProxyUnit
from partnerkit import (
    AdminRole,
    LinkExpired,
    OfferLine,
    PartnerAccess,
    Permission,
    ValidationError,
)
from partnerkit.consent import Delegation, DelegationOffer
from partnerkit.roles import ALL_ADMIN_ROLES, PARTNER_PERMISSIONS, ROLE_PERMISSIONS, decide
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing import FakeClock

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@attrs.frozen
class P:
    id: str
    company_id: str
    admin_role: AdminRole | None = None
    partner_access: PartnerAccess | None = None


def _active(duration: timedelta | None = timedelta(days=30)) -> Delegation:
    offer = DelegationOffer(
        id="dof",
        partner_id="cmp_a",
        roles=ALL_ADMIN_ROLES,
        duration=duration,
        offered_by="usr_pa",
        offered_at=T0,
    )
    return Delegation.pending(ident="dlg", offer=offer, customer_id="cmp_c", now=T0).accept(
        "usr_cga", T0
    )


FULL_A = P("usr_f", "cmp_a", None, PartnerAccess.FULL)
PLAIN_C = P("usr_plain", "cmp_c")


# decide() judges the handed delegation's state and end, not only its roles.
def test_pure_decide_refuses_through_a_revoked_or_expired_delegation() -> None:
    d = _active()
    later = T0 + timedelta(hours=1)
    assert decide(
        FULL_A, Permission.RESET_PASSWORD, "cmp_c", target=PLAIN_C, delegation=d, now=later
    )
    assert not decide(
        FULL_A,
        Permission.RESET_PASSWORD,
        "cmp_c",
        target=PLAIN_C,
        delegation=d.revoke("usr_cga", later),
        now=later,
    )
    assert not decide(
        FULL_A,
        Permission.RESET_PASSWORD,
        "cmp_c",
        target=PLAIN_C,
        delegation=d,
        now=T0 + timedelta(days=31),
    )


# ... and its pair: another partner's, or another customer's, grants nothing.
def test_pure_decide_ignores_a_delegation_of_another_pair() -> None:
    d = _active()
    later = T0 + timedelta(hours=1)
    other_partner = P("usr_b", "cmp_b", None, PartnerAccess.FULL)
    assert not decide(other_partner, Permission.RESET_PASSWORD, "cmp_c", delegation=d, now=later)
    assert not decide(FULL_A, Permission.RESET_PASSWORD, "cmp_x", delegation=d, now=later)


# A grant that does not state its end is not trusted without the time.
def test_a_grant_that_does_not_state_its_end_is_not_active_without_the_time() -> None:
    @attrs.frozen
    class Grant:
        partner_id: str = "cmp_a"
        customer_id: str = "cmp_c"
        roles: frozenset[AdminRole] = ALL_ADMIN_ROLES

        def is_active(self, now: datetime | None) -> bool:
            return True

    assert not decide(FULL_A, Permission.RESET_PASSWORD, "cmp_c", delegation=Grant(), now=None)


# A privileged user of the company acted on is touched only by its own global admin.
def test_a_partner_user_in_the_acted_on_company_is_touched_only_by_its_own_global_admin() -> None:
    ga_full_a = P("usr_g", "cmp_a", AdminRole.GLOBAL_ADMIN, PartnerAccess.FULL)
    d = attrs.evolve(_active(), customer_id="cmp_b")  # a grant into company cmp_b
    target = P("usr_t", "cmp_b", None, PartnerAccess.LIMITED)  # privileged user of cmp_b
    assert not decide(
        ga_full_a,
        Permission.MANAGE_USERS,
        "cmp_b",
        target=target,
        delegation=d,
        now=T0 + timedelta(hours=1),
    )


# The exported table: a customer-side role holds no partner-side permission.
def test_global_admin_row_holds_no_partner_side_permission() -> None:
    assert not ROLE_PERMISSIONS[AdminRole.GLOBAL_ADMIN] & PARTNER_PERMISSIONS


def test_a_delegation_with_an_end_date_is_not_active_without_the_time() -> None:
    assert not _active().is_active(None)
    assert _active(duration=None).is_active(None)


def test_an_expired_delegation_cannot_expire_again() -> None:
    gone = _active().expire(T0 + timedelta(days=31))
    with pytest.raises(ValidationError):
        gone.expire(T0 + timedelta(days=32))


# -- portal ----------------------------------------------------------------------------------


class _GetEach(ProxyUnit):
    def get_each(self, *keys: Any) -> list[Any]:
        return [self._inner.repository(t).get(i) for t, i in keys]


class JumpClock(FakeClock):
    """Shows its time once more after arm(), then `after` (time passing inside a unit of work)."""

    after: datetime | None = None
    left = 0

    def arm(self, before: datetime, after: datetime, calls: int = 1) -> None:
        self.set(before)
        self.after = after
        self.left = calls

    def __call__(self) -> datetime:
        if self.after is not None:
            if self.left == 0:
                self.set(self.after)
                self.after = None
            else:
                self.left -= 1
        return super().__call__()


# The time of the decision is read after the first reads (which may wait for a lock).
def test_a_link_that_expires_while_the_redemption_waits_is_refused() -> None:
    clock = JumpClock()
    m = money_world(ProxyStore(MemoryStore(), _GetEach), clock)
    url = m.portal.create_trial_invitation(
        m.partner_admin, "EXCHANGE", expires_in=timedelta(hours=1)
    )
    expires = m.portal.inspect_link(url).expires_at
    clock.arm(expires - timedelta(seconds=10), expires + timedelta(minutes=5))
    with pytest.raises(LinkExpired):
        m.portal.redeem(url, m.admin)


# ... and in sign_up too.
def test_a_link_that_expires_while_signing_up_is_refused() -> None:
    clock = JumpClock()
    m = money_world(MemoryStore(), clock)
    url = m.portal.create_trial_invitation(
        m.partner_admin, "EXCHANGE", expires_in=timedelta(hours=1)
    )
    expires = m.portal.inspect_link(url).expires_at
    clock.arm(expires - timedelta(seconds=10), expires + timedelta(minutes=5))
    with pytest.raises(LinkExpired):
        m.portal.sign_up(url, name="Late Co", domain="late.example", admin_email="a@late.example")


# Consent on a replayed link: never a second active delegation of the pair.
def test_consent_on_a_replayed_link_returns_the_active_delegation_already_there() -> None:
    m = money_world(MemoryStore())
    first = m.portal.offer_delegated_admin(m.partner_admin)
    m.portal.redeem(first, m.billing)  # left pending
    second = m.portal.offer_delegated_admin(m.partner_admin)
    active = m.portal.redeem(second, m.admin, accept_delegated_admin=True).delegation
    again = m.portal.redeem(first, m.admin, accept_delegated_admin=True).delegation
    assert again.id == active.id


# ... and the consent it gives does let the partner act.
def test_consent_given_on_a_replayed_link_lets_the_partner_act() -> None:
    m = money_world(MemoryStore())
    url = m.portal.offer_delegated_admin(m.partner_admin)
    m.portal.redeem(url, m.billing)  # left pending
    m.portal.redeem(url, m.admin, accept_delegated_admin=True)
    assert m.portal.decide(
        m.partner_admin,
        Permission.RESET_PASSWORD,
        m.customer.id,
        target_user_id=m.world.customer_user.id,
    )


# A trial of a service already bought says so.
def test_a_trial_of_a_bought_service_says_it_is_bought() -> None:
    m = money_world(MemoryStore())
    url, _ = m.portal.create_purchase_offer(
        m.partner_admin, [OfferLine(sku="EXCHANGE", licenses=30)]
    )
    m.portal.redeem(url, m.admin)
    with pytest.raises(ValidationError, match="already subscribes"):
        m.portal.redeem(m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE"), m.admin)
