"""Admin roles, partner access, permissions, and the pure decisions made from them.

Everything here is data and pure functions: no store, no clock, no I/O. The permission table
of the 2012 partner portal is :data:`ROLE_PERMISSIONS`; the target rules (who may reset whose
password, who may manage whom) and the delegation rules are in :func:`decide`. The Portal and
the stores only call these functions; nothing else decides.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Protocol

import attrs

__all__ = [
    "ALL_ADMIN_ROLES",
    "PARTNER_PERMISSIONS",
    "ROLE_PERMISSIONS",
    "AdminRole",
    "Decision",
    "DelegationGrant",
    "PartnerAccess",
    "Permission",
    "Rule",
    "Subject",
    "Target",
    "decide",
    "decide_assignment",
    "effective_roles",
]


# Enum's own __hash__ is written in Python (it hashes the member's name). Members are
# singletons compared by identity, so the identity hash is equivalent and runs in C: it makes
# every set and dict lookup of the policy several times cheaper.
_identity_hash = object.__hash__


class AdminRole(enum.Enum):
    """An admin role a user holds in its own company (at most one)."""

    __hash__ = _identity_hash

    GLOBAL_ADMIN = "global_admin"
    BILLING_ADMIN = "billing_admin"
    PASSWORD_ADMIN = "password_admin"
    SERVICE_ADMIN = "service_admin"
    USER_MANAGEMENT_ADMIN = "user_management_admin"


class PartnerAccess(enum.Enum):
    """A partner user's admin access to the companies its partner supports."""

    __hash__ = _identity_hash

    #: Acts as the customer's global admin (within the delegation's roles).
    FULL = "full"
    #: Acts as the customer's password admin.
    LIMITED = "limited"


class Permission(enum.Enum):
    """What an actor may be allowed to do in a company."""

    __hash__ = _identity_hash

    VIEW_PROFILE = "view_profile"
    EDIT_PROFILE = "edit_profile"
    MANAGE_USERS = "manage_users"
    ASSIGN_ROLES = "assign_roles"
    RESET_PASSWORD = "reset_password"
    PURCHASE = "purchase"
    MANAGE_SUBSCRIPTIONS = "manage_subscriptions"
    MANAGE_SERVICE_REQUESTS = "manage_service_requests"
    VIEW_SERVICE_HEALTH = "view_service_health"
    ADMINISTER_SERVICES = "administer_services"
    MANAGE_PARTNER_RELATIONSHIPS = "manage_partner_relationships"
    VIEW_PARTNER_OVERVIEW = "view_partner_overview"
    SEARCH_CUSTOMERS = "search_customers"
    CREATE_TRIAL_INVITATIONS = "create_trial_invitations"
    CREATE_PURCHASE_OFFERS = "create_purchase_offers"
    OFFER_DELEGATED_ADMIN = "offer_delegated_admin"


ALL_ADMIN_ROLES: frozenset[AdminRole] = frozenset(AdminRole)

#: The partner-side permissions: they come from partner access alone, in the partner's own
#: company, never from an admin role and never through a delegation.
PARTNER_PERMISSIONS: frozenset[Permission] = frozenset(
    {
        Permission.VIEW_PARTNER_OVERVIEW,
        Permission.SEARCH_CUSTOMERS,
        Permission.CREATE_TRIAL_INVITATIONS,
        Permission.CREATE_PURCHASE_OFFERS,
        Permission.OFFER_DELEGATED_ADMIN,
    }
)

_OWN_COMPANY_PERMISSIONS = frozenset(Permission) - PARTNER_PERMISSIONS
_SUPPORT = frozenset({Permission.MANAGE_SERVICE_REQUESTS, Permission.VIEW_SERVICE_HEALTH})

