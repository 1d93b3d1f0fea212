"""The delegation lifecycle keeps its invariants under any sequence of use cases.

Two parts. First, the transition table of F5 on the domain object alone: every status against
every transition, allowed ones giving the next status, the others refused with a typed error.
Second, a hypothesis ``RuleBasedStateMachine`` that drives a real Portal (``MemoryStore``, a
``FakeClock``) through offers, consent, declines, revocations, ends, lapses, clock advances,
role changes of partner users and password resets, next to a small model of what should be,
and checks after every step:

* no right without an active, unexpired delegation, and no right outside its roles;
* final states stay final, and a delegation's terms never change;
* at most one active delegation per partner and customer;
* every use case is audited with the action and outcome expected, and the chain verifies;
* a temporary password kept for later signs in exactly while the delegation it was set
  through stands, and its setter's access has not changed since (each change forgets it).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import event as record_path
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from delegation_kit import add_customer, add_partner, make_portal
from partnerkit import (
    AdminRole,
    AuditEvent,
    Delegation,
    DelegationStatus,
    Forbidden,
    LinkExpired,
    NotFound,
    PartnerAccess,
    Permission,
    User,
    ValidationError,
)
from partnerkit.consent import DelegationOffer
from partnerkit.stores.memory import MemoryStore
from partnerkit.support import DEFAULT_TEMPORARY_PASSWORD_LIFETIME
from partnerkit.testing import FakeClock
from spec_model import Who, model_customer

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
ALL = frozenset(AdminRole)

# -- the transition table of F5, on the domain object ------------------------------------------

#: (status as it stands, transition) -> the status it moves to; anything absent is refused.
TRANSITIONS: dict[tuple[str, str], DelegationStatus] = {
    ("pending", "accept"): DelegationStatus.ACTIVE,
    ("pending", "decline"): DelegationStatus.DECLINED,
    ("pending", "end"): DelegationStatus.ENDED,
    ("active", "revoke"): DelegationStatus.REVOKED,
    ("active", "end"): DelegationStatus.ENDED,
}
STANDINGS = ("pending", "active", "declined", "revoked", "ended", "expired", "lapsed")


def _delegation_standing(standing: str) -> tuple[Delegation, datetime]:
    """A delegation in *standing* and the time at which it stands there."""
    offer = DelegationOffer(
        id="dof_1",
        partner_id="cmp_partner",
        roles=ALL,
        duration=timedelta(days=10),
        offered_by="usr_partner",
        offered_at=T0,
    )
    pending = Delegation.pending(ident="dlg_1", offer=offer, customer_id="cmp_customer", now=T0)
    later = T0 + timedelta(hours=1)
    if standing == "pending":
        return pending, later
    if standing == "lapsed":
        return pending, T0 + timedelta(days=90)
    if standing == "declined":
        return pending.decline("usr_customer", T0), later
    active = pending.accept("usr_customer", T0)
    moves = {
        "active": (active, later),
        "revoked": (active.revoke("usr_customer", T0), later),
        "ended": (active.end("usr_partner", T0), later),
        "expired": (active, T0 + timedelta(days=10)),
    }
    return moves[standing]


@pytest.mark.parametrize("transition", ["accept", "decline", "revoke", "end"])
@pytest.mark.parametrize("standing", STANDINGS)
def test_each_transition_is_allowed_exactly_where_the_table_says(
    standing: str, transition: str
) -> None:
    """Accept and decline leave PENDING, revoke leaves ACTIVE, end leaves either; everything
    else (above all, anything out of a final status or past the end date) is a
    ``ValidationError`` that names the status, and the delegation is unchanged."""
    delegation, now = _delegation_standing(standing)
    before = attrs.asdict(delegation)
    move = getattr(delegation, transition)
    expected = TRANSITIONS.get((standing, transition))
    if expected is None:
        with pytest.raises(ValidationError) as caught:
            move("usr_someone", now)
        assert caught.value.field == "status"
        assert attrs.asdict(delegation) == before
        return
    moved = move("usr_someone", now)
    assert moved.status is expected
    assert (moved.decided_at, moved.decided_by) == (now, "usr_someone")
    assert moved.version == delegation.version + 1
    assert (moved.roles, moved.duration, moved.offer_id) == (
        delegation.roles,
        delegation.duration,
        delegation.offer_id,
    )
    if expected is DelegationStatus.ACTIVE:
        assert moved.ends_at == now + timedelta(days=10)
        assert moved.is_active(now + timedelta(days=10) - timedelta(microseconds=1))
        assert not moved.is_active(now + timedelta(days=10))
    else:
        assert not moved.is_active(now)


def test_expiry_is_read_from_the_clock_not_written_by_a_job() -> None:
    """An active delegation past its end date and a pending one past 90 days report EXPIRED at
    that instant, grant nothing, and are still stored as they were."""
    active, _ = _delegation_standing("active")
    assert active.status_at(T0 + timedelta(days=10)) is DelegationStatus.EXPIRED
    assert active.as_of(T0 + timedelta(days=10)).status is DelegationStatus.EXPIRED
    assert active.status is DelegationStatus.ACTIVE
    lapsed, at = _delegation_standing("lapsed")
    assert lapsed.status_at(at - timedelta(microseconds=1)) is DelegationStatus.PENDING
    assert lapsed.status_at(at) is DelegationStatus.EXPIRED
    assert not lapsed.is_active(at)


# -- the state machine over the Portal ----------------------------------------------------------

LINK_LIFETIME = timedelta(days=90)
CLOCK_SKEW = timedelta(seconds=60)
PENDING_LAPSE = timedelta(days=90)
ROLE_SETS = st.sampled_from(
    [
        None,
        frozenset({AdminRole.PASSWORD_ADMIN}),
        frozenset({AdminRole.BILLING_ADMIN}),
        frozenset({AdminRole.USER_MANAGEMENT_ADMIN, AdminRole.SERVICE_ADMIN}),
        frozenset({AdminRole.GLOBAL_ADMIN}),
    ]
)
DURATIONS = st.sampled_from([None, timedelta(days=1), timedelta(days=30), timedelta(days=730)])
PARTNER_ACTORS = ("admin", "full", "limited", "plain")
CUSTOMERS = ("north", "south")
CUSTOMER_ROLES = (AdminRole.GLOBAL_ADMIN, AdminRole.PASSWORD_ADMIN, None)


@attrs.define
class ModelLink:
    """A delegation link as the model remembers it."""

    url: str
    roles: frozenset[AdminRole]
    duration: timedelta | None
    issued_at: datetime

    def expired(self, now: datetime) -> bool:
        return now > self.issued_at + LINK_LIFETIME + CLOCK_SKEW


@attrs.define
class ModelDelegation:
    """A delegation as the model believes it stands."""

    id: str
    customer: str
    roles: frozenset[AdminRole]
    duration: timedelta | None
    stored: DelegationStatus
    offered_at: datetime
    ends_at: datetime | None = None

    def status_at(self, now: datetime) -> DelegationStatus:
        if self.stored is DelegationStatus.ACTIVE and self.ends_at and now >= self.ends_at:
            return DelegationStatus.EXPIRED
        if self.stored is DelegationStatus.PENDING and now >= self.offered_at + PENDING_LAPSE:
            return DelegationStatus.EXPIRED
        return self.stored


@attrs.define
class PendingPassword:
    """A temporary password a delegate set and nobody has used yet, as the model sees it."""

    victim: str
    password: str
    setter: str
    customer: str
    #: The delegation it was set through.
    delegation: str
    set_at: datetime
    #: Whether the store still holds it (not used, replaced by a newer reset, or forgotten).
    stored: bool = True


class DelegationLifecycle(RuleBasedStateMachine):
    """A partner, two customers, and every delegation use case in any order."""

    links = Bundle("links")
    delegations = Bundle("delegations")

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(T0)
        self.portal = make_portal(MemoryStore(), self.clock)
        self.partner = add_partner(self.portal, "Machine Partners", "machine-partners")
        self.customers = {
            name: add_customer(self.portal, name.title(), f"{name}.example", CUSTOMER_ROLES)
            for name in CUSTOMERS
        }
        self.access: dict[str, PartnerAccess | None] = {
            self.partner_user(who).id: self.partner_user(who).partner_access
            for who in PARTNER_ACTORS
        }
        self.model: dict[str, ModelDelegation] = {}
        self.redeemed: dict[tuple[str, str], str | None] = {}
        self.final_seen: dict[str, DelegationStatus] = {}
        self.terms: dict[str, tuple[frozenset[AdminRole], timedelta | None]] = {}
        #: Temporary passwords set and kept for later, in the order they were set.
        self.pending: list[PendingPassword] = []
        self.audit_seq = self.head()[0]

    # -- helpers --------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock()

    def partner_user(self, who: str) -> User:
        user: User = getattr(self.partner, who)
        return user

    def head(self) -> tuple[int, str]:
        with self.portal.store.unit_of_work(write=False) as uow:
            return uow.audit_head()

    def new_events(self) -> list[AuditEvent]:
        with self.portal.store.unit_of_work(write=False) as uow:
            events = [e for e in uow.audit_events() if e.seq > self.audit_seq]
        if events:
            self.audit_seq = events[-1].seq
        return events

    def expect_events(self, *expected: tuple[str, str]) -> list[AuditEvent]:
        events = self.new_events()
        assert [(e.action, e.outcome) for e in events] == list(expected)
        return events

    def active_of(self, customer: str) -> ModelDelegation | None:
        now = self.now()
        active = [
            d
            for d in self.model.values()
            if d.customer == customer and d.status_at(now) is DelegationStatus.ACTIVE
        ]
        assert len(active) <= 1
        return active[0] if active else None

    def effective(self, user: User, customer: str) -> frozenset[AdminRole]:
        access = self.access[user.id]
        active = self.active_of(customer)
        if access is None or active is None:
            return frozenset()
        if access is PartnerAccess.FULL:
            return active.roles
        return active.roles & {AdminRole.PASSWORD_ADMIN}

    def signs_in(self, entry: PendingPassword) -> bool:
        """Whether a kept temporary password signs in now, as the model sees it."""
        active = self.active_of(entry.customer)
        return (
            entry.stored
            and active is not None
            and active.id == entry.delegation
            and self.now() < entry.set_at + DEFAULT_TEMPORARY_PASSWORD_LIFETIME
        )

    def customer_user(self, customer: str, role: AdminRole | None) -> User:
        return self.customers[customer].by_role[role]

    # -- rules ----------------------------------------------------------------------------

    @initialize(target=delegations, roles=ROLE_SETS)
    def start_with_an_active_delegation(self, roles: frozenset[AdminRole] | None) -> str:
        """Every run starts with one customer in an active delegation, so that the rules that
        need one (resets, revocation, ending) have it from the first step."""
        url = self.portal.offer_delegated_admin(self.partner.admin, roles=roles)
        cast = self.customers["north"]
        result = self.portal.redeem(url, cast.admin, accept_delegated_admin=True).delegation
        assert result is not None
        self.expect_events(
            ("link.offer_delegated_admin", "success"),
            ("delegation.offer", "success"),
            ("delegation.accept", "success"),
            ("link.redeem", "success"),
        )
        now = self.now()
        self.model[result.id] = ModelDelegation(
            result.id, "north", roles or ALL, None, DelegationStatus.ACTIVE, offered_at=now
        )
        self.terms[result.id] = (roles or ALL, None)
        self.redeemed[url, "north"] = result.id
        return result.id

    @rule(target=links, by=st.sampled_from(PARTNER_ACTORS), roles=ROLE_SETS, duration=DURATIONS)
    def offer(self, by: str, roles: frozenset[AdminRole] | None, duration: timedelta | None) -> Any:
        """A partner user offers delegated administration through a standalone link."""
        actor = self.partner_user(by)
        if self.access[actor.id] is None:
            with pytest.raises(Forbidden):
                self.portal.offer_delegated_admin(actor, roles=roles, duration=duration)
            self.expect_events(("link.offer_delegated_admin", "denied"))
            return multiple()
        url = self.portal.offer_delegated_admin(actor, roles=roles, duration=duration)
        self.expect_events(("link.offer_delegated_admin", "success"))
        return ModelLink(url, roles or ALL, duration, self.now())

    @rule(
        target=delegations,
        link=links,
        customer=st.sampled_from(CUSTOMERS),
        by=st.sampled_from([AdminRole.GLOBAL_ADMIN, *CUSTOMER_ROLES]),
        accept=st.sampled_from([None, None, True, True, False]),
    )
    def redeem(
        self, link: ModelLink, customer: str, by: AdminRole | None, accept: bool | None
    ) -> Any:
        """A customer user redeems a link: consent now, decline, or leave the offer pending."""
        user = self.customer_user(customer, by)
        now = self.now()
        if link.expired(now):
            with pytest.raises(LinkExpired):
                self.portal.redeem(link.url, user, accept_delegated_admin=accept)
            self.expect_events(("link.redeem", "failed"))
            return multiple()
        if accept is True and by is not AdminRole.GLOBAL_ADMIN:
            with pytest.raises(Forbidden):
                self.portal.redeem(link.url, user, accept_delegated_admin=accept)
            self.expect_events(("link.redeem", "denied"))
            return multiple()
        result = self.portal.redeem(link.url, user, accept_delegated_admin=accept).delegation
        assert result is not None
        if accept is False and by is not AdminRole.GLOBAL_ADMIN:
            # Only a global admin declines (SPEC F2): from anyone else, it stays pending.
            accept = None
        key = (link.url, customer)
        active = self.active_of(customer)
        if key in self.redeemed:
            first = self.model[self.redeemed[key]]
            if accept is False and first.status_at(now) is DelegationStatus.PENDING:
                # The same link again, with a global admin's refusal: declined.
                assert (result.id, result.status) == (first.id, DelegationStatus.DECLINED)
                first.stored = DelegationStatus.DECLINED
                [event] = self.expect_events(("delegation.decline", "success"))
                assert (event.delegation_id, event.actor_id) == (first.id, user.id)
                return multiple()
            if accept is True and first.status_at(now) is DelegationStatus.PENDING:
                # The same link again, with a global admin's consent: the delegation the
                # first redemption left pending is accepted (or the one in force returned).
                if active is not None:
                    assert result.id == active.id
                    self.expect_events()
                    return multiple()
                assert (result.id, result.status) == (first.id, DelegationStatus.ACTIVE)
                first.stored = DelegationStatus.ACTIVE
                if first.duration is not None:
                    first.ends_at = now + first.duration
                assert result.ends_at == first.ends_at
                [event] = self.expect_events(("delegation.accept", "success"))
                assert (event.delegation_id, event.actor_id) == (first.id, user.id)
                return multiple()
            assert result.id == self.redeemed[key]
            assert result.status is self.model[result.id].status_at(now)
            self.expect_events()
            return multiple()
        if accept is True and active is not None:
            # Never a second active delegation: the one in force is returned.
            assert result.id == active.id
            self.redeemed[key] = active.id
            self.expect_events(("link.redeem", "success"))
            return multiple()
        stored = {
            None: DelegationStatus.PENDING,
            True: DelegationStatus.ACTIVE,
            False: DelegationStatus.DECLINED,
        }[accept]
        entry = ModelDelegation(
            result.id, customer, link.roles, link.duration, stored, offered_at=now
        )
        if accept is True and link.duration is not None:
            entry.ends_at = now + link.duration
        assert (result.status, result.roles, result.duration, result.ends_at) == (
            stored,
            entry.roles,
            entry.duration,
            entry.ends_at,
        )
        self.model[result.id] = entry
        self.terms[result.id] = (entry.roles, entry.duration)
        self.redeemed[key] = result.id
        steps = {None: [], True: ["delegation.accept"], False: ["delegation.decline"]}[accept]
        events = self.expect_events(
            ("delegation.offer", "success"),
            *((step, "success") for step in steps),
            ("link.redeem", "success"),
        )
        assert all(e.delegation_id == result.id for e in events[:-1])
        return result.id

    def _customer_transition(
        self,
        action: str,
        delegation_id: str,
        by: str,
        allowed_from: DelegationStatus,
        to: DelegationStatus,
    ) -> None:
        entry = self.model[delegation_id]
        call = getattr(self.portal, f"{action}_delegation")
        if by == "partner-full":
            # A delegate never manages the customer's partner relationships.
            actor = self.partner.full
            full = self.access[actor.id] is PartnerAccess.FULL
            with pytest.raises(NotFound if full else Forbidden):
                call(actor, delegation_id)
            self.expect_events((f"delegation.{action}", "failed" if full else "denied"))
            return
        actor = self.customer_user(entry.customer, AdminRole(by) if by != "user" else None)
        if actor.admin_role is not AdminRole.GLOBAL_ADMIN:
            with pytest.raises(Forbidden):
                call(actor, delegation_id)
            self.expect_events((f"delegation.{action}", "denied"))
            return
        now = self.now()
        other_active = self.active_of(entry.customer)
        legal = entry.status_at(now) is allowed_from and not (
            to is DelegationStatus.ACTIVE and other_active is not None
        )
        if not legal:
            with pytest.raises(ValidationError):
                call(actor, delegation_id)
            [event] = self.expect_events((f"delegation.{action}", "failed"))
            assert event.delegation_id == delegation_id
            return
        changed = call(actor, delegation_id)
        record_path(f"{action}: success")
        assert changed.status is to
        entry.stored = to
        if to is DelegationStatus.ACTIVE and entry.duration is not None:
            entry.ends_at = now + entry.duration
        assert changed.ends_at == entry.ends_at
        [event] = self.expect_events((f"delegation.{action}", "success"))
        assert (event.delegation_id, event.actor_id) == (delegation_id, actor.id)

    # Weighted towards the customer's global admin, who is the one that may decide.
    WHO_DECIDES = st.sampled_from(
        ["global_admin", "global_admin", "global_admin", "password_admin", "partner-full"]
    )

    @rule(delegation=delegations, by=WHO_DECIDES)
    def consent(self, delegation: str, by: str) -> None:
        """A customer's global admin accepts a pending delegation; nobody else may."""
        self._customer_transition(
            "accept", delegation, by, DelegationStatus.PENDING, DelegationStatus.ACTIVE
        )

    @rule(delegation=delegations, by=WHO_DECIDES)
    def decline(self, delegation: str, by: str) -> None:
        """A customer's global admin declines a pending delegation."""
        self._customer_transition(
            "decline", delegation, by, DelegationStatus.PENDING, DelegationStatus.DECLINED
        )

    @rule(delegation=delegations, by=WHO_DECIDES)
    def revoke(self, delegation: str, by: str) -> None:
        """A customer's global admin revokes an active delegation."""
        self._customer_transition(
            "revoke", delegation, by, DelegationStatus.ACTIVE, DelegationStatus.REVOKED
        )

    @rule(delegation=delegations, by=st.sampled_from([*PARTNER_ACTORS, "customer-admin"]))
    def end(self, delegation: str, by: str) -> None:
        """The partner's global admin or a FULL user ends a pending or active delegation."""
        entry = self.model[delegation]
        if by == "customer-admin":
            with pytest.raises(NotFound):
                self.portal.end_delegation(self.customers[entry.customer].admin, delegation)
            self.expect_events(("delegation.end", "failed"))
            return
        actor = self.partner_user(by)
        may = actor.admin_role is AdminRole.GLOBAL_ADMIN or (
            self.access[actor.id] is PartnerAccess.FULL
        )
        if not may:
            with pytest.raises(Forbidden):
                self.portal.end_delegation(actor, delegation)
            self.expect_events(("delegation.end", "denied"))
            return
        if entry.status_at(self.now()) not in (DelegationStatus.PENDING, DelegationStatus.ACTIVE):
            with pytest.raises(ValidationError):
                self.portal.end_delegation(actor, delegation)
            self.expect_events(("delegation.end", "failed"))
            return
        ended = self.portal.end_delegation(actor, delegation)
        record_path("end: success")
        assert ended.status is DelegationStatus.ENDED
        entry.stored = DelegationStatus.ENDED
        [event] = self.expect_events(("delegation.end", "success"))
        assert event.delegation_id == delegation

    @rule(hours=st.integers(min_value=1, max_value=24 * 45))
    def advance_clock(self, hours: int) -> None:
        """Time passes (up to 45 days)."""
        self.clock.advance(hours=hours)

    @rule()
    def lapse(self) -> None:
        """Ninety days pass: every pending offer lapses, every link of before expires."""
        self.clock.advance(PENDING_LAPSE)

    @rule(
        who=st.sampled_from(["full", "limited", "plain"]),
        access=st.sampled_from([PartnerAccess.FULL, PartnerAccess.LIMITED, None]),
    )
    def change_partner_access(self, who: str, access: PartnerAccess | None) -> None:
        """The partner's global admin changes a partner user's access; it counts at once."""
        user = self.partner_user(who)
        self.portal.assign_roles(
            self.partner.admin, user.id, admin_role=None, partner_access=access
        )
        changed = self.access[user.id] != access
        self.access[user.id] = access
        # A change of its access forgets every temporary password it set that the store
        # still holds: a role given back gives none back. Those that signed in until now
        # are recorded; those that no longer did go without a word (the partner must not
        # learn which of them a customer that revoked it left unused).
        mine = [p for p in self.pending if changed and p.stored and p.setter == user.id]
        voided = [p for p in mine if self.signs_in(p)]
        for entry in mine:
            entry.stored = False
        events = self.expect_events(
            *[("user.temporary_password.void", "success")] * len(voided),
            ("user.assign_roles", "success"),
        )
        assert [e.target_id for e in events[:-1]] == [p.victim for p in voided]

    @rule(
        by=st.sampled_from(PARTNER_ACTORS),
        customer=st.sampled_from(CUSTOMERS),
        victim_role=st.sampled_from(CUSTOMER_ROLES),
        keep=st.booleans(),
    )
    def reset_password(
        self, by: str, customer: str, victim_role: AdminRole | None, keep: bool
    ) -> None:
        """A partner user resets a customer user's password, within its effective roles;
        the user signs in with it at once, or (*keep*) later, after whatever happens."""
        actor = self.partner_user(by)
        victim = self.customer_user(customer, victim_role)
        roles = self.effective(actor, customer)
        # A delegate never resets a customer's global admin (they hold its partner
        # relationships, which no delegate does): the rest of GLOBAL_ADMIN's reach.
        resets = {
            AdminRole.GLOBAL_ADMIN: {None, *AdminRole} - {AdminRole.GLOBAL_ADMIN},
            AdminRole.PASSWORD_ADMIN: {None, AdminRole.PASSWORD_ADMIN},
            AdminRole.USER_MANAGEMENT_ADMIN: {
                None,
                AdminRole.PASSWORD_ADMIN,
                AdminRole.USER_MANAGEMENT_ADMIN,
            },
        }
        allowed = any(victim_role in resets.get(role, ()) for role in roles)
        company_id = self.customers[customer].company.id
        if not allowed:
            with pytest.raises(Forbidden):
                self.portal.reset_password(actor, company_id, victim.id)
            self.expect_events(("user.reset_password", "denied"))
            return
        reset = self.portal.reset_password(actor, company_id, victim.id)
        record_path("reset: success")
        assert len(reset.temporary_password) >= 16
        for older in self.pending:
            if older.victim == victim.id:
                older.stored = False  # one temporary password a user: the newer replaces it
        if keep:
            active = self.active_of(customer)
            assert active is not None
            self.pending.append(
                PendingPassword(
                    victim.id, reset.temporary_password, actor.id, customer, active.id, self.now()
                )
            )
            self.expect_events(("user.reset_password", "success"))
            return
        assert self.portal.verify_password(victim.id, reset.temporary_password)
        assert not self.portal.verify_password(victim.id, reset.temporary_password)  # one-time
        event, used = self.expect_events(
            ("user.reset_password", "success"), ("user.temporary_password.use", "success")
        )
        assert (used.actor_id, used.target_id) == (victim.id, victim.id)
        assert reset.temporary_password not in repr(used)
        active = self.active_of(customer)
        assert active is not None
        assert event.delegation_id == active.id
        held = "all" if roles == ALL else ",".join(sorted(r.value for r in roles))
        assert event.role == f"delegated:{held}"
        assert reset.temporary_password not in repr(event)

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data())
    def sign_in_later(self, data: st.DataObject) -> None:
        """A kept temporary password is tried: it signs in (once) exactly while the store
        holds it, within its lifetime, and the very delegation it was set through is still
        the active, unexpired one (its setter's access unchanged since, or it would have been
        forgotten). Revoked, ended, expired, or a new consent since: never again."""
        entry = data.draw(st.sampled_from(self.pending))
        expected = self.signs_in(entry)
        assert self.portal.verify_password(entry.victim, entry.password) is expected
        record_path(f"sign in later: {expected}")
        if expected:
            entry.stored = False
            self.expect_events(("user.temporary_password.use", "success"))
        else:
            self.expect_events()

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def rights_come_only_from_an_active_delegation_and_its_roles(self) -> None:
        """Every right a partner user holds in a customer is one the model grants: through the
        active, unexpired delegation, within its effective roles; and nothing more or less."""
        for who, customer in itertools.product(PARTNER_ACTORS, CUSTOMERS):
            user = self.partner_user(who)
            access = self.access[user.id]
            active = self.active_of(customer)
            actor = Who(
                who,
                "partner",
                "global_admin" if who == "admin" else None,
                None if access is None else access.value,
            )
            roles = frozenset(r.value for r in active.roles) if active else frozenset()
            status = "active" if active else "none"
            company_id = self.customers[customer].company.id
            for permission in Permission:
                decision = self.portal.decide(user, permission, company_id)
                if decision:
                    assert active is not None, (who, customer, permission)
                    assert access is not None
                expected = model_customer(actor, permission.value, roles, status, None)
                assert bool(decision) == expected, (who, customer, permission, decision)

    @invariant()
    def the_partner_finds_exactly_the_customers_it_administers_now(self) -> None:
        """SPEC F6: a search lists the customers with an active, unexpired delegation (no
        subscription is advised here), by the clock at the search; none after revocation,
        decline, end, lapse or the end date."""
        searchers = [
            self.partner_user(who)
            for who in PARTNER_ACTORS
            if self.access[self.partner_user(who).id]
        ]
        if not searchers:
            return
        found = {c.id for c in self.portal.find_customers(searchers[0], "")}
        assert found == {
            self.customers[name].company.id for name in CUSTOMERS if self.active_of(name)
        }

    @invariant()
    def final_states_stay_final_and_terms_never_change(self) -> None:
        """What each customer's global admin lists agrees with the model; a delegation once seen
        final keeps that status; roles and duration stay those of the offer."""
        now = self.now()
        for name, cast in self.customers.items():
            listed = self.portal.list_delegations(cast.admin)
            assert {d.id for d in listed} == {
                i for i, d in self.model.items() if d.customer == name
            }
            active = 0
            for d in listed:
                assert d.status is self.model[d.id].status_at(now), d.id
                assert (d.roles, d.duration) == self.terms[d.id]
                if d.id in self.final_seen:
                    assert d.status is self.final_seen[d.id]
                elif d.status.is_final:
                    self.final_seen[d.id] = d.status
                active += d.status is DelegationStatus.ACTIVE
            assert active <= 1
        self.expect_events()  # reading is not an event

    @invariant()
    def a_customer_sees_the_partner_once_it_was_offered_a_delegation(self) -> None:
        """F1: the partner is shown to a customer's users from its first delegation offer on,
        whatever became of it (pending, active, declined, revoked, ended, lapsed), and to no
        customer it never offered one (no subscription is advised here)."""
        for name, cast in self.customers.items():
            offered = any(d.customer == name for d in self.model.values())
            for reader in cast.by_role.values():
                listed = [c.id for c in self.portal.list_partners(reader)]
                assert listed == ([self.partner.company.id] if offered else []), (name, reader.id)
            if offered:
                shown = self.portal.partner_profile(cast.admin, self.partner.company.id)
                assert shown.name == "Machine Partners"
        self.expect_events()  # allowed reads are not events

    @invariant()
    def the_audit_chain_verifies(self) -> None:
        """Every event so far is in one unbroken hash chain."""
        assert self.portal.verify_audit_trail() == self.head()[0] == self.audit_seq


TestDelegationLifecycle = DelegationLifecycle.TestCase
TestDelegationLifecycle.settings = settings(stateful_step_count=40)
