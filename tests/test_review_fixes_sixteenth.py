"""Fixes from the sixteenth session's newcomer review (a developer building a portal from
the docs alone)."""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path

import pytest

from partnerkit import ContactInfo, OfferLine, PartnerKitError, Portal, User, ValidationError
from partnerkit.cli import main as run
from partnerkit.ports import Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing import World, build_world, sample_catalog

pytest_plugins = ["pg_fixtures"]


@pytest.fixture
def world() -> World:
    return build_world(Portal(store=MemoryStore(), catalog=sample_catalog()))


@pytest.mark.parametrize("answer", ["yes", 1, 0])
def test_a_wrong_consent_answer_names_all_three_it_takes(world: World, answer: object) -> None:
    """``accept_delegated_admin`` takes ``None`` too (the default): the message said only
    "must be True or False"."""
    url, _ = world.portal.create_purchase_offer(
        world.partner_admin, [OfferLine("EXCHANGE", 5)], True
    )
    with pytest.raises(ValidationError) as refused:
        world.portal.redeem(url, world.customer_admin, accept_delegated_admin=answer)  # type: ignore[arg-type]
    assert str(refused.value) == "accept_delegated_admin: must be True, False or None"


@pytest.mark.parametrize("override", ["\u202e", "\u2066", "\u202a", "\x85"])
def test_an_address_given_now_may_not_hold_bidirectional_controls(
    world: World, override: str
) -> None:
    """The address is shown to customers, as the name is, and "1 Main\u202e St" shows as
    something else: refused where contact information is written (registering a company,
    changing its profile), as in names. A right-to-left mark stays allowed."""
    portal = world.portal
    bad = ContactInfo(email="hi@tailspin.example", address=f"1 Main{override} St")
    with pytest.raises(ValidationError) as refused:
        portal.register_partner(name="Tailspin", contact=bad, admin_email="t@tailspin.example")
    assert refused.value.field == "address"
    with pytest.raises(ValidationError) as refused:
        portal.update_profile(world.partner_admin, contact=bad)
    assert refused.value.field == "address"
    with pytest.raises(ValidationError):
        portal.register_customer(
            name="Northwind", domain="northwind.example", admin_email="n@northwind.example",
            contact=bad,
        )  # fmt: skip
    assert portal.profile(world.partner_admin).contact == world.partner.contact
    marked = ContactInfo(email="hi@contoso.example", address="\u200f\u05e8\u05d7\u05d5\u05d1 1")
    assert portal.update_profile(world.partner_admin, contact=marked).contact == marked


def test_the_command_says_a_key_file_is_not_json_without_the_apis_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--keys FILE`` takes a file's name: "pass the ring's text, not a file name" (the
    hint for a caller of ``Keyring.from_json``) told the user to do what they had done."""
    keys = tmp_path / "demo.out"
    keys.write_text("not a key ring\n")
    assert run(["link", "inspect", "https://p.example/j?code=x", "--keys", str(keys)]) == 1
    err = capsys.readouterr().err
    assert f"{str(keys)!r} is not a key ring: keyring: is not valid JSON" in err
    assert "file name" not in err


def test_a_sign_in_finds_its_user_by_e_mail_as_partnerkit_compares_them(world: World) -> None:
    """``find_user_by_email``: the lookup the command's ``--actor EMAIL`` always made, for
    the portal's sign-in; case-insensitive as uniqueness is, ``None`` for nobody."""
    portal = world.portal
    assert portal.find_user_by_email("ADA@Contoso.example") == world.partner_admin
    assert portal.find_user_by_email("dee@fabrikam.example") == world.customer_user
    for nobody in ("nobody@contoso.example", "", "a\x00b@c.example", "\ud800@x.example"):
        assert portal.find_user_by_email(nobody) is None
    with pytest.raises(ValidationError) as refused:
        portal.find_user_by_email(None)  # type: ignore[arg-type]
    assert refused.value.field == "email"
    portal.remove_user(world.customer_admin, world.customer_user.id)
    assert portal.find_user_by_email("dee@fabrikam.example") is None


def test_every_user_reads_their_own_record_without_a_right(world: World) -> None:
    """``current_user``: a user without ``MANAGE_USERS`` could not read its own roles or
    ``must_change_password`` (``list_users`` is for user managers)."""
    from partnerkit import Forbidden

    portal, dee = world.portal, world.customer_user
    with pytest.raises(Forbidden):
        portal.list_users(dee)
    assert portal.current_user(dee.id) == dee
    portal.reset_password(world.customer_admin, world.customer.id, dee.id)
    me = portal.current_user(dee)
    assert me.must_change_password
    assert me.version == dee.version + 1
    portal.remove_user(world.customer_admin, dee.id)
    with pytest.raises(Forbidden) as refused:
        portal.current_user(dee)
    assert refused.value.decision.rule.value == "actor-does-not-exist"


# -- an older process left running after a newer one migrated --------------------------


def _contoso(store: Store) -> tuple[Portal, User]:
    """A portal on *store* and the global admin of the partner registered in it."""
    portal = Portal(store=store)
    _, ana = portal.register_partner(
        name="Contoso", contact=ContactInfo(email="hi@c.example"), admin_email="a@c.example"
    )
    return portal, ana


