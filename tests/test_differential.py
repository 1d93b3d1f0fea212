"""The same Portal story on ``MemoryStore``, ``SQLiteStore`` and ``PostgresStore`` gives the same
answers and leaves the same state.

Hypothesis draws a sequence of Portal operations: registrations, users and roles with any
actor, links of every kind, redemptions and sign-ups with licence counts inside and outside
the bounds, consent and its lifecycle, password resets, service requests, licence changes,
link revocation, customer search, decisions and clock advances. The sequence runs on the
three stores side by side, each with a portal and a fake clock of its own, and ends with every
company reading everything the Portal shows it (searches, listings, its audit trail). At every
step the three must agree on the exception (class, and its ``field``, rule or ``kind``) or on
success; at the end every step's full result, every row of every table and the whole audit
trail must be the same.

Ids are random, so each store's ids differ. Everything is compared after replacing each id by
a label given in order of first appearance: in the steps' results, then in the audit trail,
then in the tables (rows in an order that does not depend on ids). Links are records of one
store, so each portal issues its own and the test maps them by the order they were issued.
"""

from __future__ import annotations

import enum
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from partnerkit import (
    AdminRole,
    ContactInfo,
    Forbidden,
    Keyring,
    NotFound,
    OfferLine,
    PartnerAccess,
    PartnerKitError,
    Permission,
    Portal,
    User,
    ValidationError,
)
from partnerkit.audit import correlation
from partnerkit.directory import CompanyKind
from partnerkit.links import code_from_url
from partnerkit.ports import TABLES, Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FAST_HASHER, FakeClock, build_world, sample_catalog

if find_spec("psycopg") is None and not os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"):
    pytest.skip("psycopg is not installed (partnerkit[postgres])", allow_module_level=True)

pytest_plugins = ["pg_fixtures"]
pytestmark = pytest.mark.postgres

BASE_URL = "https://portal.example/join"
#: What a step that names an object no store has passes instead of an id.
UNKNOWN = "unknown"
#: A link no store issued.
BAD_URL = f"{BASE_URL}?code=not.a.link"

#: The random parts of stored data: ids (``usr_<32 hex>``), advisor codes and quote ids.
ID_TOKEN = re.compile(
    r"\b[a-z]{3}_[0-9a-f]{32}\b|\bPA-[A-Z2-9]{5}-[A-Z2-9]{5}\b|\bQ-[A-Z2-9]{10}\b"
)
#: Fields whose values are random by design (salts, hashes over random ids, secrets).
RANDOM_FIELDS = frozenset({"password_hash", "temporary_password", "hash", "prev_hash"})
#: For each table, a lookup by company through which the whole table is read.
TABLE_LOOKUP = {
    "companies": None,
    "users": "company_id",
    "links": "partner_id",
    "redemptions": "customer_id",
    "trial_invitations": "partner_id",
    "purchase_offers": "partner_id",
    "subscriptions": "customer_id",
    "delegation_offers": "partner_id",
    "delegations": "partner_id",
    "credentials": "company_id",
    "service_requests": "customer_id",
    "customer_relations": "partner_id",
}


# -- the three runs ---------------------------------------------------------------------------