#: The rights of each admin role in a company (F2's table), before target rules.
ROLE_PERMISSIONS: Mapping[AdminRole, frozenset[Permission]] = {
    AdminRole.GLOBAL_ADMIN: _OWN_COMPANY_PERMISSIONS,
    AdminRole.BILLING_ADMIN: _SUPPORT
    | {Permission.VIEW_PROFILE, Permission.PURCHASE, Permission.MANAGE_SUBSCRIPTIONS},
    AdminRole.PASSWORD_ADMIN: _SUPPORT | {Permission.VIEW_PROFILE, Permission.RESET_PASSWORD},
    AdminRole.SERVICE_ADMIN: _SUPPORT | {Permission.VIEW_PROFILE, Permission.ADMINISTER_SERVICES},
    AdminRole.USER_MANAGEMENT_ADMIN: _SUPPORT
    | {Permission.VIEW_PROFILE, Permission.MANAGE_USERS, Permission.RESET_PASSWORD},
}

#: Whose password each role may reset (``None`` stands for "no admin role").
_RESETTABLE: Mapping[AdminRole, frozenset[AdminRole | None]] = {
    AdminRole.GLOBAL_ADMIN: frozenset({None, *AdminRole}),
    AdminRole.PASSWORD_ADMIN: frozenset({None, AdminRole.PASSWORD_ADMIN}),
    AdminRole.USER_MANAGEMENT_ADMIN: frozenset(
        {None, AdminRole.PASSWORD_ADMIN, AdminRole.USER_MANAGEMENT_ADMIN}
    ),
}
#: Whom each role may create, edit and delete.
_MANAGEABLE: Mapping[AdminRole, frozenset[AdminRole | None]] = {
    AdminRole.GLOBAL_ADMIN: frozenset({None, *AdminRole}),
    AdminRole.USER_MANAGEMENT_ADMIN: frozenset({None}),
}
#: Permissions whose answer depends on the target user.
_TARGETED = frozenset({Permission.RESET_PASSWORD, Permission.MANAGE_USERS, Permission.ASSIGN_ROLES})
_PARTNER_ACCESS_RANK = {None: 0, PartnerAccess.LIMITED: 1, PartnerAccess.FULL: 2}


class Rule(enum.Enum):
    """The named rules a :class:`Decision` gives as its reason."""

    __hash__ = _identity_hash

    ROLE_GRANTS = "admin-role-grants-permission"
    EVERY_USER_VIEWS_PROFILE = "every-user-views-own-profile"
    PARTNER_ACCESS_GRANTS = "partner-access-grants-permission"
    FULL_ACCESS_ENDS_DELEGATIONS = "full-partner-access-manages-partner-relationships"
    DELEGATION_GRANTS = "active-delegation-grants-permission"
    DENY_BY_DEFAULT = "deny-by-default"
    ROLE_LACKS_PERMISSION = "admin-role-lacks-permission"
    NOT_A_PARTNER_USER = "partner-access-required"
    PARTNER_PERMISSION_OWN_COMPANY_ONLY = "partner-permissions-only-in-own-company"
    NO_ACTIVE_DELEGATION = "no-active-delegation"
    DELEGATION_LACKS_PERMISSION = "delegation-roles-lack-permission"
    DELEGATES_NEVER_MANAGE_RELATIONSHIPS = "delegates-never-manage-partner-relationships"
    NO_SELF_RESET = "no-self-password-reset-through-admin-path"
    TARGET_IN_OTHER_COMPANY = "target-in-other-company"
    PRIVILEGED_TARGET = "privileged-partner-user-needs-own-global-admin"
    RESET_NEEDS_ACCESS_HELD = "resetting-a-partner-users-password-takes-the-access-it-holds"
    CUSTOMER_GLOBAL_ADMIN_NOT_DELEGATED = "delegates-never-act-on-the-customers-global-admins"
    DELEGATES_NEVER_GRANT_GLOBAL_ADMIN = "delegates-never-grant-global-admin"
    TARGET_OUTSIDE_ROLE_LIMITS = "target-role-outside-actor-limits"
    ONLY_GLOBAL_ADMIN_ASSIGNS = "only-global-admin-assigns-roles"
    NO_ESCALATION = "cannot-grant-partner-access-not-held"
    PARTNER_ACCESS_ON_CUSTOMER = "partner-access-only-for-partner-users"
    ASSIGNMENT_ALLOWED = "global-admin-assigns-roles"
    ACTOR_UNKNOWN = "actor-does-not-exist"
    AUDIT_TRAIL_GLOBAL_ADMINS_ONLY = "audit-trail-readable-by-own-global-admins"
    PARTNER_USERS_NEVER_REDEEM = "partner-users-never-redeem-links"
    TRIAL_NEEDS_ADMIN_ROLE = "trial-links-need-a-customer-admin"
    LINK_OF_OTHER_PARTNER = "link-belongs-to-another-partner"
    REVOKE_LINK_NEEDS_GLOBAL_ADMIN_OR_ACCESS = "links-revoked-by-global-admins-or-partner-users"
    PARTNER_SHOWN_TO_ITS_CUSTOMERS = "partner-profiles-shown-to-their-customers"

    @property
    def explanation(self) -> str:
        """The rule in a sentence, for a person reading an error or a log."""
        return _EXPLANATIONS[self]


