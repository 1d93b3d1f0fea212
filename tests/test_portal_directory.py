"""The Portal's company and user use cases (F1, F2), and how each refuses bad input.

Every refusal is checked the same way: the right typed error, and a store that is exactly
as before, apart from the audit event that records the failed or denied attempt itself.
The tests run on ``MemoryStore`` (through the plugin's ``partnerkit_world``) and on a
SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from partnerkit import (
    AdminRole,
    ContactInfo,
    Forbidden,
    NotFound,
    PartnerAccess,
    PartnerKitError,
    Permission,
    Portal,
    ValidationError,
)
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FakeClock, StoreSnapshot, World, build_world, snapshot


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The small world of the testing kit, on each store."""
    if request.param == "memory":
        yield request.getfixturevalue("partnerkit_world")
        return
    store = SQLiteStore(tmp_path / "portal.db")
    yield build_world(Portal(store=store, clock=FakeClock()))
    store.close()


def assert_refused(
    world: World,
    call: Callable[[], object],
    error: type[PartnerKitError],
    *,
    audited: tuple[str, str] | None,
) -> PartnerKitError:
    """Run *call*, expect *error*, and check that only the refusal's audit event was added.

    Args:
        audited: the ``(action, outcome)`` of the one event the refusal must leave, or
            ``None`` when no actor is known and nothing may be recorded.
    """
    store = world.portal.store
    before = snapshot(store)
    with pytest.raises(error) as info:
        call()
    after = snapshot(store)
    assert_unchanged(before, after)
    new = after.audit[len(before.audit) :]
    if audited is None:
        assert new == ()
    else:
        assert [(e.action, e.outcome) for e in new] == [audited]
        assert world.portal.verify_audit_trail() == len(after.audit)
    return info.value


def assert_unchanged(before: StoreSnapshot, after: StoreSnapshot) -> None:
    """Companies and users are exactly as before; the old trail is untouched."""
    assert after.companies == before.companies
    assert after.users == before.users
    assert after.audit[: len(before.audit)] == before.audit


# -- the use cases -------------------------------------------------------------------------


def test_a_registered_partner_gets_an_advisor_id_and_a_full_global_admin(world: World) -> None:
    """A partner's first user is its global admin with FULL access; the partner has a public
    advisor id and keeps the contact information given."""
    partner, admin = world.partner, world.partner_admin
    assert partner.is_partner
    assert partner.advisor_id is not None
    assert partner.advisor_id.startswith("PA-")
    assert partner.contact == ContactInfo(email="hello@contoso.example", phone="+1 425 555 0100")
    assert (admin.admin_role, admin.partner_access) == (AdminRole.GLOBAL_ADMIN, PartnerAccess.FULL)
    assert admin.company_id == partner.id


def test_two_partners_get_different_advisor_ids(world: World) -> None:
    """Advisor ids are unique."""
    other, _ = world.portal.register_partner(
        name="Northwind",
        contact=ContactInfo(email="hi@northwind.example"),
        admin_email="admin@northwind.example",
    )
    assert other.advisor_id != world.partner.advisor_id


def test_a_registered_customer_has_its_domain_normalised(world: World) -> None:
    """The domain is stored lower case without a final dot; the first user is a global
    admin without partner access."""
    company, admin = world.portal.register_customer(
        name="Litware", domain="LitWare.Example.", admin_email="it@litware.example"
    )
    assert company.domain == "litware.example"
    assert (admin.admin_role, admin.partner_access) == (AdminRole.GLOBAL_ADMIN, None)


def test_registrations_and_user_changes_are_audited(world: World) -> None:
    """Each change leaves a success event naming the actor, the company and the action."""
    events = world.portal.audit_trail(world.partner_admin)
    assert [(e.action, e.outcome) for e in events] == [
        ("partner.register", "success"),
        ("user.create", "success"),
        ("user.create", "success"),
    ]
    created = events[1]
    assert created.actor_id == world.partner_admin.id
    assert created.company_id == world.partner.id
    assert created.target_id == world.partner_agent.id
    assert created.details == {"admin_role": "none", "partner_access": "limited"}


