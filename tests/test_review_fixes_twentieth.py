"""Fixes from the twentieth session's reviews: a storefront and key-management integrator,
a PostgreSQL operator, and a red team on races and links."""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from delegation_kit import (
    CustomerCast,
    PartnerCast,
    add_customer,
    add_partner,
    consent,
    make_portal,
)
from partnerkit import (
    AdminRole,
    ContactInfo,
    InvalidLink,
    InvalidState,
    Keyring,
    LinkKind,
    OfferLine,
    OfferStatus,
    PartnerAccess,
    PartnerKitError,
    Portal,
    ValidationError,
)
from partnerkit.links import code_from_url
from partnerkit.ports import Store
from partnerkit.stores._sql import ADDED_COLUMNS
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SCHEMA_VERSION, SQLiteStore
from partnerkit.testing import FakeClock, sample_catalog

pytest_plugins = ["pg_fixtures", "cast_fixtures"]

CONTACT = ContactInfo(email="hello@contoso.example")


def _flip_last_signature_char(code: str) -> str:
    head, payload, signature = code.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 1
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return f"{head}.{payload}.{forged}"


def _hidden(error: BaseException) -> bool:
    """No other exception shows through *error*: neither as its cause nor as its context."""
    return error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "ed25519"])
def test_a_refused_code_shows_no_dependency_error_behind_it(algorithm: str) -> None:
    """SPEC 3: no exception of cryptography, base64 or urllib reaches a caller, not even
    as the context of the ``InvalidLink`` (a logged traceback told "a known key, a wrong
    signature" from every other refusal by the cryptography error behind it)."""
    ring = Keyring.generate(algorithm)  # type: ignore[arg-type]
    portal = Portal(store=MemoryStore(), keyring=ring, catalog=sample_catalog())
    _, admin = portal.register_partner(
        name="Contoso", contact=CONTACT, admin_email="ada@contoso.example"
    )
    url = portal.create_trial_invitation(admin, "EXCHANGE", False)
    code = code_from_url(url)
    forged = _flip_last_signature_char(code)
    head, payload, signature = code.split(".")
    attempts = [
        lambda: ring.verify(forged),
        lambda: ring.verify(forged, kind=LinkKind.TRIAL_INVITATION),
        lambda: portal.inspect_link(f"https://portal.example/join?code={forged}"),
        lambda: ring.verify(f"{head}.{payload[:-1]}!.{signature}"),
        lambda: ring.verify(f"{head}.{payload}.{signature[:-2]}"),
        lambda: code_from_url("https://[::1/join?code=" + code),
        lambda: portal.inspect_link("https://[::1/join?code=" + code),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidLink) as info:
            attempt()
        assert type(info.value) is InvalidLink
        assert _hidden(info.value), repr(info.value.__context__)


@pytest.mark.parametrize(
    ("part", "bad"),
    [
        ("keyring", '{"format": 1}'),  # the ring's JSON text, not the ring
        ("keyring", None),
        ("catalog", [{"sku": "EXCHANGE"}]),
        ("store", "portal.db"),
        ("clock", "2026-01-01T00:00:00Z"),
        ("base_url", "ftp://portal.example/join"),
        ("base_url", 5),
        ("password_hasher", object()),
        ("temporary_password_lifetime", timedelta.max),
        ("temporary_password_lifetime", 3600),
        ("conflict_retries", -1),
        ("conflict_retries", 1.0),
    ],
)
def test_a_running_portals_parts_are_checked_when_replaced(part: str, bad: object) -> None:
    """docs/links.md reloads a key ring by assigning ``portal.keyring``: an assignment of
    the wrong thing is refused then, naming the part, and the Portal keeps the part it had
    (before, the next use case failed with an ``AttributeError`` from inside, unaudited)."""
    portal = Portal(store=MemoryStore(), catalog=sample_catalog())
    before = getattr(portal, part)
    with pytest.raises(ValidationError) as info:
        setattr(portal, part, bad)
    assert info.value.field == part
    assert getattr(portal, part) is before
    _, admin = portal.register_partner(
        name="Contoso", contact=CONTACT, admin_email="ada@contoso.example"
    )
    portal.inspect_link(portal.create_trial_invitation(admin, "EXCHANGE", False))


