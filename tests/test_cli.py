"""The ``partnerkit`` command: ``--version``, usage errors, and the story of ``partnerkit demo``."""

from __future__ import annotations

import importlib.metadata
import io
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from partnerkit import AdminRole, PartnerAccess, Portal
from partnerkit.cli import (
    DEMO_STEPS,
    Story,
    build_parser,
    main,
    run_demo,
    step_register_partner,
)
from partnerkit.stores.sqlite import SQLiteStore


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``partnerkit *argv`` in-process; return the exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_prints_the_installed_distribution_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``partnerkit --version`` prints the version of the installed package and exits 0."""
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"partnerkit {importlib.metadata.version('partnerkit')}"


def test_no_command_prints_help_and_exits_with_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without a command the help lists ``demo`` and the exit code is 2."""
    code, out, _ = run(capsys)
    assert code == 2
    assert "demo" in out
    assert "usage: partnerkit" in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown command exits 2 with argparse's message on stderr."""
    code, _, err = run(capsys, "frobnicate")
    assert code == 2
    assert "invalid choice" in err


def test_demo_tells_the_whole_story_on_the_given_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The demo registers a partner, shows its profile, creates a user per role, prints
    decisions with their rules, refuses escalations and verifies the audit trail."""
    db = tmp_path / "portal.db"
    code, out, err = run(capsys, "demo", "--db", str(db))
    assert code == 0, err
    for heading in (
        "1. A partner registers",
        "2. The partner's profile (F1)",
        "3. Users with each admin role (F2)",
        "4. Decisions, each with the rule that made it",
        "5. Escalation is refused",
        "6. The audit trail (F7)",
    ):
        assert heading in out
    assert "public advisor id is PA-" in out
    for role in AdminRole:
        assert role.value in out
    rows = {" ".join(line.split()) for line in out.splitlines()}
    for decision in (
        "bea purchase - allowed admin-role-grants-permission",
        "sam manage_users - denied admin-role-lacks-permission",
        "nia create_trial_invitations - denied partner-access-required",
        "lee create_trial_invitations - allowed partner-access-grants-permission",
        "pat reset_password bea denied target-role-outside-actor-limits",
        "pat reset_password pat denied no-self-password-reset-through-admin-path",
        "uma reset_password lee denied privileged-partner-user-needs-own-global-admin",
        "ana reset_password lee allowed admin-role-grants-permission",
    ):
        assert decision in rows
    assert "-> refused: admin-role-lacks-permission" in out
    assert "-> refused: cannot-grant-partner-access-not-held" in out
    assert "verified: all 11 events of the store are intact" in out
    assert str(db) in out


def test_demo_leaves_a_consistent_partnerkit_database_behind(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """What the demo printed is what the file holds: eight users with their roles, an
    intact audit chain with the two refused escalations, and nobody escalated."""
    db = tmp_path / "portal.db"
    assert run(capsys, "demo", "--db", str(db))[0] == 0

    store = SQLiteStore(db)
    try:
        portal = Portal(store=store)
        with store.unit_of_work(write=False) as uow:
            users = {u.email.split("@")[0]: u for u in uow.users.find(company_id=_partner_id(db))}
        assert sorted(users) == ["ana", "bea", "gus", "lee", "nia", "pat", "sam", "uma"]
        assert users["ana"].partner_access is PartnerAccess.FULL
        assert users["gus"].admin_role is AdminRole.GLOBAL_ADMIN
        assert users["uma"].admin_role is AdminRole.USER_MANAGEMENT_ADMIN
        assert users["nia"].partner_access is None
        assert portal.verify_audit_trail() == 11
        denied = [e for e in portal.audit_trail(users["ana"]) if e.outcome == "denied"]
        assert [e.reason for e in denied] == [
            "admin-role-lacks-permission",
            "cannot-grant-partner-access-not-held",
        ]
    finally:
        store.close()


def _partner_id(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id FROM companies").fetchall()
    conn.close()
    assert len(rows) == 1
    return str(rows[0][0])


def test_demo_run_again_on_its_file_adds_a_second_partner(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A second run on the same partnerkit file uses free e-mails and keeps the chain whole."""
    db = tmp_path / "portal.db"
    assert run(capsys, "demo", "--db", str(db))[0] == 0
    code, out, err = run(capsys, "demo", "--db", str(db))
    assert code == 0, err
    assert "ana@contoso2.example" in out
    assert "verified: all 22 events of the store are intact" in out


