"""partnerkit: domain, policy and persistence for partner and reseller portals.

The public names are re-exported here; implementation lives in the modules
(:mod:`partnerkit.roles`, :mod:`partnerkit.directory`, :mod:`partnerkit.links`,
:mod:`partnerkit.offers`, :mod:`partnerkit.consent`, :mod:`partnerkit.support`,
:mod:`partnerkit.audit`, :mod:`partnerkit.portal`). Stores are imported from
``partnerkit.stores.memory``, ``partnerkit.stores.sqlite`` and ``partnerkit.stores.postgres``.
"""

from partnerkit.audit import AuditChainBroken, AuditEvent, AuditPage, correlation
from partnerkit.consent import Delegation, DelegationOffer, DelegationStatus
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
    StoreUnavailable,
    ValidationError,
)
from partnerkit.links import Keyring, LinkClaims, LinkKind
from partnerkit.offers import (
    Catalog,
    OfferLine,
    OfferStatus,
    PurchaseOffer,
    Redemption,
    Service,
    Subscription,
    SubscriptionStatus,
    TrialInvitation,
    TrialTerms,
)
from partnerkit.portal import Portal
from partnerkit.roles import AdminRole, Decision, PartnerAccess, Permission, Rule
from partnerkit.support import (
    CustomerPage,
    PasswordHasher,
    PasswordReset,
    RequestStatus,
    ServiceRequest,
    Severity,
)

__all__ = [
    "AdminRole",
    "AuditChainBroken",
    "AuditEvent",
    "AuditPage",
    "Catalog",
    "Company",
    "CompanyKind",
    "Conflict",
    "ContactInfo",
    "CustomerPage",
    "Decision",
    "Delegation",
    "DelegationOffer",
    "DelegationStatus",
    "Forbidden",
    "InvalidLink",
    "Keyring",
    "LinkClaims",
    "LinkExhausted",
    "LinkExpired",
    "LinkKind",
    "LinkRevoked",
    "NotFound",
    "OfferLine",
    "OfferStatus",
    "PartnerAccess",
    "PartnerKitError",
    "PasswordHasher",
    "PasswordReset",
    "Permission",
    "Portal",
    "PurchaseOffer",
    "Redemption",
    "RequestStatus",
    "Rule",
    "Service",
    "ServiceRequest",
    "Severity",
    "StoreUnavailable",
    "Subscription",
    "SubscriptionStatus",
    "TrialInvitation",
    "TrialTerms",
    "User",
    "ValidationError",
    "correlation",
]
