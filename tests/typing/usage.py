"""Typed code a portal developer writes on partnerkit: ``tests/test_typing.py`` checks it
with ``mypy --strict``. Each ``assert_type`` pins a type the public API promises (no ``Any``
where a precise type exists), and each ``type: ignore`` marks a call the types must refuse
(strict mode reports an ignore that is not needed, so the refusal cannot go away unseen).

Never run, only type-checked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type

from hypothesis import strategies as st

from partnerkit import (
    AuditEvent,
    Company,
    Decision,
    Delegation,
    Keyring,
    LinkClaims,
    OfferLine,
    PasswordReset,
    Permission,
    Portal,
    PurchaseOffer,
    Redemption,
    ServiceRequest,
    Subscription,
    User,
)
from partnerkit.links import Algorithm, PublicJwk, PublicJwks
from partnerkit.roles import AdminRole, PartnerAccess
from partnerkit.testing import strategies as pks


def misspelt() -> None:
    from partnerkit import Portl  # type: ignore[attr-defined]  # a name the package lacks

    del Portl


def keys() -> None:
    ring = Keyring.generate("ed25519")
    assert_type(ring.algorithm, Algorithm)
    Keyring.generate(ring.algorithm)  # another ring of the same kind
    jwks = ring.public_jwks()
    assert_type(jwks, PublicJwks)
    assert_type(jwks["keys"][0], PublicJwk)
    assert_type(jwks["keys"][0]["kid"], str)
    Keyring.generate("ED25519")  # type: ignore[arg-type]


def strategies() -> None:
    assert_type(pks.admin_roles(optional=False), st.SearchStrategy[AdminRole])
    assert_type(pks.admin_roles(), st.SearchStrategy[AdminRole | None])
    assert_type(pks.partner_accesses(optional=False), st.SearchStrategy[PartnerAccess])
    assert_type(pks.partner_accesses(optional=True), st.SearchStrategy[PartnerAccess | None])


def use_cases(portal: Portal, partner_admin: User, customer_admin: User) -> None:
    url = portal.create_trial_invitation(partner_admin, "EXCHANGE", expires_in=timedelta(days=7))
    assert_type(url, str)
    assert_type(portal.inspect_link(url), LinkClaims)
    offer_url, offer = portal.create_purchase_offer(partner_admin, [OfferLine("EXCHANGE", 25)])
    assert_type(offer, PurchaseOffer)
    result = portal.redeem(offer_url, customer_admin, licenses={"EXCHANGE": 30})
    assert_type(result, Redemption)
    assert_type(result.subscriptions, tuple[Subscription, ...])
    assert_type(result.delegation, Delegation | None)
    customer = customer_admin.company_id
    assert_type(portal.find_customers(partner_admin, "Fab"), list[Company])
    assert_type(portal.reset_password(partner_admin, customer, customer_admin.id), PasswordReset)
    request = portal.create_service_request(
        partner_admin, customer, title="Mail", severity="critical"
    )
    assert_type(request, ServiceRequest)
    decision = portal.decide(partner_admin, Permission.RESET_PASSWORD, customer)
    assert_type(decision, Decision)
    assert_type(portal.audit_trail(customer_admin, customer), list[AuditEvent])
    assert_type(portal.list_subscriptions(customer_admin, customer), list[Subscription])
