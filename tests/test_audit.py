"""The audit trail (F7): what is recorded, who may read it, and that tampering is found.

Tampering is done the way an attacker with the file would do it: raw ``sqlite3`` on the
SQLite database, behind the store's back; and directly on a ``MemoryStore``'s list.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from partnerkit import (
    AdminRole,
    AuditChainBroken,
    AuditEvent,
    Forbidden,
    PartnerKitError,
    Permission,
    Portal,
    correlation,
)
from partnerkit.audit import _HASHED, GENESIS_HASH, Outcome, _canonical, verify_chain
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing import DEFAULT_START, FakeClock, World, build_world, snapshot

# -- the chain, as a pure function ---------------------------------------------------------


def _chain(n: int) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    prev = GENESIS_HASH
    for seq in range(1, n + 1):
        event = AuditEvent.chained(
            seq=seq,
            prev_hash=prev,
            at=DEFAULT_START,
            action="test.event",
            outcome="success",
            detail={"n": seq},
            correlation_id="c",
        )
        events.append(event)
        prev = event.hash
    return events


def test_a_chain_verifies_and_counts_its_events() -> None:
    """An untouched chain verifies, with or without its head; an empty one too."""
    events = _chain(4)
    assert verify_chain(events) == 4
    assert verify_chain(events, (4, events[-1].hash)) == 4
    assert verify_chain([], (0, GENESIS_HASH)) == 0


_OPTIONAL_TEXT = st.none() | st.text(max_size=20)


@settings(max_examples=300)
@given(
    seq=st.integers(min_value=1, max_value=2**62),
    at=st.datetimes(timezones=st.just(UTC)),
    texts=st.lists(_OPTIONAL_TEXT, min_size=7, max_size=7),
    action=st.text(max_size=20),
    outcome=st.sampled_from(["success", "denied", "failed"]),
    detail=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
)
def test_the_hashed_text_is_the_canonical_json_array(
    seq: int,
    at: datetime,
    texts: list[str | None],
    action: str,
    outcome: Outcome,
    detail: dict[str, str],
) -> None:
    """The hand-assembled canonical form is byte for byte what ``json.dumps`` writes for the
    fields in their fixed order, for any text (quotes, controls, non-ASCII), so chains
    written by either verify with the other."""
    actor, actor_company, company, delegation, role, target, reason = texts
    event = AuditEvent.chained(
        seq=seq,
        prev_hash=GENESIS_HASH,
        at=at,
        action=action,
        outcome=outcome,
        actor_id=actor,
        actor_company_id=actor_company,
        company_id=company,
        delegation_id=delegation,
        role=role,
        target_id=target,
        reason=reason,
        detail=detail,
        correlation_id="corr",
    )
    fields = attrs.asdict(event, recurse=False)
    values_as_stored = [fields[name] for name in _HASHED]
    values = list(values_as_stored)
    values[1] = values[1].isoformat()
    reference = json.dumps(values, separators=(",", ":"), ensure_ascii=True)
    assert _canonical(*values_as_stored) == reference
    assert event.hash == hashlib.sha256(reference.encode("ascii")).hexdigest()


def test_the_hashed_fields_are_the_events_fields_in_their_order() -> None:
    """``AuditEvent.chained`` builds the event from the hashed fields in order, then the hash."""
    assert (*_HASHED, "hash") == tuple(f.name for f in attrs.fields(AuditEvent))


def test_every_field_is_covered_by_the_hash() -> None:
    """Changing any single field of an event makes its hash wrong."""
    event = _chain(1)[0]
    changes = {
        "at": DEFAULT_START.replace(microsecond=1),
        "actor_id": "usr_x",
        "actor_company_id": "cmp_x",
        "company_id": "cmp_x",
        "delegation_id": "dlg_x",
        "role": "global_admin",
        "action": "other",
        "outcome": "denied",
        "target_id": "usr_y",
        "reason": "why",
        "detail": (("n", "2"),),
        "correlation_id": "d",
        "prev_hash": "f" * 64,
        "seq": 2,
    }
    assert set(changes) == {f.name for f in attrs.fields(AuditEvent)} - {"hash"}
    for name, value in changes.items():
        forged = attrs.evolve(event, **{name: value})
        assert forged.expected_hash() != event.hash, name
        with pytest.raises(AuditChainBroken):
            verify_chain([forged])


def test_a_broken_chain_names_the_first_bad_event() -> None:
    """``AuditChainBroken`` is a ``PartnerKitError`` and says where the chain breaks."""
    events = _chain(5)
    events[2] = attrs.evolve(events[2], outcome="failed")
    with pytest.raises(AuditChainBroken) as info:
        verify_chain(events)
    assert isinstance(info.value, PartnerKitError)
    assert info.value.seq == 3


def test_a_head_that_disagrees_with_the_events_is_found() -> None:
    """Dropping the newest events is found through the head the store keeps."""
    events = _chain(4)
    with pytest.raises(AuditChainBroken):
        verify_chain(events[:3], (4, events[-1].hash))
    with pytest.raises(AuditChainBroken):
        verify_chain([], (4, events[-1].hash))


# -- what the Portal records ---------------------------------------------------------------


def test_a_change_records_who_what_on_whom_when_and_the_outcome(
    partnerkit_world: World, partnerkit_clock: FakeClock
) -> None:
    """A role assignment's event names the actor, both companies, the role used, the target,
    the time of the clock and the outcome."""
    world = partnerkit_world
    at = partnerkit_clock.advance(minutes=5)
    with correlation("req-123"):
        world.portal.assign_roles(
            world.partner_admin, world.partner_agent.id, admin_role=AdminRole.SERVICE_ADMIN
        )
    event = snapshot(world.portal.store).audit[-1]
    assert event.action == "user.assign_roles"
    assert event.outcome == "success"
    assert event.actor_id == world.partner_admin.id
    assert event.actor_company_id == world.partner.id
    assert event.company_id == world.partner.id
    assert event.role == "global_admin"
    assert event.target_id == world.partner_agent.id
    assert event.at == at
    assert event.correlation_id == "req-123"
    assert event.details == {"admin_role": "service_admin", "partner_access": "none"}


def test_a_denied_attempt_is_recorded_with_its_rule(partnerkit_world: World) -> None:
    """A denial is an event with outcome ``denied`` and the denying rule as reason."""
    world = partnerkit_world
    with pytest.raises(Forbidden) as info:
        world.portal.remove_user(world.customer_user, world.customer_admin.id)
    event = snapshot(world.portal.store).audit[-1]
    assert (event.action, event.outcome) == ("user.remove", "denied")
    assert event.reason == info.value.decision.reason
    assert event.actor_id == world.customer_user.id


def test_events_of_one_request_share_a_correlation_id(partnerkit_world: World) -> None:
    """Inside ``correlation(...)`` every event carries that id; outside, each use case gets
    its own."""
    world = partnerkit_world
    portal = world.portal
    with correlation("req-1"):
        user = portal.create_user(
            world.customer_admin, email="e@fabrikam.example", display_name="E"
        )
        with pytest.raises(Forbidden):
            portal.assign_roles(world.customer_user, user.id, admin_role=AdminRole.GLOBAL_ADMIN)
    portal.remove_user(world.customer_admin, user.id)
    portal.create_user(world.customer_admin, email="f@fabrikam.example", display_name="F")
    events = snapshot(portal.store).audit[-4:]
    assert [e.correlation_id for e in events[:2]] == ["req-1", "req-1"]
    assert len({e.correlation_id for e in events[2:]} | {"req-1"}) == 3


def test_a_decision_is_a_question_and_is_not_recorded(partnerkit_world: World) -> None:
    """``Portal.decide`` leaves the trail as it was."""
    world = partnerkit_world
    before = snapshot(world.portal.store).audit
    world.portal.decide(world.partner_agent, Permission.EDIT_PROFILE, world.partner.id)
    assert snapshot(world.portal.store).audit == before


def test_a_company_s_trail_holds_its_events_and_those_caused_on_it(
    partnerkit_world: World,
) -> None:
    """A customer's global admin reads the customer's events, not the partner's."""
    world = partnerkit_world
    events = world.portal.audit_trail(world.customer_admin)
    assert events
    assert all(world.customer.id in (e.company_id, e.actor_company_id) for e in events)
    assert [e.action for e in events] == ["customer.register", "user.create"]


