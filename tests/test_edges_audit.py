"""Audit-chain edges a mutation review found untested (seventh session): the head compared
by its hash, a head reset over a truncated chain, details sorted."""

import pytest

from partnerkit import AuditChainBroken, AuditEvent
from partnerkit.audit import GENESIS_HASH, verify_chain
from partnerkit.testing import DEFAULT_START
from test_audit import _chain


def test_replacing_the_newest_event_by_a_well_chained_forgery_is_found():
    # the head's hash, not only its seq, must match the last event.
    events = _chain(4)
    forged = AuditEvent.chained(
        seq=4,
        prev_hash=events[2].hash,
        at=DEFAULT_START,
        action="t",
        outcome="denied",
        correlation_id="c",
    )
    assert verify_chain(events, (4, events[-1].hash)) == 4
    with pytest.raises(AuditChainBroken):
        verify_chain([*events[:3], forged], (4, events[-1].hash))


def test_a_head_reset_to_zero_does_not_hide_a_truncated_chain():
    # head (0, genesis) only fits an empty chain.
    events = _chain(3)
    assert verify_chain([], (0, GENESIS_HASH)) == 0
    with pytest.raises(AuditChainBroken):
        verify_chain(events[:2], (0, GENESIS_HASH))
