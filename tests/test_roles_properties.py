"""Properties of the policy: targets only narrow, delegations grant within their roles, no
escalation; and a state machine that drives the Portal with arbitrary actors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from partnerkit import (
    AdminRole,
    AlreadyExists,
    Forbidden,
    InvalidState,
    NotFound,
    PartnerAccess,
    PartnerKitError,
    Permission,
    Portal,
    Rule,
    User,
    ValidationError,
)
from partnerkit.roles import decide, decide_assignment
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing import FakeClock, build_world, snapshot
from partnerkit.testing import strategies as pks

GA = AdminRole.GLOBAL_ADMIN
UMA = AdminRole.USER_MANAGEMENT_ADMIN
FULL, LIMITED = PartnerAccess.FULL, PartnerAccess.LIMITED
#: How much partner access is worth (no escalation: nobody grants more than it holds).
RANK = {None: 0, LIMITED: 1, FULL: 2}
NOW = datetime(2024, 6, 1, tzinfo=UTC)

#: Each admin role's rights in a company (SPEC section 3), written out as data.
# fmt: off
ROLE_RIGHTS = {
    "global_admin": {
        "view_profile", "edit_profile", "manage_users", "assign_roles", "reset_password",
        "purchase", "manage_subscriptions", "manage_service_requests", "view_service_health",
        "administer_services", "manage_partner_relationships",
    },
    "billing_admin": {
        "view_profile", "purchase", "manage_subscriptions", "manage_service_requests",
        "view_service_health",
    },
    "password_admin": {
        "view_profile", "reset_password", "manage_service_requests", "view_service_health",
    },
    "service_admin": {
        "view_profile", "administer_services", "manage_service_requests", "view_service_health",
    },
    "user_management_admin": {
        "view_profile", "manage_users", "reset_password", "manage_service_requests",
        "view_service_health",
    },
}
# fmt: on


@attrs.frozen
class Person:
    """A subject of the pure decisions."""

    id: str
    company_id: str
    admin_role: AdminRole | None
    partner_access: PartnerAccess | None


@attrs.frozen
class Grant:
    """A delegation as the pure decisions see it, active or not."""

    partner_id: str
    customer_id: str
    roles: frozenset[AdminRole]
    active: bool

    def is_active(self, now: datetime) -> bool:
        """Whether the grant counts at *now*."""
        return self.active


company_ids = st.sampled_from(["cmp_p", "cmp_c", "cmp_x"])
people = st.builds(
    Person,
    id=st.sampled_from(["usr_1", "usr_2", "usr_3"]),
    company_id=company_ids,
    admin_role=pks.admin_roles(),
    partner_access=pks.partner_accesses(),
)
grants = st.builds(
    Grant,
    partner_id=company_ids,
    customer_id=company_ids,
    roles=st.frozensets(st.sampled_from(AdminRole), min_size=1),
    active=st.booleans(),
)


@given(
    actor=people,
    target=people,
    permission=pks.permissions(),
    company=company_ids,
    grant=st.none() | grants,
    is_partner=st.booleans(),
)
def test_a_target_only_ever_narrows_a_decision(
    actor: Person,
    target: Person,
    permission: Permission,
    company: str,
    grant: Grant | None,
    is_partner: bool,
) -> None:
    """Whatever is allowed for a target is allowed without one; every decision names a rule."""
    kwargs: dict[str, Any] = {"delegation": grant, "now": NOW, "company_is_partner": is_partner}
    general = decide(actor, permission, company, **kwargs)
    specific = decide(actor, permission, company, target=target, **kwargs)
    if specific:
        assert general
    assert isinstance(specific.rule, Rule)
    assert specific.reason == specific.rule.value


@given(actor=people, permission=pks.permissions(), grant=grants)
def test_a_delegation_grants_only_its_roles_rights_on_its_customer(
    actor: Person, permission: Permission, grant: Grant
) -> None:
    """On a company not its own, a partner user gets at most the rights of the grant's roles
    (only password admin's if LIMITED), only while the grant is active and names both
    companies, and never partner relationships or partner-side rights."""
    target_company = "cmp_c"
    if actor.company_id == target_company:
        return
    decision = decide(
        actor,
        permission,
        target_company,
        delegation=grant,
        now=NOW,
        company_is_partner=False,
    )
    roles = set(grant.roles)
    if actor.partner_access is LIMITED:
        roles &= {AdminRole.PASSWORD_ADMIN}
    applies = (
        actor.partner_access is not None
        and grant.active
        and grant.partner_id == actor.company_id
        and grant.customer_id == target_company
        and roles
    )
    rights = set().union(*(ROLE_RIGHTS[r.value] for r in roles)) | {"view_profile"}
    rights.discard("manage_partner_relationships")
    assert bool(decision) is bool(applies and permission.value in rights)


@given(
    actor=people,
    target=people,
    company=company_ids,
    admin_role=pks.admin_roles(),
    access=pks.partner_accesses(),
    grant=st.none() | grants,
    is_partner=st.booleans(),
)
def test_no_assignment_grants_more_than_its_actor_holds(
    actor: Person,
    target: Person,
    company: str,
    admin_role: AdminRole | None,
    access: PartnerAccess | None,
    grant: Grant | None,
    is_partner: bool,
) -> None:
    """An allowed assignment comes from a global admin (own, or FULL through an active grant
    of that role), and partner access only from an own partner's admin holding at least it."""
    decision = decide_assignment(
        actor,
        company,
        target=target,
        admin_role=admin_role,
        partner_access=access,
        company_is_partner=is_partner,
        delegation=grant,
        now=NOW,
    )
    if not decision:
        return
    own = actor.company_id == company
    if own:
        assert actor.admin_role is GA
    else:
        assert actor.partner_access is FULL
        assert grant is not None
        assert grant.active
        assert GA in grant.roles
    assert target.company_id == company
    if access is not None or target.partner_access is not None:
        assert own
        assert is_partner
        assert RANK[actor.partner_access] >= RANK[access]


# -- the Portal, driven by arbitrary actors ------------------------------------------------


@attrs.frozen
class Held:
    """What the model says a user holds."""

    company_id: str
    email: str
    admin_role: AdminRole | None
    partner_access: PartnerAccess | None


_GHOST = "usr_ghost"


def _managing_refusal(me: Held | None, target: Held | None) -> type[Exception] | None:
    """What ``MANAGE_USERS`` on *target* answers *me* (``remove_user``, ``update_user``):
    only global and user-management admins manage users, in their own company, and a
    user-management admin only users with neither an admin role nor partner access."""
    if me is None or me.admin_role not in (GA, UMA):
        return Forbidden
    if target is None or target.company_id != me.company_id:
        return NotFound
    if me.admin_role is UMA and (
        target.admin_role is not None or target.partner_access is not None
    ):
        return Forbidden
    return None


class PortalRoles(RuleBasedStateMachine):
    """Arbitrary actors create, re-role and remove users; a model of F2 predicts each
    outcome, and the store must agree with it after every step.

    The model grants nothing except through a global admin of the same company who holds
    at least the partner access granted; so when store and model agree, no user gained a
    right that no global admin gave. Every company keeps a global admin throughout.
    """

    def __init__(self) -> None:
        super().__init__()
        self.portal = Portal(store=MemoryStore(), clock=FakeClock())
        world = build_world(self.portal)
        self.partner_id = world.partner.id
        self.customer_id = world.customer.id
        self.objects: dict[str, User] = {}
        self.held: dict[str, Held] = {}
        #: E-mails moved so far (each move goes to an address nobody has).
        self.moves = 0
        #: Who gave each user its current settings: ``None`` for the world's own setup.
        self.given_by: dict[str, Held | None] = {}
        for user in (
            world.partner_admin,
            world.partner_agent,
            world.partner_billing,
            world.customer_admin,
            world.customer_user,
        ):
            self._remember(user, given_by=None)
        # A second global admin of the partner, without partner access: the one whose
        # every step toward the partner users' access must be refused.
        gus = self.portal.create_user(
            world.partner_admin,
            email="gus@contoso.example",
            display_name="Gus",
            admin_role=GA,
        )
        self._remember(gus, given_by=self.held[world.partner_admin.id])
        # In creation order: ids are random, and the draws must not depend on them.
        self.known = [*self.held, _GHOST]
        self.serial = 0
        self.audited = len(snapshot(self.portal.store).audit)

    def _remember(self, user: User, given_by: Held | None) -> None:
        self.objects.setdefault(user.id, user)
        self.held[user.id] = Held(user.company_id, user.email, user.admin_role, user.partner_access)
        self.given_by[user.id] = given_by

    def _actor(self, data: st.DataObject) -> tuple[str, User | str]:
        # Half the time a global admin acts, so that the allowed paths get walked too.
        admins = [i for i in self.known if i in self.held and self.held[i].admin_role is GA]
        pool = admins if data.draw(st.booleans(), label="an admin acts") else self.known
        ident = data.draw(st.sampled_from(pool), label="actor")
        obj = self.objects.get(ident)
        # A stale User object, as first seen, must be re-read by the Portal.
        if obj is not None and data.draw(st.booleans(), label="as object"):
            return ident, obj
        return ident, ident

    def _global_admins(self, company_id: str) -> int:
        return sum(
            1 for h in self.held.values() if h.company_id == company_id and h.admin_role is GA
        )

    def _is_partner(self, company_id: str) -> bool:
        return company_id == self.partner_id

    def _check(self, action: str, expected: type[Exception] | None, call: Any) -> Any:
        event(f"{action}: {'success' if expected is None else expected.__name__}")
        if expected is not None:
            with pytest.raises(PartnerKitError) as info:
                call()
            assert type(info.value) is expected, f"expected {expected.__name__}"
            self._check_audited("denied" if expected is Forbidden else "failed")
            return None
        result = call()
        self._check_audited("success")
        return result

    def _check_audited(self, outcome: str) -> None:
        audit = snapshot(self.portal.store).audit
        assert len(audit) == self.audited + 1
        assert audit[-1].outcome == outcome
        self.audited = len(audit)

    @rule(
        data=st.data(),
        admin_role=pks.admin_roles(),
        access=pks.partner_accesses(),
        elsewhere=st.booleans(),
        reuse_email=st.booleans(),
    )
    def create_user(
        self,
        data: st.DataObject,
        admin_role: AdminRole | None,
        access: PartnerAccess | None,
        elsewhere: bool,
        reuse_email: bool,
    ) -> None:
        """Any actor tries to create a user with any roles, maybe in the other company."""
        actor_id, actor = self._actor(data)
        me = self.held.get(actor_id)
        self.serial += 1
        email = f"new{self.serial}@example.com"
        if reuse_email:
            email = data.draw(st.sampled_from(sorted(h.email for h in self.held.values())))
            email = email.swapcase()
        company_id = None
        if me is not None and elsewhere:
            company_id = self.customer_id if me.company_id == self.partner_id else self.partner_id

        expected: type[Exception] | None = None
        if me is None or company_id is not None or me.admin_role not in (GA, UMA):
            expected = Forbidden
        elif access is not None and not self._is_partner(me.company_id):
            expected = ValidationError
        elif (admin_role is not None or access is not None) and (
            me.admin_role is not GA or RANK[access] > RANK[me.partner_access]
        ):
            expected = Forbidden
        elif email.casefold() in {h.email.casefold() for h in self.held.values()}:
            expected = AlreadyExists

        user = self._check(
            "create_user",
            expected,
            lambda: self.portal.create_user(
                actor,
                email=email,
                display_name=f"User {self.serial}",
                admin_role=admin_role,
                partner_access=access,
                company_id=company_id,
            ),
        )
        if user is not None:
            self._remember(user, given_by=me)
            self.known.insert(-1, user.id)

    @rule(data=st.data(), admin_role=pks.admin_roles(), access=pks.partner_accesses())
    def assign_roles(
        self, data: st.DataObject, admin_role: AdminRole | None, access: PartnerAccess | None
    ) -> None:
        """Any actor tries to set any roles on any user (or on nobody)."""
        actor_id, actor = self._actor(data)
        target_id = data.draw(st.sampled_from(self.known), label="target")
        me, target = self.held.get(actor_id), self.held.get(target_id)

        expected: type[Exception] | None = None
        if me is None or me.admin_role is not GA:
            expected = Forbidden
        elif target is None or target.company_id != me.company_id:
            expected = NotFound
        elif access is not None and not self._is_partner(me.company_id):
            expected = ValidationError
        elif (access is not None or target.partner_access is not None) and RANK[access] > RANK[
            me.partner_access
        ]:
            expected = Forbidden
        elif (
            admin_role is not GA
            and target.admin_role is GA
            and self._global_admins(target.company_id) <= 1
        ):
            expected = InvalidState

        user = self._check(
            "assign_roles",
            expected,
            lambda: self.portal.assign_roles(
                actor, target_id, admin_role=admin_role, partner_access=access
            ),
        )
        if user is not None:
            self._remember(user, given_by=me)

    @rule(data=st.data())
    def remove_user(self, data: st.DataObject) -> None:
        """Any actor tries to remove any user (or nobody)."""
        actor_id, actor = self._actor(data)
        target_id = data.draw(st.sampled_from(self.known), label="target")
        me, target = self.held.get(actor_id), self.held.get(target_id)

        expected = _managing_refusal(me, target)
        last_admin = (
            target is not None
            and target.admin_role is GA
            and self._global_admins(target.company_id) <= 1
        )
        if expected is None and last_admin:
            expected = InvalidState

        self._check("remove_user", expected, lambda: self.portal.remove_user(actor, target_id))
        if expected is None:
            del self.held[target_id]

    @rule(data=st.data(), move=st.booleans())
    def update_user(self, data: st.DataObject, move: bool) -> None:
        """Any actor tries to rename any user (or nobody), or to move its e-mail to a new
        address: ``remove_user``'s limits, without its last-global-admin rule; moving
        another user's e-mail also takes what a reset of its password takes (a global
        admin holds at least a partner user's access). No role changes."""
        actor_id, actor = self._actor(data)
        target_id = data.draw(st.sampled_from(self.known), label="target")
        me, target = self.held.get(actor_id), self.held.get(target_id)

        expected = _managing_refusal(me, target)
        if expected is None and move and actor_id != target_id:
            assert me is not None
            assert target is not None
            if RANK[target.partner_access] > RANK[me.partner_access]:
                expected = Forbidden
        self.moves += 1
        email = f"moved{self.moves}@pool.example"
        changes: dict[str, str] = {"email": email} if move else {"display_name": "Renamed"}
        self._check(
            "update_user", expected, lambda: self.portal.update_user(actor, target_id, **changes)
        )
        if expected is None and move:
            assert target is not None
            self.held[target_id] = attrs.evolve(target, email=email)

    @invariant()
    def the_store_holds_what_the_model_predicts(self) -> None:
        """Every user's roles are what global admins gave, and nothing else."""
        users = snapshot(self.portal.store).users
        stored = {u.id: Held(u.company_id, u.email, u.admin_role, u.partner_access) for u in users}
        assert stored == self.held

    @invariant()
    def every_right_came_from_a_global_admin(self) -> None:
        """A user with any role or access got it at registration or from a global admin."""
        for ident, held in self.held.items():
            if held.admin_role is None and held.partner_access is None:
                continue
            assert not (held.partner_access and not self._is_partner(held.company_id))
            giver = self.given_by[ident]
            if giver is None:
                continue
            assert giver.admin_role is GA
            assert giver.company_id == held.company_id
            assert RANK[giver.partner_access] >= RANK[held.partner_access]

    @invariant()
    def every_company_keeps_a_global_admin(self) -> None:
        """Neither company is ever left without a global admin."""
        users = snapshot(self.portal.store).users
        for company_id in (self.partner_id, self.customer_id):
            assert any(u.company_id == company_id and u.admin_role is GA for u in users)

    def teardown(self) -> None:
        """The audit chain of the whole run verifies."""
        assert self.portal.verify_audit_trail() == self.audited


TestPortalRoles = PortalRoles.TestCase
TestPortalRoles.__doc__ = "No sequence of calls by arbitrary actors breaks the rules of F2."
