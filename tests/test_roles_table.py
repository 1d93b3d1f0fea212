"""The permission table of F2 and its target rules, checked exhaustively against plain data.

The expectations below are written out from SPEC F2 and section 3 by hand, as literal
tables; nothing here is computed from ``partnerkit.roles``. Each table is checked twice:
against the pure decision functions, and through ``Portal.decide`` on a populated store.
"""

from __future__ import annotations

import itertools
from datetime import datetime

import attrs
import pytest

from partnerkit import (
    AdminRole,
    Company,
    Forbidden,
    PartnerAccess,
    Permission,
    Portal,
    User,
    ValidationError,
)
from partnerkit.roles import decide, decide_assignment
from partnerkit.testing import World, snapshot

# -- the reference, as data ----------------------------------------------------------------

#: The columns of the permission rows below, in order.
PERMISSION_COLUMNS = (
    "view_profile",  # V
    "edit_profile",  # E
    "manage_users",  # M
    "assign_roles",  # A
    "reset_password",  # R
    "purchase",  # P
    "manage_subscriptions",  # S
    "manage_service_requests",  # Q
    "view_service_health",  # H
    "administer_services",  # D
    "manage_partner_relationships",  # L
    "view_partner_overview",  # O
    "search_customers",  # C
    "create_trial_invitations",  # T
    "create_purchase_offers",  # F
    "offer_delegated_admin",  # G
)

#: Own-company rights in a PARTNER company, by (admin role, partner access).
#: "X" allowed, "." denied; columns as in PERMISSION_COLUMNS.
#:                                        VEMARPSQHDLOCTFG
# fmt: off
PARTNER_COMPANY = {
    ("none", "none"):                    "X...............",
    ("none", "limited"):                 "X..........XXXXX",
    ("none", "full"):                    "X.........XXXXXX",
    ("global_admin", "none"):            "XXXXXXXXXXX.....",
    ("global_admin", "limited"):         "XXXXXXXXXXXXXXXX",
    ("global_admin", "full"):            "XXXXXXXXXXXXXXXX",
    ("billing_admin", "none"):           "X....XXXX.......",
    ("billing_admin", "limited"):        "X....XXXX..XXXXX",
    ("billing_admin", "full"):           "X....XXXX.XXXXXX",
    ("password_admin", "none"):          "X...X..XX.......",
    ("password_admin", "limited"):       "X...X..XX..XXXXX",
    ("password_admin", "full"):          "X...X..XX.XXXXXX",
    ("service_admin", "none"):           "X......XXX......",
    ("service_admin", "limited"):        "X......XXX.XXXXX",
    ("service_admin", "full"):           "X......XXXXXXXXX",
    ("user_management_admin", "none"):   "X.X.X..XX.......",
    ("user_management_admin", "limited"):"X.X.X..XX..XXXXX",
    ("user_management_admin", "full"):   "X.X.X..XX.XXXXXX",
}
# fmt: on

#: Own-company rights in a CUSTOMER company: partner access (which a customer's user can
#: never really hold) adds nothing there, so each role's row holds for every access.
#:                               VEMARPSQHDLOCTFG
# fmt: off
CUSTOMER_COMPANY = {
    "none":                     "X...............",
    "global_admin":             "XXXXXXXXXXX.....",
    "billing_admin":            "X....XXXX.......",
    "password_admin":           "X...X..XX.......",
    "service_admin":            "X......XXX......",
    "user_management_admin":    "X.X.X..XX.......",
}
# fmt: on

#: The target columns of the rows below: the target's admin role within each partner access
#: group (none | LIMITED | FULL), then the actor itself.
TARGET_ROLES = (
    "none",
    "global_admin",
    "billing_admin",
    "password_admin",
    "service_admin",
    "user_management_admin",
)
TARGET_ACCESS = ("none", "limited", "full")
_RANK = {name: rank for rank, name in enumerate(TARGET_ACCESS)}

