"""Use cases of links, trials, offers, redemption and subscriptions (F3, F4, F5)."""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from partnerkit._build import builder
from partnerkit._portal_core import (
    PortalCore,
    _Attempt,
    _bump,
    _check_bool,
    _check_expected,
    _check_lifetime,
    _check_max_uses,
    _Context,
    _customer_filter,
    _finds_each,
    _listed,
    _listed_few,
    _reads_each,
    _role_label,
    _roles_of,
    _terms_detail,
)
from partnerkit._time import later
from partnerkit.consent import (
    Delegation,
    DelegationOffer,
    DelegationStatus,
    check_duration,
    check_roles,
)
from partnerkit.directory import (
    Company,
    User,
    new_id,
    new_quote_id,
)
from partnerkit.errors import (
    Forbidden,
    InvalidLink,
    InvalidState,
    LinkExhausted,
    LinkRevoked,
    NotFound,
    PartnerKitError,
    ValidationError,
    _first_items,
    _plain,
    _pretends,
    _shown,
)
from partnerkit.links import (
    MAX_CLOCK_SKEW,
    LinkClaims,
    LinkKind,
    _remember,
    _used,
    build_url,
    check_link_times,
    code_from_url,
)
from partnerkit.offers import (
    MAX_OFFER_LINES,
    IssuedLink,
    LinkStatus,
    LinkTerms,
    OfferLine,
    OfferStatus,
    PurchaseOffer,
    Redemption,
    Subscription,
    SubscriptionStatus,
    TrialInvitation,
)
from partnerkit.ports import (
    COMPANIES,
    DELEGATIONS,
    LINKS,
    OFFERS,
    REDEMPTIONS,
    RELATIONS,
    SUBSCRIPTIONS,
    USERS,
    Table,
    UnitOfWork,
)
from partnerkit.records import CustomerRelation, LinkRecord, RedemptionRecord
from partnerkit.roles import (
    AdminRole,
    Decision,
    Permission,
    Rule,
    decide,
)

__all__ = ["OfferCases"]


# Members read on every redemption, bound once (a member read off its Enum class costs
# several times a global's lookup).
_PURCHASE_OFFER = LinkKind.PURCHASE_OFFER
_TRIAL_INVITATION = LinkKind.TRIAL_INVITATION
_OPEN = OfferStatus.OPEN
_ACTIVE_SUBSCRIPTION = SubscriptionStatus.ACTIVE
_PURCHASE = Permission.PURCHASE
_MANAGE_RELATIONSHIPS = Permission.MANAGE_PARTNER_RELATIONSHIPS
_PENDING = DelegationStatus.PENDING

_TERMS_WITHOUT_DELEGATION = "is given only with include_delegated_admin=True"
_COUNTS_MESSAGE = "must be a mapping of sku to licence count"
_ACTIVE = DelegationStatus.ACTIVE
# ``RedemptionRecord(...)``, ``Subscription(...)`` and ``Redemption(...)``, with plain
# stores (see _build.py).
_build_redemption = builder(RedemptionRecord)
_build_subscription = builder(Subscription)
_build_result = builder(Redemption)


def _may_decide(user: User, company: Company) -> bool:
    """Whether *user* may accept or decline delegated administration of its own *company*."""
    return bool(
        decide(user, _MANAGE_RELATIONSHIPS, company.id, company_is_partner=company.is_partner)
    )


@attrs.frozen
class _Known:
    """What a redemption reads before it writes, read together by a unit of work that reads
    several things in one step (``ports.EachReader``, ``ports.EachFinder``).

    Each is what the read one by one would find: writers run one at a time, and nothing has
    been written yet when they are read (the subscriptions of one service are not changed
    by the writes for another).
    """

    #: ``links.get(claims.link_id)``.
    record: LinkRecord | None
    #: ``redemptions.get(f"{claims.link_id}:{customer_id}")``.
    redemption: RedemptionRecord | None
    #: ``purchase_offers.get(claims.target)`` for an offer link, else ``None``.
    offer: PurchaseOffer | None
    #: ``subscriptions.find(customer_id=customer_id)``; ``None`` when not read.
    subscriptions: list[Subscription] | None
    #: ``customer_relations.find(customer_id=customer_id)`` (one a partner: few), read with
    #: the subscriptions; ``None`` when not read.
    relations: list[CustomerRelation] | None = None


def _subscribed(
    uow: UnitOfWork, company: Company, sku: str, known: list[Subscription] | None
) -> list[Subscription]:
    """``subscriptions.find(customer_id=company.id, sku=sku)``, from the customer's
    subscriptions when they were read already (*known*, ordered by key like ``find``)."""
    if known is None:
        return uow.subscriptions.find(customer_id=company.id, sku=sku)
    return [s for s in known if s.sku == sku]


