"""Fixes from a review of the directory and support use cases, on every built-in store.

- A company id that is not a string is a ``ValidationError`` naming the argument, recorded
  in the audit as a failed attempt (it used to escape as a ``TypeError`` and go unrecorded);
  whatever id a caller passes is recorded cut to 64 printable characters.
- A failure record that meets a busy store twice, or a store that is down, is given up: the
  caller sees its own error, with a note that the attempt went unrecorded.
- Removing a user removes the password a reset set for it, and ``verify_password`` answers
  ``False`` for a user who no longer exists.
- Renaming a customer renames it in its partners' searches.
- A service request's title refuses control characters; its description refuses them
  except line feed, carriage return and tab.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from delegation_kit import CustomerCast, PartnerCast, add_customer, add_partner, consent
from delegation_kit import make_portal as _make_portal
from partnerkit import (
    ContactInfo,
    Forbidden,
    NotFound,
    PartnerKitError,
    Portal,
    StoreUnavailable,
    User,
    ValidationError,
)
from partnerkit.audit import AuditEvent
from partnerkit.ports import Store
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FakeClock, sample_catalog, snapshot

pytest_plugins = ["pg_fixtures"]


@pytest.fixture
def store(any_store: Store) -> Store:
    """Each built-in store in turn (``any_store`` in tests/pg_fixtures.py)."""
    return any_store


@pytest.fixture
def portal(store: Store) -> Portal:
    return _make_portal(store, FakeClock(), sample_catalog())


@pytest.fixture
def partner(portal: Portal) -> PartnerCast:
    return add_partner(portal, "Contoso", "contoso")


@pytest.fixture
def customer(portal: Portal) -> CustomerCast:
    return add_customer(portal, "Fabrikam", "fabrikam.example", roles=(None,))


def _events(portal: Portal) -> list[AuditEvent]:
    with portal.store.unit_of_work(write=False) as uow:
        return uow.audit_events()


def _refused(
    portal: Portal, call: Callable[[], object], error: type[PartnerKitError]
) -> tuple[PartnerKitError, AuditEvent]:
    """Run *call*, expect *error*; check that nothing but one audit event was written, and
    return the error and that event."""
    before = snapshot(portal.store)
    with pytest.raises(error) as info:
        call()
    after = snapshot(portal.store)
    assert (after.companies, after.users) == (before.companies, before.users)
    [event] = after.audit[len(before.audit) :]
    assert portal.verify_audit_trail() == len(after.audit)
    return info.value, event


# -- B1: company ids that are not strings ----------------------------------------------

#: Every use case that takes a company id, called by the customer's global admin ``kim``
#: with *bad* for it; and the name of the argument.
_WITH_COMPANY_ID: dict[str, tuple[str, str, Callable[[Portal, User, User, Any], object]]] = {
    "profile": ("profile.view", "company_id", lambda p, kim, dee, bad: p.profile(kim, bad)),
    "update_profile": (
        "profile.update",
        "company_id",
        lambda p, kim, dee, bad: p.update_profile(kim, name="X", company_id=bad),
    ),
    "list_users": ("user.list", "company_id", lambda p, kim, dee, bad: p.list_users(kim, bad)),
    "create_user": (
        "user.create",
        "company_id",
        lambda p, kim, dee, bad: p.create_user(
            kim, email="new@fabrikam.example", display_name="New", company_id=bad
        ),
    ),
    "assign_roles": (
        "user.assign_roles",
        "company_id",
        lambda p, kim, dee, bad: p.assign_roles(kim, dee.id, company_id=bad),
    ),
    "remove_user": (
        "user.remove",
        "company_id",
        lambda p, kim, dee, bad: p.remove_user(kim, dee.id, company_id=bad),
    ),
    "audit_trail": ("audit.read", "company_id", lambda p, kim, dee, bad: p.audit_trail(kim, bad)),
    "reset_password": (
        "user.reset_password",
        "customer_id",
        lambda p, kim, dee, bad: p.reset_password(kim, bad, dee.id),
    ),
    "create_service_request": (
        "service_request.create",
        "customer_id",
        lambda p, kim, dee, bad: p.create_service_request(kim, bad, title="Help"),
    ),
    "list_service_requests": (
        "service_request.list",
        "customer_id",
        lambda p, kim, dee, bad: p.list_service_requests(kim, bad),
    ),
    "list_delegations": (
        "delegation.list",
        "company_id",
        lambda p, kim, dee, bad: p.list_delegations(kim, bad),
    ),
    "list_subscriptions": (
        "subscription.list",
        "company_id",
        lambda p, kim, dee, bad: p.list_subscriptions(kim, bad),
    ),
}


@pytest.mark.parametrize("bad", [{}, [1], 7], ids=["dict", "list", "int"])
@pytest.mark.parametrize("use_case", sorted(_WITH_COMPANY_ID))
def test_a_company_id_that_is_not_a_string_is_refused_and_recorded(
    portal: Portal, customer: CustomerCast, use_case: str, bad: object
) -> None:
    """SPEC 3 and F7: a typed error naming the argument, nothing written, and the attempt
    recorded as failed, with the id shown as its short ``repr``."""
    action, field, call = _WITH_COMPANY_ID[use_case]
    kim, dee = customer.admin, customer.by_role[None]
    error, event = _refused(portal, lambda: call(portal, kim, dee, bad), ValidationError)
    assert isinstance(error, ValidationError)
    assert error.field == field
    assert (event.action, event.outcome, event.reason) == (action, "failed", f"invalid-{field}")
    assert (event.actor_id, event.company_id) == (kim.id, repr(bad))


@pytest.mark.parametrize(
    "use_case", ["reset_password", "create_service_request"], ids=lambda u: str(u)
)
def test_a_required_customer_id_may_not_be_none(
    portal: Portal, customer: CustomerCast, use_case: str
) -> None:
    """Where the signature asks for a customer id, ``None`` is refused like any non-string
    (it used to stand for the actor's own company)."""
    action, field, call = _WITH_COMPANY_ID[use_case]
    kim, dee = customer.admin, customer.by_role[None]
    error, event = _refused(portal, lambda: call(portal, kim, dee, None), ValidationError)
    assert isinstance(error, ValidationError)
    assert error.field == field == "customer_id"
    assert (event.action, event.outcome, event.company_id) == (action, "failed", "None")


def test_a_long_company_id_is_recorded_cut_to_64_characters(
    portal: Portal, customer: CustomerCast
) -> None:
    """A denied attempt on a company id of 10,000 characters records 64 of them."""
    long_id = "cmp_" + "x" * 10_000
    _, event = _refused(portal, lambda: portal.list_users(customer.admin, long_id), Forbidden)
    assert (event.action, event.outcome) == ("user.list", "denied")
    assert event.company_id == long_id[:64]


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        ("cmp_a\x00b", "cmp_a\\x00b"),
        ("cmp_\ud800", "cmp_\\ud800"),
        ("cmp_\x1b[31m", "cmp_\\x1b[31m"),
    ],
    ids=["nul", "lone-surrogate", "escape"],
)
def test_an_unstorable_company_id_is_recorded_escaped(
    portal: Portal, customer: CustomerCast, bad: str, shown: str
) -> None:
    """Text a store cannot keep (a NUL for PostgreSQL, a lone surrogate for every SQL store)
    or should not show raw (a terminal escape) is recorded escaped: the refusal is
    recorded on every store, whatever error the store gives for the id itself."""
    before = len(_events(portal))
    with pytest.raises(PartnerKitError):
        portal.profile(customer.admin, bad)
    [event] = _events(portal)[before:]
    assert (event.action, event.actor_id, event.company_id) == (
        "profile.view",
        customer.admin.id,
        shown,
    )
    assert event.outcome in ("denied", "failed")


