"""Fixes from the sixth session's reviews, on every built-in store.

- ``PasswordHasher`` took any ``n``, ``r`` and ``p``: a bad one failed the first reset with
  an error of cryptography's (or aborted the process, for a huge ``n``), and a damaged
  stored hash made ``verify_password`` raise ``binascii.Error``. The hasher now refuses
  bad parameters with a ``ValidationError``, and a stored hash it could not have made
  verifies nothing.
- A service request's severity or status was checked before the actor was read: a bad one
  was never audited, and an actor without rights learnt it was bad rather than that it was
  forbidden.
- A clock near the end of the calendar made issuing a link, starting a trial and accepting
  a delegation with an end raise a raw ``OverflowError``, unaudited.
- ``audit_trail`` judged the company id it was given with that id's own ``==``: a ``str``
  subclass equal to everything read the whole portal's trail on MemoryStore. Every id the
  Portal compares is now made a plain ``str`` first.
- A global admin of a partner with LIMITED or no partner access could reset the password
  of a FULL user, and so sign in with FULL access: a reset now takes at least the access
  its target holds, as assigning it does.
- The SQL stores let a ``TypeError`` or ``ValueError`` out of writing a value their column
  cannot take (a naive time, a flag that is not a bool).
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from delegation_kit import CustomerCast, PartnerCast, add_customer, consent
from delegation_kit import make_portal as _make_portal
from partnerkit import (
    AdminRole,
    Company,
    CompanyKind,
    DelegationStatus,
    Forbidden,
    InvalidLink,
    LinkExpired,
    NotFound,
    OfferLine,
    PartnerAccess,
    PartnerKitError,
    Permission,
    Portal,
    RequestStatus,
    ServiceRequest,
    Severity,
    ValidationError,
)
from partnerkit.audit import AuditEvent
from partnerkit.links import Keyring, LinkKind, check_link_times
from partnerkit.ports import Store
from partnerkit.records import LinkRecord
from partnerkit.roles import Rule
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.support import PasswordHasher
from partnerkit.testing import FakeClock

pytest_plugins = ["pg_fixtures", "cast_fixtures"]


def _events(portal: Portal) -> list[tuple[str, str, str | None]]:
    with portal.store.unit_of_work(write=False) as uow:
        return [(e.action, e.outcome, e.reason) for e in uow.audit_events()]


# -- the password hasher ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"n": 3}, "n"),
        ({"n": 1}, "n"),
        ({"n": -2}, "n"),
        ({"n": "16384"}, "n"),
        ({"n": 2**62}, "n"),
        ({"n": True}, "n"),
        ({"r": 0}, "r"),
        ({"r": 99_999_999_999}, "r"),
        ({"p": 0}, "p"),
        ({"p": 2.0}, "p"),
        ({"n": 2**24, "r": 64}, "n"),
    ],
)
def test_a_hasher_with_parameters_scrypt_cannot_take_is_refused(
    settings: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        PasswordHasher(**settings)
    assert refused.value.field == field


def test_a_stored_hash_the_hasher_could_not_have_made_verifies_nothing() -> None:
    hasher = PasswordHasher(n=2**4)
    good = hasher.hash("correct horse")
    assert PasswordHasher.verify("correct horse", good)
    scheme, n, r, p, salt, key = good.split("$")
    damaged = [
        good[:-1],  # a key of a length base64 cannot have
        f"{scheme}${n}${r}${p}${salt}${key[:-4]}",  # a key too short
        f"{scheme}$3${r}${p}${salt}${key}",  # n not a power of two
        f"{scheme}${2**62}${r}${p}${salt}${key}",  # scrypt would abort the process
        f"{scheme}${n}$99999999${p}${salt}${key}",  # would allocate without end
        f"{scheme}$١٦${r}${p}${salt}${key}",  # digits int() takes, not ours
        f"{scheme}${n}${r}${p}$!!${key}",
        good + "$",
    ]
    for stored in damaged:
        assert PasswordHasher.verify("correct horse", stored) is False, stored


def test_verify_password_with_a_damaged_stored_hash_is_false(tmp_path: Path) -> None:
    path = tmp_path / "portal.db"
    portal = _make_portal(SQLiteStore(path))
    customer = add_customer(portal, "Fabrikam", "fabrikam.example")
    target = next(u for u in customer.users if u.admin_role is None)
    used = portal.reset_password(customer.admin, customer.company.id, target.id)
    assert portal.verify_password(target.id, used.temporary_password)  # the hash was good
    reset = portal.reset_password(customer.admin, customer.company.id, target.id)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "UPDATE credentials SET password_hash = password_hash || 'A' WHERE id = ?",
            (target.id,),
        )
    conn.close()
    assert portal.verify_password(target.id, reset.temporary_password) is False


# -- service requests: bad input is judged after the rights, and audited ------------------


@pytest.mark.parametrize("bad", ["urgent", 3, None])
def test_a_bad_severity_is_audited_and_an_outsider_is_forbidden(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, bad: object
) -> None:
    cid = customer.company.id
    before = len(_events(portal))
    with pytest.raises(ValidationError) as failed:
        portal.create_service_request(customer.admin, cid, title="Mail down", severity=bad)  # type: ignore[arg-type]
    assert failed.value.field == "severity"
    with pytest.raises(Forbidden):
        portal.create_service_request(partner.full, cid, title="Mail down", severity=bad)  # type: ignore[arg-type]
    assert [(a, o) for a, o, _ in _events(portal)[before:]] == [
        ("service_request.create", "failed"),
        ("service_request.create", "denied"),
    ]
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.service_requests.find(customer_id=cid) == []


def test_a_bad_status_is_audited_and_an_outsider_is_forbidden(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    request = portal.create_service_request(
        customer.admin, customer.company.id, title="Mail down", severity=Severity.CRITICAL
    )
    before = len(_events(portal))
    with pytest.raises(ValidationError) as failed:
        portal.update_service_request(customer.admin, request.id, status="reopened")
    assert failed.value.field == "status"
    with pytest.raises(ValidationError) as failed:
        portal.update_service_request(customer.admin, request.id, severity="urgent")
    assert failed.value.field == "severity"
    with pytest.raises(Forbidden):
        portal.update_service_request(partner.full, request.id, status="reopened")
    assert [(a, o) for a, o, _ in _events(portal)[before:]] == [
        ("service_request.update", "failed"),
        ("service_request.update", "failed"),
        ("service_request.update", "denied"),
    ]
    with portal.store.unit_of_work(write=False) as uow:
        stored = uow.service_requests.get(request.id)
    assert stored == request
    assert stored.status is RequestStatus.OPEN


# -- a clock at the end of the calendar ------------------------------------------------------


def test_a_link_that_would_expire_after_year_9999_is_a_validation_error(
    portal: Portal, partner: PartnerCast, clock: FakeClock
) -> None:
    clock.set(datetime(9999, 12, 31, 12, tzinfo=UTC))
    before = len(_events(portal))
    calls = [
        lambda: portal.create_trial_invitation(partner.admin, "EXCHANGE"),
        lambda: portal.create_purchase_offer(partner.admin, [OfferLine("INTUNE", 10)]),
        lambda: portal.offer_delegated_admin(partner.admin),
    ]
    for call in calls:
        with pytest.raises(ValidationError) as failed:
            call()
        assert failed.value.field == "expires_in"
    assert [o for _, o, _ in _events(portal)[before:]] == ["failed"] * len(calls)


def test_a_trial_or_a_delegation_that_would_end_after_year_9999_is_a_validation_error(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, clock: FakeClock
) -> None:
    near_the_end = datetime(9999, 12, 20, tzinfo=UTC)
    clock.set(near_the_end)
    url = portal.create_trial_invitation(partner.admin, "EXCHANGE", expires_in=timedelta(days=1))
    with pytest.raises(ValidationError) as failed:
        portal.redeem(url, customer.admin)
    assert failed.value.field == "trial"
    offer = portal.offer_delegated_admin(
        partner.admin, duration=timedelta(days=30), expires_in=timedelta(days=1)
    )
    with pytest.raises(ValidationError) as failed:
        portal.redeem(offer, customer.admin, accept_delegated_admin=True)
    assert failed.value.field == "duration"
    with portal.store.unit_of_work(write=False) as uow:
        cid = customer.company.id
        assert uow.subscriptions.find(customer_id=cid) == []
        assert uow.delegations.find(customer_id=cid) == []
    assert _events(portal)[-3:] == [
        ("link.redeem", "failed", "invalid-trial"),
        ("link.offer_delegated_admin", "success", None),
        ("link.redeem", "failed", "invalid-duration"),
    ]


# -- ids of a str subclass -------------------------------------------------------------------


class _EqualToAll(str):
    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


def test_an_id_equal_to_everything_reads_only_its_own_text(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    consent(portal, partner.admin, customer)
    other = add_customer(portal, "Dunder", "dunder.example", roles=())
    own = portal.audit_trail(other.admin)
    assert portal.audit_trail(other.admin, _EqualToAll(other.company.id)) == own
    with pytest.raises(Forbidden):
        portal.audit_trail(other.admin, _EqualToAll(customer.company.id))
    assert not portal.decide(other.admin, Permission.VIEW_PROFILE, _EqualToAll(customer.company.id))
    with pytest.raises(Forbidden):
        portal.update_profile(other.admin, company_id=_EqualToAll(customer.company.id), name="X")


# -- values a column cannot take --------------------------------------------------------------


def _request(**changes: Any) -> ServiceRequest:
    fields: dict[str, Any] = {
        "id": "srq_1",
        "customer_id": "cmp_x",
        "title": "t",
        "description": "",
        "severity": Severity.MINIMAL,
        "status": RequestStatus.OPEN,
        "created_by": "usr_x",
        "created_by_company_id": "cmp_x",
        "delegation_id": None,
        "created_at": datetime(2030, 1, 1, tzinfo=UTC),
        "updated_at": datetime(2030, 1, 1, tzinfo=UTC),
    }
    fields.update(changes)
    return ServiceRequest(**fields)


def _smuggled(obj: Any, **changes: Any) -> Any:
    """*obj* holding what its class would refuse (as a store may be handed one)."""
    for name, value in changes.items():
        object.__setattr__(obj, name, value)
    return obj


_UNSTORABLE = {
    "a NUL in text": ("description", "a\x00b"),
    "a NUL in an id": ("id", "srq_\x00"),
    "a lone surrogate": ("created_by", "usr_\ud800"),
    "a naive time": ("created_at", datetime(2030, 1, 1)),
    "text for an enum": ("severity", "urgent"),
    "a number for text": ("title", 7),
}


@pytest.mark.parametrize("case", _UNSTORABLE, ids=list(_UNSTORABLE))
def test_every_store_refuses_the_same_unstorable_values_alike(any_store: Store, case: str) -> None:
    """SPEC section 5: the stores behave identically, errors included. Before, MemoryStore
    kept all of these, SQLite kept a NUL, PostgreSQL refused it, and the SQL stores let a
    ``TypeError`` or ``AttributeError`` out for the rest."""
    name, value = _UNSTORABLE[case]
    with pytest.raises(ValidationError) as refused, any_store.unit_of_work() as uow:
        uow.service_requests.add(_smuggled(_request(), **{name: value}))
    assert refused.value.field == "store"
    assert name in str(refused.value)
    with any_store.unit_of_work(write=False) as uow:
        assert uow.service_requests.find(customer_id="cmp_x") == []


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"max_uses": 2**63}, "64 bits"),
        ({"max_uses": 2**70}, "64 bits"),
        ({"includes_delegated_admin": "yes"}, "True or False"),
        ({"includes_delegated_admin": 1}, "True or False"),
    ],
)
def test_every_store_refuses_numbers_and_flags_no_column_holds(
    any_store: Store, changes: dict[str, Any], why: str
) -> None:
    with pytest.raises(ValidationError, match=why), any_store.unit_of_work() as uow:
        uow.links.add(_smuggled(_link(), **changes))
    with any_store.unit_of_work() as uow:
        uow.links.add(_link())  # the same link as its class makes it is kept
        uow.commit()


def _link() -> LinkRecord:
    return LinkRecord(
        id="lnk_1",
        kind=LinkKind.PURCHASE_OFFER,
        partner_id="cmp_p",
        advisor_id="adv_1",
        target="ofr_1",
        includes_delegated_admin=False,
        delegation_offer_id=None,
        created_by="usr_p",
        created_at=datetime(2030, 1, 1, tzinfo=UTC),
        expires_at=datetime(2030, 2, 1, tzinfo=UTC),
    )


def _next_event(uow: Any, **fields: Any) -> AuditEvent:
    """An event that follows the unit of work's chain head."""
    seq, prev = uow.audit_head()
    fields = {"at": datetime(2030, 1, 1, tzinfo=UTC), "outcome": "success", **fields}
    return AuditEvent.chained(seq=seq + 1, prev_hash=prev, action="test.append", **fields)


