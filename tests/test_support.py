"""Supporting customers through a delegation (SPEC F6): resets, service requests, search.

* A password reset yields a one-time temporary password of at least 16 characters; the store
  keeps only its scrypt hash (the SQLite file's bytes are searched for it) and sets the user's
  change-at-next-sign-in flag; the password never reaches the audit trail, a repr, an error or a
  log.
* Service requests are created, listed and updated on a customer's behalf; a closed one stays
  closed; the delegation and the role used are in the audit trail.
* ``find_customers`` searches a partner's own customers by name or domain prefix, without case,
  in pages, with typed errors for bad input, on ``MemoryStore`` and on a SQLite file alike.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import partnerkit.support
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
    AuditEvent,
    Catalog,
    Delegation,
    Forbidden,
    OfferLine,
    PartnerKitError,
    PasswordHasher,
    PasswordReset,
    Permission,
    Portal,
    RequestStatus,
    Rule,
    Service,
    Severity,
    TrialTerms,
    ValidationError,
)
from partnerkit.ports import MAX_SEARCH_LIMIT, Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FakeClock

CATALOG = Catalog(
    [Service(sku="EXCHANGE", name="Exchange Online", trial=TrialTerms(days=30, licenses=25))]
)


@attrs.frozen
class Support:
    """A partner with an active delegation (all five roles) on one customer."""

    portal: Portal
    store: Store
    partner: PartnerCast
    customer: CustomerCast
    delegation: Delegation


def _support(store: Store) -> Support:
    portal = make_portal(store, FakeClock(), CATALOG)
    partner = add_partner(portal, "Contoso Partners", "contoso")
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    return Support(portal, store, partner, customer, consent(portal, partner.admin, customer))


@pytest.fixture
def support() -> Support:
    """The support scene on a MemoryStore."""
    return _support(MemoryStore())


@pytest.fixture
def sqlite_support(tmp_path: Path) -> Iterator[Support]:
    """The support scene on a SQLite file."""
    store = SQLiteStore(tmp_path / "support.db")
    yield _support(store)
    store.close()


def _events(portal: Portal, action: str) -> list[AuditEvent]:
    with portal.store.unit_of_work(write=False) as uow:
        return [e for e in uow.audit_events() if e.action == action]


@pytest.fixture
def issued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every temporary password the Portal draws, including those of refused resets.

    The generator is wrapped wherever a partnerkit module imported it, so the spy does not
    depend on which module of the Portal draws the password.
    """
    seen: list[str] = []
    real = partnerkit.support.new_temporary_password

    def spy(length: int = partnerkit.support.TEMPORARY_PASSWORD_LENGTH) -> str:
        password = real(length)
        seen.append(password)
        return password

    holders = [
        module
        for name, module in list(sys.modules.items())
        if name.startswith("partnerkit") and getattr(module, "new_temporary_password", None) is real
    ]
    assert holders, "the Portal no longer draws passwords with support.new_temporary_password"
    for module in holders:
        monkeypatch.setattr(module, "new_temporary_password", spy)
    return seen


# -- password resets ------------------------------------------------------------------------------


def test_a_reset_yields_a_long_one_time_password_that_verifies(support: Support) -> None:
    """The temporary password has at least 16 characters, verifies against the stored hash,
    and the next reset replaces it."""
    portal, cust = support.portal, support.customer
    user = cust.by_role[None]
    first = portal.reset_password(support.partner.full, cust.company.id, user.id)
    assert len(first.temporary_password) >= 16
    assert first.temporary_password.isalnum()
    assert not portal.verify_password(user.id, first.temporary_password + "x")
    second = portal.reset_password(support.partner.limited, cust.company.id, user.id)
    assert second.temporary_password != first.temporary_password
    assert not portal.verify_password(user.id, first.temporary_password)  # replaced
    assert portal.verify_password(user.id, second.temporary_password)
    assert (second.user_id, second.company_id, second.reset_by) == (
        user.id,
        cust.company.id,
        support.partner.limited.id,
    )


