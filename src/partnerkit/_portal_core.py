"""The machinery every Portal use case shares: units of work, audit, actors, decisions.

The use cases themselves live in the ``_portal_*`` modules, one per feature; the public
:class:`partnerkit.Portal` puts them together.
"""

from __future__ import annotations

import logging
import operator
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import attrs

from partnerkit._build import builder
from partnerkit.audit import AuditEvent, Outcome, current_correlation_id
from partnerkit.consent import (
    Delegation,
    DelegationOffer,
    DelegationStatus,
)
from partnerkit.directory import (
    Company,
    CompanyKind,
    ContactInfo,
    User,
    check_email,
    check_new_contact,
    check_new_name,
    email_key,
    new_id,
    normalize_domain,
)
from partnerkit.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidLink,
    InvalidState,
    NotFound,
    PartnerKitError,
    StaleVersion,
    ValidationError,
    _plain,
    _pretends,
    _shown,
)
from partnerkit.links import (
    DEFAULT_LINK_LIFETIME,
    MAX_CLOCK_SKEW,
    MAX_LINK_LIFETIME,
    Keyring,
    build_url,
)
from partnerkit.offers import (
    Catalog,
    PurchaseOffer,
    Subscription,
)
from partnerkit.ports import (
    COMPANIES,
    DELEGATIONS,
    MAX_SEARCH_LIMIT,
    RELATIONS,
    USERS,
    Clock,
    Repository,
    Store,
    UnitOfWork,
    check_find_page,
)
from partnerkit.records import CustomerRelation, LinkRecord
from partnerkit.roles import (
    ALL_ADMIN_ROLES,
    AdminRole,
    Decision,
    PartnerAccess,
    Permission,
    Rule,
    decide,
    effective_roles,
)
from partnerkit.support import (
    DEFAULT_TEMPORARY_PASSWORD_LIFETIME,
    MAX_TEMPORARY_PASSWORD_LIFETIME,
    MIN_TEMPORARY_PASSWORD_LIFETIME,
    Credential,
    PasswordHasher,
)

__all__ = ["PortalCore", "utc_now"]

R = TypeVar("R")
#: The Portal's log: what an operator should hear of (an attempt the audit trail could not
#: take, at WARNING) and what explains a slow call (a use case run again after a
#: ``Conflict``, at DEBUG). Never a secret: ids, actions and error messages only.
_log = logging.getLogger("partnerkit.portal")

_ACTOR_UNKNOWN = Decision(False, Rule.ACTOR_UNKNOWN)
_ACTIVE = DelegationStatus.ACTIVE
_NOT_OWN_GLOBAL_ADMIN = Decision(False, Rule.AUDIT_TRAIL_GLOBAL_ADMINS_ONLY)
_TARGET_ELSEWHERE = Decision(False, Rule.TARGET_IN_OTHER_COMPANY)


def utc_now() -> datetime:
    """The default clock: the current time, aware UTC."""
    return datetime.now(UTC)


@attrs.define
class _Attempt:
    """What the audit needs to know about the attempt in progress."""

    action: str
    correlation_id: str
    actor: User | None = None
    company_id: str | None = None
    delegation_id: str | None = None
    role: str | None = None
    target_id: str | None = None
    detail: dict[str, object] = attrs.Factory(dict)


@attrs.frozen
class _Context:
    """An actor, re-read, in the company it acts on."""

    actor: User
    company: Company
    delegation: Delegation | None
    now: datetime

    @property
    def own(self) -> bool:
        return self.actor.company_id == self.company.id


#: What :meth:`PortalCore.decide` decides on for a company id that is not text: no id.
_NO_COMPANY = "<not a company id>"


def _a_store(value: object) -> object:
    if not callable(getattr(value, "unit_of_work", None)):
        raise ValidationError("store", "must be a store (an object with unit_of_work)")
    return value


def _a_keyring(value: object) -> object:
    if not isinstance(value, Keyring) or _pretends(value):
        raise ValidationError("keyring", "must be a Keyring (Keyring.from_json(text) reads one)")
    return value


def _a_catalog(value: object) -> object:
    if not isinstance(value, Catalog) or _pretends(value):
        raise ValidationError("catalog", "must be a Catalog")
    return value


def _a_base_url(value: object) -> str:
    text = cast(str, value)
    build_url(text, "x")  # refuses what links cannot be built on, whatever its type
    return str.__str__(text)  # of a subclass, its text


def _a_clock(value: object) -> object:
    if not callable(value):
        raise ValidationError("clock", "must be a callable that returns the time")
    return value


def _a_hasher(value: object) -> object:
    if not (callable(getattr(value, "hash", None)) and callable(getattr(value, "verify", None))):
        raise ValidationError("password_hasher", "must be a PasswordHasher")
    return value


def _a_retry_count(value: object) -> object:
    if type(value) is not int or not 0 <= value <= 100:
        raise ValidationError("conflict_retries", "must be a whole number from 0 to 100")
    return value