_EXPLANATIONS: dict[Rule, str] = {
    Rule.ROLE_GRANTS: "the actor's admin role grants it",
    Rule.EVERY_USER_VIEWS_PROFILE: "every user may view its own company's profile",
    Rule.PARTNER_ACCESS_GRANTS: "the actor's partner access grants it",
    Rule.FULL_ACCESS_ENDS_DELEGATIONS: "FULL partner access manages the partner's relationships",
    Rule.DELEGATION_GRANTS: "an active delegation grants it",
    Rule.DENY_BY_DEFAULT: "no admin role, partner access or delegation of the actor grants it",
    Rule.ROLE_LACKS_PERMISSION: "the actor's admin role does not grant it",
    Rule.NOT_A_PARTNER_USER: "only a partner's user with partner access may",
    Rule.PARTNER_PERMISSION_OWN_COMPANY_ONLY: (
        "partner permissions hold only in the actor's own company"
    ),
    Rule.NO_ACTIVE_DELEGATION: (
        "no active delegation gives the actor's partner rights in that company (none was "
        "accepted, or it was revoked, ended or is past its end date; or the id is not a "
        "customer's of this partner)"
    ),
    Rule.DELEGATION_LACKS_PERMISSION: (
        "the delegation's roles (a LIMITED user's: password admin only) do not grant it"
    ),
    Rule.DELEGATES_NEVER_MANAGE_RELATIONSHIPS: (
        "only a company's own global admins manage its partner relationships"
    ),
    Rule.NO_SELF_RESET: "nobody resets their own password through the admin path",
    Rule.TARGET_IN_OTHER_COMPANY: "the target user is not in that company",
    Rule.PRIVILEGED_TARGET: (
        "a user with partner access is managed only by a global admin of its own company"
    ),
    Rule.RESET_NEEDS_ACCESS_HELD: (
        "resetting a partner user's password takes partner access at least as high as theirs"
    ),
    Rule.CUSTOMER_GLOBAL_ADMIN_NOT_DELEGATED: "a delegate never acts on a customer's global admins",
    Rule.DELEGATES_NEVER_GRANT_GLOBAL_ADMIN: "a delegate never makes anyone a global admin",
    Rule.TARGET_OUTSIDE_ROLE_LIMITS: "the target's admin role is beyond what the actor may manage",
    Rule.ONLY_GLOBAL_ADMIN_ASSIGNS: "only a global admin assigns admin roles and partner access",
    Rule.NO_ESCALATION: (
        "partner access is granted only in one's own partner company, and never above one's own"
    ),
    Rule.PARTNER_ACCESS_ON_CUSTOMER: "partner access is only for a partner's users",
    Rule.ASSIGNMENT_ALLOWED: "a global admin assigns the roles",
    Rule.ACTOR_UNKNOWN: "no user has the actor's id",
    Rule.AUDIT_TRAIL_GLOBAL_ADMINS_ONLY: "only a company's own global admins read its audit trail",
    Rule.PARTNER_USERS_NEVER_REDEEM: "a partner's users never redeem links; a customer's users do",
    Rule.TRIAL_NEEDS_ADMIN_ROLE: "a trial link is redeemed by a customer's user with an admin role",
    Rule.LINK_OF_OTHER_PARTNER: "the link belongs to another partner",
    Rule.REVOKE_LINK_NEEDS_GLOBAL_ADMIN_OR_ACCESS: (
        "links are revoked by the partner's global admins and its users with partner access"
    ),
    Rule.PARTNER_SHOWN_TO_ITS_CUSTOMERS: (
        "a partner's profile is shown to the users of its customers (companies it advises, "
        "administers or offered delegated administration to), not to other companies"
    ),
}