@pytest.mark.parametrize(
    "bad", [{}, [1], 7, None, "usr_" + "y" * 500], ids=["dict", "list", "int", "none", "long"]
)
def test_other_ids_of_every_kind_are_not_found_and_recorded(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, bad: object
) -> None:
    """User, delegation, service request, subscription, offer and link ids of any type are
    ``NotFound`` (as they were), and the attempt is recorded with the id cut to 64."""
    kim, ana = customer.admin, partner.admin
    calls: list[tuple[str, Callable[[], object]]] = [
        ("user", lambda: portal.assign_roles(kim, bad)),  # type: ignore[arg-type]
        ("user", lambda: portal.remove_user(kim, bad)),  # type: ignore[arg-type]
        ("user", lambda: portal.reset_password(kim, customer.company.id, bad)),  # type: ignore[arg-type]
        ("service request", lambda: portal.update_service_request(kim, bad, status="closed")),  # type: ignore[arg-type]
        ("delegation", lambda: portal.accept_delegation(kim, bad)),  # type: ignore[arg-type]
        ("delegation", lambda: portal.revoke_delegation(kim, bad)),  # type: ignore[arg-type]
        ("delegation", lambda: portal.end_delegation(ana, bad)),  # type: ignore[arg-type]
        ("subscription", lambda: portal.change_licenses(kim, bad, 3)),  # type: ignore[arg-type]
        ("purchase offer", lambda: portal.withdraw_offer(ana, bad)),  # type: ignore[arg-type]
        ("link", lambda: portal.revoke_link(ana, bad)),  # type: ignore[arg-type]
    ]
    shown = bad[:64] if isinstance(bad, str) else repr(bad)
    for kind, call in calls:
        error, event = _refused(portal, call, NotFound)
        assert isinstance(error, NotFound)
        assert error.kind == kind
        assert event.outcome == "failed"
        assert event.target_id == shown