def test_anyone_in_the_company_reads_its_profile(world: World) -> None:
    """Every user of a company may read its profile; another company's user may not."""
    portal = world.portal
    for user in (world.partner_admin, world.partner_agent, world.partner_billing):
        assert portal.profile(user) == world.partner
    with pytest.raises(Forbidden):
        portal.profile(world.customer_user, world.partner.id)


def test_only_a_global_admin_changes_the_profile(world: World) -> None:
    """The global admin changes the contact information (a new version, audited); a billing
    admin and a partner agent are refused."""
    portal = world.portal
    contact = ContactInfo(email="sales@contoso.example", website="https://contoso.example")
    for actor, reason in [
        (world.partner_billing, "admin-role-lacks-permission"),
        (world.partner_agent, "deny-by-default"),
    ]:
        denied = assert_refused(
            world,
            lambda actor=actor: portal.update_profile(actor, contact=contact),
            Forbidden,
            audited=("profile.update", "denied"),
        )
        assert isinstance(denied, Forbidden)
        assert denied.decision.reason == reason
    updated = portal.update_profile(world.partner_admin, contact=contact, name="Contoso Ltd")
    assert (updated.contact, updated.name) == (contact, "Contoso Ltd")
    assert updated.version == world.partner.version + 1
    assert portal.profile(world.partner_agent) == updated


def test_a_global_admin_creates_assigns_and_removes_users(world: World) -> None:
    """The whole life of a user: created, given a role, removed."""
    portal = world.portal
    user = portal.create_user(
        world.customer_admin, email="eve@fabrikam.example", display_name="Eve"
    )
    assert (user.company_id, user.admin_role, user.version) == (world.customer.id, None, 1)
    user = portal.assign_roles(world.customer_admin, user.id, admin_role=AdminRole.SERVICE_ADMIN)
    assert (user.admin_role, user.version) == (AdminRole.SERVICE_ADMIN, 2)
    assert portal.decide(user, Permission.ADMINISTER_SERVICES, world.customer.id)
    portal.remove_user(world.customer_admin, user.id)
    assert user.id not in {u.id for u in portal.list_users(world.customer_admin)}


def test_a_second_global_admin_may_be_demoted_but_never_the_last(world: World) -> None:
    """With two global admins one may step down; the remaining one may not."""
    portal = world.portal
    second = portal.assign_roles(
        world.customer_admin, world.customer_user.id, admin_role=AdminRole.GLOBAL_ADMIN
    )
    portal.assign_roles(second, world.customer_admin.id, admin_role=None)
    error = assert_refused(
        world,
        lambda: portal.assign_roles(second, second.id, admin_role=AdminRole.BILLING_ADMIN),
        ValidationError,
        audited=("user.assign_roles", "failed"),
    )
    assert isinstance(error, ValidationError)
    assert error.field == "admin_role"
    error = assert_refused(
        world,
        lambda: portal.remove_user(second, second.id),
        ValidationError,
        audited=("user.remove", "failed"),
    )
    assert isinstance(error, ValidationError)
    assert error.field == "user_id"


def test_a_privileged_partner_user_is_managed_only_by_a_global_admin(world: World) -> None:
    """A user-management admin may not remove or change a user who holds partner access."""
    portal = world.portal
    uma = portal.create_user(
        world.partner_admin,
        email="uma@contoso.example",
        display_name="Uma",
        admin_role=AdminRole.USER_MANAGEMENT_ADMIN,
    )
    error = assert_refused(
        world,
        lambda: portal.remove_user(uma, world.partner_agent.id),
        Forbidden,
        audited=("user.remove", "denied"),
    )
    assert isinstance(error, Forbidden)
    assert error.decision.reason == "privileged-partner-user-needs-own-global-admin"
    plain = portal.create_user(uma, email="plain@contoso.example", display_name="Plain")
    portal.remove_user(uma, plain.id)
    portal.remove_user(world.partner_admin, world.partner_agent.id)