def _a_password_lifetime(value: object) -> object:
    if type(value) is not timedelta or not (
        MIN_TEMPORARY_PASSWORD_LIFETIME <= value <= MAX_TEMPORARY_PASSWORD_LIFETIME
    ):
        raise ValidationError(
            "temporary_password_lifetime", "must be a timedelta from 1 minute to 90 days"
        )
    return value


#: The Portal's parts, each with the check an assignment of it passes (``__setattr__``).
_PART_CHECKS: dict[str, Callable[[object], object]] = {
    "store": _a_store,
    "keyring": _a_keyring,
    "catalog": _a_catalog,
    "base_url": _a_base_url,
    "clock": _a_clock,
    "password_hasher": _a_hasher,
    "conflict_retries": _a_retry_count,
    "temporary_password_lifetime": _a_password_lifetime,
}


class PortalCore:
    """Shared state and steps of the use cases (see :class:`partnerkit.Portal`)."""

    def __init__(
        self,
        store: Store,
        keyring: Keyring | None = None,
        catalog: Catalog | None = None,
        base_url: str = "https://portal.invalid/join",
        clock: Clock | Callable[[], datetime] | None = None,
        *,
        password_hasher: PasswordHasher | None = None,
        conflict_retries: int = 3,
        temporary_password_lifetime: timedelta = DEFAULT_TEMPORARY_PASSWORD_LIFETIME,
    ) -> None:
        # What is not of its kind is refused now, not at the first use case that needs it
        # (each assignment is checked: see __setattr__).
        self.store = store
        #: Without a key ring, a fresh HMAC one: links then die with the process.
        self.keyring = keyring if keyring is not None else Keyring.generate()
        self.catalog = catalog if catalog is not None else Catalog()
        self.base_url = base_url
        self.clock: Callable[[], datetime] = utc_now if clock is None else clock
        self.password_hasher = PasswordHasher() if password_hasher is None else password_hasher
        self.conflict_retries = conflict_retries
        #: How long a reset's temporary password signs in (once), from the reset.
        self.temporary_password_lifetime = temporary_password_lifetime
        #: url -> code of the links followed lately whose codes verified (see ``_claims``).
        self._link_codes: OrderedDict[str, str] = OrderedDict()

    def __setattr__(self, name: str, value: object) -> None:
        # A running Portal's parts may be replaced (docs/links.md: a key ring reloaded from
        # its file is assigned to ``portal.keyring``); what is not of its kind is refused
        # then as the constructor refuses it, not at the next use case, with another error.
        check = _PART_CHECKS.get(name)
        object.__setattr__(self, name, value if check is None else check(value))

    def __repr__(self) -> str:
        return f"<Portal store={self.store!r} base_url={self.base_url!r}>"

    # -- running use cases -------------------------------------------------------------

    def now(self) -> datetime:
        """Return the clock's time, checked to be aware."""
        clock = self.clock
        if clock is utc_now:
            return datetime.now(UTC)
        now = clock()
        if not isinstance(now, datetime) or _pretends(now) or now.utcoffset() is None:
            raise ValidationError("clock", "must return an aware datetime")
        # Kept as UTC, as every store gives times back: an event's hash covers its time as
        # text, which another zone's offset would change once stored and read again.
        if now.tzinfo is UTC:
            return now
        try:
            return now.astimezone(UTC)
        except OverflowError:
            raise ValidationError("clock", "returned a time out of range in UTC") from None

    def _run(
        self, action: str, body: Callable[[UnitOfWork, _Attempt], R], *, write: bool = True
    ) -> R:
        correlation_id = current_correlation_id()
        for tries_left in range(self.conflict_retries, -1, -1):
            attempt = _Attempt(action, correlation_id)
            try:
                with self.store.unit_of_work(write=write) as uow:
                    if write and _checks_later(uow):
                        # No use case goes on after a Conflict (this loop runs it again),
                        # so its writes may be checked by its next statement or commit.
                        uow.check_writes_later()  # type: ignore[attr-defined]
                    return body(uow, attempt)
            except Conflict as exc:
                # A concurrent change won (or the store was busy): the unit of work was
                # rolled back, so running the use case again from a fresh read is safe.
                if not tries_left:
                    raise
                _log.debug(
                    "%s (correlation %s): %s; running it again, %d tries left",
                    action,
                    correlation_id,
                    exc,
                    tries_left,
                )
            except Forbidden as exc:
                self._record_failure(attempt, "denied", exc.decision.reason, exc)
                raise
            except (ValidationError, NotFound, InvalidLink) as exc:
                if attempt.actor is not None:
                    self._record_failure(attempt, "failed", _reason(exc), exc)
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _record_failure(
        self, attempt: _Attempt, outcome: Outcome, reason: str, error: PartnerKitError
    ) -> None:
        """Record a denied or failed attempt, in a unit of work of its own.

        The ids it names may be whatever the caller passed: they are recorded as
        :func:`_shown` shows them, so that no input can make the record itself fail.

        The attempt's own *error* is what the caller must see, whatever happens here: a busy
        store (``Conflict``, retried once) or one that is down (``StoreUnavailable``) does
        not replace it. Should the record be lost, a note on *error* says so and why.
        """
        _clean(attempt)
        for tries_left in (1, 0):
            try:
                with self.store.unit_of_work() as uow:
                    self._append(uow, attempt, outcome, reason)
                    uow.commit()
                return
            except Conflict as exc:
                if not tries_left:
                    _lost(attempt, outcome, error, exc)
                    return
            except PartnerKitError as exc:
                _lost(attempt, outcome, error, exc)
                return

    def _append(
        self,
        uow: UnitOfWork,
        attempt: _Attempt,
        outcome: Outcome,
        reason: str | None,
        **detail: object,
    ) -> AuditEvent:
        seq, prev = uow.audit_head()
        actor = attempt.actor
        event = AuditEvent.chained(
            seq=seq + 1,
            prev_hash=prev,
            at=self.now(),
            action=attempt.action,
            outcome=outcome,
            actor_id=actor.id if actor is not None else None,
            actor_company_id=actor.company_id if actor is not None else None,
            company_id=attempt.company_id,
            delegation_id=attempt.delegation_id,
            role=attempt.role,
            target_id=attempt.target_id,
            reason=reason,
            detail={**attempt.detail, **detail} if detail else attempt.detail,
            correlation_id=attempt.correlation_id,
        )
        uow.append_audit(event)
        return event

    def _succeed(self, uow: UnitOfWork, attempt: _Attempt, reason: str | None = None) -> None:
        self._append(uow, attempt, "success", reason)
        uow.commit()

    # -- reading actors and deciding ---------------------------------------------------

    def _actor(self, uow: UnitOfWork, actor: User | str, attempt: _Attempt | None) -> User:
        actor_id = _plain(actor if isinstance(actor, str) else getattr(actor, "id", None))
        # By its type: an object whose __class__ only claims str is no id.
        user = uow.users.get(actor_id) if type(actor_id) is str else None
        if user is None:
            if attempt is not None:
                # What was given: an id, or else the object itself (123, bytes, ...).
                shown = actor if actor_id is None and actor is not None else actor_id
                attempt.detail["unknown_actor"] = _shown(shown)
            raise Forbidden(_ACTOR_UNKNOWN)
        if attempt is not None:
            attempt.actor = user
        return user

    def _delegation(
        self, uow: UnitOfWork, actor: User, company_id: str, now: datetime
    ) -> Delegation | None:
        """The active delegation through which *actor* may act on *company_id*, if any."""
        if actor.partner_access is None or type(company_id) is not str:
            return None
        delegation = self._granted_delegation(uow, actor.company_id, company_id)
        return delegation if delegation is not None and delegation.is_active(now) else None

    def _context(
        self,
        uow: UnitOfWork,
        attempt: _Attempt,
        actor: User | str,
        company_id: str | None,
        field: str = "company_id",
        *,
        required: bool = False,
    ) -> _Context:
        """The actor, re-read, in *company_id* (``None``: its own company, unless the id is
        *required*). A company id that is not a string is a ``ValidationError`` on *field*,
        the name the caller passed it by."""
        user = self._actor(uow, actor, attempt)
        cid = _plain(user.company_id if company_id is None and not required else company_id)
        if type(cid) is not str:  # by its type: a __class__ property can claim str
            attempt.company_id = _shown(cid)
            raise ValidationError(field, "must be a company id (a string)")
        attempt.company_id = cid
        own = cid == user.company_id
        now = self.now()
        delegation = None if own else self._delegation(uow, user, cid, now)
        company = uow.companies.get(cid)
        if company is None or (not own and delegation is None):
            # Whether a company the actor has no rights in exists is not the actor's to know.
            attempt.role = _role_label(user, own=own)
            raise Forbidden(Decision(False, Rule.NO_ACTIVE_DELEGATION))
        if delegation is not None:
            attempt.delegation_id = delegation.id
            roles = effective_roles(user, cid, delegation, now)
            held = "all" if roles == ALL_ADMIN_ROLES else ",".join(sorted(r.value for r in roles))
            attempt.role = f"delegated:{held}"
        else:
            attempt.role = _role_label(user, own=own)
        return _Context(user, company, delegation, now)

    def _locate(
        self,
        uow: UnitOfWork,
        attempt: _Attempt,
        actor: User | str,
        company_id: str | None,
        permission: Permission,
        missing: NotFound,
        *,
        known_to: str | None = None,
    ) -> _Context:
        """The context for acting with *permission* on an object of *company_id*.

        ``company_id`` is ``None`` when the object does not exist. An object of a company the
        actor has no relation with (no delegation, and the actor is not a user with partner
        access of *known_to*, such as a subscription's advisor) is answered exactly as a
        missing one: ``Forbidden`` when the actor lacks the right at home too, else
        ``NotFound``. So nobody learns which ids exist elsewhere; where the actor may know
        the object, the real refusal is given. (A partner's users without partner access
        see nothing of its customers, so nothing of theirs is known to them.)
        """
        attempt.target_id = missing.ident
        if company_id is not None:
            try:
                ctx = self._context(uow, attempt, actor, company_id)
            except Forbidden:
                user = attempt.actor
                if user is None or user.company_id == company_id:
                    raise
                if user.company_id == known_to and user.partner_access is not None:
                    raise
            else:
                self._require(ctx, permission)
                return ctx
        ctx = self._context(uow, attempt, actor, None)
        self._require(ctx, permission)
        raise missing

    def _decide(
        self, ctx: _Context, permission: Permission, target: User | None = None
    ) -> Decision:
        return decide(
            ctx.actor,
            permission,
            ctx.company.id,
            target=target,
            delegation=ctx.delegation,
            now=ctx.now,
            company_is_partner=ctx.company.is_partner,
        )

    def _require(
        self, ctx: _Context, permission: Permission, target: User | None = None
    ) -> Decision:
        decision = self._decide(ctx, permission, target)
        if not decision:
            raise Forbidden(decision, permission)
        return decision

    def _target(self, uow: UnitOfWork, ctx: _Context, attempt: _Attempt, user_id: str) -> User:
        attempt.target_id = _shown(user_id)
        user = uow.users.get(user_id) if isinstance(user_id, str) else None
        if user is None or user.company_id != ctx.company.id:
            raise NotFound("user", _shown(user_id))
        return user

    def decide(
        self,
        actor: User | str,
        permission: Permission,
        company_id: str,
        target_user_id: str | None = None,
    ) -> Decision:
        """Answer whether *actor* may use *permission* in *company_id* (not audited).

        Without *target_user_id* the answer is whether the actor holds the permission in
        that company at all; with it, the target rules of F2 apply as well.
        """
        if type(permission) is not Permission:  # a __class__ property cannot claim it
            raise ValidationError("permission", "must be a Permission")
        # As every use case reads it (_actor): an id of a str subclass by its text.
        actor_id = _plain(actor if isinstance(actor, str) else getattr(actor, "id", None))
        company_id = _plain(company_id)
        if target_user_id is not None:
            target_user_id = _plain(target_user_id)
        with self.store.unit_of_work(write=False) as uow:
            return self._decision(uow, actor_id, permission, company_id, target_user_id)

    def _decision(
        self,
        uow: UnitOfWork,
        actor_id: object,
        permission: Permission,
        company_id: object,
        target_user_id: object,
    ) -> Decision:
        """:meth:`decide`'s answer from what *uow* holds (ids read by their text already)."""
        users = uow.users
        company: Company | None = None
        target: User | None = None
        fetched = False  # whether the target, if any, was read with the actor
        if type(actor_id) is str and type(company_id) is str and _reads_each(uow):
            # One round trip for the actor, the company (needed only in the actor's own)
            # and the target: a store across a network reads them at once.
            if type(target_user_id) is str:
                user, company, target = uow.get_each(  # type: ignore[attr-defined]
                    (USERS, actor_id), (COMPANIES, company_id), (USERS, target_user_id)
                )
            else:
                user, company = uow.get_each((USERS, actor_id), (COMPANIES, company_id))  # type: ignore[attr-defined]
            fetched = True
        else:
            user = users.get(actor_id) if type(actor_id) is str else None
        if user is None:
            return _ACTOR_UNKNOWN
        if type(company_id) is not str:
            # No company has it: answered as for an id of none (nothing of the caller's
            # object is run, whose str() might raise, or name the actor's own company).
            return decide(user, permission, _NO_COMPANY)
        now = delegation = None
        if company_id == user.company_id:
            if company is None:
                company = uow.companies.get(company_id)
            if company is None:
                return decide(user, permission, company_id)
            is_partner = company.kind is CompanyKind.PARTNER
        else:
            # In another company only an active delegation gives rights, and the kind of
            # company changes no answer there (partner-side rights are own-company only):
            # the company is not read. No delegation, no right, whether it exists or not.
            is_partner = False
            if user.partner_access is not None:
                delegation = self._granted_delegation(uow, user.company_id, company_id)
                if delegation is not None and delegation.ends_at is not None:
                    now = self.now()  # only an end date needs the clock
                    if not now < delegation.ends_at:
                        delegation = None
        if target_user_id is not None:
            if not fetched:
                target = users.get(target_user_id) if type(target_user_id) is str else None
            if target is None or target.company_id != company_id:
                target = None
                if decide(
                    user,
                    permission,
                    company_id,
                    delegation=delegation,
                    now=now,
                    company_is_partner=is_partner,
                ):
                    return _TARGET_ELSEWHERE
        return decide(
            user,
            permission,
            company_id,
            target=target,
            delegation=delegation,
            now=now,
            company_is_partner=is_partner,
        )

    def _new_customer(
        self,
        uow: UnitOfWork,
        name: str,
        domain: str,
        admin_email: str,
        admin_name: str | None,
        contact: ContactInfo | None,
    ) -> tuple[Company, User]:
        if not isinstance(domain, str) or _pretends(domain):
            raise ValidationError("domain", "must be a string")
        if contact is not None and (not isinstance(contact, ContactInfo) or _pretends(contact)):
            raise ValidationError("contact", "must be a ContactInfo")
        if contact is not None:
            check_new_contact(contact)
        check_new_name("name", name)
        now = self.now()
        company = Company(
            id=new_id("cmp"),
            kind=CompanyKind.CUSTOMER,
            name=name,
            contact=contact,
            domain=normalize_domain(domain),
            created_at=now,
        )
        if uow.companies.count(domain=company.domain):
            raise AlreadyExists("domain", "is already registered")
        admin = self._first_admin(uow, company, admin_email, admin_name, now)
        uow.companies.add(company)
        uow.users.add(admin)
        return company, admin

    def _first_admin(
        self,
        uow: UnitOfWork,
        company: Company,
        admin_email: str,
        admin_name: str | None,
        now: datetime,
    ) -> User:
        check_email("admin_email", admin_email)
        display = admin_email.split("@", 1)[0] if admin_name is None else admin_name
        check_new_name("admin_name", display)
        self._check_email_free(uow, admin_email, "admin_email")
        return User(
            id=new_id("usr"),
            company_id=company.id,
            email=admin_email,
            display_name=display,
            admin_role=AdminRole.GLOBAL_ADMIN,
            created_at=now,
        )

    @staticmethod
    def _check_email_free(uow: UnitOfWork, email: str, field: str) -> None:
        if uow.users.count(email_key=email_key(email)):
            raise AlreadyExists(field, "is already in use")

    def _active_delegation(
        self, uow: UnitOfWork, partner_id: str, customer_id: str, now: datetime
    ) -> Delegation | None:
        """The active delegation of the pair, by the delegations' own index: what a write
        checks before another consent (decisions use ``_granted_delegation``)."""
        for delegation in uow.delegations.find(
            partner_id=partner_id, customer_id=customer_id, status=_ACTIVE
        ):
            if delegation.is_active(now):
                return delegation
        return None

    def _relate(
        self,
        uow: UnitOfWork,
        partner_id: str,
        customer: Company,
        *,
        advises: bool = False,
        delegation: Delegation | None = None,
        known: Sequence[CustomerRelation] | None = None,
    ) -> None:
        """Record that *partner_id* advises *customer* (for search), or, given the accepted
        *delegation*, that it administers the customer through that one now. *known*: the
        customer's relations, when the caller read them in this unit of work and has not
        written them since."""
        assert customer.domain is not None
        key = CustomerRelation.key(partner_id, customer.id)
        if known is None:
            relation = uow.customer_relations.get(key)
        else:
            relation = next((r for r in known if r.id == key), None)
        delegation_id = delegation.id if delegation is not None else None
        ends_at = delegation.ends_at if delegation is not None else None
        if relation is None:
            uow.customer_relations.add(
                _build_relation(
                    id=key,
                    partner_id=partner_id,
                    customer_id=customer.id,
                    name_key=customer.name.casefold(),
                    domain=customer.domain,
                    advises=advises,
                    administers=delegation is not None,
                    delegation_id=delegation_id,
                    delegation_ends_at=ends_at,
                )
            )
        elif (advises and not relation.advises) or (
            delegation is not None
            and (delegation_id != relation.delegation_id or not relation.administers)
        ):
            changes: dict[str, object] = {"advises": relation.advises or advises}
            if delegation is not None:
                changes.update(
                    administers=True, delegation_id=delegation_id, delegation_ends_at=ends_at
                )
            uow.customer_relations.update(_bump(relation, **changes))

    def _unrelate_delegation(self, uow: UnitOfWork, delegation: Delegation) -> None:
        """Forget *delegation* as the one its partner administers its customer through: the
        partner no longer finds the customer, unless it advises it."""
        key = CustomerRelation.key(delegation.partner_id, delegation.customer_id)
        relation = uow.customer_relations.get(key)
        if relation is not None and relation.delegation_id == delegation.id:
            uow.customer_relations.update(
                _bump(relation, delegation_id=None, delegation_ends_at=None)
            )

    def _unrelate_advice(self, uow: UnitOfWork, partner_id: str, customer_id: str) -> None:
        """Record that *partner_id* may have stopped advising *customer_id* (another partner
        took over a subscription): it advises it while it is advisor of any of them."""
        relation = uow.customer_relations.get(CustomerRelation.key(partner_id, customer_id))
        if relation is None or not relation.advises:
            return
        if any(s.partner_id == partner_id for s in uow.subscriptions.find(customer_id=customer_id)):
            return
        uow.customer_relations.update(_bump(relation, advises=False))

    def _signing_in(self, uow: UnitOfWork, user_id: str) -> tuple[User, Credential] | None:
        """The user and its temporary password, if that may sign in now (see
        :meth:`verify_password`): the user exists, the password is within its lifetime, the
        delegation it was set through (if any) still stands, and whoever set it could set
        it now."""
        user = uow.users.get(user_id)
        credential = uow.credentials.get(user_id) if user is not None else None
        if (
            user is None
            or credential is None
            or credential.id != user.id
            or credential.company_id != user.company_id
        ):
            return None
        try:
            lapses = credential.set_at + self.temporary_password_lifetime
        except OverflowError:  # beyond the year 9999: it lapses after the clock does
            lapses = None
        now = self.now()
        if lapses is not None and not now < lapses:
            return None
        if credential.set_at - now > MAX_CLOCK_SKEW:  # a difference: no date overflows
            # Set while the clock ran ahead, and the clock since put back: its lifetime
            # would start in the future.
            return None
        # Set through a delegation: only while that very delegation stands (not under a
        # later consent of the customer to the same partner); set within the company: only
        # by a user of it. The setter's right to reset that user now is judged below.
        setter = uow.users.get(credential.set_by)
        if setter is None:
            return None
        through = credential.delegation_id
        if through is None:
            if setter.company_id != user.company_id:
                return None
        else:
            granted = self._granted_delegation(uow, setter.company_id, user.company_id)
            if granted is None or granted.id != through:
                return None
        if not self._decision(
            uow, credential.set_by, Permission.RESET_PASSWORD, user.company_id, user.id
        ):
            return None
        return user, credential

    def _set_by(self, uow: UnitOfWork, setter: User) -> tuple[list[Credential], list[Credential]]:
        """The temporary passwords *setter* set that nobody has used: those that sign in
        now, and those that no longer do (their delegation revoked, ended or past its end
        date, their lifetime over)."""
        live: list[Credential] = []
        dead: list[Credential] = []
        for credential in uow.credentials.find(set_by=setter.id):
            (live if self._signing_in(uow, credential.id) is not None else dead).append(credential)
        return live, dead

    def _forget(
        self,
        uow: UnitOfWork,
        attempt: _Attempt,
        credentials: tuple[Sequence[Credential], Sequence[Credential]],
        why: str,
    ) -> None:
        """Forget temporary passwords nobody has used, as :meth:`_set_by` splits them: each
        that signed in is recorded on the trail of its user's company as
        ``user.temporary_password.void`` (a customer sees why a password its partner's user
        set no longer signs in) and counted on *attempt*; those that did not go without a
        word (a partner must not learn from its own trail which of a customer's users,
        since the customer revoked its delegation, have not used a password it set, or were
        reset since by the customer)."""
        live, dead = credentials
        for credential in dead:
            uow.credentials.remove(credential)
        for credential in live:
            uow.credentials.remove(credential)
            step = attrs.evolve(
                attempt,
                action="user.temporary_password.void",
                company_id=credential.company_id,
                target_id=credential.id,
                detail={"why": why, "set_by": credential.set_by},
            )
            self._append(uow, step, "success", None)
        if live:
            before = attempt.detail.get("voided_temporary_passwords")
            earlier = before if isinstance(before, int) else 0
            attempt.detail["voided_temporary_passwords"] = earlier + len(live)

    def _granted_delegation(
        self, uow: UnitOfWork, partner_id: str, customer_id: str
    ) -> Delegation | None:
        """The delegation *partner_id* administers *customer_id* through, if it is active by
        its status: found by key, through their relation. Its end date, if it has one, is
        left to the caller to judge against the clock."""
        key = CustomerRelation.key(partner_id, customer_id)
        if _finds_each(uow):
            # A store across a network (one that reads several keys and lookups at once)
            # reads the relation and the pair's active delegations in one round trip, where
            # the relation and then its delegation would take two. Several may be stored as
            # active (one past its end date, and the one accepted after it ended); the one
            # that counts is the one the relation names, as below: not an older one the
            # clock, set back, would find unexpired after the newer one was revoked.
            relation, found = uow.find_each(  # type: ignore[attr-defined]
                (RELATIONS, key),
                (
                    DELEGATIONS,
                    {"partner_id": partner_id, "customer_id": customer_id, "status": _ACTIVE},
                ),
            )
            if relation is None or relation.delegation_id is None:
                return None
            return next((d for d in found if d.id == relation.delegation_id), None)
        relation = uow.customer_relations.get(key)
        if relation is None or relation.delegation_id is None:
            return None
        delegation = uow.delegations.get(relation.delegation_id)
        if (
            delegation is None
            or delegation.status is not _ACTIVE
            or delegation.partner_id != partner_id
            or delegation.customer_id != customer_id
        ):
            return None
        return delegation