# -- the failure record given up on a busy store ---------------------------------------


def test_a_failure_record_on_a_busy_store_gives_way_to_the_callers_error(
    tmp_path: Path,
) -> None:
    """While another connection holds the SQLite file's write lock, a denied read still
    raises its ``Forbidden``: recording the denial is tried twice, then given up (it used
    to raise the second ``Conflict`` instead)."""
    path = tmp_path / "busy.db"
    store = SQLiteStore(path, timeout=0.05)
    try:
        portal = _make_portal(store)
        customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=())
        other = add_customer(portal, "Tailspin", "tailspin.example", roles=())
        before = len(_events(portal))
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(Forbidden) as raised:
                portal.profile(customer.admin, other.company.id)
        finally:
            holder.rollback()
            holder.close()
        # ... and says that the attempt went unrecorded, and why.
        (note,) = raised.value.__notes__
        assert "not in the audit trail" in note
        assert "Conflict" in note
        # Free again: the next denial is recorded as usual.
        with pytest.raises(Forbidden):
            portal.profile(customer.admin, other.company.id)
        assert [e.outcome for e in _events(portal)[before:]] == ["denied"]
    finally:
        store.close()


def test_a_failure_record_on_a_store_that_is_down_gives_way_to_the_callers_error(
    tmp_path: Path,
) -> None:
    """A store that fails to open the record's unit of work (``StoreUnavailable``) does not
    replace the denial either (it used to): the caller gets its ``Forbidden``, noted as
    unrecorded; once the store is back, denials are recorded again."""
    store = SQLiteStore(tmp_path / "down.db")
    try:
        portal = _make_portal(store)
        customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=())
        other = add_customer(portal, "Tailspin", "tailspin.example", roles=())
        before = len(_events(portal))
        original = store.unit_of_work

        def unit_of_work(*, write: bool = True) -> Any:
            if write:
                raise StoreUnavailable("the database went away")
            return original(write=write)

        store.unit_of_work = unit_of_work  # type: ignore[method-assign]
        try:
            with pytest.raises(Forbidden) as raised:
                portal.profile(customer.admin, other.company.id)
        finally:
            del store.unit_of_work
        (note,) = raised.value.__notes__
        assert "not in the audit trail" in note
        assert "the database went away" in note
        assert len(_events(portal)) == before
        with pytest.raises(Forbidden) as again:
            portal.profile(customer.admin, other.company.id)
        assert not getattr(again.value, "__notes__", None)
        assert [e.outcome for e in _events(portal)[before:]] == ["denied"]
    finally:
        store.close()


def test_a_failure_record_that_meets_conflict_once_is_retried(tmp_path: Path) -> None:
    """A lock released between the two tries: the second records the denial."""
    path = tmp_path / "busy.db"
    store = SQLiteStore(path, timeout=0.05)
    try:
        portal = _make_portal(store)
        customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=())
        other = add_customer(portal, "Tailspin", "tailspin.example", roles=())
        before = len(_events(portal))
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        original = store.unit_of_work
        tries: list[bool] = []

        def unit_of_work(*, write: bool = True) -> Any:
            if write:
                tries.append(True)
                if len(tries) == 2:  # the retry: the other writer is done by then
                    holder.rollback()
            return original(write=write)

        store.unit_of_work = unit_of_work  # type: ignore[method-assign]
        try:
            with pytest.raises(Forbidden):
                portal.profile(customer.admin, other.company.id)
        finally:
            holder.close()
        assert len(tries) == 2
        assert [e.outcome for e in _events(portal)[before:]] == ["denied"]
    finally:
        store.close()