def test_temporary_passwords_do_not_repeat(support: Support) -> None:
    """Twenty resets give twenty different passwords."""
    portal, cust = support.portal, support.customer
    user = cust.by_role[AdminRole.PASSWORD_ADMIN]
    drawn = {
        portal.reset_password(support.partner.full, cust.company.id, user.id).temporary_password
        for _ in range(20)
    }
    assert len(drawn) == 20


def test_a_reset_sets_change_at_next_sign_in(support: Support) -> None:
    """The user must choose a new password at its next sign-in."""
    portal, cust = support.portal, support.customer
    user = cust.by_role[AdminRole.BILLING_ADMIN]
    assert not user.must_change_password
    reset = portal.reset_password(support.partner.full, cust.company.id, user.id)
    assert reset.must_change_password
    [stored] = [u for u in portal.list_users(cust.admin) if u.id == user.id]
    assert stored.must_change_password


def test_the_sqlite_file_holds_the_scrypt_hash_and_never_the_password(
    sqlite_support: Support, issued: list[str]
) -> None:
    """Searched byte by byte (database and write-ahead log), the file contains the scrypt hash
    with its parameters and none of the temporary passwords, not even of refused resets."""
    support = sqlite_support
    portal, cust = support.portal, support.customer
    billing = cust.by_role[AdminRole.BILLING_ADMIN]
    resets = [
        portal.reset_password(support.partner.full, cust.company.id, cust.by_role[role].id)
        for role in (None, AdminRole.PASSWORD_ADMIN, AdminRole.BILLING_ADMIN)
    ]
    with pytest.raises(Forbidden):
        portal.reset_password(support.partner.limited, cust.company.id, billing.id)
    assert len(issued) == 4
    with support.store.unit_of_work(write=False) as uow:
        credential = uow.credentials.get(billing.id)
    assert credential is not None
    assert credential.password_hash.startswith("scrypt$1024$8$1$")
    assert PasswordHasher.verify(resets[-1].temporary_password, credential.password_hash)
    path = Path(str(support.store.path))
    data = b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    assert credential.password_hash.encode() in data
    for password in issued:
        assert password.encode() not in data
        assert password.encode("utf-16-le") not in data


