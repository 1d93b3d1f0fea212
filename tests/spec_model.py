"""The reference model of partnerkit's permission rules, written as plain data from SPEC.

Not a test module. It restates SPEC F2's role table, section 3's permission list and delegation
rules, and F2's target limits, with the enum *values* as strings. It imports nothing from
``partnerkit``: if ``partnerkit.roles`` drifts from SPEC, the tests that compare the two fail.
"""

from __future__ import annotations

import attrs

#: SPEC section 3: the permissions of a company that are not partner-side.
OWN_COMPANY = frozenset(
    {
        "view_profile",
        "edit_profile",
        "manage_users",
        "assign_roles",
        "reset_password",
        "purchase",
        "manage_subscriptions",
        "manage_service_requests",
        "view_service_health",
        "administer_services",
        "manage_partner_relationships",
    }
)
#: SPEC section 3: `VIEW_PARTNER_OVERVIEW` to `OFFER_DELEGATED_ADMIN`, from partner access alone.
PARTNER_SIDE = frozenset(
    {
        "view_partner_overview",
        "search_customers",
        "create_trial_invitations",
        "create_purchase_offers",
        "offer_delegated_admin",
    }
)
#: F2's table, as section 3 spells it out (VIEW_PROFILE is every user's in its own company).
ROLE_RIGHTS: dict[str, frozenset[str]] = {
    "global_admin": OWN_COMPANY,
    "billing_admin": frozenset(
        {"purchase", "manage_subscriptions", "manage_service_requests", "view_service_health"}
    ),
    "password_admin": frozenset(
        {"reset_password", "manage_service_requests", "view_service_health"}
    ),
    "service_admin": frozenset(
        {"administer_services", "manage_service_requests", "view_service_health"}
    ),
    "user_management_admin": frozenset(
        {"manage_users", "reset_password", "manage_service_requests", "view_service_health"}
    ),
}
ALL_ROLES = frozenset(ROLE_RIGHTS)
#: F2: whose password each role may reset (None: a user without an admin role).
RESETS: dict[str, frozenset[str | None]] = {
    "global_admin": frozenset({None, *ALL_ROLES}),
    "password_admin": frozenset({None, "password_admin"}),
    "user_management_admin": frozenset({None, "password_admin", "user_management_admin"}),
}
#: F2: whom each role may create, edit, delete (and, for global admins, assign roles to).
MANAGES: dict[str, frozenset[str | None]] = {
    "global_admin": frozenset({None, *ALL_ROLES}),
    "user_management_admin": frozenset({None}),
}
TARGETED = frozenset({"reset_password", "manage_users", "assign_roles"})
#: Section 3: FULL acts with the delegation's roles, LIMITED with those roles ∩ {PASSWORD_ADMIN}.
LIMITED_CAP = frozenset({"password_admin"})
#: F2: partner access ranks, for "holds at least that access".
ACCESS_RANK: dict[str | None, int] = {None: 0, "limited": 1, "full": 2}
#: Only an active delegation inside its end date grants anything (F5).
GRANTING_STATUSES = frozenset({"active"})


@attrs.frozen
class Who:
    """A user as the model sees it."""

    name: str
    company: str  # "partner" or "customer"
    role: str | None
    access: str | None = None


def target_within_limits(
    actor: Who, roles: frozenset[str], permission: str, target: Who, *, own: bool
) -> bool:
    """F2's target rules for *actor* acting with *roles* on *target*."""
    if permission == "reset_password" and target.name == actor.name:
        return False  # nobody resets their own password through the admin path
    if target.access is not None and not (own and actor.role == "global_admin"):
        return False  # privileged partner users: only their own global admin
    if permission == "reset_password" and ACCESS_RANK[actor.access] < ACCESS_RANK[target.access]:
        # F2, no escalation: a reset hands over the target's account, and with it its partner
        # access, which takes holding at least that access to grant.
        return False
    if not own and target.role == "global_admin":
        # Section 3 / F5: delegates never manage the customer's partner relationships, which
        # its global admins hold; F2: no right is granted that is not held. So no delegate
        # resets, changes or removes a customer's global admin.
        return False
    limits = RESETS if permission == "reset_password" else MANAGES
    return any(target.role in limits.get(role, frozenset()) for role in roles)


def model_customer(
    actor: Who, permission: str, roles: frozenset[str], status: str, target: Who | None
) -> bool:
    """May the partner user *actor* use *permission* in a customer whose delegation with its
    partner grants *roles* and stands at *status*, on *target*?"""
    if permission in PARTNER_SIDE or permission == "manage_partner_relationships":
        return False
    if actor.access is None or status not in GRANTING_STATUSES:
        return False
    effective = roles if actor.access == "full" else roles & LIMITED_CAP
    if not effective:
        return False
    rights = {"view_profile"}.union(*(ROLE_RIGHTS[role] for role in effective))
    if permission not in rights:
        return False
    if target is None:
        return True
    if target.company != "customer":
        return False
    if permission not in TARGETED:
        return True
    return target_within_limits(actor, effective, permission, target, own=False)


def model_own_partner(actor: Who, permission: str, target: Who | None) -> bool:
    """May the partner user *actor* use *permission* in its own partner company?"""
    roles = frozenset() if actor.role is None else frozenset({actor.role})
    if permission in PARTNER_SIDE:
        allowed = actor.access is not None
    elif permission == "view_profile" or any(permission in ROLE_RIGHTS[r] for r in roles):
        allowed = True
    else:
        # SPEC section 3: a partner's delegation is ended by its global admin or a FULL user.
        allowed = permission == "manage_partner_relationships" and actor.access == "full"
    if not allowed or target is None:
        return allowed
    if target.company != "partner":
        return False
    if permission not in TARGETED:
        return True
    return target_within_limits(actor, roles, permission, target, own=True)