# -- B2: a removed user's password -----------------------------------------------------


def test_a_removed_users_temporary_password_no_longer_verifies(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """Removing a user removes the credential a reset stored, in the same unit of work."""
    consent(portal, partner.admin, customer)
    kim, dee = customer.admin, customer.by_role[None]
    reset = portal.reset_password(partner.full, customer.company.id, dee.id)
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.credentials.get(dee.id) is not None  # unused: it would sign in
    portal.remove_user(kim, dee.id)
    assert not portal.verify_password(dee.id, reset.temporary_password)
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.credentials.get(dee.id) is None
        assert uow.credentials.find(company_id=customer.company.id) == []


def test_a_user_removed_without_a_reset_is_removed_as_before(
    portal: Portal, customer: CustomerCast
) -> None:
    """No credential to remove: removing the user is not refused."""
    dee = customer.by_role[None]
    portal.remove_user(customer.admin, dee.id)
    with pytest.raises(NotFound):
        portal.remove_user(customer.admin, dee.id)


def test_a_credential_whose_user_is_gone_does_not_verify(
    portal: Portal, customer: CustomerCast
) -> None:
    """A credential left behind (by a store written before this fix) verifies nothing: the
    user must exist."""
    kim, dee = customer.admin, customer.by_role[None]
    reset = portal.reset_password(kim, customer.company.id, dee.id)
    with portal.store.unit_of_work() as uow:  # remove the user only, as the old code did
        user = uow.users.get(dee.id)
        assert user is not None
        uow.users.remove(user)
        uow.commit()
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.credentials.get(dee.id) is not None
    assert not portal.verify_password(dee.id, reset.temporary_password)


@pytest.mark.parametrize("user_id", [None, 7, {}, ["usr_x"]], ids=["none", "int", "dict", "list"])
def test_verify_password_answers_false_for_an_id_that_is_not_a_string(
    portal: Portal, user_id: object
) -> None:
    assert portal.verify_password(user_id, "whatever-password") is False  # type: ignore[arg-type]


# -- B3: renaming a customer -----------------------------------------------------------


@pytest.fixture
def renamed(portal: Portal) -> CustomerCast:
    """A customer whose domain does not start as its name does, so that a search by the
    old name cannot find it by its domain."""
    return add_customer(portal, "Fabrikam", "fbk.example", roles=())


def _found(portal: Portal, searcher: User, prefix: str) -> list[str]:
    return [c.name for c in portal.find_customers(searcher, prefix)]


def test_a_renamed_customer_is_found_by_its_new_name_only(
    portal: Portal, partner: PartnerCast, renamed: CustomerCast
) -> None:
    """SPEC F6: the search is on the company's name: after a rename, the new one, for
    every partner related to the customer."""
    consent(portal, partner.admin, renamed)
    other = add_partner(portal, "Litware", "litware")
    consent(portal, other.admin, renamed)
    assert _found(portal, partner.admin, "fab") == ["Fabrikam"]
    company = portal.update_profile(renamed.admin, name="Northwind")
    assert company.name == "Northwind"
    for searcher in (partner.admin, partner.limited, other.admin):
        assert _found(portal, searcher, "north") == ["Northwind"]
        assert _found(portal, searcher, "NORTHW") == ["Northwind"]
        assert _found(portal, searcher, "fab") == []
        assert _found(portal, searcher, "fbk.ex") == ["Northwind"]  # the domain stays


def test_a_rename_through_a_delegation_renames_the_search_too(
    portal: Portal, partner: PartnerCast, renamed: CustomerCast
) -> None:
    """The partner's FULL user edits the profile on the customer's behalf."""
    consent(portal, partner.admin, renamed)
    portal.update_profile(partner.full, name="Northwind", company_id=renamed.company.id)
    assert _found(portal, partner.full, "north") == ["Northwind"]
    assert _found(portal, partner.full, "fab") == []


def test_a_search_page_walk_orders_by_the_new_name(
    portal: Portal, partner: PartnerCast, renamed: CustomerCast
) -> None:
    """The ordering (by name) and the ``after`` cursor follow the rename."""
    alpha = add_customer(portal, "Alpha", "alpha.example", roles=())
    consent(portal, partner.admin, alpha)
    consent(portal, partner.admin, renamed)
    assert _found(portal, partner.admin, "") == ["Alpha", "Fabrikam"]
    portal.update_profile(renamed.admin, name="Aardvark")
    assert _found(portal, partner.admin, "") == ["Aardvark", "Alpha"]
    [first] = portal.find_customers(partner.admin, "", limit=1)
    assert first.name == "Aardvark"
    assert [c.name for c in portal.find_customers(partner.admin, "", after=first.id)] == ["Alpha"]


def test_a_refused_rename_changes_no_search(
    portal: Portal, partner: PartnerCast, renamed: CustomerCast
) -> None:
    """A bad name is refused and nothing is written: the old name is still found."""
    consent(portal, partner.admin, renamed)
    with pytest.raises(ValidationError):
        portal.update_profile(renamed.admin, name="North\x00wind")
    assert _found(portal, partner.admin, "fab") == ["Fabrikam"]
    assert _found(portal, partner.admin, "north") == []


def test_changing_only_the_contact_leaves_the_search_alone(
    portal: Portal, partner: PartnerCast, renamed: CustomerCast
) -> None:
    consent(portal, partner.admin, renamed)
    portal.update_profile(renamed.admin, contact=ContactInfo(email="it@fbk.example"))
    assert _found(portal, partner.admin, "fab") == ["Fabrikam"]


# -- B5: control characters in service requests ----------------------------------------


@pytest.mark.parametrize(
    "title",
    ["a\x00b", "red \x1b[31m alert", "two\nlines", "tab\there", "del\x7f", "csi\x9b31m"],
    ids=["nul", "escape", "newline", "tab", "del", "c1"],
)
def test_a_title_with_a_control_character_is_refused(
    portal: Portal, customer: CustomerCast, title: str
) -> None:
    kim = customer.admin
    error, event = _refused(
        portal,
        lambda: portal.create_service_request(kim, customer.company.id, title=title),
        ValidationError,
    )
    assert isinstance(error, ValidationError)
    assert error.field == "title"
    assert (event.outcome, event.reason) == ("failed", "invalid-title")
    assert portal.list_service_requests(kim, customer.company.id) == []


@pytest.mark.parametrize(
    "description",
    ["a\x00b", "red \x1b[31m alert", "bell\x07", "form\x0cfeed", "del\x7f", "csi\x9b31m"],
    ids=["nul", "escape", "bell", "form-feed", "del", "c1"],
)
def test_a_description_with_a_control_character_is_refused(
    portal: Portal, customer: CustomerCast, description: str
) -> None:
    kim = customer.admin
    error, _ = _refused(
        portal,
        lambda: portal.create_service_request(
            kim, customer.company.id, title="Mail is down", description=description
        ),
        ValidationError,
    )
    assert isinstance(error, ValidationError)
    assert error.field == "description"
    assert portal.list_service_requests(kim, customer.company.id) == []


def test_a_description_keeps_its_line_breaks_and_tabs(
    portal: Portal, customer: CustomerCast
) -> None:
    text = "Since 9:00:\r\n\t- no mail\n\t- no calendar\r\nÜber alles: 😀"
    request = portal.create_service_request(
        customer.admin, customer.company.id, title="Mail is down", description=text
    )
    [stored] = portal.list_service_requests(customer.admin, customer.company.id)
    assert stored.description == request.description == text


def test_a_request_stored_before_the_rule_can_still_be_updated_and_closed(
    portal: Portal, store: Store, customer: CustomerCast
) -> None:
    """The rule is checked where a request is written, so a request an earlier version
    stored with a tab in its title and a bell in its description is read, updated and
    closed as before (its text unchanged)."""
    kim = customer.admin
    made = portal.create_service_request(kim, customer.company.id, title="Mail down")
    with store.unit_of_work() as uow:
        old = attrs.evolve(made, title="Mail\tdown", description="bell\x07", version=2)
        uow.service_requests.update(old)
        uow.commit()
    changed = portal.update_service_request(kim, made.id, severity="critical")
    closed = portal.update_service_request(kim, made.id, status="closed")
    assert (changed.title, changed.description) == ("Mail\tdown", "bell\x07")
    assert closed.status.value == "closed"