def test_a_user_is_edited_within_the_limits_of_manage_users(world: World) -> None:
    """``update_user`` changes e-mail and display name, under ``remove_user``'s rules: a
    user-management admin edits users without an admin role, never a partner user nor an
    admin; a global admin edits anyone of its company."""
    portal = world.portal
    uma = portal.create_user(
        world.partner_admin,
        email="uma@contoso.example",
        display_name="Uma",
        admin_role=AdminRole.USER_MANAGEMENT_ADMIN,
    )
    plain = portal.create_user(uma, email="plain@contoso.example", display_name="Plain")
    edited = portal.update_user(uma, plain.id, display_name="Plain Person")
    assert (edited.display_name, edited.email, edited.version) == (
        "Plain Person",
        "plain@contoso.example",
        plain.version + 1,
    )
    edited = portal.update_user(uma, plain.id, email="p.person@contoso.example")
    assert (edited.email, edited.display_name, edited.version) == (
        "p.person@contoso.example",
        "Plain Person",
        plain.version + 2,
    )
    assert edited in portal.list_users(uma)
    # The old address is free again, the new one taken.
    portal.create_user(uma, email="plain@contoso.example", display_name="Plain Again")
    for target, reason in [
        (world.partner_agent, "privileged-partner-user-needs-own-global-admin"),
        (world.partner_billing, "target-role-outside-actor-limits"),
    ]:
        error = assert_refused(
            world,
            lambda target=target: portal.update_user(uma, target.id, display_name="Renamed"),
            Forbidden,
            audited=("user.update", "denied"),
        )
        assert isinstance(error, Forbidden)
        assert error.decision.reason == reason, target
    agent = portal.update_user(world.partner_admin, world.partner_agent.id, display_name="Lee")
    assert (agent.display_name, agent.partner_access) == ("Lee", PartnerAccess.LIMITED)
    events = [e for e in portal.audit_trail(world.partner_admin) if e.action == "user.update"]
    assert [(e.outcome, e.target_id) for e in events] == [
        ("success", plain.id),
        ("success", plain.id),
        ("denied", world.partner_agent.id),
        ("denied", world.partner_billing.id),
        ("success", world.partner_agent.id),
    ]
    assert events[0].details["changed"] == "display_name"
    assert events[1].details["changed"] == "email"


def test_moving_a_users_email_takes_what_resetting_their_password_takes(world: World) -> None:
    """Whoever reads a user's mailbox can have the password reset: a global admin without
    partner access may rename a FULL partner user but not move its e-mail (no escalation),
    one who holds FULL may; anyone may move their own."""
    portal = world.portal
    ga = portal.create_user(
        world.partner_admin,
        email="gia@contoso.example",
        display_name="Gia",
        admin_role=AdminRole.GLOBAL_ADMIN,
    )
    full = portal.create_user(
        world.partner_admin,
        email="fay@contoso.example",
        display_name="Fay",
        partner_access=PartnerAccess.FULL,
    )
    error = assert_refused(
        world,
        lambda: portal.update_user(ga, full.id, email="gia.too@contoso.example"),
        Forbidden,
        audited=("user.update", "denied"),
    )
    assert isinstance(error, Forbidden)
    assert error.decision.reason == "resetting-a-partner-users-password-takes-the-access-it-holds"
    assert portal.update_user(ga, full.id, display_name="Fay F").display_name == "Fay F"
    moved = portal.update_user(world.partner_admin, full.id, email="fay.f@contoso.example")
    assert moved.email == "fay.f@contoso.example"
    assert portal.update_user(ga, ga.id, email="gia.g@contoso.example").email == (
        "gia.g@contoso.example"
    )
    # An edit form sends every field: the e-mail it already has (in any case) is no move.
    fay = portal.update_user(ga, full.id, email="FAY.F@contoso.example", display_name="Fay G")
    assert (fay.email, fay.display_name) == ("FAY.F@contoso.example", "Fay G")
    same = portal.update_user(ga, full.id, email=fay.email, display_name=fay.display_name)
    assert same == fay
    last = portal.audit_trail(world.partner_admin)[-1]
    assert (last.action, last.outcome, last.details["changed"]) == ("user.update", "success", "")


