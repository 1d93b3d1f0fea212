"""Hypothesis strategies for partnerkit's domain objects.

Every strategy here yields values the domain accepts, and that every use case takes: e-mails,
phones, names and domains that pass validation; well-formed ``ContactInfo``, ``Company`` and
``User`` objects; services, catalogues, offer lines and licence counts within their bounds
(and, to test a boundary, :func:`invalid_license_counts`); and delegations, subscriptions and
service requests in any state of their lifecycles, made by their own transitions, so every
field agrees with the others. Use them in your own property tests::

    from hypothesis import given
    from partnerkit.testing import strategies as pks

    @given(pks.users(company=pks.companies(kind=CompanyKind.CUSTOMER)))
    def test_something(user): ...
"""

from __future__ import annotations

import enum
import math
import string
from datetime import UTC, datetime, timedelta
from typing import Literal, overload

import attrs

try:
    from hypothesis import assume
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "partnerkit.testing.strategies needs hypothesis: pip install 'partnerkit[testing]'"
    ) from exc

from partnerkit.consent import (
    MAX_DURATION,
    MIN_DURATION,
    PENDING_LAPSE,
    Delegation,
    DelegationStatus,
)
from partnerkit.directory import MAX_ADDRESS, MAX_NAME, Company, CompanyKind, ContactInfo, User
from partnerkit.offers import (
    MAX_LICENSES,
    MAX_OFFER_LINES,
    MAX_TRIAL_DAYS,
    MIN_LICENSES,
    Catalog,
    OfferLine,
    Service,
    Subscription,
    SubscriptionStatus,
    TrialTerms,
)
from partnerkit.roles import AdminRole, PartnerAccess, Permission
from partnerkit.support import RequestStatus, ServiceRequest, Severity

__all__ = [
    "addresses",
    "admin_roles",
    "advisor_ids",
    "catalogs",
    "companies",
    "contact_infos",
    "delegations",
    "domains",
    "emails",
    "identifiers",
    "invalid_license_counts",
    "license_counts",
    "names",
    "offer_lines",
    "partner_accesses",
    "permissions",
    "phones",
    "service_requests",
    "services",
    "skus",
    "subscriptions",
    "trial_terms",
    "users",
    "utc_datetimes",
    "websites",
]

_ALNUM_LOWER = string.ascii_lowercase + string.digits
_ALNUM = string.ascii_letters + string.digits
_LOCAL_ATOM = _ALNUM + "!#$%&'*+/=?^_`{|}~-"
_ADVISOR_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
# Printable, and without the bidirectional embedding, override and isolate characters that
# the use cases refuse in a name or an address given now (directory.check_new_name).
_PRINTABLE = st.characters(
    exclude_categories=("Cc", "Cs"),
    exclude_characters="\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
)
_SKU_FIRST = string.ascii_uppercase + string.digits


@st.composite
def _labels(draw: st.DrawFn, alphabet: str, max_size: int = 20) -> str:
    """One DNS label: letters and digits, hyphens only inside."""
    first = draw(st.sampled_from(alphabet))
    if max_size == 1 or draw(st.booleans()):
        return first
    middle = draw(st.text(alphabet + "-", max_size=max_size - 2))
    return first + middle + draw(st.sampled_from(alphabet))


def _domain(alphabet: str, tld_alphabet: str) -> st.SearchStrategy[str]:
    return st.builds(
        lambda labels, tld: ".".join([*labels, tld]),
        st.lists(_labels(alphabet), min_size=1, max_size=3),
        st.text(tld_alphabet, min_size=2, max_size=6),
    )


def domains() -> st.SearchStrategy[str]:
    """Valid customer domains, in the lower-case form a ``Company`` stores."""
    return _domain(_ALNUM_LOWER, string.ascii_lowercase)


def emails() -> st.SearchStrategy[str]:
    """Valid e-mail addresses, in mixed case (uniqueness ignores case)."""
    local = st.lists(st.text(_LOCAL_ATOM, min_size=1, max_size=12), min_size=1, max_size=3).map(
        ".".join
    )
    return st.builds(lambda lp, dom: f"{lp}@{dom}", local, _domain(_ALNUM, string.ascii_letters))


