"""Delegated administration: a partner's offer, the customer's consent, and its lifecycle (F5).

A :class:`DelegationOffer` is what a partner offers (the roles it asks for and for how long);
its terms are fixed when offered and are what a ``DELEGATED_ADMIN`` link points to. A
:class:`Delegation` is that offer made to one customer: ``PENDING`` until a global admin of
the customer accepts or declines it, ``ACTIVE`` until revoked, ended or past its end date.

Expiry is judged from the clock at the moment of the question (:meth:`Delegation.is_active`,
:meth:`Delegation.status_at`): an expired relationship grants nothing from that instant, with
no background job. Transitions are methods that return a new object, or raise
``ValidationError`` and change nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from partnerkit._time import later
from partnerkit.errors import InvalidState, ValidationError, _first_items, _pretends
from partnerkit.roles import ALL_ADMIN_ROLES, AdminRole

__all__ = [
    "MAX_DURATION",
    "MIN_DURATION",
    "PENDING_LAPSE",
    "Delegation",
    "DelegationOffer",
    "DelegationStatus",
    "check_duration",
    "check_roles",
]

#: The shortest and longest end date a delegation may carry, counted from acceptance.
MIN_DURATION = timedelta(days=1)
MAX_DURATION = timedelta(days=730)
#: A pending delegation nobody answers lapses after this long.
PENDING_LAPSE = timedelta(days=90)


class DelegationStatus(enum.Enum):
    """Where a delegation stands. Every status but ``PENDING`` and ``ACTIVE`` is final."""

    __hash__ = object.__hash__  # identity: as roles.py explains, C instead of Python

    PENDING = "pending"
    ACTIVE = "active"
    DECLINED = "declined"
    REVOKED = "revoked"
    ENDED = "ended"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        """Whether no transition leaves this status."""
        return self not in (DelegationStatus.PENDING, DelegationStatus.ACTIVE)


_ACTIVE = DelegationStatus.ACTIVE  # bound once: is_active runs on every delegated decision


#: The most roles an iterable given as a delegation's roles is read to (there are five).
_MOST_ROLES_GIVEN = 64
_NO_TIME = timedelta(0)


def check_roles(roles: object) -> frozenset[AdminRole]:
    """Validate the admin roles a delegation grants; ``None`` means all five (as in 2012)."""
    if roles is None:
        return ALL_ADMIN_ROLES
    if type(roles) is AdminRole:  # by its type: a __class__ property cannot claim a member
        return frozenset((roles,))
    if (
        isinstance(roles, str | bytes | Mapping)  # a mapping's keys are no set of roles
        or _pretends(roles)
        or not hasattr(roles, "__iter__")
    ):
        raise ValidationError("roles", "must be a set of AdminRole")
    # Judged before any is hashed (a list among them is no TypeError), and only so many:
    # an endless iterable is refused, not followed for ever.
    items = _first_items(roles, _MOST_ROLES_GIVEN + 1, "roles", "must be a set of AdminRole")
    if len(items) > _MOST_ROLES_GIVEN:
        raise ValidationError("roles", f"must be at most {_MOST_ROLES_GIVEN} AdminRole")
    if not items or not all(type(r) is AdminRole for r in items):
        raise ValidationError("roles", "must be a non-empty set of AdminRole")
    return frozenset(items)


def check_duration(duration: object) -> timedelta | None:
    """Validate a delegation's duration: ``None`` (no end date) or 1 day to 2 years."""
    if duration is None:
        return None
    if not isinstance(duration, timedelta) or _pretends(duration):
        raise ValidationError("duration", "must be a timedelta or None")
    # Of a subclass, its days, seconds and microseconds: its own comparisons judge nothing.
    plain = timedelta.__add__(_NO_TIME, duration)
    if not MIN_DURATION <= plain <= MAX_DURATION:
        raise ValidationError("duration", "must be between 1 day and 730 days")
    return plain


def _v_roles(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, frozenset) or check_roles(value) != value:
        raise ValidationError("roles", "must be a non-empty frozenset of AdminRole")


def _a(word: str) -> str:
    """*word* with its indefinite article ("an active", "a pending")."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"


def _plain_duration(value: timedelta | None) -> timedelta | None:
    """A duration of a ``timedelta`` subclass as a plain one (an attrs converter)."""
    if value is not None and type(value) is not timedelta and issubclass(type(value), timedelta):
        return timedelta.__add__(_NO_TIME, value)
    return value


def _v_duration(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    check_duration(value)


@attrs.frozen
class DelegationOffer:
    """A partner's offer of delegated administration; its terms never change."""

    id: str
    partner_id: str
    #: The admin roles the partner asks for.
    roles: frozenset[AdminRole] = attrs.field(validator=_v_roles)
    #: How long the delegation lasts from acceptance; ``None`` for no end date.
    duration: timedelta | None = attrs.field(converter=_plain_duration, validator=_v_duration)
    offered_by: str
    offered_at: datetime
    version: int = 1


