"""partnerkit: domain, policy and persistence for partner and reseller portals.

The public names are re-exported here; implementation lives in the modules
(:mod:`partnerkit.roles`, :mod:`partnerkit.directory`, :mod:`partnerkit.portal`, ...).
Stores are imported from ``partnerkit.stores.memory``, ``.sqlite`` and ``.postgres``.
"""

from partnerkit.audit import AuditChainBroken, AuditEvent, correlation
from partnerkit.directory import Company, CompanyKind, ContactInfo, User
from partnerkit.errors import (
    Conflict,
    Forbidden,
    InvalidLink,
    LinkExhausted,
    LinkExpired,
    LinkRevoked,
    NotFound,
    PartnerKitError,
    ValidationError,
)
from partnerkit.portal import Portal
from partnerkit.roles import AdminRole, Decision, PartnerAccess, Permission, Rule

__all__ = [
    "AdminRole",
    "AuditChainBroken",
    "AuditEvent",
    "Company",
    "CompanyKind",
    "Conflict",
    "ContactInfo",
    "Decision",
    "Forbidden",
    "InvalidLink",
    "LinkExhausted",
    "LinkExpired",
    "LinkRevoked",
    "NotFound",
    "PartnerAccess",
    "PartnerKitError",
    "Permission",
    "Portal",
    "Rule",
    "User",
    "ValidationError",
    "correlation",
]
