"""``find_customers`` with and without the optional ``search_customers`` of a unit of work.

A store whose units of work offer ``search_customers`` answers a page with it (one statement
on SQLite); a store without it, such as a third-party store written before it existed, is
served by ``search_relations`` and ``companies.get_many``. Both give the same pages. The
stores are the real ones, seen through a wrapper that hides the method or only notes which
search the Portal called.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _proxy_units import ProxyStore, ProxyUnit
from delegation_kit import add_customer, add_partner, consent, make_portal
from partnerkit import Company, Portal, User
from partnerkit.ports import Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FakeClock

NAMES = [
    ("Fabrikam", "fabrikam.example"),
    ("Fabric Works", "weave.example"),
    ("fabled", "fab-led.example"),
    ("Acme", "fabacme.example"),
    ("Northwind", "north.example"),
    ("Fabulous", "fabulous.example"),
    ("Zeta", "fab.zeta.example"),
    ("Litware", "litware.example"),
]
PREFIXES = ["", "fab", "f", "fabr", "north", "z", "nothing"]


class _Unit(ProxyUnit):
    """A real unit of work, minus ``search_customers`` when *hide*; notes the searches."""

    def __init__(self, inner: Any, hide: bool, calls: list[str]) -> None:
        super().__init__(inner)
        self._hide = hide
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        if name == "search_customers" and self._hide:
            raise AttributeError(name)
        if name.startswith("search_"):
            self._calls.append(name)
        return getattr(self._inner, name)


class _Seen(ProxyStore):
    """A store whose units of work are :class:`_Unit` over *inner*'s."""

    def __init__(self, inner: Store, *, hide: bool) -> None:
        self.hide = hide
        self.calls: list[str] = []
        super().__init__(inner, lambda unit: _Unit(unit, hide, self.calls))


@pytest.fixture(params=["memory", "sqlite"])
def scene(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, User]]:
    """A store with one partner administering eight customers, and its FULL user."""
    store: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s.db")
    portal = make_portal(store, FakeClock())
    partner = add_partner(portal, "Contoso Partners", "contoso")
    for name, domain in NAMES:
        consent(portal, partner.admin, add_customer(portal, name, domain, roles=()))
    yield store, partner.full
    store.close()


def _pages(portal: Portal, actor: User, prefix: str, limit: int) -> list[list[Company]]:
    pages: list[list[Company]] = []
    after = None
    for _ in range(len(NAMES) + 1):
        page = portal.find_customers(actor, prefix, limit, after)
        if not page:
            return pages
        pages.append(page)
        after = page[-1].id
    raise AssertionError("the pages never end")


@pytest.mark.parametrize("limit", [1, 3, 50])
def test_a_store_without_search_customers_gets_the_same_pages(
    scene: tuple[Store, User], limit: int
) -> None:
    """Every page, for every prefix, is the same whether the unit of work offers
    ``search_customers`` (used) or not (``search_relations`` and ``get_many`` used)."""
    store, actor = scene
    hidden, shown = _Seen(store, hide=True), _Seen(store, hide=False)
    for prefix in PREFIXES:
        without = _pages(make_portal(hidden), actor, prefix, limit)
        with_it = _pages(make_portal(shown), actor, prefix, limit)
        assert with_it == without, prefix
        assert all(len(page) == limit for page in with_it[:-1])
    assert set(hidden.calls) == {"search_relations"}
    assert set(shown.calls) == {"search_customers"}


def test_both_ways_find_the_customers_by_name_or_domain(scene: tuple[Store, User]) -> None:
    """The pages are the right ones: names, else domains, that start with the prefix,
    ordered by the key that matched (``fab.zeta.example`` comes before ``fabled``)."""
    store, actor = scene
    expected = ["Zeta", "Acme", "fabled", "Fabric Works", "Fabrikam", "Fabulous"]
    for hide in (True, False):
        found = _pages(make_portal(_Seen(store, hide=hide)), actor, "FAB", 4)
        assert [c.name for page in found for c in page] == expected, hide
