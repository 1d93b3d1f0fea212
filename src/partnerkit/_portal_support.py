"""Use cases of supporting customers: search, password resets, service requests (F6)."""

from __future__ import annotations

import attrs

from partnerkit._portal_core import (
    PortalCore,
    _Attempt,
    _bump,
    _check_limit,
    _check_prefix,
)
from partnerkit.directory import (
    Company,
    User,
    new_id,
)
from partnerkit.errors import (
    NotFound,
    PartnerKitError,
    ValidationError,
    _shown,
)
from partnerkit.ports import UnitOfWork
from partnerkit.records import CustomerRelation
from partnerkit.roles import (
    Permission,
)
from partnerkit.support import (
    Credential,
    PasswordHasher,
    PasswordReset,
    RequestStatus,
    ServiceRequest,
    Severity,
    check_request_status,
    check_request_text,
    check_severity,
    new_temporary_password,
)

__all__ = ["SupportCases"]


class SupportCases(PortalCore):
    """Use cases of supporting customers: search, password resets, service requests (F6)."""

    # -- F6: finding and supporting customers --------------------------------------------

    def find_customers(
        self,
        actor: User | str,
        prefix: str = "",
        limit: int = 50,
        after: str | None = None,
    ) -> list[Company]:
        """Search the customers the actor's partner advises or administers.

        Prefix search on company name and domain, case-insensitive, ordered by the text
        that matched (the name when it starts with *prefix*, else the domain), then by id;
        pass the last company id seen as *after* for the next page. A customer is found
        while the partner is advisor of one of its subscriptions or holds an active
        delegation of it, not past its end date (a pending offer finds nothing; revoked,
        ended, or past its end date: no longer found).
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
                cursor = (rel.search_key(key), rel.id)
            # A store that returns the page's companies itself does it in one step (one
            # statement on SQLite); for any other, the relations and then their companies.
            search_customers = getattr(uow, "search_customers", None)
            if search_customers is not None:
                found: list[Company] = search_customers(
                    ctx.company.id, key, size, cursor, now=ctx.now
                )
                return found
            relations = uow.search_relations(ctx.company.id, key, size, cursor, now=ctx.now)
            companies = uow.companies.get_many([r.customer_id for r in relations])
            return [companies[r.customer_id] for r in relations if r.customer_id in companies]

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
        try:
            allowed = bool(self.decide(actor, Permission.RESET_PASSWORD, customer_id, user_id))
        except PartnerKitError:
            allowed = False  # an id a store refuses: the use case meets it again, and audits it
        if allowed:
            hashed = self.password_hasher.hash(temporary)

        def body(uow: UnitOfWork, attempt: _Attempt) -> PasswordReset:
            attempt.target_id = _shown(user_id)
            ctx = self._context(uow, attempt, actor, customer_id, "customer_id", required=True)
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
        """Check a password against the hash a reset stored (for a portal's sign-in).

        ``False`` unless the user still exists: a removed user's password verifies no more.
        """
        if not isinstance(user_id, str) or not isinstance(password, str):
            return False
        with self.store.unit_of_work(write=False) as uow:
            user = uow.users.get(user_id)
            credential = uow.credentials.get(user_id) if user is not None else None
        if user is None or credential is None or credential.company_id != user.company_id:
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

        def body(uow: UnitOfWork, attempt: _Attempt) -> ServiceRequest:
            ctx = self._context(uow, attempt, actor, customer_id, "customer_id", required=True)
            self._require(ctx, Permission.MANAGE_SERVICE_REQUESTS)
            # Checked once the actor is known to have the right: the failure is audited,
            # and someone without it learns nothing but that.
            level = check_severity(severity)
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
            check_request_text(request.title, request.description)
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
            ctx = self._context(uow, attempt, actor, customer_id, "customer_id")
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

        def body(uow: UnitOfWork, attempt: _Attempt) -> ServiceRequest:
            request = uow.service_requests.get(request_id) if isinstance(request_id, str) else None
            ctx = self._locate(
                uow,
                attempt,
                actor,
                request.customer_id if request is not None else None,
                Permission.MANAGE_SERVICE_REQUESTS,
                NotFound("service request", _shown(request_id)),
            )
            assert request is not None
            # Checked once the actor is known to have the right, as a failure it audits.
            new_status = None if status is None else check_request_status(status)
            new_severity = None if severity is None else check_severity(severity)
            changed = request.change(ctx.now, status=new_status, severity=new_severity)
            uow.service_requests.update(changed)
            attempt.detail.update(status=changed.status.value, severity=changed.severity.value)
            self._succeed(uow, attempt)
            return changed

        return self._run("service_request.update", body)