def test_a_replaced_part_of_its_kind_is_taken_as_given() -> None:
    """A reloaded ring is used from the next call; a base URL given as a ``str`` subclass
    is kept as its plain text, as the constructor keeps it."""

    class Url(str):
        pass

    portal = Portal(store=MemoryStore(), catalog=sample_catalog())
    _, admin = portal.register_partner(
        name="Contoso", contact=CONTACT, admin_email="ada@contoso.example"
    )
    old = portal.create_trial_invitation(admin, "EXCHANGE", False)
    reloaded = Keyring.from_json(portal.keyring.to_json())
    reloaded.rotate()
    portal.keyring = reloaded
    portal.base_url = Url("https://partners.example/join")
    assert type(portal.base_url) is str
    new = portal.create_trial_invitation(admin, "EXCHANGE", False)
    assert new.startswith("https://partners.example/join?code=")
    assert portal.inspect_link(old).key_id != portal.inspect_link(new).key_id


# -- a temporary password does not come back with a later right (red team) --------------------


@pytest.fixture
def cast_portal(any_store: Store, clock: FakeClock) -> Portal:
    return make_portal(any_store, clock, sample_catalog())


def _reset_by_delegate(portal: Portal, partner: PartnerCast, customer: CustomerCast) -> str:
    return portal.reset_password(
        partner.full, customer.company.id, customer.by_role[None].id
    ).temporary_password


@pytest.mark.parametrize("how", ["revoke", "end", "expire"])
def test_a_password_set_through_a_delegation_stays_void_under_a_new_consent(
    cast_portal: Portal, clock: FakeClock, how: str
) -> None:
    """F5: a revoked relationship grants nothing from that instant. A temporary password a
    delegate set signs in only while that delegation stands; the customer's later consent
    to the same partner (a new delegation) does not bring it back."""
    portal = cast_portal
    partner = add_partner(portal, "Contoso", "contoso")
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    duration = timedelta(days=2) if how == "expire" else None
    first = consent(portal, partner.admin, customer, duration=duration)
    password = _reset_by_delegate(portal, partner, customer)
    if how == "revoke":
        portal.revoke_delegation(customer.admin, first.id)
    elif how == "end":
        portal.end_delegation(partner.admin, first.id)
    else:
        clock.advance(timedelta(days=2))
    user_id = customer.by_role[None].id
    assert portal.verify_password(user_id, password) is False
    consent(portal, partner.admin, customer)  # a new consent, all five roles
    assert portal.verify_password(user_id, password) is False
    # A reset through the new delegation signs in, once.
    again = _reset_by_delegate(portal, partner, customer)
    assert portal.verify_password(user_id, password) is False
    assert portal.verify_password(user_id, again) is True
    assert portal.verify_password(user_id, again) is False


def test_a_password_set_through_a_standing_delegation_signs_in(cast_portal: Portal) -> None:
    """While the delegation the reset was made through stands, its password signs in."""
    portal = cast_portal
    partner = add_partner(portal, "Contoso", "contoso")
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    consent(portal, partner.admin, customer)
    password = _reset_by_delegate(portal, partner, customer)
    assert portal.verify_password(customer.by_role[None].id, password) is True


