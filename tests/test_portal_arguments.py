"""What a ``Portal`` and ``correlation`` refuse up front: arguments that are not of their
kind, judged when they are given rather than at the first use case that needs them (which
would fail with a raw ``AttributeError`` or ``TypeError``, unaudited)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from partnerkit import ContactInfo, Portal, ValidationError, correlation
from partnerkit.audit import MAX_CORRELATION_ID
from partnerkit.stores.memory import MemoryStore


def register(portal: Portal) -> object:
    return portal.register_partner(
        name="Contoso", contact=ContactInfo(email="hi@contoso.example"), admin_email="a@c.example"
    )


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("store", {"store": None}),
        ("store", {"store": "portal.db"}),
        ("keyring", {"keyring": "junk"}),
        ("keyring", {"keyring": {"keys": []}}),
        ("catalog", {"catalog": [1]}),
        ("clock", {"clock": 5}),
        ("password_hasher", {"password_hasher": "scrypt"}),
    ],
)
def test_a_portal_refuses_arguments_not_of_their_kind(field: str, kwargs: dict[str, Any]) -> None:
    """Each is a ``ValidationError`` naming the argument, raised by the constructor."""
    arguments: dict[str, Any] = {"store": MemoryStore(), **kwargs}
    with pytest.raises(ValidationError) as info:
        Portal(**arguments)
    assert info.value.field == field


@pytest.mark.parametrize(
    "clock",
    [lambda: None, lambda: "2024-01-15", lambda: datetime(2024, 1, 15)],
)
def test_a_clock_that_returns_no_aware_time_is_refused_at_use(clock: Callable[[], object]) -> None:
    """A clock is only asked when a use case runs: what it answers is judged then, and
    nothing is written."""
    store = MemoryStore()
    portal = Portal(store=store, clock=clock)  # type: ignore[arg-type]
    with pytest.raises(ValidationError) as info:
        register(portal)
    assert info.value.field == "clock"
    assert Portal(store=store).verify_audit_trail() == 0


@pytest.mark.parametrize(
    "request_id",
    [
        5,
        b"abc",
        ["a"],
        None,
        "",
        "\x00",
        "\ud800",
        "tab\there",
        "é",
        "x" * (MAX_CORRELATION_ID + 1),
    ],
)
def test_correlation_refuses_an_id_no_audit_event_could_keep(request_id: object) -> None:
    """A request id straight from a header is judged on entry: a ``ValidationError``, not
    a use case that fails later (or records a megabyte on every event)."""
    with pytest.raises(ValidationError) as info, correlation(request_id):  # type: ignore[arg-type]
        pass  # pragma: no cover - never entered
    assert info.value.field == "correlation_id"


def test_correlation_takes_request_ids_as_text() -> None:
    """An id of printable ASCII up to the limit (a ``str`` subclass as its text) tags the
    events of the block."""

    class RequestId(str):
        pass

    portal = Portal(store=MemoryStore(), clock=lambda: datetime(2024, 1, 15, tzinfo=UTC))
    longest = "r" * MAX_CORRELATION_ID
    for request_id in ["00-4bf92f3577b34da6-00f067aa0ba902b7-01", "req 7", longest]:
        with correlation(RequestId(request_id)) as given:
            assert given.__class__ is str
            assert given == request_id
            _, admin = register_named(portal, request_id)
        [event] = [e for e in portal.audit_trail(admin) if e.action == "partner.register"]
        assert event.correlation_id == request_id


def register_named(portal: Portal, stem: str) -> Any:
    tag = str(abs(hash(stem)))
    return portal.register_partner(
        name=f"Partner {tag}",
        contact=ContactInfo(email=f"hi{tag}@p.example"),
        admin_email=f"admin{tag}@p.example",
    )


class _Impostor:
    """An object that tries to pass for another's text: its ``str`` and ``repr`` name the
    actor's own company, or raise."""

    def __init__(self, text: str | None) -> None:
        self.text = text

    def __str__(self) -> str:
        if self.text is None:
            raise RuntimeError("the caller's own error")
        return self.text

    __repr__ = __str__


def test_decide_on_a_company_id_that_is_not_text_asks_nothing_of_it() -> None:
    """A huge int, an object whose ``str`` raises, or one whose ``str`` is the actor's own
    company id: each is answered as an id of no company (denied), by ``decide`` and by
    ``reset_password``, which asks ``decide`` first."""
    from partnerkit import Forbidden, Permission
    from partnerkit.testing import build_world

    world = build_world(Portal(store=MemoryStore()))
    admin = world.partner_admin
    for company_id in [10**5000, _Impostor(None), _Impostor(world.partner.id)]:
        decision = world.portal.decide(admin, Permission.EDIT_PROFILE, company_id)  # type: ignore[arg-type]
        assert not decision
        with pytest.raises((Forbidden, ValidationError)):
            world.portal.reset_password(admin, company_id, world.partner_agent.id)  # type: ignore[arg-type]
    assert world.portal.decide(admin, Permission.EDIT_PROFILE, world.partner.id)


@pytest.mark.parametrize(
    "roles", [[["global_admin"]], [{}], [set()], ["global_admin", []], [None], "global_admin"]
)
def test_delegation_roles_of_junk_are_a_validation_error(roles: object) -> None:
    """Unhashable or mistyped members of ``roles`` are a ``ValidationError`` naming it."""
    from partnerkit.testing import build_world

    world = build_world(Portal(store=MemoryStore()))
    with pytest.raises(ValidationError) as info:
        world.portal.offer_delegated_admin(world.partner_admin, roles=roles)  # type: ignore[arg-type]
    assert info.value.field == "roles"