V = TypeVar(
    "V", Company, User, LinkRecord, CustomerRelation, Subscription, Delegation, PurchaseOffer
)


def _check_expected(obj: Any, expected: object, noun: str) -> None:
    """Refuse an edit made against another version of *obj* than the stored one
    (``expected_version=``; ``None`` asks for no check)."""
    if expected is None:
        return
    if type(expected) is not int or not 1 <= expected < 2**63:
        raise ValidationError("expected_version", "must be a whole number, at least 1, or None")
    if obj.version != expected:
        raise StaleVersion(
            "expected_version", f"is {expected}, but the {noun} is at version {obj.version} now"
        )


def _bump(obj: V, **changes: Any) -> V:
    """Return a changed copy of a versioned object, one version newer (validated again)."""
    shape = _SHAPES.get(obj.__class__)
    if shape is None:
        shape = _SHAPES[obj.__class__] = _shape(obj.__class__)
    if not shape:
        return attrs.evolve(obj, version=obj.version + 1, **changes)
    values_of, position, build = shape
    values = list(values_of(obj))
    for name, value in changes.items():
        values[position[name]] = value
    values[position["version"]] = obj.version + 1
    return build(*values)  # type: ignore[no-any-return]


_Shape = tuple[Callable[[Any], tuple[Any, ...]], dict[str, int], Callable[..., Any]]
_SHAPES: dict[type, _Shape | tuple[()]] = {}
#: ``CustomerRelation(...)``, with plain stores (see _build.py).
_build_relation = builder(CustomerRelation)


