"""Round trips of ``PostgresStore``: what travels together, counted on a real server.

Each batch a connection sends is recorded (the statements queued on it, up to the wait for
their answers) by wrapping the connection's own methods, which still run. A write unit of
work's opening (``BEGIN`` and the writers' lock) is sent on entry and answered with its first
statement; ``find_each`` reads keys and lookups in one batch; and a redemption makes all its
reads in that first batch.
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from typing import Any

import pytest

from _money import money_world, new_customer
from partnerkit import OfferLine, Permission, Portal
from partnerkit.directory import Company, CompanyKind, User
from partnerkit.ports import COMPANIES, SUBSCRIPTIONS, USERS
from partnerkit.testing import FakeClock, build_world

if find_spec("psycopg") is None and not os.environ.get("PARTNERKIT_REQUIRE_POSTGRES"):
    pytest.skip("psycopg is not installed (partnerkit[postgres])", allow_module_level=True)

from partnerkit.stores.postgres import PostgresStore, _Slot

pytest_plugins = ["pg_fixtures"]
pytestmark = pytest.mark.postgres


class Batches:
    """The statements of each round trip, in order."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []
        self._queued: list[str] = []

    def note(self, sql: str) -> None:
        self._queued.append(" ".join(sql.split()))

    def waited(self) -> None:
        self.sent.append(self._queued)
        self._queued = []

    def reading(self, table: str) -> list[list[str]]:
        """The batches that read *table* (a ``SELECT ... FROM table``)."""
        return [b for b in self.sent if any(f" FROM {table} " in s for s in _selects(b))]


def _selects(batch: list[str]) -> list[str]:
    return [s for s in batch if s.startswith("SELECT")]


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> Batches:
    seen = Batches()
    plain, query, receive = _Slot.plain, _Slot.query, _Slot.receive

    def noted_plain(slot: _Slot, tags: list[Any], sql: bytes, *rest: Any) -> None:
        seen.note(sql.decode())
        plain(slot, tags, sql, *rest)

    def noted_query(slot: _Slot, tags: list[Any], sql: str, *rest: Any) -> None:
        seen.note(sql)
        query(slot, tags, sql, *rest)

    def noted_receive(slot: _Slot, tags: list[Any]) -> list[Any]:
        seen.waited()
        return receive(slot, tags)

    monkeypatch.setattr(_Slot, "plain", noted_plain)
    monkeypatch.setattr(_Slot, "query", noted_query)
    monkeypatch.setattr(_Slot, "receive", noted_receive)
    return seen


def customer(ident: str = "cmp_c") -> Company:
    return Company(
        id=ident, kind=CompanyKind.CUSTOMER, name="Fabrikam", domain=f"{ident[4:]}.example"
    )


def test_a_writer_sends_its_opening_with_its_first_statement(
    pg_store: PostgresStore, batches: Batches
) -> None:
    """BEGIN and the writers' lock are sent on entry and answered with the first statement:
    a read and a commit are two round trips; the chain head comes with the opening."""
    with pg_store.unit_of_work() as uow:
        assert uow.companies.get("cmp_c") is None
        assert uow.audit_head()[0] == 0
        uow.companies.add(customer())
        uow.commit()
    assert len(batches.sent) == 3
    opening = batches.sent[0]
    assert opening[0].startswith("BEGIN ISOLATION LEVEL READ")
    assert opening[1].endswith("FROM audit_head WHERE id = 1 FOR UPDATE")  # the lock
    assert opening[2].startswith("SELECT")
    assert " FROM companies " in opening[2]
    assert len(opening) == 3
    assert batches.sent[1][0].startswith("INSERT INTO companies")
    assert batches.sent[2] == ["COMMIT"]
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_c") == customer()


def test_a_writer_without_a_statement_still_opens_and_commits(pg_store: PostgresStore) -> None:
    """The opening's answers are read by whatever comes first: the head, a commit, the end."""
    with pg_store.unit_of_work() as uow:
        uow.commit()
    with pg_store.unit_of_work() as uow:
        pass
    with pg_store.unit_of_work() as uow:
        head = uow.audit_head()
    assert head[0] == 0
    with pg_store.unit_of_work() as uow:
        assert uow.execute("SET LOCAL lock_timeout = '5s'", ()) == -1  # psycopg's cursor
        uow.companies.add(customer())
        uow.commit()
    with pg_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_c") == customer()


