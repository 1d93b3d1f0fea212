"""The audit trail: who did what, on whose behalf, with what outcome (F7).

Every event carries the hash of the one before it, so one chain runs through the whole store.
:func:`verify_chain` recomputes every hash and finds an edited, inserted or deleted event;
the store also keeps the chain's head, so dropping the newest events is found too.
No secret (key, temporary password, whole link) is ever put into an event.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import operator
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from partnerkit._build import builder
from partnerkit._random import random_hex128
from partnerkit.errors import PartnerKitError, ValidationError, _plain

__all__ = [
    "GENESIS_HASH",
    "MAX_CORRELATION_ID",
    "AuditChainBroken",
    "AuditEvent",
    "AuditPage",
    "Outcome",
    "correlation",
    "current_correlation_id",
    "verify_chain",
]

#: The ``prev_hash`` of the first event.
GENESIS_HASH = "0" * 64

Outcome = Literal["success", "denied", "failed"]

_correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "partnerkit_correlation_id", default=None
)


#: The longest correlation id :func:`correlation` takes, in characters.
MAX_CORRELATION_ID = 200


@contextlib.contextmanager
def correlation(correlation_id: str) -> Iterator[str]:
    """Tag every audit event written inside the block with *correlation_id*.

    A portal calls this once per incoming request, with its own request id, so that all
    events a request caused can be found together. Outside such a block each use case gets
    a fresh random correlation id.

    Raises:
        ValidationError: *correlation_id* is not 1 to :data:`MAX_CORRELATION_ID` printable
            ASCII characters (a request id often comes straight from a request header: it
            is judged here, before any use case would record it).
    """
    correlation_id = _plain(correlation_id)
    if (
        type(correlation_id) is not str  # (plain text by now: a pretender stays as it is)
        or not 0 < len(correlation_id) <= MAX_CORRELATION_ID
        or not correlation_id.isascii()
        or not correlation_id.isprintable()
    ):
        raise ValidationError(
            "correlation_id", f"must be 1 to {MAX_CORRELATION_ID} printable ASCII characters"
        )
    token = _correlation.set(correlation_id)
    try:
        yield correlation_id
    finally:
        _correlation.reset(token)


def current_correlation_id() -> str:
    """Return the correlation id in force, or a new random one."""
    return _correlation.get() or random_hex128()


class AuditChainBroken(PartnerKitError):
    """The audit chain does not verify: an event was edited, inserted or deleted."""

    #: The sequence number at which the chain first fails.
    seq: int
    #: What is wrong there.
    why: str

    def __init__(self, seq: int, why: str) -> None:
        self.seq = seq
        self.why = why
        super().__init__(f"audit chain broken at event {seq}: {why}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.seq, self.why), self.__dict__


@attrs.frozen
class AuditEvent:
    """One recorded change or denied attempt."""

    #: Position in the chain, from 1.
    seq: int
    #: When it happened (aware UTC).
    at: datetime
    #: Who acted (``None`` when the actor named no user: an unknown or removed one; a
    #: sign-up through a link is the new customer's first global admin's).
    actor_id: str | None
    #: The actor's own company.
    actor_company_id: str | None
    #: The company acted on.
    company_id: str | None
    #: The delegation the actor acted through, if any.
    delegation_id: str | None
    #: The role the actor used, in its own company (``actor_company_id``) unless it starts
    #: with ``delegated:``: its own admin role (``"global_admin"``), or its partner access
    #: (``"partner-full"``, ``"partner-limited"``) for a partner's user without an admin
    #: role or acting on a company without a delegation; the effective roles of a
    #: delegation (``"delegated:password_admin"``; ``"delegated:all"`` for all five).
    role: str | None
    #: What was attempted (``"user.create"``, ``"delegation.accept"``, ...).
    action: str
    #: ``"success"``, ``"denied"`` or ``"failed"``.
    outcome: Outcome
    #: The object acted on (a user id, a link id, ...).
    target_id: str | None
    #: The rule that decided, or the error that failed it.
    reason: str | None
    #: Non-secret details, as sorted string pairs.
    detail: tuple[tuple[str, str], ...]
    #: Ties together the events of one request.
    correlation_id: str
    #: The hash of the event before (``GENESIS_HASH`` for the first).
    prev_hash: str
    #: SHA-256 over this event's fields and ``prev_hash``.
    hash: str

    @classmethod
    def chained(
        cls,
        *,
        seq: int,
        prev_hash: str,
        at: datetime,
        action: str,
        outcome: Outcome,
        actor_id: str | None = None,
        actor_company_id: str | None = None,
        company_id: str | None = None,
        delegation_id: str | None = None,
        role: str | None = None,
        target_id: str | None = None,
        reason: str | None = None,
        detail: Mapping[str, object] | None = None,
        correlation_id: str | None = None,
    ) -> AuditEvent:
        """Build the event that follows *prev_hash*, computing its hash."""
        pairs = tuple(sorted([(str(k), str(v)) for k, v in detail.items()])) if detail else ()
        # Every field but the hash, in the order of _HASHED (which is also the class's).
        fields = (
            seq,
            at,
            actor_id,
            actor_company_id,
            company_id,
            delegation_id,
            role,
            action,
            outcome,
            target_id,
            reason,
            pairs,
            correlation_id or current_correlation_id(),
            prev_hash,
        )
        digest = hashlib.sha256(_canonical(*fields).encode("ascii")).hexdigest()
        # Built as cls(...) builds it, with plain stores (see _build.py).
        build = _build_event if cls is AuditEvent else builder(cls)
        event: AuditEvent = build(*fields, digest)
        return event

    def expected_hash(self) -> str:
        """Recompute this event's hash from its fields."""
        return hashlib.sha256(_canonical(*_hashed_fields(self)).encode("ascii")).hexdigest()

    @property
    def details(self) -> dict[str, str]:
        """The details as a dict."""
        return dict(self.detail)


