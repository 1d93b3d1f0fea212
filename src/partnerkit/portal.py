"""The Portal: every use case of partnerkit, each one audited unit of work.

A use case re-reads what it decides on inside its unit of work (never trusting objects the
caller hands in), asks :mod:`partnerkit.roles` for the decision, writes, appends its audit
events and commits. A denied or failed attempt by a known actor is audited too, in a unit of
work of its own, after the attempt's own one was rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import attrs

from partnerkit.audit import AuditEvent, Outcome, current_correlation_id, verify_chain
from partnerkit.consent import (
    Delegation,
    DelegationOffer,
    DelegationStatus,
    check_duration,
    check_roles,
)
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
    new_quote_id,
    normalize_domain,
)
from partnerkit.errors import (
    Conflict,
    Forbidden,
    InvalidLink,
    LinkExhausted,
    LinkRevoked,
    NotFound,
    PartnerKitError,
    ValidationError,
)
from partnerkit.links import (
    DEFAULT_LINK_LIFETIME,
    MAX_LINK_LIFETIME,
    Keyring,
    LinkClaims,
    LinkKind,
    build_url,
    code_from_url,
)
from partnerkit.offers import (
    Catalog,
    OfferLine,
    OfferStatus,
    PurchaseOffer,
    Redemption,
    Subscription,
    SubscriptionStatus,
    TrialInvitation,
)
from partnerkit.ports import MAX_SEARCH_LIMIT, Clock, Store, UnitOfWork
from partnerkit.records import CustomerRelation, LinkRecord, RedemptionRecord
from partnerkit.roles import (
    ALL_ADMIN_ROLES,
    AdminRole,
    Decision,
    PartnerAccess,
    Permission,
    Rule,
    decide,
    decide_assignment,
    effective_roles,
)
from partnerkit.support import (
    Credential,
    PasswordHasher,
    PasswordReset,
    RequestStatus,
    ServiceRequest,
    Severity,
    check_request_status,
    check_severity,
    new_temporary_password,
)

__all__ = ["Portal", "utc_now"]

R = TypeVar("R")
_ACTOR_UNKNOWN = Decision(False, Rule.ACTOR_UNKNOWN)
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
        keyring: Keyring | None = None,
        catalog: Catalog | None = None,
        base_url: str = "https://portal.invalid/join",
        clock: Clock | Callable[[], datetime] | None = None,
        *,
        password_hasher: PasswordHasher | None = None,
        conflict_retries: int = 3,
    ) -> None:
        self.store = store
        #: Without a key ring, a fresh HMAC one: links then die with the process.
        self.keyring = keyring if keyring is not None else Keyring.generate()
        self.catalog = catalog if catalog is not None else Catalog()
        build_url(base_url, "x")  # refuse a base URL links cannot be built on, now
        self.base_url = base_url
        self.clock: Callable[[], datetime] = clock or utc_now
        self.password_hasher = password_hasher or PasswordHasher()
        if type(conflict_retries) is not int or not 0 <= conflict_retries <= 100:
            raise ValidationError("conflict_retries", "must be a whole number from 0 to 100")
        self.conflict_retries = conflict_retries

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
        correlation_id = current_correlation_id()
        for tries_left in range(self.conflict_retries, -1, -1):
            attempt = _Attempt(action, correlation_id)
            try:
                with self.store.unit_of_work(write=write) as uow:
                    return body(uow, attempt)
            except Conflict:
                # A concurrent change won (or the store was busy): the unit of work was
                # rolled back, so running the use case again from a fresh read is safe.
                if not tries_left:
                    raise
            except Forbidden as exc:
                self._record_failure(attempt, "denied", exc.decision.reason)
                raise
            except (ValidationError, NotFound, InvalidLink) as exc:
                if attempt.actor is not None:
                    self._record_failure(attempt, "failed", _reason(exc))
                raise
        raise AssertionError("unreachable")  # pragma: no cover

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
        actor_id = actor if isinstance(actor, str) else getattr(actor, "id", None)
        user = uow.users.get(actor_id) if isinstance(actor_id, str) else None
        if user is None:
            if attempt is not None:
                attempt.detail["unknown_actor"] = str(actor_id)[:64]
            raise Forbidden(_ACTOR_UNKNOWN)
        if attempt is not None:
            attempt.actor = user
        return user

    def _delegation(
        self, uow: UnitOfWork, actor: User, company_id: str, now: datetime
    ) -> Delegation | None:
        """The active delegation through which *actor* may act on *company_id*, if any."""
        if actor.partner_access is None or not isinstance(company_id, str):
            return None
        return self._active_delegation(uow, actor.company_id, company_id, now)

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
        now = self.now()
        delegation = None if own else self._delegation(uow, user, cid, now)
        company = uow.companies.get(cid) if isinstance(cid, str) else None
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
            attempt.target_id = str(user_id)[:64]
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
            attempt.target_id = str(user_id)[:64]
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
        if permission.__class__ is not Permission:
            raise ValidationError("permission", "must be a Permission")
        actor_id = actor if actor.__class__ is str else getattr(actor, "id", None)
        with self.store.unit_of_work(write=False) as uow:
            users = uow.users
            user = users.get(actor_id) if actor_id.__class__ is str else None
            if user is None:
                return _ACTOR_UNKNOWN
            company = uow.companies.get(company_id) if company_id.__class__ is str else None
            if company is None:
                return decide(user, permission, str(company_id))
            now = delegation = None
            if company_id != user.company_id:
                now = self.now()
                delegation = self._delegation(uow, user, company_id, now)
            target = None
            if target_user_id is not None:
                target = users.get(target_user_id) if target_user_id.__class__ is str else None
                if target is None or target.company_id != company_id:
                    target = None
                    if decide(
                        user,
                        permission,
                        company_id,
                        delegation=delegation,
                        now=now,
                        company_is_partner=company.kind is CompanyKind.PARTNER,
                    ):
                        return _TARGET_ELSEWHERE
            return decide(
                user,
                permission,
                company_id,
                target=target,
                delegation=delegation,
                now=now,
                company_is_partner=company.kind is CompanyKind.PARTNER,
            )

    # -- F3, F4, F5: issuing links ------------------------------------------------------

    def _issue(
        self,
        uow: UnitOfWork,
        ctx: _Context,
        attempt: _Attempt,
        kind: LinkKind,
        *,
        target: str,
        delegation_offer_id: str | None,
        expires_in: timedelta | None,
        max_uses: int | None,
        link_id: str | None = None,
    ) -> tuple[str, LinkRecord]:
        lifetime = _check_lifetime(expires_in)
        uses = _check_max_uses(max_uses)
        issued = ctx.now.replace(microsecond=0)
        advisor_id = ctx.company.advisor_id
        assert advisor_id is not None
        code, claims = self.keyring.issue(
            kind,
            link_id=link_id or new_id("lnk"),
            advisor_id=advisor_id,
            target=target,
            includes_delegated_admin=delegation_offer_id is not None,
            issued_at=issued,
            expires_at=issued + lifetime,
        )
        record = LinkRecord(
            id=claims.link_id,
            kind=kind,
            partner_id=ctx.company.id,
            advisor_id=advisor_id,
            target=target,
            includes_delegated_admin=claims.includes_delegated_admin,
            delegation_offer_id=delegation_offer_id,
            created_by=ctx.actor.id,
            created_at=ctx.now,
            expires_at=claims.expires_at,
            max_uses=uses,
        )
        uow.links.add(record)
        attempt.target_id = record.id
        attempt.detail.update(
            kind=kind.value,
            link_target=target,
            includes_delegated_admin=record.includes_delegated_admin,
            expires_at=record.expires_at.isoformat(),
            max_uses=uses if uses is not None else "none",
        )
        return build_url(self.base_url, code), record

    def _delegation_offer(
        self,
        uow: UnitOfWork,
        ctx: _Context,
        roles: object = None,
        duration: object = None,
    ) -> DelegationOffer:
        self._require(ctx, Permission.OFFER_DELEGATED_ADMIN)
        offer = DelegationOffer(
            id=new_id("dof"),
            partner_id=ctx.company.id,
            roles=check_roles(roles),
            duration=check_duration(duration),
            offered_by=ctx.actor.id,
            offered_at=ctx.now,
        )
        uow.delegation_offers.add(offer)
        return offer

    def create_trial_invitation(
        self,
        actor: User | str,
        sku: str,
        include_delegated_admin: bool = False,
        *,
        expires_in: timedelta | None = None,
        max_uses: int | None = None,
    ) -> str:
        """Create a trial invitation link for one service that offers a trial (F3).

        The link is not bound to a customer: it may be mailed to many or published.
        Returns the URL (``base_url`` with the signed code in ``code``).
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> str:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.CREATE_TRIAL_INVITATIONS)
            _check_bool("include_delegated_admin", include_delegated_admin)
            service = self.catalog.get(sku)
            if service.trial is None:
                raise ValidationError("sku", f"{service.sku} offers no trial")
            d_offer = self._delegation_offer(uow, ctx) if include_delegated_admin else None
            link_id = new_id("lnk")
            url, record = self._issue(
                uow,
                ctx,
                attempt,
                LinkKind.TRIAL_INVITATION,
                target=service.sku,
                delegation_offer_id=d_offer.id if d_offer else None,
                expires_in=expires_in,
                max_uses=max_uses,
                link_id=link_id,
            )
            uow.trial_invitations.add(
                TrialInvitation(
                    id=new_id("tri"),
                    partner_id=ctx.company.id,
                    advisor_id=record.advisor_id,
                    sku=service.sku,
                    includes_delegated_admin=record.includes_delegated_admin,
                    delegation_offer_id=record.delegation_offer_id,
                    created_by=ctx.actor.id,
                    created_at=ctx.now,
                    expires_at=record.expires_at,
                    link_id=record.id,
                )
            )
            self._succeed(uow, attempt)
            return url

        return self._run("link.create_trial_invitation", body)

    def create_purchase_offer(
        self,
        actor: User | str,
        lines: Iterable[OfferLine],
        include_delegated_admin: bool = False,
        *,
        expires_in: timedelta | None = None,
        max_uses: int | None = None,
    ) -> tuple[str, PurchaseOffer]:
        """Create a purchase offer (services and licence counts) and its link (F4).

        Every count is checked against the catalogue's bounds. Offers are immutable once
        issued; to change counts, :meth:`supersede_offer`.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> tuple[str, PurchaseOffer]:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.CREATE_PURCHASE_OFFERS)
            url, offer = self._new_offer(
                uow, ctx, attempt, lines, include_delegated_admin, expires_in, max_uses
            )
            self._succeed(uow, attempt)
            return url, offer

        return self._run("link.create_purchase_offer", body)

    def _new_offer(
        self,
        uow: UnitOfWork,
        ctx: _Context,
        attempt: _Attempt,
        lines: Iterable[OfferLine],
        include_delegated_admin: bool,
        expires_in: timedelta | None,
        max_uses: int | None,
    ) -> tuple[str, PurchaseOffer]:
        _check_bool("include_delegated_admin", include_delegated_admin)
        checked = self._check_lines(lines)
        d_offer = self._delegation_offer(uow, ctx) if include_delegated_admin else None
        offer_id = new_id("off")
        url, record = self._issue(
            uow,
            ctx,
            attempt,
            LinkKind.PURCHASE_OFFER,
            target=offer_id,
            delegation_offer_id=d_offer.id if d_offer else None,
            expires_in=expires_in,
            max_uses=max_uses,
        )
        offer = PurchaseOffer(
            id=offer_id,
            quote_id=new_quote_id(),
            partner_id=ctx.company.id,
            advisor_id=record.advisor_id,
            lines=checked,
            includes_delegated_admin=record.includes_delegated_admin,
            delegation_offer_id=record.delegation_offer_id,
            created_by=ctx.actor.id,
            created_at=ctx.now,
            expires_at=record.expires_at,
            link_id=record.id,
        )
        uow.purchase_offers.add(offer)
        attempt.detail.update(
            quote_id=offer.quote_id,
            lines=";".join(f"{line.sku}={line.licenses}" for line in checked),
        )
        return url, offer

    def _check_lines(self, lines: Iterable[OfferLine]) -> tuple[OfferLine, ...]:
        if isinstance(lines, OfferLine):
            lines = (lines,)
        if isinstance(lines, str | bytes | Mapping) or not isinstance(lines, Iterable):
            raise ValidationError("lines", "must be OfferLine objects")
        checked = tuple(lines)
        for line in checked:
            if not isinstance(line, OfferLine):
                raise ValidationError("lines", "must be OfferLine objects")
            self.catalog.get(line.sku).check(line.licenses, f"licenses[{line.sku}]")
        # The PurchaseOffer constructor refuses empty, oversized and repeated lines.
        return checked

    def withdraw_offer(self, actor: User | str, offer_id: str) -> PurchaseOffer:
        """Withdraw an open purchase offer; its link stops working at once."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> PurchaseOffer:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.CREATE_PURCHASE_OFFERS)
            offer = self._own_offer(uow, ctx, attempt, offer_id).withdraw()
            uow.purchase_offers.update(offer)
            self._succeed(uow, attempt)
            return offer

        return self._run("offer.withdraw", body)

    def supersede_offer(
        self,
        actor: User | str,
        offer_id: str,
        lines: Iterable[OfferLine],
        include_delegated_admin: bool | None = None,
        *,
        expires_in: timedelta | None = None,
        max_uses: int | None = None,
    ) -> tuple[str, PurchaseOffer]:
        """Issue a new offer that replaces an open one (whose link then stops working)."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> tuple[str, PurchaseOffer]:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.CREATE_PURCHASE_OFFERS)
            old = self._own_offer(uow, ctx, attempt, offer_id)
            include = (
                old.includes_delegated_admin
                if include_delegated_admin is None
                else include_delegated_admin
            )
            attempt.detail["supersedes"] = old.id
            url, offer = self._new_offer(uow, ctx, attempt, lines, include, expires_in, max_uses)
            uow.purchase_offers.update(old.supersede(offer.id))
            self._succeed(uow, attempt)
            return url, offer

        return self._run("offer.supersede", body)

    def _own_offer(
        self, uow: UnitOfWork, ctx: _Context, attempt: _Attempt, offer_id: str
    ) -> PurchaseOffer:
        attempt.target_id = str(offer_id)[:64]
        offer = uow.purchase_offers.get(offer_id) if isinstance(offer_id, str) else None
        if offer is None or offer.partner_id != ctx.company.id:
            raise NotFound("purchase offer", str(offer_id)[:64])
        return offer

    def offer_delegated_admin(
        self,
        actor: User | str,
        roles: Iterable[AdminRole] | AdminRole | None = None,
        duration: timedelta | None = None,
        *,
        expires_in: timedelta | None = None,
        max_uses: int | None = None,
    ) -> str:
        """Offer delegated administration on its own, through a link (F5).

        Args:
            roles: the admin roles asked for (default: all five, as in 2012).
            duration: how long the delegation lasts after consent (1 to 730 days;
                default: no end date). Roles and duration are fixed from now on.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> str:
            ctx = self._context(uow, attempt, actor, None)
            d_offer = self._delegation_offer(uow, ctx, roles, duration)
            url, _ = self._issue(
                uow,
                ctx,
                attempt,
                LinkKind.DELEGATED_ADMIN,
                target=d_offer.id,
                delegation_offer_id=d_offer.id,
                expires_in=expires_in,
                max_uses=max_uses,
            )
            attempt.detail.update(_terms_detail(d_offer))
            self._succeed(uow, attempt)
            return url

        return self._run("link.offer_delegated_admin", body)

    # -- reading links ----------------------------------------------------------------

    def _claims(self, url: str, now: datetime) -> LinkClaims:
        claims: LinkClaims = self.keyring.verify(code_from_url(url), now=now)
        return claims

    def _live_record(self, uow: UnitOfWork, claims: LinkClaims) -> LinkRecord:
        record = uow.links.get(claims.link_id)
        if (
            record is None
            or record.kind is not claims.kind
            or record.advisor_id != claims.advisor_id
            or record.target != claims.target
            or record.includes_delegated_admin != claims.includes_delegated_admin
        ):
            # Signed by a key of ours but unknown to this store: not a link we issued here.
            raise InvalidLink()
        if record.revoked_at is not None:
            raise LinkRevoked()
        if record.kind is LinkKind.PURCHASE_OFFER:
            offer = uow.purchase_offers.get(record.target)
            if offer is None or offer.status is not OfferStatus.OPEN:
                raise LinkRevoked("the offer was withdrawn or superseded")
        return record

    def inspect_link(self, url: str) -> LinkClaims:
        """Verify a link and return its claims.

        Raises:
            InvalidLink: bad signature or format (one fixed message), or not issued here.
            LinkExpired: past its expiry. LinkRevoked: revoked, or its offer withdrawn.
            LinkExhausted: its ``max_uses`` are spent.
        """
        claims = self._claims(url, self.now())
        with self.store.unit_of_work(write=False) as uow:
            record = self._live_record(uow, claims)
        if record.max_uses is not None and record.uses >= record.max_uses:
            raise LinkExhausted()
        return claims

    def revoke_link(self, actor: User | str, link_id: str) -> None:
        """Revoke a link: it stops working at once (the issuing partner's global admins and
        users with partner access). Revoking a revoked link changes nothing."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> None:
            ctx = self._context(uow, attempt, actor, None)
            if not ctx.company.is_partner or (
                ctx.actor.admin_role is not AdminRole.GLOBAL_ADMIN
                and ctx.actor.partner_access is None
            ):
                raise Forbidden(Decision(False, Rule.REVOKE_LINK_NEEDS_GLOBAL_ADMIN_OR_ACCESS))
            attempt.target_id = str(link_id)[:64]
            record = uow.links.get(link_id) if isinstance(link_id, str) else None
            if record is None or record.partner_id != ctx.company.id:
                raise NotFound("link", str(link_id)[:64])
            if record.revoked_at is not None:
                return
            uow.links.update(_bump(record, revoked_at=ctx.now, revoked_by=ctx.actor.id))
            attempt.detail["kind"] = record.kind.value
            self._succeed(uow, attempt)

        self._run("link.revoke", body)

    # -- redeeming links ---------------------------------------------------------------

    def redeem(
        self,
        url: str,
        actor: User | str,
        licenses: Mapping[str, int] | None = None,
        accept_delegated_admin: bool | None = None,
    ) -> Redemption:
        """Redeem a link for the actor's customer company.

        Trial links give ``TRIAL`` subscriptions (the service's trial terms); offer links
        ``ACTIVE`` ones with the offered counts, or the customer's adjustments in
        *licenses* (``{sku: count}``, within the service's bounds), converting a running
        trial of the same service. A link that offers delegated administration records it
        ``PENDING`` (*accept_delegated_admin* ``None``), consents now (``True``; customer
        global admins only) or declines it (``False``); the purchase stands either way.
        Redeeming the same link again for the same customer returns the first result.
        """
        now = self.now()

        def body(uow: UnitOfWork, attempt: _Attempt) -> Redemption:
            user = self._actor(uow, actor, attempt)
            company = uow.companies.get(user.company_id)
            assert company is not None
            attempt.company_id = company.id
            attempt.role = _role_label(user, own=True)
            claims = self._claims(url, now)
            return self._redeem(
                uow, attempt, claims, user, company, now, licenses, accept_delegated_admin
            )

        return self._run("link.redeem", body)

    def sign_up(
        self,
        url: str,
        *,
        name: str,
        domain: str,
        admin_email: str,
        admin_name: str | None = None,
        licenses: Mapping[str, int] | None = None,
        accept_delegated_admin: bool | None = False,
    ) -> tuple[Company, User, Redemption]:
        """A new customer comes in through a link: the company, its first global admin and
        the redemption are one unit of work (all or nothing)."""
        now = self.now()
        claims = self._claims(url, now)

        def body(uow: UnitOfWork, attempt: _Attempt) -> tuple[Company, User, Redemption]:
            company, admin = self._new_customer(uow, name, domain, admin_email, admin_name, None)
            attempt.company_id = company.id
            attempt.detail["signed_up"] = company.id
            result = self._redeem(
                uow,
                attempt,
                claims,
                admin,
                company,
                now,
                licenses,
                accept_delegated_admin,
                actor_for_audit=False,
            )
            return company, admin, result

        return self._run("link.sign_up", body)

    def _redeem(
        self,
        uow: UnitOfWork,
        attempt: _Attempt,
        claims: LinkClaims,
        user: User,
        company: Company,
        now: datetime,
        licenses: Mapping[str, int] | None,
        accept: bool | None,
        *,
        actor_for_audit: bool = True,
    ) -> Redemption:
        if actor_for_audit:
            attempt.actor = user
        attempt.target_id = claims.link_id
        attempt.detail["kind"] = claims.kind.value
        if accept is not None:
            _check_bool("accept_delegated_admin", accept)
        if company.is_partner:
            raise Forbidden(Decision(False, Rule.PARTNER_USERS_NEVER_REDEEM))
        record = self._live_record(uow, claims)
        kind = record.kind
        if kind is LinkKind.TRIAL_INVITATION and user.admin_role is None:
            raise Forbidden(Decision(False, Rule.TRIAL_NEEDS_ADMIN_ROLE))
        if kind is LinkKind.PURCHASE_OFFER:
            self._require_own(user, company, Permission.PURCHASE)
        offers_delegation = record.delegation_offer_id is not None
        if accept is True:
            if not offers_delegation:
                raise ValidationError(
                    "accept_delegated_admin", "this link offers no delegated administration"
                )
            self._require_own(user, company, Permission.MANAGE_PARTNER_RELATIONSHIPS)

        first = uow.redemptions.get(f"{record.id}:{company.id}")
        if first is not None:
            return self._replay(uow, first, now)
        if record.max_uses is not None and record.uses >= record.max_uses:
            raise LinkExhausted()
        if licenses is not None and kind is not LinkKind.PURCHASE_OFFER:
            raise ValidationError("licenses", "only purchase offers take licence counts")

        if kind is LinkKind.TRIAL_INVITATION:
            subscriptions: tuple[Subscription, ...] = (
                self._start_trial(uow, record, company, now),
            )
        elif kind is LinkKind.PURCHASE_OFFER:
            subscriptions = self._buy(uow, record, company, licenses)
        else:
            subscriptions = ()

        delegation = None
        if offers_delegation:
            delegation = self._offered_delegation(uow, attempt, record, user, company, now, accept)
        uow.links.update(_bump(record, uses=record.uses + 1))
        uow.redemptions.add(
            RedemptionRecord(
                id=f"{record.id}:{company.id}",
                link_id=record.id,
                customer_id=company.id,
                subscription_ids=tuple(s.id for s in subscriptions),
                delegation_id=delegation.id if delegation is not None else None,
                redeemed_by=user.id,
                redeemed_at=now,
            )
        )
        if subscriptions:
            self._relate(uow, record.partner_id, company, advises=True)
        attempt.detail.update(
            partner_id=record.partner_id,
            subscriptions=";".join(f"{s.sku}={s.licenses}:{s.status.value}" for s in subscriptions),
            delegation=delegation.status.value if delegation is not None else "none",
        )
        self._succeed(uow, attempt)
        return Redemption(subscriptions=subscriptions, delegation=delegation)

    @staticmethod
    def _require_own(user: User, company: Company, permission: Permission) -> None:
        decision = decide(user, permission, company.id, company_is_partner=company.is_partner)
        if not decision:
            raise Forbidden(decision, permission)

    def _replay(self, uow: UnitOfWork, first: RedemptionRecord, now: datetime) -> Redemption:
        subs = tuple(
            s.as_of(now)
            for s in (uow.subscriptions.get(i) for i in first.subscription_ids)
            if s is not None
        )
        delegation = uow.delegations.get(first.delegation_id) if first.delegation_id else None
        return Redemption(
            subscriptions=subs,
            delegation=delegation.as_of(now) if delegation is not None else None,
        )

    def _start_trial(
        self, uow: UnitOfWork, record: LinkRecord, company: Company, now: datetime
    ) -> Subscription:
        service = self.catalog.get(record.target)
        existing = uow.subscriptions.find(customer_id=company.id, sku=service.sku)
        if existing:
            if existing[0].status is SubscriptionStatus.TRIAL:
                raise ValidationError("sku", "one trial per customer per service")
            raise ValidationError("sku", f"the customer already subscribes to {service.sku}")
        trial = Subscription.trial(
            ident=new_id("sub"),
            customer_id=company.id,
            service=service,
            partner_id=record.partner_id,
            advisor_id=record.advisor_id,
            link_id=record.id,
            now=now,
        )
        uow.subscriptions.add(trial)
        return trial

    def _buy(
        self,
        uow: UnitOfWork,
        record: LinkRecord,
        company: Company,
        licenses: Mapping[str, int] | None,
    ) -> tuple[Subscription, ...]:
        offer = uow.purchase_offers.get(record.target)
        assert offer is not None  # _live_record checked it is open
        counts = self._adjusted_counts(offer, licenses)
        bought = []
        for line in offer.lines:
            count = counts[line.sku]
            existing = uow.subscriptions.find(customer_id=company.id, sku=line.sku)
            if existing:
                current = existing[0]
                if current.status is not SubscriptionStatus.TRIAL:
                    raise ValidationError(
                        "lines",
                        f"the customer already subscribes to {line.sku}; change its licences",
                    )
                sub = current.convert(
                    licenses=count,
                    partner_id=record.partner_id,
                    advisor_id=record.advisor_id,
                    link_id=record.id,
                )
                uow.subscriptions.update(sub)
            else:
                sub = Subscription(
                    id=new_id("sub"),
                    customer_id=company.id,
                    sku=line.sku,
                    licenses=count,
                    status=SubscriptionStatus.ACTIVE,
                    partner_id=record.partner_id,
                    advisor_id=record.advisor_id,
                    created_at=self.now(),
                    source_link_id=record.id,
                )
                uow.subscriptions.add(sub)
            bought.append(sub)
        return tuple(bought)

    def _adjusted_counts(
        self, offer: PurchaseOffer, licenses: Mapping[str, int] | None
    ) -> dict[str, int]:
        counts = {line.sku: line.licenses for line in offer.lines}
        if licenses is None:
            return counts
        if not isinstance(licenses, Mapping):
            raise ValidationError("licenses", "must be a mapping of sku to licence count")
        for sku, count in licenses.items():
            if sku not in counts:
                raise ValidationError("licenses", f"the offer has no line for {str(sku)[:64]}")
            counts[sku] = self.catalog.get(sku).check(count, f"licenses[{sku}]")
        return counts

    def _offered_delegation(
        self,
        uow: UnitOfWork,
        attempt: _Attempt,
        record: LinkRecord,
        user: User,
        company: Company,
        now: datetime,
        accept: bool | None,
    ) -> Delegation:
        assert record.delegation_offer_id is not None
        terms = uow.delegation_offers.get(record.delegation_offer_id)
        if terms is None:
            raise LinkRevoked("the delegation offer is gone")
        if accept is True:
            active = self._active_delegation(uow, record.partner_id, company.id, now)
            if active is not None:
                return active
        delegation = Delegation.pending(
            ident=new_id("dlg"), offer=terms, customer_id=company.id, now=now
        )
        uow.delegations.add(delegation)
        step = attrs.evolve(attempt, action="delegation.offer", detail=_terms_detail(terms))
        step.target_id = delegation.id
        step.delegation_id = delegation.id
        self._append(uow, step, "success", None)
        if accept is None:
            return delegation
        # Consent or refusal in the same unit of work as the purchase.
        decided = delegation.accept(user.id, now) if accept else delegation.decline(user.id, now)
        uow.delegations.update(decided)
        step = attrs.evolve(
            step, action="delegation.accept" if accept else "delegation.decline", detail={}
        )
        self._append(uow, step, "success", None)
        if accept:
            self._relate(uow, record.partner_id, company, administers=True)
        return decided

    def _relate(
        self,
        uow: UnitOfWork,
        partner_id: str,
        customer: Company,
        *,
        advises: bool = False,
        administers: bool = False,
    ) -> None:
        """Record that *partner_id* advises or administers *customer* (for search)."""
        assert customer.domain is not None
        key = CustomerRelation.key(partner_id, customer.id)
        relation = uow.customer_relations.get(key)
        if relation is None:
            uow.customer_relations.add(
                CustomerRelation(
                    id=key,
                    partner_id=partner_id,
                    customer_id=customer.id,
                    name_key=customer.name.casefold(),
                    domain=customer.domain,
                    advises=advises,
                    administers=administers,
                )
            )
        elif (advises and not relation.advises) or (administers and not relation.administers):
            uow.customer_relations.update(
                _bump(
                    relation,
                    advises=relation.advises or advises,
                    administers=relation.administers or administers,
                )
            )

    # -- F5: consent ---------------------------------------------------------------------

    def _active_delegation(
        self, uow: UnitOfWork, partner_id: str, customer_id: str, now: datetime
    ) -> Delegation | None:
        for delegation in uow.delegations.find(
            partner_id=partner_id, customer_id=customer_id, status=DelegationStatus.ACTIVE
        ):
            if delegation.is_active(now):
                return delegation
        return None

    def _customer_delegation(
        self, uow: UnitOfWork, attempt: _Attempt, actor: User | str, delegation_id: str
    ) -> tuple[_Context, Delegation]:
        ctx = self._context(uow, attempt, actor, None)
        self._require(ctx, Permission.MANAGE_PARTNER_RELATIONSHIPS)
        return ctx, self._delegation_of(uow, attempt, delegation_id, customer_id=ctx.company.id)

    @staticmethod
    def _delegation_of(
        uow: UnitOfWork,
        attempt: _Attempt,
        delegation_id: str,
        *,
        customer_id: str | None = None,
        partner_id: str | None = None,
    ) -> Delegation:
        attempt.target_id = str(delegation_id)[:64]
        found = uow.delegations.get(delegation_id) if isinstance(delegation_id, str) else None
        if (
            found is None
            or (customer_id is not None and found.customer_id != customer_id)
            or (partner_id is not None and found.partner_id != partner_id)
        ):
            raise NotFound("delegation", str(delegation_id)[:64])
        attempt.delegation_id = found.id
        return found

    def accept_delegation(self, actor: User | str, delegation_id: str) -> Delegation:
        """Consent to a pending delegation (a global admin of the customer)."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> Delegation:
            ctx, pending = self._customer_delegation(uow, attempt, actor, delegation_id)
            active = self._active_delegation(uow, pending.partner_id, pending.customer_id, ctx.now)
            if active is not None and active.id != pending.id:
                raise ValidationError(
                    "delegation", "an active delegation with this partner exists already"
                )
            accepted = pending.accept(ctx.actor.id, ctx.now)
            uow.delegations.update(accepted)
            self._relate(uow, accepted.partner_id, ctx.company, administers=True)
            attempt.detail.update(_roles_of(accepted))
            self._succeed(uow, attempt)
            return accepted

        return self._run("delegation.accept", body)

    def decline_delegation(self, actor: User | str, delegation_id: str) -> Delegation:
        """Refuse a pending delegation (a global admin of the customer)."""
        return self._transition(
            "delegation.decline", actor, delegation_id, lambda d, by, now: d.decline(by, now)
        )

    def revoke_delegation(self, actor: User | str, delegation_id: str) -> Delegation:
        """Withdraw consent (a global admin of the customer): it grants nothing from now."""
        return self._transition(
            "delegation.revoke", actor, delegation_id, lambda d, by, now: d.revoke(by, now)
        )

    def _transition(
        self,
        action: str,
        actor: User | str,
        delegation_id: str,
        move: Callable[[Delegation, str, datetime], Delegation],
    ) -> Delegation:
        def body(uow: UnitOfWork, attempt: _Attempt) -> Delegation:
            ctx, current = self._customer_delegation(uow, attempt, actor, delegation_id)
            changed = move(current, ctx.actor.id, ctx.now)
            uow.delegations.update(changed)
            self._succeed(uow, attempt)
            return changed

        return self._run(action, body)

    def end_delegation(self, actor: User | str, delegation_id: str) -> Delegation:
        """End a delegation from the partner's side (its global admin or a FULL user)."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> Delegation:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.MANAGE_PARTNER_RELATIONSHIPS)
            current = self._delegation_of(uow, attempt, delegation_id, partner_id=ctx.company.id)
            attempt.company_id = current.customer_id
            ended = current.end(ctx.actor.id, ctx.now)
            uow.delegations.update(ended)
            self._succeed(uow, attempt)
            return ended

        return self._run("delegation.end", body)

    def list_delegations(
        self, actor: User | str, company_id: str | None = None
    ) -> list[Delegation]:
        """Return a company's delegations with their status as of now.

        A customer's global admins see their company's; a partner's global admins and users
        with partner access see the ones their partner offered.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[Delegation]:
            ctx = self._context(uow, attempt, actor, company_id)
            if not ctx.own:
                raise Forbidden(Decision(False, Rule.DELEGATES_NEVER_MANAGE_RELATIONSHIPS))
            if ctx.company.is_partner:
                if not self._decide(ctx, Permission.VIEW_PARTNER_OVERVIEW):
                    self._require(ctx, Permission.MANAGE_PARTNER_RELATIONSHIPS)
                found = uow.delegations.find(partner_id=ctx.company.id)
            else:
                self._require(ctx, Permission.MANAGE_PARTNER_RELATIONSHIPS)
                found = uow.delegations.find(customer_id=ctx.company.id)
            return [d.as_of(ctx.now) for d in found]

        return self._run("delegation.list", body, write=False)

    # -- F6: finding and supporting customers --------------------------------------------

    def find_customers(
        self,
        actor: User | str,
        prefix: str = "",
        limit: int = 50,
        after: str | None = None,
    ) -> list[Company]:
        """Search the customers the actor's partner advises or administers.

        Prefix search on company name and domain, case-insensitive, ordered by name;
        pass the last company id seen as *after* for the next page.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[Company]:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.SEARCH_CUSTOMERS)
            key = _check_prefix(prefix)
            size = _check_limit(limit)
            cursor = None
            if after is not None:
                if not isinstance(after, str):
                    raise ValidationError("after", "must be a company id or None")
                rel = uow.customer_relations.get(CustomerRelation.key(ctx.company.id, after))
                if rel is None:
                    raise ValidationError("after", "is not a customer of this partner")
                cursor = (rel.name_key, rel.id)
            found = []
            for relation in uow.search_relations(ctx.company.id, key, size, cursor):
                company = uow.companies.get(relation.customer_id)
                if company is not None:
                    found.append(company)
            return found

        return self._run("customer.search", body, write=False)

    def reset_password(self, actor: User | str, customer_id: str, user_id: str) -> PasswordReset:
        """Reset a user's password, in the actor's own company or through a delegation.

        Returns a :class:`PasswordReset` whose ``temporary_password`` is shown once: the
        store keeps only its scrypt hash, and the user must change it at next sign-in.
        """
        temporary = new_temporary_password()
        # Hashing is slow on purpose: do it before the unit of work takes the write lock,
        # and only for an actor the policy allows now, so that a denied actor cannot make
        # the portal spend a password hash on each attempt.
        hashed = None
        if self.decide(actor, Permission.RESET_PASSWORD, customer_id, user_id):
            hashed = self.password_hasher.hash(temporary)

        def body(uow: UnitOfWork, attempt: _Attempt) -> PasswordReset:
            attempt.target_id = str(user_id)[:64]
            ctx = self._context(uow, attempt, actor, customer_id)
            self._require(ctx, Permission.RESET_PASSWORD)
            target = self._target(uow, ctx, attempt, user_id)
            self._require(ctx, Permission.RESET_PASSWORD, target)
            credential = uow.credentials.get(target.id)
            fresh = Credential(
                id=target.id,
                company_id=target.company_id,
                password_hash=hashed or self.password_hasher.hash(temporary),
                set_at=ctx.now,
                set_by=ctx.actor.id,
            )
            if credential is None:
                uow.credentials.add(fresh)
            else:
                uow.credentials.update(attrs.evolve(fresh, version=credential.version + 1))
            uow.users.update(_bump(target, must_change_password=True))
            reset = PasswordReset(
                id=new_id("rst"),
                company_id=target.company_id,
                user_id=target.id,
                reset_by=ctx.actor.id,
                at=ctx.now,
                temporary_password=temporary,
            )
            self._succeed(uow, attempt)
            return reset

        return self._run("user.reset_password", body)

    def verify_password(self, user_id: str, password: str) -> bool:
        """Check a password against the hash a reset stored (for a portal's sign-in)."""
        with self.store.unit_of_work(write=False) as uow:
            credential = uow.credentials.get(user_id) if isinstance(user_id, str) else None
        if credential is None or not isinstance(password, str):
            return False
        return PasswordHasher.verify(password, credential.password_hash)

    def create_service_request(
        self,
        actor: User | str,
        customer_id: str,
        *,
        title: str,
        severity: Severity | str = Severity.MODERATE,
        description: str = "",
    ) -> ServiceRequest:
        """Open a service request for a customer (own, or on its behalf by delegation)."""
        level = check_severity(severity)

        def body(uow: UnitOfWork, attempt: _Attempt) -> ServiceRequest:
            ctx = self._context(uow, attempt, actor, customer_id)
            self._require(ctx, Permission.MANAGE_SERVICE_REQUESTS)
            request = ServiceRequest(
                id=new_id("srq"),
                customer_id=ctx.company.id,
                title=title,
                description=description,
                severity=level,
                status=RequestStatus.OPEN,
                created_by=ctx.actor.id,
                created_by_company_id=ctx.actor.company_id,
                delegation_id=attempt.delegation_id,
                created_at=ctx.now,
                updated_at=ctx.now,
            )
            uow.service_requests.add(request)
            attempt.target_id = request.id
            attempt.detail["severity"] = level.value
            self._succeed(uow, attempt)
            return request

        return self._run("service_request.create", body)

    def list_service_requests(
        self, actor: User | str, customer_id: str | None = None
    ) -> list[ServiceRequest]:
        """Return a customer's service requests (needs ``MANAGE_SERVICE_REQUESTS`` there)."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[ServiceRequest]:
            ctx = self._context(uow, attempt, actor, customer_id)
            self._require(ctx, Permission.MANAGE_SERVICE_REQUESTS)
            return uow.service_requests.find(customer_id=ctx.company.id)

        return self._run("service_request.list", body, write=False)

    def update_service_request(
        self,
        actor: User | str,
        request_id: str,
        *,
        status: RequestStatus | str | None = None,
        severity: Severity | str | None = None,
    ) -> ServiceRequest:
        """Change a service request's status and/or severity."""
        new_status = None if status is None else check_request_status(status)
        new_severity = None if severity is None else check_severity(severity)

        def body(uow: UnitOfWork, attempt: _Attempt) -> ServiceRequest:
            user = self._actor(uow, actor, attempt)
            request = uow.service_requests.get(request_id) if isinstance(request_id, str) else None
            customer = request.customer_id if request is not None else user.company_id
            ctx = self._context(uow, attempt, user, customer)
            self._require(ctx, Permission.MANAGE_SERVICE_REQUESTS)
            attempt.target_id = str(request_id)[:64]
            if request is None:
                raise NotFound("service request", str(request_id)[:64])
            changed = request.change(ctx.now, status=new_status, severity=new_severity)
            uow.service_requests.update(changed)
            attempt.detail.update(status=changed.status.value, severity=changed.severity.value)
            self._succeed(uow, attempt)
            return changed

        return self._run("service_request.update", body)

    # -- F4: subscriptions ---------------------------------------------------------------

    def change_licenses(
        self, actor: User | str, subscription_id: str, licenses: int
    ) -> Subscription:
        """Change a subscription's licence count within its service's bounds.

        For the customer's billing and global admins, or a partner user through a
        delegation that grants ``MANAGE_SUBSCRIPTIONS``.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> Subscription:
            user = self._actor(uow, actor, attempt)
            sub = (
                uow.subscriptions.get(subscription_id) if isinstance(subscription_id, str) else None
            )
            ctx = self._context(uow, attempt, user, sub.customer_id if sub else user.company_id)
            self._require(ctx, Permission.MANAGE_SUBSCRIPTIONS)
            attempt.target_id = str(subscription_id)[:64]
            if sub is None:
                raise NotFound("subscription", str(subscription_id)[:64])
            count = self.catalog.get(sub.sku).check(licenses)
            changed = sub.as_of(ctx.now).with_licenses(count)
            changed = attrs.evolve(changed, status=sub.status)
            uow.subscriptions.update(changed)
            attempt.detail.update(sku=sub.sku, licenses=count, was=sub.licenses)
            self._succeed(uow, attempt)
            return changed

        return self._run("subscription.change_licenses", body)

    def list_subscriptions(
        self, actor: User | str, company_id: str | None = None
    ) -> list[Subscription]:
        """Return a customer's subscriptions, or those a partner advises, as of now."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[Subscription]:
            ctx = self._context(uow, attempt, actor, company_id)
            if ctx.company.is_partner:
                self._require(ctx, Permission.VIEW_PARTNER_OVERVIEW)
                found = uow.subscriptions.find(partner_id=ctx.company.id)
            else:
                self._require(ctx, Permission.MANAGE_SUBSCRIPTIONS)
                found = uow.subscriptions.find(customer_id=ctx.company.id)
            return [s.as_of(ctx.now) for s in found]

        return self._run("subscription.list", body, write=False)

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


V = TypeVar(
    "V", Company, User, LinkRecord, CustomerRelation, Subscription, Delegation, PurchaseOffer
)


def _bump(obj: V, **changes: Any) -> V:
    """Return a changed copy of a versioned object, one version newer."""
    return attrs.evolve(obj, version=obj.version + 1, **changes)


def _role_label(user: User, *, own: bool) -> str | None:
    """The role an actor acts with, for the audit, when no delegation is involved."""
    if own:
        return user.admin_role.value if user.admin_role is not None else None
    access = user.partner_access
    return f"partner-{access.value}" if access is not None else None


def _roles_detail(
    admin_role: AdminRole | None, partner_access: PartnerAccess | None
) -> Mapping[str, str]:
    return {
        "admin_role": admin_role.value if admin_role is not None else "none",
        "partner_access": partner_access.value if partner_access is not None else "none",
    }


def _reason(exc: PartnerKitError) -> str:
    if isinstance(exc, InvalidLink):
        return type(exc).__name__
    if isinstance(exc, ValidationError):
        return f"invalid-{exc.field}"
    if isinstance(exc, NotFound):
        return f"{exc.kind}-not-found"
    return type(exc).__name__


def _check_bool(field: str, value: object) -> None:
    if type(value) is not bool:
        raise ValidationError(field, "must be True or False")


def _check_lifetime(expires_in: object) -> timedelta:
    if expires_in is None:
        return DEFAULT_LINK_LIFETIME
    if not isinstance(expires_in, timedelta):
        raise ValidationError("expires_in", "must be a timedelta or None")
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
    if not isinstance(prefix, str) or len(prefix) > 100:
        raise ValidationError("prefix", "must be text of at most 100 characters")
    try:
        prefix.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("prefix", "must be valid text") from None
    return prefix.strip().casefold()


def _check_limit(limit: object) -> int:
    if type(limit) is not int or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ValidationError("limit", f"must be a whole number from 1 to {MAX_SEARCH_LIMIT}")
    return limit


def _terms_detail(offer: DelegationOffer) -> dict[str, object]:
    return {
        "roles": ",".join(sorted(r.value for r in offer.roles)),
        "duration_days": offer.duration.days if offer.duration is not None else "none",
    }


def _roles_of(delegation: Delegation) -> dict[str, object]:
    return {
        "roles": ",".join(sorted(r.value for r in delegation.roles)),
        "ends_at": delegation.ends_at.isoformat() if delegation.ends_at else "none",
    }
