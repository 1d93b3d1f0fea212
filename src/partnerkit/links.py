"""Signed links: link kinds, claims, the key ring, issuing and verifying codes, URLs.

A link is a URL whose query parameter ``code`` carries a signed, self-contained code. Every
code is a compact JWS (RFC 7515): ``BASE64URL(header) "." BASE64URL(payload) "."
BASE64URL(signature)``, without padding.

* The protected header is ``{"alg":...,"kid":...,"typ":...}`` in canonical JSON. ``alg`` is
  ``HS256`` for an HMAC ring and ``EdDSA`` (RFC 8037) for an Ed25519 ring, ``typ`` names the
  link's kind (:attr:`LinkKind.jws_type`), ``kid`` the key that signed it.
* The payload is a JSON object in canonical form (sorted keys, no whitespace)::

      {"adv": advisor_id, "dla": includes_delegated_admin, "exp": expires_at,
       "iat": issued_at, "jti": link_id, "knd": kind, "tgt": target, "ver": 1}

  with ``exp`` and ``iat`` as whole seconds since the epoch, as in JWT (RFC 7519).

Each kind is its own signing namespace: HMAC keys are derived per kind (itsdangerous'
key derivation with a per-kind salt), Ed25519 links carry the per-kind ``typ`` in the signed
header, and the kind is inside the signed payload as well.

Verification resolves the *encoded* header segment in one dictionary lookup. The ring holds
the exact header segments it ever produces, so the algorithm always comes from the ring, the
header is canonical by construction, and the cost does not depend on the number of keys. The
signature covers the header and payload segments exactly as transmitted, and the signature
segment is compared in its canonical encoding; the payload is then parsed by matching the
grammar of its canonical JSON in full. A code that verifies is therefore the only encoding of
its claims. Every check before the signature raises :class:`InvalidLink` with its one fixed
message; :class:`LinkExpired` comes only after the signature verified.
"""

from __future__ import annotations

import binascii
import enum
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, NoReturn, TypedDict, TypeVar

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from itsdangerous import Signer
from itsdangerous.encoding import base64_encode

from partnerkit.errors import (
    InvalidLink,
    InvalidState,
    LinkExpired,
    NotFound,
    ValidationError,
    _plain,
    _pretends,
    _shown,
)

__all__ = [
    "DEFAULT_LINK_LIFETIME",
    "ED25519",
    "HMAC_SHA256",
    "LINK_FORMAT_VERSION",
    "MAX_CLOCK_SKEW",
    "MAX_CODE_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_LINK_LIFETIME",
    "Algorithm",
    "Keyring",
    "LinkClaims",
    "LinkKind",
    "PublicJwk",
    "PublicJwks",
    "build_url",
    "check_link_times",
    "code_from_url",
]

#: The version of the code format that :meth:`Keyring.issue` writes.
LINK_FORMAT_VERSION: Final = 1
#: How long a link lives unless its issuer says otherwise.
DEFAULT_LINK_LIFETIME: Final = timedelta(days=90)
#: The longest lifetime a link may have.
MAX_LINK_LIFETIME: Final = timedelta(days=730)
#: The only leeway between the issuer's and the verifier's clocks.
MAX_CLOCK_SKEW: Final = timedelta(seconds=60)
#: Codes longer than this are refused before any cryptography.
MAX_CODE_LENGTH: Final = 2048
#: The longest ``link_id``, ``advisor_id`` and ``target`` a link carries.
MAX_ID_LENGTH: Final = 128
#: The longest base URL a link is built on (a link is this plus its code).
MAX_BASE_URL: Final = 2048
#: The names of the algorithms a key ring may use (``Keyring.generate``, ``Keyring.algorithm``).
Algorithm = Literal["hmac-sha256", "ed25519"]
#: The algorithm name of an HMAC-SHA256 key ring (the default).
HMAC_SHA256: Final = "hmac-sha256"
#: The algorithm name of an Ed25519 key ring.
ED25519: Final = "ed25519"