@attrs.define
class Run:
    """One store's portal, clock, and the handles the steps pick objects from."""

    name: str
    portal: Portal
    clock: FakeClock
    companies: list[str] = attrs.Factory(list)
    #: Every user ever created (removed ones too), and the same by company.
    users: list[str] = attrs.Factory(list)
    members: dict[str, list[str]] = attrs.Factory(dict)
    #: ``(url, link id)`` in the order the links were issued.
    links: list[tuple[str, str]] = attrs.Factory(list)
    delegations: list[str] = attrs.Factory(list)
    subscriptions: list[str] = attrs.Factory(list)
    #: ``(user id, temporary password)`` of every reset that succeeded, in order.
    passwords: list[tuple[str, str]] = attrs.Factory(list)
    #: The raw outcome of every step: its result, or the PartnerKitError it raised.
    outcomes: list[object] = attrs.Factory(list)
    #: A counter that makes company names and fresh e-mail addresses distinct.
    names: int = 0

    @staticmethod
    def _pick(items: list[Any], ix: int | None) -> Any:
        return items[ix % len(items)] if items and ix is not None else UNKNOWN

    def user(self, who: Who) -> str:
        company, ix = who
        if company is None:
            return str(self._pick(self.users, ix))
        return str(self._pick(self.members.get(self.company(company), []), ix))

    def add_user(self, user: User) -> None:
        self.users.append(user.id)
        self.members.setdefault(user.company_id, []).append(user.id)

    def email(self, email: str | None) -> str:
        """*email*, or (for ``None``) an address nobody has yet."""
        self.names += 1
        return f"fresh{self.names}@pool.example" if email is None else email

    def company(self, ix: int | None) -> str:
        return str(self._pick(self.companies, ix))

    def url(self, ix: int | None) -> str:
        return self._pick(self.links, ix)[0] if self.links and ix is not None else BAD_URL

    def link_id(self, ix: int | None) -> str:
        return self._pick(self.links, ix)[1] if self.links and ix is not None else UNKNOWN

    def delegation(self, ix: int | None) -> str:
        return str(self._pick(self.delegations, ix))

    def subscription(self, ix: int | None) -> str:
        return str(self._pick(self.subscriptions, ix))

    def company_name(self, stem: str) -> str:
        # Distinct case-folded names: search results are ordered by name, then by (random) id.
        self.names += 1
        return f"{stem} {self.names}"

    def learn_link(self, url: str) -> None:
        claims = self.portal.keyring.verify(code_from_url(url), now=self.clock())
        self.links.append((url, claims.link_id))

    def learn(self, ids: list[str], new: str | None) -> None:
        if new is not None and new not in ids:
            ids.append(new)

    def learn_redemption(self, redemption: Any) -> None:
        for sub in redemption.subscriptions:
            self.learn(self.subscriptions, sub.id)
        if redemption.delegation is not None:
            self.learn(self.delegations, redemption.delegation.id)


# -- the operations ---------------------------------------------------------------------------

#: Who acts, or whom an action targets: ``(company, n)`` is the *n*-th user of a company
#: (mostly the world's partner or customer), ``(None, n)`` the *n*-th user of all.
Who = tuple[int | None, int | None]

IX = st.integers(min_value=0, max_value=63)
#: A position: half the time among the first five (the world's users, the first links),
#: else any; about one time in twenty ``None``, an id no store knows.
MAYBE_IX = st.integers(min_value=0, max_value=99).map(
    lambda n: n % 5 if n < 50 else n if n < 95 else None
)
WHO = st.one_of(
    st.tuples(st.integers(min_value=0, max_value=99).map(lambda n: n % 2 if n < 70 else n), IX),
    st.tuples(st.none(), MAYBE_IX),
)
#: Mostly someone of the world's partner (or customer), whose requests are likelier to pass.
PARTNER_SIDE = st.one_of(st.tuples(st.just(0), IX), WHO)
CUSTOMER_SIDE = st.one_of(st.tuples(st.just(1), IX), WHO)
ROLE = st.none() | st.sampled_from(AdminRole)
ACCESS = st.none() | st.sampled_from(PartnerAccess)
SKU = st.sampled_from(["EXCHANGE", "INTUNE", "NOPE"])
# EXCHANGE takes 1 to 1,000 licences, INTUNE 5 to 500: bounds, neighbours and non-counts.
COUNT = st.sampled_from([1, 4, 5, 25, 500, 501, 1000, 1001, 0, -3, True, 2.5, "7"])
#: An ``OfferLine`` refuses non-counts itself, before any portal: offers get whole numbers
#: around the catalogue's bounds.
OFFER_COUNT = st.sampled_from([1, 4, 5, 25, 500, 501, 1000, 1001])
#: ``None`` for an address nobody has; else a few that clash (case-insensitively) or are
#: invalid.
EMAIL = st.none() | st.sampled_from(
    ["ann@pool.example", "bob@pool.example", "ANN@Pool.Example", "ada@contoso.example", "x@y"]
)
DOMAIN = st.sampled_from(
    [f"{label}.example" for label in "abcdefg"] + ["A.Example.", "fabrikam.example", "bad_domain"]
)
STEM = st.sampled_from(["Fabrikam", "fabrikam", "Northwind", "Straße", "STRASSE", "Ärzte", " Pad"])
#: Prefixes of names (case-folded: "Straße" is "strasse") and of domains.
PREFIXES = ("", "fab", "FAB", "Fabrikam.E", "strass", "Straß", "ärz", "north", "a.ex", "zz")
LICENSES = st.none() | st.dictionaries(SKU, COUNT, max_size=2)
ACCEPT = st.sampled_from([None, True, False])
MAX_USES = st.sampled_from([None, 1, 2, 0])