#: Target rules, by permission and the actor's admin role (the same for every partner access
#: the actor holds). Columns: target role - G B P S U, for a target without partner access,
#: with LIMITED, with FULL; then "self".
#:                                   -GBPSU -GBPSU -GBPSU self
# fmt: off
TARGETED = {
    "reset_password": {
        "none":                     "...... ...... ...... .",
        "global_admin":             "XXXXXX XXXXXX XXXXXX .",
        "billing_admin":            "...... ...... ...... .",
        "password_admin":           "X..X.. ...... ...... .",
        "service_admin":            "...... ...... ...... .",
        "user_management_admin":    "X..X.X ...... ...... .",
    },
    "manage_users": {
        "none":                     "...... ...... ...... .",
        "global_admin":             "XXXXXX XXXXXX XXXXXX X",
        "billing_admin":            "...... ...... ...... .",
        "password_admin":           "...... ...... ...... .",
        "service_admin":            "...... ...... ...... .",
        "user_management_admin":    "X..... ...... ...... .",
    },
    "assign_roles": {
        "none":                     "...... ...... ...... .",
        "global_admin":             "XXXXXX XXXXXX XXXXXX X",
        "billing_admin":            "...... ...... ...... .",
        "password_admin":           "...... ...... ...... .",
        "service_admin":            "...... ...... ...... .",
        "user_management_admin":    "...... ...... ...... .",
    },
}
# fmt: on


def _role(name: str) -> AdminRole | None:
    return None if name == "none" else AdminRole(name)


def _access(name: str) -> PartnerAccess | None:
    return None if name == "none" else PartnerAccess(name)


def _name(value: AdminRole | PartnerAccess | None) -> str:
    return "none" if value is None else value.value


def _expected_own(kind: str, role: str, access: str, permission: Permission) -> bool:
    row = PARTNER_COMPANY[role, access] if kind == "partner" else CUSTOMER_COMPANY[role]
    return row[PERMISSION_COLUMNS.index(permission.value)] == "X"


