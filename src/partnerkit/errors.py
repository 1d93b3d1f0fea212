"""The exception tree of partnerkit.

Every error partnerkit raises derives from :class:`PartnerKitError`. The classes mix in the
builtin exception that callers already catch (``NotFound`` is a ``LookupError``,
``ValidationError`` a ``ValueError``), and carry typed fields instead of only a message.
No exception of a dependency (sqlite3, psycopg, itsdangerous, cryptography, binascii, json)
reaches a caller: adapters translate them and chain the cause.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from partnerkit.roles import Decision, Permission

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidLink",
    "LinkExhausted",
    "LinkExpired",
    "LinkRevoked",
    "NotFound",
    "PartnerKitError",
    "StoreUnavailable",
    "ValidationError",
]


class PartnerKitError(Exception):
    """Base class of every error partnerkit raises."""


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
        super().__init__(f"forbidden: {what}{decision.reason}")


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