def _shape(cls: type) -> _Shape | tuple[()]:
    """How to rebuild *cls* positionally: one getter for every field, their positions, and
    what builds it from them as ``cls(*values)`` does (see _build.py).

    Empty when the class cannot be built from its fields in order (a field left out of
    ``__init__``, keyword-only, or renamed), and ``attrs.evolve`` is used instead.
    """
    fields = attrs.fields(cls)
    if len(fields) < 2 or any(not f.init or f.kw_only or f.alias != f.name for f in fields):
        return ()
    names = [f.name for f in fields]
    getter = operator.attrgetter(*names)
    return getter, {name: i for i, name in enumerate(names)}, builder(cls)


def _capability(name: str) -> Callable[[object], bool]:
    """Return a test of whether a unit of work offers the optional method *name* (see
    ``ports.EachReader`` and its kin), answered once per class of unit of work."""
    known: dict[type, bool] = {}

    def offers(uow: object) -> bool:
        cls = uow.__class__
        found = known.get(cls)
        if found is None:
            found = known[cls] = callable(getattr(cls, name, None))
        return found

    return offers


#: Whether a unit of work offers ``get_each`` (``ports.EachReader``).
_reads_each = _capability("get_each")
_finds_each = _capability("find_each")
#: Whether a unit of work offers ``check_writes_later`` (``ports.LaterChecks``).
_checks_later = _capability("check_writes_later")