@pytest.mark.parametrize("where", ["own company", "through a delegation"])
def test_a_change_of_the_setters_roles_voids_its_passwords_for_good(
    cast_portal: Portal, where: str
) -> None:
    """A user-management admin resets a password and is demoted; a partner user's access
    is taken away. Given the right back, the password they set stays void: the change
    forgot it (and the trail says so), and the removal of the setter does the same."""
    portal = cast_portal
    partner = add_partner(portal, "Contoso", "contoso")
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    target = customer.by_role[None]
    if where == "own company":
        setter, admin = customer.by_role[AdminRole.USER_MANAGEMENT_ADMIN], customer.admin
        password = portal.reset_password(setter, customer.company.id, target.id)
        portal.assign_roles(admin, setter.id, admin_role=None)
        portal.assign_roles(admin, setter.id, admin_role=AdminRole.USER_MANAGEMENT_ADMIN)
    else:
        consent(portal, partner.admin, customer)
        setter, admin = partner.full, partner.admin
        password = portal.reset_password(setter, customer.company.id, target.id)
        portal.assign_roles(admin, setter.id, partner_access=PartnerAccess.LIMITED)
        portal.assign_roles(admin, setter.id, partner_access=PartnerAccess.FULL)
    [change] = [
        e
        for e in portal.audit_trail(admin)
        if e.action == "user.assign_roles" and e.target_id == setter.id
    ][-2:-1]
    assert change.details.get("voided_temporary_passwords") == "1"
    assert portal.verify_password(target.id, password.temporary_password) is False
    # Removing the setter forgets what it set since, and says so.
    again = portal.reset_password(setter, customer.company.id, target.id)
    portal.remove_user(admin, setter.id)
    assert portal.verify_password(target.id, again.temporary_password) is False
    [removal] = [e for e in portal.audit_trail(admin) if e.action == "user.remove"]
    assert removal.details.get("voided_temporary_passwords") == "1"
    # Each password forgotten is on the trail of its user's company, with why.
    voids = [
        (e.target_id, e.details["why"], e.actor_id)
        for e in portal.audit_trail(customer.admin)
        if e.action == "user.temporary_password.void"
    ]
    assert voids == [
        (target.id, "setter-roles-changed", admin.id),
        (target.id, "setter-removed", admin.id),
    ]


def _passwords_before_version_6(store: Store) -> tuple[Portal, dict[str, tuple[str, str]]]:
    """Temporary passwords: one set under a consent since revoked (the customer has
    consented again since), one under the standing consent, one within the company, and
    two whose setter's or user's role was changed and given back since."""
    clock = FakeClock()
    portal = make_portal(store, clock, sample_catalog())
    partner = add_partner(portal, "Contoso", "contoso")
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    users = customer.by_role
    first = consent(portal, partner.admin, customer)
    clock.advance(timedelta(minutes=1))
    old = portal.reset_password(partner.full, customer.company.id, users[None].id)
    clock.advance(timedelta(minutes=1))
    portal.revoke_delegation(customer.admin, first.id)
    # The new consent is stamped by an app server whose clock runs behind, before the
    # reset's time: the trail's order, not the times, says it came after the reset.
    clock.set(clock() - timedelta(minutes=3))
    consent(portal, partner.admin, customer)
    clock.advance(timedelta(minutes=5))
    now = portal.reset_password(
        partner.limited, customer.company.id, users[AdminRole.PASSWORD_ADMIN].id
    )
    own = portal.reset_password(
        customer.admin, customer.company.id, users[AdminRole.BILLING_ADMIN].id
    )
    # Two a role given back brought back before version 6 (whose code forgets them when
    # the role changes: put back here as that code left them, with the trail's events).
    setter, admin = users[AdminRole.USER_MANAGEMENT_ADMIN], customer.admin
    plain = [
        portal.create_user(admin, email=f"plain{n}@fabrikam.example", display_name="P")
        for n in range(2)
    ]
    setter_toggled = portal.reset_password(setter, customer.company.id, plain[0].id)
    user_toggled = portal.reset_password(admin, customer.company.id, plain[1].id)
    with store.unit_of_work(write=False) as uow:
        kept = [uow.credentials.get(u.id) for u in plain]
    # The second change is stamped by an app server whose clock runs 30 s behind: the
    # trail's order, not its times, says it came after the reset.
    clock.advance(timedelta(minutes=1))
    portal.assign_roles(admin, setter.id, admin_role=None)
    portal.assign_roles(admin, setter.id, admin_role=AdminRole.USER_MANAGEMENT_ADMIN)
    clock.set(clock() - timedelta(seconds=90))
    portal.assign_roles(admin, plain[1].id, admin_role=AdminRole.PASSWORD_ADMIN)
    portal.assign_roles(admin, plain[1].id, admin_role=None)
    clock.advance(timedelta(minutes=2))
    # An offer whose link was revoked before version 6 stayed open.
    _, offer = portal.create_purchase_offer(partner.full, [OfferLine("EXCHANGE", 5)], False)
    portal.revoke_link(partner.full, offer.link_id)
    with store.unit_of_work() as uow:
        for credential in kept:
            assert credential is not None
            if uow.credentials.get(credential.id) is None:
                uow.credentials.add(attrs.evolve(credential, version=1))
        uow.purchase_offers.update(attrs.evolve(offer, version=offer.version + 2))
        uow.commit()
    found = {
        name: (reset.user_id, reset.temporary_password)
        for name, reset in [
            ("old", old),
            ("now", now),
            ("own", own),
            ("setter toggled", setter_toggled),
            ("user toggled", user_toggled),
        ]
    }
    found["offer"] = (offer.id, "")
    return portal, found


