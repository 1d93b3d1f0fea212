"""The exception tree of partnerkit.

Every error partnerkit raises derives from :class:`PartnerKitError`. The classes mix in the
builtin exception that callers already catch (``NotFound`` is a ``LookupError``,
``ValidationError`` a ``ValueError``), and carry typed fields instead of only a message.
No exception of a dependency (sqlite3, psycopg, itsdangerous, cryptography, binascii, json)
reaches a caller: adapters translate them and chain the cause.
"""

from __future__ import annotations

import itertools
import reprlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from partnerkit.roles import Decision, Permission

__all__ = [
    "AlreadyExists",
    "Conflict",
    "Forbidden",
    "InvalidLink",
    "InvalidState",
    "LinkExhausted",
    "LinkExpired",
    "LinkRevoked",
    "NotFound",
    "PartnerKitError",
    "StaleVersion",
    "StoreUnavailable",
    "ValidationError",
]


class PartnerKitError(Exception):
    """Base class of every error partnerkit raises.

    Every one survives ``pickle`` and ``copy`` with its fields and notes: a worker process
    (``concurrent.futures``, ``multiprocessing``) hands it back to its parent as it is.
    """


class Forbidden(PartnerKitError):
    """The policy denied the request; :attr:`decision` names the rule that denied it."""

    #: The denying decision, with its ``reason``.
    decision: Decision
    #: The permission that was asked for.
    permission: Permission | None

    def __init__(self, decision: Decision, permission: Permission | None = None) -> None:
        self.decision = decision
        self.permission = permission
        what = f"{permission.value}: " if permission is not None else ""
        rule = decision.rule
        super().__init__(f"forbidden: {what}{rule.value} ({rule.explanation})")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.decision, self.permission), self.__dict__


class NotFound(PartnerKitError, LookupError):
    """The object does not exist, or the actor may not know that it exists."""

    #: What kind of object was looked up (``"user"``, ``"company"``, ...).
    kind: str
    #: The identifier that was looked up.
    ident: str

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} not found: {ident!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.kind, self.ident), self.__dict__


class ValidationError(PartnerKitError, ValueError):
    """Input or a business rule was violated; :attr:`field` names what was wrong."""

    #: The name of the offending field or rule (``"email"``, ``"licenses"``, ...).
    field: str
    #: A human-readable explanation.
    message: str

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.field, self.message), self.__dict__


class AlreadyExists(ValidationError):
    """A value that must be unique across the portal is another's already: a user's e-mail
    address, a customer's domain (:attr:`field` names it).

    Well-formed input that clashes with what is stored, where a plain
    :class:`ValidationError` is input that is wrong in itself: a web portal answers this
    one ``409 Conflict`` and that one ``422``. Not a :class:`Conflict`, which is a race to
    retry: asking again gives the same answer.
    """


class InvalidState(ValidationError):
    """A well-formed request that the current state of its objects refuses: a transition
    out of a final status (accepting a revoked delegation, changing a closed service
    request, withdrawing a superseded offer, changing the count of a trial), demoting or
    removing a company's last global admin, a second trial of a service, accepting an offer
    for a service already bought, removing the key that signs.

    :attr:`field` names the rule's subject (``"status"``, ``"sku"``, ...). A web portal
    answers it ``409 Conflict``: the request may succeed once the state differs, never by
    being sent again as it is.
    """


class StaleVersion(InvalidState):
    """An edit made against a version of the object that is no longer the stored one: the
    ``expected_version=`` an edit was given (the version its form was read at) is not the
    object's version now, because someone changed it since. Nothing is written.

    :attr:`field` is ``"expected_version"``. Re-read the object and show the person what
    changed: a web portal answers ``412 Precondition Failed`` to an ``If-Match`` that no
    longer holds, or ``409``. Not a :class:`Conflict`: sent again as it is, it is refused
    again.
    """


class Conflict(PartnerKitError):
    """A concurrent change won (stale version, lock, serialization failure); safe to retry."""

    def __init__(self, message: str = "a concurrent change won; retry") -> None:
        super().__init__(message)


class StoreUnavailable(PartnerKitError):
    """The database could not be reached, or the connection broke during the unit of work.

    Nothing of the unit of work that failed is kept. When ``commit`` itself raises it, the
    commit's outcome is unknown (the server may have committed just before the connection
    broke): re-read before trying again. The next unit of work uses a new connection.
    """


class InvalidLink(PartnerKitError):
    """A link or code is not valid.

    For bad signatures and malformed input the message is always the same, so that an
    attacker learns nothing about which check failed (no oracle).
    """

    FIXED_MESSAGE = "invalid link"

    def __init__(self, message: str = FIXED_MESSAGE) -> None:
        super().__init__(message)


