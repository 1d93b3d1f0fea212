"""The money path: services, trials, purchase offers, subscriptions and licence counts (F3, F4).

Licence counts are whole numbers (``int``, never ``bool``) between a service's minimum (at
least 1) and maximum (at most 1,000,000). :func:`check_licenses` is the one check, used by
every boundary: the constructors here, offer creation against the catalogue, the customer's
adjustment at redemption, ``change_licenses``, and the stores (which add SQL ``CHECK``
constraints as a last line of defence).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from partnerkit._time import later
from partnerkit.errors import (
    InvalidState,
    NotFound,
    ValidationError,
    _plain,
    _plain_str,
    _pretends,
    _shown,
)

if TYPE_CHECKING:
    from partnerkit.consent import Delegation
    from partnerkit.links import LinkClaims, LinkKind
    from partnerkit.roles import AdminRole

__all__ = [
    "MAX_LICENSES",
    "MIN_LICENSES",
    "Catalog",
    "IssuedLink",
    "LinkStatus",
    "LinkTerms",
    "OfferLine",
    "OfferStatus",
    "PurchaseOffer",
    "Redemption",
    "Service",
    "Subscription",
    "SubscriptionStatus",
    "TrialInvitation",
    "TrialTerms",
    "check_licenses",
]

#: The bounds no service may exceed.
MIN_LICENSES = 1
MAX_LICENSES = 1_000_000
MAX_TRIAL_DAYS = 365
MAX_OFFER_LINES = 50

_SKU = re.compile(r"^[A-Z0-9][A-Z0-9_.-]{0,63}$")


def check_licenses(
    value: object,
    *,
    field: str = "licenses",
    minimum: int = MIN_LICENSES,
    maximum: int = MAX_LICENSES,
) -> int:
    """Return *value* if it is a whole number of licences within bounds.

    Raises:
        ValidationError: for anything else — ``bool``, ``float`` (NaN and whole-valued
            floats too), strings, ``None``, zero, negatives, or numbers out of bounds.
    """
    if type(value) is not int:
        raise ValidationError(field, "must be a whole number (int)")
    if not minimum <= value <= maximum:
        raise ValidationError(field, f"must be between {minimum} and {maximum}")
    return value


def check_sku(value: object, field: str = "sku") -> str:
    """Validate a service code: 1 to 64 upper-case letters, digits, ``_ . -``."""
    if not isinstance(value, str) or _pretends(value) or not _SKU.match(value):
        raise ValidationError(field, "must be 1-64 characters of A-Z, 0-9, _ . -")
    return str.__str__(value)  # of a subclass, its text


def _v_licenses(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_licenses(value, field=attribute.name)


def _v_sku(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_sku(value, attribute.name)


def _v_trial_days(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 1 <= value <= MAX_TRIAL_DAYS:
        raise ValidationError(attribute.name, f"must be a whole number from 1 to {MAX_TRIAL_DAYS}")


@attrs.frozen
class TrialTerms:
    """What a service's trial gives: how many days, how many licences."""

    days: int = attrs.field(validator=_v_trial_days)
    licenses: int = attrs.field(validator=_v_licenses)


def _fields_of(
    what: str, item: object, cls: type[Any], required: tuple[str, ...]
) -> dict[str, Any]:
    """The fields of a description of *cls*, each of them one of *cls*'s, the *required*
    ones present; else a ``ValidationError`` on ``catalog`` that says which (*what*)."""
    if not isinstance(item, Mapping) or _pretends(item):
        raise ValidationError("catalog", f"{what} must be an object of fields")
    known = {field.name for field in attrs.fields(cls)}
    fields = {}
    for name, value in item.items():
        # A name by its text: no __eq__ or __hash__ of its own makes it one of the fields.
        text = str.__str__(name) if issubclass(type(name), str) else None
        if text is None or text not in known:
            raise ValidationError("catalog", f"{what} has an unknown field {_shown(name)!r}")
        fields[text] = value
    for name in required:
        if name not in fields:
            raise ValidationError("catalog", f"{what} has no {name!r}")
    return fields


def _service_from_dict(position: int, item: object) -> Service:
    sku = item.get("sku") if isinstance(item, Mapping) and not _pretends(item) else None
    what = f"service {position}" + (f" ({_shown(sku)})" if issubclass(type(sku), str) else "")
    fields = _fields_of(what, item, Service, ("sku", "name"))
    try:
        trial = fields.pop("trial", None)
        if trial is not None:
            fields["trial"] = TrialTerms(
                **_fields_of(f"{what}'s trial", trial, TrialTerms, ("days", "licenses"))
            )
        return Service(**fields)
    except ValidationError as exc:
        if exc.field == "catalog":
            raise
        raise ValidationError(exc.field, f"{exc.message} ({what})") from None