def test_the_password_never_enters_audit_reprs_errors_or_logs(
    support: Support, issued: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Neither the audit trail, nor the reset's or credential's repr, nor a refusal's error,
    nor any log record carries a temporary password."""
    portal, cust = support.portal, support.customer
    caplog.set_level(logging.DEBUG)
    billing = cust.by_role[AdminRole.BILLING_ADMIN]
    reset = portal.reset_password(support.partner.full, cust.company.id, billing.id)
    with pytest.raises(Forbidden) as refused:
        portal.reset_password(support.partner.limited, cust.company.id, billing.id)
    with support.store.unit_of_work(write=False) as uow:
        credential = uow.credentials.get(billing.id)
        trail = repr(uow.audit_events())
    texts = [
        trail,
        repr(reset),
        str(reset),
        repr(credential),
        str(refused.value),
        repr(refused.value),
        repr(refused.value.args),
        caplog.text,
    ]
    assert len(issued) == 2
    for password in issued:
        for text in texts:
            assert password not in text
    assert "***" in repr(reset)


def test_resets_through_a_delegation_are_audited_with_the_delegation_and_role(
    support: Support,
) -> None:
    """A successful reset and a refused one both name the delegation, the role used and the
    target user; the refusal names the rule."""
    portal, cust = support.portal, support.customer
    portal.reset_password(support.partner.limited, cust.company.id, cust.by_role[None].id)
    with pytest.raises(Forbidden) as caught:
        portal.reset_password(support.partner.limited, cust.company.id, cust.admin.id)
    assert caught.value.decision.reason == "target-role-outside-actor-limits"
    done, denied = _events(portal, "user.reset_password")
    for event, target in ((done, cust.by_role[None]), (denied, cust.admin)):
        assert event.delegation_id == support.delegation.id
        assert event.company_id == cust.company.id
        assert event.actor_company_id == support.partner.company.id
        assert event.target_id == target.id
        assert event.role == "delegated:password_admin"  # LIMITED: all five ∩ {PASSWORD_ADMIN}
    assert (done.outcome, denied.outcome, denied.reason) == (
        "success",
        "denied",
        "target-role-outside-actor-limits",
    )


def test_a_customers_own_admin_resets_without_a_delegation(support: Support) -> None:
    """A customer's password admin resets a plain user of its own company: the event carries
    its own role and no delegation; nobody resets its own password that way."""
    portal, cust = support.portal, support.customer
    admin = cust.by_role[AdminRole.PASSWORD_ADMIN]
    portal.reset_password(admin, cust.company.id, cust.by_role[None].id)
    [event] = _events(portal, "user.reset_password")
    assert (event.delegation_id, event.role) == (None, "password_admin")
    with pytest.raises(Forbidden) as caught:
        portal.reset_password(admin, cust.company.id, admin.id)
    assert caught.value.decision.reason == "no-self-password-reset-through-admin-path"


def test_the_hash_carries_its_parameters_so_they_can_change() -> None:
    """A hash made with cheap parameters verifies with a hasher of the production defaults,
    and the defaults are password-grade (scrypt N >= 2**14, r = 8)."""
    encoded = PasswordHasher(n=2**10).hash("correct horse battery staple")
    assert encoded.split("$")[:4] == ["scrypt", "1024", "8", "1"]
    production = PasswordHasher()
    assert production.n >= 2**14
    assert production.r == 8
    assert production.verify("correct horse battery staple", encoded)
    assert not production.verify("correct horse battery stapler", encoded)
    assert not production.verify("anything", "not-a-hash")
    assert "correct" not in repr(production)


def test_verify_password_says_no_for_unknown_users_and_non_text(support: Support) -> None:
    """Without a stored credential, or for a password that is not text, the answer is False."""
    portal = support.portal
    assert not portal.verify_password("usr_nobody", "whatever-it-is-123")
    assert not portal.verify_password(support.customer.admin.id, None)  # type: ignore[arg-type]


# -- service requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("critical", Severity.CRITICAL),
        ("moderate", Severity.MODERATE),
        ("minimal", Severity.MINIMAL),
        (Severity.MINIMAL, Severity.MINIMAL),
    ],
)
def test_a_service_request_takes_a_severity_as_string_or_enum(
    support: Support, given: Severity | str, expected: Severity
) -> None:
    """A FULL user opens a request on the customer's behalf: it is OPEN, for the customer,
    raised by the partner user through the delegation."""
    cust = support.customer
    request = support.portal.create_service_request(
        support.partner.full, cust.company.id, title="Mail is down", severity=given
    )
    assert request.severity is expected
    assert request.status is RequestStatus.OPEN
    assert (request.customer_id, request.created_by, request.created_by_company_id) == (
        cust.company.id,
        support.partner.full.id,
        support.partner.company.id,
    )
    assert request.delegation_id == support.delegation.id


@pytest.mark.parametrize("severity", ["urgent", "CRITICAL", "", None, 1])
def test_an_unknown_severity_is_refused(support: Support, severity: object) -> None:
    """Only the three severities exist: anything else is a ``ValidationError`` on severity."""
    with pytest.raises(ValidationError) as caught:
        support.portal.create_service_request(
            support.partner.full,
            support.customer.company.id,
            title="x",
            severity=severity,  # type: ignore[arg-type]
        )
    assert caught.value.field == "severity"


@pytest.mark.parametrize("title", ["", "   ", "x" * 201])
def test_a_title_must_say_something_and_stay_short(support: Support, title: str) -> None:
    """A blank or overlong title is refused."""
    with pytest.raises(ValidationError) as caught:
        support.portal.create_service_request(
            support.partner.full, support.customer.company.id, title=title
        )
    assert caught.value.field == "title"


def test_requests_are_listed_for_everyone_who_manages_them(support: Support) -> None:
    """The customer's admins and the partner's FULL and LIMITED users list the same requests;
    a customer user without an admin role may not."""
    portal, cust = support.portal, support.customer
    mine = portal.create_service_request(cust.admin, cust.company.id, title="Own request")
    theirs = portal.create_service_request(
        support.partner.limited, cust.company.id, title="On behalf", severity="minimal"
    )
    assert mine.delegation_id is None
    for user in (
        cust.admin,
        cust.by_role[AdminRole.SERVICE_ADMIN],
        support.partner.full,
        support.partner.limited,
    ):
        listed = portal.list_service_requests(user, cust.company.id)
        assert {r.id for r in listed} == {mine.id, theirs.id}
    with pytest.raises(Forbidden):
        portal.list_service_requests(cust.by_role[None], cust.company.id)


def test_a_request_moves_through_its_statuses_and_a_closed_one_stays_closed(
    support: Support,
) -> None:
    """Status and severity change (as strings or enums) until the request is closed; after
    that every change is a ``ValidationError`` and the request is as it was."""
    portal, cust = support.portal, support.customer
    request = portal.create_service_request(
        support.partner.full, cust.company.id, title="Slow sync", severity="moderate"
    )
    flagged = portal.update_service_request(
        support.partner.full, request.id, status="attention_needed", severity=Severity.CRITICAL
    )
    assert (flagged.status, flagged.severity) == (
        RequestStatus.ATTENTION_NEEDED,
        Severity.CRITICAL,
    )
    assert flagged.version == request.version + 1
    closed = portal.update_service_request(cust.admin, request.id, status=RequestStatus.CLOSED)
    assert closed.status is RequestStatus.CLOSED
    for change in ({"status": "open"}, {"severity": "minimal"}, {"status": "closed"}):
        with pytest.raises(ValidationError) as caught:
            portal.update_service_request(support.partner.full, request.id, **change)
        assert caught.value.field == "status"
    [listed] = portal.list_service_requests(cust.admin, cust.company.id)
    assert listed == closed


def test_an_unknown_request_status_is_refused(support: Support) -> None:
    """``reopened`` is no status."""
    portal, cust = support.portal, support.customer
    request = portal.create_service_request(cust.admin, cust.company.id, title="Hello")
    with pytest.raises(ValidationError) as caught:
        portal.update_service_request(cust.admin, request.id, status="reopened")
    assert caught.value.field == "status"


def test_requests_on_behalf_are_audited_with_the_delegation_and_role(support: Support) -> None:
    """Creating and updating a request through the delegation records the delegation, the
    role used, the request, and its severity and status."""
    portal, cust = support.portal, support.customer
    request = portal.create_service_request(
        support.partner.full, cust.company.id, title="Mail is down", severity="critical"
    )
    portal.update_service_request(support.partner.full, request.id, status="closed")
    [created] = _events(portal, "service_request.create")
    [updated] = _events(portal, "service_request.update")
    for event in (created, updated):
        assert (event.outcome, event.delegation_id, event.target_id) == (
            "success",
            support.delegation.id,
            request.id,
        )
        assert (event.actor_id, event.company_id) == (support.partner.full.id, cust.company.id)
        assert event.role == "delegated:all"  # FULL with all five roles
    assert created.details["severity"] == "critical"
    assert updated.details["status"] == "closed"
    trail = portal.audit_trail(cust.admin)
    assert created in trail
    assert updated in trail


def test_a_delegation_without_support_roles_opens_no_requests(support: Support) -> None:
    """Once the delegation is revoked, the partner may neither open, list nor update requests."""
    portal, cust = support.portal, support.customer
    request = portal.create_service_request(support.partner.full, cust.company.id, title="A")
    portal.revoke_delegation(cust.admin, support.delegation.id)
    with pytest.raises(Forbidden):
        portal.create_service_request(support.partner.full, cust.company.id, title="B")
    with pytest.raises(Forbidden):
        portal.list_service_requests(support.partner.full, cust.company.id)
    with pytest.raises(Forbidden):
        portal.update_service_request(support.partner.full, request.id, status="closed")


@pytest.mark.parametrize("who", ["admin", "full", "limited"])
def test_a_partner_is_told_why_it_may_no_longer_update_a_request_it_raised(
    support: Support, who: str
) -> None:
    """A request the partner raised on the customer's behalf is known to the partner: once the
    delegation is revoked, each of its users is refused for the rule ``decide`` gives (not
    told the request is unknown, nor refused by a rule of its own company, whatever role it
    holds there), and the attempt is on the customer's trail with the customer acted on."""
    portal, cust = support.portal, support.customer
    request = portal.create_service_request(support.partner.full, cust.company.id, title="A")
    portal.revoke_delegation(cust.admin, support.delegation.id)
    actor = getattr(support.partner, who)
    decision = portal.decide(actor, Permission.MANAGE_SERVICE_REQUESTS, cust.company.id)
    assert decision.rule is Rule.NO_ACTIVE_DELEGATION
    with pytest.raises(Forbidden) as refused:
        portal.update_service_request(actor, request.id, status="closed")
    assert refused.value.decision.rule is Rule.NO_ACTIVE_DELEGATION
    [*_, denied] = _events(portal, "service_request.update")
    assert (denied.outcome, denied.actor_id, denied.company_id, denied.target_id) == (
        "denied",
        actor.id,
        cust.company.id,
        request.id,
    )
    assert denied in portal.audit_trail(cust.admin)
    [kept] = portal.list_service_requests(cust.admin)
    assert kept.status is RequestStatus.OPEN


def test_a_request_the_customer_raised_is_unknown_to_a_former_delegate(support: Support) -> None:
    """A request the customer raised itself was never the partner's: once the delegation is
    revoked, naming it gets the answer an id nobody has gets."""
    portal, cust = support.portal, support.customer
    request = portal.create_service_request(cust.admin, cust.company.id, title="Ours")
    portal.revoke_delegation(cust.admin, support.delegation.id)
    for actor in (support.partner.admin, support.partner.limited):
        answers = []
        for ident in (request.id, request.id[:-4] + "0000"):
            with pytest.raises(PartnerKitError) as refused:
                portal.update_service_request(actor, ident, status="closed")
            answers.append((type(refused.value), str(refused.value).replace(ident, "<id>")))
        assert answers[0] == answers[1]


# -- find_customers -----------------------------------------------------------------------------


@attrs.frozen
class Directory:
    """Partner A with six customers of its own, partner B with look-alikes of its own."""

    portal: Portal
    a: PartnerCast
    b: PartnerCast
    #: Partner A's customers by name.
    mine: dict[str, CustomerCast]
    #: Partner B's customers by name.
    theirs: dict[str, CustomerCast]
    #: A customer that only holds a pending offer of partner A.
    pending_only: CustomerCast


A_CUSTOMERS = {
    "Fabrikam": "fabrikam.example",
    "fabric works": "weave.example",
    "Straße AG": "strasse.example",
    "Acme": "northwind-traders.example",
    "a_b Corp": "ab.example",
    "abc Inc": "abc.example",
}
B_CUSTOMERS = {"Fabulous Ltd": "fabulous.example", "Northern Lights": "northern.example"}


def _directory(store: Store) -> Directory:
    portal = make_portal(store, FakeClock(), CATALOG)
    a = add_partner(portal, "Alpha Partners", "alpha")
    b = add_partner(portal, "Beta Partners", "beta")
    trial = portal.create_trial_invitation(a.admin, sku="EXCHANGE")
    mine: dict[str, CustomerCast] = {}
    for i, (name, domain) in enumerate(A_CUSTOMERS.items()):
        cust = add_customer(portal, name, domain, roles=())
        if i % 2:
            portal.redeem(trial, cust.admin)  # advised: a trial with A as advisor
        else:
            consent(portal, a.admin, cust)  # administered: an active delegation
        mine[name] = cust
    theirs: dict[str, CustomerCast] = {}
    for name, domain in B_CUSTOMERS.items():
        theirs[name] = cust = add_customer(portal, name, domain, roles=())
        consent(portal, b.admin, cust)
    pending_only = add_customer(portal, "Fabled Pending", "fabled.example", roles=())
    consent(portal, a.admin, pending_only, accept=None)
    return Directory(portal, a, b, mine, theirs, pending_only)


@pytest.fixture(params=["memory", "sqlite"])
def directory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Directory]:
    """The search scene on a MemoryStore and on a SQLite file."""
    store: Store = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "d.db")
    yield _directory(store)
    store.close()