def test_every_store_refuses_an_audit_event_holding_a_nul(any_store: Store) -> None:
    with any_store.unit_of_work() as uow:
        event = _next_event(uow, outcome="failed", reason="bad\x00reason")
        with pytest.raises(ValidationError, match="NUL"):
            uow.append_audit(event)
    with any_store.unit_of_work(write=False) as uow:
        assert uow.audit_events() == []


@pytest.mark.parametrize(
    "at",
    [
        datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
        datetime(2030, 1, 1, 12),
    ],
    ids=["in another zone", "naive"],
)
def test_every_store_refuses_an_audit_event_whose_time_is_not_utc(
    any_store: Store, at: datetime
) -> None:
    """Its hash covers its time as text, which the SQL stores give back in UTC: stored, it
    broke the chain on them (and verified on MemoryStore)."""
    with any_store.unit_of_work() as uow:
        head = uow.audit_head()
        event = _next_event(uow, at=at)
        with pytest.raises(ValidationError) as refused:
            uow.append_audit(event)
        assert refused.value.field == "at"
    with any_store.unit_of_work(write=False) as uow:
        assert uow.audit_events() == []
        assert uow.audit_head() == head


# -- a reset hands over the target's partner access ------------------------------------------


def test_a_global_admin_resets_a_partner_users_password_only_holding_its_access(
    portal: Portal, partner: PartnerCast
) -> None:
    """Whoever sets a password can sign in as its user: a global admin with LIMITED (or no)
    partner access resetting a FULL user's password would hold FULL, which F2 lets nobody
    grant without holding it. Before, any global admin of the partner could."""
    pid = partner.company.id
    limited_ga = portal.create_user(
        partner.admin,
        email="lim.ga@contoso.example",
        display_name="Limited GA",
        admin_role=AdminRole.GLOBAL_ADMIN,
        partner_access=PartnerAccess.LIMITED,
    )
    plain_ga = portal.create_user(
        partner.admin,
        email="plain.ga@contoso.example",
        display_name="Plain GA",
        admin_role=AdminRole.GLOBAL_ADMIN,
    )
    before = len(_events(portal))
    for actor in (limited_ga, plain_ga):
        with pytest.raises(Forbidden) as denied:
            portal.reset_password(actor, pid, partner.full.id)
        assert denied.value.decision.rule is Rule.RESET_NEEDS_ACCESS_HELD
    with pytest.raises(Forbidden) as denied:
        portal.reset_password(plain_ga, pid, partner.limited.id)
    assert denied.value.decision.rule is Rule.RESET_NEEDS_ACCESS_HELD
    assert [o for _, o, _ in _events(portal)[before:]] == ["denied"] * 3
    assert not portal.decide(limited_ga, Permission.RESET_PASSWORD, pid, partner.full.id)
    # Holding the access is enough: LIMITED resets LIMITED, FULL resets FULL.
    assert portal.reset_password(limited_ga, pid, partner.limited.id).temporary_password
    assert portal.reset_password(partner.admin, pid, partner.full.id).temporary_password