def _role_label(user: User, *, own: bool) -> str | None:
    """The role an actor acts with, for the audit, when no delegation is involved: in its
    own company its admin role, or its partner access when it holds no admin role (the
    capacity in which such a user issues links, lists and ends delegations: F7 "through
    which role")."""
    if own:
        role = user.admin_role
        if role is not None:
            return role._value_  # not .value: a slower property
    access = user.partner_access
    return f"partner-{access.value}" if access is not None else None


def _roles_detail(
    admin_role: AdminRole | None, partner_access: PartnerAccess | None
) -> Mapping[str, str]:
    return {
        "admin_role": admin_role.value if admin_role is not None else "none",
        "partner_access": partner_access.value if partner_access is not None else "none",
    }


#: Ids as the audit and errors show them: cut to this many characters.
def _clean(attempt: _Attempt) -> None:
    """Make what *attempt* records safe to store, whatever the caller passed (see
    :func:`_shown`); the details keep their length but are escaped the same way."""
    if attempt.company_id is not None:
        attempt.company_id = _shown(attempt.company_id)
    if attempt.target_id is not None:
        attempt.target_id = _shown(attempt.target_id)
    if attempt.delegation_id is not None:
        attempt.delegation_id = _shown(attempt.delegation_id)
    for key, value in attempt.detail.items():
        if isinstance(value, str) and not _pretends(value):
            text = str.__str__(value)  # of a subclass, its text
            if not text.isprintable():
                attempt.detail[key] = text.encode("unicode_escape").decode("ascii")