def test_an_email_of_a_str_subclass_is_unique_by_its_text(world: World) -> None:
    """An address whose own ``casefold`` lies is compared by its text: no second user with
    another's address in other case, and what is stored is plain text."""

    class Email(str):
        def casefold(self) -> str:
            return "unique-" + str.casefold(self)

    portal = world.portal
    taken = world.customer_user.email.upper()
    for call, action in [
        (
            lambda: portal.create_user(world.customer_admin, email=Email(taken), display_name="C"),
            "user.create",
        ),
        (
            lambda: portal.update_user(
                world.customer_admin, world.customer_admin.id, email=Email(taken)
            ),
            "user.update",
        ),
    ]:
        error = assert_refused(world, call, ValidationError, audited=(action, "failed"))
        assert isinstance(error, ValidationError)
        assert error.field == "email"
    made = portal.create_user(
        world.customer_admin, email=Email("new.cy@fabrikam.example"), display_name="Cy"
    )
    assert made.email.__class__ is str


def test_update_user_refuses_bad_input_and_a_taken_email(world: World) -> None:
    """Nothing to change, a malformed value, another user's e-mail in any case: a
    ``ValidationError`` naming the field, and nothing written but the failure's record. A
    user's own address in another case is no clash."""
    portal = world.portal
    admin, user = world.customer_admin, world.customer_user
    for kwargs, field in [
        ({}, "email"),
        ({"email": "not an email"}, "email"),
        ({"email": admin.email.upper()}, "email"),
        ({"display_name": ""}, "display_name"),
        ({"display_name": "x" * 101}, "display_name"),
        ({"display_name": 42}, "display_name"),
        ({"email": "ok@fabrikam.example", "display_name": " padded"}, "display_name"),
    ]:
        error = assert_refused(
            world,
            lambda kwargs=kwargs: portal.update_user(admin, user.id, **kwargs),
            ValidationError,
            audited=("user.update", "failed"),
        )
        assert isinstance(error, ValidationError)
        assert error.field == field, kwargs
    same = portal.update_user(admin, user.id, email=user.email.upper())
    assert same.email == user.email.upper()


def test_update_user_through_a_delegation(world: World) -> None:
    """With ``company_id``, a FULL partner user edits a customer's user through an active
    delegation; without one, or as a LIMITED user, it may not."""
    portal = world.portal
    target = world.customer_user
    error = assert_refused(
        world,
        lambda: portal.update_user(
            world.partner_admin, target.id, display_name="X", company_id=world.customer.id
        ),
        Forbidden,
        audited=("user.update", "denied"),
    )
    assert isinstance(error, Forbidden)
    url = portal.offer_delegated_admin(world.partner_admin)
    portal.redeem(url, world.customer_admin, accept_delegated_admin=True)
    edited = portal.update_user(
        world.partner_admin, target.id, display_name="Edited", company_id=world.customer.id
    )
    assert edited.display_name == "Edited"
    trail = portal.audit_trail(world.customer_admin)
    denied, event = [e for e in trail if e.action == "user.update"]
    assert (denied.outcome, denied.delegation_id) == ("denied", None)
    assert (event.actor_id, event.company_id, event.outcome) == (
        world.partner_admin.id,
        world.customer.id,
        "success",
    )
    assert event.delegation_id is not None
    error = assert_refused(
        world,
        lambda: portal.update_user(
            world.partner_agent, target.id, display_name="Y", company_id=world.customer.id
        ),
        Forbidden,
        audited=("user.update", "denied"),
    )
    assert isinstance(error, Forbidden)


# -- bad input -----------------------------------------------------------------------------

MALFORMED_EMAILS = ["", "plain", "ada@", "ada@example", "a b@example.com", "ada@example.com\n"]
BAD_NAMES = ["", "   ", "x" * 101, " padded", "line\nbreak"]


@pytest.mark.parametrize("email", MALFORMED_EMAILS)
def test_create_user_refuses_a_malformed_email(world: World, email: str) -> None:
    """A malformed e-mail is a ``ValidationError`` naming ``email``; only the failure is
    recorded."""
    error = assert_refused(
        world,
        lambda: world.portal.create_user(world.customer_admin, email=email, display_name="X"),
        ValidationError,
        audited=("user.create", "failed"),
    )
    assert isinstance(error, ValidationError)
    assert error.field == "email"


