"""Use cases of supporting customers: search, password resets, service requests (F6)."""

from __future__ import annotations

import base64
import json
from datetime import datetime

import attrs

from partnerkit._portal_core import (
    PortalCore,
    _Attempt,
    _bump,
    _check_expected,
    _check_limit,
    _check_prefix,
    _listed,
    _role_label,
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
    _plain,
    _shown,
)
from partnerkit.ports import UnitOfWork
from partnerkit.records import CustomerRelation
from partnerkit.roles import (
    Permission,
)
from partnerkit.support import (
    Credential,
    CustomerPage,
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

#: The longest cursor :meth:`SupportCases.find_customers_page` reads.
_MAX_CURSOR = 2048


def _search(
    uow: UnitOfWork,
    partner_id: str,
    key: str,
    size: int,
    after: tuple[str, str] | None,
    now: datetime,
) -> list[Company]:
    """A page of the partner's customers, from the store's one step when it has one."""
    # A store that returns the page's companies itself does it in one step (one statement
    # on SQLite); for any other, the relations and then their companies.
    search_customers = getattr(uow, "search_customers", None)
    if search_customers is not None:
        found: list[Company] = search_customers(partner_id, key, size, after, now=now)
        return found
    relations = uow.search_relations(partner_id, key, size, after, now=now)
    companies = uow.companies.get_many([r.customer_id for r in relations])
    return [companies[r.customer_id] for r in relations if r.customer_id in companies]


def _encode_cursor(key: str, relation_id: str) -> str:
    text = json.dumps([key, relation_id], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_cursor(cursor: object) -> tuple[str, str]:
    """The place a cursor of :func:`_encode_cursor` holds; else a ``ValidationError``."""
    refused = ValidationError("cursor", "is not a cursor that find_customers_page gave")
    if type(cursor) is not str or not 0 < len(cursor) <= _MAX_CURSOR or not cursor.isascii():
        raise refused
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        place = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeError, RecursionError):
        raise refused from None
    if not (
        isinstance(place, list)
        and len(place) == 2
        and all(type(part) is str and "\x00" not in part for part in place)
    ):
        raise refused
    try:
        canonical = _encode_cursor(place[0], place[1])
    except UnicodeEncodeError:  # a lone surrogate, escaped in the JSON: no text a store holds
        raise refused from None
    if canonical != cursor:
        raise refused  # only the canonical form: no trailing junk, padding or other spelling
    return place[0], place[1]


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
        pass the last company id seen as *after* for the next page (a customer the search no
        longer finds is refused there, as one never found: :meth:`find_customers_page` keeps
        its place through such changes). A customer is found
        while the partner is advisor of one of its subscriptions or holds an active
        delegation of it, not past its end date (a pending offer finds nothing; revoked,
        ended, or past its end date: no longer found).
        """

        # By their text, as every use case reads its arguments (portal.py), here inline.
        actor, prefix, after = _plain(actor), _plain(prefix), _plain(after)

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[Company]:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.SEARCH_CUSTOMERS)
            key = _check_prefix(prefix)
            size = _check_limit(limit)
            cursor = None
            if after is not None:
                if type(after) is not str:
                    raise ValidationError("after", "must be a company id or None")
                rel = uow.customer_relations.get(CustomerRelation.key(ctx.company.id, after))
                # Only a customer the search finds now: the relation of one no longer advised
                # or administered keeps its name up to date, which the place of a page after
                # it would give away to the former partner.
                if rel is None or not rel.is_listed(ctx.now):
                    raise ValidationError("after", "is not a customer of this partner")
                cursor = (rel.search_key(key), rel.id)
            return _search(uow, ctx.company.id, key, size, cursor, ctx.now)

        return self._run("customer.search", body, write=False)

    def customer_profile(self, actor: User | str, customer_id: str) -> Company:
        """Return one customer that :meth:`find_customers` finds now, by its id: the page of
        a customer in a partner's console, for a user with partner access (the
        ``SEARCH_CUSTOMERS`` permission), with or without a delegation.

        A customer the partner advises (of one of its subscriptions) or administers through
        an active delegation not past its end date. Any other id, of a customer or of
        nothing, is ``NotFound`` alike: a partner learns nothing of the others.

        Raises:
            Forbidden: the actor has no partner access.
            NotFound: no customer of the actor's partner has that id now.
            ValidationError: a *customer_id* that is not a string.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> Company:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.SEARCH_CUSTOMERS)
            cid = _plain(customer_id)
            if type(cid) is not str:  # by its type: a __class__ property can claim str
                raise ValidationError("customer_id", "must be a company id (a string)")
            attempt.target_id = _shown(cid)
            relation = uow.customer_relations.get(CustomerRelation.key(ctx.company.id, cid))
            company = None
            if relation is not None and relation.is_listed(ctx.now):
                company = uow.companies.get(cid)
            if company is None or company.is_partner:
                raise NotFound("customer", _shown(cid))
            return company

        return self._run("customer.view", body, write=False)

    def find_customers_page(
        self,
        actor: User | str,
        prefix: str = "",
        limit: int = 50,
        cursor: str | None = None,
    ) -> CustomerPage:
        """One page of :meth:`find_customers`, and the cursor of the next.

        The same search, the same order and the same rights; but where ``after`` names the
        last customer seen and the next page starts after that customer's place *now*,
        the cursor holds the place itself (the text that matched, and the relation): a
        customer renamed between two pages moves, and the walk neither skips nor repeats
        the others. The cursor is opaque text, good for the same actor's partner; it
        grants nothing (a forged one only moves the start of a search the actor may make).

        Raises:
            ValidationError: a malformed *cursor* (not in the form this method gives), a bad
                *prefix* or *limit*.
        """

        # By their text, as every use case reads its arguments (portal.py), here inline.
        actor, prefix, cursor = _plain(actor), _plain(prefix), _plain(cursor)

        def body(uow: UnitOfWork, attempt: _Attempt) -> CustomerPage:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.SEARCH_CUSTOMERS)
            key = _check_prefix(prefix)
            size = _check_limit(limit)
            after = None if cursor is None else _decode_cursor(cursor)
            # One more than the page: whether another page follows is known now, so the
            # last page has no cursor (rather than one to an empty page).
            found = _search(uow, ctx.company.id, key, size + 1, after, ctx.now)
            page = found[:size]
            following = None
            if len(found) > size:
                last = uow.customer_relations.get(CustomerRelation.key(ctx.company.id, page[-1].id))
                if last is not None:
                    following = _encode_cursor(last.search_key(key), last.id)
            return CustomerPage(tuple(page), following)

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
                delegation_id=None if ctx.delegation is None else ctx.delegation.id,
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
        """Sign a user in with the temporary password a reset gave: ``True`` once.

        The temporary password is one-time. The first call that verifies it uses it up
        (the store forgets its hash, and the trail records the use), so a second sign-in
        with it is ``False``, and of two calls at once only one is ``True``. Before that it
        is good:

        - for :attr:`temporary_password_lifetime` after the reset (the Portal's setting at
          sign-in: shortening it shortens every pending password at once, and lengthening
          it lengthens them too);
        - while whoever reset it could reset that user's password now. A delegation revoked,
          ended or past its end date, partner access or an admin role taken away, or the
          resetting user removed, ends it: a partner keeps no way into a customer's
          accounts once the consent behind the reset is gone;
        - for good once it has ended: one set through a delegation signs in only while that
          very delegation stands (a later consent of the customer to the same partner does
          not bring it back); any change of the resetting user's admin role or partner
          access forgets the passwords it set, and a change of the user's own roles that
          takes it out of its resetter's reach forgets its password (restoring a role does
          not restore a password);
        - unless it was set while the clock ran ahead of the time it reads now (by more
          than a minute);
        - while the user exists (a removed user's password verifies no more).

        The user keeps ``must_change_password`` until your portal has it choose a new
        password (in your identity provider) and calls :meth:`password_changed`.
        """
        if type(user_id) is not str or type(password) is not str:
            return False
        with self.store.unit_of_work(write=False) as uow:
            found = self._signing_in(uow, user_id)
        # The hash is slow on purpose: checked outside any unit of work, and only for a
        # password that is still good.
        if found is None or not self.password_hasher.verify(password, found[1].password_hash):
            return False
        credential = found[1]

        def body(uow: UnitOfWork, attempt: _Attempt) -> bool:
            # Used up once: by the call that finds it as it was verified, still good now
            # (a revocation may have committed while the hash was checked), and no other.
            again = self._signing_in(uow, user_id)
            if again is None or again[1] != credential:
                return False
            signing_in, current = again
            attempt.actor = signing_in
            attempt.company_id = signing_in.company_id
            attempt.role = _role_label(signing_in, own=True)
            attempt.target_id = signing_in.id
            uow.credentials.remove(current)
            self._succeed(uow, attempt)
            return True

        return self._run("user.temporary_password.use", body)

    def password_changed(self, actor: User | str) -> User:
        """Record that *actor* has chosen a new password (in your identity provider).

        Clears the actor's ``must_change_password`` and forgets a temporary password it has
        not used; returns the user as stored now. Only users themselves say so, as the
        actor: no one clears another's flag. A user with nothing to clear is returned as it
        is, and nothing is recorded.

        Raises:
            Forbidden: the actor is unknown.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> User:
            user = self._actor(uow, actor, attempt)
            attempt.company_id = user.company_id
            attempt.role = _role_label(user, own=True)
            attempt.target_id = user.id
            credential = uow.credentials.get(user.id)
            if credential is None and not user.must_change_password:
                return user
            if credential is not None:
                uow.credentials.remove(credential)
            changed = user
            if user.must_change_password:
                changed = _bump(user, must_change_password=False)
                uow.users.update(changed)
            self._succeed(uow, attempt)
            return changed

        return self._run("user.password_changed", body)

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
        self,
        actor: User | str,
        customer_id: str | None = None,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[ServiceRequest]:
        """Return a customer's service requests (needs ``MANAGE_SERVICE_REQUESTS`` there).

        With *limit* and *after*, one page of it in id order, read from the store's
        index: as :meth:`list_users` pages.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[ServiceRequest]:
            ctx = self._context(uow, attempt, actor, customer_id, "customer_id")
            self._require(ctx, Permission.MANAGE_SERVICE_REQUESTS)
            return _listed(uow.service_requests, limit, after, customer_id=ctx.company.id)

        return self._run("service_request.list", body, write=False)

    def update_service_request(
        self,
        actor: User | str,
        request_id: str,
        *,
        status: RequestStatus | str | None = None,
        severity: Severity | str | None = None,
        expected_version: int | None = None,
    ) -> ServiceRequest:
        """Change a service request's status and/or severity.

        With *expected_version*, a request changed since that version is refused
        (``StaleVersion``), as :meth:`update_profile` takes it.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> ServiceRequest:
            request = uow.service_requests.get(request_id) if isinstance(request_id, str) else None
            ctx = self._locate(
                uow,
                attempt,
                actor,
                request.customer_id if request is not None else None,
                Permission.MANAGE_SERVICE_REQUESTS,
                NotFound("service request", _shown(request_id)),
                # whoever raised it knows it: a delegate whose delegation ended is told why
                known_to=request.created_by_company_id if request is not None else None,
            )
            assert request is not None
            # Checked once the actor is known to have the right, as a failure it audits.
            new_status = None if status is None else check_request_status(status)
            new_severity = None if severity is None else check_severity(severity)
            _check_expected(request, expected_version, "service request")
            changed = request.change(ctx.now, status=new_status, severity=new_severity)
            uow.service_requests.update(changed)
            attempt.detail.update(status=changed.status.value, severity=changed.severity.value)
            self._succeed(uow, attempt)
            return changed

        return self._run("service_request.update", body)
