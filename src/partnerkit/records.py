"""What the store remembers about links and relationships, keyed on ids, never on link text.

A :class:`LinkRecord` is made when a link is issued: revocation, ``max_uses`` and the count of
customers who used it live here. A :class:`RedemptionRecord` remembers what one customer got
from one link, so that redeeming the same link again returns the first result. A
:class:`CustomerRelation` ties a partner to a customer it advises or administers; it is what
``find_customers`` searches (by name and domain prefix, through an index).
"""

from __future__ import annotations

from datetime import datetime

import attrs

from partnerkit.links import LinkKind

__all__ = ["CustomerRelation", "LinkRecord", "RedemptionRecord"]


@attrs.frozen
class LinkRecord:
    """A link as issued: whose it is, what it points to, and how it may still be used."""

    #: The link id (also in the signed claims).
    id: str
    kind: LinkKind
    partner_id: str
    advisor_id: str
    #: The service sku, purchase offer id or delegation offer id.
    target: str
    includes_delegated_admin: bool
    #: The delegation offer carried along (its terms), when delegated admin is included.
    delegation_offer_id: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    #: How many distinct customers may redeem it (``None``: no limit).
    max_uses: int | None = None
    #: How many distinct customers redeemed it.
    uses: int = 0
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    version: int = 1


@attrs.frozen
class RedemptionRecord:
    """What one customer got from one link."""

    #: ``f"{link_id}:{customer_id}"``.
    id: str
    link_id: str
    customer_id: str
    subscription_ids: tuple[str, ...]
    delegation_id: str | None
    redeemed_by: str
    redeemed_at: datetime
    version: int = 1


@attrs.frozen
class CustomerRelation:
    """A partner's relation to a customer it advises or administers (for search)."""

    #: ``f"{partner_id}:{customer_id}"``.
    id: str
    partner_id: str
    customer_id: str
    #: The customer's name, case-folded, and its domain: the search keys.
    name_key: str
    domain: str
    #: Whether the partner is advisor of one of the customer's subscriptions now.
    advises: bool = False
    #: Whether the partner ever held a delegation of the customer (kept as history: whether
    #: it administers the customer *now* is :attr:`delegation_id` and its end date).
    administers: bool = False
    version: int = 1
    #: The delegation through which the partner administers the customer, set when it is
    #: accepted and cleared when it is revoked or ended (an end date or the clock may have
    #: ended it since: whoever reads it judges it again). Decisions find it by this key.
    delegation_id: str | None = None
    #: That delegation's end date, if it has one (schema version 3): a search leaves the
    #: customer out from that instant, with no job to clear :attr:`delegation_id`.
    delegation_ends_at: datetime | None = None

    def is_listed(self, now: datetime | None) -> bool:
        """Whether the partner finds this customer in a search at *now*: it advises one of
        its subscriptions, or administers it through a delegation that has not ended.

        ``now=None`` judges no end date: a delegation with one counts as ended.
        """
        if self.advises:
            return True
        if self.delegation_id is None:
            return False
        ends = self.delegation_ends_at
        return ends is None or (now is not None and now < ends)

    def search_key(self, prefix: str) -> str:
        """What a search for *prefix* orders this relation by: its name key when the name
        starts with the prefix, else its domain. Each of the two is read from its own index,
        so a page costs the same at ten thousand customers as at a million."""
        return self.name_key if self.name_key.startswith(prefix) else self.domain

    @staticmethod
    def key(partner_id: str, customer_id: str) -> str:
        """The id of the relation between *partner_id* and *customer_id*."""
        return f"{partner_id}:{customer_id}"