@pytest.mark.parametrize("name", BAD_NAMES)
def test_create_user_refuses_an_empty_or_overlong_name(world: World, name: str) -> None:
    """A bad display name is a ``ValidationError`` naming ``display_name``."""
    error = assert_refused(
        world,
        lambda: world.portal.create_user(
            world.customer_admin, email="new@fabrikam.example", display_name=name
        ),
        ValidationError,
        audited=("user.create", "failed"),
    )
    assert isinstance(error, ValidationError)
    assert error.field == "display_name"


@pytest.mark.parametrize("name", BAD_NAMES)
def test_profile_update_refuses_a_bad_company_name(world: World, name: str) -> None:
    """A bad company name is a ``ValidationError`` naming ``name``; the profile stays."""
    error = assert_refused(
        world,
        lambda: world.portal.update_profile(world.partner_admin, name=name),
        ValidationError,
        audited=("profile.update", "failed"),
    )
    assert isinstance(error, ValidationError)
    assert error.field == "name"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"admin_email": "not-an-email"}, "admin_email"),
        ({"admin_email": "ADA@Contoso.Example"}, "admin_email"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"admin_name": "y" * 101}, "admin_name"),
        ({"admin_name": ""}, "admin_name"),
        ({"contact": "hello@contoso.example"}, "contact"),
    ],
)
def test_register_partner_refuses_bad_input_and_records_nothing(
    world: World, kwargs: dict[str, object], field: str
) -> None:
    """Registration without a known actor fails with the field named and leaves no trace."""
    args: dict[str, object] = {
        "name": "Northwind",
        "contact": ContactInfo(email="hi@northwind.example"),
        "admin_email": "admin@northwind.example",
    }
    args.update(kwargs)
    error = assert_refused(
        world,
        lambda: world.portal.register_partner(**args),  # type: ignore[arg-type]
        ValidationError,
        audited=None,
    )
    assert isinstance(error, ValidationError)
    assert error.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"domain": "FABRIKAM.example"}, "domain"),
        ({"domain": "fabrikam.example."}, "domain"),
        ({"domain": "not a domain"}, "domain"),
        ({"domain": ""}, "domain"),
        ({"domain": "-bad.example"}, "domain"),
        ({"domain": 42}, "domain"),
        ({"admin_email": "Cy@FABRIKAM.example"}, "admin_email"),
        ({"admin_email": "dee@fabrikam.EXAMPLE"}, "admin_email"),
        ({"admin_email": "lee@contoso.example"}, "admin_email"),
        ({"name": " Litware"}, "name"),
    ],
)
def test_register_customer_refuses_duplicates_and_bad_input(
    world: World, kwargs: dict[str, object], field: str
) -> None:
    """Taken domains and e-mails (in any case) and malformed input are refused, naming the
    field, and nothing is stored."""
    args: dict[str, object] = {
        "name": "Litware",
        "domain": "litware.example",
        "admin_email": "it@litware.example",
    }
    args.update(kwargs)
    error = assert_refused(
        world,
        lambda: world.portal.register_customer(**args),  # type: ignore[arg-type]
        ValidationError,
        audited=None,
    )
    assert isinstance(error, ValidationError)
    assert error.field == field


@pytest.mark.parametrize(
    "email", ["dee@fabrikam.example", "DEE@FABRIKAM.EXAMPLE", "Ada@Contoso.example"]
)
def test_create_user_refuses_an_email_in_use_in_any_case(world: World, email: str) -> None:
    """E-mails are unique across the whole portal, compared case-insensitively."""
    error = assert_refused(
        world,
        lambda: world.portal.create_user(world.customer_admin, email=email, display_name="Dup"),
        ValidationError,
        audited=("user.create", "failed"),
    )
    assert isinstance(error, ValidationError)
    assert error.field == "email"