def _names(found: list[object]) -> list[str]:
    return [c.name for c in found]  # type: ignore[attr-defined]


def _sorted(names: list[str]) -> list[str]:
    return sorted(names, key=str.casefold)


@pytest.mark.parametrize("prefix", ["fab", "FAB", "Fab", "  fab "])
def test_search_matches_a_name_prefix_without_case(directory: Directory, prefix: str) -> None:
    """Names starting with "fab" in any case are found, ordered by name; partner B's
    "Fabulous" and the pending-only "Fabled" are not."""
    found = directory.portal.find_customers(directory.a.full, prefix)
    assert _names(found) == ["fabric works", "Fabrikam"]


def test_search_matches_a_domain_prefix(directory: Directory) -> None:
    """A customer whose name does not match is found by the start of its domain."""
    found = directory.portal.find_customers(directory.a.limited, "NORTHWIND")
    assert _names(found) == ["Acme"]
    assert _names(directory.portal.find_customers(directory.a.admin, "weave.")) == ["fabric works"]


def test_search_folds_case_beyond_ascii(directory: Directory) -> None:
    """ "STRASSE" finds "Straße AG" (case folding, not just lower-casing)."""
    assert _names(directory.portal.find_customers(directory.a.full, "STRASSE")) == ["Straße AG"]