@st.composite
def phones(draw: st.DrawFn) -> str:
    """Valid phone numbers: 7 to 15 digits, an optional ``+``, groups split by separators."""
    digits = draw(st.text(string.digits, min_size=7, max_size=15))
    cuts = draw(st.lists(st.integers(1, len(digits) - 1), max_size=4, unique=True))
    separators = iter(draw(st.lists(st.sampled_from(" -."), min_size=4, max_size=4)))
    out, start = [], 0
    for cut in sorted(cuts):
        out.append(digits[start:cut] + next(separators))
        start = cut
    out.append(digits[start:])
    return ("+" if draw(st.booleans()) else "") + "".join(out)


def names(max_size: int = MAX_NAME) -> st.SearchStrategy[str]:
    """Valid company and display names: printable, trimmed, 1 to *max_size* characters."""
    return st.text(_PRINTABLE, min_size=1, max_size=max_size).map(str.strip).filter(bool)


def websites() -> st.SearchStrategy[str]:
    """Valid web sites: http(s) URLs with an optional port and path."""
    return st.builds(
        lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
        st.sampled_from(["http", "https"]),
        _domain(_ALNUM, string.ascii_letters),
        st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")),
        st.one_of(
            st.just(""),
            st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30).map(
                lambda p: f"/{p}"
            ),
        ),
    )


def addresses() -> st.SearchStrategy[str]:
    """Valid postal addresses: free text, line breaks and tabs allowed."""
    return st.text(_PRINTABLE | st.sampled_from("\n\t"), min_size=1, max_size=MAX_ADDRESS).filter(
        str.strip
    )


def contact_infos() -> st.SearchStrategy[ContactInfo]:
    """Valid ``ContactInfo`` values, each optional part present or not."""
    return st.builds(
        ContactInfo,
        email=emails(),
        phone=st.none() | phones(),
        website=st.none() | websites(),
        address=st.none() | addresses(),
    )


def identifiers(prefix: str) -> st.SearchStrategy[str]:
    """Identifiers shaped like partnerkit's own (``usr_`` and 32 hex digits)."""
    return st.uuids().map(lambda u: f"{prefix}_{u.hex}")


def advisor_ids() -> st.SearchStrategy[str]:
    """Advisor codes shaped like partnerkit's own (``PA-XXXXX-XXXXX``)."""
    return st.text(_ADVISOR_ALPHABET, min_size=10, max_size=10).map(lambda s: f"PA-{s[:5]}-{s[5:]}")


def utc_datetimes() -> st.SearchStrategy[datetime]:
    """Aware UTC datetimes over the whole range of ``datetime``, to the microsecond."""
    return st.datetimes(timezones=st.just(UTC))


@overload
def admin_roles(*, optional: Literal[False]) -> st.SearchStrategy[AdminRole]: ...
@overload
def admin_roles(*, optional: bool = True) -> st.SearchStrategy[AdminRole | None]: ...
def admin_roles(*, optional: bool = True) -> st.SearchStrategy[AdminRole | None]:
    """An admin role, or (if *optional*) none."""
    roles = st.sampled_from(AdminRole)
    return st.none() | roles if optional else roles


@overload
def partner_accesses(*, optional: Literal[False]) -> st.SearchStrategy[PartnerAccess]: ...
@overload
def partner_accesses(*, optional: bool = True) -> st.SearchStrategy[PartnerAccess | None]: ...
def partner_accesses(*, optional: bool = True) -> st.SearchStrategy[PartnerAccess | None]:
    """A partner access, or (if *optional*) none."""
    accesses = st.sampled_from(PartnerAccess)
    return st.none() | accesses if optional else accesses


def permissions() -> st.SearchStrategy[Permission]:
    """Any permission."""
    return st.sampled_from(Permission)


@st.composite
def companies(draw: st.DrawFn, kind: CompanyKind | None = None) -> Company:
    """Valid companies: partners with an advisor id, customers with a domain.

    Args:
        kind: only companies of this kind; both kinds when ``None``.
    """
    chosen = draw(st.sampled_from(CompanyKind)) if kind is None else kind
    partner = chosen is CompanyKind.PARTNER
    return Company(
        id=draw(identifiers("cmp")),
        kind=chosen,
        name=draw(names()),
        contact=draw(st.none() | contact_infos()),
        domain=None if partner else draw(domains()),
        advisor_id=draw(advisor_ids()) if partner else None,
        created_at=draw(st.none() | utc_datetimes()),
        version=draw(st.integers(1, 1_000)),
    )