def _not_recorded(exc: PartnerKitError) -> str:
    return f"partnerkit: this attempt is not in the audit trail ({type(exc).__name__}: {exc})"


def _lost(
    attempt: _Attempt, outcome: Outcome, error: PartnerKitError, exc: PartnerKitError
) -> None:
    """Say on the caller's *error*, and in the log, that its attempt is not in the audit
    trail, and why (*exc*, the store's refusal)."""
    error.add_note(_not_recorded(exc))
    actor = attempt.actor
    _log.warning(
        "not in the audit trail: %s %s by %s of %s on %s (correlation %s): %s: %s",
        attempt.action,
        outcome,
        actor.id if actor is not None else "an unknown actor",
        actor.company_id if actor is not None else "no company",
        attempt.company_id or "no company",
        attempt.correlation_id,
        type(exc).__name__,
        exc,
    )


def _reason(exc: PartnerKitError) -> str:
    if isinstance(exc, InvalidLink):
        return type(exc).__name__
    if isinstance(exc, StaleVersion):
        return "stale-version"
    if isinstance(exc, AlreadyExists):
        return f"already-exists-{exc.field}"
    if isinstance(exc, InvalidState):
        return f"invalid-state-{exc.field}"
    if isinstance(exc, ValidationError):
        return f"invalid-{exc.field}"
    if isinstance(exc, NotFound):
        return f"{exc.kind}-not-found"
    return type(exc).__name__