_build_event = builder(AuditEvent)

#: The fields a hash covers, in the order they are encoded (every field but ``hash``).
_HASHED = (
    "seq",
    "at",
    "actor_id",
    "actor_company_id",
    "company_id",
    "delegation_id",
    "role",
    "action",
    "outcome",
    "target_id",
    "reason",
    "detail",
    "correlation_id",
    "prev_hash",
)
#: The values of an event's ``_HASHED`` fields, in that order (one C-level call).
_hashed_fields = operator.attrgetter(*_HASHED)
# The canonical form is a JSON array of the fields in _HASHED order, ASCII only, no spaces
# (datetimes as ISO 8601, details as [key, value] pairs): exactly what
# ``json.dumps(values, separators=(",", ":"), ensure_ascii=True)`` writes. It is assembled
# here from json's own string escaper, which is several times faster than an encoder pass
# over the list; a test checks the two agree.
_QUOTE = json.encoder.encode_basestring_ascii


def _canonical(
    seq: int,
    at: datetime,
    actor_id: str | None,
    actor_company_id: str | None,
    company_id: str | None,
    delegation_id: str | None,
    role: str | None,
    action: str,
    outcome: str,
    target_id: str | None,
    reason: str | None,
    detail: tuple[tuple[str, str], ...],
    correlation_id: str,
    prev_hash: str,
) -> str:
    """The text an event's hash covers: its fields in the order of ``_HASHED``."""
    q = _QUOTE
    pairs = ",".join([f"[{q(k)},{q(v)}]" for k, v in detail])
    return (
        f"[{int(seq)},{q(at.isoformat())},"
        f"{'null' if actor_id is None else q(actor_id)},"
        f"{'null' if actor_company_id is None else q(actor_company_id)},"
        f"{'null' if company_id is None else q(company_id)},"
        f"{'null' if delegation_id is None else q(delegation_id)},"
        f"{'null' if role is None else q(role)},{q(action)},{q(outcome)},"
        f"{'null' if target_id is None else q(target_id)},"
        f"{'null' if reason is None else q(reason)},[{pairs}],"
        f"{q(correlation_id)},{q(prev_hash)}]"
    )


@attrs.frozen
class AuditPage:
    """One page of a company's audit trail (``Portal.audit_trail_page``).

    A trail grows at its newest end, so a page always says where to go on from, even the
    last one: a walk oldest first that has caught up asks again later with ``next_cursor``
    and gets what was recorded since.
    """

    #: The events of the page, oldest first, or newest first when asked so.
    events: tuple[AuditEvent, ...]
    #: Pass it as ``cursor`` for the events after this page, in the same order.
    next_cursor: str
    #: Whether more events followed this page when it was read.
    has_more: bool


def verify_chain(events: Iterable[AuditEvent], head: tuple[int, str] | None = None) -> int:
    """Check the chain of *events* (in order of ``seq``); return how many were checked.

    Args:
        events: every event of the store, oldest first.
        head: the ``(seq, hash)`` the store recorded for its newest event, if it keeps one.

    Raises:
        AuditChainBroken: at the first event that was edited, inserted or is missing.
    """
    prev_hash = GENESIS_HASH
    seq = 0
    for event in events:
        if event.seq != seq + 1:
            raise AuditChainBroken(seq + 1, "an event is missing or out of order")
        if event.prev_hash != prev_hash:
            raise AuditChainBroken(event.seq, "does not follow the event before it")
        if event.hash != event.expected_hash():
            raise AuditChainBroken(event.seq, "its content does not match its hash")
        prev_hash = event.hash
        seq = event.seq
    if head is not None and head != (seq, prev_hash) and not (head[0] == 0 and seq == 0):
        raise AuditChainBroken(seq + 1 if head[0] > seq else head[0], "the chain head differs")
    return seq