#: What signs in once a version 5 store is opened by this code.
AFTER_VERSION_6 = {
    "old": False,
    "now": True,
    "own": True,
    "setter toggled": False,
    "user toggled": False,
    "offer": False,  # withdrawn: its link was revoked
}


def _back_to_version_5(execute: Callable[[str], object]) -> None:
    for table, column in ADDED_COLUMNS[6]:
        execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    execute("DROP INDEX credentials_ix_set_by")
    execute("DELETE FROM schema_version WHERE version > 5")


def _signs_in(portal: Portal, found: dict[str, tuple[str, str]]) -> dict[str, bool]:
    """Whether each password signs in; for ``"offer"``, whether that offer is still open."""
    answers = {n: portal.verify_password(*pair) for n, pair in found.items() if n != "offer"}
    with portal.store.unit_of_work(write=False) as uow:
        offer = uow.purchase_offers.get(found["offer"][0])
    assert offer is not None
    answers["offer"] = offer.status is OfferStatus.OPEN
    return answers


def test_opening_a_version_5_sqlite_file_ties_passwords_to_their_delegations(
    tmp_path: Path,
) -> None:
    """Schema version 6 adds the column and the index, and ties each password a delegate
    set to the delegation that was standing when it was set: the one set under the revoked
    consent stops signing in, the others sign in as before."""
    path = tmp_path / "v5.db"
    store = SQLiteStore(path)
    portal, found = _passwords_before_version_6(store)
    store.close()
    raw = sqlite3.connect(path)
    _back_to_version_5(raw.execute)
    raw.commit()
    raw.close()
    reopened = SQLiteStore(path)
    try:
        assert reopened.schema_version() == SCHEMA_VERSION == 6
        portal.store = reopened
        assert _signs_in(portal, found) == AFTER_VERSION_6
    finally:
        reopened.close()
    raw = sqlite3.connect(path)
    indexes = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    raw.close()
    assert "credentials_ix_set_by" in indexes


def test_opening_a_version_5_postgres_database_ties_passwords_to_their_delegations(
    empty_dsn: str,
) -> None:
    psycopg = pytest.importorskip("psycopg")
    from partnerkit.stores.postgres import PostgresStore

    store = PostgresStore(empty_dsn)
    try:
        portal, found = _passwords_before_version_6(store)
    finally:
        store.close()
    with psycopg.connect(empty_dsn, autocommit=True) as raw:
        _back_to_version_5(raw.execute)
    reopened = PostgresStore(empty_dsn)
    try:
        assert reopened.schema_version() == 6
        portal.store = reopened
        assert _signs_in(portal, found) == AFTER_VERSION_6
    finally:
        reopened.close()
    with psycopg.connect(empty_dsn) as raw:
        names = {r[0] for r in raw.execute("SELECT indexname FROM pg_indexes").fetchall()}
    assert "credentials_ix_set_by" in names


# -- PostgreSQL reads its schema_version table as SQLite does (an operator's review) -----------