def _issued(
    record: LinkRecord,
    offers: Mapping[str, PurchaseOffer],
    terms: Mapping[str, DelegationOffer],
    now: datetime,
) -> IssuedLink:
    """*record* as its partner's list shows it at *now* (its offer and delegation terms
    read from *offers* and *terms*)."""
    if now > record.expires_at + MAX_CLOCK_SKEW:
        status = LinkStatus.EXPIRED
    elif record.revoked_at is not None:
        status = LinkStatus.REVOKED
    elif record.kind is _PURCHASE_OFFER and (
        record.target not in offers or offers[record.target].status is not _OPEN
    ):
        status = LinkStatus.WITHDRAWN
    elif record.max_uses is not None and record.uses >= record.max_uses:
        status = LinkStatus.EXHAUSTED
    else:
        status = LinkStatus.LIVE
    offered = None if record.delegation_offer_id is None else terms.get(record.delegation_offer_id)
    return IssuedLink(
        id=record.id,
        kind=record.kind,
        partner_id=record.partner_id,
        target=record.target,
        includes_delegated_admin=record.includes_delegated_admin,
        created_by=record.created_by,
        created_at=record.created_at,
        expires_at=record.expires_at,
        max_uses=record.max_uses,
        uses=record.uses,
        revoked_at=record.revoked_at,
        revoked_by=record.revoked_by,
        status=status,
        delegation_roles=None if offered is None else offered.roles,
        delegation_duration=None if offered is None else offered.duration,
    )