def _check_bool(field: str, value: object) -> None:
    if type(value) is not bool:
        raise ValidationError(field, "must be True or False")


_NO_TIME = timedelta(0)


def _check_lifetime(expires_in: object) -> timedelta:
    if expires_in is None:
        return DEFAULT_LINK_LIFETIME
    if not isinstance(expires_in, timedelta) or _pretends(expires_in):
        raise ValidationError("expires_in", "must be a timedelta or None")
    # Of a subclass, its days, seconds and microseconds: its own comparisons judge nothing.
    expires_in = timedelta.__add__(_NO_TIME, expires_in)
    if expires_in < timedelta(seconds=1) or expires_in > MAX_LINK_LIFETIME:
        raise ValidationError(
            "expires_in", f"must be from 1 second to {MAX_LINK_LIFETIME.days} days"
        )
    return expires_in


def _check_max_uses(max_uses: object) -> int | None:
    if max_uses is None:
        return None
    if type(max_uses) is not int or not 1 <= max_uses <= 1_000_000:
        raise ValidationError("max_uses", "must be a whole number from 1 to 1,000,000, or None")
    return max_uses


def _check_prefix(prefix: object) -> str:
    if type(prefix) is not str or len(prefix) > 100:
        raise ValidationError("prefix", "must be text of at most 100 characters")
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("prefix", "must be valid text") from None
    return prefix.strip().casefold()