@attrs.frozen
class RegisterPartner:
    stem: str
    email: str | None

    def __call__(self, run: Run) -> object:
        company, admin = run.portal.register_partner(
            name=run.company_name(self.stem),
            contact=ContactInfo(email="hello@partner.example", phone="+1 425 555 0199"),
            admin_email=run.email(self.email),
        )
        run.companies.append(company.id)
        run.add_user(admin)
        return company, admin


@attrs.frozen
class RegisterCustomer:
    stem: str
    domain: str
    email: str | None

    def __call__(self, run: Run) -> object:
        company, admin = run.portal.register_customer(
            name=run.company_name(self.stem),
            domain=self.domain,
            admin_email=run.email(self.email),
        )
        run.companies.append(company.id)
        run.add_user(admin)
        return company, admin


@attrs.frozen
class CreateUser:
    actor: Who
    #: ``None``: the actor's own company; else one to act on through a delegation.
    company: int | None
    email: str | None
    admin_role: AdminRole | None
    access: PartnerAccess | None

    def __call__(self, run: Run) -> object:
        user = run.portal.create_user(
            run.user(self.actor),
            email=run.email(self.email),
            display_name="New User",
            admin_role=self.admin_role,
            partner_access=self.access,
            company_id=None if self.company is None else run.company(self.company),
        )
        run.add_user(user)
        return user


@attrs.frozen
class AssignRoles:
    actor: Who
    target: Who
    company: int | None
    admin_role: AdminRole | None
    access: PartnerAccess | None

    def __call__(self, run: Run) -> object:
        return run.portal.assign_roles(
            run.user(self.actor),
            run.user(self.target),
            admin_role=self.admin_role,
            partner_access=self.access,
            company_id=None if self.company is None else run.company(self.company),
        )


@attrs.frozen
class RemoveUser:
    actor: Who
    target: Who
    company: int | None

    def __call__(self, run: Run) -> object:
        company_id = None if self.company is None else run.company(self.company)
        run.portal.remove_user(run.user(self.actor), run.user(self.target), company_id=company_id)
        return None


@attrs.frozen
class UpdateUser:
    actor: Who
    target: Who
    company: int | None
    email: str | None
    display_name: str | None

    def __call__(self, run: Run) -> object:
        company_id = None if self.company is None else run.company(self.company)
        return run.portal.update_user(
            run.user(self.actor),
            run.user(self.target),
            email=self.email,
            display_name=self.display_name,
            company_id=company_id,
        )


@attrs.frozen
class CreateTrial:
    actor: Who
    sku: str
    include_delegated_admin: bool
    max_uses: int | None

    def __call__(self, run: Run) -> object:
        url = run.portal.create_trial_invitation(
            run.user(self.actor),
            self.sku,
            self.include_delegated_admin,
            max_uses=self.max_uses,
        )
        run.learn_link(url)
        return run.links[-1][1]