class OfferCases(PortalCore):
    """Use cases of links, trials, offers, redemption and subscriptions (F3, F4, F5)."""

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
        expires = later(issued, lifetime, "expires_in", "the link")
        advisor_id = ctx.company.advisor_id
        assert advisor_id is not None
        code, claims = self.keyring.issue(
            kind,
            link_id=link_id or new_id("lnk"),
            advisor_id=advisor_id,
            target=target,
            includes_delegated_admin=delegation_offer_id is not None,
            issued_at=issued,
            expires_at=expires,
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

    def _included_delegation(
        self,
        uow: UnitOfWork,
        ctx: _Context,
        attempt: _Attempt,
        include: object,
        roles: object,
        duration: object,
    ) -> DelegationOffer | None:
        """The delegation offer a trial or purchase offer includes (on these terms), if it
        includes one: terms without one are refused, as they would be ignored."""
        if include is not True:
            if roles is not None:
                raise ValidationError("delegation_roles", _TERMS_WITHOUT_DELEGATION)
            if duration is not None:
                raise ValidationError("delegation_duration", _TERMS_WITHOUT_DELEGATION)
            return None
        try:
            d_offer = self._delegation_offer(uow, ctx, roles, duration)
        except ValidationError as exc:  # named as this call takes them
            if exc.field in ("roles", "duration"):
                raise ValidationError(f"delegation_{exc.field}", exc.message) from None
            raise
        attempt.detail.update(_terms_detail(d_offer))
        return d_offer

    def create_trial_invitation(
        self,
        actor: User | str,
        sku: str,
        include_delegated_admin: bool = False,
        *,
        expires_in: timedelta | None = None,
        max_uses: int | None = None,
        delegation_roles: Iterable[AdminRole] | AdminRole | None = None,
        delegation_duration: timedelta | None = None,
    ) -> str:
        """Create a trial invitation link for one service that offers a trial (F3).

        The link is not bound to a customer: it may be mailed to many or published.
        Returns the URL (``base_url`` with the signed code in ``code``).

        Args:
            include_delegated_admin: offer delegated administration with the trial.
            delegation_roles: the admin roles that delegation asks for (default: all
                five), as :meth:`offer_delegated_admin`'s ``roles``; only with
                *include_delegated_admin*.
            delegation_duration: how long it lasts after consent (default: no end date);
                only with *include_delegated_admin*.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> str:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.CREATE_TRIAL_INVITATIONS)
            _check_bool("include_delegated_admin", include_delegated_admin)
            service = self.catalog.get(sku)
            if service.trial is None:
                raise ValidationError("sku", f"{service.sku} offers no trial")
            d_offer = self._included_delegation(
                uow, ctx, attempt, include_delegated_admin, delegation_roles, delegation_duration
            )
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
        delegation_roles: Iterable[AdminRole] | AdminRole | None = None,
        delegation_duration: timedelta | None = None,
    ) -> tuple[str, PurchaseOffer]:
        """Create a purchase offer (services and licence counts) and its link (F4).

        Every count is checked against the catalogue's bounds. Offers are immutable once
        issued; to change counts, :meth:`supersede_offer`. *delegation_roles* and
        *delegation_duration* set the terms of the delegation offered with it, as for
        :meth:`create_trial_invitation`.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> tuple[str, PurchaseOffer]:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.CREATE_PURCHASE_OFFERS)
            url, offer = self._new_offer(
                uow,
                ctx,
                attempt,
                lines,
                (include_delegated_admin, delegation_roles, delegation_duration),
                expires_in,
                max_uses,
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
        delegation: tuple[bool, object, object],
        expires_in: timedelta | None,
        max_uses: int | None,
    ) -> tuple[str, PurchaseOffer]:
        """A new offer and its link; *delegation* is whether one is included, its roles
        and its duration."""
        _check_bool("include_delegated_admin", delegation[0])
        checked = self._check_lines(lines)
        d_offer = self._included_delegation(uow, ctx, attempt, *delegation)
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
        if isinstance(lines, OfferLine) and not _pretends(lines):
            lines = (lines,)
        if (
            isinstance(lines, str | bytes | Mapping)
            or not isinstance(lines, Iterable)
            or _pretends(lines)
        ):
            raise ValidationError("lines", "must be OfferLine objects")
        # Only so many are read: an endless iterable is refused, not followed for ever.
        given = _first_items(lines, MAX_OFFER_LINES + 1, "lines", "must be OfferLine objects")
        checked = []
        for line in given:
            if not isinstance(line, OfferLine) or _pretends(line):
                raise ValidationError("lines", "must be OfferLine objects")
            if type(line) is not OfferLine:  # of a subclass, its values, judged again
                line = OfferLine(sku=line.sku, licenses=line.licenses)
            self.catalog.get(line.sku).check(line.licenses, f"licenses[{line.sku}]")
            checked.append(line)
        # The PurchaseOffer constructor refuses empty, oversized and repeated lines.
        return tuple(checked)

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
        delegation_roles: Iterable[AdminRole] | AdminRole | None = None,
        delegation_duration: timedelta | None = None,
    ) -> tuple[str, PurchaseOffer]:
        """Issue a new offer that replaces an open one (whose link then stops working).

        By default the new offer includes delegated administration when the old one did,
        on the old one's terms; *delegation_roles* and *delegation_duration* change one
        term or both (the other stays as it was). An end date cannot be taken away this
        way: withdraw the offer and create a new one. The new link's *expires_in* and
        *max_uses* are its own, as for :meth:`create_purchase_offer` (90 days and no limit
        unless given), whatever the old link's were.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> tuple[str, PurchaseOffer]:
            ctx = self._context(uow, attempt, actor, None)
            self._require(ctx, Permission.CREATE_PURCHASE_OFFERS)
            old = self._own_offer(uow, ctx, attempt, offer_id)
            # Judged before the new offer is made: a refusal names no link, nor a quote id,
            # that was never stored.
            old.supersede(old.id)
            include = (
                old.includes_delegated_admin
                if include_delegated_admin is None
                else include_delegated_admin
            )
            roles, duration = delegation_roles, delegation_duration
            if include is True and old.delegation_offer_id is not None:
                # Each term not given is the one the customer was offered before: asking
                # for a shorter duration must not widen the roles back to all five.
                kept = uow.delegation_offers.get(old.delegation_offer_id)
                if kept is None:
                    raise PartnerKitError(
                        f"storage error: the delegation offer of {old.id} is missing"
                    )
                roles = kept.roles if roles is None else roles
                duration = kept.duration if duration is None else duration
            attempt.detail["supersedes"] = old.id
            url, offer = self._new_offer(
                uow, ctx, attempt, lines, (include, roles, duration), expires_in, max_uses
            )
            uow.purchase_offers.update(old.supersede(offer.id))
            self._succeed(uow, attempt)
            return url, offer

        return self._run("offer.supersede", body)

    def _own_offer(
        self, uow: UnitOfWork, ctx: _Context, attempt: _Attempt, offer_id: str
    ) -> PurchaseOffer:
        attempt.target_id = _shown(offer_id)
        offer = uow.purchase_offers.get(offer_id) if isinstance(offer_id, str) else None
        if offer is None or offer.partner_id != ctx.company.id:
            raise NotFound("purchase offer", _shown(offer_id))
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
        # The code of a URL whose code verified is remembered (one link is followed by many
        # customers); the ring remembers the code's verification in turn, and judges its
        # kind and times again at every call (docs/links.md). A plain str only (its type,
        # which a subclass cannot fake as it can __class__): a subclass could claim to equal
        # a URL it is not.
        memory = self._link_codes
        code = memory.get(url) if type(url) is str else None
        if code is not None:
            _used(memory, url)
            return self.keyring.verify(code, now=now)
        code = code_from_url(url)
        claims: LinkClaims = self.keyring.verify(code, now=now)
        _remember(memory, url, code)
        return claims

    def _live_record(self, uow: UnitOfWork, claims: LinkClaims) -> LinkRecord:
        return self._live_link(uow, claims)[0]

    def _live_link(
        self, uow: UnitOfWork, claims: LinkClaims, known: _Known | None = None
    ) -> tuple[LinkRecord, PurchaseOffer | None]:
        """The link's record (and open offer, for an offer link), or why it is dead."""
        record = uow.links.get(claims.link_id) if known is None else known.record
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
        offer = None
        if record.kind is _PURCHASE_OFFER:
            # Read by the claims' target, which the record's equals here.
            offer = uow.purchase_offers.get(record.target) if known is None else known.offer
            if offer is None or offer.status is not _OPEN:
                raise LinkRevoked("the offer was withdrawn or superseded")
        return record, offer

    def inspect_link(self, url: str) -> LinkClaims:
        """Verify a link and return its claims.

        Raises:
            InvalidLink: bad signature or format (one fixed message), or not issued here.
            LinkExpired: past its expiry. LinkRevoked: revoked, or its offer withdrawn.
            LinkExhausted: its ``max_uses`` are spent.
        """
        claims = self._claims(_plain(url), self.now())  # by its text (see portal.py)
        with self.store.unit_of_work(write=False) as uow:
            record = self._live_record(uow, claims)
        if record.max_uses is not None and record.uses >= record.max_uses:
            raise LinkExhausted()
        return claims

    def link_terms(self, url: str) -> LinkTerms:
        """What a link offers, for the page a customer reads before redeeming it: the
        partner's name, the trial or the offer's lines, and the roles and duration of the
        delegated administration a consent would grant (``redeem(...,
        accept_delegated_admin=True)`` grants exactly these, and nothing else).

        Like :meth:`inspect_link`, it takes no actor: whoever holds a link may read what it
        offers. It is not audited, and changes nothing.

        Raises:
            InvalidLink, LinkExpired, LinkRevoked, LinkExhausted: as :meth:`inspect_link`.
            NotFound: a trial invitation whose service the catalogue no longer has.
        """
        claims = self._claims(_plain(url), self.now())  # by its text (see portal.py)
        with self.store.unit_of_work(write=False) as uow:
            record, offer = self._live_link(uow, claims)
            partner = uow.companies.get(record.partner_id)
            offered = record.delegation_offer_id
            terms = None if offered is None else uow.delegation_offers.get(offered)
        if record.max_uses is not None and record.uses >= record.max_uses:
            raise LinkExhausted()
        if partner is None:
            raise InvalidLink()  # a partner no store holds issued nothing here
        if offered is not None and terms is None:
            raise LinkRevoked("the delegation offer is gone")  # as redeem says
        found = LinkTerms(claims=claims, partner_name=partner.name)
        if record.kind is _TRIAL_INVITATION:
            service = self.catalog.get(record.target)
            found = attrs.evolve(found, sku=service.sku, trial=service.trial)
        elif offer is not None:
            found = attrs.evolve(found, quote_id=offer.quote_id, lines=offer.lines)
        if terms is not None:
            found = attrs.evolve(
                found, delegation_roles=terms.roles, delegation_duration=terms.duration
            )
        return found

    def revoke_link(self, actor: User | str, link_id: str) -> None:
        """Revoke a link: it stops working at once (the issuing partner's global admins and
        users with partner access). A purchase offer's link takes its offer with it: an open
        offer is withdrawn, so it can no longer be superseded into a new link. Revoking a
        revoked link changes nothing."""

        def body(uow: UnitOfWork, attempt: _Attempt) -> None:
            ctx = self._context(uow, attempt, actor, None)
            if not ctx.company.is_partner or (
                ctx.actor.admin_role is not AdminRole.GLOBAL_ADMIN
                and ctx.actor.partner_access is None
            ):
                raise Forbidden(Decision(False, Rule.REVOKE_LINK_NEEDS_GLOBAL_ADMIN_OR_ACCESS))
            if type(link_id) is str and "://" in link_id:
                # A link's URL for its id, the easy slip: said so (the URL, which carries the
                # signed code, is not recorded).
                raise ValidationError(
                    "link_id", "is a link's URL; pass its id (portal.inspect_link(url).link_id)"
                )
            attempt.target_id = _shown(link_id)
            record = uow.links.get(link_id) if isinstance(link_id, str) else None
            if record is None or record.partner_id != ctx.company.id:
                raise NotFound("link", _shown(link_id))
            if record.revoked_at is not None:
                return
            uow.links.update(_bump(record, revoked_at=ctx.now, revoked_by=ctx.actor.id))
            attempt.detail["kind"] = record.kind.value
            if record.kind is _PURCHASE_OFFER:
                # The offer goes with its only link: an offer left OPEN behind a dead link
                # read as one that can still be accepted (``OfferStatus``), and could be
                # superseded into a new link, what revoking it was meant to stop.
                offer = uow.purchase_offers.get(record.target)
                if offer is not None and offer.status is _OPEN:
                    uow.purchase_offers.update(offer.withdraw())
                    attempt.detail["withdrew_offer"] = offer.id
            self._succeed(uow, attempt)

        self._run("link.revoke", body)

    def list_links(
        self, actor: User | str, *, limit: int | None = None, after: str | None = None
    ) -> list[IssuedLink]:
        """Return the links the actor's partner issued, each with where it stands now.

        For the partner's global admins and users with partner access, who may revoke
        them: a link that leaked is found here by what it is for and when it was made,
        and revoked by its id, even when nobody kept its URL (the store never holds the
        URL). Every kind: trial invitations, purchase offers and standalone offers of
        delegated administration, with their uses and the terms of the delegated
        administration they offer.

        A link's :class:`~partnerkit.offers.LinkStatus` is judged from the store at the
        Portal's clock: a link signed by a key since removed from the key ring is refused
        as ``InvalidLink``, and a trial of a service the catalogue no longer has as
        ``NotFound``, whatever its status says.

        With *limit* and *after*, one page of it in id order, read from the store's
        index: as :meth:`list_users` pages.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[IssuedLink]:
            ctx = self._context(uow, attempt, actor, None)
            self._require_issuer(ctx)
            records = _listed(uow.links, limit, after, partner_id=ctx.company.id)
            offers = uow.purchase_offers.get_many(
                [r.target for r in records if r.kind is _PURCHASE_OFFER]
            )
            terms = uow.delegation_offers.get_many(
                [r.delegation_offer_id for r in records if r.delegation_offer_id is not None]
            )
            return [_issued(r, offers, terms, ctx.now) for r in records]

        return self._run("link.list", body, write=False)

    def list_offers(
        self, actor: User | str, *, limit: int | None = None, after: str | None = None
    ) -> list[PurchaseOffer]:
        """Return the purchase offers the actor's partner made, open, withdrawn and
        superseded alike (an offer's ``link_id`` is its link in :meth:`list_links`).

        For the partner's global admins and users with partner access. With *limit* and
        *after*, one page of it in id order, read from the store's index: as
        :meth:`list_users` pages.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[PurchaseOffer]:
            ctx = self._context(uow, attempt, actor, None)
            self._require_issuer(ctx)
            return _listed(uow.purchase_offers, limit, after, partner_id=ctx.company.id)

        return self._run("offer.list", body, write=False)

    def _require_issuer(self, ctx: _Context) -> None:
        """What the partner issued is read by its global admins and its users with partner
        access (who may revoke its links), and by nobody of a customer. Anyone else is
        refused for the partner access it lacks."""
        view = self._decide(ctx, Permission.VIEW_PARTNER_OVERVIEW)
        if view or (ctx.company.is_partner and ctx.actor.admin_role is AdminRole.GLOBAL_ADMIN):
            return
        raise Forbidden(view, Permission.VIEW_PARTNER_OVERVIEW)

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
        *licenses* (``{sku: count}``, within the service's bounds), converting a trial of
        the same service (running or expired). A link that offers delegated administration
        records it ``PENDING`` (*accept_delegated_admin* ``None``), consents now (``True``;
        customer global admins only, else ``Forbidden``) or declines it (``False``, from a
        customer global admin; from anyone else it stays ``PENDING``); the purchase stands
        either way.
        Redeeming the same link again for the same customer returns the first result.
        """
        # Read by their text, as every use case reads its arguments (portal.py), here
        # inline: the money path stays one call shorter.
        url, actor = _plain(url), _plain(actor)

        def body(uow: UnitOfWork, attempt: _Attempt) -> Redemption:
            read = self._read_redemption(uow, actor, url, self.now()) if _reads_each(uow) else None
            claims: LinkClaims | None = None
            known: _Known | None = None
            if read is not None:
                user, company, claims, known = read
                attempt.actor = user
            else:
                user = self._actor(uow, actor, attempt)
                company = uow.companies.get(user.company_id)
            assert company is not None
            attempt.company_id = company.id
            attempt.role = _role_label(user, own=True)
            # The time of the decision, read once the first reads are done: on PostgreSQL
            # they waited for the writers' lock, and a link or a delegation may have expired
            # meanwhile (a retry after a Conflict comes back here, and reads it afresh too).
            now = self.now()
            if claims is None:
                claims = self._claims(url, now)
            else:
                check_link_times(claims, now)
            return self._redeem(
                uow,
                attempt,
                claims,
                user,
                company,
                now,
                licenses,
                accept_delegated_admin,
                known=known,
            )

        return self._run("link.redeem", body)

    def _read_redemption(
        self, uow: UnitOfWork, actor: User | str, url: str, now: datetime
    ) -> tuple[User, Company | None, LinkClaims, _Known] | None:
        """The actor, its company, the link's claims and what redeeming the link reads, read
        together (a unit of work with ``get_each``): in one step given the actor as a
        ``User``, whose company is read with the rest (and read again with it, should the
        stored user be in another company), else in two, the actor first.

        ``None`` where the reads one by one must run instead, to fail as they do: an actor
        that is no key or is not stored, a link that does not verify.
        """
        actor_id = _plain(actor if isinstance(actor, str) else getattr(actor, "id", None))
        if not isinstance(actor_id, str):
            return None
        try:
            claims = self._claims(url, now)
        except Exception:  # raised again by the reads one by one, after the actor's checks
            return None
        user: User | None
        # The company the caller's User names, only a hint: it is used when the stored user
        # is in it, compared as a plain string (a subclass would answer == as it likes).
        hint = _plain(actor.company_id) if isinstance(actor, User) else None
        if hint is not None:
            (user, company), known = self._read_link(
                uow, claims, hint, (USERS, actor_id), (COMPANIES, hint)
            )
            if user is None:
                return None
            if user.company_id == hint:
                return user, company, claims, known
        else:
            user = uow.users.get(actor_id)
            if user is None:
                return None
        (company,), known = self._read_link(
            uow, claims, user.company_id, (COMPANIES, user.company_id)
        )
        return user, company, claims, known

    @staticmethod
    def _read_link(
        uow: UnitOfWork, claims: LinkClaims, customer_id: str, *first: tuple[Table[Any], str]
    ) -> tuple[list[Any], _Known]:
        """Read the keys *first*, and what redeeming the link of *claims* for *customer_id*
        reads (see :class:`_Known`), together; the customer's subscriptions only with
        ``find_each``. Returns what *first* found, and the rest."""
        kind = claims.kind
        link_id = claims.link_id
        reads: list[tuple[Table[Any], Any]] = [
            *first,
            (LINKS, link_id),
            (REDEMPTIONS, f"{link_id}:{customer_id}"),
        ]
        offer_link = kind is _PURCHASE_OFFER
        if offer_link:
            reads.append((OFFERS, claims.target))
        finds = (offer_link or kind is _TRIAL_INVITATION) and _finds_each(uow)
        if finds:
            # A purchase or a trial records that the link's partner advises the customer:
            # its relation is among the customer's, read now rather than by key later
            # (the key needs the link's partner, known once the link is read).
            reads.append((SUBSCRIPTIONS, {"customer_id": customer_id}))
            reads.append((RELATIONS, {"customer_id": customer_id}))
            found = uow.find_each(*reads)  # type: ignore[attr-defined]
        else:
            found = uow.get_each(*reads)  # type: ignore[attr-defined]
        n = len(first)
        known = _Known(
            record=found[n],
            redemption=found[n + 1],
            offer=found[n + 2] if offer_link else None,
            subscriptions=found[-2] if finds else None,
            relations=found[-1] if finds else None,
        )
        return found[:n], known

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
        the redemption are one unit of work (all or nothing).

        As :meth:`redeem`, by the new global admin, but *accept_delegated_admin* is
        ``False`` by default (SPEC 3): a delegation the link offers is declined unless the
        sign-up page asked the customer and passes ``True`` (consent now) or ``None`` (left
        ``PENDING``, for the customer's global admins to answer later).
        """
        # Verified before the unit of work, so that a bad link costs the store nothing; its
        # times are judged again inside, at the time of the decision.
        claims = self._claims(url, self.now())

        def body(uow: UnitOfWork, attempt: _Attempt) -> tuple[Company, User, Redemption]:
            # A dead link answers nothing, not even whether an address or a domain is taken:
            # a leaked link its partner revoked must not stay an oracle for the portal's
            # addresses. (A live one answers that, as any sign-up form does.)
            record = self._live_link(uow, claims)[0]
            if record.max_uses is not None and record.uses >= record.max_uses:
                raise LinkExhausted()
            company, admin = self._new_customer(uow, name, domain, admin_email, admin_name, None)
            attempt.company_id = company.id
            attempt.detail["signed_up"] = company.id
            attempt.role = _role_label(admin, own=True)
            known = self._read_link(uow, claims, company.id)[1] if _reads_each(uow) else None
            try:
                now = self.now()  # after the first reads (see redeem)
                check_link_times(claims, now)
                # The new global admin is who acts (and who consents, if it does), as the
                # events of this unit of work record it.
                result = self._redeem(
                    uow,
                    attempt,
                    claims,
                    admin,
                    company,
                    now,
                    licenses,
                    accept_delegated_admin,
                    known=known,
                )
            except BaseException:
                # Nothing of it is kept: no failure is recorded for a user who does not exist.
                attempt.actor = None
                attempt.role = None
                raise
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
        known: _Known | None = None,
    ) -> Redemption:
        if actor_for_audit:
            attempt.actor = user
        attempt.target_id = claims.link_id
        attempt.detail["kind"] = claims.kind._value_  # not .value: a property, slower
        if accept is not None and type(accept) is not bool:
            raise ValidationError("accept_delegated_admin", "must be True, False or None")
        if company.is_partner:
            raise Forbidden(Decision(False, Rule.PARTNER_USERS_NEVER_REDEEM))
        record, offer = self._live_link(uow, claims, known)
        kind = record.kind
        if kind is _TRIAL_INVITATION and user.admin_role is None:
            raise Forbidden(Decision(False, Rule.TRIAL_NEEDS_ADMIN_ROLE))
        if kind is _PURCHASE_OFFER:
            self._require_own(user, company, _PURCHASE)
        offers_delegation = record.delegation_offer_id is not None
        if accept is True:
            if not offers_delegation:
                raise ValidationError(
                    "accept_delegated_admin", "this link offers no delegated administration"
                )
            self._require_own(user, company, _MANAGE_RELATIONSHIPS)
        elif accept is False and offers_delegation and not _may_decide(user, company):
            # Only a global admin of the customer accepts or declines (SPEC F2): anyone else
            # who buys through the link leaves the delegation pending, for them to decide.
            accept = None

        # Bad input is refused even when the redemption turns out to be a replay.
        if licenses is not None and offer is None:
            raise ValidationError("licenses", "only purchase offers take licence counts")
        counts = self._adjusted_counts(offer, licenses) if offer is not None else {}

        redemption_id = f"{record.id}:{company.id}"
        first = uow.redemptions.get(redemption_id) if known is None else known.redemption
        if first is not None:
            replayed = self._replay(uow, first, now)
            pending = replayed.delegation
            if accept is not None and pending is not None and pending.status is _PENDING:
                # The same link again, now with the answer of a global admin (the first
                # redemption was by someone who could not give it; anyone else's False
                # became None above).
                answered = self._answer_later(uow, attempt, pending, user, now, accept)
                return attrs.evolve(replayed, delegation=answered)
            return replayed
        if record.max_uses is not None and record.uses >= record.max_uses:
            raise LinkExhausted()
        if offer is not None:
            # As offered or adjusted, every count a whole number within its service's bounds
            # now: the catalogue may have changed since the offer was made.
            catalog = self.catalog
            for sku, count in counts.items():
                try:
                    catalog.get(sku).check(count, f"licenses[{sku}]")
                except ValidationError as exc:
                    # A count the customer gave was judged as input already: this is the
                    # offer's own, within the bounds of its day.
                    raise InvalidState(
                        exc.field, f"{exc.message}: the service's bounds changed since the offer"
                    ) from None

        subscribed = known.subscriptions if known is not None else None
        if kind is _TRIAL_INVITATION:
            subscriptions: tuple[Subscription, ...] = (
                self._start_trial(uow, record, company, now, subscribed),
            )
        elif offer is not None:
            subscriptions = self._buy(uow, record, offer, company, counts, now, subscribed)
        else:
            subscriptions = ()

        delegation = None
        if offers_delegation:
            delegation = self._offered_delegation(uow, attempt, record, user, company, now, accept)
        uow.links.update(_bump(record, uses=record.uses + 1))
        uow.redemptions.add(
            _build_redemption(
                id=redemption_id,
                link_id=record.id,
                customer_id=company.id,
                subscription_ids=tuple([s.id for s in subscriptions]),
                delegation_id=delegation.id if delegation is not None else None,
                redeemed_by=user.id,
                redeemed_at=now,
            )
        )
        if subscriptions:
            # The relation as read with the link, unless an accepted delegation of this
            # redemption may have written it since (``_offered_delegation``).
            related = (
                known.relations
                if known is not None and (delegation is None or delegation.status is not _ACTIVE)
                else None
            )
            self._relate(uow, record.partner_id, company, advises=True, known=related)
        attempt.detail.update(
            partner_id=record.partner_id,
            subscriptions=";".join(
                [f"{s.sku}={s.licenses}:{s.status._value_}" for s in subscriptions]
            ),
            delegation=delegation.status.value if delegation is not None else "none",
        )
        self._succeed(uow, attempt)
        return _build_result(subscriptions=subscriptions, delegation=delegation)

    def _answer_later(
        self,
        uow: UnitOfWork,
        attempt: _Attempt,
        pending: Delegation,
        user: User,
        now: datetime,
        accept: bool,
    ) -> Delegation:
        """Accept or decline *pending*, the delegation a redemption of the same link left
        pending, as ``accept_delegation`` or ``decline_delegation`` would (the caller checked
        that *user* may): when accepting, the active one of the partner and customer instead,
        if there is one already."""
        if accept:
            active = self._active_delegation(uow, pending.partner_id, pending.customer_id, now)
            if active is not None:
                return active
            decided = pending.accept(user.id, now)
        else:
            decided = pending.decline(user.id, now)
        uow.delegations.update(decided)
        if accept:
            company = uow.companies.get(pending.customer_id)
            assert company is not None
            self._relate(uow, decided.partner_id, company, delegation=decided)
        action = "delegation.accept" if accept else "delegation.decline"
        step = attrs.evolve(attempt, action=action, detail=_roles_of(decided) if accept else {})
        step.target_id = decided.id
        step.delegation_id = decided.id
        self._succeed(uow, step)
        return decided

    @staticmethod
    def _require_own(user: User, company: Company, permission: Permission) -> None:
        decision = decide(user, permission, company.id, company_is_partner=company.is_partner)
        if not decision:
            raise Forbidden(decision, permission)

    def _replay(self, uow: UnitOfWork, first: RedemptionRecord, now: datetime) -> Redemption:
        if _reads_each(uow):
            # The subscriptions and the delegation in one step.
            found = uow.get_each(  # type: ignore[attr-defined]
                *[(SUBSCRIPTIONS, i) for i in first.subscription_ids],
                *([(DELEGATIONS, first.delegation_id)] if first.delegation_id else []),
            )
            delegation = found.pop() if first.delegation_id else None
            subs = tuple(s.as_of(now) for s in found if s is not None)
            return Redemption(
                subscriptions=subs,
                delegation=delegation.as_of(now) if delegation is not None else None,
            )
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
        self,
        uow: UnitOfWork,
        record: LinkRecord,
        company: Company,
        now: datetime,
        subscribed: list[Subscription] | None = None,
    ) -> Subscription:
        service = self.catalog.get(record.target)
        existing = _subscribed(uow, company, service.sku, subscribed)
        if existing:
            if existing[0].status is SubscriptionStatus.TRIAL:
                raise InvalidState("sku", "one trial per customer per service")
            raise InvalidState("sku", f"the customer already subscribes to {service.sku}")
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
        offer: PurchaseOffer,
        company: Company,
        counts: Mapping[str, int],
        now: datetime,
        subscribed: list[Subscription] | None = None,
    ) -> tuple[Subscription, ...]:
        bought = []
        for line in offer.lines:
            count = counts[line.sku]
            existing = _subscribed(uow, company, line.sku, subscribed)
            if existing:
                current = existing[0]
                if current.status is not SubscriptionStatus.TRIAL:
                    raise InvalidState(
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
                if current.partner_id is not None and current.partner_id != record.partner_id:
                    # Another partner's trial: its partner may advise this customer no more.
                    self._unrelate_advice(uow, current.partner_id, company.id)
            else:
                sub = _build_subscription(
                    id=new_id("sub"),
                    customer_id=company.id,
                    sku=line.sku,
                    licenses=count,
                    status=_ACTIVE_SUBSCRIPTION,
                    partner_id=record.partner_id,
                    advisor_id=record.advisor_id,
                    created_at=now,
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
        if not isinstance(licenses, Mapping) or _pretends(licenses):
            raise ValidationError("licenses", _COUNTS_MESSAGE)
        # One more than the offer's lines is enough to see one that is not among them. Read
        # by its keys and items as a Mapping reads them, not by an items() of its own.
        pairs = _first_items(ItemsView(licenses), len(counts) + 1, "licenses", _COUNTS_MESSAGE)
        for pair in pairs:
            # A mapping's items are pairs; those of a mapping class of the caller's own
            # might not be, and are refused as a value of the wrong kind.
            if type(pair) is not tuple or len(pair) != 2:
                raise ValidationError("licenses", _COUNTS_MESSAGE)
            given, count = pair
            if not issubclass(type(given), str):  # by its type: a __class__ can claim str
                raise ValidationError("licenses", _COUNTS_MESSAGE)
            sku = _plain(given)  # its text: its own __format__ or __eq__ never run
            if sku not in counts:
                raise ValidationError("licenses", f"the offer has no line for {_shown(sku)}")
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
        # As accept_delegation records it: the roles granted and the end date they have now.
        answer = _roles_of(decided) if accept else {}
        step = attrs.evolve(
            step, action="delegation.accept" if accept else "delegation.decline", detail=answer
        )
        self._append(uow, step, "success", None)
        if accept:
            self._relate(uow, record.partner_id, company, delegation=decided)
        return decided

    # -- F4: subscriptions ---------------------------------------------------------------

    def change_licenses(
        self,
        actor: User | str,
        subscription_id: str,
        licenses: int,
        *,
        expected_version: int | None = None,
    ) -> Subscription:
        """Change a subscription's licence count within its service's bounds.

        For the customer's billing and global admins, or a partner user through a
        delegation that grants ``MANAGE_SUBSCRIPTIONS``. With *expected_version*, a
        subscription changed since that version is refused (``StaleVersion``), as
        :meth:`update_profile` takes it.
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> Subscription:
            sub = (
                uow.subscriptions.get(subscription_id) if isinstance(subscription_id, str) else None
            )
            ctx = self._locate(
                uow,
                attempt,
                actor,
                sub.customer_id if sub is not None else None,
                Permission.MANAGE_SUBSCRIPTIONS,
                NotFound("subscription", _shown(subscription_id)),
                known_to=sub.partner_id if sub is not None else None,
            )
            assert sub is not None
            count = self.catalog.get(sub.sku).check(licenses)
            _check_expected(sub, expected_version, "subscription")
            changed = sub.as_of(ctx.now).with_licenses(count)
            changed = attrs.evolve(changed, status=sub.status)
            uow.subscriptions.update(changed)
            attempt.detail.update(sku=sub.sku, licenses=count, was=sub.licenses)
            self._succeed(uow, attempt)
            return changed

        return self._run("subscription.change_licenses", body)

    def list_subscriptions(
        self,
        actor: User | str,
        company_id: str | None = None,
        *,
        customer_id: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> list[Subscription]:
        """Return a customer's subscriptions, or those a partner advises, as of now.

        A partner's list with *customer_id* holds only the subscriptions it advises of that
        customer: what a partner's user with partner access may read of a customer it
        advises, with or without a delegation (a customer's whole list, through a
        delegation, is ``list_subscriptions(actor, customer_id)``, the company acted in).
        A customer id of no customer the partner advises gives an empty list.

        With *limit* and *after*, one page of it in id order, read from the store's
        index: as :meth:`list_users` pages.

        Raises:
            ValidationError: *customer_id* that is not text, or given for a customer's
                own list (``customer_id``).
        """

        def body(uow: UnitOfWork, attempt: _Attempt) -> list[Subscription]:
            ctx = self._context(uow, attempt, actor, company_id)
            if ctx.company.is_partner:
                self._require(ctx, Permission.VIEW_PARTNER_OVERVIEW)
                partner_id = ctx.company.id
                if customer_id is None:
                    found = _listed(uow.subscriptions, limit, after, partner_id=partner_id)
                else:  # one customer holds a subscription a service at most: a few
                    found = _listed_few(
                        uow.subscriptions,
                        limit,
                        after,
                        lambda s: s.partner_id == partner_id,
                        customer_id=_customer_filter(customer_id),
                    )
            else:
                self._require(ctx, Permission.MANAGE_SUBSCRIPTIONS)
                if customer_id is not None:
                    raise ValidationError("customer_id", "narrows a partner's list only")
                found = _listed(uow.subscriptions, limit, after, customer_id=ctx.company.id)
            return [s.as_of(ctx.now) for s in found]

        return self._run("subscription.list", body, write=False)
