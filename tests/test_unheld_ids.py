"""Ids no store can hold: every store answers a Portal call naming one as it answers an id
that is not there.

Stored ids are validated text (no control characters, valid Unicode). A caller may still
pass any string: one with a NUL, which PostgreSQL cannot take as a parameter, or with a lone
surrogate, which neither SQL store can encode. ``MemoryStore`` simply finds nothing under
such a key; the SQL stores used to raise ``ValidationError("store", ...)`` instead, so the
same call was a decision on one store and an error on another (SPEC section 5: the stores
behave identically, errors included).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from partnerkit import Permission, Portal
from partnerkit.ports import Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing import FakeClock, World, build_world

pytest_plugins = ["pg_fixtures"]

UNHELD = ["cmp_\x00x", "usr_\x00", "\x00", "cmp_\ud800x", "usr_\udfff", "\udbff"]


def _calls(w: World, bad: str) -> list[tuple[str, Callable[[], Any]]]:
    p = w.portal
    agent, admin = w.partner_admin, w.customer_admin
    return [
        ("decide in", lambda: p.decide(agent, Permission.RESET_PASSWORD, bad)),
        ("decide as", lambda: p.decide(bad, Permission.RESET_PASSWORD, w.customer.id)),
        ("decide on", lambda: p.decide(agent, Permission.RESET_PASSWORD, w.customer.id, bad)),
        ("reset in", lambda: p.reset_password(agent, bad, w.customer_user.id)),
        ("reset of", lambda: p.reset_password(agent, w.customer.id, bad)),
        ("profile", lambda: p.profile(agent, bad)),
        ("list users", lambda: p.list_users(agent, bad)),
        ("licences", lambda: p.change_licenses(admin, bad, 5)),
        ("find after", lambda: p.find_customers(agent, "", after=bad)),
        ("find prefix", lambda: p.find_customers(agent, bad)),
        ("revoke", lambda: p.revoke_delegation(admin, bad)),
        ("request", lambda: p.update_service_request(agent, bad, status="closed")),
    ]


def _outcomes(store: Store) -> list[tuple[str, str, str]]:
    w = build_world(Portal(store=store, clock=FakeClock()))
    found = []
    for bad in UNHELD:
        for name, call in _calls(w, bad):
            try:
                result = call()
            except Exception as exc:  # the type and message are what is compared
                found.append((name, repr(bad), f"{type(exc).__name__}: {exc}"))
            else:
                shown = getattr(result, "allowed", None)
                found.append((name, repr(bad), f"{type(result).__name__} {shown}"))
    return found


@pytest.fixture(scope="module")
def on_memory() -> list[tuple[str, str, str]]:
    return _outcomes(MemoryStore())


def test_an_id_no_store_holds_is_answered_as_a_missing_one(
    any_store: Store, on_memory: list[tuple[str, str, str]]
) -> None:
    outcomes = _outcomes(any_store)
    assert outcomes == on_memory
    # Not a vacuous comparison: the calls reach the store and answer in several ways.
    kinds = {outcome for _, _, outcome in on_memory}
    assert any(k.startswith("Decision False") for k in kinds)
    assert any(k.startswith("Forbidden") for k in kinds)
    assert any(k.startswith("NotFound") for k in kinds)
    assert not any("store:" in k for k in kinds)