@attrs.frozen
class Delegation:
    """The delegated-administration relationship between one partner and one customer."""

    id: str
    partner_id: str
    customer_id: str
    #: The offer whose terms this delegation carries.
    offer_id: str
    roles: frozenset[AdminRole] = attrs.field(validator=_v_roles)
    duration: timedelta | None = attrs.field(converter=_plain_duration, validator=_v_duration)
    status: DelegationStatus
    #: When it was offered to this customer, and by which partner user.
    offered_at: datetime
    offered_by: str
    #: When and by whom it was accepted, declined, revoked or ended.
    decided_at: datetime | None = None
    decided_by: str | None = None
    #: The end date: acceptance plus duration (``None``: none).
    ends_at: datetime | None = None
    version: int = 1
    #: When and by whom the customer consented: kept once the delegation is revoked or
    #: ended, when :attr:`decided_at` and :attr:`decided_by` say who ended it, so the
    #: consent behind every right it granted can still be shown. ``None`` for a delegation
    #: never accepted, and for one revoked or ended before schema version 5 (the customer's
    #: audit trail has its acceptance).
    accepted_at: datetime | None = None
    accepted_by: str | None = None

    @classmethod
    def pending(
        cls, *, ident: str, offer: DelegationOffer, customer_id: str, now: datetime
    ) -> Delegation:
        """Make *offer* to *customer_id*, waiting for a customer global admin's answer."""
        return cls(
            id=ident,
            partner_id=offer.partner_id,
            customer_id=customer_id,
            offer_id=offer.id,
            roles=offer.roles,
            duration=offer.duration,
            status=DelegationStatus.PENDING,
            offered_at=now,
            offered_by=offer.offered_by,
        )

    def status_at(self, now: datetime) -> DelegationStatus:
        """The status at *now*: an active one past its end, or a lapsed pending one, expired."""
        status = self.status
        if status is DelegationStatus.ACTIVE:
            if self.ends_at is not None and now >= self.ends_at:
                return DelegationStatus.EXPIRED
        # The time since, not offered_at + the lapse: that sum has no date near year 9999.
        elif status is DelegationStatus.PENDING and now - self.offered_at >= PENDING_LAPSE:
            return DelegationStatus.EXPIRED
        return status

    def is_active(self, now: datetime | None) -> bool:
        """Whether the delegation grants its roles at *now* (which only a delegation with an
        end date needs: without the time, one with an end date is not active)."""
        return self.status is _ACTIVE and (
            self.ends_at is None or (now is not None and now < self.ends_at)
        )

    def as_of(self, now: datetime) -> Delegation:
        """This delegation with :attr:`status` as it stands at *now* (a view, same version)."""
        status = self.status_at(now)
        return self if status is self.status else attrs.evolve(self, status=status)

    def _move(
        self, now: datetime, by: str, allowed_from: DelegationStatus, to: DelegationStatus
    ) -> Delegation:
        current = self.status_at(now)
        if current is not allowed_from:
            raise InvalidState("status", f"{_a(current.value)} delegation cannot become {to.value}")
        return attrs.evolve(
            self, status=to, decided_at=now, decided_by=by, version=self.version + 1
        )

    def accept(self, by: str, now: datetime) -> Delegation:
        """Consent (a customer global admin): active from *now*, until its end date."""
        accepted = self._move(now, by, DelegationStatus.PENDING, DelegationStatus.ACTIVE)
        ends = None if self.duration is None else later(now, self.duration, "duration", "it")
        return attrs.evolve(accepted, ends_at=ends, accepted_at=now, accepted_by=by)

    def decline(self, by: str, now: datetime) -> Delegation:
        """Refuse a pending offer (a customer global admin)."""
        return self._move(now, by, DelegationStatus.PENDING, DelegationStatus.DECLINED)

    def revoke(self, by: str, now: datetime) -> Delegation:
        """Withdraw consent (a customer global admin): grants nothing from *now*."""
        return self._move(now, by, DelegationStatus.ACTIVE, DelegationStatus.REVOKED)

    def end(self, by: str, now: datetime) -> Delegation:
        """End the relationship from the partner's side; a pending offer may be ended too."""
        if self.status_at(now) is DelegationStatus.PENDING:
            return self._move(now, by, DelegationStatus.PENDING, DelegationStatus.ENDED)
        return self._move(now, by, DelegationStatus.ACTIVE, DelegationStatus.ENDED)

    def expire(self, now: datetime) -> Delegation:
        """Record that the delegation expired (only when :meth:`status_at` says so)."""
        if self.status.is_final or self.status_at(now) is not DelegationStatus.EXPIRED:
            raise InvalidState("status", f"{_a(self.status.value)} delegation has not expired")
        return attrs.evolve(self, status=DelegationStatus.EXPIRED, version=self.version + 1)
