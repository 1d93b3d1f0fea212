"""The Portal: every use case of partnerkit, each one audited unit of work.

A use case re-reads what it decides on inside its unit of work (never trusting objects the
caller hands in), asks :mod:`partnerkit.roles` for the decision, writes, appends its audit
events and commits. A denied or failed attempt by a known actor is audited too, in a unit of
work of its own, after the attempt's own one was rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import attrs

from partnerkit.audit import AuditEvent, Outcome, current_correlation_id, verify_chain
from partnerkit.directory import (
    Company,
    CompanyKind,
    ContactInfo,
    User,
    check_email,
    check_name,
    email_key,
    new_advisor_id,
    new_id,
    normalize_domain,
)
from partnerkit.errors import Conflict, Forbidden, NotFound, PartnerKitError, ValidationError
from partnerkit.ports import Clock, Store, UnitOfWork
from partnerkit.roles import (
    AdminRole,
    Decision,
    DelegationGrant,
    PartnerAccess,
    Permission,
    Rule,
    decide,
    decide_assignment,
)

__all__ = ["Portal", "utc_now"]

R = TypeVar("R")
_ACTOR_UNKNOWN = Decision(False, Rule.ACTOR_UNKNOWN)
_NOT_OWN_GLOBAL_ADMIN = Decision(False, Rule.AUDIT_TRAIL_GLOBAL_ADMINS_ONLY)


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
    delegation: DelegationGrant | None
    now: datetime

    @property
    def own(self) -> bool:
        return self.actor.company_id == self.company.id


class Portal:
    """The use cases of a partner portal over one store.

    Args:
        store: where everything is kept (``MemoryStore``, ``SQLiteStore``, ``PostgresStore``
            or your own that passes the contract suite).
        keyring: the keys that sign links; the Portal uses this very object, so
            ``rotate()`` and ``remove()`` act on a running Portal.
        catalog: the services partners may offer.
        base_url: the page links point to; the signed code goes into its ``code`` parameter.
        clock: returns the current aware UTC time; the real clock by default.
    """

    def __init__(
        self,
        store: Store,
        keyring: Any = None,
        catalog: Any = None,
        base_url: str = "https://portal.invalid/join",
        clock: Clock | Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.catalog = catalog
        self.base_url = base_url
        self.clock: Callable[[], datetime] = clock or utc_now

    def __repr__(self) -> str:
        return f"<Portal store={self.store!r} base_url={self.base_url!r}>"

    # -- running use cases -------------------------------------------------------------

    def now(self) -> datetime:
        """Return the clock's time, checked to be aware."""
        now = self.clock()
        if now.utcoffset() is None:
            raise ValidationError("clock", "must return an aware UTC datetime")
        return now

    def _run(
        self, action: str, body: Callable[[UnitOfWork, _Attempt], R], *, write: bool = True
    ) -> R:
        attempt = _Attempt(action, current_correlation_id())
        try:
            with self.store.unit_of_work(write=write) as uow:
                return body(uow, attempt)
        except Forbidden as exc:
            self._record_failure(attempt, "denied", exc.decision.reason)
            raise
        except (ValidationError, NotFound) as exc:
            if attempt.actor is not None:
                self._record_failure(attempt, "failed", _reason(exc))
            raise

    def _record_failure(self, attempt: _Attempt, outcome: Outcome, reason: str) -> None:
        try:
            with self.store.unit_of_work() as uow:
                self._append(uow, attempt, outcome, reason)
                uow.commit()
        except Conflict:
            # The attempt's own error is what the caller must see; a busy store must not
            # replace it. The denial is retried once, then given up.
            with self.store.unit_of_work() as uow:
                self._append(uow, attempt, outcome, reason)
                uow.commit()

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
            detail={**attempt.detail, **detail},
            correlation_id=attempt.correlation_id,
        )
        uow.append_audit(event)
        return event

    def _succeed(self, uow: UnitOfWork, attempt: _Attempt, reason: str | None = None) -> None:
        self._append(uow, attempt, "success", reason)
        uow.commit()

    # -- reading actors and deciding ---------------------------------------------------

    def _actor(self, uow: UnitOfWork, actor: User | str, attempt: _Attempt | None) -> User:
        actor_id = actor if isinstance(actor, str) else actor.id
        user = uow.users.get(actor_id) if isinstance(actor_id, str) else None
        if user is None:
            if attempt is not None:
                attempt.detail["unknown_actor"] = str(actor_id)[:64]
            raise Forbidden(_ACTOR_UNKNOWN)
        if attempt is not None:
            attempt.actor = user
        return user

    def _delegation(self, uow: UnitOfWork, actor: User, company_id: str) -> DelegationGrant | None:
        """The delegation through which *actor* may act on *company_id* (none yet)."""
        del uow, actor, company_id
        return None

    def _context(
        self,
        uow: UnitOfWork,
        attempt: _Attempt,
        actor: User | str,
        company_id: str | None,
    ) -> _Context:
        user = self._actor(uow, actor, attempt)
        cid = user.company_id if company_id is None else company_id
        attempt.company_id = cid
        own = cid == user.company_id
        delegation = None if own else self._delegation(uow, user, cid)
        company = uow.companies.get(cid) if isinstance(cid, str) else None
        if company is None or (not own and delegation is None):
            # Whether a company the actor has no rights in exists is not the actor's to know.
            attempt.role = _role_label(user, own=own)
            raise Forbidden(Decision(False, Rule.NO_ACTIVE_DELEGATION))
        attempt.role = _role_label(user, own=own)
        if delegation is not None:
            attempt.delegation_id = getattr(delegation, "id", None)
        return _Context(user, company, delegation, self.now())

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
        attempt.target_id = str(user_id)[:64]
        user = uow.users.get(user_id) if isinstance(user_id, str) else None
        if user is None or user.company_id != ctx.company.id:
            raise NotFound("user", str(user_id)[:64])
        return user

    # -- F1, F2: companies and users ---------------------------------------------------

    def register_partner(
        self,
        *,
        name: str,
        contact: ContactInfo,
        admin_email: str,
        admin_name: str | None = None,
    ) -> tuple[Company, User]:
        """Register a partner company and its first user (global admin, FULL access).

        The partner gets a new public advisor id. Raises ``ValidationError`` for bad input
        or an e-mail already in use.
        """
        if not isinstance(contact, ContactInfo):
            raise ValidationError("contact", "must be a ContactInfo")

        def body(uow: UnitOfWork, attempt: _Attempt) -> tuple[Company, User]:
            now = self.now()
            company = Company(
                id=new_id("cmp"),
                kind=CompanyKind.PARTNER,
                name=name,
                contact=contact,
                advisor_id=new_advisor_id(),
                created_at=now,
            )
            while uow.companies.count(advisor_id=company.advisor_id):
                company = attrs.evolve(company, advisor_id=new_advisor_id())
            admin = self._first_admin(uow, company, admin_email, admin_name, now)
            admin = attrs.evolve(admin, partner_access=PartnerAccess.FULL)
            uow.companies.add(company)
            uow.users.add(admin)
            attempt.company_id = company.id
            attempt.target_id = admin.id
            attempt.detail["advisor_id"] = company.advisor_id
            self._succeed(uow, attempt)
            return company, admin

        return self._run("partner.register", body)

    def register_customer(
        self,
        *,
        name: str,
        domain: str,
        admin_email: str,
        admin_name: str | None = None,
        contact: ContactInfo | None = None,
    ) -> tuple[Company, User]:
        """Register a customer company and its first user (global admin).

        Raises ``ValidationError`` for bad input, a domain already registered or an
        e-mail already in use.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> tuple[Company, User]:
            company, admin = self._new_customer(uow, name, domain, admin_email, admin_name, contact)
            attempt.company_id = company.id
            attempt.target_id = admin.id
            attempt.detail["domain"] = company.domain
            self._succeed(uow, attempt)
            return company, admin

        return self._run("customer.register", body)

    def _new_customer(
        self,
        uow: UnitOfWork,
        name: str,
        domain: str,
        admin_email: str,
        admin_name: str | None,
        contact: ContactInfo | None,
    ) -> tuple[Company, User]:
        if not isinstance(domain, str):
            raise ValidationError("domain", "must be a string")
        if contact is not None and not isinstance(contact, ContactInfo):
            raise ValidationError("contact", "must be a ContactInfo")
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
            raise ValidationError("domain", "is already registered")
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
        check_name("admin_name", display)
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
            raise ValidationError(field, "is already in use")

    def profile(self, actor: User | str, company_id: str | None = None) -> Company:
        """Return a company's profile; anyone in the company may read it (F1)."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> Company:
            ctx = self._context(uow, attempt, actor, company_id)
            self._require(ctx, Permission.VIEW_PROFILE)
            return ctx.company

        return self._run("profile.view", body, write=False)

    def update_profile(
        self,
        actor: User | str,
        *,
        contact: ContactInfo | None = None,
        name: str | None = None,
        company_id: str | None = None,
    ) -> Company:
        """Change the company's contact information and/or name (global admins only)."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> Company:
            ctx = self._context(uow, attempt, actor, company_id)
            self._require(ctx, Permission.EDIT_PROFILE)
            changes: dict[str, Any] = {}
            if contact is not None:
                if not isinstance(contact, ContactInfo):
                    raise ValidationError("contact", "must be a ContactInfo")
                changes["contact"] = contact
            if name is not None:
                changes["name"] = name
            if not changes:
                raise ValidationError("contact", "nothing to change")
            company = _bump(ctx.company, **changes)
            uow.companies.update(company)
            attempt.detail["changed"] = ",".join(sorted(changes))
            self._succeed(uow, attempt)
            return company

        return self._run("profile.update", body)

    def list_users(self, actor: User | str, company_id: str | None = None) -> list[User]:
        """Return the users of a company, for those who manage users or assign roles."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[User]:
            ctx = self._context(uow, attempt, actor, company_id)
            if not self._decide(ctx, Permission.ASSIGN_ROLES):
                self._require(ctx, Permission.MANAGE_USERS)
            return uow.users.find(company_id=ctx.company.id)

        return self._run("user.list", body, write=False)

    def create_user(
        self,
        actor: User | str,
        *,
        email: str,
        display_name: str,
        admin_role: AdminRole | None = None,
        partner_access: PartnerAccess | None = None,
        company_id: str | None = None,
    ) -> User:
        """Create a user in the actor's company (or, with *company_id*, a delegated one).

        Creating needs ``MANAGE_USERS``; giving the new user an admin role or partner access
        is an assignment and needs what :meth:`assign_roles` needs.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> User:
            ctx = self._context(uow, attempt, actor, company_id)
            self._require(ctx, Permission.MANAGE_USERS)
            user = User(
                id=new_id("usr"),
                company_id=ctx.company.id,
                email=email,
                display_name=display_name,
                created_at=ctx.now,
            )
            attempt.target_id = user.id
            if admin_role is not None or partner_access is not None:
                self._check_assignment(ctx, user, admin_role, partner_access)
                user = attrs.evolve(user, admin_role=admin_role, partner_access=partner_access)
            self._check_email_free(uow, user.email, "email")
            uow.users.add(user)
            attempt.detail.update(_roles_detail(admin_role, partner_access))
            self._succeed(uow, attempt)
            return user

        return self._run("user.create", body)

    def assign_roles(
        self,
        actor: User | str,
        user_id: str,
        *,
        admin_role: AdminRole | None = None,
        partner_access: PartnerAccess | None = None,
        company_id: str | None = None,
    ) -> User:
        """Set both admin settings of a user (global admins only; no escalation).

        Raises:
            Forbidden: the actor may not assign these roles to this user.
            ValidationError: partner access on a customer's user, or the company would lose
                its last global admin.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> User:
            ctx = self._context(uow, attempt, actor, company_id)
            self._require(ctx, Permission.ASSIGN_ROLES)
            target = self._target(uow, ctx, attempt, user_id)
            self._check_assignment(ctx, target, admin_role, partner_access)
            if admin_role is not AdminRole.GLOBAL_ADMIN:
                self._keep_a_global_admin(uow, target, "admin_role")
            user = _bump(target, admin_role=admin_role, partner_access=partner_access)
            uow.users.update(user)
            attempt.detail.update(_roles_detail(admin_role, partner_access))
            self._succeed(uow, attempt)
            return user

        return self._run("user.assign_roles", body)

    def _check_assignment(
        self,
        ctx: _Context,
        target: User,
        admin_role: AdminRole | None,
        partner_access: PartnerAccess | None,
    ) -> None:
        if admin_role is not None and not isinstance(admin_role, AdminRole):
            raise ValidationError("admin_role", "must be an AdminRole or None")
        if partner_access is not None and not isinstance(partner_access, PartnerAccess):
            raise ValidationError("partner_access", "must be a PartnerAccess or None")
        if partner_access is not None and not ctx.company.is_partner:
            raise ValidationError("partner_access", "only users of a partner hold partner access")
        decision = decide_assignment(
            ctx.actor,
            ctx.company.id,
            target=target,
            admin_role=admin_role,
            partner_access=partner_access,
            company_is_partner=ctx.company.is_partner,
            delegation=ctx.delegation,
            now=ctx.now,
        )
        if not decision:
            raise Forbidden(decision, Permission.ASSIGN_ROLES)

    @staticmethod
    def _keep_a_global_admin(uow: UnitOfWork, target: User, field: str) -> None:
        if target.admin_role is AdminRole.GLOBAL_ADMIN and (
            uow.users.count(company_id=target.company_id, admin_role=AdminRole.GLOBAL_ADMIN) <= 1
        ):
            raise ValidationError(field, "a company keeps at least one global admin")

    def remove_user(
        self, actor: User | str, user_id: str, *, company_id: str | None = None
    ) -> None:
        """Delete a user, within the actor's ``MANAGE_USERS`` limits.

        The last global admin of a company is never removed (``ValidationError``).
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> None:
            ctx = self._context(uow, attempt, actor, company_id)
            self._require(ctx, Permission.MANAGE_USERS)
            target = self._target(uow, ctx, attempt, user_id)
            self._require(ctx, Permission.MANAGE_USERS, target)
            self._keep_a_global_admin(uow, target, "user_id")
            uow.users.remove(target)
            self._succeed(uow, attempt)

        self._run("user.remove", body)

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
        if not isinstance(permission, Permission):
            raise ValidationError("permission", "must be a Permission")
        with self.store.unit_of_work(write=False) as uow:
            try:
                user = self._actor(uow, actor, None)
            except Forbidden as exc:
                return exc.decision
            own = company_id == user.company_id
            company = uow.companies.get(company_id) if isinstance(company_id, str) else None
            if company is None:
                return decide(user, permission, str(company_id))
            delegation = None if own else self._delegation(uow, user, company_id)
            now = self.now()
            decision = decide(
                user,
                permission,
                company_id,
                delegation=delegation,
                now=now,
                company_is_partner=company.is_partner,
            )
            if not decision or target_user_id is None:
                return decision
            target = uow.users.get(target_user_id) if isinstance(target_user_id, str) else None
            if target is None or target.company_id != company_id:
                return Decision(False, Rule.TARGET_IN_OTHER_COMPANY)
            return decide(
                user,
                permission,
                company_id,
                target=target,
                delegation=delegation,
                now=now,
                company_is_partner=company.is_partner,
            )

    # -- F7: the audit trail -----------------------------------------------------------

    def audit_trail(self, actor: User | str, company_id: str | None = None) -> list[AuditEvent]:
        """Return the events in a company and those others caused on it, oldest first.

        Readable by that company's own global admins.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[AuditEvent]:
            user = self._actor(uow, actor, attempt)
            cid = user.company_id if company_id is None else company_id
            attempt.company_id = cid
            attempt.role = _role_label(user, own=cid == user.company_id)
            if cid != user.company_id or user.admin_role is not AdminRole.GLOBAL_ADMIN:
                raise Forbidden(_NOT_OWN_GLOBAL_ADMIN)
            return uow.audit_events(cid)

        return self._run("audit.read", body, write=False)

    def verify_audit_trail(self) -> int:
        """Check the whole audit chain; return the number of events.

        Raises:
            AuditChainBroken: (a ``PartnerKitError``) an event was edited, inserted or deleted.
        """
        with self.store.unit_of_work(write=False) as uow:
            return verify_chain(uow.audit_events(), uow.audit_head())


V = TypeVar("V", Company, User)


def _bump(obj: V, **changes: Any) -> V:
    """Return a changed copy of a versioned object, one version newer."""
    return attrs.evolve(obj, version=obj.version + 1, **changes)


def _role_label(user: User, *, own: bool) -> str | None:
    if own:
        return user.admin_role.value if user.admin_role is not None else None
    access = user.partner_access
    return f"delegated-{access.value}" if access is not None else None


def _roles_detail(
    admin_role: AdminRole | None, partner_access: PartnerAccess | None
) -> Mapping[str, str]:
    return {
        "admin_role": admin_role.value if admin_role is not None else "none",
        "partner_access": partner_access.value if partner_access is not None else "none",
    }


def _reason(exc: PartnerKitError) -> str:
    if isinstance(exc, ValidationError):
        return f"invalid-{exc.field}"
    if isinstance(exc, NotFound):
        return f"{exc.kind}-not-found"
    return type(exc).__name__