class PublicJwk(TypedDict):
    """One public key of :meth:`Keyring.public_jwks` (an OKP key, RFC 8037)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    #: The public key, base64url without padding.
    x: str
    #: The key id, as in the ``kid`` header of the links the key signs.
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class PublicJwks(TypedDict):
    """The JWK Set :meth:`Keyring.public_jwks` returns (RFC 7517)."""

    keys: list[PublicJwk]


_ALGORITHMS: Final = (HMAC_SHA256, ED25519)
_JWS_ALG: Final = {HMAC_SHA256: "HS256", ED25519: "EdDSA"}
_MAX_URL_LENGTH: Final = MAX_CODE_LENGTH * 2
#: What no link holds anywhere: white space and control characters (ASCII).
_NOT_IN_URLS: Final = bytes(range(0x21)) + b"\x7f"
_MAX_LIFETIME_S: Final = int(MAX_LINK_LIFETIME.total_seconds())
_SKEW_S: Final = MAX_CLOCK_SKEW.total_seconds()
_SECRET_BYTES: Final = 32
_MAX_SECRET_BYTES: Final = 64
_MAX_KID_LENGTH: Final = 64
_KID_ALPHABET: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_CODE_ALPHABET: Final = _KID_ALPHABET | {"."}
#: The same alphabet as bytes, for a check at C speed: ``code.translate(None, _CODE_BYTES)``
#: deletes every allowed character, so only an empty result is a code's.
_CODE_BYTES: Final = "".join(sorted(_CODE_ALPHABET)).encode("ascii")
_ED25519_SIGNATURE_CHARS: Final = 86  # 64 bytes, unpadded base64url
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND: Final = timedelta(seconds=1)
# Times a datetime can hold: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_TIMESTAMP: Final = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _ONE_SECOND
_MAX_TIMESTAMP: Final = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _ONE_SECOND
_KEYRING_FORMAT: Final = 1
#: What :meth:`Keyring.from_json` adds to "is not valid JSON": the mistake it usually is.
FILE_NAME_HINT: Final = " (pass the ring's text, not a file name)"

_V = TypeVar("_V")
#: How many verified codes a ring (and a Portal, URLs) remembers: 2.4 MB at most (a ring).
_REMEMBERED: Final = 1024

# The canonical JSON of a payload is a regular language: sorted keys, no whitespace, minimal
# integers, printable ASCII strings in which only the quote and the backslash are escaped (as
# json.dumps writes them). Matching it in full parses and checks the canonical form at once:
# any other text of the same values (whitespace, \u escapes, another key order, duplicate
# keys, -0, 1.0) does not match.
_JSON_CHAR: Final = r"[\x20\x21\x23-\x5b\x5d-\x7e]"  # printable ASCII but quote, backslash
_JSON_STRING: Final = rf'"({_JSON_CHAR}*(?:\\["\\]{_JSON_CHAR}*)*)"'
_JSON_INT: Final = r"(0|-?[1-9][0-9]{0,17})"
_PAYLOAD_RE: Final = re.compile(
    rf'\{{"adv":{_JSON_STRING},"dla":(true|false),"exp":{_JSON_INT},"iat":{_JSON_INT},'
    rf'"jti":{_JSON_STRING},"knd":"([a-z_]{{1,32}})","tgt":{_JSON_STRING},"ver":1\}}'
)
_UNESCAPE_RE: Final = re.compile(r'\\(["\\])')

_B64_DECODE_TABLE: Final = bytes.maketrans(b"-_", b"+/")
_B64_ENCODE_TABLE: Final = bytes.maketrans(b"+/", b"-_")
_B64_PADDING: Final = ("", "", "==", "=")
_JSON_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)


class LinkKind(enum.Enum):
    """What a link offers; each kind is its own signing namespace."""

    __hash__ = object.__hash__  # identity: as roles.py explains, C instead of Python

    #: A trial of one service (``target`` is the service's SKU).
    TRIAL_INVITATION = "trial_invitation"
    #: A purchase offer (``target`` is the offer's id).
    PURCHASE_OFFER = "purchase_offer"
    #: A standalone offer of delegated administration (``target`` is the offer's id).
    DELEGATED_ADMIN = "delegated_admin"

    @property
    def jws_type(self) -> str:
        """The JWS ``typ`` header of this kind's Ed25519 and HMAC codes.

        A storefront that verifies codes with a JOSE library checks it to tell the kinds apart.
        """
        return _JWS_TYPES[self]


_JWS_TYPES: Final = {kind: f"partnerkit-{kind.value.replace('_', '-')}+jwt" for kind in LinkKind}


@attrs.frozen
class LinkClaims:
    """What a verified link says; every field is covered by the signature."""

    #: The format version of the code, :data:`LINK_FORMAT_VERSION`.
    version: int
    #: The kind of link.
    kind: LinkKind
    #: The link's own id: revocation, ``max_uses`` and redemptions are keyed on it.
    link_id: str
    #: The public advisor id of the partner that issued the link.
    advisor_id: str
    #: The service SKU (trial invitations), offer id or delegation offer id.
    target: str
    #: Whether the link also offers delegated administration.
    includes_delegated_admin: bool
    #: When the link was issued: aware UTC, whole seconds.
    issued_at: datetime
    #: When the link expires: aware UTC, whole seconds.
    expires_at: datetime
    #: The id of the key that signed the link.
    key_id: str


def _invalid() -> NoReturn:
    # Called inside ``except`` blocks too: the error of cryptography, base64 or urllib that
    # got us here is not shown (SPEC 3: no dependency's exception reaches a caller, and
    # "a known key, a wrong signature" must not read differently from any other refusal).
    raise InvalidLink from None


def _b64encode(data: bytes) -> bytes:
    """Unpadded base64url, the one canonical encoding of ``data``."""
    return binascii.b2a_base64(data, newline=False).translate(_B64_ENCODE_TABLE).rstrip(b"=")


def _b64decode(segment: str) -> bytes:
    """Decode unpadded base64url; lenient on its own, callers check canonical form."""
    return binascii.a2b_base64(
        (segment + _B64_PADDING[len(segment) & 3]).encode("ascii").translate(_B64_DECODE_TABLE)
    )


def _canonical_b64decode(segment: str, field: str) -> bytes:
    """Decode ``segment`` or raise ValidationError unless it is canonical base64url."""
    try:
        data = _b64decode(segment)
    except (ValueError, UnicodeError):
        raise ValidationError(field, "is not unpadded base64url") from None
    if _b64encode(data) != segment.encode("ascii"):
        raise ValidationError(field, "is not unpadded base64url")
    return data


def _is_valid_id(value: object) -> bool:
    """True for a non-empty, bounded string of printable ASCII characters."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isascii()
        and value.isprintable()
    )