@pytest.mark.parametrize("reader", ["partner_agent", "partner_billing", "customer_admin"])
def test_only_the_company_s_own_global_admins_read_its_trail(
    partnerkit_world: World, reader: str
) -> None:
    """Users without the global admin role, and other companies' admins, are refused."""
    world = partnerkit_world
    with pytest.raises(Forbidden) as info:
        world.portal.audit_trail(getattr(world, reader), world.partner.id)
    assert info.value.decision.reason == "audit-trail-readable-by-own-global-admins"


# -- tampering with a SQLite file ----------------------------------------------------------


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Iterator[World]:
    """A world on a SQLite file, with a few more events."""
    store = SQLiteStore(tmp_path / "audit.db")
    world = build_world(Portal(store=store, clock=FakeClock()))
    portal = world.portal
    portal.assign_roles(world.partner_admin, world.partner_agent.id, admin_role=None)
    with pytest.raises(Forbidden):
        portal.remove_user(world.partner_billing, world.partner_agent.id)
    yield world
    store.close()


def _tamper(world: World, *statements: str | tuple[str, tuple[object, ...]]) -> None:
    path = world.portal.store.path  # type: ignore[attr-defined]
    with sqlite3.connect(path) as raw:
        for statement in statements:
            sql, params = statement if isinstance(statement, tuple) else (statement, ())
            cursor = raw.execute(sql, params)
            assert cursor.rowcount != 0, sql
    raw.close()


def _raw_events(world: World) -> list[AuditEvent]:
    with world.portal.store.unit_of_work(write=False) as uow:
        return uow.audit_events()