def test_demo_without_db_uses_a_new_file_in_a_new_temporary_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the demo creates ``portal.db`` in a fresh temporary directory and says where."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code, out, err = run(capsys, "demo")
    assert code == 0, err
    (made,) = tmp_path.glob("partnerkit-demo-*/portal.db")
    assert f"The portal is kept in {made}" in out


def test_demo_refuses_a_file_that_is_not_a_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An existing file that is not SQLite is left untouched and the exit code is 1."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n", encoding="utf-8")
    code, out, err = run(capsys, "demo", "--db", str(notes))
    assert code == 1
    assert "is not a partnerkit database" in err
    assert "A partner registers" not in out
    assert notes.read_text(encoding="utf-8") == "my notes\n"


def test_demo_refuses_a_sqlite_database_of_another_application(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Someone else's SQLite file is not written to: its bytes stay the same."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.close()
    before = other.read_bytes()
    code, _, err = run(capsys, "demo", "--db", str(other))
    assert code == 1
    assert "is not a partnerkit database" in err
    assert other.read_bytes() == before


def test_demo_refuses_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A directory given as ``--db`` is refused with exit code 1."""
    code, _, err = run(capsys, "demo", "--db", str(tmp_path))
    assert code == 1
    assert "is not a file" in err


def test_demo_accepts_an_empty_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """An empty file holds nothing to overwrite: the demo makes it a partnerkit database."""
    empty = tmp_path / "empty.db"
    empty.touch()
    code, _, err = run(capsys, "demo", "--db", str(empty))
    assert code == 0, err
    store = SQLiteStore(empty)
    try:
        assert store.schema_version() >= 1
    finally:
        store.close()


def test_demo_reports_a_store_error_with_exit_code_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A partnerkit file from a newer partnerkit is reported, not shown as a traceback."""
    db = tmp_path / "newer.db"
    SQLiteStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (9999)")
    conn.close()
    code, out, err = run(capsys, "demo", "--db", str(db))
    assert code == 1
    assert err.startswith("partnerkit demo: error:")
    assert "newer than this partnerkit knows" in err
    assert "Traceback" not in out + err


def test_demo_steps_share_one_story_and_more_steps_can_be_added(tmp_path: Path) -> None:
    """``run_demo`` runs the given steps in order on one ``Story``; a later step sees what an
    earlier one recorded."""
    seen: list[str] = []

    def count_users(story: Story) -> None:
        story.heading("Counting")
        seen.append(story.admin.email)
        story.say(f"{len(story.users)} user(s)")

    out = io.StringIO()
    run_demo(tmp_path / "portal.db", out, steps=[step_register_partner, count_users])
    assert seen == ["ana@contoso.example"]
    assert "2. Counting\n   1 user(s)\n" in out.getvalue()
    assert DEMO_STEPS[0] is step_register_partner


def test_link_commands_are_registered_when_their_module_exists(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``partnerkit keys new`` (from ``partnerkit._cli_links``) runs through ``main``."""
    pytest.importorskip("partnerkit._cli_links")
    ring = tmp_path / "ring.json"
    code, _, err = run(capsys, "keys", "new", "--out", str(ring))
    assert code == 0, err
    assert ring.exists()
    assert "link" in build_parser().format_help()


def test_cli_works_without_the_link_commands(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``partnerkit._cli_links`` the command still runs, only ``keys`` is unknown."""
    monkeypatch.setitem(sys.modules, "partnerkit._cli_links", None)
    code, _, err = run(capsys, "keys", "new", "--out", str(tmp_path / "ring.json"))
    assert code == 2
    assert "invalid choice" in err
    assert run(capsys, "demo", "--db", str(tmp_path / "portal.db"))[0] == 0


def test_installed_console_script_runs_the_demo(tmp_path: Path) -> None:
    """The ``partnerkit`` console script installed next to this Python runs the demo in a
    fresh temporary directory and exits 0."""
    script = Path(sys.executable).parent / ("partnerkit.exe" if os.name == "nt" else "partnerkit")
    assert script.exists(), f"console script not installed: {script}"
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONWARNINGS": "error"}
    result = subprocess.run(  # noqa: S603 - our own console script, no shell
        [str(script), "demo"], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "verified: all 11 events of the store are intact" in result.stdout
    assert result.stderr == ""
    assert list(tmp_path.glob("partnerkit-demo-*/portal.db"))
