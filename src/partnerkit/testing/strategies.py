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

import math
import string
from datetime import UTC, datetime, timedelta
from typing import Literal, overload

import attrs

try:
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

#: When the lifecycle strategies' objects begin: far enough from ``datetime``'s ends that
#: every duration, trial and lapse added to them is still a date.
_BEGINNINGS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_MICROSECOND = timedelta(microseconds=1)


def _within(span: timedelta) -> st.SearchStrategy[timedelta]:
    """A time from none to just under *span* (where each side of the bound is told apart)."""
    return st.sampled_from((timedelta(0), span - _MICROSECOND)) | st.timedeltas(
        timedelta(0), span - _MICROSECOND
    )


@st.composite
def delegations(
    draw: st.DrawFn,
    *,
    status: DelegationStatus | None = None,
    partner_id: str | None = None,
    customer_id: str | None = None,
) -> Delegation:
    """Delegations in any stored state, each made as the Portal makes it: offered, then
    accepted, declined, revoked, ended or recorded as expired through
    :class:`~partnerkit.consent.Delegation`'s own transitions. So every field agrees with
    the others: an acceptance (``accepted_at``, ``accepted_by``) exactly on those once
    accepted, the last decision after it, ``ends_at`` the acceptance plus the duration,
    versions counting the transitions.

    Args:
        status: only delegations stored with this status (``EXPIRED`` is stored only by
            :meth:`~partnerkit.consent.Delegation.expire`; the Portal judges expiry with the
            clock and leaves the status as it was, see ``status_at``).
        partner_id: the partner's company (default: an id drawn at random).
        customer_id: the customer (default: an id drawn at random).
    """
    chosen = draw(st.sampled_from(DelegationStatus)) if status is None else status
    expires_active = chosen is DelegationStatus.EXPIRED and draw(st.booleans())
    goes_through_active = chosen in (DelegationStatus.ACTIVE, DelegationStatus.REVOKED) or (
        expires_active
        or (chosen is DelegationStatus.ENDED and draw(st.booleans()))  # or ended pending
    )
    roles = draw(st.frozensets(st.sampled_from(AdminRole), min_size=1))
    durations = st.timedeltas(MIN_DURATION, MAX_DURATION)
    duration = draw(durations if expires_active else st.none() | durations)
    offered_at = draw(_BEGINNINGS)
    delegation = Delegation(
        id=draw(identifiers("dlg")),
        partner_id=draw(identifiers("cmp")) if partner_id is None else partner_id,
        customer_id=draw(identifiers("cmp")) if customer_id is None else customer_id,
        offer_id=draw(identifiers("dof")),
        roles=roles,
        duration=duration,
        status=DelegationStatus.PENDING,
        offered_at=offered_at,
        offered_by=draw(identifiers("usr")),
    )
    if chosen is DelegationStatus.PENDING:
        return delegation
    if chosen is DelegationStatus.EXPIRED and not expires_active:  # nobody answered
        return delegation.expire(offered_at + PENDING_LAPSE + draw(_within(PENDING_LAPSE)))
    answered_at = offered_at + draw(_within(PENDING_LAPSE))
    customer_admin = draw(identifiers("usr"))
    if chosen is DelegationStatus.DECLINED:
        return delegation.decline(customer_admin, answered_at)
    if not goes_through_active:  # a pending offer the partner ended
        return delegation.end(draw(identifiers("usr")), answered_at)
    delegation = delegation.accept(customer_admin, answered_at)
    if chosen is DelegationStatus.ACTIVE:
        return delegation
    if chosen is DelegationStatus.EXPIRED:
        assert delegation.ends_at is not None
        return delegation.expire(delegation.ends_at + draw(_within(MAX_DURATION)))
    decided_at = answered_at + draw(_within(duration or MAX_DURATION))
    if chosen is DelegationStatus.REVOKED:
        return delegation.revoke(
            draw(st.sampled_from([customer_admin]) | identifiers("usr")), decided_at
        )
    return delegation.end(draw(identifiers("usr")), decided_at)


