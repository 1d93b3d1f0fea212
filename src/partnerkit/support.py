"""Supporting customers: service requests and password resets (F6).

A password reset yields a one-time temporary password drawn from :mod:`secrets`. It is shown
once, in the returned :class:`PasswordReset`, and never stored, logged, audited or put into
an error: the store keeps only a password-grade hash (scrypt, from ``cryptography``, with its
parameters) in a :class:`Credential`, and the user's change-at-next-sign-in flag is set.
"""

from __future__ import annotations

import base64
import enum
import hmac
import os
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import attrs
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from partnerkit.directory import Company
from partnerkit.errors import InvalidState, ValidationError, _pretends

__all__ = [
    "DEFAULT_TEMPORARY_PASSWORD_LIFETIME",
    "MAX_TEMPORARY_PASSWORD_LIFETIME",
    "MIN_TEMPORARY_PASSWORD_LIFETIME",
    "Credential",
    "CustomerPage",
    "PasswordHasher",
    "PasswordReset",
    "RequestStatus",
    "ServiceRequest",
    "Severity",
    "new_temporary_password",
]

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"


@attrs.frozen
class CustomerPage:
    """One page of a customer search (``Portal.find_customers_page``)."""

    #: The customers of the page, in the search's order.
    companies: tuple[Company, ...]
    #: Pass it as ``cursor`` for the next page; ``None`` when no customer follows.
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        """Whether a customer followed this page when it was read (as ``AuditPage`` says)."""
        return self.next_cursor is not None


TEMPORARY_PASSWORD_LENGTH = 20


def new_temporary_password(length: int = TEMPORARY_PASSWORD_LENGTH) -> str:
    """Return a random password of *length* (at least 16) unambiguous characters."""
    if length < 16:
        raise ValidationError("length", "a temporary password has at least 16 characters")
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


#: The bounds of scrypt's parameters this library takes, in a hasher and in a stored hash:
#: ``n`` a power of two, and at most 1 GiB of memory (``128 * n * r`` bytes) for one hash.
#: Beyond them cryptography refuses, or aborts the process, or allocates without end.
_MAX_N = 2**24
_MAX_R = 64
_MAX_P = 16
_MAX_MEMORY = 2**30


def _scrypt_problem(n: object, r: object, p: object) -> tuple[str, str] | None:
    """The parameter that is wrong, and what is wrong with it; ``None`` when all are right."""
    for name, value, top in (("n", n, _MAX_N), ("r", r, _MAX_R), ("p", p, _MAX_P)):
        if type(value) is not int or not 1 <= value <= top:
            return name, f"must be a whole number from 1 to {top}"
    if not isinstance(n, int) or n < 2 or n & (n - 1):
        return "n", "must be a power of 2, at least 2"
    if not isinstance(r, int) or n >= 2 ** (16 * r):
        return "n", "must be less than 2**(16 * r), scrypt's own bound"
    if not isinstance(r, int) or 128 * n * r > _MAX_MEMORY:
        return "n", "with r, would take more than 1 GiB for one hash (128 * n * r bytes)"
    return None