# -- found in the review of the session's own change -----------------------------------------


def test_a_users_company_of_a_str_subclass_never_redeems_for_another_company(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """PostgreSQL reads the actor's company with the link, by the company the caller's
    ``User`` names, and took it when that id said it equalled the stored user's: a trial
    redeemed by one customer's admin landed in another customer."""
    victim = add_customer(portal, "Dunder", "dunder.example", roles=())
    url = portal.create_trial_invitation(partner.admin, "EXCHANGE", include_delegated_admin=True)
    forged = attrs.evolve(customer.admin, company_id=_EqualToAll(victim.company.id))
    redemption = portal.redeem(url, forged)
    assert {s.customer_id for s in redemption.subscriptions} == {customer.company.id}
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.subscriptions.find(customer_id=victim.company.id) == []
        assert uow.delegations.find(customer_id=victim.company.id) == []


def test_a_hasher_whose_n_scrypt_refuses_for_its_r_is_refused() -> None:
    """OpenSSL's scrypt needs n < 2**(16 r): n = 2**16 with r = 1 failed the first reset."""
    with pytest.raises(ValidationError) as refused:
        PasswordHasher(n=2**16, r=1)
    assert refused.value.field == "n"
    assert PasswordHasher(n=2**15, r=1)
    good = PasswordHasher(n=2**4).hash("pw")
    scheme, _, _, p, salt, key = good.split("$")
    assert PasswordHasher.verify("pw", f"{scheme}${2**16}$1${p}${salt}${key}") is False


class _Text(str):
    """A framework's string type (such as a template engine's safe string)."""

    __slots__ = ()


def test_a_password_of_a_str_subclass_verifies() -> None:
    hasher = PasswordHasher(n=2**4)
    stored = hasher.hash(_Text("correct horse"))
    assert PasswordHasher.verify(_Text("correct horse"), stored)
    assert PasswordHasher.verify("correct horse", _Text(stored))
    assert not PasswordHasher.verify(_Text("wrong"), stored)


def test_a_computed_column_of_an_unstorable_value_is_refused_alike(any_store: Store) -> None:
    """The SQL stores computed a company's search name from its name before checking it,
    and a name that is not text raised ``AttributeError`` there."""
    company = Company(
        id="cmp_1", kind=CompanyKind.CUSTOMER, name="Fabrikam", domain="fabrikam.example"
    )
    with pytest.raises(ValidationError) as refused, any_store.unit_of_work() as uow:
        uow.companies.add(_smuggled(company, name=7))
    assert "Company.name" in str(refused.value)


def test_a_stale_update_holding_an_unstorable_value_is_refused_for_the_value(
    any_store: Store,
) -> None:
    """What an object holds is judged before its version, on every store."""
    with any_store.unit_of_work() as uow:
        uow.links.add(_link())
        uow.commit()
    stale = attrs.evolve(_link(), version=3)
    with pytest.raises(ValidationError, match="NUL"), any_store.unit_of_work() as uow:
        uow.links.update(_smuggled(stale, target="ofr_\x00"))


def test_an_audit_event_whose_time_is_no_time_is_a_validation_error(any_store: Store) -> None:
    with any_store.unit_of_work() as uow:
        event = _next_event(uow)
        with pytest.raises(ValidationError) as refused:
            uow.append_audit(_smuggled(event, at="2030-01-01"))
        assert refused.value.field == "at"


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")

    __repr__ = __str__


def test_an_sku_that_cannot_be_shown_is_not_found_and_audited(
    portal: Portal, partner: PartnerCast
) -> None:
    before = len(_events(portal))
    with pytest.raises(NotFound):
        portal.create_trial_invitation(partner.admin, _Unprintable())  # type: ignore[arg-type]
    assert [o for _, o, _ in _events(portal)[before:]] == ["failed"]


# -- a redemption that waits decides at the time it decides -----------------------------------


def _while_a_writer_waits(store: Store, clock: FakeClock, call: Any) -> Any:
    """Run *call* in a thread while this one holds a write unit of work, move the clock an
    hour on while the call waits for it, then let it through; return what it returned (or
    raised)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except Exception as exc:  # handed to the test
            result["value"] = exc

    with store.unit_of_work() as uow:
        uow.audit_head()  # holds the writers' lock (on PostgreSQL, taken by this read)
        waiting = threading.Thread(target=run)
        waiting.start()
        _until_in_the_store(waiting)  # past any clock read before its unit of work
        clock.advance(hours=1)
    waiting.join(30)
    return result["value"]


def _until_in_the_store(thread: threading.Thread) -> None:
    """Return once *thread* runs code of a store: it has begun its unit of work, which
    cannot go further than the writers' lock this thread holds. Whatever it read before
    that (the clock, once) it has read."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident or 0)
        while frame is not None:
            if f"partnerkit{os.sep}stores{os.sep}" in frame.f_code.co_filename:
                return
            frame = frame.f_back
        time.sleep(0.001)
    raise AssertionError("the call never reached the store")


def test_a_link_that_expired_while_its_redemption_waited_is_expired(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, clock: FakeClock
) -> None:
    """``redeem`` read the clock before its unit of work: a redemption that waited for
    the writers' lock (or was retried) redeemed a link that had expired meanwhile."""
    url = portal.create_trial_invitation(partner.admin, "EXCHANGE", expires_in=timedelta(hours=1))
    clock.advance(hours=1, seconds=-1)  # a second before the link expires
    outcome = _while_a_writer_waits(portal.store, clock, lambda: portal.redeem(url, customer.admin))
    assert isinstance(outcome, LinkExpired)
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.subscriptions.find(customer_id=customer.company.id) == []


def test_consent_given_while_an_old_delegation_ends_is_not_lost(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, clock: FakeClock
) -> None:
    """The waiting redemption judged the customer's old delegation active at the time it
    was called, returned it (expired by the time it committed) and made no new one: the
    customer's consent to the new offer was lost."""
    old = consent(portal, partner.full, customer, duration=timedelta(days=1))
    url = portal.offer_delegated_admin(partner.full)
    clock.advance(days=1, seconds=-1)  # a second before the old delegation ends
    outcome = _while_a_writer_waits(
        portal.store,
        clock,
        lambda: portal.redeem(url, customer.admin, accept_delegated_admin=True),
    )
    assert not isinstance(outcome, Exception), outcome
    assert outcome.delegation.id != old.id
    assert outcome.delegation.status is DelegationStatus.ACTIVE
    assert portal.decide(partner.full, Permission.RESET_PASSWORD, customer.company.id)


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_a_second_unit_of_work_in_the_block_of_an_ended_one_opens_not_hangs(end: str) -> None:
    """After ``commit`` or ``rollback`` the thread held MemoryStore's lock until the block
    ended; opening another unit of work there waited for it for ever (sixth session), then
    was refused (until the ninth, where the SQL stores opened it). An ended unit of work
    lets the store go at once now, and the next one opens."""
    store = MemoryStore()
    outcome: list[object] = []

    def nest() -> None:
        with store.unit_of_work() as uow:
            getattr(uow, end)()
            try:
                with store.unit_of_work(write=False):
                    outcome.append("opened")
            except PartnerKitError as exc:
                outcome.append(exc)

    worker = threading.Thread(target=nest, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "the second unit of work waited for ever"
    assert outcome == ["opened"]


@pytest.mark.parametrize("year", [2025, 9000])
def test_a_link_is_judged_alike_by_verify_and_by_a_second_look(year: int) -> None:
    """``check_link_times`` (the second look a waiting redemption takes) and
    ``Keyring.verify`` answered differently one microsecond past the skew after year 2242
    (verify counts in float seconds)."""
    ring = Keyring.generate()
    issued = datetime(year, 1, 1, tzinfo=UTC)
    code, claims = ring.issue(
        LinkKind.TRIAL_INVITATION,
        link_id="lnk_1",
        advisor_id="adv_1",
        target="EXCHANGE",
        includes_delegated_admin=False,
        issued_at=issued,
        expires_at=issued + timedelta(days=30),
    )

    def answer(look: Any, now: datetime) -> str:
        try:
            look(now)
        except LinkExpired:
            return "expired"
        except InvalidLink:
            return "invalid"
        return "valid"

    skew = timedelta(seconds=60, microseconds=1)
    for now in (issued - skew, issued, claims.expires_at + skew, claims.expires_at):
        verified = answer(lambda at: ring.verify(code, now=at), now)
        looked_again = answer(lambda at: check_link_times(claims, at), now)
        assert verified == looked_again, (now, verified, looked_again)