def test_an_untouched_sqlite_trail_verifies(sqlite_world: World) -> None:
    """Before anyone tampers, the trail verifies and counts every event."""
    assert sqlite_world.portal.verify_audit_trail() == len(_raw_events(sqlite_world)) == 7


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET outcome = 'success' WHERE seq = 7",
        "UPDATE audit_events SET actor_id = 'usr_someone_else' WHERE seq = 3",
        "UPDATE audit_events SET at = at + 1 WHERE seq = 2",
        "UPDATE audit_events SET detail = '[]' WHERE seq = 4",
        "UPDATE audit_events SET reason = NULL WHERE seq = 7",
        "UPDATE audit_events SET correlation_id = 'x' WHERE seq = 1",
    ],
    ids=["outcome", "actor", "time", "detail", "reason", "correlation"],
)
def test_an_edited_row_is_detected(sqlite_world: World, statement: str) -> None:
    """Editing any column of any stored event breaks the chain."""
    _tamper(sqlite_world, statement)
    with pytest.raises(AuditChainBroken):
        sqlite_world.portal.verify_audit_trail()


def test_an_edited_row_with_a_recomputed_hash_is_detected(sqlite_world: World) -> None:
    """Fixing up the edited event's own hash is not enough: the next event no longer
    follows it."""
    events = _raw_events(sqlite_world)
    forged = attrs.evolve(events[2], outcome="failed", reason="made-up")
    forged = attrs.evolve(forged, hash=forged.expected_hash())
    _tamper(
        sqlite_world,
        (
            "UPDATE audit_events SET outcome = ?, reason = ?, hash = ? WHERE seq = ?",
            (forged.outcome, forged.reason, forged.hash, forged.seq),
        ),
    )
    with pytest.raises(AuditChainBroken) as info:
        sqlite_world.portal.verify_audit_trail()
    assert info.value.seq == forged.seq + 1


@pytest.mark.parametrize("seq", [1, 4, 6])
def test_a_deleted_row_is_detected(sqlite_world: World, seq: int) -> None:
    """Deleting an event anywhere in the chain is found."""
    _tamper(sqlite_world, f"DELETE FROM audit_events WHERE seq = {seq}")
    with pytest.raises(AuditChainBroken) as info:
        sqlite_world.portal.verify_audit_trail()
    assert info.value.seq == seq


def test_deleting_the_newest_event_is_detected(sqlite_world: World) -> None:
    """Dropping the last event leaves a chain that verifies on its own, but the stored head
    still names the dropped event."""
    _tamper(
        sqlite_world, "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)"
    )
    with pytest.raises(AuditChainBroken):
        sqlite_world.portal.verify_audit_trail()


def _forged_after(event: AuditEvent, seq: int) -> AuditEvent:
    return AuditEvent.chained(
        seq=seq,
        prev_hash=event.hash,
        at=event.at,
        action="user.assign_roles",
        outcome="success",
        actor_id=event.actor_id,
        company_id=event.company_id,
        detail={"admin_role": "global_admin"},
        correlation_id="forged",
    )


def _insert(event: AuditEvent) -> tuple[str, tuple[object, ...]]:
    from partnerkit.stores._sql import AUDIT_COLUMNS

    names = [c.name for c in AUDIT_COLUMNS.columns]
    sql = f"INSERT INTO audit_events ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
    return sql, tuple(AUDIT_COLUMNS.encode(event))


def test_a_well_chained_row_inserted_at_the_end_is_detected(sqlite_world: World) -> None:
    """An appended event that follows the chain correctly is found: the head says the chain
    ends before it."""
    events = _raw_events(sqlite_world)
    _tamper(sqlite_world, _insert(_forged_after(events[-1], len(events) + 1)))
    with pytest.raises(AuditChainBroken):
        sqlite_world.portal.verify_audit_trail()


def test_a_row_inserted_in_the_middle_is_detected(sqlite_world: World) -> None:
    """Making room in the middle and inserting an event chained to its predecessor is found:
    its successor does not follow it."""
    events = _raw_events(sqlite_world)
    _tamper(
        sqlite_world,
        "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 4",
        "UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1004",
        _insert(_forged_after(events[2], 4)),
    )
    with pytest.raises(AuditChainBroken) as info:
        sqlite_world.portal.verify_audit_trail()
    assert info.value.seq == 5


# -- tampering with a MemoryStore ----------------------------------------------------------


Tamper = Callable[[list[AuditEvent]], None]
MEMORY_TAMPERING: dict[str, Tamper] = {
    "edit": lambda audit: audit.__setitem__(2, attrs.evolve(audit[2], outcome="denied")),
    "delete": lambda audit: audit.__delitem__(1),
    "insert": lambda audit: audit.insert(2, _forged_after(audit[1], 3)),
    "drop newest": lambda audit: audit.pop(),
}


@pytest.mark.parametrize("how", list(MEMORY_TAMPERING))
def test_tampering_with_a_memory_store_is_detected(
    partnerkit_world: World, partnerkit_store: MemoryStore, how: str
) -> None:
    """The same checks find an edited, deleted, inserted or dropped event in memory."""
    assert partnerkit_world.portal.verify_audit_trail() == 5
    MEMORY_TAMPERING[how](partnerkit_store.audit)
    with pytest.raises(AuditChainBroken):
        partnerkit_world.portal.verify_audit_trail()
