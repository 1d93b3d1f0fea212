"""``Portal.redeem`` reading what it needs together, and the same redemptions read one by one.

A unit of work that reads several keys at once (``ports.EachReader``) or several keys and
lookups at once (``ports.EachFinder``; ``PostgresStore`` offers both) has a redemption's reads
made together: the actor, its company, the link, its offer, an earlier redemption and the
customer's subscriptions. Every outcome must be what the reads one by one give: the same
redemptions, replays and refusals, and the same audit trail. The stores compared are a plain
``MemoryStore``, the same behind a wrapper that adds the capabilities (reading through the
real repositories and noting each call), and a real ``PostgresStore``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from importlib.util import find_spec
from typing import Any

import attrs
import pytest

from _money import money_world, new_customer
from _proxy_units import ProxyStore, ProxyUnit
from partnerkit import OfferLine, PartnerKitError, Redemption
from partnerkit.ports import Store, Table
from partnerkit.stores.memory import MemoryStore

pytest_plugins = ["pg_fixtures"]


class _GetEachUnit(ProxyUnit):
    """A real unit of work plus ``get_each``, reading key by key and noting each call."""

    def __init__(self, inner: Any, calls: list[tuple[str, ...]]) -> None:
        super().__init__(inner)
        self._calls = calls

    def get_each(self, *keys: tuple[Table[Any], str]) -> list[Any]:
        self._calls.append(("get_each", *(table.name for table, _ in keys)))
        return [self._inner.repository(table).get(ident) for table, ident in keys]


class _FindEachUnit(_GetEachUnit):
    """The same plus ``find_each``: a key is read as ``get``, a lookup as ``find``."""

    def find_each(self, *reads: tuple[Table[Any], Any]) -> list[Any]:
        self._calls.append(("find_each", *(table.name for table, _ in reads)))
        return [
            self._inner.repository(table).get(key)
            if isinstance(key, str)
            else self._inner.repository(table).find(**key)
            for table, key in reads
        ]


class _Watched(ProxyStore):
    def __init__(self, inner: Store, unit: type[_GetEachUnit]) -> None:
        self.calls: list[tuple[str, ...]] = []
        super().__init__(inner, lambda u: unit(u, self.calls))


Outcome = tuple[Any, ...]


def _shape(call: Callable[[], Any]) -> Outcome:
    """What a call gave, without the ids that differ from one world to the next."""
    try:
        result = call()
    except PartnerKitError as exc:
        return ("raised", type(exc).__name__, str(exc))
    if isinstance(result, tuple):  # sign_up: company, admin, redemption
        result = result[2]
    assert isinstance(result, Redemption)
    return (
        "redeemed",
        tuple((s.sku, s.licenses, s.status.value) for s in result.subscriptions),
        result.delegation.status.value if result.delegation is not None else None,
    )


def _script(store: Store) -> tuple[list[Outcome], list[tuple[Any, ...]]]:
    """Redeem links of every kind, again, by the wrong people and past their end; return
    the outcomes and the audit trail (action, outcome, reason, role of each event), ending
    with the partner's relations and what its search finds."""
    m = money_world(store)
    portal, partner = m.portal, m.partner_admin
    offer, _ = portal.create_purchase_offer(
        partner, [OfferLine("EXCHANGE", 10), OfferLine("INTUNE", 20)]
    )
    trial = portal.create_trial_invitation(partner, "INTUNE")
    admin_only = portal.offer_delegated_admin(partner)
    with_admin, _ = portal.create_purchase_offer(
        partner, [OfferLine("PROJECT", 3)], include_delegated_admin=True
    )
    once, _ = portal.create_purchase_offer(partner, [OfferLine("EXCHANGE", 2)], max_uses=1)
    withdrawn, withdrawn_offer = portal.create_purchase_offer(partner, [OfferLine("PROJECT", 4)])
    portal.withdraw_offer(partner, withdrawn_offer.id)
    short, _ = portal.create_purchase_offer(
        partner, [OfferLine("EXCHANGE", 1)], expires_in=timedelta(minutes=5)
    )
    _, first = new_customer(portal, "first")
    _, second = new_customer(portal, "second")
    _, third = new_customer(portal, "third")
    # The actor as a User whose company is not the stored one (a stale or forged object):
    # the stored user's company is the one that redeems.
    stale = attrs.evolve(second, company_id=m.customer.id)

    def expired() -> Redemption:
        m.clock.advance(minutes=10)
        return portal.redeem(short, first)

    steps: list[Callable[[], Any]] = [
        lambda: portal.redeem(trial, m.admin),
        lambda: portal.redeem(trial, m.admin),  # a replay
        lambda: portal.redeem(trial, m.admin.id),  # a replay, the actor by id
        lambda: portal.redeem(offer, m.billing, {"INTUNE": 30}),  # converts the trial
        lambda: portal.redeem(offer, m.admin.id),  # a replay
        lambda: portal.redeem(offer, m.password_admin),  # no PURCHASE
        lambda: portal.redeem(trial, stale),
        lambda: portal.redeem(trial, second.id),  # a replay
        lambda: portal.redeem(trial, "usr_nobody"),
        lambda: portal.redeem("https://portal.invalid/join?code=x.y.z", m.admin),
        lambda: portal.redeem("https://portal.invalid/join?code=x.y.z", "usr_nobody"),
        lambda: portal.redeem(offer, partner),  # partner users never redeem
        lambda: portal.redeem(trial, first, {"INTUNE": 9}),  # counts on a trial link
        lambda: portal.redeem(offer, first, {"PROJECT": 9}),  # no such line
        lambda: portal.redeem(trial, first, accept_delegated_admin=True),  # nothing offered
        lambda: portal.redeem(with_admin, first, accept_delegated_admin=True),
        lambda: portal.redeem(with_admin, first),  # a replay, with the delegation
        lambda: portal.redeem(with_admin, second, accept_delegated_admin=False),
        lambda: portal.redeem(with_admin, third),
        lambda: portal.redeem(admin_only, third, accept_delegated_admin=True),
        lambda: portal.redeem(admin_only, m.admin),
        lambda: portal.redeem(offer, first),
        lambda: portal.redeem(offer, first),  # a replay
        lambda: portal.redeem(once, second),
        lambda: portal.redeem(once, third),  # spent
        lambda: portal.redeem(once, second),  # a replay of a spent link still answers
        lambda: portal.redeem(withdrawn, second),
        lambda: portal.redeem(offer, second),  # EXCHANGE is bought already
        lambda: portal.redeem(trial, second),  # a replay (redeemed as the stale object)
        lambda: portal.sign_up(
            offer, name="Signed Up", domain="signed.example", admin_email="s@signed.example"
        ),
        lambda: portal.sign_up(
            trial, name="Tried", domain="tried.example", admin_email="t@tried.example"
        ),
        expired,
        lambda: portal.redeem(short, "usr_nobody"),
    ]
    outcomes = [_shape(step) for step in steps]
    with store.unit_of_work(write=False) as uow:
        trail = [(e.action, e.outcome, e.reason, e.role) for e in uow.audit_events()]
        # The relations a redemption records (read with the link where it can be), by the
        # customer's name: the ids differ from one world to the next.
        relations = uow.customer_relations.find(partner_id=partner.company_id)
        names = {r.customer_id: uow.companies.get(r.customer_id) for r in relations}
        trail += sorted(
            (
                "relation",
                _stem(names[r.customer_id].name),  # type: ignore[union-attr]
                r.advises,
                r.administers,
                r.delegation_id is not None,
                r.delegation_ends_at,
                r.version,
            )
            for r in relations
        )
    trail.append(("found", *(_stem(c.name) for c in portal.find_customers(partner, ""))))
    return outcomes, trail