@pytest.mark.parametrize("use_case", ["assign_roles", "remove_user", "update_user"])
@pytest.mark.parametrize("whom", ["nobody", "other company", "not a string"])
def test_an_unknown_target_is_not_found(world: World, use_case: str, whom: str) -> None:
    """An unknown user id, or one of another company (whose existence is not the actor's to
    know), is ``NotFound``."""
    target = {
        "nobody": "usr_nobody",
        "other company": world.partner_agent.id,
        "not a string": 42,
    }[whom]
    call = getattr(world.portal, use_case)
    action = {
        "assign_roles": "user.assign_roles",
        "remove_user": "user.remove",
        "update_user": "user.update",
    }[use_case]
    extra = {"display_name": "Renamed"} if use_case == "update_user" else {}
    error = assert_refused(
        world,
        lambda: call(world.customer_admin, target, **extra),
        NotFound,
        audited=(action, "failed"),
    )
    assert isinstance(error, NotFound)
    assert isinstance(error, LookupError)
    assert error.kind == "user"


@pytest.mark.parametrize(
    "actor",
    [
        "usr_ghost",
        42,
        None,
    ],
)
def test_an_unknown_actor_is_forbidden(world: World, actor: object) -> None:
    """An actor id that names no user is refused with the rule that says so, and the
    attempt is recorded."""
    error = assert_refused(
        world,
        lambda: world.portal.create_user(actor, email="x@fabrikam.example", display_name="X"),  # type: ignore[arg-type]
        Forbidden,
        audited=("user.create", "denied"),
    )
    assert isinstance(error, Forbidden)
    assert error.decision.reason == "actor-does-not-exist"
    with world.portal.store.unit_of_work(write=False) as uow:
        last = uow.audit_events()[-1]
    # What the caller gave is recorded, shortened: an id, or the object itself.
    assert (
        last.details["unknown_actor"]
        == {"usr_ghost": "usr_ghost", 42: "42", None: "None"}[
            actor  # type: ignore[index]
        ]
    )


def test_a_removed_user_can_no_longer_act(world: World) -> None:
    """The ``User`` object of a removed user is refused as an actor."""
    portal = world.portal
    portal.remove_user(world.partner_admin, world.partner_billing.id)
    error = assert_refused(
        world,
        lambda: portal.profile(world.partner_billing),
        Forbidden,
        audited=("profile.view", "denied"),
    )
    assert isinstance(error, Forbidden)
    assert error.decision.reason == "actor-does-not-exist"


def test_acting_on_an_unknown_company_is_forbidden(world: World) -> None:
    """Creating a user in a company that does not exist is refused like any company the
    actor has no rights in."""
    error = assert_refused(
        world,
        lambda: world.portal.create_user(
            world.partner_admin,
            email="x@contoso.example",
            display_name="X",
            company_id="cmp_nowhere",
        ),
        Forbidden,
        audited=("user.create", "denied"),
    )
    assert isinstance(error, Forbidden)
    assert error.decision.reason == "no-active-delegation"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"admin_role": "global_admin"}, "admin_role"),
        ({"partner_access": "full"}, "partner_access"),
    ],
)
def test_roles_must_be_enum_members(world: World, kwargs: dict[str, object], field: str) -> None:
    """Strings where roles belong are a ``ValidationError``, not a silent no-op."""
    error = assert_refused(
        world,
        lambda: world.portal.assign_roles(
            world.partner_admin,
            world.partner_agent.id,
            **kwargs,  # type: ignore[arg-type]
        ),
        ValidationError,
        audited=("user.assign_roles", "failed"),
    )
    assert isinstance(error, ValidationError)
    assert error.field == field


def test_a_name_that_is_not_valid_unicode_text_is_refused(world: World) -> None:
    """A display name with a lone surrogate cannot be stored anywhere: it is a
    ``ValidationError`` naming the field, on every store alike."""
    error = assert_refused(
        world,
        lambda: world.portal.create_user(
            world.customer_admin, email="x@fabrikam.example", display_name="Bad \ud800 name"
        ),
        ValidationError,
        audited=("user.create", "failed"),
    )
    assert isinstance(error, ValidationError)
    assert error.field == "display_name"
