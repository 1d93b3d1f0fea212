"""Use cases of companies, users and roles (F1, F2) and of the audit trail (F7)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from typing import Any, cast

import attrs

from partnerkit._portal_core import (
    _NOT_OWN_GLOBAL_ADMIN,
    PortalCore,
    _Attempt,
    _bump,
    _check_expected,
    _check_limit,
    _Context,
    _listed,
    _role_label,
    _roles_detail,
)
from partnerkit.audit import AuditChainBroken, AuditEvent, AuditPage, verify_chain
from partnerkit.directory import (
    MAX_EMAIL,
    Company,
    CompanyKind,
    ContactInfo,
    User,
    check_new_contact,
    check_new_name,
    email_key,
    new_advisor_id,
    new_id,
)
from partnerkit.errors import (
    Forbidden,
    InvalidState,
    PartnerKitError,
    ValidationError,
    _plain,
    _pretends,
    _shown,
)
from partnerkit.ports import MAX_AUDIT_RANGE, AuditRanges, UnitOfWork, never_stored
from partnerkit.records import CustomerRelation
from partnerkit.roles import (
    AdminRole,
    Decision,
    PartnerAccess,
    Permission,
    Rule,
    decide_assignment,
)

__all__ = ["DirectoryCases"]

_NOT_ITS_PARTNER = Decision(False, Rule.PARTNER_SHOWN_TO_ITS_CUSTOMERS)


def _is_partner_of(uow: UnitOfWork, partner_id: str, customer_id: str) -> bool:
    """Whether *partner_id* advises or advised *customer_id*, administered it, or offered it
    delegated administration (a pending, declined or lapsed offer counts)."""
    if uow.customer_relations.get(CustomerRelation.key(partner_id, customer_id)) is not None:
        return True
    return uow.delegations.count(partner_id=partner_id, customer_id=customer_id) > 0


_INT64_MAX = 2**63 - 1
#: An audit cursor: the order it was made for (oldest or newest first), then a position.
_AUDIT_CURSOR = re.compile(r"([on])(0|-?[1-9][0-9]{0,18})")


def _encode_audit_cursor(seq: int | None, newest_first: bool) -> str:
    """The cursor after *seq* in the walk's order; ``None`` is a walk that found nothing
    and was given no cursor: oldest first it starts again from the first event, newest
    first it is over (whatever comes later is newer, not older)."""
    if newest_first:
        return f"n{1 if seq is None else seq}"
    return f"o{seq or 0}"


def _decode_audit_cursor(cursor: object, newest_first: bool) -> int | None:
    """The position a cursor of :func:`_encode_audit_cursor` holds (``None`` for none given);
    else a ``ValidationError``."""
    if cursor is None:
        return None
    match = _AUDIT_CURSOR.fullmatch(cursor) if type(cursor) is str else None
    if match is None or not -_INT64_MAX - 1 <= int(match[2]) <= _INT64_MAX:
        raise ValidationError("cursor", "is not a cursor that audit_trail_page gave")
    if (match[1] == "n") != newest_first:
        raise ValidationError("cursor", "was given for a walk in the other order")
    return int(match[2])


def _audit_range(
    uow: UnitOfWork,
    company_id: str,
    limit: int,
    above: int | None,
    below: int | None,
    newest_first: bool,
) -> list[AuditEvent]:
    """Events of a company's trail in a range, from the store's index when it offers one."""
    ranged = getattr(uow, "audit_range", None)
    if ranged is not None:
        found: list[AuditEvent] = ranged(
            company_id, limit, above=above, below=below, newest_first=newest_first
        )
        return found
    low = -_INT64_MAX - 2 if above is None else above
    top = _INT64_MAX + 1 if below is None else below
    events = [e for e in uow.audit_events(company_id) if low < e.seq < top]
    return (events[::-1] if newest_first else events)[:limit]


class DirectoryCases(PortalCore):
    """Use cases of companies, users and roles (F1, F2) and of the audit trail (F7)."""

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
        if not isinstance(contact, ContactInfo) or _pretends(contact):
            raise ValidationError("contact", "must be a ContactInfo")
        check_new_contact(contact)

        def body(uow: UnitOfWork, attempt: _Attempt) -> tuple[Company, User]:
            check_new_name("name", name)
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

    def profile(self, actor: User | str, company_id: str | None = None) -> Company:
        """Return a company's profile; anyone in the company may read it (F1)."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> Company:
            ctx = self._context(uow, attempt, actor, company_id)
            self._require(ctx, Permission.VIEW_PROFILE)
            return ctx.company

        return self._run("profile.view", body, write=False)

    def partner_profile(self, actor: User | str, partner_id: str) -> Company:
        """Return the profile of a partner of the actor's company: the partner's
        :class:`Company`, whose name, contact information and advisor id F1 shows to a
        partner's customers (with when it registered, and its version).

        Any user of a customer may read the profile of a partner that advises or advised one
        of its subscriptions, or that offered it delegated administration, whatever became
        of the offer: pending (a consent page says who asks), active, or over (an audit
        trail's partner ids can be named). A partner's users read their own company's.

        Raises:
            Forbidden: no such partner of the actor's company
                (``partner-profiles-shown-to-their-customers``), whether or not a company
                has that id.
            ValidationError: a *partner_id* that is not a string.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> Company:
            user = self._actor(uow, actor, attempt)
            pid = _plain(partner_id)
            if type(pid) is not str:  # by its type: a __class__ property can claim str
                attempt.company_id = _shown(pid)
                raise ValidationError("partner_id", "must be a company id (a string)")
            attempt.company_id = pid
            own = pid == user.company_id
            attempt.role = _role_label(user, own=own)
            shown = own or _is_partner_of(uow, pid, user.company_id)
            company = uow.companies.get(pid) if shown else None
            if company is None or not company.is_partner:
                raise Forbidden(_NOT_ITS_PARTNER)
            return company

        return self._run("partner.view", body, write=False)

    def list_partners(self, actor: User | str, company_id: str | None = None) -> list[Company]:
        """Return the partners of the actor's company, a customer: every partner that
        :meth:`partner_profile` shows its users, ordered by name (case-folded), then id.

        Any user of the customer may read it. A partner's user acting on the customer
        through a delegation may not: the list is the customer's view of its partner
        relationships, which delegates never manage. (What a delegate administers still
        names whom it names: a subscription its advisor, a service request the company
        that raised it, as the customer's own admins see them.)

        Raises:
            Forbidden: through a delegation (``delegates-never-manage-partner-relationships``).
            ValidationError: a partner company, which has no partners (``company_id``).
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[Company]:
            ctx = self._context(uow, attempt, actor, company_id)
            if not ctx.own:
                raise Forbidden(Decision(False, Rule.DELEGATES_NEVER_MANAGE_RELATIONSHIPS))
            if ctx.company.is_partner:
                raise ValidationError("company_id", "is a partner's: only a customer has partners")
            self._require(ctx, Permission.VIEW_PROFILE)  # every user of the customer
            customer_id = ctx.company.id
            ids = {r.partner_id for r in uow.customer_relations.find(customer_id=customer_id)}
            ids.update(d.partner_id for d in uow.delegations.find(customer_id=customer_id))
            found = uow.companies.get_many(sorted(ids)).values()
            partners = [company for company in found if company.is_partner]
            return sorted(partners, key=lambda company: (company.name.casefold(), company.id))

        return self._run("partner.list", body, write=False)

    def update_profile(
        self,
        actor: User | str,
        *,
        contact: ContactInfo | None = None,
        name: str | None = None,
        company_id: str | None = None,
        expected_version: int | None = None,
    ) -> Company:
        """Change the company's contact information and/or name (global admins only).

        With *expected_version* (the ``version`` of the profile the edit was made on: an
        edit form's, an ``If-Match``), a profile changed since is refused with
        ``StaleVersion`` rather than overwritten, as every edit of the Portal takes it.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> Company:
            ctx = self._context(uow, attempt, actor, company_id)
            self._require(ctx, Permission.EDIT_PROFILE)
            changes: dict[str, Any] = {}
            if contact is not None:
                if not isinstance(contact, ContactInfo) or _pretends(contact):
                    raise ValidationError("contact", "must be a ContactInfo")
                check_new_contact(contact)
                changes["contact"] = contact
            if name is not None:
                check_new_name("name", name)
                changes["name"] = name
            if not changes:
                raise ValidationError("contact", "nothing to change")
            company = _bump(ctx.company, **changes)
            _check_expected(ctx.company, expected_version, "profile")  # rights, input, then this
            uow.companies.update(company)
            if company.name != ctx.company.name and not company.is_partner:
                # The partners' searches find a customer by the name copied into each of
                # their relations with it (their search key): it changes with the name.
                name_key = company.name.casefold()
                for relation in uow.customer_relations.find(customer_id=company.id):
                    if relation.name_key != name_key:
                        uow.customer_relations.update(_bump(relation, name_key=name_key))
            attempt.detail["changed"] = ",".join(sorted(changes))
            self._succeed(uow, attempt)
            return company

        return self._run("profile.update", body)

    def current_user(self, actor: User | str) -> User:
        """Return the actor's own user as it is stored now: its admin role, partner access
        and ``must_change_password``, for your portal to show a person about themselves.
        Everyone may read their own; nobody needs a right for it. A removed user is
        ``Forbidden`` (``actor-does-not-exist``), as in every use case."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> User:
            return self._context(uow, attempt, actor, None).actor

        return self._run("user.view_own", body, write=False)

    def find_user_by_email(self, email: str) -> User | None:
        """Return the user with this e-mail address, compared as partnerkit compares
        addresses (ASCII letters case-insensitively), or ``None``: for your sign-in, to map
        an address your identity provider vouched for to the actor it is (docs/actors.md).
        partnerkit stores only ASCII addresses, so one with any other character (an
        internationalized address, or a look-alike such as ``ß`` for ``ss``) finds nobody.

        Not a use case: it takes no actor and decides nothing, so it is not audited. Call
        it only with an address your sign-in has verified, never to answer a visitor.

        Raises:
            ValidationError: an *email* that is not text (``field`` ``"email"``).
        """
        if not isinstance(email, str) or _pretends(email):
            raise ValidationError("email", "must be an e-mail address (a string)")
        key = email_key(email)
        if len(key) > MAX_EMAIL or not key.isascii() or never_stored(key):
            return None  # no stored address is that long, or holds such characters
        with self.store.unit_of_work(write=False) as uow:
            found = uow.users.find(email_key=key)
        return found[0] if found else None

    def list_users(
        self,
        actor: User | str,
        company_id: str | None = None,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[User]:
        """Return the users of a company, for those who manage users, assign roles or reset
        passwords there: a password admin, or a partner user acting as one through a
        delegation, finds the users it supports here; ``decide(actor,
        Permission.RESET_PASSWORD, company_id, target=user)`` tells which of them it may reset.

        With *limit*, one page of the list: the first *limit* in key (id) order whose
        id follows *after* (pass the last id of the page before; ``None`` starts at the
        first). A page is read from the store's index, not the whole list; a page shorter
        than *limit* is the last. Without *limit*, the whole list (after *after*).

        Raises:
            ValidationError: a *limit* that is not a whole number from 1 to
                ``MAX_FIND_PAGE`` (1,000), or an *after* that is not text an id can be.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[User]:
            ctx = self._context(uow, attempt, actor, company_id)
            if not (
                self._decide(ctx, Permission.ASSIGN_ROLES)
                or self._decide(ctx, Permission.RESET_PASSWORD)
            ):
                self._require(ctx, Permission.MANAGE_USERS)
            return _listed(uow.users, limit, after, company_id=ctx.company.id)

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
            check_new_name("display_name", display_name)
            user = User(
                id=new_id("usr"),
                company_id=ctx.company.id,
                email=_plain(email),
                display_name=_plain(display_name),
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

    def update_user(
        self,
        actor: User | str,
        user_id: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        company_id: str | None = None,
        expected_version: int | None = None,
    ) -> User:
        """Change a user's e-mail and/or display name, within the actor's ``MANAGE_USERS``
        limits: the same as :meth:`remove_user`'s (a user-management admin edits users
        without an admin role; a user with partner access is edited only by a global admin
        of its own company). Admin settings are changed by :meth:`assign_roles`.

        Changing another user's e-mail also takes what resetting that user's password
        takes (``RESET_PASSWORD`` on them): whoever reads the mailbox can have the
        password reset, so a global admin without partner access may not move a partner
        user's e-mail, as it may not reset their password.

        *expected_version*: as :meth:`update_profile` takes it, the user's.

        Raises:
            ValidationError: nothing to change, a malformed value, or an e-mail another
                user has (compared case-insensitively: ``AlreadyExists``).
            StaleVersion: the user is no longer at *expected_version*.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> User:
            attempt.target_id = _shown(user_id)
            ctx = self._context(uow, attempt, actor, company_id)
            self._require(ctx, Permission.MANAGE_USERS)
            target = self._target(uow, ctx, attempt, user_id)
            self._require(ctx, Permission.MANAGE_USERS, target)
            changes: dict[str, Any] = {}
            new_email, new_name = _plain(email), _plain(display_name)
            if new_email is not None and new_email != target.email:
                if target.id != ctx.actor.id and (
                    not isinstance(new_email, str)
                    or email_key(new_email) != email_key(target.email)
                ):
                    # The mailbox is the way to the password: no escalation through it.
                    self._require(ctx, Permission.RESET_PASSWORD, target)
                changes["email"] = new_email
            if new_name is not None and new_name != target.display_name:
                check_new_name("display_name", new_name)
                changes["display_name"] = new_name
            # Judged by type too, once the rights are: an object that compares equal to the
            # stored value is no e-mail or name, and does not pass for "the same again".
            for field, given in (("email", new_email), ("display_name", new_name)):
                if given is not None and type(given) is not str:
                    raise ValidationError(field, "must be a string")
            if not changes and email is None and display_name is None:
                raise ValidationError("email", "nothing to change (email or display_name)")
            user = _bump(target, **changes) if changes else None  # validates the new values
            # Once the rights and the input are judged: a stale form is refused as such.
            _check_expected(target, expected_version, "user")
            if user is None:
                # The same values again: nothing to write; the attempt is still recorded.
                attempt.detail["changed"] = ""
                self._succeed(uow, attempt)
                return target
            if email_key(user.email) != email_key(target.email):
                self._check_email_free(uow, user.email, "email")
            uow.users.update(user)
            attempt.detail["changed"] = ",".join(sorted(changes))
            self._succeed(uow, attempt)
            return user

        return self._run("user.update", body)

    def assign_roles(
        self,
        actor: User | str,
        user_id: str,
        *,
        admin_role: AdminRole | None = None,
        partner_access: PartnerAccess | None = None,
        company_id: str | None = None,
        expected_version: int | None = None,
    ) -> User:
        """Set both admin settings of a user (global admins only; no escalation).

        Both are set: a setting left out is set to ``None`` (a user with ``LIMITED`` partner
        access given only ``admin_role=...`` loses the access). Pass the user's current
        value to keep it. With *company_id*, in a customer through a delegation; without
        it, the actor's own company (a user of another company is not found there).

        A change of either setting forgets the temporary passwords the user set that
        nobody has used (in any company), and the user's own if it no longer signs in
        after the change; each of them that signed in until then is recorded on its
        company's trail as ``user.temporary_password.void`` (see :meth:`verify_password`).

        Raises:
            Forbidden: the actor may not assign these roles to this user.
            ValidationError: partner access on a customer's user, or the company would lose
                its last global admin (``InvalidState``).
            StaleVersion: the user is no longer at *expected_version* (as
                :meth:`update_profile` takes it).
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> User:
            attempt.target_id = _shown(user_id)
            ctx = self._context(uow, attempt, actor, company_id)
            self._require(ctx, Permission.ASSIGN_ROLES)
            target = self._target(uow, ctx, attempt, user_id)
            self._check_assignment(ctx, target, admin_role, partner_access)
            _check_expected(target, expected_version, "user")  # after every right is judged
            if admin_role is not AdminRole.GLOBAL_ADMIN:
                self._keep_a_global_admin(uow, target, "admin_role")
            changed = (admin_role, partner_access) != (target.admin_role, target.partner_access)
            # Judged before the change: the passwords the user set, and its own if it signs
            # in now.
            set_by_it = self._set_by(uow, target) if changed else ([], [])
            good = changed and self._signing_in(uow, target.id) is not None
            user = _bump(target, admin_role=admin_role, partner_access=partner_access)
            uow.users.update(user)
            attempt.detail.update(_roles_detail(admin_role, partner_access))
            if changed:
                # What the user set goes: a role given back must not give it back. And the
                # user's own temporary password, once its setter may not reset the user in
                # its new role: demoted again, it must not sign in without a new reset.
                self._forget(uow, attempt, set_by_it, "setter-roles-changed")
                own = uow.credentials.get(target.id)
                if own is not None and self._signing_in(uow, target.id) is None:
                    # Forgotten whether or not it signed in before (one that looked dead
                    # only for a while, to a clock ahead of another's, must not outlive the
                    # change); said so only if it did (a dead one dies of something else).
                    self._forget(
                        uow, attempt, ([own], []) if good else ([], [own]), "user-roles-changed"
                    )
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
        # By their types: a __class__ property cannot claim a member of an enum.
        if admin_role is not None and type(admin_role) is not AdminRole:
            raise ValidationError("admin_role", "must be an AdminRole or None")
        if partner_access is not None and type(partner_access) is not PartnerAccess:
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
            raise InvalidState(field, "a company keeps at least one global admin")

    def remove_user(
        self,
        actor: User | str,
        user_id: str,
        *,
        company_id: str | None = None,
        expected_version: int | None = None,
    ) -> None:
        """Delete a user, within the actor's ``MANAGE_USERS`` limits.

        The last global admin of a company is never removed (``InvalidState``). With
        *expected_version*, a user changed since that version is not removed
        (``StaleVersion``: as :meth:`update_profile` takes it). The user's temporary
        password goes with it, and those it set that nobody has used are forgotten: each
        that signed in until then is recorded as ``user.temporary_password.void`` on its
        company's trail.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> None:
            attempt.target_id = _shown(user_id)
            ctx = self._context(uow, attempt, actor, company_id)
            self._require(ctx, Permission.MANAGE_USERS)
            target = self._target(uow, ctx, attempt, user_id)
            self._require(ctx, Permission.MANAGE_USERS, target)
            _check_expected(target, expected_version, "user")
            self._keep_a_global_admin(uow, target, "user_id")
            # A password a reset set goes with its user, in the same unit of work.
            credential = uow.credentials.get(target.id)
            if credential is not None:
                uow.credentials.remove(credential)
            self._forget(uow, attempt, self._set_by(uow, target), "setter-removed")
            uow.users.remove(target)
            self._succeed(uow, attempt)

        self._run("user.remove", body)

    # -- F7: the audit trail -----------------------------------------------------------

    def audit_trail(self, actor: User | str, company_id: str | None = None) -> list[AuditEvent]:
        """Return the events in a company and those others caused on it, oldest first.

        Readable by that company's own global admins.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[AuditEvent]:
            return uow.audit_events(self._trail_of(uow, attempt, actor, company_id))

        return self._run("audit.read", body, write=False)

    def _trail_of(
        self, uow: UnitOfWork, attempt: _Attempt, actor: User | str, company_id: object
    ) -> str:
        """The company whose trail the actor reads: its own, and only as its global admin."""
        user = self._actor(uow, actor, attempt)
        cid = _plain(user.company_id if company_id is None else company_id)
        if type(cid) is not str:  # by its type: a __class__ property can claim str
            attempt.company_id = _shown(cid)
            raise ValidationError("company_id", "must be a company id (a string)")
        attempt.company_id = cid
        attempt.role = _role_label(user, own=cid == user.company_id)
        if cid != user.company_id or user.admin_role is not AdminRole.GLOBAL_ADMIN:
            raise Forbidden(_NOT_OWN_GLOBAL_ADMIN)
        return cid

    def audit_trail_page(
        self,
        actor: User | str,
        company_id: str | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> AuditPage:
        """One page of :meth:`audit_trail`: the same events, the same right to read them.

        Pages are read from the store's indexes, so a long trail is walked a page at a time
        instead of being read whole. Oldest first by default; with *newest_first* the walk
        starts at the newest event and goes back. Each page gives the cursor to go on from
        (``next_cursor``) and whether more events followed it when it was read
        (``has_more``); a walk oldest first that has caught up asks again later with its
        cursor and gets the events recorded since. A cursor is opaque text, good for walks
        in the order it was made for; it grants nothing.

        Raises:
            Forbidden: the actor is not a global admin of that company (audited).
            ValidationError: a *limit* that is not a whole number from 1 to 500, a
                *cursor* this method did not give (or gave for the other order), or a
                *newest_first* that is not a bool.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> AuditPage:
            cid = self._trail_of(uow, attempt, actor, company_id)
            size = _check_limit(limit)
            if type(newest_first) is not bool:
                raise ValidationError("newest_first", "must be True or False")
            start = _decode_audit_cursor(cursor, newest_first)
            above, below = (None, start) if newest_first else (start, None)
            found = _audit_range(uow, cid, size + 1, above, below, newest_first)
            events = tuple(found[:size])
            place = events[-1].seq if events else start
            following = _encode_audit_cursor(place, newest_first)
            return AuditPage(events, following, len(found) > size)

        return self._run("audit.read", body, write=False)

    def verify_audit_trail(self) -> int:
        """Check the whole audit chain; return the number of events.

        The chain is read in parts of :data:`~partnerkit.ports.MAX_AUDIT_RANGE` events from a
        store that offers ``audit_range`` (the built-in ones do), each part in a read unit of
        work of its own, so that a long chain is checked in bounded memory without holding
        one transaction open all along. It is checked up to the head recorded when it
        started; events appended meanwhile are left for the next check.

        Raises:
            AuditChainBroken: (a ``PartnerKitError``) an event was edited, inserted or deleted.
        """
        beyond: list[AuditEvent] = []
        with self.store.unit_of_work(write=False) as uow:
            head = uow.audit_head()
            ranged = getattr(uow, "audit_range", None)
            if ranged is None:
                events: Iterable[AuditEvent] = uow.audit_events()
            else:
                # Past the head there is nothing, unless a row was slipped in behind the
                # store's back: read in the head's own unit of work, it ends the chain the
                # check reads, which then fails on it as it did on the whole trail.
                beyond = ranged(None, 1, above=head[0])
        if ranged is not None:
            events = itertools.chain(self._audit_parts(head[0]), beyond)
        try:
            return verify_chain(events, head)
        except PartnerKitError:
            raise
        except (TypeError, ValueError, AttributeError) as exc:
            # A field of a type no store writes (edited behind the store's back, in a store
            # whose columns do not refuse it): the text its hash covers cannot be rebuilt.
            raise AuditChainBroken(0, "a stored event holds what no event holds") from exc

    def _audit_parts(self, last: int) -> Iterator[AuditEvent]:
        """The events of the chain up to *last*, read a part at a time (from the very first
        row: one with a number below 1, slipped in behind the store's back, comes first)."""
        below = last + 1 if last < _INT64_MAX else None
        above: int | None = None
        while above is None or above < last:
            with self.store.unit_of_work(write=False) as uow:
                ranges = cast(AuditRanges, uow)
                part = ranges.audit_range(None, MAX_AUDIT_RANGE, above=above, below=below)
            if not part:
                return  # the chain ends before its head: verify_chain says so
            yield from part
            above = part[-1].seq