@attrs.frozen
class CreateOffer:
    actor: Who
    lines: tuple[tuple[str, int], ...]
    include_delegated_admin: bool
    max_uses: int | None

    def __call__(self, run: Run) -> object:
        lines = [OfferLine(sku=sku, licenses=n) for sku, n in self.lines]
        url, offer = run.portal.create_purchase_offer(
            run.user(self.actor), lines, self.include_delegated_admin, max_uses=self.max_uses
        )
        run.learn_link(url)
        return run.links[-1][1], offer


@attrs.frozen
class OfferDelegation:
    actor: Who
    roles: frozenset[AdminRole] | None
    duration_days: int | None

    def __call__(self, run: Run) -> object:
        duration = None if self.duration_days is None else timedelta(days=self.duration_days)
        url = run.portal.offer_delegated_admin(run.user(self.actor), self.roles, duration)
        run.learn_link(url)
        return run.links[-1][1]


@attrs.frozen
class Redeem:
    link: int | None
    actor: Who
    licenses: dict[str, Any] | None
    accept: bool | None

    def __call__(self, run: Run) -> object:
        result = run.portal.redeem(
            run.url(self.link), run.user(self.actor), self.licenses, self.accept
        )
        run.learn_redemption(result)
        return result


@attrs.frozen
class SignUp:
    link: int | None
    stem: str
    domain: str
    email: str | None
    licenses: dict[str, Any] | None
    accept: bool | None

    def __call__(self, run: Run) -> object:
        company, admin, result = run.portal.sign_up(
            run.url(self.link),
            name=run.company_name(self.stem),
            domain=self.domain,
            admin_email=run.email(self.email),
            licenses=self.licenses,
            accept_delegated_admin=self.accept,
        )
        run.companies.append(company.id)
        run.add_user(admin)
        run.learn_redemption(result)
        return company, admin, result


class Verb(enum.Enum):
    ACCEPT = "accept_delegation"
    DECLINE = "decline_delegation"
    REVOKE = "revoke_delegation"
    END = "end_delegation"


@attrs.frozen
class Consent:
    verb: Verb
    actor: Who
    delegation: int | None

    def __call__(self, run: Run) -> object:
        move: Callable[[str, str], object] = getattr(run.portal, self.verb.value)
        return move(run.user(self.actor), run.delegation(self.delegation))


@attrs.frozen
class ResetPassword:
    actor: Who
    company: int | None
    target: Who

    def __call__(self, run: Run) -> object:
        reset = run.portal.reset_password(
            run.user(self.actor), run.company(self.company), run.user(self.target)
        )
        run.passwords.append((reset.user_id, reset.temporary_password))
        return reset


@attrs.frozen
class VerifyPassword:
    """Sign in with a temporary password a reset gave (or a wrong one): whether each store
    still lets it in after what happened since (revocations, role changes, removals)."""

    ix: int
    wrong: bool

    def __call__(self, run: Run) -> object:
        if not run.passwords:
            return run.portal.verify_password(UNKNOWN, "no reset yet")
        user_id, password = run.passwords[self.ix % len(run.passwords)]
        return run.portal.verify_password(user_id, password + "x" if self.wrong else password)


@attrs.frozen
class OpenServiceRequest:
    actor: Who
    company: int | None
    severity: str

    def __call__(self, run: Run) -> object:
        return run.portal.create_service_request(
            run.user(self.actor),
            run.company(self.company),
            title="Mail does not arrive",
            severity=self.severity,
        )


@attrs.frozen
class ChangeLicenses:
    actor: Who
    subscription: int | None
    count: Any

    def __call__(self, run: Run) -> object:
        return run.portal.change_licenses(
            run.user(self.actor), run.subscription(self.subscription), self.count
        )


@attrs.frozen
class RevokeLink:
    actor: Who
    link: int | None

    def __call__(self, run: Run) -> object:
        run.portal.revoke_link(run.user(self.actor), run.link_id(self.link))
        return None


@attrs.frozen
class LinkTermsOf:
    """What a link's page shows (``link_terms``): the same terms, or the same refusal."""

    link: int | None

    def __call__(self, run: Run) -> object:
        return run.portal.link_terms(run.url(self.link))


