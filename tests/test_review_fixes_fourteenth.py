"""What the fourteenth session's reviews found.

- A former partner learned a customer's name after it had lost it, through the place of a
  search page.
- A temporary password from a reset signed in any number of times, for ever, and after the
  delegation behind it was revoked.
- Opening a SQLite file switched a file the store then refused to WAL for good, took a
  ``schema_version`` table holding no version for a ``ValueError``, and failed at once when
  app servers opened a new file together.
- A storage error did not say what failed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from pathlib import Path
from typing import Any

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
    ContactInfo,
    Decision,
    Forbidden,
    LinkRevoked,
    PartnerKitError,
    Permission,
    Portal,
    ValidationError,
)
from partnerkit.errors import StoreUnavailable
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore, _enter_wal
from partnerkit.testing import FAST_HASHER, FakeClock, build_world, sample_catalog
from partnerkit.testing.postgres import PostgresServer

if find_spec("psycopg") is not None or os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"):
    import psycopg

    from partnerkit.stores.postgres import PostgresStore
else:  # the two PostgreSQL tests skip: the module's others run
    psycopg = PostgresStore = None  # type: ignore[assignment,misc]

pytest_plugins = ["pg_fixtures", "cast_fixtures"]


# -- find_customers(after=...) of a customer the partner no longer finds ----------------------


def _after_refused(portal: Portal, actor: object, after: str) -> str:
    with pytest.raises(ValidationError) as info:
        portal.find_customers(actor, "", limit=10, after=after)  # type: ignore[arg-type]
    assert info.value.field == "after"
    return str(info.value)


def test_a_former_customer_is_no_place_to_start_a_page(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """Once the delegation is revoked, the customer's id as ``after`` is refused exactly as
    that of a company the partner never knew: the place it would give is the customer's
    current name, which the partner may no longer read."""
    delegation = consent(portal, partner.admin, customer)
    other = add_customer(portal, "Northwind", "northwind.example")
    assert [c.id for c in portal.find_customers(partner.admin, "", after=customer.company.id)] == []
    portal.revoke_delegation(customer.admin, delegation.id)
    portal.update_profile(customer.admin, name="Zeta Holdings")
    former = _after_refused(portal, partner.admin, customer.company.id)
    never = _after_refused(portal, partner.admin, other.company.id)
    assert former.replace(customer.company.id, "?") == never.replace(other.company.id, "?")


def test_a_customer_past_its_delegations_end_is_no_place_either(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, clock: object
) -> None:
    consent(portal, partner.admin, customer, duration=timedelta(days=1))
    assert portal.find_customers(partner.admin, "", after=customer.company.id) == []
    clock.advance(timedelta(days=1))  # type: ignore[attr-defined]
    _after_refused(portal, partner.admin, customer.company.id)


# -- opening a SQLite file: the journal mode, a broken version table, a busy file -----------


def _journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        mode: str = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return mode
    finally:
        conn.close()


def test_a_file_the_store_refuses_keeps_its_journal_mode(tmp_path: Path) -> None:
    """Another application's database with a ``users`` table of its own: the store refuses
    it, and leaves it as it was, journal mode included (it went over to WAL for good)."""
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(PartnerKitError, match="cannot open the SQLite store"):
        SQLiteStore(path)
    assert _journal_mode(path) == "delete"
    ours = tmp_path / "ours.db"
    SQLiteStore(ours).close()
    assert _journal_mode(ours) == "wal"


@pytest.mark.parametrize("held", ["abc", 4.5, -1, 0, b"4"])
def test_a_version_table_that_holds_no_version_is_refused_by_name(
    tmp_path: Path, held: object
) -> None:
    path = tmp_path / "broken.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM schema_version")
    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (held,))
    conn.commit()
    before = conn.execute("SELECT * FROM schema_version").fetchall()
    conn.close()
    with pytest.raises(PartnerKitError, match="schema_version table holds") as info:
        SQLiteStore(path)
    assert type(info.value) is PartnerKitError  # not a ValueError from deep inside
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT * FROM schema_version").fetchall() == before
    conn.close()


class _BusyAtFirst(sqlite3.Connection):
    """A real connection whose first changes of journal mode meet another connection in
    the middle of its own (SQLite answers "locked" then, without its busy handler)."""

    refusals = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.startswith("PRAGMA journal_mode") and self.refusals > 0:
            self.refusals -= 1
            raise sqlite3.OperationalError("database is locked")
        return super().execute(sql, *args)


def test_the_change_to_wal_is_tried_again_while_the_file_is_busy(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "new.db", factory=_BusyAtFirst, isolation_level=None)
    try:
        conn.refusals = 3
        _enter_wal(conn, 2.0)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        conn.refusals = 1_000_000  # busy for longer than the timeout: the error goes on
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            _enter_wal(conn, 0.05)
    finally:
        conn.close()


def test_a_failure_that_is_no_busy_file_is_not_waited_on(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.close()
    started = time.monotonic()
    with pytest.raises(sqlite3.ProgrammingError):
        _enter_wal(conn, 5.0)
    assert time.monotonic() - started < 1.0


# -- a storage error says what failed ----------------------------------------------------------


def test_a_sqlite_storage_error_names_its_cause(tmp_path: Path) -> None:
    path = tmp_path / "portal.db"
    world = build_world(Portal(store=SQLiteStore(path), clock=FakeClock()))
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE service_requests")
    conn.commit()
    conn.close()
    with pytest.raises(PartnerKitError) as info:
        world.portal.list_service_requests(world.customer_admin, world.customer.id)
    assert str(info.value) == "storage error: no such table: service_requests"


@pytest.mark.postgres
def test_a_postgres_storage_error_names_its_cause(empty_dsn: str) -> None:
    if psycopg is None:
        pytest.skip("psycopg is not installed (partnerkit[postgres])")
    store = PostgresStore(empty_dsn)  # a database of its own: a table is dropped
    try:
        world = build_world(Portal(store=store, clock=FakeClock()))
        with psycopg.connect(empty_dsn, autocommit=True) as conn:
            conn.execute("DROP TABLE service_requests")
        with pytest.raises(PartnerKitError) as info:
            world.portal.list_service_requests(world.customer_admin, world.customer.id)
        assert str(info.value) == (
            'storage error: relation "service_requests" does not exist (SQLSTATE 42P01)'
        )
    finally:
        store.close()


@pytest.mark.postgres
def test_a_refused_connection_says_why(postgres_server: PostgresServer) -> None:
    """An unknown database is a mistake in the settings, not an outage: the reason is in the
    message (still ``StoreUnavailable``, as before)."""
    if psycopg is None:
        pytest.skip("psycopg is not installed (partnerkit[postgres])")
    with pytest.raises(StoreUnavailable, match="the database the DSN names does not exist"):
        PostgresStore(postgres_server.dsn("no_such_db"))


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://portal:S3cr@tPw@127.0.0.1:1/portal",  # an '@' left unescaped
        "host=/nonexistent/S3cr@tPw dbname=portal password=S3cr@tPw",
        "host=127.0.0.1 port=1 user=portal password=S3cr@tPw",
    ],
)
def test_a_failed_connection_says_nothing_of_the_dsn(dsn: str) -> None:
    if psycopg is None:
        pytest.skip("psycopg is not installed (partnerkit[postgres])")
    with pytest.raises(StoreUnavailable) as info:
        PostgresStore(dsn, timeout=2)
    said = str(info.value)
    assert said.startswith("the database connection failed: ")
    assert "S3cr" not in said
    assert "tPw" not in said


# -- a temporary password signs in once, while the right that set it stands ------------------


def _events(portal: Portal, action: str) -> list[Any]:
    with portal.store.unit_of_work(write=False) as uow:
        return [e for e in uow.audit_events() if e.action == action]


def test_a_temporary_password_signs_in_once(portal: Portal, customer: CustomerCast) -> None:
    dee = customer.by_role[None]
    reset = portal.reset_password(customer.admin, customer.company.id, dee.id)
    assert not portal.verify_password(dee.id, reset.temporary_password + "x")  # uses nothing
    assert portal.verify_password(dee.id, reset.temporary_password)
    assert not portal.verify_password(dee.id, reset.temporary_password)
    [used] = _events(portal, "user.temporary_password.use")
    assert (used.actor_id, used.company_id, used.target_id) == (dee.id, dee.company_id, dee.id)
    assert used.outcome == "success"
    assert reset.temporary_password not in repr(used)
    assert portal.verify_audit_trail() == used.seq


def test_of_several_sign_ins_at_once_one_uses_it(tmp_path: Path) -> None:
    portal = make_portal(SQLiteStore(tmp_path / "portal.db"))
    try:
        customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=[None])
        dee = customer.by_role[None]
        password = portal.reset_password(
            customer.admin, customer.company.id, dee.id
        ).temporary_password
        start = threading.Barrier(8)
        answers: list[bool] = []

        def sign_in() -> None:
            start.wait()
            answers.append(portal.verify_password(dee.id, password))

        workers = [threading.Thread(target=sign_in) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert sorted(answers) == [False] * 7 + [True]
        assert len(_events(portal, "user.temporary_password.use")) == 1
    finally:
        portal.store.close()


def test_a_temporary_password_lapses_after_its_lifetime(any_store: Any) -> None:
    clock = FakeClock()
    portal = make_portal(any_store, clock)
    portal = Portal(
        store=any_store,
        clock=clock,
        password_hasher=portal.password_hasher,
        temporary_password_lifetime=timedelta(hours=1),
    )
    customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=[None])
    dee = customer.by_role[None]
    early = portal.reset_password(customer.admin, customer.company.id, dee.id)
    clock.advance(timedelta(hours=1) - timedelta(microseconds=1))
    assert portal.verify_password(dee.id, early.temporary_password)
    late = portal.reset_password(customer.admin, customer.company.id, dee.id)
    clock.advance(timedelta(hours=1))
    assert not portal.verify_password(dee.id, late.temporary_password)


@pytest.mark.parametrize("ending", ["revoke", "end", "end date", "access", "resetter removed"])
def test_a_delegates_temporary_password_dies_with_the_right_that_set_it(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, clock: Any, ending: str
) -> None:
    """A partner user set it through a delegation: once the consent is withdrawn (or ended,
    or past its end date), or the partner user could no longer reset it, it signs no one in;
    the customer's own admin resets again."""
    delegation = consent(portal, partner.admin, customer, duration=timedelta(days=30))
    dee = customer.by_role[None]
    reset = portal.reset_password(partner.full, customer.company.id, dee.id)
    if ending == "revoke":
        portal.revoke_delegation(customer.admin, delegation.id)
    elif ending == "end":
        portal.end_delegation(partner.admin, delegation.id)
    elif ending == "end date":
        clock.advance(timedelta(days=30))
    elif ending == "access":
        portal.assign_roles(partner.admin, partner.full.id, admin_role=None, partner_access=None)
    else:
        portal.remove_user(partner.admin, partner.full.id)
    assert not portal.verify_password(dee.id, reset.temporary_password)
    own = portal.reset_password(customer.admin, customer.company.id, dee.id)
    assert portal.verify_password(dee.id, own.temporary_password)