@pytest.mark.parametrize(
    ("column", "held"),
    [
        ("varchar(50)", ["1", "2", "3", "4", "5"]),  # another tool's table of that name
        ("varchar(50)", ["1", "1.1"]),
        ("text", ["abc"]),
        ("integer", [0]),
        ("integer", [-1]),
        ("numeric", [4.5]),
    ],
)
def test_a_postgres_version_table_that_holds_no_version_is_refused_by_name(
    empty_dsn: str, column: str, held: list[object]
) -> None:
    """Before, text versions '1' to '5' opened a database with none of partnerkit's tables
    (its first use case failed), '1.1' raised a ValueError, 0 wrote partnerkit's rows into
    the other table, and -1 ran the last migration first. Now each is refused at open,
    naming what the table holds, and the database is left as it was."""
    psycopg = pytest.importorskip("psycopg")
    from partnerkit.stores.postgres import PostgresStore

    with psycopg.connect(empty_dsn, autocommit=True) as raw:
        raw.execute(f"CREATE TABLE schema_version (version {column} NOT NULL)")
        for value in held:
            raw.execute("INSERT INTO schema_version (version) VALUES (%s)", (value,))
    with pytest.raises(PartnerKitError, match="schema_version table holds") as info:
        PostgresStore(empty_dsn)
    assert type(info.value) is PartnerKitError
    with psycopg.connect(empty_dsn) as raw:
        tables = {
            r[0] for r in raw.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        rows = raw.execute("SELECT count(*) FROM schema_version").fetchone()
    assert tables == {"schema_version"}
    assert rows == (len(held),)


# -- a hand-edited key ring (the storefront integrator's review) -------------------------------


def test_a_ring_saved_with_a_byte_order_mark_loads() -> None:
    """Some editors put a UTF-8 byte order mark first; the ring is read as without it."""
    ring = Keyring.generate("ed25519")
    text = ring.to_json()
    for marked in ("\ufeff" + text, b"\xef\xbb\xbf" + text.encode()):
        loaded = Keyring.from_json(marked)  # type: ignore[arg-type]
        assert loaded.to_json() == text


def test_a_ring_with_a_field_of_no_format_is_refused_without_naming_it() -> None:
    """A key's unknown field was refused, the ring's own was kept silently and then dropped
    by the next ``keys rotate``: now both are refused, and the field's name (text somebody
    typed) is not repeated."""
    document = json.loads(Keyring.generate().to_json())
    document["sekret-note-7f3a"] = "x"
    with pytest.raises(ValidationError) as info:
        Keyring.from_json(json.dumps(document))
    assert info.value.field == "keyring"
    assert "sekret-note-7f3a" not in str(info.value)


def test_the_trail_names_the_partner_access_a_user_acts_with_at_home(
    cast_portal: Portal,
) -> None:
    """F7, "through which delegation and role": a partner user without an admin role acts
    in its own company with its partner access (it issues links, ends delegations), and
    its events say which; a user with an admin role is named by it, as before."""
    portal = cast_portal
    partner = add_partner(portal, "Contoso", "contoso")
    customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=())
    portal.create_trial_invitation(partner.limited, "EXCHANGE", False)
    delegation = consent(portal, partner.admin, customer)
    portal.end_delegation(partner.full, delegation.id)
    roles = {
        (e.action, e.actor_id): e.role
        for e in portal.audit_trail(partner.admin)
        if e.outcome == "success"
    }
    assert roles[("link.create_trial_invitation", partner.limited.id)] == "partner-limited"
    assert roles[("delegation.end", partner.full.id)] == "partner-full"
    assert roles[("link.offer_delegated_admin", partner.admin.id)] == "global_admin"


@pytest.mark.parametrize(
    "promotion",
    [AdminRole.BILLING_ADMIN, AdminRole.GLOBAL_ADMIN, AdminRole.USER_MANAGEMENT_ADMIN],
)
def test_a_password_out_of_its_setters_reach_stays_void_when_the_user_comes_back(
    cast_portal: Portal, promotion: AdminRole
) -> None:
    """The target, not the setter, changes: promoted beyond what its password admin may
    reset, its temporary password stopped signing in, and came back once it was demoted
    again, with no reset behind it on the trail. The promotion now forgets it."""
    portal = cast_portal
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    setter, target = customer.by_role[AdminRole.PASSWORD_ADMIN], customer.by_role[None]
    password = portal.reset_password(setter, customer.company.id, target.id)
    portal.assign_roles(customer.admin, target.id, admin_role=promotion)
    portal.assign_roles(customer.admin, target.id, admin_role=None)
    assert portal.verify_password(target.id, password.temporary_password) is False
    [void] = [
        e for e in portal.audit_trail(customer.admin) if e.action == "user.temporary_password.void"
    ]
    assert (void.target_id, void.details["why"]) == (target.id, "user-roles-changed")