@st.composite
def users(
    draw: st.DrawFn,
    company: Company | st.SearchStrategy[Company] | None = None,
) -> User:
    """Valid users, with any admin role and (in partner companies only) partner access.

    Args:
        company: the user's company, or a strategy for it. Without one the user belongs to
            a random company id and may hold partner access.
    """
    if isinstance(company, st.SearchStrategy):
        company = draw(company)
    if company is None:
        company_id = draw(identifiers("cmp"))
        may_hold_access = True
    else:
        company_id = company.id
        may_hold_access = company.is_partner
    return User(
        id=draw(identifiers("usr")),
        company_id=company_id,
        email=draw(emails()),
        display_name=draw(names()),
        admin_role=draw(admin_roles()),
        partner_access=draw(partner_accesses()) if may_hold_access else None,
        must_change_password=draw(st.booleans()),
        created_at=draw(st.none() | utc_datetimes()),
        version=draw(st.integers(1, 1_000)),
    )


# -- the catalogue and licence counts (F4) -----------------------------------------------------


def skus() -> st.SearchStrategy[str]:
    """Valid service codes: 1 to 64 of ``A-Z 0-9 _ . -``, starting with a letter or digit."""
    return st.builds(
        str.__add__,
        st.sampled_from(_SKU_FIRST),
        st.text(_SKU_FIRST + "_.-", max_size=63),
    )


@st.composite
def license_counts(
    draw: st.DrawFn,
    service: Service | None = None,
    *,
    minimum: int = MIN_LICENSES,
    maximum: int = MAX_LICENSES,
) -> int:
    """Whole numbers of licences within bounds: *service*'s, else *minimum* to *maximum*.

    The bounds themselves come up often, as they are where mistakes are.
    """
    if service is not None:
        minimum, maximum = service.min_licenses, service.max_licenses
    return draw(st.sampled_from((minimum, maximum)) | st.integers(minimum, maximum))


def invalid_license_counts(
    service: Service | None = None,
    *,
    minimum: int = MIN_LICENSES,
    maximum: int = MAX_LICENSES,
) -> st.SearchStrategy[object]:
    """Values every boundary refuses as a licence count (``ValidationError`` on the field):
    whole numbers just outside the bounds (*service*'s, else *minimum* to *maximum*) and
    far outside them, and what is no ``int`` at all: ``bool``, floats (NaN, infinities and
    whole-valued ones too), numeric strings, ``None``."""
    if service is not None:
        minimum, maximum = service.min_licenses, service.max_licenses
    return st.one_of(
        st.sampled_from([minimum - 1, maximum + 1, 0, -1, 2**63, -(2**63), 10**100]).filter(
            lambda n: not minimum <= n <= maximum
        ),
        st.integers(max_value=minimum - 1),
        st.integers(min_value=maximum + 1),
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([float(minimum), math.nan, math.inf]),
        st.integers(minimum, maximum).map(str),
        st.none(),
    )


@st.composite
def trial_terms(
    draw: st.DrawFn, *, minimum: int = MIN_LICENSES, maximum: int = MAX_LICENSES
) -> TrialTerms:
    """Valid trials: 1 to 365 days, a licence count from *minimum* to *maximum*."""
    return TrialTerms(
        days=draw(st.integers(1, MAX_TRIAL_DAYS)),
        licenses=draw(license_counts(minimum=minimum, maximum=maximum)),
    )


@st.composite
def services(
    draw: st.DrawFn, *, sku: str | st.SearchStrategy[str] | None = None, trial: bool | None = None
) -> Service:
    """Valid services: bounds within 1 to 1,000,000, a trial or none.

    Args:
        sku: the service's code, or a strategy for it (default :func:`skus`).
        trial: only services with a trial (``True``), only without (``False``), or both.
    """
    code = draw(sku) if isinstance(sku, st.SearchStrategy) else sku
    low = draw(license_counts())
    high = draw(license_counts(minimum=low))
    with_trial = draw(st.booleans()) if trial is None else trial
    return Service(
        sku=draw(skus()) if code is None else code,
        name=draw(names().filter(str.isprintable)),  # a service's name is printable text
        min_licenses=low,
        max_licenses=high,
        trial=draw(trial_terms(minimum=low, maximum=high)) if with_trial else None,
    )


