"""The Portal: every use case of partnerkit, each one audited unit of work.

A use case re-reads what it decides on inside its unit of work (never trusting objects the
caller hands in), asks :mod:`partnerkit.roles` for the decision, writes, appends its audit
events and commits. A denied or failed attempt by a known actor is audited too, in a unit of
work of its own, after the attempt's own one was rolled back.

The use cases are written one feature to a module (``_portal_directory``, ``_portal_offers``,
``_portal_consent``, ``_portal_support``, over the shared ``_portal_core``); this class is
their sum, and the one name portal developers use.
"""

from __future__ import annotations

from partnerkit._portal_consent import ConsentCases
from partnerkit._portal_core import utc_now
from partnerkit._portal_directory import DirectoryCases
from partnerkit._portal_offers import OfferCases
from partnerkit._portal_support import SupportCases

__all__ = ["Portal", "utc_now"]


class Portal(DirectoryCases, OfferCases, ConsentCases, SupportCases):
    """The use cases of a partner portal over one store.

    Args:
        store: where everything is kept (``MemoryStore``, ``SQLiteStore``, ``PostgresStore``
            or your own that passes the contract suite).
        keyring: the keys that sign links; the Portal uses this very object, so
            ``rotate()``, ``activate()`` and ``remove()`` act on a running Portal. Without
            one, a new random ring of the Portal's own: fit for tests only, since its links
            die with the process and no other app server verifies them.
        catalog: the services partners may offer.
        base_url: the page links point to; the signed code goes into its ``code`` parameter.
        clock: returns the current time as an aware datetime (taken as UTC: one in another
            zone is converted); the real clock by default.
    """