@attrs.frozen
class PartnerProfileOf:
    """A company's profile as a partner's customer reads it (``partner_profile``)."""

    actor: Who
    company: int | None

    def __call__(self, run: Run) -> object:
        return run.portal.partner_profile(run.user(self.actor), run.company(self.company))


@attrs.frozen
class FindCustomers:
    actor: Who
    prefix: str
    limit: int
    after: int | None

    def __call__(self, run: Run) -> object:
        after = None if self.after is None else run.company(self.after)
        return run.portal.find_customers(run.user(self.actor), self.prefix, self.limit, after)


@attrs.frozen
class ReadEverything:
    """Every company's first user reads what the Portal shows it: customer search with every
    prefix and page by page, users, subscriptions, delegations, service requests, a
    partner's links and offers, and the company's audit trail (the stores' own queries,
    which the table dump does not use)."""

    def __call__(self, run: Run) -> object:
        portal = run.portal
        seen: list[object] = []
        for company in run.companies:
            reader = run.members[company][0]
            for prefix in PREFIXES:
                seen.append(_outcome(portal.find_customers, reader, prefix, 50))
            after = None
            while True:
                page = _outcome(portal.find_customers, reader, "", 2, after)
                seen.append(page)
                if not isinstance(page, list) or len(page) < 2:
                    break
                after = page[-1].id
            for listing in (
                portal.list_users,
                portal.list_subscriptions,
                portal.list_delegations,
                portal.list_service_requests,
                portal.list_links,
                portal.list_offers,
            ):
                # Ordered by their (random) ids: compared as sets.
                found = _outcome(listing, reader)
                seen.append(Unordered(found) if isinstance(found, list) else found)
                if isinstance(found, list):  # a walk a page of two at a time: the same list
                    assert _walk_pages(listing, reader) == found
            # Each company by id, as a partner's console opens a customer's page.
            for other in run.companies:
                seen.append(_outcome(portal.customer_profile, reader, other))
            # A partner's lists narrowed to each company (nothing for those it has none of).
            for listing in (portal.list_subscriptions, portal.list_delegations):
                for other in run.companies:
                    found = _outcome(partial(listing, customer_id=other), reader)
                    seen.append(Unordered(found) if isinstance(found, list) else found)
            # By name, then by (random) id: compared as a set.
            partners = _outcome(portal.list_partners, reader)
            seen.append(Unordered(partners) if isinstance(partners, list) else partners)
            seen.append(_outcome(portal.audit_trail, reader))
        return seen


def _walk_pages(listing: Callable[..., list[Any]], reader: str) -> list[Any]:
    walked: list[Any] = []
    after = None
    while True:
        page = listing(reader, limit=2, after=after)
        walked.extend(page)
        if len(page) < 2:
            return walked
        after = page[-1].id


@attrs.frozen
class Unordered:
    """A result whose order follows the store's random ids: compared as a set."""

    items: list[Any]


def _outcome(call: Callable[..., object], *args: object) -> object:
    try:
        return call(*args)
    except PartnerKitError as exc:
        return exc


@attrs.frozen
class Decide:
    actor: Who
    permission: Permission
    company: int | None
    target: Who | None

    def __call__(self, run: Run) -> object:
        target = None if self.target is None else run.user(self.target)
        return run.portal.decide(
            run.user(self.actor), self.permission, run.company(self.company), target
        )


@attrs.frozen
class Advance:
    days: int
    hours: int

    def __call__(self, run: Run) -> object:
        return run.clock.advance(days=self.days, hours=self.hours)