def test_search_prefixes_are_literal_text_not_patterns(directory: Directory) -> None:
    """ "a_" matches "a_b Corp" only, and "%" matches nothing: no wildcards."""
    portal, actor = directory.portal, directory.a.full
    assert _names(portal.find_customers(actor, "a_")) == ["a_b Corp"]
    assert portal.find_customers(actor, "%") == []
    assert portal.find_customers(actor, "zzz") == []


def test_an_empty_prefix_lists_every_own_customer_and_no_one_elses(directory: Directory) -> None:
    """Partner A sees its six customers (advised or administered) in name order; partner B sees
    its two; neither sees the other's, nor a customer with only a pending offer."""
    portal = directory.portal
    assert _names(portal.find_customers(directory.a.full, "")) == _sorted(list(A_CUSTOMERS))
    assert _names(portal.find_customers(directory.b.full, "")) == _sorted(list(B_CUSTOMERS))
    for prefix in ("fab", "north", "n", "f", ""):
        found = {c.id for c in portal.find_customers(directory.b.admin, prefix)}
        assert not found & {c.company.id for c in directory.mine.values()}


def test_pages_follow_the_last_id_seen_without_gaps_or_repeats(directory: Directory) -> None:
    """Walking the customers two at a time with ``after`` gives exactly the one-page listing."""
    portal, actor = directory.portal, directory.a.full
    everything = portal.find_customers(actor, "", limit=MAX_SEARCH_LIMIT)
    walked: list[str] = []
    after = None
    while True:
        page = portal.find_customers(actor, "", limit=2, after=after)
        assert len(page) <= 2
        if not page:
            break
        walked += [c.id for c in page]
        after = page[-1].id
    assert walked == [c.id for c in everything]
    assert len(walked) == len(A_CUSTOMERS)