def _stem(name: str) -> str:
    """A customer's name without the number ``new_customer`` gives it (one per world)."""
    return name.rstrip("0123456789").rstrip()


def _needs_postgres() -> None:
    if find_spec("psycopg") is None and not os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"):
        pytest.skip("psycopg is not installed (partnerkit[postgres])")


@pytest.fixture(scope="module")
def read_one_by_one() -> tuple[list[Outcome], list[tuple[Any, ...]]]:
    """The script on a plain ``MemoryStore``: every read on its own."""
    store = MemoryStore()
    try:
        return _script(store)
    finally:
        store.close()


@pytest.mark.parametrize("unit", [_GetEachUnit, _FindEachUnit], ids=["get_each", "find_each"])
def test_redemptions_read_together_go_as_redemptions_read_one_by_one(
    unit: type[_GetEachUnit], read_one_by_one: tuple[list[Outcome], list[tuple[Any, ...]]]
) -> None:
    store = _Watched(MemoryStore(), unit)
    outcomes, trail = _script(store)  # type: ignore[arg-type]
    expected_outcomes, expected_trail = read_one_by_one
    assert outcomes == expected_outcomes
    assert trail == expected_trail
    assert any(o[0] == "redeemed" for o in outcomes)
    assert any(o[0] == "raised" for o in outcomes)
    # Each redemption by a known actor of a verified link read together, the actor given as
    # a User in one step: the actor, its company, the link, an earlier redemption, the offer
    # of an offer link, and with find_each the customer's subscriptions of a trial or offer
    # and its relations.
    name = "find_each" if unit is _FindEachUnit else "get_each"
    lookups = ("subscriptions", "customer_relations") if unit is _FindEachUnit else ()
    offer_step = (name, "users", "companies", "links", "redemptions", "purchase_offers")
    assert (*offer_step, *lookups) in store.calls
    trial_step = (name, "users", "companies", "links", "redemptions")
    assert (*trial_step, *lookups) in store.calls
    # Given by id, the actor is read first; its company then comes with the rest.
    by_id = (name, "companies", "links", "redemptions", "purchase_offers")
    assert (*by_id, *lookups) in store.calls
    # A replay reads its subscriptions (and delegation) together.
    assert ("get_each", "subscriptions", "delegations") in store.calls


@pytest.mark.postgres
def test_redemptions_on_postgresql_go_as_redemptions_read_one_by_one(
    request: pytest.FixtureRequest, read_one_by_one: tuple[list[Outcome], list[tuple[Any, ...]]]
) -> None:
    _needs_postgres()
    from partnerkit.stores.postgres import PostgresStore

    store = PostgresStore(request.getfixturevalue("fresh_dsn"))
    try:
        assert _script(store) == read_one_by_one
    finally:
        store.close()