@st.composite
def catalogs(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 5) -> Catalog:
    """Catalogues of *min_size* to *max_size* services with distinct codes."""
    codes = draw(st.lists(skus(), min_size=min_size, max_size=max_size, unique=True))
    return Catalog([draw(services(sku=code)) for code in codes])


@st.composite
def offer_lines(
    draw: st.DrawFn, catalog: Catalog | st.SearchStrategy[Catalog] | None = None
) -> tuple[OfferLine, ...]:
    """The lines of a purchase offer that *catalog* (a catalogue, or a strategy for one;
    default :func:`catalogs`) takes: 1 to 50 of its services, each once, with counts
    within its bounds."""
    if catalog is None:
        catalog = catalogs()
    if isinstance(catalog, st.SearchStrategy):
        catalog = draw(catalog)
    offered = draw(
        st.lists(
            st.sampled_from(list(catalog)),
            min_size=1,
            max_size=MAX_OFFER_LINES,
            unique_by=lambda service: service.sku,
        )
    )
    return tuple(OfferLine(s.sku, draw(license_counts(s))) for s in offered)


# -- lifecycles: delegations (F5), subscriptions (F3, F4), service requests (F6) ----------------

#: When a lifecycle's story begins, without ``now=``: far enough from ``datetime``'s ends
#: that every duration, trial and lapse added to it is still a date.
_BEGINNINGS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_MICROSECOND = timedelta(microseconds=1)
#: How long before ``now=`` a story may begin: longer than any story told here (an answer
#: within 90 days, then at most 730 days of delegation; a trial of at most 365 days).
_LONGEST_AGO = timedelta(days=3 * 365)
#: What ``now=`` may be: room for the longest story before it, and its durations after it.
_NOW_FROM, _NOW_TO = datetime(4, 1, 1, tzinfo=UTC), datetime(9995, 1, 1, tzinfo=UTC)


def _within(span: timedelta) -> st.SearchStrategy[timedelta]:
    """A time from none to just under *span* (where each side of the bound is told apart)."""
    return st.sampled_from((timedelta(0), span - _MICROSECOND)) | st.timedeltas(
        timedelta(0), span - _MICROSECOND
    )


def _in_utc(now: object) -> datetime | None:
    """``now=`` in UTC, as the Portal reads its clock (``ValueError`` for what is not an
    aware datetime, or too near either end of ``datetime`` to tell a story before it)."""
    if now is None:
        return None
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValueError(f"now= must be an aware datetime, not {now!r}")
    moment = now.astimezone(UTC)
    if not _NOW_FROM <= moment <= _NOW_TO:
        raise ValueError(f"now= must be from year 4 to year 9994, not {now!r}")
    return moment


def _start(draw: st.DrawFn, now: datetime | None) -> datetime:
    """When a story begins: anywhere in 2000 to 2100, or in the three years before *now*."""
    return draw(_BEGINNINGS) if now is None else now - draw(_within(_LONGEST_AGO))


def _after(draw: st.DrawFn, moment: datetime, span: timedelta, now: datetime | None) -> datetime:
    """A moment from *moment* to just under *moment* + *span*, and never after *now* (which
    *moment* is not after)."""
    if now is not None:
        span = min(span, now - moment + _MICROSECOND)
    return moment + draw(_within(span))


def _checked_status(status: object, kind: type[enum.Enum]) -> None:
    if status is not None and type(status) is not kind:
        raise ValueError(f"status= must be a {kind.__name__} or None, not {status!r}")