def test_paging_works_within_a_prefix(directory: Directory) -> None:
    """After the first "a" customer comes the second, then nothing."""
    portal, actor = directory.portal, directory.a.full
    first = portal.find_customers(actor, "A", limit=1)
    assert _names(first) == ["a_b Corp"]
    second = portal.find_customers(actor, "A", limit=1, after=first[0].id)
    assert _names(second) == ["abc Inc"]
    third = portal.find_customers(actor, "a", limit=1, after=second[0].id)
    assert _names(third) == ["Acme"]  # by its name; its domain starts with "n"
    assert portal.find_customers(actor, "a", limit=5, after=third[0].id) == []


@pytest.mark.parametrize("limit", [1, MAX_SEARCH_LIMIT])
def test_the_limit_bounds_themselves_are_accepted(directory: Directory, limit: int) -> None:
    """1 and the maximum are valid page sizes."""
    found = directory.portal.find_customers(directory.a.full, "", limit=limit)
    assert len(found) == min(limit, len(A_CUSTOMERS))


@pytest.mark.parametrize("limit", [0, -1, MAX_SEARCH_LIMIT + 1, True, 2.0, "10", None])
def test_a_limit_outside_its_bounds_is_a_validation_error(
    directory: Directory, limit: object
) -> None:
    """Page sizes are whole numbers from 1 to the maximum; bools, floats and text are refused."""
    with pytest.raises(ValidationError) as caught:
        directory.portal.find_customers(directory.a.full, "", limit=limit)  # type: ignore[arg-type]
    assert caught.value.field == "limit"