def _expected_target(
    permission: Permission, actor_role: str, column: int, actor_access: str = "full"
) -> bool:
    tabled = TARGETED[permission.value][actor_role].replace(" ", "")[column] == "X"
    if permission is Permission.RESET_PASSWORD and 6 <= column < SELF:
        # F2, no escalation: resetting the password of a user with partner access hands over
        # that access, so it takes an actor holding at least as much.
        target_access = TARGET_ACCESS[column // 6]
        return tabled and _RANK[actor_access] >= _RANK[target_access]
    return tabled


@attrs.frozen
class Person:
    """A subject of the pure decisions (what a ``User`` offers them)."""

    id: str
    company_id: str
    admin_role: AdminRole | None
    partner_access: PartnerAccess | None


ROLE_NAMES = ("none", *(r.value for r in AdminRole))
ACCESS_NAMES = ("none", *(a.value for a in PartnerAccess))
TARGETED_PERMISSIONS = (
    Permission.RESET_PASSWORD,
    Permission.MANAGE_USERS,
    Permission.ASSIGN_ROLES,
)


def test_the_reference_names_every_role_access_and_permission() -> None:
    """The literal tables cover exactly the enums: a new member needs a new expectation."""
    assert set(PERMISSION_COLUMNS) == {p.value for p in Permission}
    assert len(PERMISSION_COLUMNS) == len(Permission)
    assert set(ROLE_NAMES) == set(CUSTOMER_COMPANY) == set(TARGET_ROLES)
    assert set(PARTNER_COMPANY) == set(itertools.product(ROLE_NAMES, ACCESS_NAMES))
    assert set(TARGET_ACCESS) == set(ACCESS_NAMES)
    for rows in TARGETED.values():
        assert set(rows) == set(ROLE_NAMES)
        assert all(len(r.replace(" ", "")) == 19 for r in rows.values())


# -- the permission table ------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["partner", "customer"])
@pytest.mark.parametrize("access", ACCESS_NAMES)
@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_role_and_access_holds_exactly_the_tabled_permissions(
    kind: str, role: str, access: str
) -> None:
    """In its own company, each (admin role, partner access) holds exactly its row's rights,
    and every decision names its rule."""
    actor = Person("usr_actor", "cmp_own", _role(role), _access(access))
    for permission in Permission:
        decision = decide(actor, permission, "cmp_own", company_is_partner=kind == "partner")
        assert bool(decision) is _expected_own(kind, role, access, permission), permission
        assert decision.allowed is bool(decision)
        assert decision.reason


def test_nothing_is_allowed_in_another_company_without_a_delegation() -> None:
    """Deny by default: no role and no access gives any right in a company not one's own."""
    for role, access in itertools.product(ROLE_NAMES, ACCESS_NAMES):
        actor = Person("usr_actor", "cmp_own", _role(role), _access(access))
        for permission, is_partner in itertools.product(Permission, (True, False)):
            assert not decide(actor, permission, "cmp_other", company_is_partner=is_partner)


# -- the target rules ----------------------------------------------------------------------


def _targets(company_id: str) -> list[tuple[int, Person]]:
    """Every target of the TARGETED columns (except self), with its column."""
    out = []
    for a, access in enumerate(TARGET_ACCESS):
        for r, role in enumerate(TARGET_ROLES):
            target = Person(f"usr_t_{role}_{access}", company_id, _role(role), _access(access))
            out.append((a * len(TARGET_ROLES) + r, target))
    return out


SELF = 18


@pytest.mark.parametrize("permission", TARGETED_PERMISSIONS, ids=lambda p: p.value)
@pytest.mark.parametrize("actor_access", ACCESS_NAMES)
@pytest.mark.parametrize("actor_role", ROLE_NAMES)
def test_every_actor_role_meets_every_target_role_as_tabled(
    actor_role: str, actor_access: str, permission: Permission
) -> None:
    """Who may reset whose password, manage and assign roles to whom, in a partner company:
    every actor role against every target role, privileged targets and oneself."""
    actor = Person("usr_actor", "cmp_p", _role(actor_role), _access(actor_access))
    for column, target in [*_targets("cmp_p"), (SELF, actor)]:
        decision = decide(actor, permission, "cmp_p", target=target, company_is_partner=True)
        expected = _expected_target(permission, actor_role, column, actor_access)
        assert bool(decision) is expected, (target, decision)


@pytest.mark.parametrize("permission", TARGETED_PERMISSIONS, ids=lambda p: p.value)
@pytest.mark.parametrize("actor_role", ROLE_NAMES)
def test_target_rules_are_the_same_in_a_customer_company(
    actor_role: str, permission: Permission
) -> None:
    """In a customer company (no partner access there) the same rows hold."""
    actor = Person("usr_actor", "cmp_c", _role(actor_role), None)
    for column, target in [*_targets("cmp_c")[:6], (SELF, actor)]:
        decision = decide(actor, permission, "cmp_c", target=target, company_is_partner=False)
        assert bool(decision) is _expected_target(permission, actor_role, column), target


@pytest.mark.parametrize(
    ("actor_role", "target", "reason"),
    [
        ("global_admin", "self", "no-self-password-reset-through-admin-path"),
        ("password_admin", "self", "no-self-password-reset-through-admin-path"),
        ("password_admin", "limited", "privileged-partner-user-needs-own-global-admin"),
        ("user_management_admin", "full", "privileged-partner-user-needs-own-global-admin"),
        ("user_management_admin", "global_admin", "target-role-outside-actor-limits"),
        ("password_admin", "billing_admin", "target-role-outside-actor-limits"),
        ("billing_admin", "none", "admin-role-lacks-permission"),
        ("none", "none", "deny-by-default"),
    ],
)
def test_a_refused_password_reset_names_the_rule_that_refused_it(
    actor_role: str, target: str, reason: str
) -> None:
    """The reason of a denial says which rule of F2 applied."""
    actor = Person("usr_actor", "cmp_p", _role(actor_role), None)
    if target == "self":
        subject = actor
    elif target in ("limited", "full"):
        subject = Person("usr_t", "cmp_p", None, _access(target))
    else:
        subject = Person("usr_t", "cmp_p", _role(target), None)
    decision = decide(
        actor, Permission.RESET_PASSWORD, "cmp_p", target=subject, company_is_partner=True
    )
    assert not decision
    assert decision.reason == reason


def test_a_target_in_another_company_is_refused_to_everyone() -> None:
    """No role reaches a user of another company through the target rules."""
    target = Person("usr_t", "cmp_other", None, None)
    for role in ROLE_NAMES:
        actor = Person("usr_actor", "cmp_p", _role(role), PartnerAccess.FULL)
        for permission in TARGETED_PERMISSIONS:
            assert not decide(actor, permission, "cmp_p", target=target, company_is_partner=True)


# -- escalation ----------------------------------------------------------------------------


@attrs.frozen
class Grant:
    """An active delegation, as the pure decisions see one."""

    partner_id: str
    customer_id: str
    roles: frozenset[AdminRole]

    def is_active(self, now: datetime) -> bool:
        """Always active in these tests."""
        return True


NOW = datetime.fromisoformat("2024-05-01T00:00:00+00:00")


def _assign(
    actor: Person,
    target: Person,
    admin_role: AdminRole | None = None,
    partner_access: PartnerAccess | None = None,
    *,
    company: str = "cmp_p",
    is_partner: bool = True,
    delegation: Grant | None = None,
) -> tuple[bool, str]:
    d = decide_assignment(
        actor,
        company,
        target=target,
        admin_role=admin_role,
        partner_access=partner_access,
        company_is_partner=is_partner,
        delegation=delegation,
        now=NOW,
    )
    return bool(d), d.reason


GA, FULL, LIMITED = AdminRole.GLOBAL_ADMIN, PartnerAccess.FULL, PartnerAccess.LIMITED
PLAIN = Person("usr_plain", "cmp_p", None, None)


def test_a_limited_global_admin_cannot_grant_full_access() -> None:
    """A global admin grants partner access only up to what it holds itself."""
    limited_ga = Person("usr_a", "cmp_p", GA, LIMITED)
    assert _assign(limited_ga, PLAIN, None, FULL) == (False, "cannot-grant-partner-access-not-held")
    assert _assign(limited_ga, PLAIN, None, LIMITED) == (True, "global-admin-assigns-roles")
    full_ga = Person("usr_a", "cmp_p", GA, FULL)
    assert _assign(full_ga, PLAIN, None, FULL)[0]
    bare_ga = Person("usr_a", "cmp_p", GA, None)
    assert _assign(bare_ga, PLAIN, None, LIMITED) == (
        False,
        "cannot-grant-partner-access-not-held",
    )
    assert _assign(bare_ga, PLAIN, AdminRole.BILLING_ADMIN, None)[0]


def test_a_limited_global_admin_cannot_rewrite_a_full_user() -> None:
    """Setting roles on a FULL user while keeping FULL grants FULL again: refused to a
    LIMITED global admin."""
    limited_ga = Person("usr_a", "cmp_p", GA, LIMITED)
    full_user = Person("usr_f", "cmp_p", None, FULL)
    assert not _assign(limited_ga, full_user, AdminRole.BILLING_ADMIN, FULL)[0]


@pytest.mark.parametrize("role", [r for r in ROLE_NAMES if r != "global_admin"])
def test_only_a_global_admin_assigns_anything(role: str) -> None:
    """Every other role (and none) is refused every assignment, even of nothing."""
    actor = Person("usr_a", "cmp_p", _role(role), FULL)
    for admin_role, access in itertools.product([None, *AdminRole], [None, *PartnerAccess]):
        allowed, reason = _assign(actor, PLAIN, admin_role, access)
        assert not allowed
        assert reason == "only-global-admin-assigns-roles"


def test_partner_access_is_never_assigned_on_a_customer() -> None:
    """In a customer company no one assigns partner access, not even its global admin or a
    FULL partner user acting as its global admin."""
    customer_user = Person("usr_c", "cmp_c", None, None)
    own_ga = Person("usr_g", "cmp_c", GA, None)
    assert not _assign(own_ga, customer_user, None, LIMITED, company="cmp_c", is_partner=False)[0]
    delegate = Person("usr_d", "cmp_p", None, FULL)
    grant = Grant("cmp_p", "cmp_c", frozenset({GA}))
    assert _assign(
        delegate,
        customer_user,
        AdminRole.BILLING_ADMIN,
        company="cmp_c",
        is_partner=False,
        delegation=grant,
    )[0]
    assert not _assign(
        delegate,
        customer_user,
        None,
        LIMITED,
        company="cmp_c",
        is_partner=False,
        delegation=grant,
    )[0]


def test_a_limited_partner_user_never_assigns_roles_through_a_delegation() -> None:
    """LIMITED acts as a password admin only: it assigns nothing on a customer."""
    delegate = Person("usr_d", "cmp_p", GA, LIMITED)
    grant = Grant("cmp_p", "cmp_c", frozenset(AdminRole))
    customer_user = Person("usr_c", "cmp_c", None, None)
    allowed, _ = _assign(
        delegate,
        customer_user,
        AdminRole.BILLING_ADMIN,
        company="cmp_c",
        is_partner=False,
        delegation=grant,
    )
    assert not allowed


# -- the same tables through the Portal ----------------------------------------------------


@attrs.frozen
class Cast:
    """One user per (admin role, partner access) in a partner, one per role in a customer."""

    portal: Portal
    partner: Company
    customer: Company
    partner_users: dict[tuple[str, str], User]
    customer_users: dict[str, User]


@pytest.fixture
def cast(partnerkit_world: World) -> Cast:
    """Every role and access combination, created through the Portal."""
    world = partnerkit_world
    portal = world.portal
    partner_users = {}
    for role, access in itertools.product(ROLE_NAMES, ACCESS_NAMES):
        partner_users[role, access] = portal.create_user(
            world.partner_admin,
            email=f"{role}.{access}@contoso.example",
            display_name=f"{role} {access}",
            admin_role=_role(role),
            partner_access=_access(access),
        )
    customer_users = {
        role: portal.create_user(
            world.customer_admin,
            email=f"{role}@fabrikam.example",
            display_name=role,
            admin_role=_role(role),
        )
        for role in ROLE_NAMES
    }
    return Cast(portal, world.partner, world.customer, partner_users, customer_users)


def test_portal_decide_agrees_with_the_permission_table(cast: Cast) -> None:
    """``Portal.decide`` without a target answers each user's row of the table."""
    for (role, access), user in cast.partner_users.items():
        for permission in Permission:
            got = cast.portal.decide(user.id, permission, cast.partner.id)
            assert bool(got) is _expected_own("partner", role, access, permission)
    for role, user in cast.customer_users.items():
        for permission in Permission:
            got = cast.portal.decide(user, permission, cast.customer.id)
            assert bool(got) is _expected_own("customer", role, "none", permission)


def test_portal_decide_agrees_with_the_target_rules(cast: Cast) -> None:
    """``Portal.decide`` with a target user answers the target tables, self included."""
    users = cast.partner_users
    for (actor_role, actor_access), actor in users.items():
        for permission in TARGETED_PERMISSIONS:
            for (role, access), target in users.items():
                column = TARGET_ACCESS.index(access) * 6 + TARGET_ROLES.index(role)
                if target.id == actor.id:
                    column = SELF
                got = cast.portal.decide(actor, permission, cast.partner.id, target.id)
                expected = _expected_target(permission, actor_role, column, actor_access)
                assert bool(got) is expected, (actor_role, role, access, permission)
    for actor_role, actor in cast.customer_users.items():
        for permission in TARGETED_PERMISSIONS:
            for role, target in cast.customer_users.items():
                column = SELF if target.id == actor.id else TARGET_ROLES.index(role)
                got = cast.portal.decide(actor, permission, cast.customer.id, target.id)
                assert bool(got) is _expected_target(permission, actor_role, column)


def test_through_the_portal_a_limited_global_admin_cannot_grant_full(
    partnerkit_world: World,
) -> None:
    """The Portal refuses the escalation with the rule's reason and changes nothing but
    the trail; granting what the admin holds works."""
    world = partnerkit_world
    portal = world.portal
    limited_ga = portal.create_user(
        world.partner_admin,
        email="lim.ga@contoso.example",
        display_name="Limited GA",
        admin_role=GA,
        partner_access=LIMITED,
    )
    before = snapshot(portal.store)
    with pytest.raises(Forbidden) as info:
        portal.assign_roles(limited_ga, world.partner_billing.id, partner_access=FULL)
    assert info.value.decision.reason == "cannot-grant-partner-access-not-held"
    with pytest.raises(Forbidden):
        portal.create_user(
            limited_ga, email="new@contoso.example", display_name="New", partner_access=FULL
        )
    after = snapshot(portal.store)
    assert after.users == before.users
    assert [e.outcome for e in after.audit[len(before.audit) :]] == ["denied", "denied"]
    granted = portal.assign_roles(limited_ga, world.partner_billing.id, partner_access=LIMITED)
    assert granted.partner_access is LIMITED


def test_through_the_portal_partner_access_on_a_customer_user_is_a_validation_error(
    partnerkit_world: World,
) -> None:
    """A customer's user never holds partner access: assigning or creating it is a
    ``ValidationError`` naming ``partner_access``, and nothing changes."""
    world = partnerkit_world
    portal = world.portal
    before = snapshot(portal.store)
    with pytest.raises(ValidationError) as info:
        portal.assign_roles(world.customer_admin, world.customer_user.id, partner_access=FULL)
    assert info.value.field == "partner_access"
    with pytest.raises(ValidationError) as info:
        portal.create_user(
            world.customer_admin,
            email="x@fabrikam.example",
            display_name="X",
            partner_access=LIMITED,
        )
    assert info.value.field == "partner_access"
    assert snapshot(portal.store).users == before.users


@pytest.mark.parametrize(
    ("admin_role", "partner_access"),
    [(None, None), (GA, None), (AdminRole.BILLING_ADMIN, None), (None, LIMITED)],
)
def test_through_the_portal_a_billing_admin_cannot_assign_anything(
    partnerkit_world: World, admin_role: AdminRole | None, partner_access: PartnerAccess | None
) -> None:
    """A billing admin is refused every assignment, to others and to itself."""
    world = partnerkit_world
    portal = world.portal
    before = snapshot(portal.store)
    for target in (world.partner_agent, world.partner_billing):
        with pytest.raises(Forbidden) as info:
            portal.assign_roles(
                world.partner_billing,
                target.id,
                admin_role=admin_role,
                partner_access=partner_access,
            )
        assert info.value.decision.reason == "admin-role-lacks-permission"
    assert snapshot(portal.store).users == before.users


def test_through_the_portal_a_user_management_admin_creates_only_plain_users(
    partnerkit_world: World,
) -> None:
    """A user-management admin creates users without roles, but no admins and no partner
    users."""
    world = partnerkit_world
    portal = world.portal
    uma = portal.create_user(
        world.partner_admin,
        email="uma@contoso.example",
        display_name="UMA",
        admin_role=AdminRole.USER_MANAGEMENT_ADMIN,
    )
    plain = portal.create_user(uma, email="plain@contoso.example", display_name="Plain")
    assert (plain.admin_role, plain.partner_access) == (None, None)
    for role, access in [(AdminRole.PASSWORD_ADMIN, None), (None, LIMITED)]:
        with pytest.raises(Forbidden) as info:
            portal.create_user(
                uma,
                email=f"{_name(role)}.{_name(access)}@contoso.example",
                display_name="Nope",
                admin_role=role,
                partner_access=access,
            )
        assert info.value.decision.reason == "only-global-admin-assigns-roles"


def test_a_delegate_never_gives_global_admin_nor_touches_a_customers_global_admin() -> None:
    """Through a delegation of every role, a FULL user acts as the customer's global admin,
    but never gives ``GLOBAL_ADMIN`` (it carries the partner relationships, which no
    delegate holds) and never changes, resets or removes a customer's global admin; the
    customer's own global admin does all of it."""
    full = Person("usr_f", "cmp_p", None, FULL)
    grant = Grant("cmp_p", "cmp_c", frozenset(AdminRole))
    plain = Person("usr_c", "cmp_c", None, None)
    chief = Person("usr_g", "cmp_c", GA, None)
    own_chief = Person("usr_o", "cmp_c", GA, None)

    def assign(actor: Person, target: Person, role: AdminRole | None) -> tuple[bool, str]:
        return _assign(actor, target, role, company="cmp_c", is_partner=False, delegation=grant)

    assert assign(full, plain, GA) == (False, "delegates-never-grant-global-admin")
    assert assign(full, plain, AdminRole.BILLING_ADMIN) == (True, "global-admin-assigns-roles")
    assert assign(full, chief, None) == (
        False,
        "delegates-never-act-on-the-customers-global-admins",
    )
    assert assign(own_chief, plain, GA)[0]
    assert assign(own_chief, chief, None)[0]
    for permission in (Permission.RESET_PASSWORD, Permission.MANAGE_USERS):
        on_chief = decide(full, permission, "cmp_c", target=chief, delegation=grant, now=NOW)
        assert on_chief.reason == "delegates-never-act-on-the-customers-global-admins"
        assert decide(full, permission, "cmp_c", target=plain, delegation=grant, now=NOW)
        assert decide(own_chief, permission, "cmp_c", target=chief)