@st.composite
def delegations(
    draw: st.DrawFn,
    *,
    status: DelegationStatus | None = None,
    partner_id: str | None = None,
    customer_id: str | None = None,
    now: datetime | None = None,
) -> Delegation:
    """Delegations as the Portal gives them, in any state: offered, then accepted,
    declined, revoked or ended through :class:`~partnerkit.consent.Delegation`'s own
    transitions, and shown as of a time (``as_of``). So every field agrees with the
    others: an acceptance (``accepted_at``, ``accepted_by``) exactly on those once
    accepted, the last decision after it, ``ends_at`` the acceptance plus the duration,
    versions counting the transitions. ``EXPIRED`` is how the Portal shows a pending offer
    past its 90 days or an active delegation past its end date: a store keeps it as it was
    (and the version with it), and so does the object drawn.

    These are values: a store adds objects at version 1 only, so to put a delegation in a
    store, make it through a Portal.

    Args:
        status: only delegations with this status as shown.
        partner_id: the partner's company (default: an id drawn at random).
        customer_id: the customer (default: an id drawn at random).
        now: the time they are shown at (an aware datetime from year 4 to 9994, read in
            UTC as the Portal reads its clock): every event of their story is at or before
            it. Default: a story anywhere in 2000 to 2100, shown as of its last event (or,
            for an expired one, a time after its expiry).
    """
    _checked_status(status, DelegationStatus)
    now = _in_utc(now)
    shown = draw(st.sampled_from(DelegationStatus)) if status is None else status
    # The way to it: (stored status, whether through an acceptance).
    paths = {
        DelegationStatus.PENDING: [(DelegationStatus.PENDING, False)],
        DelegationStatus.ACTIVE: [(DelegationStatus.ACTIVE, True)],
        DelegationStatus.DECLINED: [(DelegationStatus.DECLINED, False)],
        DelegationStatus.REVOKED: [(DelegationStatus.REVOKED, True)],
        DelegationStatus.ENDED: [(DelegationStatus.ENDED, False), (DelegationStatus.ENDED, True)],
        DelegationStatus.EXPIRED: [
            (DelegationStatus.PENDING, False),
            (DelegationStatus.ACTIVE, True),
        ],
    }
    stored, accepted = draw(st.sampled_from(paths[shown]))
    durations = st.timedeltas(MIN_DURATION, MAX_DURATION)
    lapsing = shown is DelegationStatus.EXPIRED and accepted
    duration = draw(durations if lapsing else st.none() | durations)
    if now is None:
        offered_at = draw(_BEGINNINGS)
    elif shown in (DelegationStatus.PENDING, DelegationStatus.ACTIVE):  # still so at now
        offered_at = now - draw(_within(PENDING_LAPSE))
    elif shown is DelegationStatus.EXPIRED:  # lapsed, or past its end, by now
        since = PENDING_LAPSE + (MAX_DURATION if accepted else timedelta(0))
        offered_at = now - since - draw(_within(_LONGEST_AGO - since))
    else:
        offered_at = _start(draw, now)
    delegation = Delegation(
        id=draw(identifiers("dlg")),
        partner_id=draw(identifiers("cmp")) if partner_id is None else partner_id,
        customer_id=draw(identifiers("cmp")) if customer_id is None else customer_id,
        offer_id=draw(identifiers("dof")),
        roles=draw(st.frozensets(st.sampled_from(AdminRole), min_size=1)),
        duration=duration,
        status=DelegationStatus.PENDING,
        offered_at=offered_at,
        offered_by=draw(identifiers("usr")),
    )
    last = offered_at
    if stored is not DelegationStatus.PENDING:
        last = _after(draw, offered_at, PENDING_LAPSE, now)
        customer_admin = draw(identifiers("usr"))
        if stored is DelegationStatus.DECLINED:
            delegation = delegation.decline(customer_admin, last)
        elif not accepted:  # a pending offer the partner ended
            delegation = delegation.end(draw(identifiers("usr")), last)
        else:
            delegation = delegation.accept(customer_admin, last)
            if stored is not DelegationStatus.ACTIVE:
                last = _after(draw, last, duration or MAX_DURATION, now)
                someone = st.sampled_from([customer_admin]) | identifiers("usr")
                if stored is DelegationStatus.REVOKED:
                    delegation = delegation.revoke(draw(someone), last)
                else:
                    delegation = delegation.end(draw(identifiers("usr")), last)
    if now is not None:
        at = now
    elif shown is not DelegationStatus.EXPIRED:
        at = last
    else:  # a time after it expired
        expiry = delegation.ends_at if accepted else offered_at + PENDING_LAPSE
        assert expiry is not None
        at = expiry + draw(_within(MAX_DURATION))
    delegation = delegation.as_of(at)
    assume(delegation.status is shown)  # an active one shown at now= may have ended since
    return delegation


