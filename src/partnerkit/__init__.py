"""partnerkit: domain, policy and persistence for partner and reseller portals.

The public names are re-exported here; implementation lives in the modules
(:mod:`partnerkit.roles`, :mod:`partnerkit.directory`, :mod:`partnerkit.links`,
:mod:`partnerkit.offers`, :mod:`partnerkit.consent`, :mod:`partnerkit.support`,
:mod:`partnerkit.audit`, :mod:`partnerkit.portal`). Stores are imported from
``partnerkit.stores.memory``, ``partnerkit.stores.sqlite`` and ``partnerkit.stores.postgres``.

Each name is imported from its module when it is first used, not with the package: a
storefront that only verifies links imports :mod:`partnerkit.links` and what it needs, and
pytest, which loads partnerkit's plugin in every session of an environment partnerkit is
installed in, imports no more of it than a test asks for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from partnerkit.audit import AuditChainBroken, AuditEvent, AuditPage, correlation
    from partnerkit.consent import Delegation, DelegationOffer, DelegationStatus
    from partnerkit.directory import Company, CompanyKind, ContactInfo, User
    from partnerkit.errors import (
        AlreadyExists,
        Conflict,
        Forbidden,
        InvalidLink,
        InvalidState,
        LinkExhausted,
        LinkExpired,
        LinkRevoked,
        NotFound,
        PartnerKitError,
        StaleVersion,
        StoreUnavailable,
        ValidationError,
    )
    from partnerkit.links import Keyring, LinkClaims, LinkKind
    from partnerkit.offers import (
        Catalog,
        IssuedLink,
        LinkStatus,
        LinkTerms,
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
    "AlreadyExists",
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
    "InvalidState",
    "IssuedLink",
    "Keyring",
    "LinkClaims",
    "LinkExhausted",
    "LinkExpired",
    "LinkKind",
    "LinkRevoked",
    "LinkStatus",
    "LinkTerms",
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
    "StaleVersion",
    "StoreUnavailable",
    "Subscription",
    "SubscriptionStatus",
    "TrialInvitation",
    "TrialTerms",
    "User",
    "ValidationError",
    "correlation",
]

#: Where each public name lives.
_HOMES = {
    "AdminRole": "partnerkit.roles",
    "AuditChainBroken": "partnerkit.audit",
    "AuditEvent": "partnerkit.audit",
    "AuditPage": "partnerkit.audit",
    "Catalog": "partnerkit.offers",
    "Company": "partnerkit.directory",
    "CompanyKind": "partnerkit.directory",
    "AlreadyExists": "partnerkit.errors",
    "Conflict": "partnerkit.errors",
    "ContactInfo": "partnerkit.directory",
    "CustomerPage": "partnerkit.support",
    "Decision": "partnerkit.roles",
    "Delegation": "partnerkit.consent",
    "DelegationOffer": "partnerkit.consent",
    "DelegationStatus": "partnerkit.consent",
    "Forbidden": "partnerkit.errors",
    "InvalidLink": "partnerkit.errors",
    "InvalidState": "partnerkit.errors",
    "IssuedLink": "partnerkit.offers",
    "Keyring": "partnerkit.links",
    "LinkClaims": "partnerkit.links",
    "LinkExhausted": "partnerkit.errors",
    "LinkExpired": "partnerkit.errors",
    "LinkKind": "partnerkit.links",
    "LinkRevoked": "partnerkit.errors",
    "LinkStatus": "partnerkit.offers",
    "LinkTerms": "partnerkit.offers",
    "NotFound": "partnerkit.errors",
    "OfferLine": "partnerkit.offers",
    "OfferStatus": "partnerkit.offers",
    "PartnerAccess": "partnerkit.roles",
    "PartnerKitError": "partnerkit.errors",
    "StaleVersion": "partnerkit.errors",
    "PasswordHasher": "partnerkit.support",
    "PasswordReset": "partnerkit.support",
    "Permission": "partnerkit.roles",
    "Portal": "partnerkit.portal",
    "PurchaseOffer": "partnerkit.offers",
    "Redemption": "partnerkit.offers",
    "RequestStatus": "partnerkit.support",
    "Rule": "partnerkit.roles",
    "Service": "partnerkit.offers",
    "ServiceRequest": "partnerkit.support",
    "Severity": "partnerkit.support",
    "StoreUnavailable": "partnerkit.errors",
    "Subscription": "partnerkit.offers",
    "SubscriptionStatus": "partnerkit.offers",
    "TrialInvitation": "partnerkit.offers",
    "TrialTerms": "partnerkit.offers",
    "User": "partnerkit.directory",
    "ValidationError": "partnerkit.errors",
    "correlation": "partnerkit.audit",
}
#: The public submodules, attributes of the package once imported, and imported when used so.
_SUBMODULES = frozenset(
    {"audit", "cli", "consent", "directory", "errors", "links", "offers", "portal", "ports"}
    | {"records", "roles", "stores", "support", "testing"}
)


if not TYPE_CHECKING:  # checkers see the imports above and no other name

    def __getattr__(name: str) -> Any:
        """Import a public name (or a submodule) from its module on first use, then keep it."""
        home = _HOMES.get(name)
        if home is not None:
            value = getattr(importlib.import_module(home), name)
        elif name in _SUBMODULES:
            value = importlib.import_module(f"{__name__}.{name}")
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
