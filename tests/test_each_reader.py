"""``Portal.decide`` with and without the optional ``get_each`` of a unit of work.

A unit of work that reads several keys at once (``ports.EachReader``; ``PostgresStore``
offers it) answers a decision's reads together (the actor, the company and the target); one
without it is read key by key. The answers are the same for every actor, company, permission
and target, including unknown ids. The store is a real ``MemoryStore`` behind a wrapper that
adds the method and notes its calls.
"""

from __future__ import annotations

from typing import Any

import pytest

from _proxy_units import ProxyStore, ProxyUnit
from partnerkit import Permission, Portal
from partnerkit.ports import Table
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing import FakeClock, World, build_world


class _EachUnit(ProxyUnit):
    """A real unit of work plus ``get_each``, reading key by key and noting each call."""

    def __init__(self, inner: Any, calls: list[tuple[str, ...]]) -> None:
        super().__init__(inner)
        self._calls = calls

    def get_each(self, *keys: tuple[Table[Any], str]) -> list[Any]:
        self._calls.append(tuple(table.name for table, _ in keys))
        return [self._inner.repository(table).get(ident) for table, ident in keys]


class _EachStore(ProxyStore):
    def __init__(self, inner: MemoryStore) -> None:
        self.calls: list[tuple[str, ...]] = []
        super().__init__(inner, lambda unit: _EachUnit(unit, self.calls))


@pytest.fixture
def world() -> World:
    return build_world(Portal(store=MemoryStore(), clock=FakeClock()))


def test_decisions_read_together_answer_as_decisions_read_key_by_key(world: World) -> None:
    plain = world.portal
    wrapped = _EachStore(plain.store)  # type: ignore[arg-type]
    each = Portal(store=wrapped, clock=plain.clock)  # type: ignore[arg-type]
    url = plain.offer_delegated_admin(world.partner_admin)
    plain.redeem(url, world.customer_admin, accept_delegated_admin=True)
    actors = [
        world.partner_admin.id,
        world.partner_agent.id,
        world.partner_billing.id,
        world.customer_admin.id,
        world.customer_user.id,
        "usr_nobody",
    ]
    companies = [world.partner.id, world.customer.id, "cmp_nowhere"]
    targets = [None, world.customer_user.id, world.customer_admin.id, world.partner_agent.id]
    read: list[tuple[str, ...]] = []
    for actor in actors:
        for company in companies:
            for permission in Permission:
                for target in targets:
                    expected = plain.decide(actor, permission, company, target)
                    got = each.decide(actor, permission, company, target)
                    assert (bool(got), got.rule) == (bool(expected), expected.rule)
                    read.append(("users", "companies") + (() if target is None else ("users",)))
    # Every decision read the actor, the company and the target (if any) together, once.
    assert wrapped.calls == read
