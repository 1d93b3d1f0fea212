"""Fixes from the fifth session's reviews, on every built-in store.

- A delegate (a partner user acting as the customer's global admin) never gives
  ``GLOBAL_ADMIN`` and never resets, changes or removes a customer's global admin: a
  customer's global admins hold its partner relationships, which no delegate does (SPEC
  section 3 and F5), and nobody grants a right they do not hold (F2). Before, a FULL user
  could make a user of its own choosing the customer's global admin, revoke a competitor's
  delegation through it, and demote the customer's own global admin.
- After a revocation, an older delegation of the same pair that had expired by the clock
  granted nothing on Memory and SQLite, but granted again on PostgreSQL when the clock was
  set back: every store now takes the delegation the relation names.
- ``code_from_url`` refused a code with a tab or line break in it, unless the query also
  held a ``%`` or a ``+`` (urllib then dropped them silently, and the altered link
  verified); and it found a code after a ``#``, where urllib finds no query at all.
- A purchase offer's licence counts are checked by every store, as a subscription's are;
  and a stored count that is not a whole number fails a redemption as a ``ValidationError``
  (it raised ``TypeError``).
- A clock in another zone than UTC made the trail fail to verify on the SQL stores; and a
  trail edited behind the store's back could raise ``TypeError``, ``ValueError`` or
  ``JSONDecodeError`` instead of ``AuditChainBroken``.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from _money import money_world, smuggle, subscriptions_of
from delegation_kit import CustomerCast, PartnerCast, add_customer, add_partner, consent
from delegation_kit import make_portal as _make_portal
from partnerkit import (
    AdminRole,
    Forbidden,
    InvalidLink,
    OfferLine,
    PartnerKitError,
    Permission,
    Portal,
    ValidationError,
)
from partnerkit.audit import AuditChainBroken
from partnerkit.ports import Store
from partnerkit.roles import Rule
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import FakeClock, sample_catalog

pytest_plugins = ["pg_fixtures", "cast_fixtures"]

_NOT_ON_GLOBAL_ADMINS = Rule.CUSTOMER_GLOBAL_ADMIN_NOT_DELEGATED


def _rule(call: object) -> Rule:
    assert callable(call)
    with pytest.raises(Forbidden) as denied:
        call()
    return denied.value.decision.rule


# -- delegates and the customer's global admins ---------------------------------------------


def test_a_delegate_never_gives_global_admin(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    cid = customer.company.id
    consent(portal, partner.admin, customer)
    plain = customer.by_role[None]
    assert (
        _rule(
            lambda: portal.create_user(
                partner.full,
                email="puppet@contoso.example",
                display_name="Puppet",
                admin_role=AdminRole.GLOBAL_ADMIN,
                company_id=cid,
            )
        )
        is Rule.DELEGATES_NEVER_GRANT_GLOBAL_ADMIN
    )
    assert (
        _rule(
            lambda: portal.assign_roles(
                partner.full, plain.id, admin_role=AdminRole.GLOBAL_ADMIN, company_id=cid
            )
        )
        is Rule.DELEGATES_NEVER_GRANT_GLOBAL_ADMIN
    )
    assert not portal.decide(plain.id, Permission.MANAGE_PARTNER_RELATIONSHIPS, cid)
    # What a global admin holds apart from the partner relationships, a delegate still gives.
    billing = portal.assign_roles(
        partner.full, plain.id, admin_role=AdminRole.BILLING_ADMIN, company_id=cid
    )
    assert billing.admin_role is AdminRole.BILLING_ADMIN
    created = portal.create_user(
        partner.full,
        email="new@fabrikam.example",
        display_name="New",
        admin_role=AdminRole.SERVICE_ADMIN,
        company_id=cid,
    )
    assert created.admin_role is AdminRole.SERVICE_ADMIN


def test_a_delegate_never_resets_changes_or_removes_a_customers_global_admin(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    cid = customer.company.id
    consent(portal, partner.admin, customer)
    second = portal.create_user(
        customer.admin,
        email="second@fabrikam.example",
        display_name="Second",
        admin_role=AdminRole.GLOBAL_ADMIN,
    )
    for target in (customer.admin, second):
        assert (
            _rule(lambda t=target: portal.reset_password(partner.full, cid, t.id))
            is _NOT_ON_GLOBAL_ADMINS
        )
        assert (
            _rule(
                lambda t=target: portal.assign_roles(
                    partner.full, t.id, admin_role=None, company_id=cid
                )
            )
            is _NOT_ON_GLOBAL_ADMINS
        )
        assert (
            _rule(lambda t=target: portal.remove_user(partner.full, t.id, company_id=cid))
            is _NOT_ON_GLOBAL_ADMINS
        )
        assert not portal.decide(partner.full, Permission.RESET_PASSWORD, cid, target.id)
        assert portal.decide(customer.admin, Permission.MANAGE_PARTNER_RELATIONSHIPS, cid)
    # The customer's own global admin still does all of it; the delegate, to anyone else.
    assert portal.reset_password(customer.admin, cid, second.id).user_id == second.id
    billing = customer.by_role[AdminRole.BILLING_ADMIN]
    assert portal.reset_password(partner.full, cid, billing.id).user_id == billing.id
    portal.remove_user(customer.admin, second.id)


# -- the delegation a relation names ---------------------------------------------------------


def test_a_clock_set_back_after_a_revocation_revives_no_older_delegation(
    portal: Portal, partner: PartnerCast, customer: CustomerCast, clock: FakeClock
) -> None:
    cid, start = customer.company.id, clock()
    consent(portal, partner.admin, customer, duration=timedelta(days=1))
    clock.advance(days=2)
    newer = consent(portal, partner.admin, customer)
    portal.revoke_delegation(customer.admin, newer.id)
    clock.set(start + timedelta(hours=12))  # inside the older delegation's term
    target = customer.by_role[None]
    assert not portal.decide(partner.full, Permission.RESET_PASSWORD, cid, target.id)
    assert _rule(lambda: portal.reset_password(partner.full, cid, target.id)) in (
        Rule.NO_ACTIVE_DELEGATION,
    )


# -- links ---------------------------------------------------------------------------------


@pytest.mark.parametrize("junk", ["\t", "\n", "\r", " ", "\x00", "\x7f"])
def test_a_link_with_white_space_or_a_control_character_is_invalid(
    any_store: Store, junk: str
) -> None:
    m = money_world(any_store)
    url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE")
    base, code = url.split("code=")
    broken = code[:10] + junk + code[10:]
    for query in ("?", "?ref=a%20b&", "?ref=a+b&"):
        with pytest.raises(InvalidLink):
            m.portal.inspect_link(f"{base.replace('?', query)}code={broken}")
    with pytest.raises(InvalidLink):
        m.portal.redeem(f"{base.replace('?', '?ref=a+b&')}code={broken}", m.admin)
    with pytest.raises(InvalidLink):
        m.portal.inspect_link(junk + url)
    assert subscriptions_of(m.store, m.customer.id) == []
    # The link itself, and with other parameters around it, still works.
    assert m.portal.inspect_link(f"{base.replace('?', '?ref=a%20b&')}code={code}")


def test_a_code_after_a_fragment_mark_is_no_code(any_store: Store) -> None:
    m = money_world(any_store)
    url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE")
    code = url.split("code=")[1]
    for shown in (f"https://portal.invalid/join#x?code={code}", f"/j#?code={code}"):
        with pytest.raises(InvalidLink):
            m.portal.redeem(shown, m.admin)
    assert subscriptions_of(m.store, m.customer.id) == []


# -- licence counts of stored offers -------------------------------------------------------


@pytest.mark.parametrize("bad", [0, True, 2.5, "5", 10**7, None])
def test_every_store_refuses_an_offer_line_with_a_bad_count(any_store: Store, bad: object) -> None:
    m = money_world(any_store)
    _, offer = m.portal.create_purchase_offer(m.partner_admin, [OfferLine("EXCHANGE", 5)])
    line = smuggle(offer.lines[0], licenses=bad)
    fresh = smuggle(offer, id="off_x", quote_id="Q-X", link_id="lnk_x", lines=(line,))
    with any_store.unit_of_work() as uow, pytest.raises(ValidationError) as raised:
        uow.purchase_offers.add(fresh)
    assert raised.value.field == "licenses[EXCHANGE]"
    changed = smuggle(offer, lines=(line,), version=offer.version + 1)
    with any_store.unit_of_work() as uow, pytest.raises(ValidationError):
        uow.purchase_offers.update(changed)
    with any_store.unit_of_work(write=False) as uow:
        assert uow.purchase_offers.get("off_x") is None
        assert uow.purchase_offers.get(offer.id) == offer


def test_a_stored_count_that_is_not_a_whole_number_fails_a_redemption_typed(
    tmp_path: Path,
) -> None:
    """A row written behind the store's back (by hand, or by an older version) with a count
    of text: the redemption fails with a ``ValidationError`` on the line, audited, and
    nothing is bought (it used to raise ``TypeError`` from a comparison)."""
    path = tmp_path / "offers.db"
    store = SQLiteStore(path)
    try:
        m = money_world(store)
        url, offer = m.portal.create_purchase_offer(m.partner_admin, [OfferLine("EXCHANGE", 5)])
        conn = sqlite3.connect(path)
        with conn:
            conn.execute(
                "UPDATE purchase_offers SET lines = ? WHERE id = ?",
                ('[{"licenses":"5","sku":"EXCHANGE"}]', offer.id),
            )
        conn.close()
        with pytest.raises(ValidationError) as raised:
            m.portal.redeem(url, m.admin)
        assert raised.value.field == "licenses[EXCHANGE]"
        assert subscriptions_of(store, m.customer.id) == []
        with store.unit_of_work(write=False) as uow:
            last = uow.audit_events()[-1]
        assert (last.action, last.outcome) == ("link.redeem", "failed")
    finally:
        store.close()


# -- the audit trail ---------------------------------------------------------------------------


def test_a_clock_in_another_zone_keeps_the_trail_verifiable(any_store: Store) -> None:
    """A clock that gives aware times with another offset (a portal's local zone): events
    are recorded in UTC, so the SQL stores, which keep times as UTC, read back the very text
    each hash covers (the trail failed to verify on SQLite and PostgreSQL)."""
    plus_two = timezone(timedelta(hours=2))
    portal = _make_portal(
        any_store, lambda: datetime(2024, 1, 15, 11, 30, tzinfo=plus_two), sample_catalog()
    )
    add_partner(portal, "Contoso", "contoso")
    with any_store.unit_of_work(write=False) as uow:
        events = uow.audit_events()
    assert events
    assert {e.at for e in events} == {datetime(2024, 1, 15, 9, 30, tzinfo=UTC)}
    assert all(e.at.tzinfo is UTC for e in events)
    assert portal.verify_audit_trail() == len(events)


_TAMPERING = {
    "head-row-deleted": "DELETE FROM audit_head",
    "head-seq-text": "UPDATE audit_head SET seq = 'x'",
    "at-text": "UPDATE audit_events SET at = 'yesterday' WHERE seq = 2",
    "detail-not-json": "UPDATE audit_events SET detail = 'not json' WHERE seq = 2",
    "detail-bad-shape": """UPDATE audit_events SET detail = '[["a"]]' WHERE seq = 2""",
    "actor-a-number": "UPDATE audit_events SET actor_id = 7 WHERE seq = 2",
}


def _chain_broken(portal: Portal, statement: str) -> None:
    """After *statement* edited the trail: it does not verify, and, the head being gone or
    wrong, neither does any write go through."""
    with pytest.raises(AuditChainBroken):
        portal.verify_audit_trail()
    if "audit_head" in statement:
        with pytest.raises(AuditChainBroken):
            portal.register_customer(
                name="Later", domain="later.example", admin_email="a@later.example"
            )


@pytest.mark.parametrize("statement", list(_TAMPERING.values()), ids=list(_TAMPERING))
def test_a_trail_edited_behind_the_store_is_audit_chain_broken(
    tmp_path: Path, statement: str
) -> None:
    """Rows a SQLite file's audit tables should never hold (they predate STRICT tables):
    ``verify_audit_trail`` raises ``AuditChainBroken``, never a ``TypeError`` or a
    ``JSONDecodeError``; a missing head stops every write the same way."""
    path = tmp_path / "audit.db"
    store = SQLiteStore(path)
    try:
        portal = _make_portal(store, FakeClock(), sample_catalog())
        add_customer(portal, "Fabrikam", "fabrikam.example", roles=(None,))
        assert portal.verify_audit_trail() >= 2
        raw = sqlite3.connect(path)
        with raw:
            assert raw.execute(statement).rowcount == 1
        raw.close()
        _chain_broken(portal, statement)
    finally:
        store.close()


@pytest.mark.parametrize(
    "statement",
    [_TAMPERING["head-row-deleted"], _TAMPERING["detail-not-json"]],
    ids=["head-row-deleted", "detail-not-json"],
)
def test_a_postgres_trail_edited_behind_the_store_is_audit_chain_broken(
    fresh_dsn: str, statement: str
) -> None:
    psycopg = pytest.importorskip("psycopg")
    from partnerkit.stores.postgres import PostgresStore

    store = PostgresStore(fresh_dsn)
    try:
        portal = _make_portal(store, FakeClock(), sample_catalog())
        add_customer(portal, "Fabrikam", "fabrikam.example", roles=(None,))
        with psycopg.connect(fresh_dsn, autocommit=True) as raw:
            assert raw.execute(statement).rowcount == 1
        _chain_broken(portal, statement)
    finally:
        store.close()


# -- from the review of the session's own change --------------------------------------------


def test_a_finished_unit_of_work_refuses_a_search_before_judging_its_cursor(
    any_store: Store,
) -> None:
    """Every store says first that the unit of work is over, as for any read (SQLite judged
    the cursor first)."""
    uow = any_store.unit_of_work(write=False)
    with uow:
        pass
    for after in (("a\x00", "id"), ("a", "id")):
        with pytest.raises(PartnerKitError) as raised:
            uow.search_relations("cmp_x", "", 10, after=after)
        assert not isinstance(raised.value, ValidationError)


def test_a_clock_time_with_no_utc_equivalent_is_a_validation_error(any_store: Store) -> None:
    """An aware time at the very start of the calendar in a zone ahead of UTC has no UTC
    time: the clock's ``ValidationError``, not a raw ``OverflowError``; nothing written."""
    early = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    portal = _make_portal(any_store, lambda: early, sample_catalog())
    with pytest.raises(ValidationError) as raised:
        portal.register_customer(
            name="Fabrikam", domain="fabrikam.example", admin_email="a@fabrikam.example"
        )
    assert raised.value.field == "clock"
    with any_store.unit_of_work(write=False) as uow:
        assert uow.audit_events() == []
