"""Hypothesis strategies for partnerkit's domain objects.

Every strategy here yields values the domain accepts, and that every use case takes: e-mails,
phones, names and domains that pass validation; well-formed ``ContactInfo``, ``Company`` and
``User`` objects; services, catalogues, offer lines and licence counts within their bounds
(and, to test a boundary, :func:`invalid_license_counts`). Use them in your own property
tests::

    from hypothesis import given
    from partnerkit.testing import strategies as pks

    @given(pks.users(company=pks.companies(kind=CompanyKind.CUSTOMER)))
    def test_something(user): ...
"""

from __future__ import annotations

import math
import string
from datetime import UTC, datetime
from typing import Literal, overload

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "partnerkit.testing.strategies needs hypothesis: pip install 'partnerkit[testing]'"
    ) from exc

from partnerkit.directory import MAX_ADDRESS, MAX_NAME, Company, CompanyKind, ContactInfo, User
from partnerkit.offers import (
    MAX_LICENSES,
    MAX_OFFER_LINES,
    MAX_TRIAL_DAYS,
    MIN_LICENSES,
    Catalog,
    OfferLine,
    Service,
    TrialTerms,
)
from partnerkit.roles import AdminRole, PartnerAccess, Permission

__all__ = [
    "addresses",
    "admin_roles",
    "advisor_ids",
    "catalogs",
    "companies",
    "contact_infos",
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
    "services",
    "skus",
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
