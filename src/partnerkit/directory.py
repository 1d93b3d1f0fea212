"""The tenants and their people: companies, contact information, users.

Values are frozen ``attrs`` classes validated on construction: a ``Company`` or ``User`` that
exists is well-formed. Changes make new objects with ``attrs.evolve`` (which validates again)
and a version one higher; the store refuses a stale one.
"""

from __future__ import annotations

import enum
import re
import secrets
from datetime import datetime
from typing import Any

import attrs

from partnerkit._random import random_hex128
from partnerkit.errors import ValidationError, _plain_optional, _plain_str, _pretends
from partnerkit.roles import AdminRole, PartnerAccess

__all__ = [
    "Company",
    "CompanyKind",
    "ContactInfo",
    "User",
    "email_key",
    "new_advisor_id",
    "new_id",
    "new_quote_id",
    "normalize_domain",
]

MAX_NAME = 100
MAX_EMAIL = 254
MAX_ADDRESS = 500
MAX_URL = 2000

_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_PHONE = re.compile(r"^\+?[0-9(][0-9 ().-]{5,28}[0-9]$")
_WEB = re.compile(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[!-~]*)?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f]")
_ADVISOR_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_id(prefix: str) -> str:
    """Return a new random identifier such as ``usr_3f2a...`` (128 random bits)."""
    return f"{prefix}_{random_hex128()}"


def new_advisor_id() -> str:
    """Return a new public advisor code such as ``PA-7KQ2-M9XD`` (about 50 random bits)."""
    chars = "".join(secrets.choice(_ADVISOR_ALPHABET) for _ in range(10))
    return f"PA-{chars[:5]}-{chars[5:]}"


def new_quote_id() -> str:
    """Return a new quote id shown to customers, such as ``Q-7KQ2M9XD4T``."""
    return "Q-" + "".join(secrets.choice(_ADVISOR_ALPHABET) for _ in range(10))


def email_key(email: str) -> str:
    """Return the key under which an e-mail is unique (case-insensitive, ASCII letters).

    Only ASCII addresses are stored (:func:`check_email`), so only ASCII letters are folded:
    text with any other character is its own key, which no stored address has. Unicode case
    folding would make some such text the key of a stored address (``ß`` folds to ``ss``,
    the Kelvin sign and ``ſ`` to ``k`` and ``s``), and a look-up by an address nobody could
    register would find another user. Of a ``str`` subclass, its text's: its own methods
    (which could answer anything) never decide whether two addresses are one.
    """
    text = str.__str__(email)
    return str.lower(text) if str.isascii(text) else text


def normalize_domain(domain: str) -> str:
    """Return *domain* in the form it is stored and compared in (lower case, no final dot)."""
    return domain.strip().rstrip(".").lower()