class LinkExpired(InvalidLink):
    """The link's signature is valid but it expired; raised only after the signature checked."""

    def __init__(self, message: str = "link expired") -> None:
        super().__init__(message)


class LinkRevoked(InvalidLink):
    """The link's signature is valid but its issuer revoked it (or what it offers is gone)."""

    def __init__(self, message: str = "link revoked") -> None:
        super().__init__(message)


class LinkExhausted(InvalidLink):
    """The link's signature is valid but its ``max_uses`` are spent."""

    def __init__(self, message: str = "link has no uses left") -> None:
        super().__init__(message)


MAX_SHOWN_ID = 64
_SHOWN_REPR = reprlib.Repr()  # bounded: a huge list is not rendered in full
_SHOWN_REPR.maxlevel = 2
_SHOWN_REPR.maxstring = _SHOWN_REPR.maxother = MAX_SHOWN_ID


def _plain(value: Any) -> Any:
    """An id as a plain ``str`` when it is a ``str`` of a subclass, else as it is.

    A subclass's own ``__eq__`` and ``__hash__`` answer every comparison it takes part in,
    even with a plain string on the left: an id compared with the actor's company, or looked
    up in a dict, would match whatever the subclass says. Ids are compared and looked up only
    once made plain.
    """
    kind = type(value)
    if kind is str or not issubclass(kind, str):
        return value  # (an object that only claims str as its __class__ is no str: as it is)
    return str.__str__(value)


def _pretends(value: object) -> bool:
    """Whether *value*'s ``__class__`` names a class its type is not (nor a subclass of): a
    property, or a proxy, claims a class the object is not. ``isinstance`` believes the
    claim; nothing here does. (A ``str`` subclass that calls itself ``str`` is text all the
    same, and is read by its text.)"""
    kind = type(value)
    try:
        claimed = value.__class__
        return claimed is not kind and not issubclass(kind, claimed)
    except Exception:  # a __class__ that raises, or is no class, claims nothing it can keep
        return True


class _Pretender:
    """What the Portal reads an argument as whose ``__class__`` claims a class it is not
    (:func:`_pretends`): an object of no class a use case takes, so that it is refused as
    any value of the wrong kind is (a ``ValidationError`` naming the argument, audited for
    a known actor), and none of its own methods runs again."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"<a {self.kind} claiming another class>"


_TYPE_NAME = type.__dict__["__name__"]  # a type's own name: no metaclass property answers


def _unpretended(value: object) -> object:
    """*value*, or a :class:`_Pretender` in its place when it pretends."""
    if not _pretends(value):
        return value
    return _Pretender(str.__str__(_TYPE_NAME.__get__(type(value)))[:MAX_SHOWN_ID])


def _first_items(values: object, most: int, field: str, message: str) -> list[Any]:
    """The first *most* items of an iterable argument (an endless one is not followed for
    ever). One that cannot be iterated after all (an ``__iter__`` that is ``None``, or that
    gives something that is no iterator; a mapping class whose items are not in it) is
    refused as any value of the wrong kind is: a ``ValidationError`` of *field*, not
    Python's ``TypeError`` or ``KeyError``."""
    try:
        return list(itertools.islice(iter(values), most))  # type: ignore[call-overload]
    except (TypeError, LookupError):
        raise ValidationError(field, message) from None


def _plain_str(value: str) -> str:
    """:func:`_plain` for a field of text (an attrs converter: the field stays typed)."""
    plain: str = _plain(value)
    return plain


def _plain_optional(value: str | None) -> str | None:
    """:func:`_plain` for a field of text or ``None`` (an attrs converter)."""
    plain: str | None = _plain(value)
    return plain


def _shown(value: object) -> str:
    """How an id a caller passed is recorded: at most 64 printable characters.

    A string is cut to 64 characters; anything else is shown by a short ``repr``. Control
    characters and lone surrogates (which a store may refuse) are escaped. Never raises,
    whatever *value* is.
    """
    try:
        if isinstance(value, str):
            text = str.__str__(value)[:MAX_SHOWN_ID]  # a plain str, even of a subclass
        else:
            text = _SHOWN_REPR.repr(value)[:MAX_SHOWN_ID]
        if text.isprintable():
            return text
        return text.encode("unicode_escape").decode("ascii")[:MAX_SHOWN_ID]
    except Exception:  # a repr that fails: the type is all that is shown
        return f"<{type(value).__name__}>"[:MAX_SHOWN_ID]