@attrs.frozen(repr=False)
class Decision:
    """The answer of the policy: truthy when allowed; :attr:`reason` names the rule."""

    #: Whether the request is allowed.
    allowed: bool
    #: The rule that allowed or denied it.
    rule: Rule

    @property
    def reason(self) -> str:
        """The name of the rule that allowed or denied the request."""
        return self.rule.value

    def __bool__(self) -> bool:
        return self.allowed

    def __repr__(self) -> str:
        verdict = "allowed" if self.allowed else "denied"
        return f"<Decision {verdict}: {self.rule.value}>"


# Decisions are values with two fields: build each one once, so a decision allocates nothing.
_ALLOW = {rule: Decision(True, rule) for rule in Rule}
_DENY = {rule: Decision(False, rule) for rule in Rule}


class Subject(Protocol):
    """What the policy needs to know about an actor or a target user (a ``User`` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def company_id(self) -> str: ...
    @property
    def admin_role(self) -> AdminRole | None: ...
    @property
    def partner_access(self) -> PartnerAccess | None: ...


Target = Subject


class DelegationGrant(Protocol):
    """What the policy needs to know about a delegation (a ``Delegation`` fits)."""

    @property
    def partner_id(self) -> str: ...
    @property
    def customer_id(self) -> str: ...
    @property
    def roles(self) -> frozenset[AdminRole]: ...
    def is_active(self, now: datetime) -> bool: ...


def effective_roles(
    actor: Subject,
    company_id: str,
    delegation: DelegationGrant | None = None,
    now: datetime | None = None,
) -> frozenset[AdminRole]:
    """Return the admin roles *actor* holds in *company_id*.

    In its own company these are its own admin role (if any). In a customer, a partner user
    holds roles only through *delegation*, which must be the active, unexpired delegation
    between the actor's company and *company_id* at *now*: FULL users get the delegation's
    roles, LIMITED users those roles intersected with ``{PASSWORD_ADMIN}``. *now* may be
    omitted for a delegation without an end date (its ``ends_at`` is ``None``); a grant that
    has one, or does not say, is not active without it.
    """
    if actor.company_id == company_id:
        role = actor.admin_role
        return frozenset() if role is None else frozenset((role,))
    access = actor.partner_access
    if (
        access is None
        or delegation is None
        # Without the time only a grant that says it has no end date (``ends_at is None``,
        # as a Delegation without one does) can be judged; any other is not active.
        or (now is None and getattr(delegation, "ends_at", True) is not None)
        or delegation.partner_id != actor.company_id
        or delegation.customer_id != company_id
        or not delegation.is_active(now)  # type: ignore[arg-type]  # None: no end date
    ):
        return frozenset()
    if access is _FULL:
        return delegation.roles
    return _limited(delegation.roles)


_LIMITED_ROLES = frozenset({AdminRole.PASSWORD_ADMIN})


@functools.cache
def _limited(roles: frozenset[AdminRole]) -> frozenset[AdminRole]:
    """A LIMITED user's share of *roles* (32 sets at most: cached, and so hashed only once)."""
    return roles & _LIMITED_ROLES


@functools.cache
def _rights_of(roles: frozenset[AdminRole]) -> frozenset[Permission]:
    """The permissions a set of admin roles holds together (32 sets at most: cached)."""
    return frozenset().union(*(ROLE_PERMISSIONS[role] for role in roles))