@attrs.frozen(repr=False)
class PasswordHasher:
    """scrypt with explicit parameters; the hash string carries them, so they can change.

    The defaults (n=2**15, r=8, p=1: 32 MiB and tens of milliseconds a hash) follow current
    guidance for interactive logins; a test suite may pass a smaller ``n``. Parameters
    outside scrypt's sense (``n`` not a power of two, a zero, more than 1 GiB of memory a
    hash) are a ``ValidationError`` here, not an error of cryptography's at the first reset.
    """

    n: int = 2**15
    r: int = 8
    p: int = 1

    def __attrs_post_init__(self) -> None:
        problem = _scrypt_problem(self.n, self.r, self.p)
        if problem is not None:
            raise ValidationError(*problem)

    def hash(self, password: str) -> str:
        """Return ``scrypt$n$r$p$salt$hash`` for *password*.

        Raises:
            ValidationError: *password* is not text, not valid Unicode (a lone surrogate),
                or holds a NUL.
        """
        if not issubclass(type(password), str):  # by its type: a __class__ can claim str
            raise ValidationError("password", "must be text")
        try:
            secret = str.__str__(password).encode("utf-8")  # of a subclass, its text
        except UnicodeEncodeError:
            raise ValidationError("password", "must be valid Unicode text") from None
        if b"\x00" in secret:
            # scrypt keys HMAC with the password, and HMAC pads a short key with zeros: "pw"
            # and "pw\x00" would be one password. None holds a NUL, so none is padded alike.
            raise ValidationError("password", "must not contain NUL")
        salt = os.urandom(16)
        key = Scrypt(salt=salt, length=32, n=self.n, r=self.r, p=self.p).derive(secret)
        return f"scrypt${self.n}${self.r}${self.p}${_b64(salt)}${_b64(key)}"

    @staticmethod
    def verify(password: str, encoded: str) -> bool:
        """Check *password* against a hash made by :meth:`hash` (with any parameters).

        ``False`` for a stored hash that is not one :meth:`hash` could have made (damaged,
        edited, or with parameters out of bounds): a sign-in fails closed, and nothing of
        the hash's own decoding reaches the caller.
        """
        if not issubclass(type(password), str) or not issubclass(type(encoded), str):
            return False  # by their types: a __class__ property can claim str
        password, encoded = str.__str__(password), str.__str__(encoded)  # their texts
        if "\x00" in password:
            return False  # no password :meth:`hash` takes holds one (see there)
        try:
            scheme, n_text, r_text, p_text, salt_text, key_text = encoded.split("$")
            if scheme != "scrypt" or not all(
                t.isascii() and t.isdigit() and len(t) <= 9 for t in (n_text, r_text, p_text)
            ):
                return False
            n, r, p = int(n_text), int(r_text), int(p_text)
            if _scrypt_problem(n, r, p) is not None:
                return False
            salt, key = _unb64(salt_text), _unb64(key_text)
            if len(key) != 32:
                return False
            derived = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(password.encode("utf-8"))
        except (ValueError, TypeError, UnicodeError, MemoryError):
            return False
        return hmac.compare_digest(derived, key)

    def __repr__(self) -> str:
        return f"PasswordHasher(n={self.n}, r={self.r}, p={self.p})"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


#: How long a reset's temporary password signs in, unless the Portal is told otherwise
#: (``Portal(temporary_password_lifetime=...)``, from MIN_ to MAX_TEMPORARY_PASSWORD_LIFETIME).
DEFAULT_TEMPORARY_PASSWORD_LIFETIME = timedelta(days=7)
MIN_TEMPORARY_PASSWORD_LIFETIME = timedelta(minutes=1)
MAX_TEMPORARY_PASSWORD_LIFETIME = timedelta(days=90)


@attrs.frozen
class Credential:
    """What the store keeps of a user's password set by a reset: a hash, never the password."""

    #: The user's id (one credential per user).
    id: str
    company_id: str
    password_hash: str = attrs.field(repr=False)
    set_at: datetime
    set_by: str
    #: The delegation the reset was made through (``None``: by a user of the same
    #: company). The password signs in only while that very delegation stands: not again
    #: under a later consent of the customer.
    delegation_id: str | None = None
    version: int = 1


@attrs.frozen(repr=False)
class PasswordReset:
    """The result of a reset: the temporary password, to be shown once."""

    id: str
    company_id: str
    user_id: str
    reset_by: str
    at: datetime
    #: The one-time temporary password. It is not kept anywhere else.
    temporary_password: str = attrs.field(eq=False)
    must_change_password: bool = True

    def __repr__(self) -> str:
        return f"<PasswordReset {self.id} user={self.user_id} password=***>"