def test_a_promotion_its_setter_still_covers_keeps_the_password(cast_portal: Portal) -> None:
    """Onboarding: an admin resets a new user's password, then gives it a role the admin
    may still reset. The password stands and signs in."""
    portal = cast_portal
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    target = customer.by_role[None]
    password = portal.reset_password(customer.admin, customer.company.id, target.id)
    portal.assign_roles(customer.admin, target.id, admin_role=AdminRole.PASSWORD_ADMIN)
    assert portal.verify_password(target.id, password.temporary_password) is True
    assert not [
        e for e in portal.audit_trail(customer.admin) if e.action == "user.temporary_password.void"
    ]


def test_a_partners_change_of_its_user_is_told_on_the_customers_trail(
    cast_portal: Portal,
) -> None:
    """A partner demotes the user that reset a customer's password: the customer's global
    admin reads why the password no longer signs in."""
    portal = cast_portal
    partner = add_partner(portal, "Contoso", "contoso")
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    consent(portal, partner.admin, customer)
    reset = portal.reset_password(partner.full, customer.company.id, customer.by_role[None].id)
    portal.assign_roles(partner.admin, partner.full.id, partner_access=PartnerAccess.LIMITED)
    [void] = [
        e for e in portal.audit_trail(customer.admin) if e.action == "user.temporary_password.void"
    ]
    assert (void.company_id, void.actor_id, void.target_id) == (
        customer.company.id,
        partner.admin.id,
        reset.user_id,
    )
    assert void.details == {"why": "setter-roles-changed", "set_by": partner.full.id}


def test_a_password_set_while_the_clock_ran_ahead_does_not_sign_in(
    cast_portal: Portal, clock: FakeClock
) -> None:
    """A reset made while the clock ran a year ahead: once the clock is put right, its
    lifetime would only start in a year. It is refused."""
    portal = cast_portal
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    start = clock()
    clock.set(start + timedelta(days=365))
    password = portal.reset_password(customer.admin, customer.company.id, customer.by_role[None].id)
    clock.set(start + timedelta(days=1))
    assert portal.verify_password(customer.by_role[None].id, password.temporary_password) is False


def test_a_users_own_password_events_name_its_role(cast_portal: Portal) -> None:
    """F7: signing in with a temporary password and saying it was changed are the user's
    own acts in its company, recorded with its admin role as every other such act is."""
    portal = cast_portal
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    target = customer.by_role[AdminRole.PASSWORD_ADMIN]
    reset = portal.reset_password(customer.admin, customer.company.id, target.id)
    assert portal.verify_password(target.id, reset.temporary_password) is True
    portal.password_changed(target)
    roles = {
        e.action: e.role
        for e in portal.audit_trail(customer.admin)
        if e.action in {"user.temporary_password.use", "user.password_changed"}
    }
    assert roles == {
        "user.temporary_password.use": "password_admin",
        "user.password_changed": "password_admin",
    }


def test_a_dead_password_is_not_said_to_die_of_a_role_change(cast_portal: Portal) -> None:
    """A password that no longer signs in (its delegation revoked) is not recorded as
    forgotten for a later change of its user's roles: the trail would give the wrong why."""
    portal = cast_portal
    partner = add_partner(portal, "Contoso", "contoso")
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    delegation = consent(portal, partner.admin, customer)
    target = customer.by_role[None]
    reset = portal.reset_password(partner.full, customer.company.id, target.id)
    portal.revoke_delegation(customer.admin, delegation.id)
    portal.assign_roles(customer.admin, target.id, admin_role=AdminRole.GLOBAL_ADMIN)
    assert not [
        e for e in portal.audit_trail(customer.admin) if e.action == "user.temporary_password.void"
    ]
    assert portal.verify_password(target.id, reset.temporary_password) is False