@pytest.mark.parametrize("prefix", [None, 5, b"fab", "x" * 101, "fab\udc80"])
def test_a_bad_prefix_is_a_validation_error(directory: Directory, prefix: object) -> None:
    """The prefix is text of at most 100 characters that encodes as UTF-8."""
    with pytest.raises(ValidationError) as caught:
        directory.portal.find_customers(directory.a.full, prefix)  # type: ignore[arg-type]
    assert caught.value.field == "prefix"


def test_after_must_be_one_of_the_partners_own_customers(directory: Directory) -> None:
    """A cursor that is not text, unknown, or another partner's customer is refused, and the
    last two alike: the refusal does not reveal whose customer it is."""
    portal, actor = directory.portal, directory.a.full
    with pytest.raises(ValidationError) as caught:
        portal.find_customers(actor, "", after=5)  # type: ignore[arg-type]
    assert caught.value.field == "after"
    answers = []
    for after in (
        "cmp_0123456789abcdef0123456789abcdef",
        directory.theirs["Fabulous Ltd"].company.id,
    ):
        with pytest.raises(ValidationError) as caught:
            portal.find_customers(actor, "", after=after)
        answers.append((caught.value.field, caught.value.message))
    assert answers[0] == answers[1]


@pytest.mark.parametrize("who", ["plain", "billing"])
def test_only_partner_users_with_partner_access_search(directory: Directory, who: str) -> None:
    """Searching is a partner-side permission: users without partner access are refused."""
    with pytest.raises(Forbidden):
        directory.portal.find_customers(getattr(directory.a, who), "")


def test_customers_do_not_search(directory: Directory) -> None:
    """A customer's global admin has no partner-side permissions."""
    with pytest.raises(Forbidden):
        directory.portal.find_customers(directory.mine["Fabrikam"].admin, "")


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_a_prefix_next_to_the_surrogate_range_is_answered_on_every_store(
    tmp_path: Path, store_kind: str
) -> None:
    """A prefix ending in U+D7FF is valid text; every store answers it (with no match here)."""
    store: Store = MemoryStore() if store_kind == "memory" else SQLiteStore(tmp_path / "u.db")
    try:
        scene = _support(store)
        assert scene.portal.find_customers(scene.partner.full, "fab\ud7ff") == []
    finally:
        store.close()


def test_a_purchase_makes_the_partner_an_adviser_found_by_search(support: Support) -> None:
    """A customer who bought through the partner's offer is found, like one it administers."""
    portal = support.portal
    newcomer = add_customer(portal, "Woodgrove", "woodgrove.example", roles=())
    url, _ = portal.create_purchase_offer(
        support.partner.full, lines=[OfferLine(sku="EXCHANGE", licenses=3)]
    )
    assert portal.find_customers(support.partner.full, "wood") == []
    portal.redeem(url, newcomer.admin)
    assert _names(portal.find_customers(support.partner.full, "wood")) == ["Woodgrove"]


def test_search_results_are_whole_companies(support: Support) -> None:
    """What search returns is the customer's ``Company`` as the store holds it."""
    [found] = support.portal.find_customers(support.partner.full, "fabrikam")
    assert found == support.customer.company


def test_password_reset_result_is_a_value_with_the_password_shown_once(support: Support) -> None:
    """``PasswordReset`` is a value object; equality ignores the password, repr masks it."""
    reset = support.portal.reset_password(
        support.partner.full, support.customer.company.id, support.customer.by_role[None].id
    )
    assert isinstance(reset, PasswordReset)
    assert reset == attrs.evolve(reset, temporary_password="something-else-entirely")
    assert reset.temporary_password not in repr(reset)