@st.composite
def subscriptions(
    draw: st.DrawFn,
    catalog: Catalog | st.SearchStrategy[Catalog] | None = None,
    *,
    status: SubscriptionStatus | None = None,
    customer_id: str | None = None,
    partner_id: str | None = None,
    advisor_id: str | None = None,
    now: datetime | None = None,
) -> Subscription:
    """Subscriptions as the Portal gives them, to a service of *catalog* (a catalogue, or a
    strategy for one; default :func:`catalogs`), made by
    :class:`~partnerkit.offers.Subscription`'s own transitions: a trial (of a service with
    one), shown ``EXPIRED`` once its end has passed (a store keeps it as ``TRIAL``); a paid
    subscription, bought or converted from a trial (which another partner may have
    advised), its count changed since or not. Counts are within the service's bounds.

    ``CANCELLED`` is drawn only when asked for: no use case sets it (the status is there
    for a portal that records cancellations its billing makes).

    These are values: a store adds objects at version 1 only, so to put a subscription
    past its first version in a store, make it through a Portal.

    Args:
        status: only subscriptions with this status as shown. ``TRIAL`` and ``EXPIRED``
            need a service with a trial: a catalogue given without one is a
            ``ValueError``.
        customer_id: the customer (default: an id drawn at random).
        partner_id: the advisor's company (default: an id drawn at random).
        advisor_id: the advisor's public code (default: one drawn at random).
        now: the time they are shown at (an aware datetime), as for
            :func:`delegations`.
    """
    _checked_status(status, SubscriptionStatus)
    now = _in_utc(now)
    trial_statuses = (SubscriptionStatus.TRIAL, SubscriptionStatus.EXPIRED)
    if catalog is None:
        catalog = draw(catalogs())
        if status in trial_statuses and not _offers_a_trial(catalog):  # give it one
            taken = {service.sku for service in catalog}
            code = draw(skus().filter(lambda sku: sku not in taken))
            catalog = Catalog([*catalog, draw(services(sku=code, trial=True))])
    if isinstance(catalog, st.SearchStrategy):
        catalog = draw(catalog)
    with_trials = [service for service in catalog if service.trial is not None]
    if status is None:
        kinds = [SubscriptionStatus.ACTIVE, *(trial_statuses if with_trials else ())]
        shown = draw(st.sampled_from(kinds))
    else:
        shown = status
    if shown in trial_statuses and not with_trials:
        raise ValueError(f"no service of the catalogue offers a trial to be {shown.value}")
    trialled = shown in trial_statuses or (bool(with_trials) and draw(st.booleans()))
    service = draw(st.sampled_from(with_trials if trialled else list(catalog)))
    partner = draw(identifiers("cmp")) if partner_id is None else partner_id
    advisor = draw(advisor_ids()) if advisor_id is None else advisor_id
    ident = draw(identifiers("sub"))
    customer = draw(identifiers("cmp")) if customer_id is None else customer_id
    if now is not None and service.trial is not None and shown in trial_statuses:
        days = timedelta(days=service.trial.days)
        if shown is SubscriptionStatus.TRIAL:  # still running at now
            started = now - draw(_within(days))
        else:  # over by now
            started = now - days - draw(_within(_LONGEST_AGO - days))
    else:
        started = _start(draw, now)
    if trialled:
        # A converted trial may have been another partner's.
        by_other = shown not in trial_statuses and draw(st.booleans())
        subscription = Subscription.trial(
            ident=ident,
            customer_id=customer,
            service=service,
            partner_id=draw(identifiers("cmp")) if by_other else partner,
            advisor_id=draw(advisor_ids()) if by_other else advisor,
            link_id=draw(identifiers("lnk")),
            now=started,
        )
        if shown not in trial_statuses:
            subscription = subscription.convert(
                licenses=draw(license_counts(service)),
                partner_id=partner,
                advisor_id=advisor,
                link_id=draw(identifiers("lnk")),
            )
    else:
        subscription = Subscription(
            id=ident,
            customer_id=customer,
            sku=service.sku,
            licenses=draw(license_counts(service)),
            status=SubscriptionStatus.ACTIVE,
            partner_id=partner,
            advisor_id=advisor,
            created_at=started,
            source_link_id=draw(identifiers("lnk")),
        )
    if subscription.status is SubscriptionStatus.ACTIVE:
        for _ in range(draw(st.integers(0, 2))):
            subscription = subscription.with_licenses(draw(license_counts(service)))
    if shown is SubscriptionStatus.CANCELLED:  # no transition: see above
        subscription = attrs.evolve(
            subscription, status=SubscriptionStatus.CANCELLED, version=subscription.version + 1
        )
    if now is not None:
        at = now
    elif shown is SubscriptionStatus.EXPIRED:
        assert subscription.trial_ends_at is not None
        at = subscription.trial_ends_at + draw(_within(timedelta(days=MAX_TRIAL_DAYS)))
    else:
        at = started
    subscription = subscription.as_of(at)
    assume(subscription.status is shown)  # the start above makes it so; a guard
    return subscription