@st.composite
def subscriptions(
    draw: st.DrawFn,
    catalog: Catalog | st.SearchStrategy[Catalog] | None = None,
    *,
    status: SubscriptionStatus | None = None,
    customer_id: str | None = None,
    partner_id: str | None = None,
) -> Subscription:
    """Subscriptions to a service of *catalog* (a catalogue, or a strategy for one; default
    :func:`catalogs`) in any stored state: a trial (of a service with one), a paid
    subscription (bought, or a converted trial keeping its trial's end for the record), or
    a cancelled one; counts within the service's bounds, an advisor's id and code.

    Args:
        status: only subscriptions with this status as the Portal gives them (``EXPIRED``
            is a trial as ``list_subscriptions`` shows it once its end has passed: a store
            keeps it as ``TRIAL``, and ``status_at`` judges it).
        customer_id: the customer (default: an id drawn at random).
        partner_id: the advisor's company (default: an id drawn at random).
    """
    if catalog is None:
        catalog = catalogs()
    if isinstance(catalog, st.SearchStrategy):
        catalog = draw(catalog)
    chosen = draw(st.sampled_from(SubscriptionStatus)) if status is None else status
    with_trials = [service for service in catalog if service.trial is not None]
    if chosen in (SubscriptionStatus.TRIAL, SubscriptionStatus.EXPIRED) and not with_trials:
        raise ValueError(f"no service of the catalogue offers a trial to be {chosen.value}")
    trialled = chosen in (SubscriptionStatus.TRIAL, SubscriptionStatus.EXPIRED) or (
        bool(with_trials) and draw(st.booleans())  # a paid or cancelled one was a trial
    )
    service = draw(st.sampled_from(with_trials if trialled else list(catalog)))
    partner = draw(identifiers("cmp")) if partner_id is None else partner_id
    advisor = draw(advisor_ids())
    ident, customer = draw(identifiers("sub")), customer_id or draw(identifiers("cmp"))
    now = draw(_BEGINNINGS)
    if trialled:
        subscription = Subscription.trial(
            ident=ident,
            customer_id=customer,
            service=service,
            partner_id=partner,
            advisor_id=advisor,
            link_id=draw(identifiers("lnk")),
            now=now,
        )
        if chosen in (SubscriptionStatus.TRIAL, SubscriptionStatus.EXPIRED):
            ended = chosen is SubscriptionStatus.EXPIRED
            return attrs.evolve(subscription, status=chosen) if ended else subscription
        subscription = subscription.convert(
            licenses=draw(license_counts(service)),
            partner_id=draw(st.sampled_from([partner]) | identifiers("cmp")),
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
            created_at=now,
            source_link_id=draw(identifiers("lnk")),
        )
    if chosen is SubscriptionStatus.CANCELLED:
        return attrs.evolve(
            subscription, status=SubscriptionStatus.CANCELLED, version=subscription.version + 1
        )
    return subscription


#: What a description may not hold: control characters but line feed, carriage return and tab.
_C0_C1_BUT_LINES = "".join(
    chr(c) for c in (*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0))
)
_REQUEST_TITLES = st.text(
    st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=200
).filter(str.strip)
_REQUEST_TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters=_C0_C1_BUT_LINES),
    max_size=500,
)


@st.composite
def service_requests(
    draw: st.DrawFn,
    *,
    status: RequestStatus | None = None,
    customer_id: str | None = None,
    on_behalf: bool | None = None,
) -> ServiceRequest:
    """Service requests as a use case writes them (title and description as
    ``create_service_request`` takes them), then updated through
    :meth:`~partnerkit.support.ServiceRequest.change` to their status.

    Args:
        status: only requests with this status (default: any).
        customer_id: the customer (default: an id drawn at random).
        on_behalf: only requests a partner raised through a delegation (``True``), only the
            customer's own (``False``), or both.
    """
    customer = draw(identifiers("cmp")) if customer_id is None else customer_id
    partner_raised = draw(st.booleans()) if on_behalf is None else on_behalf
    created_at = draw(_BEGINNINGS)
    request = ServiceRequest(
        id=draw(identifiers("srq")),
        customer_id=customer,
        title=draw(_REQUEST_TITLES),
        description=draw(_REQUEST_TEXT),
        severity=draw(st.sampled_from(Severity)),
        status=RequestStatus.OPEN,
        created_by=draw(identifiers("usr")),
        created_by_company_id=draw(identifiers("cmp")) if partner_raised else customer,
        delegation_id=draw(identifiers("dlg")) if partner_raised else None,
        created_at=created_at,
        updated_at=created_at,
    )
    chosen = draw(st.sampled_from(RequestStatus)) if status is None else status
    if chosen is RequestStatus.OPEN:
        return request
    return request.change(created_at + draw(_within(timedelta(days=365))), status=chosen)