class Severity(enum.Enum):
    """How urgent a service request is."""

    __hash__ = object.__hash__  # identity: as roles.py explains, C instead of Python

    CRITICAL = "critical"
    MODERATE = "moderate"
    MINIMAL = "minimal"


class RequestStatus(enum.Enum):
    """Where a service request stands."""

    __hash__ = object.__hash__  # identity: as roles.py explains, C instead of Python

    OPEN = "open"
    ATTENTION_NEEDED = "attention_needed"
    CLOSED = "closed"


#: Control characters (C0, DEL and C1): none in a title, which is one line.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: The same but for line feed, carriage return and tab, which a description may hold.
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _v_title(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or _pretends(value):
        raise ValidationError(attribute.name, "must be 1 to 200 characters")
    value = str.__str__(value)  # of a subclass, its text: none of its own methods judge it
    if not value.strip() or len(value) > 200:
        raise ValidationError(attribute.name, "must be 1 to 200 characters")
    _check_unicode(attribute.name, value)


def _v_description(_inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or _pretends(value) or len(str.__str__(value)) > 10_000:
        raise ValidationError(attribute.name, "must be text of at most 10,000 characters")
    _check_unicode(attribute.name, value)


def check_request_text(title: str, description: str) -> None:
    """Refuse control characters in a new request's text: none in its title, none but line
    breaks and tabs in its description (a ``ValidationError`` naming the field).

    Checked where a request is written, not by the class: a request stored before the rule
    existed can still be read, updated and closed.
    """
    if _CONTROL.search(title):
        raise ValidationError("title", "must not contain control characters")
    if _CONTROL_BUT_LINES.search(description):
        raise ValidationError(
            "description", "must not contain control characters but line breaks and tabs"
        )


def _check_unicode(field: str, value: str) -> None:
    try:
        str.__str__(value).encode("utf-8")  # of a subclass, its text
    except UnicodeEncodeError:
        raise ValidationError(field, "must be valid Unicode text") from None


def _value_text(value: object) -> str:
    """An enum's value given as text, read by its text (``ValueError`` for anything else:
    none of its own ``__eq__`` or ``__hash__`` picks a member)."""
    if not issubclass(type(value), str):
        raise ValueError(value)
    return str.__str__(value)


def check_severity(value: object) -> Severity:
    """Accept a :class:`Severity` or its value (``"critical"``, ``"moderate"``, ``"minimal"``)."""
    if type(value) is Severity:  # by its type: a __class__ property cannot claim a member
        return value
    try:
        return Severity(_value_text(value))
    except ValueError:
        raise ValidationError("severity", "must be critical, moderate or minimal") from None


def check_request_status(value: object) -> RequestStatus:
    """Accept a :class:`RequestStatus` or its value."""
    if type(value) is RequestStatus:
        return value
    try:
        return RequestStatus(_value_text(value))
    except ValueError:
        raise ValidationError("status", "must be open, attention_needed or closed") from None


@attrs.frozen
class ServiceRequest:
    """A support case of a customer, possibly raised by its partner on its behalf."""

    id: str
    #: The customer the request is about.
    customer_id: str
    title: str = attrs.field(validator=_v_title)
    description: str = attrs.field(validator=_v_description)
    severity: Severity
    status: RequestStatus
    created_by: str
    #: The company of the user who raised it (the partner's, when on behalf).
    created_by_company_id: str
    #: The delegation it was raised through, if on behalf of the customer.
    delegation_id: str | None
    created_at: datetime
    updated_at: datetime
    version: int = 1

    def change(
        self,
        now: datetime,
        *,
        status: RequestStatus | None = None,
        severity: Severity | None = None,
    ) -> ServiceRequest:
        """Update status and/or severity; a closed request stays closed."""
        if self.status is RequestStatus.CLOSED:
            raise InvalidState("status", "a closed service request cannot change")
        return attrs.evolve(
            self,
            status=self.status if status is None else status,
            severity=self.severity if severity is None else severity,
            updated_at=now,
            version=self.version + 1,
        )