def operations() -> st.SearchStrategy[Callable[[Run], object]]:
    """Any one Portal operation, its objects picked by position among those created so far."""
    lines = st.lists(st.tuples(SKU, OFFER_COUNT), min_size=1, max_size=2).map(tuple)
    return st.one_of(
        st.builds(RegisterPartner, STEM, EMAIL),
        st.builds(RegisterCustomer, STEM, DOMAIN, EMAIL),
        st.builds(CreateUser, WHO, st.none() | IX, EMAIL, ROLE, ACCESS),
        st.builds(AssignRoles, WHO, WHO, st.none() | IX, ROLE, ACCESS),
        st.builds(RemoveUser, WHO, WHO, st.none() | IX),
        st.builds(
            UpdateUser,
            WHO,
            WHO,
            st.none() | IX,
            st.none() | EMAIL,
            st.sampled_from([None, "", "Renamed"]),
        ),
        st.builds(CreateTrial, PARTNER_SIDE, SKU, st.booleans(), MAX_USES),
        st.builds(CreateOffer, PARTNER_SIDE, lines, st.booleans(), MAX_USES),
        st.builds(
            OfferDelegation,
            PARTNER_SIDE,
            st.none() | st.frozensets(st.sampled_from(AdminRole), max_size=2),
            st.sampled_from([None, 1, 30, 0]),
        ),
        st.builds(Redeem, MAYBE_IX, CUSTOMER_SIDE, LICENSES, ACCEPT),
        st.builds(SignUp, MAYBE_IX, STEM, DOMAIN, EMAIL, LICENSES, ACCEPT),
        st.builds(Consent, st.sampled_from(Verb), WHO, MAYBE_IX),
        st.builds(ResetPassword, PARTNER_SIDE, MAYBE_IX, CUSTOMER_SIDE),
        st.builds(VerifyPassword, IX, st.booleans()),
        st.builds(
            OpenServiceRequest,
            WHO,
            MAYBE_IX,
            st.sampled_from(["critical", "moderate", "minimal", "urgent"]),
        ),
        st.builds(ChangeLicenses, WHO, MAYBE_IX, COUNT),
        st.builds(RevokeLink, PARTNER_SIDE, MAYBE_IX),
        st.builds(LinkTermsOf, MAYBE_IX),
        st.builds(PartnerProfileOf, WHO, MAYBE_IX),
        st.builds(
            FindCustomers,
            PARTNER_SIDE,
            st.sampled_from(PREFIXES),
            st.sampled_from([1, 2, 50, 0]),
            st.one_of(st.none(), st.none(), IX),
        ),
        st.builds(Decide, WHO, st.sampled_from(Permission), MAYBE_IX, st.none() | WHO),
        st.builds(Advance, st.sampled_from([0, 1, 2, 29, 31, 91]), st.sampled_from([0, 12])),
    )


#: Every sequence starts here, after the testing kit's world (users 0-4: partner admin,
#: LIMITED agent, partner billing admin, customer admin, customer user; companies 0-1:
#: partner, customer): an active 30-day delegation, an active subscription, a trial link.
SETUP: tuple[Callable[[Run], object], ...] = (
    OfferDelegation(actor=(None, 0), roles=None, duration_days=30),
    Redeem(link=0, actor=(None, 3), licenses=None, accept=True),
    CreateOffer(
        actor=(None, 1), lines=(("EXCHANGE", 10),), include_delegated_admin=False, max_uses=None
    ),
    Redeem(link=1, actor=(None, 3), licenses={"EXCHANGE": 12}, accept=None),
    CreateTrial(actor=(None, 0), sku="EXCHANGE", include_delegated_admin=True, max_uses=2),
)


# -- running and comparing --------------------------------------------------------------------


def error_signature(exc: PartnerKitError) -> tuple[object, ...]:
    """What must agree at once: the class and the field, rule or kind (no ids)."""
    if isinstance(exc, Forbidden):
        return ("Forbidden", exc.decision.reason, exc.permission)
    if isinstance(exc, ValidationError):
        return (type(exc).__name__, exc.field)
    if isinstance(exc, NotFound):
        return (type(exc).__name__, exc.kind)
    return (type(exc).__name__, str(exc))