def _is_valid_kid(value: object) -> bool:
    return (
        type(value) is str and 0 < len(value) <= _MAX_KID_LENGTH and _KID_ALPHABET.issuperset(value)
    )


def _whole_seconds(field: str, value: object) -> int:
    """The epoch seconds of an aware datetime, rounded down to a whole second."""
    if not isinstance(value, datetime) or _pretends(value):
        raise ValidationError(field, "must be a datetime")
    if datetime.utcoffset(value) is None:  # datetime's own method, not a subclass's
        raise ValidationError(field, "must be timezone-aware")
    try:
        seconds = (value - _EPOCH) // _ONE_SECOND
        _EPOCH + timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        raise ValidationError(field, "is out of range") from None
    return seconds


def _utc(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def _timestamp(now: datetime) -> float:
    # datetime's own methods, not a subclass's: one whose timestamp() said NaN made every
    # comparison false, and an expired link verify.
    if not isinstance(now, datetime) or _pretends(now) or datetime.utcoffset(now) is None:
        raise ValidationError("now", "must be a timezone-aware datetime")
    return datetime.timestamp(now)


@attrs.frozen
class _Key:
    """One key of the ring; ``secret`` is an HMAC secret or an Ed25519 private seed."""

    kid: str
    secret: bytes = attrs.field(repr=False)


def _holds_secret(text: str, key: _Key) -> bool:
    """Whether *text* holds *key*'s secret as the ring's file writes it, or a good part of
    it: pasted with padding, quotes or spaces around it, or cut short."""
    secret = base64_encode(key.secret).decode("ascii")
    core = text.strip(" \t\r\n\"'=")
    return secret in text or (len(core) >= 16 and core in secret)


#: The fields of a ring's JSON document (``Keyring.to_json``).
_RING_FIELDS: Final = frozenset({"format", "algorithm", "keys", "active_key_id"})


def _no_key(state: _RingState, kid: object) -> NotFound:
    """``NotFound`` for a key id the ring lacks, naming it, unless it is one of the ring's
    secrets, pasted by mistake (``partnerkit keys remove FILE <secret>``): an error is
    printed and logged, and no secret is ever shown."""
    if type(kid) is str and any(_holds_secret(kid, key) for key in state.keys):
        return NotFound("key", "(a secret of the ring, not a key id: not shown)")
    return NotFound("key", _shown(kid))


# What an encoded header resolves to: the kind, the key id and the prepared verifier
# (a keyed HMAC object to copy, or an Ed25519 public key).
_HmacEntry = tuple[LinkKind, str, hmac.HMAC]
_Ed25519Entry = tuple[LinkKind, str, Ed25519PublicKey]


def _header_segment(algorithm: str, kid: str, kind: LinkKind) -> str:
    header = {"alg": _JWS_ALG[algorithm], "kid": kid, "typ": kind.jws_type}
    return _b64encode(_JSON_ENCODER.encode(header).encode("ascii")).decode("ascii")


def _derive_hmac_key(secret: bytes, kind: LinkKind) -> bytes:
    """The per-kind HMAC key: itsdangerous' HMAC key derivation with a per-kind salt."""
    signer = Signer(
        secret,
        salt=f"partnerkit.links.{kind.value}",
        key_derivation="hmac",
        digest_method=hashlib.sha256,
    )
    return signer.derive_key()


@attrs.frozen(repr=False, eq=False)
class _RingState:
    """A snapshot of a ring, its keys immutable; rotation swaps the whole snapshot at once.
    Only ``verified``, the codes these keys verified lately, changes (see ``Keyring.verify``)."""

    algorithm: Algorithm
    keys: tuple[_Key, ...]
    active: str
    #: encoded header segment -> entry, for every key and kind (HMAC rings).
    hmac_entries: Mapping[str, _HmacEntry]
    #: encoded header segment -> entry, for every key and kind (Ed25519 rings).
    ed25519_entries: Mapping[str, _Ed25519Entry]
    #: kind -> (header segment, keyed HMAC object or Ed25519 private key) of the active key.
    signers: Mapping[LinkKind, tuple[str, hmac.HMAC | Ed25519PrivateKey]]
    #: code -> (claims, issued, expires in epoch seconds) of codes these keys verified, the
    #: one used last at the end: see :meth:`Keyring.verify`. A new snapshot starts empty, so
    #: a removed key verifies nothing.
    verified: OrderedDict[str, tuple[LinkClaims, int, int]] = attrs.field(factory=OrderedDict)

    @classmethod
    def build(cls, algorithm: Algorithm, keys: tuple[_Key, ...], active: str) -> _RingState:
        hmac_entries: dict[str, _HmacEntry] = {}
        ed25519_entries: dict[str, _Ed25519Entry] = {}
        signers: dict[LinkKind, tuple[str, hmac.HMAC | Ed25519PrivateKey]] = {}
        for key in keys:
            private = None
            if algorithm == ED25519:
                private = Ed25519PrivateKey.from_private_bytes(key.secret)
                public = private.public_key()
            for kind in LinkKind:
                header = _header_segment(algorithm, key.kid, kind)
                signer: hmac.HMAC | Ed25519PrivateKey
                if private is None:
                    signer = hmac.new(_derive_hmac_key(key.secret, kind), digestmod=hashlib.sha256)
                    hmac_entries[header] = (kind, key.kid, signer)
                else:
                    signer = private
                    ed25519_entries[header] = (kind, key.kid, public)
                if key.kid == active:
                    signers[kind] = (header, signer)
        return cls(algorithm, keys, active, hmac_entries, ed25519_entries, signers)


def _check_algorithm(algorithm: object) -> Algorithm:
    # By its text: no __eq__ of its own makes an object one of the algorithms.
    text = str.__str__(algorithm) if issubclass(type(algorithm), str) else None
    if text == HMAC_SHA256:
        return HMAC_SHA256
    if text == ED25519:
        return ED25519
    raise ValidationError("algorithm", f"must be one of {', '.join(_ALGORITHMS)}")


def _new_key(algorithm: str, taken: tuple[_Key, ...] = ()) -> _Key:
    kids = {key.kid for key in taken}
    kid = secrets.token_urlsafe(9)
    # Never one that starts with "-": a command line would take it for an option
    # (``partnerkit keys remove FILE -x...``), and its user would need ``--`` to say it.
    while kid in kids or kid[0] == "-":
        kid = secrets.token_urlsafe(9)
    if algorithm == ED25519:
        seed = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        return _Key(kid, seed)
    return _Key(kid, secrets.token_bytes(_SECRET_BYTES))


def _unescape(value: str) -> str:
    return _UNESCAPE_RE.sub(r"\1", value) if "\\" in value else value


def check_link_times(claims: LinkClaims, now: datetime) -> None:
    """Judge the times of claims that verified earlier again at *now*, as ``verify`` does:
    a use case that waited (for a store's lock, or a retry) decides at the time it decides.

    Raises:
        InvalidLink: issued after *now* (beyond :data:`MAX_CLOCK_SKEW`).
        LinkExpired: expired before *now* (beyond :data:`MAX_CLOCK_SKEW`).
    """
    # The same arithmetic as verify's (seconds as floats), so that both answer alike at
    # every instant, however far in the future.
    _judge_times(claims.issued_at.timestamp(), claims.expires_at.timestamp(), _timestamp(now))


def _judge_times(issued: float, expires: float, now: float) -> None:
    """Judge a link's issue and expiry times (epoch seconds) at *now*: issued after it, or
    expired before it, beyond :data:`MAX_CLOCK_SKEW`."""
    if issued > now + _SKEW_S:
        _invalid()
    if now > expires + _SKEW_S:
        raise LinkExpired


def _claims_from_payload(
    segment: str, kind: LinkKind, kid: str, now: float
) -> tuple[LinkClaims, int, int]:
    """Parse a payload whose signature already verified and check its times; return its
    claims, and its issue and expiry times in epoch seconds.

    Raises:
        InvalidLink: a payload that is not canonical, or an issue time in the future.
        LinkExpired: the link expired (beyond :data:`MAX_CLOCK_SKEW`).
    """
    try:
        text = _b64decode(segment).decode("ascii")
    except (ValueError, UnicodeError):
        _invalid()
    match = _PAYLOAD_RE.fullmatch(text)
    if match is None:
        _invalid()
    advisor_id, delegated, expires_text, issued_text, link_id, kind_value, target = match.groups()
    issued = int(issued_text)
    expires = int(expires_text)
    if (
        kind_value != kind._value_  # not .value: a property, slower on this hot path
        or not 0 < expires - issued <= _MAX_LIFETIME_S
        or issued < _MIN_TIMESTAMP
        or expires > _MAX_TIMESTAMP
    ):
        _invalid()
    if "\\" in text:  # escaped quotes or backslashes somewhere: undo them
        advisor_id = _unescape(advisor_id)
        link_id = _unescape(link_id)
        target = _unescape(target)
    if (
        not 0 < len(advisor_id) <= MAX_ID_LENGTH
        or not 0 < len(link_id) <= MAX_ID_LENGTH
        or not 0 < len(target) <= MAX_ID_LENGTH
    ):
        _invalid()
    _judge_times(issued, expires, now)
    try:
        issued_at = datetime.fromtimestamp(issued, UTC)
        expires_at = datetime.fromtimestamp(expires, UTC)
    except (OverflowError, ValueError, OSError):
        _invalid()
    claims = LinkClaims(
        LINK_FORMAT_VERSION,
        kind,
        link_id,
        advisor_id,
        target,
        delegated == "true",
        issued_at,
        expires_at,
        kid,
    )
    return claims, issued, expires


@attrs.define(eq=False, repr=False)
class Keyring:
    """The keys that sign and verify links: several keys with ids, the newest one signs.

    Create one with :meth:`generate` or :meth:`from_json`; the constructor is internal. A ring
    is safe to share between threads: :meth:`rotate` and :meth:`remove` swap an immutable
    snapshot, so verifications running at the same time see either the old or the new ring.
    Secrets never appear in its ``repr`` nor in any error it raises.
    """

    _state: _RingState
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    @classmethod
    def generate(cls, algorithm: Algorithm = HMAC_SHA256) -> Keyring:
        """A new ring with one fresh random key.

        Args:
            algorithm: ``"hmac-sha256"`` (the default; the verifier needs the secret) or
                ``"ed25519"`` (storefronts verify with :meth:`public_jwks` alone).

        Raises:
            ValidationError: for any other algorithm.
        """
        algorithm = _check_algorithm(algorithm)
        key = _new_key(algorithm)
        return cls(_RingState.build(algorithm, (key,), key.kid))

    @property
    def algorithm(self) -> Algorithm:
        """``"hmac-sha256"`` or ``"ed25519"``: every key of the ring uses it."""
        return self._state.algorithm

    @property
    def active_key_id(self) -> str:
        """The id of the key that signs new links."""
        return self._state.active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of all keys, oldest first; each of them verifies."""
        return tuple(key.kid for key in self._state.keys)

    def __repr__(self) -> str:
        state = self._state
        return (
            f"Keyring(algorithm={state.algorithm!r}, active_key_id={state.active!r}, "
            f"key_ids={self.key_ids!r})"
        )

    def rotate(self, *, activate: bool = True) -> str:
        """Add a new key of the ring's algorithm; it signs from now on. Returns its id.

        Links signed by older keys keep verifying until their key is :meth:`remove`-d.

        With several app servers, each holding a copy of the ring, a key that signs at once
        makes links the others cannot verify until they load the new ring. Stage it
        instead: ``rotate(activate=False)`` adds a key that verifies but does not sign yet;
        once every server holds the ring with it, :meth:`activate` it (and save the ring
        again).

        Raises:
            ValidationError: ``activate`` is not a bool.
        """
        if activate is not True and activate is not False:
            raise ValidationError("activate", "must be True or False")
        with self._lock:
            state = self._state
            key = _new_key(state.algorithm, state.keys)
            active = key.kid if activate else state.active
            self._state = _RingState.build(state.algorithm, (*state.keys, key), active)
        return key.kid

    def activate(self, kid: str) -> None:
        """Make the ring's key *kid* the one that signs new links: a key staged with
        ``rotate(activate=False)``, or an older key again. Every key keeps verifying.

        Raises:
            NotFound: the ring has no key ``kid``.
        """
        kid = _plain(kid)  # a str subclass compares as its text, whatever its __eq__ says
        with self._lock:
            state = self._state
            if type(kid) is not str or kid not in {key.kid for key in state.keys}:
                raise _no_key(state, kid)
            if kid != state.active:
                self._state = _RingState.build(state.algorithm, state.keys, kid)

    def remove(self, kid: str) -> None:
        """Remove a retired key: links it signed stop verifying at once.

        Raises:
            ValidationError: ``kid`` is the active key (rotate first).
            NotFound: the ring has no key ``kid``.
        """
        kid = _plain(kid)  # a str subclass compares as its text, whatever its __eq__ says
        with self._lock:
            state = self._state
            if type(kid) is str and kid == state.active:
                raise InvalidState("kid", "the active key cannot be removed; rotate first")
            keys = tuple(key for key in state.keys if type(kid) is not str or key.kid != kid)
            if len(keys) == len(state.keys):
                raise _no_key(state, kid)
            self._state = _RingState.build(state.algorithm, keys, state.active)

    def to_json(self) -> str:
        """The ring, secrets included, as JSON for :meth:`from_json`. Store it like a password."""
        state = self._state
        document = {
            "format": _KEYRING_FORMAT,
            "algorithm": state.algorithm,
            "active_key_id": state.active,
            "keys": [
                {"kid": key.kid, "secret": base64_encode(key.secret).decode("ascii")}
                for key in state.keys
            ],
        }
        return json.dumps(document, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        """Load a ring that :meth:`to_json` wrote.

        Raises:
            ValidationError: for anything that is not such a ring (field ``"keyring"``, or the
                offending field); the message never contains a secret.
        """
        if not isinstance(text, str | bytes | bytearray) or _pretends(text):
            raise ValidationError("keyring", "must be a JSON text (the file's contents)")
        if issubclass(type(text), str):
            text = str.__str__(text)  # of a subclass, its text: none of its methods runs
        # A byte order mark some editors put first is no part of the ring.
        if isinstance(text, str):
            text = text.removeprefix("\ufeff")
        else:
            text = bytes(text).removeprefix(b"\xef\xbb\xbf")
        try:
            document = json.loads(text)
        except (ValueError, UnicodeError, RecursionError):
            raise ValidationError("keyring", f"is not valid JSON{FILE_NAME_HINT}") from None
        if not isinstance(document, dict):
            raise ValidationError("keyring", "must be a JSON object")
        if not _RING_FIELDS.issuperset(document):
            # Refused as a key's unknown field is: what the ring would drop when next written
            # (by ``keys rotate``) must not be read as if it meant something. Not named: a
            # field name is text somebody typed, perhaps a secret.
            raise ValidationError(
                "keyring", f"has a field that format {_KEYRING_FORMAT} does not have"
            )
        if document.get("format") != _KEYRING_FORMAT or type(document.get("format")) is not int:
            raise ValidationError("format", f"must be {_KEYRING_FORMAT}")
        algorithm = _check_algorithm(document.get("algorithm"))
        raw_keys = document.get("keys")
        if not isinstance(raw_keys, list) or not raw_keys:
            raise ValidationError("keys", "must be a non-empty list")
        keys: list[_Key] = []
        for position, raw in enumerate(raw_keys, 1):
            keys.append(_key_from_json(algorithm, raw, position))
        kids = [key.kid for key in keys]
        if len(set(kids)) != len(kids):
            raise ValidationError("keys", "key ids must be unique")
        active = document.get("active_key_id")
        if type(active) is not str or active not in kids:
            raise ValidationError("active_key_id", "must be the id of one of the keys")
        try:
            state = _RingState.build(algorithm, tuple(keys), active)
        except ValueError:  # pragma: no cover - seeds of the right length always load
            raise ValidationError("keys", "a key could not be loaded") from None
        return cls(state)

    def public_jwks(self) -> PublicJwks:
        """The public keys as a JWK Set (RFC 7517, RFC 8037), for storefronts to verify with.

        Every key of the ring is listed, so links of retired keys keep verifying there too.

        Raises:
            ValidationError: the ring is an HMAC ring, which has no public keys.
        """
        state = self._state
        if state.algorithm != ED25519:
            raise ValidationError("algorithm", "an HMAC key ring has no public keys")
        jwks: list[PublicJwk] = []
        for key in state.keys:
            public = Ed25519PrivateKey.from_private_bytes(key.secret).public_key()
            raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
            jwks.append(
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": _b64encode(raw).decode("ascii"),
                    "kid": key.kid,
                    "alg": "EdDSA",
                    "use": "sig",
                }
            )
        return {"keys": jwks}

    def issue(
        self,
        kind: LinkKind,
        *,
        link_id: str,
        advisor_id: str,
        target: str,
        includes_delegated_admin: bool,
        issued_at: datetime,
        expires_at: datetime,
    ) -> tuple[str, LinkClaims]:
        """Sign a link with the active key; returns its code and its claims.

        Times are rounded down to whole seconds and returned in UTC.

        Raises:
            ValidationError: a field is invalid: ids must be 1 to :data:`MAX_ID_LENGTH`
                printable ASCII characters, times aware datetimes, and the lifetime
                (field ``"expires_in"``) positive and at most :data:`MAX_LINK_LIFETIME`.
        """
        if type(kind) is not LinkKind:  # a member's type is its enum: nothing can claim it
            raise ValidationError("kind", "must be a LinkKind")
        for field, value in (("link_id", link_id), ("advisor_id", advisor_id), ("target", target)):
            if not _is_valid_id(value):
                raise ValidationError(
                    field, f"must be 1 to {MAX_ID_LENGTH} printable ASCII characters"
                )
        if type(includes_delegated_admin) is not bool:
            raise ValidationError("includes_delegated_admin", "must be a bool")
        issued = _whole_seconds("issued_at", issued_at)
        expires = _whole_seconds("expires_at", expires_at)
        if expires <= issued:
            raise ValidationError("expires_in", "must be positive (expires_at after issued_at)")
        if expires - issued > _MAX_LIFETIME_S:
            raise ValidationError("expires_in", f"must be at most {MAX_LINK_LIFETIME.days} days")
        state = self._state
        header, signer = state.signers[kind]
        payload = {
            "adv": advisor_id,
            "dla": includes_delegated_admin,
            "exp": expires,
            "iat": issued,
            "jti": link_id,
            "knd": kind.value,
            "tgt": target,
            "ver": LINK_FORMAT_VERSION,
        }
        payload_segment = base64_encode(_JSON_ENCODER.encode(payload)).decode("ascii")
        signing_input = f"{header}.{payload_segment}".encode("ascii")
        if isinstance(signer, Ed25519PrivateKey):
            signature = signer.sign(signing_input)
        else:
            mac = signer.copy()
            mac.update(signing_input)
            signature = mac.digest()
        code = f"{header}.{payload_segment}.{_b64encode(signature).decode('ascii')}"
        claims = LinkClaims(
            LINK_FORMAT_VERSION,
            kind,
            link_id,
            advisor_id,
            target,
            includes_delegated_admin,
            _utc(issued),
            _utc(expires),
            state.active,
        )
        return code, claims

    def verify(
        self, code: str, *, now: datetime | None = None, kind: LinkKind | None = None
    ) -> LinkClaims:
        """Check a code's form, signature, kind and times; return its claims.

        This is stateless: revocation and ``max_uses`` live in the store (see ``Portal``).
        The ring remembers the codes it verified lately (see ``docs/links.md``); their kind
        and times are judged again at every call.

        Args:
            code: the code, as :func:`code_from_url` extracts it.
            now: the current time (aware); ``None`` reads the real UTC clock.
            kind: if given, a code of another kind is invalid.

        Raises:
            InvalidLink: with one fixed message for anything malformed, a wrong signature,
                an unknown key, another kind or an issue time in the future.
            LinkExpired: the signature is valid but the link expired (beyond
                :data:`MAX_CLOCK_SKEW`).
            ValidationError: ``now`` is not an aware datetime or ``kind`` not a LinkKind.
        """
        now_ts = time.time() if now is None else _timestamp(now)
        state = self._state
        if type(code) is not str or len(code) > MAX_CODE_LENGTH or not code.isascii():
            _invalid()
        # A code these keys verified before is not verified again: one link is redeemed by
        # many customers, and its signature and payload are what they were. Only its kind and
        # its times are judged again, against this call's. (Looked up by a plain str only,
        # checked above: a subclass could claim to equal a code it is not.)
        seen = state.verified.get(code)
        if seen is not None:
            _used(state.verified, code)
            claims, issued, expires = seen
            if kind is not None and kind is not claims.kind:
                self._wrong_kind(kind)
            _judge_times(issued, expires, now_ts)
            return claims
        parts = code.split(".")
        if len(parts) != 3:
            _invalid()
        header, payload_segment, signature_segment = parts
        signing_input = code[: len(code) - len(signature_segment) - 1].encode("ascii")
        if state.algorithm == HMAC_SHA256:
            hmac_entry = state.hmac_entries.get(header)
            if hmac_entry is None:
                _invalid()
            link_kind, kid, keyed_mac = hmac_entry
            if kind is not None and kind is not link_kind:
                self._wrong_kind(kind)
            mac = keyed_mac.copy()
            mac.update(signing_input)
            # Comparing the canonical encodings rejects non-canonical signature segments too.
            if not hmac.compare_digest(_b64encode(mac.digest()), signature_segment.encode()):
                _invalid()
        else:
            ed_entry = state.ed25519_entries.get(header)
            if ed_entry is None:
                _invalid()
            link_kind, kid, public_key = ed_entry
            if kind is not None and kind is not link_kind:
                self._wrong_kind(kind)
            if len(signature_segment) != _ED25519_SIGNATURE_CHARS:
                _invalid()
            try:
                signature = _b64decode(signature_segment)
            except ValueError:
                _invalid()
            if _b64encode(signature) != signature_segment.encode():
                _invalid()
            try:
                public_key.verify(signature, signing_input)
            except InvalidSignature:
                _invalid()
        claims, issued, expires = _claims_from_payload(payload_segment, link_kind, kid, now_ts)
        _remember(state.verified, code, (claims, issued, expires))
        return claims

    @staticmethod
    def _wrong_kind(kind: object) -> NoReturn:
        if type(kind) is not LinkKind:
            raise ValidationError("kind", "must be a LinkKind or None")
        _invalid()


def _key_from_json(algorithm: str, raw: object, position: int = 1) -> _Key:
    """One key of a ring's JSON. An error names the key by its *position* in the ring, never
    by its id: a key file with id and secret swapped would otherwise print the secret."""
    if not isinstance(raw, dict) or set(raw) != {"kid", "secret"}:
        raise ValidationError("keys", "each key must be an object with kid and secret")
    kid = raw["kid"]
    if not _is_valid_kid(kid):
        raise ValidationError("kid", f"must be 1 to {_MAX_KID_LENGTH} base64url characters")
    secret_text = raw["secret"]
    if type(secret_text) is not str or not secret_text.isascii():
        raise ValidationError("secret", f"of key {position} is not unpadded base64url")
    secret = _canonical_b64decode(secret_text, "secret")
    if algorithm == ED25519:
        if len(secret) != _SECRET_BYTES:
            raise ValidationError("secret", f"of key {position} must be a 32-byte Ed25519 seed")
    elif not _SECRET_BYTES <= len(secret) <= _MAX_SECRET_BYTES:
        raise ValidationError(
            "secret", f"of key {position} must be {_SECRET_BYTES} to {_MAX_SECRET_BYTES} bytes"
        )
    return _Key(kid, secret)


def build_url(base_url: str, code: str) -> str:
    """``base_url`` with ``code`` in its query parameter ``code``; other parameters stay.

    Raises:
        ValidationError: ``base_url`` is not an absolute http(s) URL, already has a ``code``
            parameter, or ``code`` does not look like a code.
    """
    if not isinstance(base_url, str) or _pretends(base_url):
        raise ValidationError("base_url", "must be an ASCII URL")
    base_url = str.__str__(base_url)  # of a subclass, its text: none of its methods runs
    if not base_url.isascii() or not base_url.isprintable() or len(base_url) > MAX_BASE_URL:
        raise ValidationError(
            "base_url", f"must be an ASCII URL of at most {MAX_BASE_URL} characters"
        )
    code = _plain(code)  # of a str subclass, its text
    if (
        type(code) is not str
        or not 0 < len(code) <= MAX_CODE_LENGTH
        or not _CODE_ALPHABET.issuperset(code)
    ):
        raise ValidationError("code", "is not a link code")
    try:
        parts = urllib.parse.urlsplit(base_url)
    except ValueError:
        raise ValidationError("base_url", "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in base_url:
        raise ValidationError("base_url", "must be an absolute http or https URL")
    names = [name for name, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    if "code" in names:
        raise ValidationError("base_url", "already has a code parameter")
    query = f"{parts.query}&code={code}" if parts.query else f"code={code}"
    return urllib.parse.urlunsplit(parts._replace(query=query))


def code_from_url(url: str) -> str:
    """The code in ``url``'s query parameter ``code``; it is not verified here.

    Raises:
        InvalidLink: no code, more than one, a code that cannot be one, non-ASCII input,
            white space or control characters anywhere (URL parsers drop some of them
            silently, which would let an altered link verify), or a URL longer than twice
            :data:`MAX_CODE_LENGTH`.
    """
    if type(url) is not str or len(url) > _MAX_URL_LENGTH or not url.isascii():
        _invalid()
    raw = url.encode("ascii")
    if len(raw.translate(None, _NOT_IN_URLS)) != len(raw):  # C speed, where isprintable is not
        _invalid()
    base, mark, query = url.partition("?")
    if (
        mark
        and "[" not in base
        and "#" not in base  # else the "?" is in the fragment: there is no query at all
        and "#" not in query
        and "%" not in query
        and "+" not in query
        and "[" not in query
    ):
        # The common case, a plain query: split it by hand, as parse_qsl would (this runs
        # on every storefront page, and urllib's general parser costs more than the rest).
        codes = [part[5:] for part in query.split("&") if part[:5] == "code=" or part == "code"]
    else:
        try:
            pairs = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)
        except ValueError:
            _invalid()
        codes = [value for name, value in pairs if name == "code"]
    if len(codes) != 1:
        _invalid()
    code = codes[0]
    if (
        not 0 < len(code) <= MAX_CODE_LENGTH
        or not code.isascii()  # parse_qsl may have unquoted any character into it
        or code.encode("ascii").translate(None, _CODE_BYTES)
    ):
        _invalid()
    return code


def _used(memory: OrderedDict[str, Any], key: str) -> None:
    """Mark *key* of *memory* as the one used last: it is forgotten last."""
    try:  # noqa: SIM105 - on the path of every remembered code: no context manager
        memory.move_to_end(key)
    except KeyError:  # another thread forgot it meanwhile
        pass


def _remember(memory: OrderedDict[str, _V], key: str, value: _V) -> None:
    """Keep *key* -> *value* in *memory*, forgetting the entries used least lately beyond
    :data:`_REMEMBERED` (each step is one atomic operation: threads may share *memory*)."""
    while len(memory) >= _REMEMBERED:
        try:
            memory.popitem(last=False)
        except KeyError:  # another thread emptied it meanwhile
            break
    memory[key] = value