_key: Callable[[Any], str] = operator.attrgetter("id")


def _listed(repo: Repository[R], limit: int | None, after: str | None, **where: object) -> list[R]:
    """A Portal list: every object of ``find(**where)``, or with *limit* the page of them
    whose keys follow *after*, in key order (the store's ``find_page`` when it has one,
    else ``find``). *limit* and *after* are judged first, by ``find_page``'s rules."""
    bound = check_find_page(1 if limit is None else limit, after)
    if limit is not None:
        paged = getattr(repo, "find_page", None)
        if paged is not None:
            found: list[R] = paged(where, limit, bound)
            return found
    return _listed_here(repo.find(**where), limit, bound)


def _listed_few(
    repo: Repository[R],
    limit: int | None,
    after: str | None,
    keep: Callable[[R], bool] | None = None,
    **where: object,
) -> list[R]:
    """A Portal list of the few objects of ``find(**where)`` that *keep* keeps (a
    customer's subscriptions, a partner's delegations with one customer), paged here by
    ``find_page``'s rules."""
    bound = check_find_page(1 if limit is None else limit, after)
    found = repo.find(**where)
    return _listed_here(found if keep is None else [o for o in found if keep(o)], limit, bound)


def _listed_here(everything: list[R], limit: int | None, bound: str | None) -> list[R]:
    if bound is not None:
        everything = [obj for obj in everything if _key(obj) > bound]
    return everything if limit is None else everything[:limit]


def _customer_filter(customer_id: object) -> str:
    """A ``customer_id=`` that narrows a partner's list: a company id's text."""
    if type(customer_id) is not str:
        raise ValidationError("customer_id", "must be None or a company id (a string)")
    return customer_id


def _check_limit(limit: object) -> int:
    if type(limit) is not int or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ValidationError("limit", f"must be a whole number from 1 to {MAX_SEARCH_LIMIT}")
    return limit


def _terms_detail(offer: DelegationOffer) -> dict[str, object]:
    duration = offer.duration
    return {
        "roles": ",".join(sorted(r.value for r in offer.roles)),
        # Whole days for a reader, and the span exactly: a duration need not be whole days.
        "duration_days": duration.days if duration is not None else "none",
        "duration_seconds": _exact_seconds(duration) if duration is not None else "none",
    }


def _exact_seconds(span: timedelta) -> str:
    """*span* in seconds, exactly, as text: ``"172800"``, ``"90000.5"``."""
    whole = span.days * 86_400 + span.seconds
    if not span.microseconds:
        return str(whole)
    return f"{whole}.{span.microseconds:06d}".rstrip("0")


def _roles_of(delegation: Delegation) -> dict[str, object]:
    return {
        "roles": ",".join(sorted(r.value for r in delegation.roles)),
        "ends_at": delegation.ends_at.isoformat() if delegation.ends_at else "none",
    }