def test_a_delegates_temporary_password_signs_in_while_the_delegation_stands(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    consent(portal, partner.admin, customer)
    dee = customer.by_role[None]
    reset = portal.reset_password(partner.limited, customer.company.id, dee.id)
    assert portal.verify_password(dee.id, reset.temporary_password)


def test_password_changed_clears_the_flag_and_forgets_an_unused_password(
    portal: Portal, customer: CustomerCast
) -> None:
    dee = customer.by_role[None]
    reset = portal.reset_password(customer.admin, customer.company.id, dee.id)
    changed = portal.password_changed(dee.id)
    assert changed.must_change_password is False
    assert changed.version == dee.version + 2  # the reset's bump, then this one
    assert not portal.verify_password(dee.id, reset.temporary_password)
    [event] = _events(portal, "user.password_changed")
    assert (event.actor_id, event.company_id, event.outcome) == (dee.id, dee.company_id, "success")
    # Nothing left to clear: the user as it is, and nothing recorded.
    assert portal.password_changed(dee) == changed
    assert len(_events(portal, "user.password_changed")) == 1


def test_password_changed_needs_a_known_actor(portal: Portal) -> None:
    with pytest.raises(Forbidden):
        portal.password_changed("usr_nobody")


@pytest.mark.parametrize(
    "lifetime",
    [timedelta(seconds=59), timedelta(days=91), -timedelta(days=1), 3600, None, "7 days"],
)
def test_a_temporary_password_lifetime_out_of_range_is_refused(lifetime: object) -> None:
    with pytest.raises(ValidationError) as info:
        Portal(store=MemoryStore(), temporary_password_lifetime=lifetime)  # type: ignore[arg-type]
    assert info.value.field == "temporary_password_lifetime"


# -- small things a portal developer met ----------------------------------------------------


@pytest.mark.parametrize("phone", ["(425) 555-0100", "(425) 555 0100", "+1 (425) 555-0100"])
def test_a_phone_number_may_open_with_its_area_code_in_parentheses(phone: str) -> None:
    assert ContactInfo(email="hi@contoso.example", phone=phone).phone == phone


def test_a_refused_phone_number_says_what_is_taken() -> None:
    with pytest.raises(ValidationError, match="7 to 15 digits"):
        ContactInfo(email="hi@contoso.example", phone="call us")


def test_a_refused_delegation_move_reads_as_english(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    delegation = consent(portal, partner.admin, customer)
    portal.revoke_delegation(customer.admin, delegation.id)
    with pytest.raises(ValidationError, match=r"^status: a revoked delegation cannot"):
        portal.revoke_delegation(customer.admin, delegation.id)
    other = consent(portal, partner.admin, customer)
    with pytest.raises(ValidationError, match=r"^status: an active delegation cannot"):
        portal.accept_delegation(customer.admin, other.id)


def test_every_rule_explains_itself_and_a_refusal_says_so() -> None:
    from partnerkit.roles import Rule

    explained = {rule: rule.explanation for rule in Rule}
    assert all(text and not text.endswith(".") for text in explained.values())
    assert len(set(explained.values())) == len(explained)
    denied = Forbidden(Decision(False, Rule.NO_ACTIVE_DELEGATION), Permission.RESET_PASSWORD)
    assert str(denied) == (
        f"forbidden: reset_password: no-active-delegation ({Rule.NO_ACTIVE_DELEGATION.explanation})"
    )


def test_revoking_a_link_by_its_url_says_to_pass_its_id(
    portal: Portal, partner: PartnerCast
) -> None:
    url = portal.create_trial_invitation(partner.admin, "EXCHANGE")
    with pytest.raises(ValidationError, match="inspect_link") as info:
        portal.revoke_link(partner.admin, url)
    assert info.value.field == "link_id"
    with portal.store.unit_of_work(write=False) as uow:
        [event] = [e for e in uow.audit_events() if e.action == "link.revoke"]
    assert (event.outcome, event.target_id) == ("failed", None)
    link_id = portal.inspect_link(url).link_id  # nothing revoked: it still inspects
    portal.revoke_link(partner.admin, link_id)
    with pytest.raises(LinkRevoked):
        portal.inspect_link(url)


class _Meddling:
    """The test hasher, with one thing done while the next check of a password runs (the
    slow part of a sign-in, outside any unit of work): another call committing then."""

    def __init__(self) -> None:
        self.meddle: Callable[[], object] | None = None

    def hash(self, password: str) -> str:
        return FAST_HASHER.hash(password)

    def verify(self, password: str, encoded: str) -> bool:
        meddle, self.meddle = self.meddle, None
        if meddle is not None:
            meddle()
        return FAST_HASHER.verify(password, encoded)


def _meddled(store: Any, clock: FakeClock) -> tuple[Portal, _Meddling]:
    hasher = _Meddling()
    portal = Portal(
        store=store,
        clock=clock,
        catalog=sample_catalog(),
        password_hasher=hasher,  # type: ignore[arg-type]
    )
    return portal, hasher


@pytest.mark.parametrize("meddle", ["revoke", "end", "remove the resetter", "take access"])
def test_a_consent_withdrawn_while_a_password_is_checked_signs_no_one_in(
    any_store: Any, meddle: str
) -> None:
    portal, hasher = _meddled(any_store, FakeClock())
    partner = add_partner(portal, "Contoso", "contoso")
    customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=[None])
    delegation = consent(portal, partner.admin, customer)
    dee = customer.by_role[None]
    password = portal.reset_password(partner.full, customer.company.id, dee.id).temporary_password
    hasher.meddle = {
        "revoke": lambda: portal.revoke_delegation(customer.admin, delegation.id),
        "end": lambda: portal.end_delegation(partner.admin, delegation.id),
        "remove the resetter": lambda: portal.remove_user(partner.admin, partner.full.id),
        "take access": lambda: portal.assign_roles(partner.admin, partner.full.id),
    }[meddle]
    assert not portal.verify_password(dee.id, password)
    assert _events(portal, "user.temporary_password.use") == []


def test_an_old_password_checked_while_a_new_reset_commits_uses_nothing(any_store: Any) -> None:
    """The old password verified against the old hash; the new reset committed meanwhile:
    the old one signs no one in, and the new one is still there to use."""
    portal, hasher = _meddled(any_store, FakeClock())
    customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=[None])
    dee = customer.by_role[None]
    old = portal.reset_password(customer.admin, customer.company.id, dee.id).temporary_password
    new: list[str] = []
    hasher.meddle = lambda: new.append(
        portal.reset_password(customer.admin, customer.company.id, dee.id).temporary_password
    )
    assert not portal.verify_password(dee.id, old)
    assert portal.verify_password(dee.id, new[0])


