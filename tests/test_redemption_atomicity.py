"""A redemption that fails half-way leaves nothing behind, wherever it fails.

The stores here are the real ``MemoryStore`` and ``SQLiteStore`` (a file), with one change:
an armed unit of work fails at its N-th write (an insert, update, delete, audit append or the
commit). Each test fails the redemption at write 1, 2, 3, ... until the redemption has more
writes than N and succeeds; after every failure the whole store — every table, the audit
trail and its head — must be exactly as before, and the final, unfailed redemption must
then work once.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _money import (
    EXCHANGE,
    INTUNE,
    DiskFailingSQLiteStore,
    FaultyStore,
    InjectedFault,
    faulty_store,
    link_id_of,
    money_world,
    state,
    subscriptions_of,
)
from partnerkit import (
    DelegationStatus,
    OfferLine,
    PartnerKitError,
    Redemption,
    SubscriptionStatus,
)

#: Fault injection at the ports (every repository write, audit append and commit) on both
#: stores, and at the SQL statements of the SQLite store.
STORES = ["memory", "sqlite", "sqlite-disk"]


@pytest.fixture(params=STORES)
def faulty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FaultyStore]:
    """A fresh fault-injecting store of each kind, closed after the test."""
    store = faulty_store(request.param, tmp_path)
    yield store
    store.close()


def fail_everywhere(store: FaultyStore, attempt: Callable[[], Any]) -> tuple[Any, int]:
    """Run *attempt* failing at write 1, 2, ... until it succeeds; check every failure
    left the store untouched. Return the successful result and how many writes it made."""
    expected = PartnerKitError if isinstance(store, DiskFailingSQLiteStore) else InjectedFault
    for n in itertools.count(1):
        before = state(store)
        store.faults.arm(n)
        failure: Exception | None = None
        try:
            result = attempt()
        except (InjectedFault, PartnerKitError) as exc:
            failure = exc
        finally:
            store.faults.arm(None)
            store.faults.finish()
        if failure is None:
            return result, n - 1
        # On SQLite the disk error reaches the caller as partnerkit's own storage error.
        assert isinstance(failure, expected), failure
        if expected is PartnerKitError:
            assert isinstance(failure.__cause__, sqlite3.OperationalError)
        assert state(store) == before, f"a failure at write {n} left something behind"
    raise AssertionError("unreachable")


def link_uses(store: Any, url: str) -> int:
    """How many customers the store says used the link of *url*."""
    with store.unit_of_work(write=False) as uow:
        record = uow.links.get(link_id_of(url))
        assert record is not None
        return record.uses


def test_a_trial_redemption_with_consent_that_fails_at_any_write_leaves_nothing(
    faulty: FaultyStore,
) -> None:
    """A trial link offering delegated admin, redeemed with consent, fails at each of its
    writes in turn: no subscription, no delegation, no redemption record, no use counted,
    no audit event; then it succeeds exactly once."""
    store = faulty
    m = money_world(store)
    url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE", True, max_uses=1)

    result, writes = fail_everywhere(
        store, lambda: m.portal.redeem(url, m.admin, accept_delegated_admin=True)
    )

    assert writes >= 8  # subscription, delegation (add, accept), relation, link, record, audit
    assert isinstance(result, Redemption)
    assert [s.status for s in result.subscriptions] == [SubscriptionStatus.TRIAL]
    assert result.delegation is not None
    assert result.delegation.status is DelegationStatus.ACTIVE
    assert len(subscriptions_of(store, m.customer.id)) == 1
    assert link_uses(store, url) == 1
    m.portal.verify_audit_trail()


def test_an_offer_that_converts_a_trial_and_fails_at_any_write_leaves_the_trial_alone(
    faulty: FaultyStore,
) -> None:
    """An offer of two services, one of them on trial, redeemed with an adjusted count,
    fails at each write in turn: the trial stays a trial with its 25 licences, nothing new
    exists; then the offer converts it once."""
    store = faulty
    m = money_world(store)
    trial_url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE")
    (trial,) = m.portal.redeem(trial_url, m.admin).subscriptions
    url, _ = m.portal.create_purchase_offer(
        m.partner_admin, [OfferLine("EXCHANGE", 40), OfferLine("INTUNE", 50)], max_uses=1
    )

    result, writes = fail_everywhere(
        store, lambda: m.portal.redeem(url, m.billing, licenses={"INTUNE": 7})
    )

    assert writes >= 6
    converted, bought = result.subscriptions
    assert converted.id == trial.id
    assert (converted.status, converted.licenses) == (SubscriptionStatus.ACTIVE, 40)
    assert (bought.sku, bought.licenses) == (INTUNE.sku, 7)
    assert link_uses(store, url) == 1
    m.portal.verify_audit_trail()


def test_a_sign_up_that_fails_at_any_write_leaves_no_company_and_no_user(
    faulty: FaultyStore,
) -> None:
    """A new customer signing up through an offer link, failing at each write in turn —
    the company, its admin, the subscriptions — leaves no trace; then the sign-up works."""
    store = faulty
    m = money_world(store)
    url, _ = m.portal.create_purchase_offer(m.partner_admin, [OfferLine("EXCHANGE", 12)])

    (company, admin, result), writes = fail_everywhere(
        store,
        lambda: m.portal.sign_up(
            url, name="Northwind", domain="northwind.example", admin_email="ann@northwind.example"
        ),
    )

    assert writes >= 6  # company, user, subscription, relation, link, record, audit
    assert admin.company_id == company.id
    assert [(s.sku, s.licenses) for s in result.subscriptions] == [(EXCHANGE.sku, 12)]
    assert link_uses(store, url) == 1