def _v_service(inst: Service, _attribute: attrs.Attribute[Any], _value: object) -> None:
    if inst.min_licenses > inst.max_licenses:
        raise ValidationError("max_licenses", "must not be below min_licenses")
    trial = inst.trial
    if trial is not None:
        if not isinstance(trial, TrialTerms) or _pretends(trial):
            raise ValidationError("trial", "must be TrialTerms or None")
        check_licenses(
            trial.licenses,
            field="trial.licenses",
            minimum=inst.min_licenses,
            maximum=inst.max_licenses,
        )


def _v_name(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or _pretends(value):
        raise ValidationError(attribute.name, "must be 1 to 100 characters")
    text = str.__str__(value)  # of a subclass, its text: none of its own methods judge it
    if not text.strip() or len(text) > 100:
        raise ValidationError(attribute.name, "must be 1 to 100 characters")
    if not text.isprintable():  # control characters, lone surrogates
        raise ValidationError(attribute.name, "must be printable text")


@attrs.frozen
class Service:
    """A service of the catalogue that partners may offer."""

    sku: str = attrs.field(validator=_v_sku)
    name: str = attrs.field(validator=_v_name)
    min_licenses: int = attrs.field(default=MIN_LICENSES, validator=_v_licenses)
    max_licenses: int = attrs.field(default=MAX_LICENSES, validator=_v_licenses)
    #: The trial the service offers, if any.
    trial: TrialTerms | None = attrs.field(default=None, validator=_v_service)

    def check(self, licenses: object, field: str = "licenses") -> int:
        """Validate a licence count against this service's bounds."""
        return check_licenses(
            licenses, field=field, minimum=self.min_licenses, maximum=self.max_licenses
        )


class Catalog:
    """The services on offer, by sku.

    >>> catalog = Catalog([Service(sku="EXCHANGE", name="Exchange Online")])
    >>> catalog.get("EXCHANGE").name
    'Exchange Online'
    """

    def __init__(self, services: Iterable[Service] = ()) -> None:
        by_sku: dict[str, Service] = {}
        if isinstance(services, str | bytes | Mapping) or not isinstance(services, Iterable):
            raise ValidationError("services", "must be Service objects")
        if _pretends(services):
            raise ValidationError("services", "must be Service objects")
        try:
            given = iter(services)
        except TypeError:  # an __iter__ that gives no iterator
            raise ValidationError("services", "must be Service objects") from None
        for service in given:
            if not isinstance(service, Service) or _pretends(service):
                raise ValidationError("services", "must be Service objects")
            if service.sku in by_sku:
                raise ValidationError("sku", f"{service.sku} appears twice")
            by_sku[service.sku] = service
        self._services = by_sku

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Catalog:
        """Build a catalogue from ``{"services": [{"sku": ..., "name": ..., ...}]}``.

        Each service has ``sku`` and ``name``, and may have ``min_licenses``,
        ``max_licenses`` and ``trial`` (``{"days": ..., "licenses": ...}``).

        Raises:
            ValidationError: what is wrong and, in its message, which service (by its
                position from 1, and its sku when it has one).
        """
        if not isinstance(data, Mapping) or _pretends(data) or "services" not in data:
            raise ValidationError("catalog", 'must be a mapping with "services"')
        items = data["services"]
        if not issubclass(type(items), list | tuple):
            raise ValidationError("catalog", "services must be a list")
        return cls([_service_from_dict(position, item) for position, item in enumerate(items, 1)])

    @classmethod
    def from_json(cls, text: str) -> Catalog:
        """Build a catalogue from JSON text (see :meth:`from_dict`)."""
        given: object = text
        source: str | bytes
        if isinstance(given, str) and issubclass(type(given), str):
            source = str.__str__(given)  # of a subclass, its text: none of its methods runs
        elif isinstance(given, bytes | bytearray) and issubclass(type(given), bytes | bytearray):
            source = bytes(memoryview(given))  # its bytes, through the buffer: no method of its
        else:
            raise ValidationError("catalog", "must be JSON text")
        try:
            data = json.loads(source)
        except (TypeError, ValueError, RecursionError) as exc:  # nested past what json reads
            raise ValidationError("catalog", "is not valid JSON") from exc
        if not isinstance(data, dict):
            raise ValidationError("catalog", "must be a JSON object")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Return the description :meth:`from_dict` reads."""
        return {"services": [attrs.asdict(s) for s in self._services.values()]}

    def get(self, sku: str) -> Service:
        """Return the service *sku*; ``NotFound`` if the catalogue has none."""
        sku = _plain(sku)
        service = self._services.get(sku) if type(sku) is str else None
        if service is None:
            raise NotFound("service", _shown(sku))
        return service

    def __contains__(self, sku: object) -> bool:
        # By its text: anything else (a list, an object equal to every sku) is no sku here.
        return issubclass(type(sku), str) and str.__str__(sku) in self._services

    def __iter__(self) -> Iterator[Service]:
        return iter(self._services.values())

    def __len__(self) -> int:
        return len(self._services)

    def __repr__(self) -> str:
        return f"Catalog({sorted(self._services)!r})"


@attrs.frozen
class OfferLine:
    """One line of a purchase offer: a service and a number of user licences."""

    sku: str = attrs.field(converter=_plain_str, validator=_v_sku)
    licenses: int = attrs.field(validator=_v_licenses)


class OfferStatus(enum.Enum):
    """Whether an offer can still be accepted."""

    __hash__ = object.__hash__  # identity: as roles.py explains, C instead of Python

    OPEN = "open"
    WITHDRAWN = "withdrawn"
    SUPERSEDED = "superseded"


def _v_lines(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, tuple) or not value or len(value) > MAX_OFFER_LINES:
        raise ValidationError("lines", f"must be 1 to {MAX_OFFER_LINES} offer lines")
    if not all(isinstance(line, OfferLine) for line in value):
        raise ValidationError("lines", "must be OfferLine objects")
    if len({line.sku for line in value}) != len(value):
        raise ValidationError("lines", "each service may appear once")


@attrs.frozen
class PurchaseOffer:
    """A partner's offer to sell services; immutable once issued but for its status."""

    id: str
    #: The quote id shown to the customer.
    quote_id: str
    partner_id: str
    advisor_id: str
    lines: tuple[OfferLine, ...] = attrs.field(validator=_v_lines)
    includes_delegated_admin: bool
    #: The delegation offer the link carries, when it includes delegated administration.
    delegation_offer_id: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    link_id: str
    status: OfferStatus = OfferStatus.OPEN
    superseded_by: str | None = None
    version: int = 1

    def line(self, sku: str) -> OfferLine:
        """Return the line for *sku*."""
        for line in self.lines:
            if line.sku == sku:
                return line
        raise NotFound("offer line", sku)

    def withdraw(self) -> PurchaseOffer:
        """Withdraw an open offer."""
        self._check_open("withdraw")
        return attrs.evolve(self, status=OfferStatus.WITHDRAWN, version=self.version + 1)

    def supersede(self, by_offer_id: str) -> PurchaseOffer:
        """Mark an open offer as superseded by a newer one."""
        self._check_open("supersede")
        return attrs.evolve(
            self,
            status=OfferStatus.SUPERSEDED,
            superseded_by=by_offer_id,
            version=self.version + 1,
        )

    def _check_open(self, what: str) -> None:
        if self.status is not OfferStatus.OPEN:
            raise InvalidState("status", f"cannot {what} a {self.status.value} offer")


@attrs.frozen
class TrialInvitation:
    """A partner's invitation to try one service (what a trial link points to)."""

    id: str
    partner_id: str
    advisor_id: str
    sku: str
    includes_delegated_admin: bool
    delegation_offer_id: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime
    link_id: str
    version: int = 1


class SubscriptionStatus(enum.Enum):
    """Where a subscription stands; a trial past its end reads as ``EXPIRED``."""

    __hash__ = object.__hash__  # identity: as roles.py explains, C instead of Python

    TRIAL = "trial"
    ACTIVE = "active"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


@attrs.frozen
class Subscription:
    """A customer's subscription to one service, naming its advisor partner."""

    id: str
    customer_id: str
    sku: str
    licenses: int = attrs.field(validator=_v_licenses)
    status: SubscriptionStatus
    #: The partner named subscription advisor, and its public code.
    partner_id: str | None
    advisor_id: str | None
    created_at: datetime
    #: When the trial ends (trials only; kept after conversion for the record).
    trial_ends_at: datetime | None = None
    #: The link that created or last converted it.
    source_link_id: str | None = None
    version: int = 1

    def status_at(self, now: datetime) -> SubscriptionStatus:
        """The status at *now*: a trial whose end has passed is expired (no job needed)."""
        if (
            self.status is SubscriptionStatus.TRIAL
            and self.trial_ends_at is not None
            and now >= self.trial_ends_at
        ):
            return SubscriptionStatus.EXPIRED
        return self.status

    def as_of(self, now: datetime) -> Subscription:
        """This subscription with :attr:`status` as it stands at *now* (same version)."""
        status = self.status_at(now)
        return self if status is self.status else attrs.evolve(self, status=status)

    @classmethod
    def trial(
        cls,
        *,
        ident: str,
        customer_id: str,
        service: Service,
        partner_id: str,
        advisor_id: str,
        link_id: str,
        now: datetime,
    ) -> Subscription:
        """Start *service*'s trial for a customer.

        Raises:
            InvalidState: the service offers no trial (now: a trial link names a service
                that offered one when it was issued).
        """
        terms = service.trial
        if terms is None:
            raise InvalidState("sku", f"{service.sku} offers no trial")
        return cls(
            id=ident,
            customer_id=customer_id,
            sku=service.sku,
            licenses=terms.licenses,
            status=SubscriptionStatus.TRIAL,
            partner_id=partner_id,
            advisor_id=advisor_id,
            created_at=now,
            trial_ends_at=later(now, timedelta(days=terms.days), "trial", "the trial"),
            source_link_id=link_id,
        )

    def convert(
        self, *, licenses: int, partner_id: str, advisor_id: str, link_id: str
    ) -> Subscription:
        """Turn a trial (running or expired) into a paid subscription."""
        if self.status is not SubscriptionStatus.TRIAL:
            raise InvalidState("sku", f"{self.sku} is not on trial")
        return attrs.evolve(
            self,
            licenses=licenses,
            status=SubscriptionStatus.ACTIVE,
            partner_id=partner_id,
            advisor_id=advisor_id,
            source_link_id=link_id,
            version=self.version + 1,
        )

    def with_licenses(self, licenses: int) -> Subscription:
        """Change the licence count of an active subscription."""
        if self.status is not SubscriptionStatus.ACTIVE:
            raise InvalidState("status", f"a {self.status.value} subscription cannot change")
        return attrs.evolve(self, licenses=licenses, version=self.version + 1)


@attrs.frozen
class Redemption:
    """What redeeming a link produced: its subscriptions and its delegation, if any."""

    subscriptions: tuple[Subscription, ...] = ()
    delegation: Delegation | None = None


@attrs.frozen
class LinkTerms:
    """What a link offers, for the page a customer reads before redeeming it
    (:meth:`Portal.link_terms <partnerkit.portal.Portal.link_terms>`): who the partner is,
    what the customer gets, and the delegated administration it would consent to."""

    #: The link's verified claims, as :meth:`Portal.inspect_link` gives them.
    claims: LinkClaims
    #: The name of the partner that issued it: the subscriptions' advisor, and the company
    #: a consent would give administration of the customer to.
    partner_name: str
    #: A trial invitation's service (``None`` for other links).
    sku: str | None = None
    #: That service's trial: its licences and days (``None`` for other links).
    trial: TrialTerms | None = None
    #: A purchase offer's quote id and lines, with the counts offered (``None`` and ``()``
    #: for other links); the customer may adjust each count within the service's bounds.
    quote_id: str | None = None
    lines: tuple[OfferLine, ...] = ()
    #: The admin roles a consent would grant the partner's users: ``None`` when the link
    #: offers no delegated administration.
    delegation_roles: frozenset[AdminRole] | None = None
    #: How long such a delegation would last from the consent; ``None``: no end date.
    delegation_duration: timedelta | None = None


class LinkStatus(enum.Enum):
    """Where a link a partner issued stands (:class:`IssuedLink`): what a customer who has
    not redeemed it yet would be told on redeeming it now. The first that applies, in the
    order a redemption judges them."""

    __hash__ = object.__hash__  # identity: as roles.py explains, C instead of Python

    #: It can be redeemed.
    LIVE = "live"
    #: Past its expiry (beyond the clocks' leeway): ``LinkExpired``.
    EXPIRED = "expired"
    #: Revoked by its partner: ``LinkRevoked``.
    REVOKED = "revoked"
    #: A purchase offer's link whose offer was withdrawn or superseded: ``LinkRevoked``.
    WITHDRAWN = "withdrawn"
    #: Its ``max_uses`` are spent: ``LinkExhausted`` (a customer who redeemed it gets its
    #: first result again).
    EXHAUSTED = "exhausted"


@attrs.frozen
class IssuedLink:
    """A link as its partner's list shows it (:meth:`Portal.list_links
    <partnerkit.portal.Portal.list_links>`): what it is for, who issued it, how far it was
    used, and where it stands. The URL itself is not kept anywhere (SPEC: links are
    recorded by their id): a link whose URL was lost can still be found here and revoked."""

    #: The link id: ``LinkClaims.link_id``, what :meth:`Portal.revoke_link` takes.
    id: str
    kind: LinkKind
    partner_id: str
    #: The service's sku (a trial invitation), the purchase offer's id (an offer), or the
    #: delegation offer's id (a standalone offer of delegated administration).
    target: str
    includes_delegated_admin: bool
    created_by: str
    created_at: datetime
    expires_at: datetime
    #: How many distinct customers may redeem it (``None``: no limit), and how many did.
    max_uses: int | None
    uses: int
    revoked_at: datetime | None
    revoked_by: str | None
    #: Where it stands at the time of the list.
    status: LinkStatus
    #: The admin roles a consent through it grants, and for how long (``None``: no end
    #: date); ``None`` and ``None`` when it offers no delegated administration.
    delegation_roles: frozenset[AdminRole] | None = None
    delegation_duration: timedelta | None = None
