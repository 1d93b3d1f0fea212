"""The ``partnerkit`` command.

``partnerkit demo [--db PATH]`` tells the story of a partner portal on a SQLite file, one step
at a time (SPEC section 7): a partner registers and shows its profile, creates users with each
admin role, decisions are printed with the rule behind each and an escalation is refused; a
trial link is created and inspected, a customer signs up through it and consents to delegated
administration; partner users reset a password and open a service request on the customer's
behalf, a LIMITED one is denied what a password admin may not do; a purchase offer of two
services is accepted with an adjusted licence count, converting the trial, and bad counts are
refused; a standalone delegation offer with roles and a duration is accepted; the partner
searches its customers; the customer revokes the delegation and the next attempt is denied; a
revoked link is refused; and the audit trail is shown and verified. ``partnerkit keys ...``
and ``partnerkit link ...`` (from :mod:`partnerkit._cli_links`) manage link-signing keys and
inspect links.

Every sub-command's parser sets ``func``, a handler that takes the parsed arguments and
returns the exit code. The demo is the list :data:`DEMO_STEPS` of small functions that each
tell one part of the story on a shared :class:`Story`; later parts of the story are added as
further steps.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import shlex
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO, cast

import attrs

from partnerkit.consent import Delegation
from partnerkit.directory import Company, ContactInfo, User, email_key
from partnerkit.errors import Forbidden, InvalidLink, PartnerKitError, ValidationError
from partnerkit.links import FILE_NAME_HINT, Keyring, LinkClaims
from partnerkit.offers import Catalog, OfferLine, Service, TrialTerms
from partnerkit.portal import Portal
from partnerkit.roles import AdminRole, PartnerAccess, Permission
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.support import PasswordHasher

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
            "Tell the whole story of a partner portal on a SQLite file: a partner and its "
            "users and roles, a trial link created, inspected and redeemed, consent to "
            "delegated administration, password resets and a service request on the "
            "customer's behalf, a LIMITED admin denied, a purchase offer with an adjusted "
            "licence count, a standalone delegation offer, a customer search, revocation, a "
            "revoked link, and the verified audit trail."
        ),
    )
    demo.add_argument(
        "--db",
        type=path_argument,
        metavar="PATH",
        help="the SQLite file to use (default: a new file in a new temporary directory); "
        "an existing file must be a partnerkit database",
    )
    demo.add_argument(
        "--keys",
        type=path_argument,
        metavar="FILE",
        help="the key ring to sign with: read if FILE exists, else made and written there "
        "(default: a new ring, kept beside the file when the demo makes the file's "
        "directory, else for this run only), so that 'partnerkit link inspect' can check "
        "the demo's links",
    )
    demo.set_defaults(func=_demo_command)

    links = _link_commands()
    if links is not None:
        links.add_keys_parser(commands)
        links.add_link_parser(commands)
    return parser


def path_argument(text: str) -> Path:
    """A command line's path, refused at once (a usage error) when no file can have it: with
    a NUL, or text the file system's encoding cannot write (a lone surrogate)."""
    try:
        if "\x00" in text:
            raise ValueError
        os.fsencode(text)
    except (ValueError, UnicodeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a path a file can have") from None
    return Path(text)


def write_new_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600; fails if it exists, and leaves nothing if the write
    fails (an empty file would refuse the next try)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``partnerkit`` command with *argv* (default: ``sys.argv[1:]``).

    Returns:
        The exit code: 0 on success, 1 when the command failed, 2 for a bad command line
        (sub-commands may define more).
    """
    parser = build_parser()
    if argv is not None and not all(issubclass(type(arg), str) for arg in argv):
        print("partnerkit: error: the arguments must be text", file=sys.stderr)
        return EXIT_USAGE
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors end here
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return func(args)
    except BrokenPipeError:
        # Whoever read the output went away (``| head``, ``| true``): nothing more is said,
        # no traceback, and Python's own flush at exit must not fail on the pipe either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED


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
    #: Which run on this file the story is (1 for a new file): customer domains carry it.
    run: int = 1
    #: The partner company, once registered.
    partner: Company | None = None
    #: The partner's users by first name, in the order they were created.
    users: dict[str, User] = attrs.Factory(dict)
    #: The customer companies by short name ("fabrikam", ...), in the order they came.
    customers: dict[str, Company] = attrs.Factory(dict)
    #: The customers' users by first name.
    people: dict[str, User] = attrs.Factory(dict)
    #: The links issued so far by name ("trial", "offer", ...).
    links: dict[str, str] = attrs.Factory(dict)
    #: What each link said when it was inspected, by the same names.
    claims: dict[str, LinkClaims] = attrs.Factory(dict)
    #: The delegations by the short name of their customer.
    delegations: dict[str, Delegation] = attrs.Factory(dict)
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

    def company_domain(self, name: str) -> str:
        """The domain of the customer called *name* in this run (``fabrikam2.example``...)."""
        return f"{name}.example" if self.run == 1 else f"{name}{self.run}.example"

    def who(self, user_id: str | None) -> str:
        """A short name for a user id (the first name, if the story knows the user)."""
        if user_id is None:
            return "-"
        for name, user in (*self.users.items(), *self.people.items()):
            if user.id == user_id:
                return name
        return user_id

    def company_name(self, company_id: str | None) -> str:
        """A short name for a company id (its name, if the story knows the company)."""
        if self.partner is not None and company_id == self.partner.id:
            return self.partner.name.split()[0]
        for company in self.customers.values():
            if company.id == company_id:
                return company.name.split()[0]
        return company_id or "-"

    @property
    def admin(self) -> User:
        """The partner's first user: global admin with FULL partner access."""
        return self.users["ana"]

    def customer(self, name: str) -> Company:
        """The customer company the story calls *name*."""
        return self.customers[name]


#: A step of the demo: tells one part of the story and records what later steps need.
DemoStep = Callable[[Story], None]


def _roles_text(user: User) -> str:
    role = user.admin_role.value if user.admin_role is not None else "no admin role"
    access = user.partner_access.value if user.partner_access is not None else "none"
    return f"{role}, partner access {access}"


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _day(moment: datetime | None) -> str:
    return "no end date" if moment is None else f"{moment:%Y-%m-%d}"


def _roles_list(roles: Iterable[AdminRole]) -> str:
    return ", ".join(sorted(role.value for role in roles))


def _short_url(url: str) -> str:
    """A link as a reader needs to see it: where it points and how long it is."""
    base, _, code = url.partition("?code=")
    return f"{base}?code={code[:12]}... ({len(url)} characters)"


def _mask(secret: str) -> str:
    return "*" * len(secret)


#: What an attempt the portal must refuse may raise (anything else is a real failure).
_Refusal = type[Forbidden] | type[ValidationError] | type[InvalidLink]


def _refused(story: Story, what: str, attempt: Callable[[], object], expect: _Refusal) -> None:
    """Tell an attempt the portal must refuse, and why it was; a success ends the demo."""
    story.say(what)
    try:
        attempt()
    except expect as exc:
        reason = exc.decision.reason if isinstance(exc, Forbidden) else str(exc)
        story.say(f"  -> refused: {reason}")
    else:
        raise PartnerKitError(f"the portal did not refuse: {what}")


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
    _refused(
        story,
        f"{uma.email} (user management admin) makes herself global admin",
        lambda: portal.assign_roles(uma, uma.id, admin_role=AdminRole.GLOBAL_ADMIN),
        Forbidden,
    )
    _refused(
        story,
        f"{gus.email} (global admin, no partner access) gives {nia.email} FULL access",
        lambda: portal.assign_roles(gus, nia.id, partner_access=PartnerAccess.FULL),
        Forbidden,
    )
    still = portal.decide(nia, Permission.CREATE_TRIAL_INVITATIONS, nia.company_id)
    story.say(f"{nia.email} still may not create trial invitations: {still.reason}")


def _tell_claims(story: Story, claims: LinkClaims) -> None:
    for label, value in (
        ("kind", claims.kind.value),
        ("link id", claims.link_id),
        ("advisor id", claims.advisor_id),
        ("target", claims.target),
        ("delegated admin", "offered" if claims.includes_delegated_admin else "not offered"),
        ("issued at", _when(claims.issued_at)),
        ("expires at", _when(claims.expires_at)),
        ("signed by key", claims.key_id),
    ):
        story.say(f"  {label + ':':<17}{value}")


def step_trial_link(story: Story) -> None:
    """A LIMITED partner user creates a trial invitation; the portal inspects the link."""
    story.heading("A trial link, created and inspected (F3)")
    portal, lee = story.portal, story.users["lee"]
    service = portal.catalog.get("EXCHANGE")
    assert service.trial is not None
    url = portal.create_trial_invitation(lee, "EXCHANGE", include_delegated_admin=True)
    story.links["trial"] = url
    story.say(f"lee (LIMITED partner access) invites customers to try {service.name}")
    story.say(
        f"({service.trial.days} days, {service.trial.licenses} licences), and offers delegated "
        "administration with it"
    )
    story.say("one link for any number of customers:")
    story.say(f"  {_short_url(url)}")
    claims = portal.inspect_link(url)
    story.claims["trial"] = claims
    story.say("inspect_link verifies the signature and the store's record; the link says:")
    _tell_claims(story, claims)
    story.say(f"signed with a {portal.keyring.algorithm} key of the portal's key ring;")
    story.say("the key itself is never printed, logged or audited")


def step_sign_up(story: Story) -> None:
    """A new customer signs up through the trial link: company, admin and trial at once."""
    story.heading("A customer signs up through the link (F3)")
    portal = story.portal
    company, kim, result = portal.sign_up(
        story.links["trial"],
        name="Fabrikam",
        domain=story.company_domain("fabrikam"),
        admin_email=f"kim@{story.company_domain('fabrikam')}",
        admin_name="Kim Sato",
        accept_delegated_admin=None,
    )
    story.customers["fabrikam"] = company
    story.people["kim"] = kim
    story.say(f"{company.name} ({company.domain}) signs up; its first user {kim.email}")
    story.say(f"is {_roles_text(kim)}")
    (trial,) = result.subscriptions
    partner = story.partner
    assert partner is not None
    advisor = f"{trial.advisor_id} ({story.company_name(partner.id)})"
    story.say(
        f"subscription {trial.sku}: {trial.licenses} licences, {trial.status.value} until "
        f"{_day(trial.trial_ends_at)}, advisor {advisor}"
    )
    delegation = result.delegation
    assert delegation is not None
    story.delegations["fabrikam"] = delegation
    story.say(
        f"the delegated administration the link offers waits for a global admin: "
        f"{delegation.status.value}"
    )
    jo = portal.create_user(kim, email=f"jo@{company.domain}", display_name="Jo Brandt")
    story.people["jo"] = jo
    story.say(f"kim adds a colleague: {jo.email}, {_roles_text(jo)}")


def step_consent(story: Story) -> None:
    """The customer's global admin reads the pending offer and consents to it."""
    story.heading("Consent to delegated administration (F5)")
    portal, kim = story.portal, story.people["kim"]
    fabrikam = story.customer("fabrikam")
    (pending,) = portal.list_delegations(kim)
    story.say(
        f"kim sees a {pending.status.value} offer from {story.company_name(pending.partner_id)}, "
        f"{_day(pending.ends_at)}, for the roles"
    )
    story.say(f"  {_roles_list(pending.roles)}")
    active = portal.accept_delegation(kim, pending.id)
    story.delegations["fabrikam"] = active
    story.say(
        f"kim accepts: the delegation is {active.status.value} since {_when(active.decided_at)}"
    )
    for name in ("ana", "lee"):
        user = story.users[name]
        decision = portal.decide(user, Permission.RESET_PASSWORD, fabrikam.id)
        access = user.partner_access.value if user.partner_access is not None else "none"
        story.say(
            f"{name} ({access}) may reset passwords at Fabrikam: "
            f"{'allowed' if decision else 'denied'}, {decision.reason}"
        )


def step_password_resets(story: Story) -> None:
    """A FULL and a LIMITED partner user reset a customer user's password on its behalf."""
    story.heading("Password resets on behalf of the customer (F6)")
    portal = story.portal
    fabrikam, jo = story.customer("fabrikam"), story.people["jo"]
    first = portal.reset_password(story.admin, fabrikam.id, jo.id)
    story.say(f"ana (FULL, acting as Fabrikam's global admin) resets {jo.email}'s password")
    story.say(f"  temporary password, shown this once: {first.temporary_password}")
    story.say(f"  in a log: {first!r}")
    with portal.store.unit_of_work(write=False) as uow:
        credential = uow.credentials.get(jo.id)
        reread = uow.users.get(jo.id)
    assert credential is not None
    assert reread is not None
    scheme = "$".join(credential.password_hash.split("$")[:4])
    story.say(
        f"  the store keeps only its hash ({scheme}$...); must change at next sign-in: "
        f"{'yes' if reread.must_change_password else 'no'}"
    )
    second = portal.reset_password(story.users["lee"], fabrikam.id, jo.id)
    story.say("lee (LIMITED, acting as Fabrikam's password admin) resets it again")
    story.say(f"  temporary password: {_mask(second.temporary_password)} (shown to lee alone)")
    story.say(
        "  ana's temporary password still works: "
        f"{'yes' if portal.verify_password(jo.id, first.temporary_password) else 'no'}"
    )
    accepted = portal.verify_password(jo.id, second.temporary_password)
    story.say(f"  jo signs in with lee's: {'yes' if accepted else 'no'}")
    again = portal.verify_password(jo.id, second.temporary_password)
    story.say(f"  and with it again (one-time): {'yes' if again else 'no'}")
    changed = portal.password_changed(jo)
    story.say(
        "  jo chooses a new password in the portal's identity provider; must change at next "
        f"sign-in: {'yes' if changed.must_change_password else 'no'}"
    )


def step_limited_denied(story: Story) -> None:
    """A LIMITED partner user is a password admin at the customer, nothing more."""
    story.heading("A LIMITED admin is denied beyond a password admin's rights")
    portal, lee, kim = story.portal, story.users["lee"], story.people["kim"]
    fabrikam = story.customer("fabrikam")
    _refused(
        story,
        f"lee resets the password of {kim.email}, Fabrikam's global admin",
        lambda: portal.reset_password(lee, fabrikam.id, kim.id),
        Forbidden,
    )
    _refused(
        story,
        "lee adds a user to Fabrikam",
        lambda: portal.create_user(
            lee,
            email=f"max@{fabrikam.domain}",
            display_name="Max Weber",
            company_id=fabrikam.id,
        ),
        Forbidden,
    )


def step_service_request(story: Story) -> None:
    """The partner opens and tracks a service request on the customer's behalf."""
    story.heading("A service request on behalf of the customer (F6)")
    portal, kim = story.portal, story.people["kim"]
    fabrikam = story.customer("fabrikam")
    request = portal.create_service_request(
        story.admin,
        fabrikam.id,
        title="Mail to fabrikam is delayed by an hour",
        severity="critical",
        description="Reported by kim on the phone.",
    )
    story.say(f'ana opens "{request.title}" ({request.severity.value}) for Fabrikam')
    updated = portal.update_service_request(
        story.users["lee"], request.id, status="attention_needed"
    )
    story.say(f"lee marks it {updated.status.value}")
    for seen in portal.list_service_requests(kim):
        story.say(f'kim sees "{seen.title}": {seen.severity.value}, {seen.status.value},')
        story.say(
            f"  raised by {story.who(seen.created_by)} of "
            f"{story.company_name(seen.created_by_company_id)} through the delegation"
        )


#: The services of the demo portal's catalogue.
DEMO_CATALOG = Catalog(
    [
        Service(
            sku="EXCHANGE",
            name="Exchange Online",
            min_licenses=1,
            max_licenses=1000,
            trial=TrialTerms(days=30, licenses=25),
        ),
        Service(sku="SHAREPOINT", name="SharePoint Online", min_licenses=5, max_licenses=1000),
        Service(
            sku="INTUNE",
            name="Windows Intune",
            min_licenses=1,
            max_licenses=500,
            trial=TrialTerms(days=30, licenses=10),
        ),
    ]
)


def step_purchase_offer(story: Story) -> None:
    """The partner offers two services with licence counts; the offer has a quote id."""
    story.heading("A purchase offer with two services (F4)")
    portal = story.portal
    lines = [OfferLine(sku="EXCHANGE", licenses=25), OfferLine(sku="SHAREPOINT", licenses=10)]
    url, offer = portal.create_purchase_offer(story.admin, lines)
    story.links["offer"] = url
    story.claims["offer"] = portal.inspect_link(url)
    story.say(
        f"ana sends quote {offer.quote_id}: "
        + ", ".join(
            f"{line.licenses} x {portal.catalog.get(line.sku).name}" for line in offer.lines
        )
    )
    story.say(f"its link: {_short_url(url)}")
    story.say(
        f"inspected: {story.claims['offer'].kind.value} for offer {offer.id}, "
        f"expires {_day(offer.expires_at)}"
    )


def step_accept_offer(story: Story) -> None:
    """The customer adjusts a count within bounds; the trial converts; a bad count is refused."""
    story.heading("The customer adjusts a licence count; the trial converts (F4)")
    portal, kim = story.portal, story.people["kim"]
    url = story.links["offer"]
    _refused(
        story,
        "kim asks for 2 SharePoint licences (the service sells 5 to 1000)",
        lambda: portal.redeem(url, kim, licenses={"SHAREPOINT": 2}),
        ValidationError,
    )
    story.say("  nothing was bought")
    (trial,) = (s for s in portal.list_subscriptions(kim) if s.sku == "EXCHANGE")
    result = portal.redeem(url, kim, licenses={"EXCHANGE": 40})
    story.say("kim accepts the offer with 40 Exchange licences instead of 25:")
    for sub in result.subscriptions:
        converted = " (the trial, converted)" if sub.id == trial.id else ""
        story.say(
            f"  {sub.sku:<11}{sub.licenses:>4} licences  {sub.status.value:<7}"
            f"advisor {sub.advisor_id}{converted}"
        )
    again = portal.redeem(url, kim, licenses={"EXCHANGE": 40})
    story.say(
        f"accepting again buys nothing more: the same {len(again.subscriptions)} subscriptions"
    )


def step_bad_counts(story: Story) -> None:
    """A licence count that is not a whole number within bounds is refused at every boundary."""
    story.heading("Bad licence counts are refused at every boundary (F4)")
    portal, kim = story.portal, story.people["kim"]
    (sharepoint,) = (s for s in portal.list_subscriptions(kim) if s.sku == "SHAREPOINT")
    _refused(
        story,
        "an offer line of 0 licences",
        lambda: OfferLine(sku="EXCHANGE", licenses=0),
        ValidationError,
    )
    _refused(
        story,
        "ana offers 5000 Exchange licences (the service sells 1 to 1000)",
        lambda: portal.create_purchase_offer(story.admin, [OfferLine("EXCHANGE", 5000)]),
        ValidationError,
    )

    def change_to(count: object) -> Callable[[], object]:
        # The wrong type on purpose: the portal must refuse it.
        return lambda: portal.change_licenses(kim, sharepoint.id, cast(int, count))

    for bad in (True, 12.0, "12"):
        _refused(
            story, f"kim changes SharePoint to {bad!r} licences", change_to(bad), ValidationError
        )
    changed = portal.change_licenses(kim, sharepoint.id, 12)
    story.say(f"kim changes SharePoint to 12 licences: done, version {changed.version}")


def step_standalone_delegation(story: Story) -> None:
    """A standalone delegation offer, with chosen roles and a duration, to another customer."""
    story.heading("A standalone delegation offer with roles and a duration (F5)")
    portal = story.portal
    domain = story.company_domain("fourthcoffee")
    fourth, max_ = portal.register_customer(
        name="Fourth Coffee", domain=domain, admin_email=f"max@{domain}", admin_name="Max Weber"
    )
    story.customers["fourthcoffee"] = fourth
    story.people["max"] = max_
    roles = {AdminRole.PASSWORD_ADMIN, AdminRole.SERVICE_ADMIN}
    url = portal.offer_delegated_admin(story.admin, roles=roles, duration=timedelta(days=30))
    story.links["delegation"] = url
    claims = portal.inspect_link(url)
    story.say(f"ana offers {_roles_list(roles)} for 30 days, not bound to any customer:")
    story.say(f"  a {claims.kind.value} link, {_short_url(url)}")
    asked = portal.link_terms(url)  # what the customer's consent page shows
    assert asked.delegation_roles is not None
    assert asked.delegation_duration is not None
    story.say(
        f"  its page shows link_terms: {asked.partner_name} asks for "
        f"{_roles_list(asked.delegation_roles)} for {asked.delegation_duration.days} days"
    )
    result = portal.redeem(url, max_, accept_delegated_admin=True)
    delegation = result.delegation
    assert delegation is not None
    story.delegations["fourthcoffee"] = delegation
    story.say(
        f"{max_.email} (global admin of {fourth.name}) consents through it: "
        f"{delegation.status.value} until {_day(delegation.ends_at)}"
    )
    for permission in (
        Permission.RESET_PASSWORD,
        Permission.MANAGE_SUBSCRIPTIONS,
        Permission.MANAGE_PARTNER_RELATIONSHIPS,
    ):
        decision = portal.decide(story.admin, permission, fourth.id)
        story.say(
            f"  ana may {permission.value} there: "
            f"{'allowed' if decision else 'denied'}, {decision.reason}"
        )


def step_customer_search(story: Story) -> None:
    """A partner user searches its customers by prefix; others' customers stay hidden."""
    story.heading("Finding customers (F6)")
    portal, lee = story.portal, story.users["lee"]
    domain = story.company_domain("fabricworks")
    other, _ = portal.register_customer(
        name="Fabric Works", domain=domain, admin_email=f"lou@{domain}"
    )
    story.say(f"{other.name} ({other.domain}) registers on the portal, not through Contoso")
    for prefix in ("fab", "f", "fourth"):
        found = portal.find_customers(lee, prefix)
        names = ", ".join(f"{c.name} ({c.domain})" for c in found) or "nobody"
        story.say(f"lee searches {prefix!r}: {names}")
    first = portal.find_customers(lee, "", limit=1)
    rest = portal.find_customers(lee, "", limit=1, after=first[-1].id)
    story.say(f"one per page: {first[0].name}, then {rest[0].name}")


def step_revocation(story: Story) -> None:
    """The customer revokes the delegation; the very next attempt is denied."""
    story.heading("The customer revokes the delegation (F5)")
    portal, kim = story.portal, story.people["kim"]
    fabrikam, jo = story.customer("fabrikam"), story.people["jo"]
    revoked = portal.revoke_delegation(kim, story.delegations["fabrikam"].id)
    story.delegations["fabrikam"] = revoked
    consented = next(n for n, u in story.people.items() if u.id == revoked.accepted_by)
    story.say(
        f"kim revokes Contoso's delegation: {revoked.status.value} at {_when(revoked.decided_at)}"
        f" (the consent it ends, by {consented} at {_when(revoked.accepted_at)}, stays on it)"
    )
    _refused(
        story,
        f"lee resets {jo.email}'s password once more",
        lambda: portal.reset_password(story.users["lee"], fabrikam.id, jo.id),
        Forbidden,
    )
    _refused(
        story,
        "ana opens another service request for Fabrikam",
        lambda: portal.create_service_request(story.admin, fabrikam.id, title="Follow-up"),
        Forbidden,
    )
    ended = portal.end_delegation(story.admin, story.delegations["fourthcoffee"].id)
    story.delegations["fourthcoffee"] = ended
    story.say(f"from its side, Contoso ends its delegation at Fourth Coffee: {ended.status.value}")


def step_revoked_link(story: Story) -> None:
    """A revoked link stops working at once, for inspection and redemption alike."""
    story.heading("A revoked link is refused (F3)")
    portal = story.portal
    url, claims = story.links["trial"], story.claims["trial"]
    story.say("Contoso's console lists the links it issued (the store never holds a URL):")
    listed = sorted(portal.list_links(story.admin), key=lambda link: (link.created_at, link.id))
    for link in listed:
        uses = "no limit" if link.max_uses is None else f"at most {link.max_uses}"
        story.say(
            f"  {link.kind.value} {link.target}: {link.status.value}, {link.uses} used ({uses})"
        )
    portal.revoke_link(story.admin, claims.link_id)
    [revoked] = [link for link in portal.list_links(story.admin) if link.id == claims.link_id]
    story.say(f"ana revokes the trial link {claims.link_id} by its id: {revoked.status.value}")
    _refused(story, "the portal inspects it", lambda: portal.inspect_link(url), InvalidLink)
    domain = story.company_domain("tailspin")
    _refused(
        story,
        f"a new customer ({domain}) signs up through it",
        lambda: portal.sign_up(
            url, name="Tailspin Toys", domain=domain, admin_email=f"ivy@{domain}"
        ),
        InvalidLink,
    )
    story.say("  no company, user or subscription was created")


def step_audit_trail(story: Story) -> None:
    """Show the customer's audit trail and verify the hash chain of the whole store."""
    story.heading("The audit trail (F7)")
    portal = story.portal
    partner_events = portal.audit_trail(story.admin)
    events = portal.audit_trail(story.people["kim"])
    story.say(
        f"Contoso's trail holds {len(partner_events)} events and Fabrikam's {len(events)}; "
        "Fabrikam's shows"
    )
    story.say("every act of Contoso's users on it, and its own (the sign-up is its new admin's):")
    story.say(f"{'#':>4}  {'action':<30}{'outcome':<8}{'actor':<6}{'of':<9}{'role':<26}reason")
    for event in events:
        story.say(
            f"{event.seq:>4}  {event.action:<30}{event.outcome:<8}{story.who(event.actor_id):<6}"
            f"{story.company_name(event.actor_company_id):<9}{event.role or '-':<26}"
            f"{event.reason or ''}"
        )
    count = portal.verify_audit_trail()
    story.say(f"verified: all {count} events of the store are intact, each chained to the last")
    story.say("no key, temporary password or whole link is in any of them")


#: The story ``partnerkit demo`` tells, in order.
DEMO_STEPS: list[DemoStep] = [
    step_register_partner,
    step_show_profile,
    step_create_users,
    step_decisions,
    step_denied_escalation,
    step_trial_link,
    step_sign_up,
    step_consent,
    step_password_resets,
    step_limited_denied,
    step_service_request,
    step_purchase_offer,
    step_accept_offer,
    step_bad_counts,
    step_standalone_delegation,
    step_customer_search,
    step_revocation,
    step_revoked_link,
    step_audit_trail,
]


class _RefusedFile(Exception):
    """The file given to the demo is not one it may write to."""


def _read_only(path: Path, statement: str) -> list[Any]:
    """The rows of one *statement* on the SQLite file at *path*, opened read only."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(statement).fetchall()
    finally:
        conn.close()


def _is_partnerkit_db(path: Path) -> bool:
    """Whether *path* is a SQLite file with partnerkit's tables (read only).

    Raises:
        OSError: it cannot be read, or SQLite cannot open it (a WAL file without its
            shared-memory file, in a directory this process may not write to): that is not
            an answer to the question, and must not be taken for "no".
    """
    with path.open("rb") as file:
        if file.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
            return False
    try:
        rows = _read_only(path, "SELECT name FROM sqlite_master WHERE type = 'table'")
    except sqlite3.OperationalError as exc:
        raise OSError(f"SQLite cannot open it ({exc})") from None
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


#: The customer companies of the story, by the name their domain starts with.
DEMO_CUSTOMER_DOMAINS = ("fabrikam", "fourthcoffee", "fabricworks", "tailspin")


def _free_run(store: SQLiteStore) -> int:
    """The first run number whose partner admin and customer domains are all free in *store*.

    Rerunning the demo on its file adds a new partner and new customers next to the old ones.
    """
    with store.unit_of_work(write=False) as uow:
        for run in range(1, 10_000):
            suffix = "" if run == 1 else str(run)
            taken = uow.users.count(email_key=email_key(f"ana@contoso{suffix}.example")) or any(
                uow.companies.count(domain=f"{name}{suffix}.example")
                for name in DEMO_CUSTOMER_DOMAINS
            )
            if not taken:
                return run
    raise PartnerKitError("no free e-mail domain left for the demo")


def demo_portal(store: SQLiteStore, keyring: Keyring | None = None) -> Portal:
    """The portal the demo runs on: the demo catalogue and *keyring* (default: a fresh HMAC
    key ring).

    A fresh key ring lives as long as the run: links of an earlier run on the same file no
    longer verify, as after a key rotation and removal. Passwords are hashed with the real
    scrypt cost of :class:`~partnerkit.support.PasswordHasher`.
    """
    return Portal(
        store=store,
        keyring=Keyring.generate() if keyring is None else keyring,
        catalog=DEMO_CATALOG,
        base_url="https://portal.example/join",
        password_hasher=PasswordHasher(),
    )


def run_demo(
    path: Path, out: TextIO, steps: Sequence[DemoStep] = (), keyring: Keyring | None = None
) -> str:
    """Tell the story of *steps* (default :data:`DEMO_STEPS`) on the SQLite file *path*,
    signing with *keyring* (default: a fresh one). Returns the e-mail address of this run's
    partner admin.

    Raises:
        PartnerKitError: the store failed, or a step found the portal misbehaving.
    """
    store = SQLiteStore(path)
    try:
        run = _free_run(store)
        domain = "contoso.example" if run == 1 else f"contoso{run}.example"
        story = Story(portal=demo_portal(store, keyring), out=out, domain=domain, run=run)
        print(f"partnerkit {_version()} demo on {_shown_path(path)}", file=out)
        for step in steps or DEMO_STEPS:
            step(story)
    finally:
        store.close()
    return story.email("ana")


def _demo_command(args: argparse.Namespace) -> int:
    path: Path
    keys: Path | None = args.keys
    if args.db is None:
        directory = Path(tempfile.mkdtemp(prefix="partnerkit-demo-"))
        path = directory / "portal.db"
        keys = directory / "keys.json" if keys is None else keys
    else:
        path = args.db
    try:
        _check_demo_file(path)
        keyring = None if keys is None else _demo_keyring(keys)
        admin = run_demo(path, sys.stdout, keyring=keyring)
    except (_RefusedFile, PartnerKitError, OSError) as exc:
        print(f"partnerkit demo: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    shown = _shown_path(path)
    print(f"\nThe portal is kept in {shown}")
    if keys is None:
        print(f"(run 'partnerkit demo --db {shown}' to add another partner to it)")
    else:
        ring = _shown_path(keys)
        given = f"--db {shlex.quote(shown)} --keys {shlex.quote(ring)}"
        print(f"and its key ring in {ring}. Next:")
        print(f"  partnerkit demo {given}   # another partner")
        print(
            f"  partnerkit link new {given} --actor {admin} "
            "--base-url https://portal.example/join --delegated-admin   # a link"
        )
        print(f"  partnerkit link inspect URL {given}   # check it")
    return EXIT_OK


def _demo_keyring(path: Path) -> Keyring:
    """The key ring in *path*, or a new one written there (mode 0600) if there is none."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        ring = Keyring.generate()
        write_new_file(path, ring.to_json())
        return ring
    except UnicodeError:
        raise _RefusedFile(f"{str(path)!r} is not a key ring") from None
    try:
        return Keyring.from_json(text)
    except PartnerKitError as exc:
        reason = str(exc).removesuffix(FILE_NAME_HINT)  # a file's name is what was given
        raise _RefusedFile(f"{str(path)!r} is not a key ring: {reason}") from None


def _shown_path(path: Path) -> str:
    """*path* as any output can take it: bytes of a name that are not UTF-8 (which Python
    keeps as lone surrogates) are shown as escapes, not a ``UnicodeEncodeError``."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


if __name__ == "__main__":  # python -m partnerkit.cli
    raise SystemExit(main())