def _text(field: str, value: object, *, max_len: int, required: bool = True) -> None:
    if not isinstance(value, str) or _pretends(value):
        raise ValidationError(field, "must be a string")
    value = str.__str__(value)  # of a subclass, its text: none of its own methods judge it
    if required and not value.strip():
        raise ValidationError(field, "must not be empty")
    if len(value) > max_len:
        raise ValidationError(field, f"must be at most {max_len} characters")
    if _CONTROL.search(value):
        raise ValidationError(field, "must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(field, "must be valid Unicode text") from None


def check_name(field: str, value: object) -> None:
    """Validate a company or display name (1 to 100 printable characters)."""
    _text(field, value, max_len=MAX_NAME)
    assert isinstance(value, str)
    value = str.__str__(value)
    if value != value.strip():
        raise ValidationError(field, "must not start or end with white space")


#: What a name given now may not hold, beyond what :func:`check_name` refuses: C1 control
#: characters, and the bidirectional embedding, override and isolate characters, with which
#: a name can display as another (a partner's customer list shows "Contoso" for a name
#: stored as something else). Right-to-left names need none of them.
_UNSAFE_IN_NEW_NAME = re.compile("[\x80-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_MESSAGE = (
    "must not contain control characters or bidirectional embedding, override or isolate characters"
)


def check_new_name(field: str, value: object) -> None:
    """Validate a name a caller gives now (a company's name, a user's display name): as
    :func:`check_name`, and without C1 control characters or the bidirectional embedding,
    override and isolate characters (a ``ValidationError`` naming *field*). The
    directional marks (U+200E, U+200F, U+061C) stay allowed: right-to-left text uses them
    to place numbers and punctuation, and each acts as one letter of its direction, not as
    a control over the text that follows it.

    Checked where a name is written, not by the classes: a name stored before the rule
    existed still reads, and its company or user can still be changed.
    """
    check_name(field, value)
    assert isinstance(value, str)
    if _UNSAFE_IN_NEW_NAME.search(str.__str__(value)):
        raise ValidationError(field, _UNSAFE_MESSAGE)


def check_new_contact(contact: ContactInfo) -> None:
    """Validate contact information a caller gives now: its address (shown to customers)
    without C1 control characters or bidirectional embedding, override and isolate
    characters, as :func:`check_new_name` holds names (a ``ValidationError`` on
    ``"address"``). Checked where contact information is written, as names are."""
    address = contact.address
    if address is not None and _UNSAFE_IN_NEW_NAME.search(address):
        raise ValidationError("address", _UNSAFE_MESSAGE)


def check_email(field: str, value: object) -> None:
    """Validate the syntax of an e-mail address."""
    _text(field, value, max_len=MAX_EMAIL)
    assert isinstance(value, str)
    value = str.__str__(value)
    local = value.rsplit("@", 1)[0]
    if len(local) > 64 or not _EMAIL.match(value):
        raise ValidationError(field, "is not a valid e-mail address")


def _v_name(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_name(attribute.name, value)


def _v_email(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_email(attribute.name, value)


def _v_phone(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    _text(attribute.name, value, max_len=30)
    assert isinstance(value, str)
    value = str.__str__(value)
    digits = sum(c.isdigit() for c in value)
    if not _PHONE.match(value) or not 7 <= digits <= 15:
        raise ValidationError(
            attribute.name,
            "is not a valid phone number: 7 to 15 digits, with spaces, dots, dashes or "
            "parentheses between them, and an optional leading +",
        )


def _v_web(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    _text(attribute.name, value, max_len=MAX_URL)
    assert isinstance(value, str)
    if not _WEB.match(value):
        raise ValidationError(attribute.name, "must be an http or https URL")


def _v_address(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, str) or _pretends(value):
        raise ValidationError(attribute.name, f"must be 1 to {MAX_ADDRESS} characters")
    value = str.__str__(value)
    if not value.strip() or len(value) > MAX_ADDRESS:
        raise ValidationError(attribute.name, f"must be 1 to {MAX_ADDRESS} characters")
    if _CONTROL_BUT_LINES.search(value):
        raise ValidationError(attribute.name, "must not contain control characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(attribute.name, "must be valid Unicode text") from None


def _v_id(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    _text(attribute.name, value, max_len=64)


def _v_version(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if type(value) is not int or not 1 <= value < 2**63:  # what a store keeps: 64 bits
        raise ValidationError(attribute.name, "must be a positive int (64 bits)")


def _v_aware(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, datetime) or _pretends(value) or value.utcoffset() is None:
        raise ValidationError(attribute.name, "must be an aware datetime")


def _v_enum(kind: type[enum.Enum], optional: bool) -> Any:
    def check(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None and optional:
            return
        if type(value) is not kind:  # a member's type is its enum: nothing can claim it
            raise ValidationError(attribute.name, f"must be a {kind.__name__}")

    return check


@attrs.frozen
class ContactInfo:
    """Contact information a partner shows its customers (F1)."""

    #: Contact e-mail address.
    email: str = attrs.field(converter=_plain_str, validator=_v_email)
    #: Phone number: digits with an optional leading ``+`` and separators.
    phone: str | None = attrs.field(default=None, converter=_plain_optional, validator=_v_phone)
    #: Web site, an http(s) URL.
    website: str | None = attrs.field(default=None, converter=_plain_optional, validator=_v_web)
    #: Postal address, free text.
    address: str | None = attrs.field(default=None, converter=_plain_optional, validator=_v_address)


def _v_contact(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (not isinstance(value, ContactInfo) or _pretends(value)):
        raise ValidationError(attribute.name, "must be a ContactInfo or None")


class CompanyKind(enum.Enum):
    """Whether a company is a partner (reseller, advisor) or a customer."""

    __hash__ = object.__hash__  # identity: as roles.py explains, C instead of Python

    PARTNER = "partner"
    CUSTOMER = "customer"


_PARTNER = CompanyKind.PARTNER


def _v_company(inst: Company, _attribute: attrs.Attribute[Any], _value: object) -> None:
    if inst.kind is CompanyKind.PARTNER:
        if inst.advisor_id is None or inst.domain is not None:
            raise ValidationError("advisor_id", "a partner has an advisor id and no domain")
        _text("advisor_id", inst.advisor_id, max_len=64)
    else:
        if inst.domain is None or inst.advisor_id is not None:
            raise ValidationError("domain", "a customer has a domain and no advisor id")
        domain = inst.domain
        if not isinstance(domain, str) or _pretends(domain) or not _DOMAIN.match(domain):
            raise ValidationError("domain", "is not a valid lower-case domain name")


@attrs.frozen
class Company:
    """A tenant of the portal: a partner company or a customer company."""

    id: str = attrs.field(validator=_v_id)
    kind: CompanyKind = attrs.field(validator=_v_enum(CompanyKind, optional=False))
    name: str = attrs.field(validator=_v_name)
    #: Contact information (shown to customers for partners).
    contact: ContactInfo | None = attrs.field(
        default=None,
        validator=_v_contact,
    )
    #: A customer's primary domain, unique across the portal.
    domain: str | None = None
    #: A partner's public advisor code, unique across the portal.
    advisor_id: str | None = attrs.field(default=None, validator=_v_company)
    created_at: datetime | None = attrs.field(default=None, validator=_v_aware)
    version: int = attrs.field(default=1, validator=_v_version)

    @property
    def is_partner(self) -> bool:
        """Whether this is a partner company."""
        return self.kind is _PARTNER


def _v_user(inst: User, _attribute: attrs.Attribute[Any], _value: object) -> None:
    if type(inst.must_change_password) is not bool:
        raise ValidationError("must_change_password", "must be a bool")


@attrs.frozen
class User:
    """A person in a company, with its two independent admin settings (F2)."""

    id: str = attrs.field(validator=_v_id)
    company_id: str = attrs.field(validator=_v_id)
    email: str = attrs.field(validator=_v_email)
    display_name: str = attrs.field(validator=_v_name)
    #: Admin access to the user's own company: none or one role.
    admin_role: AdminRole | None = attrs.field(
        default=None, validator=_v_enum(AdminRole, optional=True)
    )
    #: Admin access to companies the user's partner supports (partner users only).
    partner_access: PartnerAccess | None = attrs.field(
        default=None, validator=_v_enum(PartnerAccess, optional=True)
    )
    #: Set by a password reset: the user must choose a new password at next sign-in.
    must_change_password: bool = attrs.field(default=False, validator=_v_user)
    created_at: datetime | None = attrs.field(default=None, validator=_v_aware)
    version: int = attrs.field(default=1, validator=_v_version)

    @property
    def is_privileged(self) -> bool:
        """Whether the user holds partner access (only its own global admins manage it)."""
        return self.partner_access is not None
