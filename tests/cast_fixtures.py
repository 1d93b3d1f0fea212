"""Fixtures of a Portal on each built-in store with a partner and a customer cast
(``delegation_kit``), for the tests that act out rules between them.

Load with ``pytest_plugins = ["pg_fixtures", "cast_fixtures"]``; a module may override any
of them (a customer with fewer users, say).
"""

from __future__ import annotations

import pytest

from delegation_kit import CustomerCast, PartnerCast, add_customer, add_partner, make_portal
from partnerkit import Portal
from partnerkit.ports import Store
from partnerkit.testing import FakeClock, sample_catalog


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def portal(any_store: Store, clock: FakeClock) -> Portal:
    """A Portal on each built-in store in turn, with the fake clock and the sample catalogue."""
    return make_portal(any_store, clock, sample_catalog())


@pytest.fixture
def partner(portal: Portal) -> PartnerCast:
    return add_partner(portal, "Contoso", "contoso")


@pytest.fixture
def customer(portal: Portal) -> CustomerCast:
    return add_customer(portal, "Fabrikam", "fabrikam.example")