def _offers_a_trial(catalog: Catalog) -> bool:
    return any(service.trial is not None for service in catalog)


_REQUEST_TITLES = st.text(
    st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=200
).filter(str.strip)
#: What a description may not hold: control characters but line feed, carriage return and tab.
_C0_C1_BUT_LINES = "".join(
    chr(c) for c in (*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0))
)
_REQUEST_TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters=_C0_C1_BUT_LINES), max_size=10_000
)
_REOPENABLE = (RequestStatus.OPEN, RequestStatus.ATTENTION_NEEDED)


@st.composite
def service_requests(
    draw: st.DrawFn,
    *,
    status: RequestStatus | None = None,
    customer_id: str | None = None,
    on_behalf: bool | None = None,
    delegation: Delegation | None = None,
    now: datetime | None = None,
) -> ServiceRequest:
    """Service requests as a use case writes them (title and description as
    ``create_service_request`` takes them), then changed up to a few times through
    :meth:`~partnerkit.support.ServiceRequest.change` (status and severity, reopened or
    not) to their status; a closed one is changed no more.

    These are values: a store adds objects at version 1 only, so to put a request past
    its first version in a store, make it through a Portal.

    Args:
        status: only requests with this status (default: any).
        customer_id: the customer (default: an id drawn at random).
        on_behalf: only requests a partner raised through a delegation (``True``), only the
            customer's own (``False``), or both.
        delegation: a delegation the request was raised through, while it was active: its
            partner, customer and id (an accepted one: ``ValueError`` otherwise).
        now: every change at or before it (an aware datetime, as for
            :func:`delegations`); default: a story
            anywhere in 2000 to 2100.
    """
    _checked_status(status, RequestStatus)
    now = _in_utc(now)
    through: str | None
    if delegation is not None:
        accepted_at = delegation.accepted_at
        if accepted_at is None:
            raise ValueError("delegation= must be one that was accepted")
        if now is not None and accepted_at > now:
            raise ValueError("delegation= must have been accepted by now=")
        if on_behalf is False or customer_id not in (None, delegation.customer_id):
            raise ValueError("delegation= names the customer, and the request is on behalf")
        customer = delegation.customer_id
        raised_by, through = delegation.partner_id, delegation.id
        # Raised while it was active: before its revocation or end, its end date, now=.
        over = delegation.status in (DelegationStatus.REVOKED, DelegationStatus.ENDED)
        until = delegation.decided_at if over else delegation.ends_at
        if until is None:
            until = now if now is not None else accepted_at + timedelta(days=365)
        if now is not None:
            until = min(until, now)
        span = until - accepted_at
        created_at = accepted_at + (draw(_within(span)) if span > timedelta(0) else span)
    else:
        customer = draw(identifiers("cmp")) if customer_id is None else customer_id
        partner_raised = draw(st.booleans()) if on_behalf is None else on_behalf
        raised_by = draw(identifiers("cmp")) if partner_raised else customer
        through = draw(identifiers("dlg")) if partner_raised else None
        created_at = _start(draw, now)
    request = ServiceRequest(
        id=draw(identifiers("srq")),
        customer_id=customer,
        title=draw(_REQUEST_TITLES),
        description=draw(_REQUEST_TEXT),
        severity=draw(st.sampled_from(Severity)),
        status=RequestStatus.OPEN,
        created_by=draw(identifiers("usr")),
        created_by_company_id=raised_by,
        delegation_id=through,
        created_at=created_at,
        updated_at=created_at,
    )
    wanted = draw(st.sampled_from(RequestStatus)) if status is None else status
    severities = st.none() | st.sampled_from(Severity)
    for _ in range(draw(st.integers(0, 3))):
        request = request.change(
            _after(draw, request.updated_at, timedelta(days=30), now),
            status=draw(st.sampled_from(_REOPENABLE)),
            severity=draw(severities),
        )
    if request.status is not wanted:
        request = request.change(
            _after(draw, request.updated_at, timedelta(days=30), now),
            status=wanted,
            severity=draw(severities),
        )
    return request
