"""Use cases of delegated administration: consent and its lifecycle (F5)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from partnerkit._portal_core import (
    PortalCore,
    _Attempt,
    _Context,
    _customer_filter,
    _listed,
    _listed_few,
    _roles_of,
)
from partnerkit.consent import (
    Delegation,
)
from partnerkit.directory import (
    User,
)
from partnerkit.errors import (
    Forbidden,
    InvalidState,
    NotFound,
    ValidationError,
    _shown,
)
from partnerkit.ports import UnitOfWork
from partnerkit.roles import (
    Decision,
    Permission,
    Rule,
)

__all__ = ["ConsentCases"]


class ConsentCases(PortalCore):
    """Use cases of delegated administration: consent and its lifecycle (F5)."""

    # -- F5: consent ---------------------------------------------------------------------

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
        attempt.target_id = _shown(delegation_id)
        found = uow.delegations.get(delegation_id) if isinstance(delegation_id, str) else None
        if (
            found is None
            or (customer_id is not None and found.customer_id != customer_id)
            or (partner_id is not None and found.partner_id != partner_id)
        ):
            raise NotFound("delegation", _shown(delegation_id))
        attempt.delegation_id = found.id
        return found

    def accept_delegation(self, actor: User | str, delegation_id: str) -> Delegation:
        """Consent to a pending delegation (a global admin of the customer)."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> Delegation:
            ctx, pending = self._customer_delegation(uow, attempt, actor, delegation_id)
            active = self._active_delegation(uow, pending.partner_id, pending.customer_id, ctx.now)
            if active is not None and active.id != pending.id:
                raise InvalidState(
                    "delegation", "an active delegation with this partner exists already"
                )
            accepted = pending.accept(ctx.actor.id, ctx.now)
            uow.delegations.update(accepted)
            self._relate(uow, accepted.partner_id, ctx.company, delegation=accepted)
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
            self._unrelate_delegation(uow, changed)
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
            self._unrelate_delegation(uow, ended)
            self._succeed(uow, attempt)
            return ended

        return self._run("delegation.end", body)

    def list_delegations(
        self,
        actor: User | str,
        company_id: str | None = None,
        *,
        customer_id: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Delegation]:
        """Return a company's delegations with their status as of now.

        A customer's global admins see their company's; a partner's global admins and users
        with partner access see the ones their partner offered, and with *customer_id*
        only those offered to that customer (none for a company it offered none). A
        partner's user never lists a customer's delegations acting in the customer
        (``company_id``): delegates never manage its partner relationships.

        With *limit* and *after*, one page of it in id order, read from the store's
        index: as :meth:`list_users` pages.

        Raises:
            ValidationError: *customer_id* that is not text, or given for a customer's
                own list (``customer_id``).
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[Delegation]:
            ctx = self._context(uow, attempt, actor, company_id)
            if not ctx.own:
                raise Forbidden(Decision(False, Rule.DELEGATES_NEVER_MANAGE_RELATIONSHIPS))
            if ctx.company.is_partner:
                if not self._decide(ctx, Permission.VIEW_PARTNER_OVERVIEW):
                    self._require(ctx, Permission.MANAGE_PARTNER_RELATIONSHIPS)
                if customer_id is None:
                    found = _listed(uow.delegations, limit, after, partner_id=ctx.company.id)
                else:  # a partner and one customer: a few
                    found = _listed_few(
                        uow.delegations,
                        limit,
                        after,
                        partner_id=ctx.company.id,
                        customer_id=_customer_filter(customer_id),
                    )
            else:
                self._require(ctx, Permission.MANAGE_PARTNER_RELATIONSHIPS)
                if customer_id is not None:
                    raise ValidationError("customer_id", "narrows a partner's list only")
                found = _listed(uow.delegations, limit, after, customer_id=ctx.company.id)
            return [d.as_of(ctx.now) for d in found]

        return self._run("delegation.list", body, write=False)