def test_find_each_answers_as_get_and_find_do_in_one_round_trip(
    pg_store: PostgresStore, batches: Batches
) -> None:
    with pg_store.unit_of_work() as uow:
        uow.companies.add(customer("cmp_a"))
        uow.companies.add(customer("cmp_b"))
        uow.users.add(
            User(id="usr_a", company_id="cmp_a", email="ann@a.example", display_name="Ann")
        )
        # A writer sees its own writes, as get and find do.
        mine = uow.find_each((COMPANIES, "cmp_b"), (USERS, {"company_id": "cmp_a"}))
        assert mine == [customer("cmp_b"), [uow.users.get("usr_a")]]
        uow.commit()
    batches.sent.clear()
    with pg_store.unit_of_work(write=False) as uow:
        reads: list[tuple[Any, Any]] = [
            (USERS, "usr_a"),
            (COMPANIES, "cmp_none"),
            (USERS, {"company_id": "cmp_a"}),
            (USERS, {"company_id": "cmp_none"}),
            (COMPANIES, {"advisor_id": None}),  # IS NULL, as find reads None
            (SUBSCRIPTIONS, {"customer_id": "cmp_a"}),
        ]
        found = uow.find_each(*reads)
        assert len(batches.sent) == 1
        expected = [
            uow.users.get("usr_a"),
            None,
            uow.users.find(company_id="cmp_a"),
            [],
            uow.companies.find(advisor_id=None),
            [],
        ]
        assert found == expected
        assert [c.id for c in found[4]] == ["cmp_a", "cmp_b"]
        with pytest.raises(ValueError, match="no lookup"):
            uow.find_each((USERS, {"display_name": "Ann"}))


def test_a_redemption_reads_everything_in_its_first_round_trip(
    pg_store: PostgresStore, batches: Batches
) -> None:
    """The actor (given as a User), its company, the link, an earlier redemption, the offer
    and the customer's subscriptions and relations: read together, with the writer's
    opening, and never again. The writes are checked later (``check_writes_later``, which
    the Portal turns on): they travel with the commit, in the second and last round trip."""
    m = money_world(pg_store)
    url, _ = m.portal.create_purchase_offer(
        m.partner_admin, [OfferLine("EXCHANGE", 10), OfferLine("INTUNE", 20)]
    )
    _, admin = new_customer(m.portal, "counted")
    batches.sent.clear()
    m.portal.redeem(url, admin)
    first = batches.sent[0]
    assert first[0].startswith("BEGIN ISOLATION LEVEL READ")
    tables = ["users", "companies", "links", "redemptions", "purchase_offers", "subscriptions"]
    tables.append("customer_relations")
    for table in tables:
        assert batches.reading(table) == [first], table
    assert len(_selects(first)) == 1 + len(tables)  # and the writers' lock
    # Two subscriptions, the link's use, the redemption, the relation, and the commit with
    # the audit event: one round trip.
    assert len(batches.sent) == 2
    last = batches.sent[1]
    assert [s.split(" (")[0] for s in last[:-2]] == [
        "INSERT INTO subscriptions",
        "INSERT INTO subscriptions",
        "WITH changed AS",
        "INSERT INTO redemptions",
        "INSERT INTO customer_relations",
    ]
    assert last[-2].startswith("WITH event AS (INSERT INTO audit_events")
    assert last[-1] == "COMMIT"


def test_a_redemption_by_an_actor_given_by_id_takes_one_round_trip_more(
    pg_store: PostgresStore, batches: Batches
) -> None:
    m = money_world(pg_store)
    url = m.portal.create_trial_invitation(m.partner_admin, "INTUNE")
    _, admin = new_customer(m.portal, "byid")
    batches.sent.clear()
    m.portal.redeem(url, admin.id)
    assert batches.reading("users") == [batches.sent[0]]
    assert len(_selects(batches.sent[0])) == 2  # the lock, the actor
    for table in ("companies", "links", "redemptions", "subscriptions"):
        assert batches.reading(table) == [batches.sent[1]], table
    batches.sent.clear()
    assert m.portal.redeem(url, admin.id).subscriptions  # a replay: two round trips of reads
    assert len(batches.sent) == 3
    assert batches.reading("subscriptions") == [batches.sent[1], batches.sent[2]]


def test_a_targeted_decision_reads_its_target_with_the_actor(
    pg_store: PostgresStore, batches: Batches
) -> None:
    """The actor, the company and the target user travel together: one round trip in the
    actor's own company, two through a delegation (its relation and delegation second)."""
    world = build_world(Portal(store=pg_store, clock=FakeClock()))
    portal = world.portal
    url = portal.offer_delegated_admin(world.partner_admin)
    portal.redeem(url, world.customer_admin, accept_delegated_admin=True)
    customer, target = world.customer.id, world.customer_user.id
    batches.sent.clear()
    assert portal.decide(world.customer_admin, Permission.RESET_PASSWORD, customer, target)
    assert len(batches.sent) == 1
    assert [s.split(" WHERE")[0].split(" FROM ")[-1] for s in _selects(batches.sent[0])] == [
        "users",
        "companies",
        "users",
    ]
    batches.sent.clear()
    assert portal.decide(world.partner_agent, Permission.RESET_PASSWORD, customer, target)
    assert len(batches.sent) == 2
    assert len(batches.reading("users")) == 1  # the actor and the target, at once
    assert batches.reading("customer_relations") == [batches.sent[1]]
    batches.sent.clear()
    # A target elsewhere is still found out, and refused, from the same reads.
    assert not portal.decide(
        world.customer_admin, Permission.RESET_PASSWORD, customer, world.partner_agent.id
    )
    assert len(batches.sent) == 1