def step(runs: list[Run], number: int, op: Callable[[Run], object]) -> None:
    """Run *op* on every store; they must all succeed or all raise alike."""
    for run in runs:
        with correlation(f"step-{number}"):
            try:
                run.outcomes.append(op(run))
            except PartnerKitError as exc:
                run.outcomes.append(exc)
    verdicts = [
        error_signature(o) if isinstance(o, PartnerKitError) else ("ok",)
        for o in (run.outcomes[-1] for run in runs)
    ]
    assert all(v == verdicts[0] for v in verdicts), (
        f"step {number} {op!r} went differently: "
        + ", ".join(f"{run.name}: {v}" for run, v in zip(runs, verdicts, strict=True))
    )


def plain(value: Any) -> Any:
    """A JSON-able form of a result or a stored object, without its random fields."""
    if isinstance(value, PartnerKitError):
        return {"raised": type(value).__name__, "message": str(value)}
    if isinstance(value, Unordered):
        return {"unordered": [plain(v) for v in value.items]}
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))
        out = {"type": type(value).__name__}
        out |= {
            f.name: plain(getattr(value, f.name)) for f in fields if f.name not in RANDOM_FIELDS
        }
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, frozenset | set):
        return sorted((plain(v) for v in value), key=repr)
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def tokens(value: Any) -> Iterator[str]:
    """The random tokens in *value*, in a traversal order that does not depend on them
    (so not in unordered results, whose tokens must be labelled elsewhere)."""
    if isinstance(value, str):
        yield from ID_TOKEN.findall(value)
    elif isinstance(value, dict) and "unordered" not in value:
        for v in value.values():
            yield from tokens(v)
    elif isinstance(value, list):
        for v in value:
            yield from tokens(v)


def relabel(value: Any, labels: dict[str, str], unknown: str | None = None) -> Any:
    """*value* with every random token replaced by its label (or by *unknown* if it has none)."""
    if isinstance(value, str):

        def label(match: re.Match[str]) -> str:
            found = labels.get(match.group())
            if found is None:
                assert unknown is not None, f"no label for {match.group()}"
                return unknown
            return found

        return ID_TOKEN.sub(label, value)
    if isinstance(value, dict):
        if "unordered" in value:
            items = [relabel(v, labels, unknown) for v in value["unordered"]]
            return {"unordered": sorted(items, key=lambda v: json.dumps(v, sort_keys=True))}
        return {k: relabel(v, labels, unknown) for k, v in value.items()}
    if isinstance(value, list):
        return [relabel(v, labels, unknown) for v in value]
    return value


def read_tables(store: Store) -> dict[str, list[Any]]:
    """Every row of every table (in the stores' own order, which follows the random ids)."""
    with store.unit_of_work(write=False) as uow:
        companies = [c for kind in CompanyKind for c in uow.companies.find(kind=kind)]
        tables: dict[str, list[Any]] = {"companies": companies}
        for table in TABLES:
            column = TABLE_LOOKUP[table.name]
            if column is None:
                continue
            repo = uow.repository(table)
            tables[table.name] = [row for c in companies for row in repo.find(**{column: c.id})]
        tables["audit_events"] = uow.audit_events()
    return tables


@attrs.frozen
class Canonical:
    """A run's results and state with ids replaced by labels."""

    steps: list[Any]
    audit: list[Any]
    tables: dict[str, list[str]]


def canonical(run: Run) -> Canonical:
    """Label the run's ids in order of first appearance, then relabel everything."""
    labels: dict[str, str] = {}

    def learn(value: Any) -> None:
        for token in tokens(value):
            if token not in labels:
                labels[token] = f"<{re.split('[-_]', token)[0]}#{len(labels)}>"

    steps = [plain(o) for o in run.outcomes]
    learn(steps)
    stored = read_tables(run.portal.store)
    audit = [plain(e) for e in stored.pop("audit_events")]
    learn(audit)
    tables: dict[str, list[str]] = {}
    for name in TABLE_LOOKUP:
        rows = [plain(r) for r in stored[name]]
        # Order rows by their form with the still unlabelled ids blanked out: an order that
        # does not depend on the ids, in which the rest of them are labelled.
        blanked = sorted(
            ((json.dumps(relabel(r, labels, "?"), sort_keys=True), r) for r in rows),
            key=lambda pair: pair[0],
        )
        open_forms = [form for form, r in blanked if any(t not in labels for t in tokens(r))]
        assert len(set(open_forms)) == len(open_forms), (
            f"rows of {name} that only their ids tell apart: their labels would be arbitrary"
        )
        for _, row in blanked:
            learn(row)
        tables[name] = sorted(json.dumps(relabel(r, labels), sort_keys=True) for _, r in blanked)
    return Canonical(
        steps=[relabel(s, labels) for s in steps],
        audit=[relabel(a, labels) for a in audit],
        tables=tables,
    )


