"""Edits made against a version: ``expected_version=`` and ``StaleVersion``.

Every use case re-reads what it changes, so two people editing one object in two forms
each overwrote the other's change without a word: the versions the stores keep never
reached the person. With the version the form was read at, the later save is refused
(``StaleVersion``), changes nothing and is recorded as failed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from partnerkit import (
    AdminRole,
    ContactInfo,
    Forbidden,
    InvalidState,
    PartnerAccess,
    StaleVersion,
    ValidationError,
)
from partnerkit.testing import World

pytest_plugins = ["pg_fixtures"]


class Edit:
    """One edit use case: how to make the object, read it, change it with a version."""

    def __init__(
        self,
        name: str,
        make: Callable[[World], str],
        read: Callable[[World, str], Any],
        change: Callable[[World, str, int, int | None], object],
    ) -> None:
        self.name, self.make, self.read, self.change = name, make, read, change

    def __repr__(self) -> str:
        return self.name


def _user(world: World) -> str:
    return world.portal.create_user(
        world.customer_admin, email="ed@fabrikam.example", display_name="Ed"
    ).id


def _find_user(world: World, ident: str) -> Any:
    found = [u for u in world.portal.list_users(world.customer_admin) if u.id == ident]
    return found[0] if found else None


def _subscription(world: World) -> str:
    from partnerkit import OfferLine

    url, _ = world.portal.create_purchase_offer(
        world.partner_admin, lines=[OfferLine(sku="EXCHANGE", licenses=10)]
    )
    return world.portal.redeem(url, world.customer_admin).subscriptions[0].id


def _find_subscription(world: World, ident: str) -> Any:
    subs = world.portal.list_subscriptions(world.customer_admin)
    return next(s for s in subs if s.id == ident)


def _request(world: World) -> str:
    return world.portal.create_service_request(
        world.customer_admin, world.customer.id, title="Mail is slow"
    ).id


def _find_request(world: World, ident: str) -> Any:
    requests = world.portal.list_service_requests(world.customer_admin, world.customer.id)
    return next(r for r in requests if r.id == ident)


EDITS = [
    Edit(
        "update_profile",
        lambda w: w.customer.id,
        lambda w, _: w.portal.profile(w.customer_admin),
        lambda w, _, n, v: w.portal.update_profile(
            w.customer_admin,
            contact=ContactInfo(email=f"office{n}@fabrikam.example"),
            expected_version=v,
        ),
    ),
    Edit(
        "update_user",
        _user,
        _find_user,
        lambda w, ident, n, v: w.portal.update_user(
            w.customer_admin, ident, display_name=f"Ed {n}", expected_version=v
        ),
    ),
    Edit(
        "assign_roles",
        _user,
        _find_user,
        lambda w, ident, n, v: w.portal.assign_roles(
            w.customer_admin,
            ident,
            admin_role=(AdminRole.BILLING_ADMIN, AdminRole.PASSWORD_ADMIN)[n % 2],
            expected_version=v,
        ),
    ),
    Edit(
        "change_licenses",
        _subscription,
        _find_subscription,
        lambda w, ident, n, v: w.portal.change_licenses(
            w.customer_admin, ident, 20 + n, expected_version=v
        ),
    ),
    Edit(
        "update_service_request",
        _request,
        _find_request,
        lambda w, ident, n, v: w.portal.update_service_request(
            w.customer_admin, ident, severity=("critical", "minimal")[n % 2], expected_version=v
        ),
    ),
]


@pytest.mark.parametrize("edit", EDITS, ids=repr)
def test_the_second_of_two_forms_read_at_one_version_is_refused(
    any_world: World, edit: Edit
) -> None:
    """Two people open the same form (version v); the first saves; the second, saving
    against v, is refused with ``StaleVersion`` naming both versions, changes nothing, and
    the attempt is recorded as failed. Saving against the version now read succeeds."""
    world = any_world
    ident = edit.make(world)
    opened = edit.read(world, ident)
    saved = edit.change(world, ident, 1, opened.version)
    assert saved is None or saved.version == opened.version + 1
    after_first = edit.read(world, ident)
    with pytest.raises(StaleVersion) as stale:
        edit.change(world, ident, 2, opened.version)
    assert isinstance(stale.value, InvalidState)
    assert stale.value.field == "expected_version"
    assert f"is {opened.version}," in stale.value.message
    assert f"version {after_first.version} now" in stale.value.message
    assert edit.read(world, ident) == after_first
    last = world.portal.audit_trail(world.customer_admin)[-1]
    assert (last.outcome, last.reason) == ("failed", "stale-version")
    edit.change(world, ident, 2, after_first.version)
    assert edit.read(world, ident).version == after_first.version + 1


@pytest.mark.parametrize("edit", EDITS, ids=repr)
def test_without_a_version_the_edit_applies_to_what_is_stored(any_world: World, edit: Edit) -> None:
    """``expected_version=None`` (the default) keeps the edit as it always was."""
    world = any_world
    ident = edit.make(world)
    before = edit.read(world, ident)
    edit.change(world, ident, 1, None)
    edit.change(world, ident, 2, None)
    assert edit.read(world, ident).version == before.version + 2


@pytest.mark.parametrize("edit", EDITS, ids=repr)
@pytest.mark.parametrize("bad", [0, -1, True, "1", 1.0, 2**63])
def test_a_version_that_is_no_version_is_a_validation_error(
    any_world: World, edit: Edit, bad: object
) -> None:
    """Not a whole number from 1 (a bool, text, a float, 0, beyond 64 bits): a plain
    ``ValidationError`` on ``expected_version``, never taken for a stale version."""
    world = any_world
    ident = edit.make(world)
    before = edit.read(world, ident)
    with pytest.raises(ValidationError) as refused:
        edit.change(world, ident, 1, bad)  # type: ignore[arg-type]
    assert type(refused.value) is ValidationError
    assert refused.value.field == "expected_version"
    assert edit.read(world, ident) == before


def test_a_version_tells_nothing_to_whom_the_edit_is_forbidden(any_world: World) -> None:
    """The rights are judged first: a user who may not edit is refused as ``Forbidden``,
    whatever version it names (the version is no oracle of another's changes)."""
    world, portal = any_world, any_world.portal
    with pytest.raises(Forbidden):
        portal.update_profile(
            world.customer_user,
            contact=ContactInfo(email="x@fabrikam.example"),
            expected_version=99,
        )


def test_every_right_is_judged_before_the_version(any_world: World) -> None:
    """An escalation sent with a stale version is the escalation it is: ``Forbidden``,
    recorded as denied by its rule (a monitor of denials sees it), not a stale edit that
    would also tell the user's version. Granting ``FULL`` access one does not hold, and
    moving a partner user's mailbox without the access it holds, each tried both ways."""
    world, portal = any_world, any_world.portal
    partner_admin = world.partner_admin
    plain_admin = portal.create_user(
        partner_admin,
        email="ga@contoso.example",
        display_name="Plain Global Admin",
        admin_role=AdminRole.GLOBAL_ADMIN,
    )
    target = world.partner_agent  # LIMITED partner access
    attempts = [
        lambda v: portal.assign_roles(
            plain_admin, target.id, partner_access=PartnerAccess.FULL, expected_version=v
        ),
        lambda v: portal.update_user(
            plain_admin, target.id, email="mine@contoso.example", expected_version=v
        ),
    ]
    for attempt in attempts:
        for version in (target.version, target.version + 7):
            with pytest.raises(Forbidden) as refused:
                attempt(version)
            last = portal.audit_trail(partner_admin)[-1]
            assert (last.outcome, last.reason) == ("denied", refused.value.decision.reason)


def test_malformed_input_is_judged_before_the_version(any_world: World) -> None:
    """A status no request can have, sent with a stale version, is wrong input (``422``)
    before it is a stale edit."""
    world, portal = any_world, any_world.portal
    ident = _request(world)
    with pytest.raises(ValidationError) as refused:
        portal.update_service_request(
            world.customer_admin, ident, status="reopened", expected_version=99
        )
    assert type(refused.value) is ValidationError
    assert refused.value.field == "status"


def test_removing_a_user_changed_since_is_refused(any_world: World) -> None:
    """A user renamed after the page that offered to remove them was read stays."""
    world, portal = any_world, any_world.portal
    ident = _user(world)
    shown = _find_user(world, ident)
    portal.update_user(world.customer_admin, ident, display_name="Ed Renamed")
    with pytest.raises(StaleVersion):
        portal.remove_user(world.customer_admin, ident, expected_version=shown.version)
    assert _find_user(world, ident) is not None
    portal.remove_user(world.customer_admin, ident, expected_version=shown.version + 1)
    assert _find_user(world, ident) is None
