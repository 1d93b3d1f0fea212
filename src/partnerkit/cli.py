"""The ``partnerkit`` command.

``partnerkit demo [--db PATH]`` tells the story of a partner portal on a SQLite file, one step
at a time: a partner registers, its profile is shown, users with each admin role are created,
decisions are printed with the rule behind each, an escalation is refused, and the audit
trail is verified. ``partnerkit keys ...`` and ``partnerkit link ...`` (from
:mod:`partnerkit._cli_links`) manage link-signing keys and inspect links.

Every sub-command's parser sets ``func``, a handler that takes the parsed arguments and
returns the exit code. The demo is the list :data:`DEMO_STEPS` of small functions that each
tell one part of the story on a shared :class:`Story`; later parts of the story are added as
further steps.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import TextIO

import attrs

from partnerkit.directory import Company, ContactInfo, User, email_key
from partnerkit.errors import Forbidden, PartnerKitError
from partnerkit.portal import Portal
from partnerkit.roles import AdminRole, PartnerAccess, Permission
from partnerkit.stores.sqlite import SQLiteStore

__all__ = ["DEMO_STEPS", "DemoStep", "Story", "build_parser", "main"]

#: Exit code of a command that did what was asked.
EXIT_OK = 0
#: Exit code of a command that could not do it (a refused file, a store error).
EXIT_FAILED = 1
#: Exit code of a command line argparse could not make sense of.
EXIT_USAGE = 2

_SQLITE_MAGIC = b"SQLite format 3\x00"
#: Tables every partnerkit SQLite file has; a file without them is someone else's.
_PARTNERKIT_TABLES = frozenset({"schema_version", "audit_events", "audit_head"})


def _version() -> str:
    try:
        return importlib.metadata.version("partnerkit")
    except importlib.metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown"


def _link_commands() -> ModuleType | None:
    """Return :mod:`partnerkit._cli_links` if it is there (it brings ``keys`` and ``link``)."""
    name = "partnerkit._cli_links"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the ``partnerkit`` command with every sub-command on it."""
    parser = argparse.ArgumentParser(
        prog="partnerkit",
        description="Domain, policy and persistence for partner and reseller portals.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="tell the story of a partner portal on a SQLite file",
        description=(
            "Register a partner, show its profile, create users with each admin role, "
            "print decisions with their reasons, refuse an escalation and verify the audit "
            "trail, all on a SQLite file."
        ),
    )
    demo.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="the SQLite file to use (default: a new file in a new temporary directory); "
        "an existing file must be a partnerkit database",
    )
    demo.set_defaults(func=_demo_command)

    links = _link_commands()
    if links is not None:
        links.add_keys_parser(commands)
        links.add_link_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``partnerkit`` command with *argv* (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 1 when the command failed, 2 for a bad command line
        (sub-commands may define more).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors end here
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    return func(args)


# -- partnerkit demo -----------------------------------------------------------------------


@attrs.define
class Story:
    """What the steps of the demo share: the portal, where to write, who was created."""

    #: The portal the story runs on.
    portal: Portal
    #: Where the story is told.
    out: TextIO
    #: The e-mail domain of this run's partner (free in the store when the story began).
    domain: str
    #: The partner company, once registered.
    partner: Company | None = None
    #: The partner's users by first name, in the order they were created.
    users: dict[str, User] = attrs.Factory(dict)
    #: The number of the step being told.
    step: int = 0

    def heading(self, title: str) -> None:
        """Start the next numbered step."""
        self.step += 1
        print(f"\n{self.step}. {title}", file=self.out)

    def say(self, text: str = "") -> None:
        """Tell one line of the current step."""
        print(f"   {text}".rstrip(), file=self.out)

    def email(self, name: str) -> str:
        """The e-mail address of the user called *name* in this run."""
        return f"{name}@{self.domain}"

    def who(self, user_id: str | None) -> str:
        """A short name for a user id (the first name, if the story knows the user)."""
        if user_id is None:
            return "-"
        for name, user in self.users.items():
            if user.id == user_id:
                return name
        return user_id

    @property
    def admin(self) -> User:
        """The partner's first user: global admin with FULL partner access."""
        return self.users["ana"]


#: A step of the demo: tells one part of the story and records what later steps need.
DemoStep = Callable[[Story], None]


def _roles_text(user: User) -> str:
    role = user.admin_role.value if user.admin_role is not None else "no admin role"
    access = user.partner_access.value if user.partner_access is not None else "none"
    return f"{role}, partner access {access}"


def step_register_partner(story: Story) -> None:
    """A partner company registers; its first user is global admin with FULL access."""
    story.heading("A partner registers")
    partner, admin = story.portal.register_partner(
        name="Contoso Advisors",
        contact=ContactInfo(
            email=story.email("partners"),
            phone="+1 425 555 0100",
            website=f"https://{story.domain}",
            address="1 Harbour Street, Seattle",
        ),
        admin_email=story.email("ana"),
        admin_name="Ana Lima",
    )
    story.partner = partner
    story.users["ana"] = admin
    story.say(f"{partner.name} is a partner; its public advisor id is {partner.advisor_id}")
    story.say(f"its first user {admin.email} is {_roles_text(admin)}")


def step_show_profile(story: Story) -> None:
    """Everyone in the company reads the profile; only a global admin changes it."""
    story.heading("The partner's profile (F1)")
    company = story.portal.profile(story.admin)
    contact = company.contact
    assert contact is not None
    for label, value in (
        ("name", company.name),
        ("advisor id", company.advisor_id),
        ("e-mail", contact.email),
        ("phone", contact.phone),
        ("web site", contact.website),
        ("address", contact.address),
    ):
        story.say(f"{label + ':':<12}{value}")
    changed = story.portal.update_profile(
        story.admin, contact=attrs.evolve(contact, phone="+1 425 555 0199")
    )
    assert changed.contact is not None
    story.say(f"{story.admin.email} changes the phone to {changed.contact.phone} (audited)")


#: The users the demo creates: first name, display name, admin role, partner access.
DEMO_USERS: tuple[tuple[str, str, AdminRole | None, PartnerAccess | None], ...] = (
    ("gus", "Gus Moreau", AdminRole.GLOBAL_ADMIN, None),
    ("bea", "Bea Novak", AdminRole.BILLING_ADMIN, None),
    ("pat", "Pat Okafor", AdminRole.PASSWORD_ADMIN, None),
    ("sam", "Sam Ito", AdminRole.SERVICE_ADMIN, None),
    ("uma", "Uma Reyes", AdminRole.USER_MANAGEMENT_ADMIN, None),
    ("lee", "Lee Park", None, PartnerAccess.LIMITED),
    ("nia", "Nia Berg", None, None),
)


def step_create_users(story: Story) -> None:
    """The global admin creates a user with each admin role, and two without one."""
    story.heading("Users with each admin role (F2)")
    for name, display_name, role, access in DEMO_USERS:
        user = story.portal.create_user(
            story.admin,
            email=story.email(name),
            display_name=display_name,
            admin_role=role,
            partner_access=access,
        )
        story.users[name] = user
    for user in story.users.values():
        story.say(f"{user.email:<26}{_roles_text(user)}")


#: The questions the demo asks: who, what, whose (a first name or None).
DEMO_QUESTIONS: tuple[tuple[str, Permission, str | None], ...] = (
    ("bea", Permission.PURCHASE, None),
    ("sam", Permission.MANAGE_USERS, None),
    ("nia", Permission.VIEW_PROFILE, None),
    ("nia", Permission.CREATE_TRIAL_INVITATIONS, None),
    ("lee", Permission.CREATE_TRIAL_INVITATIONS, None),
    ("pat", Permission.RESET_PASSWORD, "nia"),
    ("pat", Permission.RESET_PASSWORD, "bea"),
    ("pat", Permission.RESET_PASSWORD, "pat"),
    ("uma", Permission.RESET_PASSWORD, "pat"),
    ("uma", Permission.RESET_PASSWORD, "lee"),
    ("ana", Permission.RESET_PASSWORD, "lee"),
)


def step_decisions(story: Story) -> None:
    """Ask the portal a few questions; every answer names the rule behind it."""
    story.heading("Decisions, each with the rule that made it")
    partner = story.partner
    assert partner is not None
    story.say(f"{'who':<5}{'may':<26}{'whose':<7}{'answer':<9}rule")
    for actor, permission, target in DEMO_QUESTIONS:
        target_id = story.users[target].id if target is not None else None
        decision = story.portal.decide(story.users[actor].id, permission, partner.id, target_id)
        answer = "allowed" if decision else "denied"
        story.say(f"{actor:<5}{permission.value:<26}{target or '-':<7}{answer:<9}{decision.reason}")


def step_denied_escalation(story: Story) -> None:
    """Nobody grants a right they do not hold; the attempts are refused and audited."""
    story.heading("Escalation is refused")
    portal = story.portal
    uma, gus, nia = story.users["uma"], story.users["gus"], story.users["nia"]
    attempts: tuple[tuple[str, Callable[[], object]], ...] = (
        (
            f"{uma.email} (user management admin) makes herself global admin",
            lambda: portal.assign_roles(uma, uma.id, admin_role=AdminRole.GLOBAL_ADMIN),
        ),
        (
            f"{gus.email} (global admin, no partner access) gives {nia.email} FULL access",
            lambda: portal.assign_roles(gus, nia.id, partner_access=PartnerAccess.FULL),
        ),
    )
    for what, attempt in attempts:
        story.say(what)
        try:
            attempt()
        except Forbidden as exc:
            story.say(f"  -> refused: {exc.decision.reason}")
        else:
            raise PartnerKitError(f"escalation was not refused: {what}")
    still = portal.decide(nia, Permission.CREATE_TRIAL_INVITATIONS, nia.company_id)
    story.say(f"{nia.email} still may not create trial invitations: {still.reason}")


def step_audit_trail(story: Story) -> None:
    """Show the company's audit trail and verify the hash chain of the whole store."""
    story.heading("The audit trail (F7)")
    events = story.portal.audit_trail(story.admin)
    story.say(f"{'#':>4}  {'action':<19}{'outcome':<9}{'actor':<7}{'on':<7}reason")
    for event in events:
        story.say(
            f"{event.seq:>4}  {event.action:<19}{event.outcome:<9}{story.who(event.actor_id):<7}"
            f"{story.who(event.target_id):<7}{event.reason or ''}"
        )
    count = story.portal.verify_audit_trail()
    story.say(f"verified: all {count} events of the store are intact, each chained to the last")


#: The story ``partnerkit demo`` tells, in order.
DEMO_STEPS: list[DemoStep] = [
    step_register_partner,
    step_show_profile,
    step_create_users,
    step_decisions,
    step_denied_escalation,
    step_audit_trail,
]


class _RefusedFile(Exception):
    """The file given to the demo is not one it may write to."""


def _is_partnerkit_db(path: Path) -> bool:
    with path.open("rb") as file:
        if file.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
            return False
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return _PARTNERKIT_TABLES.issubset(str(row[0]) for row in rows)


def _check_demo_file(path: Path) -> None:
    """Refuse a path that exists and is anything but an empty file or a partnerkit database."""
    if not path.exists():
        return
    if not path.is_file():
        raise _RefusedFile(f"{str(path)!r} is not a file")
    if path.stat().st_size == 0:
        return
    if not _is_partnerkit_db(path):
        raise _RefusedFile(
            f"{str(path)!r} exists and is not a partnerkit database; not touching it"
        )


def _free_domain(store: SQLiteStore) -> str:
    """The first e-mail domain whose demo admin is not in *store* yet (reruns add a partner)."""
    with store.unit_of_work(write=False) as uow:
        for n in range(1, 10_000):
            domain = "contoso.example" if n == 1 else f"contoso{n}.example"
            if not uow.users.count(email_key=email_key(f"ana@{domain}")):
                return domain
    raise PartnerKitError("no free e-mail domain left for the demo")


def demo_portal(store: SQLiteStore) -> Portal:
    """The portal the demo runs on."""
    return Portal(store=store, base_url="https://portal.example/join")


def run_demo(path: Path, out: TextIO, steps: Sequence[DemoStep] = ()) -> None:
    """Tell the story of *steps* (default :data:`DEMO_STEPS`) on the SQLite file *path*.

    Raises:
        PartnerKitError: the store failed, or a step found the portal misbehaving.
    """
    store = SQLiteStore(path)
    try:
        story = Story(portal=demo_portal(store), out=out, domain=_free_domain(store))
        print(f"partnerkit {_version()} demo on {path}", file=out)
        for step in steps or DEMO_STEPS:
            step(story)
    finally:
        store.close()


def _demo_command(args: argparse.Namespace) -> int:
    path: Path
    if args.db is None:
        path = Path(tempfile.mkdtemp(prefix="partnerkit-demo-")) / "portal.db"
    else:
        path = args.db
    try:
        _check_demo_file(path)
        run_demo(path, sys.stdout)
    except (_RefusedFile, PartnerKitError, OSError) as exc:
        print(f"partnerkit demo: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"\nThe portal is kept in {path}")
    print(f"(run 'partnerkit demo --db {path}' to add another partner to it)")
    return EXIT_OK