def assert_same(runs: list[Run], ops: list[Callable[[Run], object]]) -> None:
    """Every step's result, every table and the audit trail agree across the runs."""
    forms = [canonical(run) for run in runs]
    first, reference = forms[0], runs[0]
    for form, run in zip(forms[1:], runs[1:], strict=True):
        for number, (mine, theirs) in enumerate(zip(first.steps, form.steps, strict=True)):
            assert mine == theirs, (
                f"step {number} {ops[number]!r}: {reference.name} returned {mine}, "
                f"{run.name} returned {theirs}"
            )
        for name in first.tables:
            assert first.tables[name] == form.tables[name], (
                f"table {name} differs between {reference.name} and {run.name}"
            )
        for mine, theirs in zip(first.audit, form.audit, strict=False):
            assert mine == theirs, (
                f"audit event differs: {reference.name} {mine}, {run.name} {theirs}"
            )
        assert len(first.audit) == len(form.audit)
    for run in runs:
        assert run.portal.verify_audit_trail() == len(first.audit)


def new_run(name: str, store: Store, keyring: Keyring) -> Run:
    clock = FakeClock()
    portal = Portal(
        store=store,
        keyring=keyring,
        catalog=sample_catalog(),
        base_url=BASE_URL,
        clock=clock,
        password_hasher=FAST_HASHER,
    )
    with correlation("world"):
        world = build_world(portal)
    run = Run(name, portal, clock)
    run.companies += [world.partner.id, world.customer.id]
    for user in (
        world.partner_admin,
        world.partner_agent,
        world.partner_billing,
        world.customer_admin,
        world.customer_user,
    ):
        run.add_user(user)
    return run


def test_memory_sqlite_and_postgres_give_the_same_answers_and_keep_the_same_state(
    shared_database: tuple[str, str], sqlite_template: Path, tmp_path: Path
) -> None:
    """Any sequence of Portal operations raises the same errors and returns the same results
    at every step on the three stores, and leaves the same rows and audit trail."""
    import psycopg

    from partnerkit.stores.postgres import PostgresStore

    dsn, empty = shared_database
    keyring = Keyring.generate()
    admin = psycopg.connect(dsn, autocommit=True)
    postgres = PostgresStore(dsn, min_size=1, max_size=2)
    examples = iter(range(1_000_000))

    # Half the profile's examples: each runs about forty steps on three stores.
    @settings(max_examples=max(1, settings().max_examples // 2))
    @given(drawn=st.lists(operations(), min_size=10, max_size=30))
    def check(drawn: list[Callable[[Run], object]]) -> None:
        admin.execute(empty.encode())
        path = tmp_path / f"example-{next(examples)}.db"
        shutil.copyfile(sqlite_template, path)
        sqlite = SQLiteStore(path)
        try:
            runs = [
                new_run("memory", MemoryStore(), keyring),
                new_run("sqlite", sqlite, keyring),
                new_run("postgres", postgres, keyring),
            ]
            ops: list[Callable[[Run], object]] = [*SETUP, *drawn, ReadEverything()]
            for number, op in enumerate(ops):
                note(f"step {number}: {op!r}")
                step(runs, number, op)
            assert_same(runs, ops)
        finally:
            sqlite.close()
            path.unlink()

    try:
        check()
    finally:
        postgres.close()
        admin.close()