def test_a_refused_supersession_names_no_link_that_was_never_made(cast_portal: Portal) -> None:
    """Superseding an offer that is no longer open was refused after a new link had been
    signed: the failed event named that link and a quote id nobody holds. It is judged
    first now."""
    portal = cast_portal
    partner = add_partner(portal, "Contoso", "contoso")
    _, offer = portal.create_purchase_offer(partner.full, [OfferLine("EXCHANGE", 5)], False)
    portal.withdraw_offer(partner.full, offer.id)
    with pytest.raises(InvalidState):
        portal.supersede_offer(partner.full, offer.id, [OfferLine("EXCHANGE", 6)])
    [failed] = [e for e in portal.audit_trail(partner.admin) if e.action == "offer.supersede"]
    assert (failed.outcome, failed.target_id) == ("failed", offer.id)
    assert "quote_id" not in failed.details
    assert [link.id for link in portal.list_links(partner.admin)] == [offer.link_id]


def test_a_partner_learns_nothing_of_passwords_a_revoked_consent_left(
    cast_portal: Portal,
) -> None:
    """The customer revoked; the partner later demotes the user that had reset two of its
    users' passwords. The dead passwords are forgotten without a word: a void event per
    user on the partner's own trail told it which of them had not used its password, and
    that the customer had reset one since."""
    portal = cast_portal
    partner = add_partner(portal, "Contoso", "contoso")
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    delegation = consent(portal, partner.admin, customer)
    a, b = customer.by_role[None], customer.by_role[AdminRole.PASSWORD_ADMIN]
    for user in (a, b):
        portal.reset_password(partner.full, customer.company.id, user.id)
    portal.revoke_delegation(customer.admin, delegation.id)
    portal.reset_password(customer.admin, customer.company.id, b.id)
    portal.assign_roles(partner.admin, partner.full.id, partner_access=PartnerAccess.LIMITED)
    for reader in (partner.admin, customer.admin):
        trail = portal.audit_trail(reader)
        assert not [e for e in trail if e.action == "user.temporary_password.void"]
    [change] = [e for e in portal.audit_trail(partner.admin) if e.action == "user.assign_roles"]
    assert "voided_temporary_passwords" not in change.details
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.credentials.find(set_by=partner.full.id) == []


def test_a_clock_at_the_end_of_the_calendar_raises_nothing_raw(
    cast_portal: Portal, clock: FakeClock
) -> None:
    """The guard against a password set while the clock ran ahead compared with the time
    plus a minute, which does not exist thirty seconds before the end of the calendar."""
    portal = cast_portal
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    clock.set(datetime.max.replace(tzinfo=UTC) - timedelta(seconds=30))
    target = customer.by_role[None]
    reset = portal.reset_password(customer.admin, customer.company.id, target.id)
    portal.assign_roles(customer.admin, target.id, admin_role=AdminRole.PASSWORD_ADMIN)
    assert portal.verify_password(target.id, reset.temporary_password) is True


def test_a_role_change_forgets_a_password_that_only_looked_dead(
    cast_portal: Portal, clock: FakeClock
) -> None:
    """A password set by an app server whose clock ran ahead looks dead, for a while, to
    one whose clock is behind. A role change that takes its user out of its resetter's
    reach forgets it all the same (without an event: it did not sign in then), so that
    the user demoted again does not sign in with it."""
    portal = cast_portal
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    setter, target = customer.by_role[AdminRole.PASSWORD_ADMIN], customer.by_role[None]
    reset = portal.reset_password(setter, customer.company.id, target.id)
    clock.set(clock() - timedelta(minutes=2))
    portal.assign_roles(customer.admin, target.id, admin_role=AdminRole.USER_MANAGEMENT_ADMIN)
    clock.advance(timedelta(minutes=3))
    portal.assign_roles(customer.admin, target.id, admin_role=None)
    assert portal.verify_password(target.id, reset.temporary_password) is False
    assert not [
        e for e in portal.audit_trail(customer.admin) if e.action == "user.temporary_password.void"
    ]