def test_an_older_sqlite_process_writes_nothing_once_a_newer_one_migrated(
    tmp_path: Path,
) -> None:
    """A store of this partnerkit, open while a newer partnerkit migrates the file (here:
    a version recorded and a table made, as a migration does), refuses every write from
    then on, saying why; it still reads. Before, it went on writing rows without what the
    newer schema adds. A table of the operator's own, which changes the schema but not its
    version, changes nothing."""
    import sqlite3

    from partnerkit.stores.sqlite import SCHEMA_VERSION, SQLiteStore

    path = tmp_path / "portal.db"
    store = SQLiteStore(path)
    try:
        portal, ana = _contoso(store)
        with sqlite3.connect(path) as other:
            other.execute("CREATE TABLE operators_notes (id INTEGER PRIMARY KEY)")
        other.close()
        portal.update_profile(ana, name="Contoso Ltd")  # someone else's table: no matter
        with sqlite3.connect(path) as newer:
            newer.execute("CREATE TABLE partnerkit_next (id TEXT PRIMARY KEY)")
            newer.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
        newer.close()
        with pytest.raises(PartnerKitError) as refused:
            portal.update_profile(ana, name="Contoso Group")
        assert f"migrated to schema version {SCHEMA_VERSION + 1} by a newer partnerkit" in str(
            refused.value
        )
        assert portal.profile(ana).name == "Contoso Ltd"  # reads go on; nothing was written
        with store.unit_of_work(write=False) as uow:
            assert uow.audit_head()[0] == 2  # the registration and the first rename only
    finally:
        store.close()


def test_an_older_sqlite_process_sees_a_migration_that_only_moves_data(tmp_path: Path) -> None:
    """A migration may change no table (a backfill, a rekey): it still records its version,
    and the older store, which has written before, is refused (the review found that the
    first version of the check looked at the version only when SQLite's schema cookie,
    which only DDL moves, had changed)."""
    import sqlite3

    from partnerkit.stores.sqlite import SCHEMA_VERSION, SQLiteStore

    path = tmp_path / "portal.db"
    store = SQLiteStore(path)
    try:
        portal, ana = _contoso(store)
        portal.update_profile(ana, name="Contoso Ltd")
        with sqlite3.connect(path) as newer:
            newer.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
        newer.close()
        with pytest.raises(PartnerKitError, match="by a newer partnerkit"):
            portal.update_profile(ana, name="Contoso Group")
    finally:
        store.close()


#: A test that runs on PostgreSQL (skipped without psycopg, unless CI requires it).
_needs_postgres = pytest.mark.skipif(
    find_spec("psycopg") is None and not os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"),
    reason="psycopg is not installed (partnerkit[postgres])",
)


_NEWER_MIGRATOR = """
import sys
import partnerkit.stores.postgres as pg
slow = ["SELECT pg_sleep(1.5)", "ALTER TABLE companies ADD COLUMN later TEXT"]
pg.MIGRATIONS = (*pg.MIGRATIONS, slow)
pg.SCHEMA_VERSION = len(pg.MIGRATIONS)
pg.PostgresStore(sys.argv[1], min_size=0).close()
print("migrated")
"""


@pytest.mark.postgres
@_needs_postgres
def test_an_older_postgres_writer_during_a_migration_waits_for_it_and_is_refused(
    empty_dsn: str,
) -> None:
    """A newer app server migrates (its migration takes a while) while an older one
    writes: the older writer waits for the migration's commit, sees the new version, and
    writes nothing. Before, it read the version still committed and wrote (the review's
    reproducer), as the migration held no lock a writer waits for."""
    import subprocess
    import sys
    import time

    import psycopg

    from partnerkit.stores.postgres import PostgresStore

    store = PostgresStore(empty_dsn, min_size=1, max_size=2)
    try:
        portal, ana = _contoso(store)
        newer = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", _NEWER_MIGRATOR, empty_dsn],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            with psycopg.connect(empty_dsn, autocommit=True) as watcher:
                deadline = time.monotonic() + 60
                query = "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(1.5)%'"
                while not watcher.execute(query).fetchone():
                    assert newer.poll() is None, newer.communicate()
                    assert time.monotonic() < deadline, "the migration never started"
                    time.sleep(0.01)
            with pytest.raises(PartnerKitError, match="by a newer partnerkit"):
                portal.update_profile(ana, name="Contoso Group")
        finally:
            out, err = newer.communicate(timeout=60)
        assert out.strip() == "migrated", err
        assert portal.profile(ana).name == "Contoso"
    finally:
        store.close()


@pytest.mark.postgres
@_needs_postgres
def test_an_older_postgres_app_server_writes_nothing_once_a_newer_one_migrated(
    empty_dsn: str,
) -> None:
    """The same on PostgreSQL: the version is read under the writers' lock, in the
    writer's first round trip."""
    import psycopg

    from partnerkit.stores.postgres import SCHEMA_VERSION, PostgresStore

    store = PostgresStore(empty_dsn, min_size=1, max_size=2)
    try:
        portal, ana = _contoso(store)
        with psycopg.connect(empty_dsn, autocommit=True) as newer:
            newer.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
        with pytest.raises(PartnerKitError) as refused:
            portal.update_profile(ana, name="Contoso Group")
        assert f"migrated to schema version {SCHEMA_VERSION + 1} by a newer partnerkit" in str(
            refused.value
        )
        assert portal.profile(ana).name == "Contoso"
        with store.unit_of_work(write=False) as uow:
            assert uow.audit_head()[0] == 1
    finally:
        store.close()
