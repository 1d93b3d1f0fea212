"""The partnerkit pytest plugin: ready fixtures for tests of code built on partnerkit.

pytest loads it by itself once partnerkit is installed (the ``pytest11`` entry point
``partnerkit``). The fixtures are function-scoped and cheap:

- ``partnerkit_clock``: a :class:`~partnerkit.testing.FakeClock`;
- ``partnerkit_store``: an empty :class:`~partnerkit.stores.memory.MemoryStore`;
- ``partnerkit_portal``: a :class:`~partnerkit.Portal` on that store and clock, with the
  services of :func:`~partnerkit.testing.sample_catalog` and a password hasher cheap
  enough for tests (:data:`~partnerkit.testing.FAST_HASHER`);
- ``partnerkit_world``: a :class:`~partnerkit.testing.World` registered through that portal.

Loading the plugin does no I/O and builds nothing, and it imports only the domain modules
:mod:`partnerkit.testing` needs (not the portal nor a store): pytest loads it in every
session of an environment partnerkit is installed in, most of which never ask for its
fixtures, so each fixture imports what it builds when a test asks for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from partnerkit.portal import Portal
    from partnerkit.stores.memory import MemoryStore
    from partnerkit.testing import FakeClock, World

__all__ = ["partnerkit_clock", "partnerkit_portal", "partnerkit_store", "partnerkit_world"]

# The contract suite's asserts should explain themselves like a test module's do.
pytest.register_assert_rewrite("partnerkit.testing.contract")


@pytest.fixture
def partnerkit_clock() -> FakeClock:
    """A fake aware-UTC clock, set to ``partnerkit.testing.DEFAULT_START``."""
    from partnerkit.testing import FakeClock

    return FakeClock()


@pytest.fixture
def partnerkit_store() -> Iterator[MemoryStore]:
    """An empty in-memory store."""
    from partnerkit.stores.memory import MemoryStore

    store = MemoryStore()
    yield store
    store.close()


@pytest.fixture
def partnerkit_portal(partnerkit_store: MemoryStore, partnerkit_clock: FakeClock) -> Portal:
    """A portal on ``partnerkit_store`` whose time is ``partnerkit_clock``."""
    from partnerkit.portal import Portal
    from partnerkit.testing import FAST_HASHER, sample_catalog

    return Portal(
        store=partnerkit_store,
        catalog=sample_catalog(),
        clock=partnerkit_clock,
        password_hasher=FAST_HASHER,
    )


@pytest.fixture
def partnerkit_world(partnerkit_portal: Portal) -> World:
    """A partner (global admin with FULL access, LIMITED agent, billing admin) and a
    customer (global admin, plain user), registered through ``partnerkit_portal``."""
    from partnerkit.testing import build_world

    return build_world(partnerkit_portal)
