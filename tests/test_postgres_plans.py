"""Every statement the Portal makes PostgresStore run is answered from an index.

The test records each statement (with its parameters) that a broad story of Portal use cases
sends, then asks PostgreSQL to ``EXPLAIN`` it with sequential scans disabled. The planner still
picks a sequential scan when no index can answer a query at all, so any "Seq Scan" left in a
plan is a query that reads a whole table: fine for ten rows, slow for a million. Tables that
never grow (the one-row audit head, the schema version) are exempt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from typing import Any

import pytest

from _money import EXCHANGE, INTUNE, money_world
from partnerkit import AdminRole, OfferLine, Permission
from partnerkit.directory import Company, CompanyKind
from partnerkit.links import code_from_url
from partnerkit.records import CustomerRelation

if find_spec("psycopg") is None and not os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"):
    pytest.skip("psycopg is not installed (partnerkit[postgres])", allow_module_level=True)

import psycopg

from partnerkit.stores.postgres import PostgresStore, _PostgresUnitOfWork

pytest_plugins = ["pg_fixtures"]
pytestmark = pytest.mark.postgres

#: Tables of one row, or a handful, whatever the portal's size.
SMALL_TABLES = {"audit_head", "schema_version"}


class _RecordingUnitOfWork(_PostgresUnitOfWork):
    """A real unit of work that also notes every statement it runs."""

    def __init__(self, store: RecordingStore, write: bool) -> None:
        super().__init__(store, write)
        self._log = store.statements

    def _results(self, statements: Any, write: bool) -> Any:
        # Every statement run at once (alone, or several in one round trip) comes here.
        self._log.extend((sql, tuple(params)) for sql, params in statements)
        return super()._results(statements, write)

    def defer(self, sql: str, params: Any) -> None:
        self._log.append((sql, tuple(params)))
        super().defer(sql, params)

    def write_later(self, sql: str, params: Any, check: Any) -> bool:
        self._log.append((sql, tuple(params)))
        return super().write_later(sql, params, check)


class RecordingStore(PostgresStore):
    """``PostgresStore`` that keeps the statements its units of work ran."""

    def __init__(self, dsn: str) -> None:
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        super().__init__(dsn)

    def unit_of_work(self, *, write: bool = True) -> _PostgresUnitOfWork:
        return _RecordingUnitOfWork(self, write)


@pytest.fixture
def recording_store(fresh_dsn: str) -> Iterator[RecordingStore]:
    """A recording store on an emptied database."""
    store = RecordingStore(fresh_dsn)
    yield store
    store.close()


def tell_the_whole_story(store: RecordingStore) -> None:
    """Run every kind of use case once: directory, links, redemption, delegation, support."""
    m = money_world(store)
    portal, world = m.portal, m.world
    partner_admin, customer_admin = world.partner_admin, world.customer_admin
    customer = world.customer
    portal.profile(partner_admin)
    portal.update_profile(partner_admin, name="Contoso Partners Ltd")
    portal.list_users(partner_admin)
    first_users = portal.list_users(partner_admin, limit=1)
    portal.list_users(partner_admin, limit=1, after=first_users[0].id)
    temp = portal.create_user(partner_admin, email="tmp@contoso.example", display_name="Temp")
    portal.assign_roles(partner_admin, temp.id, admin_role=AdminRole.SERVICE_ADMIN)
    portal.remove_user(partner_admin, temp.id)
    portal.decide(world.partner_billing, Permission.PURCHASE, world.partner.id)
    portal.decide(
        partner_admin, Permission.RESET_PASSWORD, customer.id, target_user_id=world.customer_user.id
    )

    trial_url = portal.create_trial_invitation(partner_admin, EXCHANGE.sku, True)
    portal.inspect_link(trial_url)
    trial = portal.redeem(trial_url, customer_admin, accept_delegated_admin=True)
    portal.redeem(trial_url, customer_admin)  # the second time: the first result, again
    offer_url, offer = portal.create_purchase_offer(
        partner_admin, [OfferLine(sku=INTUNE.sku, licenses=20)]
    )
    bought = portal.redeem(offer_url, m.billing, licenses={INTUNE.sku: 30})
    portal.change_licenses(m.billing, bought.subscriptions[0].id, 40)
    portal.list_subscriptions(customer_admin)
    portal.list_subscriptions(partner_admin)
    portal.list_subscriptions(partner_admin, limit=1, after="")
    portal.list_subscriptions(customer_admin, limit=1)
    spare_url = portal.create_trial_invitation(partner_admin, INTUNE.sku, expires_in=timedelta(1))
    claims = portal.inspect_link(spare_url)
    portal.revoke_link(partner_admin, claims.link_id)
    portal.list_links(partner_admin)
    portal.list_links(partner_admin, limit=1, after="")
    portal.list_offers(partner_admin)
    portal.list_offers(partner_admin, limit=1, after="")
    assert code_from_url(offer_url)
    assert offer.id

    portal.list_delegations(customer_admin)
    portal.list_delegations(customer_admin, limit=1, after="")
    portal.list_delegations(partner_admin, limit=1)
    portal.list_delegations(partner_admin, limit=1, after="")
    portal.find_customers(partner_admin, "fab")
    portal.customer_profile(partner_admin, customer.id)
    portal.find_customers(partner_admin, "", limit=1, after=customer.id)
    reset = portal.reset_password(partner_admin, customer.id, world.customer_user.id)
    assert reset.temporary_password
    request = portal.create_service_request(partner_admin, customer.id, title="Mail is slow")
    portal.list_service_requests(partner_admin, customer.id)
    portal.list_service_requests(partner_admin, customer.id, limit=1, after="")
    portal.update_service_request(partner_admin, request.id, status="attention_needed")
    assert trial.delegation is not None
    portal.end_delegation(partner_admin, trial.delegation.id)
    standalone = portal.offer_delegated_admin(partner_admin, roles={AdminRole.PASSWORD_ADMIN})
    pending = portal.redeem(standalone, customer_admin)
    assert pending.delegation is not None
    portal.accept_delegation(customer_admin, pending.delegation.id)
    portal.revoke_delegation(customer_admin, pending.delegation.id)
    portal.audit_trail(customer_admin)
    first = portal.audit_trail_page(customer_admin, limit=2)
    portal.audit_trail_page(customer_admin, limit=2, cursor=first.next_cursor)
    newest = portal.audit_trail_page(customer_admin, limit=2, newest_first=True)
    portal.audit_trail_page(customer_admin, cursor=newest.next_cursor, newest_first=True)
    portal.verify_audit_trail()


def seq_scans(plan: dict[str, Any]) -> Iterator[str]:
    """The relations a JSON plan reads with a sequential scan."""
    if plan.get("Node Type") == "Seq Scan":
        yield plan["Relation Name"]
    for child in plan.get("Plans", ()):
        yield from seq_scans(child)


def test_no_portal_query_reads_a_whole_growing_table(
    recording_store: RecordingStore, fresh_dsn: str
) -> None:
    """EXPLAIN of every distinct statement of the story shows index access only."""
    tell_the_whole_story(recording_store)
    distinct = dict(recording_store.statements)
    assert len(distinct) > 30, "the story ran too few kinds of statement to prove much"
    offenders: dict[str, list[str]] = {}
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("SET enable_seqscan = off")
        for sql, params in distinct.items():
            if sql.startswith(("COMMIT", "ROLLBACK", "SET ")):
                continue
            (plan_json,) = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
            plans = plan_json if isinstance(plan_json, list) else json.loads(plan_json)
            scanned = sorted(set(seq_scans(plans[0]["Plan"])) - SMALL_TABLES)
            if scanned:
                offenders[sql] = scanned
        conn.rollback()
    assert offenders == {}


def rows_read(plan: dict[str, Any], relation: str) -> int:
    """How many rows the nodes of an analysed JSON plan read from *relation*, all loops."""
    found = 0
    if plan.get("Relation Name") == relation:
        found += int(plan["Actual Rows"]) * int(plan["Actual Loops"])
    for child in plan.get("Plans", ()):
        found += rows_read(child, relation)
    return found


def test_a_search_page_reads_only_the_companies_of_its_page(
    recording_store: RecordingStore, fresh_dsn: str
) -> None:
    """The customer search joins each index range to ``companies`` only for the rows of the
    page: EXPLAIN ANALYZE of its statements on 2,000 matching customers reads at most the
    page's companies. (One ``UNION ALL`` under a single ``LIMIT``, the shape SQLite runs
    best, made PostgreSQL join every match, by a hash over every company.)"""
    store = recording_store
    with store.unit_of_work() as uow:
        for n in range(2000):
            ident = f"cmp_{n:05d}"
            name, domain = f"Alpha {n:05d}", f"a{n:05d}.example"
            uow.companies.add(
                Company(id=ident, kind=CompanyKind.CUSTOMER, name=name, domain=domain)
            )
            uow.customer_relations.add(
                CustomerRelation(
                    id=CustomerRelation.key("cmp_p", ident),
                    partner_id="cmp_p",
                    customer_id=ident,
                    name_key=name.casefold(),
                    domain=domain,
                    advises=True,
                )
            )
        uow.commit()
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("ANALYZE")
    store.statements.clear()
    with store.unit_of_work(write=False) as uow:
        page = uow.search_customers("cmp_p", "a", 10, None, now=datetime.now(UTC))
    assert [c.id for c in page] == [f"cmp_{n:05d}" for n in range(10)]
    searches = [(sql, params) for sql, params in store.statements if " companies c " in sql]
    assert searches, "the search's statements were not recorded"
    with psycopg.connect(fresh_dsn) as conn:
        for sql, params in searches:
            (plan_json,) = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params).fetchone()
            plans = plan_json if isinstance(plan_json, list) else json.loads(plan_json)
            assert rows_read(plans[0]["Plan"], "companies") <= 10, sql