def decide(
    actor: Subject,
    permission: Permission,
    company_id: str,
    *,
    target: Subject | None = None,
    delegation: DelegationGrant | None = None,
    now: datetime | None = None,
    company_is_partner: bool = False,
) -> Decision:
    """Decide whether *actor* may use *permission* in company *company_id*.

    Args:
        actor: the acting user, as the store holds it now.
        permission: what is asked.
        company_id: the company acted on.
        target: the user acted on, for the target rules of password resets and user
            management. Without a target the answer is whether the actor holds the
            permission in that company at all.
        delegation: the delegation between the actor's partner and *company_id*, if any;
            it grants rights only while active at *now*.
        now: the current time (aware UTC), needed to judge a delegation's end date.
        company_is_partner: whether *company_id* is a partner company (partner-side
            permissions exist only there).

    Returns:
        A :class:`Decision`; deny by default.
    """
    own = actor.company_id == company_id
    if permission in PARTNER_PERMISSIONS:
        if not own or not company_is_partner:
            return _DENY_PARTNER_OWN_ONLY
        if actor.partner_access is None:
            return _DENY_NOT_PARTNER_USER
        return _ALLOW_PARTNER_ACCESS

    if own:
        role = actor.admin_role
        if role is not None and permission in ROLE_PERMISSIONS[role]:
            base = _ALLOW_ROLE
        elif permission is _VIEW_PROFILE:
            return _ALLOW_EVERY_USER_VIEWS
        elif (
            permission is _MANAGE_RELATIONSHIPS
            and company_is_partner
            and actor.partner_access is _FULL
        ):
            return _ALLOW_FULL_ENDS_DELEGATIONS
        else:
            return _DENY_ROLE_LACKS if role is not None else _DENY_BY_DEFAULT
        if target is None or permission not in _TARGETED:
            return base
        assert role is not None  # every targeted permission comes from an admin role
        roles: Collection[AdminRole] = (role,)
    else:
        if permission is _MANAGE_RELATIONSHIPS:
            return _DENY_DELEGATES_NEVER_MANAGE
        roles = effective_roles(actor, company_id, delegation, now)
        if not roles:
            return _DENY_NO_DELEGATION
        if permission is not _VIEW_PROFILE and permission not in _rights_of(roles):
            return _DENY_DELEGATION_LACKS
        base = _ALLOW_DELEGATION

    if target is None or permission not in _TARGETED:
        return base
    denied = _decide_target(actor, permission, company_id, roles, target, own)
    return base if denied is None else denied


# The decisions and members ``decide`` uses, bound once: reading a member off an Enum class
# costs several times a global's lookup, and ``decide`` runs on every request.
_VIEW_PROFILE = Permission.VIEW_PROFILE
_MANAGE_RELATIONSHIPS = Permission.MANAGE_PARTNER_RELATIONSHIPS
_FULL = PartnerAccess.FULL
_ALLOW_PARTNER_ACCESS = _ALLOW[Rule.PARTNER_ACCESS_GRANTS]
_ALLOW_ROLE = _ALLOW[Rule.ROLE_GRANTS]
_ALLOW_EVERY_USER_VIEWS = _ALLOW[Rule.EVERY_USER_VIEWS_PROFILE]
_ALLOW_FULL_ENDS_DELEGATIONS = _ALLOW[Rule.FULL_ACCESS_ENDS_DELEGATIONS]
_ALLOW_DELEGATION = _ALLOW[Rule.DELEGATION_GRANTS]
_DENY_PARTNER_OWN_ONLY = _DENY[Rule.PARTNER_PERMISSION_OWN_COMPANY_ONLY]
_DENY_NOT_PARTNER_USER = _DENY[Rule.NOT_A_PARTNER_USER]
_DENY_ROLE_LACKS = _DENY[Rule.ROLE_LACKS_PERMISSION]
_DENY_BY_DEFAULT = _DENY[Rule.DENY_BY_DEFAULT]
_DENY_DELEGATES_NEVER_MANAGE = _DENY[Rule.DELEGATES_NEVER_MANAGE_RELATIONSHIPS]
_DENY_NO_DELEGATION = _DENY[Rule.NO_ACTIVE_DELEGATION]
_DENY_DELEGATION_LACKS = _DENY[Rule.DELEGATION_LACKS_PERMISSION]


