"""The ``partnerkit`` command: ``--version``, usage errors, and the story of ``partnerkit demo``."""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs
import pytest

from partnerkit import (
    AdminRole,
    Company,
    DelegationStatus,
    Forbidden,
    Keyring,
    LinkKind,
    PartnerAccess,
    Portal,
    SubscriptionStatus,
    User,
    cli,
)
from partnerkit.cli import (
    DEMO_STEPS,
    Story,
    _refused,
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


@attrs.frozen
class DemoRun:
    """One ``partnerkit demo --db FILE`` run: its exit code, what it printed, its file."""

    code: int
    out: str
    err: str
    db: Path

    def rows(self) -> set[str]:
        """The printed lines with their runs of spaces squeezed to one."""
        return {" ".join(line.split()) for line in self.out.splitlines()}

    def step(self, title: str) -> str:
        """The text of the step whose heading ends with *title* (up to the next heading)."""
        match = re.search(
            rf"^\d+\. {re.escape(title)}\n(.*?)(?=^\d+\. |^The portal is kept|\Z)",
            self.out,
            re.M | re.S,
        )
        assert match is not None, f"no step {title!r} in the output"
        return match.group(1)


def run_demo_on(db: Path) -> DemoRun:
    """Run ``partnerkit demo --db db`` in-process (outside pytest's capture)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["demo", "--db", str(db)])
    return DemoRun(code, out.getvalue(), err.getvalue(), db)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo, run once on a new file for the tests that only read what it did."""
    return run_demo_on(tmp_path_factory.mktemp("demo") / "portal.db")


def _open(db: Path) -> tuple[SQLiteStore, Portal]:
    store = SQLiteStore(db)
    return store, Portal(store=store)


def _company(store: SQLiteStore, domain: str) -> Company:
    with store.unit_of_work(write=False) as uow:
        (company,) = uow.companies.find(domain=domain)
    return company


def _user(store: SQLiteStore, email: str) -> User:
    with store.unit_of_work(write=False) as uow:
        (user,) = uow.users.find(email_key=email)
    return user


#: The headings of the story, in order (SPEC section 7).
STORY = (
    "A partner registers",
    "The partner's profile (F1)",
    "Users with each admin role (F2)",
    "Decisions, each with the rule that made it",
    "Escalation is refused",
    "A trial link, created and inspected (F3)",
    "A customer signs up through the link (F3)",
    "Consent to delegated administration (F5)",
    "Password resets on behalf of the customer (F6)",
    "A LIMITED admin is denied beyond a password admin's rights",
    "A service request on behalf of the customer (F6)",
    "A purchase offer with two services (F4)",
    "The customer adjusts a licence count; the trial converts (F4)",
    "Bad licence counts are refused at every boundary (F4)",
    "A standalone delegation offer with roles and a duration (F5)",
    "Finding customers (F6)",
    "The customer revokes the delegation (F5)",
    "A revoked link is refused (F3)",
    "The audit trail (F7)",
)


def test_demo_tells_the_whole_story_in_order_and_exits_0(demo: DemoRun) -> None:
    """Every part of SPEC section 7's story is a numbered step, in order, and the run ends
    with exit code 0, nothing on stderr, and where the portal is kept."""
    assert demo.code == 0, demo.err
    assert demo.err == ""
    headings = re.findall(r"^(\d+)\. (.*)$", demo.out, re.M)
    assert headings == [(str(n), title) for n, title in enumerate(STORY, start=1)]
    assert len(DEMO_STEPS) == len(STORY)
    assert f"The portal is kept in {demo.db}" in demo.out


def test_demo_starts_with_the_partner_its_users_decisions_and_refused_escalations(
    demo: DemoRun,
) -> None:
    """The partner registers with an advisor id, gets a user per admin role, decisions are
    printed with their rules, and both escalations are refused with theirs."""
    assert "public advisor id is PA-" in demo.out
    for role in AdminRole:
        assert role.value in demo.step("Users with each admin role (F2)")
    rows = demo.rows()
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
    escalation = demo.step("Escalation is refused")
    assert "-> refused: admin-role-lacks-permission" in escalation
    assert "-> refused: cannot-grant-partner-access-not-held" in escalation


def test_demo_prints_the_trial_links_claims_but_never_the_whole_link(demo: DemoRun) -> None:
    """The trial link's claims are printed, and they are the store's record of that link;
    the link itself only shortened, so no signed code can be copied from the output."""
    step = demo.step("A trial link, created and inspected (F3)")
    link_id = re.search(r"link id:\s+(\S+)", step)
    advisor = re.search(r"advisor id:\s+(PA-\S+)", step)
    assert link_id is not None
    assert advisor is not None
    assert re.search(r"kind:\s+trial_invitation", step)
    assert re.search(r"target:\s+EXCHANGE", step)
    assert re.search(r"delegated admin:\s+offered", step)
    assert re.search(r"expires at:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", step)
    assert re.search(r"signed by key:\s+\S+", step)
    assert "https://portal.example/join?code=" in step
    assert not re.search(r"code=[A-Za-z0-9_.-]{40}", demo.out)
    store, _ = _open(demo.db)
    try:
        with store.unit_of_work(write=False) as uow:
            record = uow.links.get(link_id.group(1))
        assert record is not None
        assert record.kind is LinkKind.TRIAL_INVITATION
        assert record.advisor_id == advisor.group(1)
        assert record.target == "EXCHANGE"
        assert record.includes_delegated_admin
    finally:
        store.close()


def test_demo_signs_a_customer_up_through_the_link_and_gets_consent(demo: DemoRun) -> None:
    """Fabrikam signs up through the trial link with a trial and a pending delegation,
    which its global admin then accepts: all five roles, no end date."""
    signup = demo.step("A customer signs up through the link (F3)")
    assert "Fabrikam (fabrikam.example) signs up; its first user kim@fabrikam.example" in signup
    assert re.search(r"subscription EXCHANGE: 25 licences, trial until \d{4}-", signup)
    assert "waits for a global admin: pending" in signup
    consent = demo.step("Consent to delegated administration (F5)")
    assert "kim sees a pending offer from Contoso, no end date" in consent
    assert ", ".join(sorted(role.value for role in AdminRole)) in consent
    assert "kim accepts: the delegation is active since" in consent
    rows = demo.rows()
    for who in ("ana (full)", "lee (limited)"):
        assert (
            f"{who} may reset passwords at Fabrikam: allowed, active-delegation-grants-permission"
        ) in rows


def test_demo_shows_a_temporary_password_once_and_keeps_only_its_hash(demo: DemoRun) -> None:
    """The FULL user's reset shows its temporary password on one line; the LIMITED user's is
    masked; neither is in the file or the audit trail, where only a real-cost scrypt hash
    is kept and the change-at-next-sign-in flag is set."""
    step = demo.step("Password resets on behalf of the customer (F6)")
    shown = re.findall(r"temporary password, shown this once: (\S+)", demo.out)
    assert len(shown) == 1
    password = shown[0]
    assert len(password) >= 16
    assert demo.out.count(password) == 1
    assert re.search(r"temporary password: \*{16,} \(shown to lee alone\)", step)
    assert "password=***>" in step
    assert "the store keeps only its hash (scrypt$32768$8$1$...)" in step
    assert "ana's temporary password still works: no" in step  # lee's reset replaced it
    assert "jo signs in with lee's: yes" in step
    assert "and with it again (one-time): no" in step
    assert "must change at next sign-in: no" in step
    files = sorted(demo.db.parent.glob(demo.db.name + "*"))
    assert files
    for file in files:
        assert password.encode() not in file.read_bytes()
    store, portal = _open(demo.db)
    try:
        jo = _user(store, "jo@fabrikam.example")
        assert not jo.must_change_password  # jo chose a new password
        with store.unit_of_work(write=False) as uow:
            credential = uow.credentials.get(jo.id)
            events = uow.audit_events()
        assert credential is None  # used up at jo's sign-in
        assert not portal.verify_password(jo.id, password)
        assert all(password not in repr(event) for event in events)
        used = [e.actor_id for e in events if e.action == "user.temporary_password.use"]
        assert used == [jo.id]
    finally:
        store.close()


def test_demo_denies_a_limited_admin_on_the_customers_global_admin(demo: DemoRun) -> None:
    """A LIMITED user acts as the customer's password admin: a global admin's password and
    user management are refused, each with its rule."""
    step = demo.step("A LIMITED admin is denied beyond a password admin's rights")
    assert re.search(
        r"lee resets the password of kim@fabrikam\.example.*\n\s+-> refused: "
        r"target-role-outside-actor-limits",
        step,
    )
    assert "-> refused: delegation-roles-lack-permission" in step


def test_demo_opens_a_service_request_on_behalf_and_the_customer_sees_it(demo: DemoRun) -> None:
    """The partner opens a critical request for the customer through the delegation, a
    LIMITED user updates it, and the customer's admin sees who raised it."""
    step = demo.step("A service request on behalf of the customer (F6)")
    assert "(critical) for Fabrikam" in step
    assert "lee marks it attention_needed" in step
    assert "critical, attention_needed," in step
    assert "raised by ana of Contoso through the delegation" in step


def test_demo_sells_two_services_converts_the_trial_and_refuses_bad_counts(
    demo: DemoRun,
) -> None:
    """The offer has two services and a quote id; a count below the service's minimum is
    refused and buys nothing; the adjusted count is bought, the trial converted in place,
    and bad counts are refused at the line, the offer and the change."""
    offer = demo.step("A purchase offer with two services (F4)")
    assert re.search(r"quote Q-\w+: 25 x Exchange Online, 10 x SharePoint Online", offer)
    accept = demo.step("The customer adjusts a licence count; the trial converts (F4)")
    assert "-> refused: licenses[SHAREPOINT]: must be between 5 and 1000" in accept
    rows = demo.rows()
    assert any(
        row.startswith("EXCHANGE 40 licences active advisor PA-")
        and row.endswith("(the trial, converted)")
        for row in rows
    )
    assert any(row.startswith("SHAREPOINT 10 licences active advisor PA-") for row in rows)
    assert "accepting again buys nothing more: the same 2 subscriptions" in accept
    bad = demo.step("Bad licence counts are refused at every boundary (F4)")
    assert "-> refused: licenses: must be between 1 and 1000000" in bad
    assert "-> refused: licenses[EXCHANGE]: must be between 1 and 1000" in bad
    assert bad.count("-> refused: licenses: must be a whole number (int)") == 3
    store, _ = _open(demo.db)
    try:
        fabrikam = _company(store, "fabrikam.example")
        with store.unit_of_work(write=False) as uow:
            subs = {s.sku: s for s in uow.subscriptions.find(customer_id=fabrikam.id)}
        assert sorted(subs) == ["EXCHANGE", "SHAREPOINT"]
        exchange, sharepoint = subs["EXCHANGE"], subs["SHAREPOINT"]
        assert (exchange.licenses, exchange.status) == (40, SubscriptionStatus.ACTIVE)
        assert exchange.trial_ends_at is not None  # the same subscription the trial was
        assert (sharepoint.licenses, sharepoint.status) == (12, SubscriptionStatus.ACTIVE)
    finally:
        store.close()


def test_demo_offers_a_standalone_delegation_with_roles_and_a_duration(demo: DemoRun) -> None:
    """The standalone offer grants two roles for 30 days; within them the partner may act,
    outside them not, and never on the customer's partner relationships."""
    step = demo.step("A standalone delegation offer with roles and a duration (F5)")
    assert "ana offers password_admin, service_admin for 30 days" in step
    shown = "its page shows link_terms: Contoso Advisors asks for password_admin, service_admin"
    assert f"{shown} for 30 days" in step
    assert "a delegated_admin link, https://portal.example/join?code=" in step
    assert re.search(r"consents through it: active until \d{4}-\d\d-\d\d", step)
    rows = demo.rows()
    assert "ana may reset_password there: allowed, active-delegation-grants-permission" in rows
    assert "ana may manage_subscriptions there: denied, delegation-roles-lack-permission" in rows
    assert (
        "ana may manage_partner_relationships there: denied, "
        "delegates-never-manage-partner-relationships"
    ) in rows
    store, _ = _open(demo.db)
    try:
        fourth = _company(store, "fourthcoffee.example")
        with store.unit_of_work(write=False) as uow:
            (delegation,) = uow.delegations.find(customer_id=fourth.id)
        assert delegation.roles == {AdminRole.PASSWORD_ADMIN, AdminRole.SERVICE_ADMIN}
        assert delegation.ends_at is not None
        assert delegation.status is DelegationStatus.ENDED
    finally:
        store.close()


def test_demo_searches_only_the_partners_own_customers(demo: DemoRun) -> None:
    """A prefix search finds the partner's customers by name, paged, and never a customer
    of the portal the partner has no relationship with."""
    rows = demo.rows()
    assert "lee searches 'fab': Fabrikam (fabrikam.example)" in rows
    assert (
        "lee searches 'f': Fabrikam (fabrikam.example), Fourth Coffee (fourthcoffee.example)"
    ) in rows
    assert "one per page: Fabrikam, then Fourth Coffee" in rows
    assert "Fabric Works (fabricworks.example) registers" in demo.out


def test_demo_revokes_the_delegation_and_the_next_attempt_is_denied(demo: DemoRun) -> None:
    """After the customer's revocation the next reset and request are refused, and the file
    holds the revoked delegation and the denials after it."""
    step = demo.step("The customer revokes the delegation (F5)")
    assert "kim revokes Contoso's delegation: revoked at" in step
    assert "(the consent it ends, by kim at " in step
    assert step.count("-> refused: no-active-delegation") == 2
    assert "Contoso ends its delegation at Fourth Coffee: ended" in step
    store, portal = _open(demo.db)
    try:
        fabrikam = _company(store, "fabrikam.example")
        kim = _user(store, "kim@fabrikam.example")
        with store.unit_of_work(write=False) as uow:
            (delegation,) = uow.delegations.find(customer_id=fabrikam.id)
        assert delegation.status is DelegationStatus.REVOKED
        trail = portal.audit_trail(kim)
        revoked_at = next(e.seq for e in trail if e.action == "delegation.revoke")
        after = [(e.action, e.reason) for e in trail if e.seq > revoked_at]
        assert after == [
            ("user.reset_password", "no-active-delegation"),
            ("service_request.create", "no-active-delegation"),
        ]
    finally:
        store.close()


def test_demo_refuses_a_revoked_link_and_creates_nothing_through_it(demo: DemoRun) -> None:
    """The revoked trial link is refused by inspection and by sign-up; no company comes in."""
    step = demo.step("A revoked link is refused (F3)")
    assert step.count("-> refused: link revoked") == 2
    # The console's list before: the three links, live; the trial's status after.
    assert step.count(": live, 1 used (no limit)") == 3
    assert "trial_invitation EXCHANGE: live" in step
    assert re.search(r"revokes the trial link lnk_\w+ by its id: revoked", step)
    store, _ = _open(demo.db)
    try:
        contoso = _user(store, "ana@contoso.example").company_id
        with store.unit_of_work(write=False) as uow:
            assert uow.companies.count(domain="tailspin.example") == 0
            links = uow.links.find(partner_id=contoso)
        revoked = [r for r in links if r.kind is LinkKind.TRIAL_INVITATION]
        assert [r.revoked_at is not None for r in revoked] == [True]
    finally:
        store.close()


def test_demo_prints_the_audit_trail_and_the_file_verifies(demo: DemoRun) -> None:
    """The printed event count is what verifying the file finds, and the printed lines show
    partner users acting on the customer through the delegation."""
    step = demo.step("The audit trail (F7)")
    printed = re.search(r"verified: all (\d+) events of the store are intact", step)
    assert printed is not None
    store, portal = _open(demo.db)
    try:
        assert portal.verify_audit_trail() == int(printed.group(1))
    finally:
        store.close()
    rows = {" ".join(line.split()[1:]) for line in step.splitlines() if line[:7].strip()}
    assert "user.reset_password success ana Contoso delegated:all" in rows
    assert (
        "user.reset_password denied lee Contoso delegated:password_admin "
        "target-role-outside-actor-limits"
    ) in rows
    assert "delegation.revoke success kim Fabrikam global_admin" in rows


def test_demo_leaves_a_consistent_partnerkit_database_behind(demo: DemoRun) -> None:
    """What the demo printed is what the file holds: eight partner users with their roles,
    and the partner's trail with every refusal its users met, in order."""
    store, portal = _open(demo.db)
    try:
        ana = _user(store, "ana@contoso.example")
        with store.unit_of_work(write=False) as uow:
            users = {u.email.split("@")[0]: u for u in uow.users.find(company_id=ana.company_id)}
        assert sorted(users) == ["ana", "bea", "gus", "lee", "nia", "pat", "sam", "uma"]
        assert users["ana"].partner_access is PartnerAccess.FULL
        assert users["gus"].admin_role is AdminRole.GLOBAL_ADMIN
        assert users["uma"].admin_role is AdminRole.USER_MANAGEMENT_ADMIN
        assert users["lee"].partner_access is PartnerAccess.LIMITED
        assert users["nia"].partner_access is None
        denied = [e.reason for e in portal.audit_trail(ana) if e.outcome == "denied"]
        assert denied == [
            "admin-role-lacks-permission",
            "cannot-grant-partner-access-not-held",
            "target-role-outside-actor-limits",
            "delegation-roles-lack-permission",
            "no-active-delegation",
            "no-active-delegation",
        ]
    finally:
        store.close()


def test_demo_run_again_on_its_file_adds_a_second_partner_and_its_own_customers(
    tmp_path: Path,
) -> None:
    """A second run on the same file uses free e-mails and domains, tells the same story
    (its search finds only its own customers) and keeps the chain whole."""
    db = tmp_path / "portal.db"
    first = run_demo_on(db)
    assert first.code == 0, first.err
    second = run_demo_on(db)
    assert second.code == 0, second.err
    assert "ana@contoso2.example" in second.out
    assert "lee searches 'fab': Fabrikam (fabrikam2.example)" in second.rows()
    counts = [
        int(m.group(1))
        for run in (first, second)
        if (m := re.search(r"verified: all (\d+) events", run.out)) is not None
    ]
    assert len(counts) == 2
    assert counts[1] == 2 * counts[0]
    store, portal = _open(db)
    try:
        assert portal.verify_audit_trail() == counts[1]
    finally:
        store.close()


def test_demo_ends_with_exit_code_1_when_the_portal_fails_to_refuse(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that expects a refusal and sees the call succeed stops the demo: exit code 1,
    the reason on stderr, no traceback."""

    def allowed_where_it_must_not_be(story: Story) -> None:
        story.heading("A refusal that does not come")
        _refused(
            story, "ana reads her own profile", lambda: story.portal.profile(story.admin), Forbidden
        )

    monkeypatch.setattr(cli, "DEMO_STEPS", [step_register_partner, allowed_where_it_must_not_be])
    code, out, err = run(capsys, "demo", "--db", str(tmp_path / "portal.db"))
    assert code == 1
    assert "the portal did not refuse: ana reads her own profile" in err
    assert "Traceback" not in out + err


def test_demo_without_db_uses_a_new_file_in_a_new_temporary_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default the demo creates ``portal.db`` in a fresh temporary directory and says where."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code, out, err = run(capsys, "demo")
    assert code == 0, err
    (made,) = tmp_path.glob("partnerkit-demo-*/portal.db")
    assert f"The portal is kept in {made}" in out


def test_demo_keeps_its_key_ring_so_the_link_commands_work_on_its_portal(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``--db`` the demo writes its key ring beside its file (mode 0600) and says
    how to go on: the commands it prints issue a link on the demo's portal and inspect it
    there. A second run with ``--keys`` signs with the same ring; a file that is no ring is
    refused before anything is written."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code, out, err = run(capsys, "demo")
    assert code == 0, err
    (keys,) = tmp_path.glob("partnerkit-demo-*/keys.json")
    db = keys.parent / "portal.db"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert f"and its key ring in {keys}. Next:" in out
    new = re.search(r"^  partnerkit (link new .*?)   # a link$", out, re.M)
    assert new is not None
    code, url, err = run(capsys, *shlex.split(new.group(1)))
    assert code == 0, err
    code, inspected, err = run(
        capsys, "link", "inspect", url.strip(), "--db", str(db), "--keys", str(keys)
    )
    assert code == 0, err
    assert "status: valid" in inspected
    assert "delegated_admin" in inspected
    ring = Keyring.from_json(keys.read_text())
    code, out, err = run(capsys, "demo", "--db", str(db), "--keys", str(keys))
    assert code == 0, err
    assert Keyring.from_json(keys.read_text()).to_json() == ring.to_json()
    notes = tmp_path / "notes.txt"
    notes.write_text("not a ring")
    code, _, err = run(capsys, "demo", "--db", str(tmp_path / "other.db"), "--keys", str(notes))
    assert code == 1
    assert "is not a key ring" in err
    assert "file name" not in err
    assert not (tmp_path / "other.db").exists()


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
    assert re.search(r"verified: all \d+ events of the store are intact", result.stdout)
    assert result.stderr == ""
    assert list(tmp_path.glob("partnerkit-demo-*/portal.db"))
