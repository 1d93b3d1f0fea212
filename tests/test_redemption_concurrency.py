"""Concurrent redemptions on one SQLite file buy exactly what the link allows.

Sixteen threads start together (a barrier) and redeem through one Portal whose store is a
real SQLite file (WAL, ``synchronous=FULL``; each thread has its own connection). The
memory store runs the same races as a control. Every call must end in a result or a typed
partnerkit error; the store is then read to count what was bought.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from _money import Money, money_world, new_customer, subscriptions_of
from partnerkit import (
    AdminRole,
    Conflict,
    DelegationStatus,
    LinkExhausted,
    OfferLine,
    Redemption,
    User,
)
from partnerkit.ports import Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore

THREADS = 16


@pytest.fixture(params=["sqlite", "memory"])
def m(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Money]:
    """A populated portal on a SQLite file (or, as a control, in memory)."""
    store: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "p.db")
    yield money_world(store)
    store.close()


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run *calls* in one thread each, released together; return each result or exception."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = calls[i]()
        except Exception as exc:  # every outcome is inspected by the test
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a redemption hung"
    return outcomes


def redemption_records(m: Money, customer_id: str) -> int:
    with m.store.unit_of_work(write=False) as uow:
        return uow.redemptions.count(customer_id=customer_id)


def link_uses(m: Money, link_id: str) -> int:
    with m.store.unit_of_work(write=False) as uow:
        record = uow.links.get(link_id)
        assert record is not None
        return record.uses


def successful_redeems(m: Money) -> int:
    with m.store.unit_of_work(write=False) as uow:
        return sum(e.action == "link.redeem" and e.outcome == "success" for e in uow.audit_events())


def test_sixteen_threads_redeeming_one_offer_for_one_customer_buy_once(m: Money) -> None:
    """Every thread gets the same purchase and the same delegation (or a typed
    ``Conflict``); the customer has one subscription per line, one redemption record, the
    link one use, and the audit trail one successful redemption. The delegation waits when
    the billing admin came first (only a global admin declines), and the global admin's
    first answer after that declines it, once."""
    url, offer = m.portal.create_purchase_offer(
        m.partner_admin, [OfferLine("INTUNE", 50), OfferLine("PROJECT", 3)], True
    )
    buyers: list[User] = [m.admin, m.billing]
    calls: list[Callable[[], Any]] = [
        (lambda who=buyers[i % 2]: m.portal.redeem(url, who, accept_delegated_admin=False))
        for i in range(THREADS)
    ]

    outcomes = race(calls)

    results = [o for o in outcomes if isinstance(o, Redemption)]
    others = [o for o in outcomes if not isinstance(o, Redemption)]
    assert results, f"no thread succeeded: {others!r}"
    assert all(isinstance(o, Conflict) for o in others), others
    assert all(r.subscriptions == results[0].subscriptions for r in results)
    delegations = [r.delegation for r in results]
    assert all(d is not None for d in delegations)
    assert len({d.id for d in delegations if d is not None}) == 1
    statuses = {d.status for d in delegations if d is not None}
    assert statuses <= {DelegationStatus.PENDING, DelegationStatus.DECLINED}
    with m.store.unit_of_work(write=False) as uow:
        events = [e.action for e in uow.audit_events()]
    assert events.count("delegation.decline") == (DelegationStatus.DECLINED in statuses)
    assert [s.sku for s in results[0].subscriptions] == ["INTUNE", "PROJECT"]
    assert len(subscriptions_of(m.store, m.customer.id)) == 2
    assert redemption_records(m, m.customer.id) == 1
    assert link_uses(m, offer.link_id) == 1
    assert successful_redeems(m) == 1
    m.portal.verify_audit_trail()


@pytest.mark.parametrize("kind", ["offer", "trial"])
def test_sixteen_customers_racing_for_a_five_use_link_get_exactly_five(m: Money, kind: str) -> None:
    """Exactly five customers get their subscription; every other call raises
    ``LinkExhausted`` (or ``Conflict``), and the link counts five uses."""
    if kind == "offer":
        url, offer = m.portal.create_purchase_offer(
            m.partner_admin, [OfferLine("INTUNE", 50)], max_uses=5
        )
        link_id = offer.link_id
    else:
        url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE", max_uses=5)
        link_id = m.portal.inspect_link(url).link_id
    customers = [new_customer(m.portal, "racer") for _ in range(THREADS)]
    calls: list[Callable[[], Any]] = [
        (lambda who=admin: m.portal.redeem(url, who)) for _, admin in customers
    ]

    outcomes = race(calls)

    winners = [c for c, o in zip(customers, outcomes, strict=True) if isinstance(o, Redemption)]
    losers = [o for o in outcomes if not isinstance(o, Redemption)]
    assert len(winners) == 5, outcomes
    assert all(isinstance(o, LinkExhausted | Conflict) for o in losers), losers
    assert link_uses(m, link_id) == 5
    for company, _ in customers:
        bought = subscriptions_of(m.store, company.id)
        expected = 1 if any(w[0].id == company.id for w in winners) else 0
        assert len(bought) == expected
        assert redemption_records(m, company.id) == expected
    assert successful_redeems(m) == 5


def test_one_customer_racing_two_links_for_one_trial_gets_one_trial(m: Money) -> None:
    """Two different trial links for one service, raced by one customer's admins: one trial
    exists afterwards; every other call is a replay, the one-trial rule or a ``Conflict``."""
    first = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE")
    second = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE")
    admins = [
        m.admin,
        m.billing,
        m.password_admin,
        m.portal.create_user(
            m.admin,
            email="sam@fabrikam.example",
            display_name="Sam",
            admin_role=AdminRole.SERVICE_ADMIN,
        ),
    ]
    calls: list[Callable[[], Any]] = [
        (lambda url=(first, second)[i % 2], who=admins[i % 4]: m.portal.redeem(url, who))
        for i in range(THREADS)
    ]

    outcomes = race(calls)

    results = [o for o in outcomes if isinstance(o, Redemption)]
    others = [o for o in outcomes if not isinstance(o, Redemption)]
    assert results
    for other in others:
        assert isinstance(other, Conflict) or getattr(other, "field", None) == "sku", other
    (trial,) = subscriptions_of(m.store, m.customer.id)
    assert all(r.subscriptions == (trial,) for r in results)