def _decide_target(
    actor: Subject,
    permission: Permission,
    company_id: str,
    roles: Collection[AdminRole],
    target: Subject,
    own: bool,
) -> Decision | None:
    """Apply F2's target rules; ``None`` when the target is within the actor's limits."""
    if target.company_id != company_id:
        return _DENY[Rule.TARGET_IN_OTHER_COMPANY]
    if target.id == actor.id and permission is Permission.RESET_PASSWORD:
        return _DENY[Rule.NO_SELF_RESET]
    if target.partner_access is not None and not (
        own and actor.admin_role is AdminRole.GLOBAL_ADMIN
    ):
        return _DENY[Rule.PRIVILEGED_TARGET]
    if (
        permission is Permission.RESET_PASSWORD
        and target.partner_access is not None
        and _PARTNER_ACCESS_RANK[actor.partner_access] < _PARTNER_ACCESS_RANK[target.partner_access]
    ):
        # Whoever sets a user's password can sign in as that user: a reset hands over the
        # target's partner access, which F2 lets nobody grant without holding it.
        return _DENY[Rule.RESET_NEEDS_ACCESS_HELD]
    limits = _RESETTABLE if permission is Permission.RESET_PASSWORD else _MANAGEABLE
    target_role = target.admin_role
    for role in roles:
        allowed = limits.get(role)
        if allowed is not None and target_role in allowed:
            break
    else:
        return _DENY[Rule.TARGET_OUTSIDE_ROLE_LIMITS]
    if not own and target_role is AdminRole.GLOBAL_ADMIN:
        # A customer's global admins hold what no delegate does: its partner relationships
        # (they accept, decline and revoke delegations). Resetting one's password, changing
        # or removing one would hand the partner that right, or take it from the customer.
        return _DENY[Rule.CUSTOMER_GLOBAL_ADMIN_NOT_DELEGATED]
    return None


def decide_assignment(
    actor: Subject,
    company_id: str,
    *,
    target: Subject,
    admin_role: AdminRole | None,
    partner_access: PartnerAccess | None,
    company_is_partner: bool,
    delegation: DelegationGrant | None = None,
    now: datetime | None = None,
) -> Decision:
    """Decide whether *actor* may give *target* these roles (no escalation).

    Only a global admin (own, or effective through a delegation) assigns admin roles; partner
    access is assigned only in the actor's own partner company, by a global admin who holds
    at least that access. Every admin role lies within a global admin's own rights, so in
    its own company *admin_role* never escalates. Through a delegation it would: the
    delegate acts as the customer's global admin but never holds its partner relationships,
    which ``GLOBAL_ADMIN`` carries, so a delegate never gives that role (nor changes a
    customer's global admin: see the target rules). Whether partner access fits the company
    at all (customers never hold it) is a validation question, answered by the caller
    before this one.
    """
    allowed = decide(
        actor,
        Permission.ASSIGN_ROLES,
        company_id,
        target=target,
        delegation=delegation,
        now=now,
        company_is_partner=company_is_partner,
    )
    if not allowed:
        if allowed.rule in (Rule.ROLE_LACKS_PERMISSION, Rule.DENY_BY_DEFAULT):
            return _DENY[Rule.ONLY_GLOBAL_ADMIN_ASSIGNS]
        return allowed
    own = actor.company_id == company_id
    if not own and admin_role is AdminRole.GLOBAL_ADMIN:
        return _DENY[Rule.DELEGATES_NEVER_GRANT_GLOBAL_ADMIN]
    if partner_access is not None or target.partner_access is not None:
        if not own or not company_is_partner:
            return _DENY[Rule.NO_ESCALATION]
        if _PARTNER_ACCESS_RANK[actor.partner_access] < _PARTNER_ACCESS_RANK[partner_access]:
            return _DENY[Rule.NO_ESCALATION]
    return _ALLOW[Rule.ASSIGNMENT_ALLOWED]