def test_a_reset_at_the_end_of_time_still_signs_in(any_store: Any) -> None:
    clock = FakeClock(datetime(9999, 12, 28, tzinfo=UTC))
    portal = make_portal(any_store, clock)
    customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=[None])
    dee = customer.by_role[None]
    reset = portal.reset_password(customer.admin, customer.company.id, dee.id)
    assert portal.verify_password(dee.id, reset.temporary_password)


def test_a_stored_value_no_member_names_is_a_storage_error(tmp_path: Path) -> None:
    """A row written by something else than partnerkit (a kind no LinkKind has): a typed
    error that says where, as every store failure is, and not the enum's ValueError."""
    path = tmp_path / "portal.db"
    portal = make_portal(SQLiteStore(path), catalog=sample_catalog())
    partner = add_partner(portal, "Contoso", "contoso")
    url = portal.create_trial_invitation(partner.admin, "EXCHANGE")
    link_id = portal.inspect_link(url).link_id
    conn = sqlite3.connect(path)
    conn.execute("UPDATE links SET kind = 'bogus' WHERE id = ?", (link_id,))
    conn.commit()
    conn.close()
    with pytest.raises(PartnerKitError) as info:
        portal.inspect_link(url)
    assert type(info.value) is PartnerKitError
    assert str(info.value) == "storage error: LinkRecord.kind holds 'bogus', no LinkKind"
