"""Properties of links: any change to a valid code is rejected, only the issuer's codes pass.

Every test here runs for both algorithms and every kind, with claims drawn by hypothesis.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from partnerkit.errors import InvalidLink, ValidationError
from partnerkit.links import (
    ED25519,
    HMAC_SHA256,
    MAX_CODE_LENGTH,
    MAX_ID_LENGTH,
    MAX_LINK_LIFETIME,
    Keyring,
    LinkClaims,
    LinkKind,
    build_url,
    code_from_url,
)

NOW = datetime(2031, 6, 1, tzinfo=UTC)
PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))
B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# Several examples share each ring; rings are made once, per algorithm, for the whole module.
RINGS = {algorithm: Keyring.generate(algorithm) for algorithm in (HMAC_SHA256, ED25519)}
OTHER_RINGS = {algorithm: Keyring.generate(algorithm) for algorithm in (HMAC_SHA256, ED25519)}

ids = st.text(alphabet=PRINTABLE_ASCII, min_size=1, max_size=MAX_ID_LENGTH)
algorithms = st.sampled_from([HMAC_SHA256, ED25519])
kinds = st.sampled_from(list(LinkKind))
# Characters a mutation may use: the code alphabet most often, then anything at all.
mutation_chars = st.one_of(
    st.sampled_from(B64_ALPHABET + ".="),
    st.characters(codec="ascii"),
    st.characters(),
)

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def claims_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of Keyring.issue for a link valid at NOW."""
    lifetime = draw(st.integers(min_value=1, max_value=int(MAX_LINK_LIFETIME.total_seconds())))
    age = draw(st.integers(min_value=0, max_value=lifetime - 1))
    issued_at = NOW - timedelta(seconds=age)
    return {
        "link_id": draw(ids),
        "advisor_id": draw(ids),
        "target": draw(ids),
        "includes_delegated_admin": draw(st.booleans()),
        "issued_at": issued_at,
        "expires_at": issued_at + timedelta(seconds=lifetime),
    }


@st.composite
def links(draw: st.DrawFn) -> tuple[Keyring, str, LinkClaims]:
    """A ring and a code it issued, valid at NOW, with its claims."""
    ring = RINGS[draw(algorithms)]
    code, claims = ring.issue(draw(kinds), **draw(claims_fields()))
    return ring, code, claims


def assert_invalid(ring: Keyring, code: object, kind: LinkKind | None = None) -> None:
    """Exactly InvalidLink with the fixed message: no expiry, no other error."""
    with pytest.raises(InvalidLink) as info:
        ring.verify(code, now=NOW, kind=kind)  # type: ignore[arg-type]
    assert type(info.value) is InvalidLink
    assert str(info.value) == InvalidLink.FIXED_MESSAGE


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


@SETTINGS
@given(links())
def test_every_issued_link_verifies_with_its_own_claims(
    link: tuple[Keyring, str, LinkClaims],
) -> None:
    """Issue then verify is the identity on claims, for any printable ASCII ids."""
    ring, code, claims = link
    assert ring.verify(code, now=NOW) == claims
    assert ring.verify(code, now=NOW, kind=claims.kind) == claims
    assert len(code) <= MAX_CODE_LENGTH


@SETTINGS
@given(links())
def test_every_code_is_the_canonical_encoding_of_its_claims(
    link: tuple[Keyring, str, LinkClaims],
) -> None:
    """Re-encoding the decoded segments, and re-issuing the claims, give the code back."""
    ring, code, claims = link
    header, payload, signature = code.split(".")
    for segment in (header, payload, signature):
        assert b64(unb64(segment)) == segment
    decoded = json.loads(unb64(payload))
    assert unb64(payload) == json.dumps(decoded, separators=(",", ":"), sort_keys=True).encode()
    again, _ = ring.issue(
        claims.kind,
        link_id=claims.link_id,
        advisor_id=claims.advisor_id,
        target=claims.target,
        includes_delegated_admin=claims.includes_delegated_admin,
        issued_at=claims.issued_at,
        expires_at=claims.expires_at,
    )
    assert again == code


@SETTINGS
@given(links(), st.data())
def test_every_single_character_substitution_is_rejected(
    link: tuple[Keyring, str, LinkClaims], data: st.DataObject
) -> None:
    """Changing any one character anywhere makes the code invalid."""
    ring, code, _ = link
    index = data.draw(st.integers(min_value=0, max_value=len(code) - 1))
    char = data.draw(mutation_chars.filter(lambda c: c != code[index]))
    assert_invalid(ring, code[:index] + char + code[index + 1 :])


@SETTINGS
@given(links(), st.data())
def test_every_single_character_insertion_is_rejected(
    link: tuple[Keyring, str, LinkClaims], data: st.DataObject
) -> None:
    """Inserting any character anywhere, the ends included, makes the code invalid."""
    ring, code, _ = link
    index = data.draw(st.integers(min_value=0, max_value=len(code)))
    char = data.draw(mutation_chars)
    assert_invalid(ring, code[:index] + char + code[index:])


@SETTINGS
@given(links(), st.data())
def test_every_single_character_deletion_is_rejected(
    link: tuple[Keyring, str, LinkClaims], data: st.DataObject
) -> None:
    """Deleting any one character makes the code invalid."""
    ring, code, _ = link
    index = data.draw(st.integers(min_value=0, max_value=len(code) - 1))
    assert_invalid(ring, code[:index] + code[index + 1 :])


@SETTINGS
@given(links(), st.data())
def test_every_truncation_is_rejected(
    link: tuple[Keyring, str, LinkClaims], data: st.DataObject
) -> None:
    """Any strict prefix or suffix of a code is invalid."""
    ring, code, _ = link
    cut = data.draw(st.integers(min_value=0, max_value=len(code) - 1))
    assert_invalid(ring, code[:cut])
    assert_invalid(ring, code[len(code) - cut :])


@SETTINGS
@given(
    links(),
    st.text(alphabet="= \t\r\n.\x00A_-", min_size=1, max_size=8),
    st.booleans(),
)
def test_every_padding_is_rejected(
    link: tuple[Keyring, str, LinkClaims], padding: str, in_front: bool
) -> None:
    """Base64 padding, whitespace, dots or extra characters before or after: invalid."""
    ring, code, _ = link
    assert_invalid(ring, padding + code if in_front else code + padding)


@SETTINGS
@given(links(), st.data())
def test_padding_inside_a_segment_is_rejected(
    link: tuple[Keyring, str, LinkClaims], data: st.DataObject
) -> None:
    """Padding a segment of its own (here: with '=' up to a multiple of four) is invalid."""
    ring, code, _ = link
    segments = code.split(".")
    which = data.draw(st.integers(min_value=0, max_value=2))
    segments[which] += "=" * data.draw(st.integers(min_value=1, max_value=3))
    assert_invalid(ring, ".".join(segments))


@SETTINGS
@given(links(), kinds)
def test_a_link_never_verifies_as_another_kind(
    link: tuple[Keyring, str, LinkClaims], other: LinkKind
) -> None:
    """Asking for another kind, or swapping in another kind's header, is rejected."""
    ring, code, claims = link
    assume(other is not claims.kind)
    assert_invalid(ring, code, kind=other)
    other_code, _ = ring.issue(
        other,
        link_id=claims.link_id,
        advisor_id=claims.advisor_id,
        target=claims.target,
        includes_delegated_admin=claims.includes_delegated_admin,
        issued_at=claims.issued_at,
        expires_at=claims.expires_at,
    )
    header, payload, signature = code.split(".")
    other_header, other_payload, other_signature = other_code.split(".")
    assert_invalid(ring, f"{other_header}.{payload}.{signature}")
    assert_invalid(ring, f"{header}.{other_payload}.{signature}")
    assert_invalid(ring, f"{other_header}.{payload}.{other_signature}")
    assert_invalid(ring, f"{header}.{payload}.{other_signature}")


@SETTINGS
@given(links(), ids)
def test_splicing_another_partners_advisor_id_is_rejected(
    link: tuple[Keyring, str, LinkClaims], advisor_id: str
) -> None:
    """Another advisor id, spliced into the payload or with its own signature, fails."""
    ring, code, claims = link
    assume(advisor_id != claims.advisor_id)
    header, payload, signature = code.split(".")
    # The other partner's link, otherwise identical.
    theirs, _ = ring.issue(
        claims.kind,
        link_id=claims.link_id,
        advisor_id=advisor_id,
        target=claims.target,
        includes_delegated_admin=claims.includes_delegated_admin,
        issued_at=claims.issued_at,
        expires_at=claims.expires_at,
    )
    _their_header, their_payload, their_signature = theirs.split(".")
    assert_invalid(ring, f"{header}.{their_payload}.{signature}")
    assert_invalid(ring, f"{header}.{payload}.{their_signature}")
    # The payload re-encoded canonically with the other advisor id, old signature kept.
    edited = json.loads(unb64(payload)) | {"adv": advisor_id}
    edited_payload = b64(json.dumps(edited, separators=(",", ":"), sort_keys=True).encode())
    assert_invalid(ring, f"{header}.{edited_payload}.{signature}")


@SETTINGS
@given(links(), links())
def test_splicing_another_links_signature_is_rejected(
    first: tuple[Keyring, str, LinkClaims], second: tuple[Keyring, str, LinkClaims]
) -> None:
    """The signature of any other link does not fit this link's header and payload."""
    ring, code, _ = first
    _, other_code, _ = second
    assume(other_code != code)
    header, payload, signature = code.split(".")
    other_signature = other_code.split(".")[2]
    assume(other_signature != signature)
    assert_invalid(ring, f"{header}.{payload}.{other_signature}")


INJECTED_KIDS = ["../x", "' OR 1=1", "x" * 10_000, "", "../../etc/passwd", "\x00", "null"]


@SETTINGS
@given(links(), st.one_of(st.sampled_from(INJECTED_KIDS), st.text(max_size=64)))
def test_unknown_and_injected_key_ids_are_rejected(
    link: tuple[Keyring, str, LinkClaims], kid: str
) -> None:
    """A header naming a key the ring does not hold is invalid, however the kid looks."""
    ring, code, _ = link
    assume(kid not in ring.key_ids)
    header, payload, signature = code.split(".")
    fields = json.loads(unb64(header)) | {"kid": kid}
    forged = b64(json.dumps(fields, separators=(",", ":")).encode())
    assert_invalid(ring, f"{forged}.{payload}.{signature}")


@SETTINGS
@given(algorithms, kinds, claims_fields())
def test_links_of_another_ring_are_rejected(
    algorithm: str, kind: LinkKind, fields: dict[str, Any]
) -> None:
    """Another ring, of either algorithm, never signs a code this ring accepts."""
    ring = RINGS[algorithm]
    for other in (
        *OTHER_RINGS.values(),
        RINGS[ED25519 if algorithm == HMAC_SHA256 else HMAC_SHA256],
    ):
        code, _ = other.issue(kind, **fields)
        assert_invalid(ring, code)


@SETTINGS
@given(
    kinds,
    claims_fields(),
    st.sampled_from(["link_id", "advisor_id", "target"]),
    st.one_of(
        st.just(""),
        st.text(min_size=1).filter(lambda s: not (s.isascii() and s.isprintable())),
        st.text(alphabet=PRINTABLE_ASCII, min_size=MAX_ID_LENGTH + 1, max_size=MAX_ID_LENGTH * 3),
    ),
)
def test_issue_refuses_bad_ids_with_a_validation_error_only(
    kind: LinkKind, fields: dict[str, Any], field: str, bad: str
) -> None:
    """Empty, non-printable, non-ASCII or too long ids: ValidationError naming the field."""
    with pytest.raises(ValidationError) as info:
        RINGS[HMAC_SHA256].issue(kind, **(fields | {field: bad}))
    assert info.value.field == field


@SETTINGS
@given(links(), st.dictionaries(st.sampled_from(["lang", "ref", "utm_source"]), ids, max_size=3))
def test_urls_carry_the_code_unchanged(
    link: tuple[Keyring, str, LinkClaims], params: dict[str, str]
) -> None:
    """build_url then code_from_url gives the code back, whatever else the query holds."""
    ring, code, claims = link
    base = "https://portal.example/join" + (f"?{urlencode(params)}" if params else "")
    url = build_url(base, code)
    assert code_from_url(url) == code
    assert ring.verify(code_from_url(url), now=NOW) == claims


def _reference_code(url: str) -> str | None:
    """What urllib's general parser finds as the one ``code`` parameter, or ``None``."""
    try:
        pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return None
    codes = [value for name, value in pairs if name == "code"]
    return codes[0] if len(codes) == 1 else None


_QUERY_PARTS = st.sampled_from(
    [
        "code=abc.DEF-_1",
        "code=",
        "code",
        "code=x&code=y",
        "a=1",
        "b",
        "=",
        "&",
        "#f",
        "%63ode=z",
        "code=a+b",
        "c=[",
        "code=a.b.c",
        "cod=e",
        "xcode=1",
        ";",
        "code=%41",
        "code=ab\tc",
        "code=a\nb",
        "\r",
        "a=%20",
    ]
)


@given(
    base=st.sampled_from(
        ["https://portal.example/join", "http://[::1]/j", "/join", "", "https://p.example/j#x"]
    ),
    parts=st.lists(_QUERY_PARTS, max_size=4),
    joiner=st.sampled_from(["&", ""]),
)
def test_the_fast_url_parser_agrees_with_urllib(base: str, parts: list[str], joiner: str) -> None:
    """``code_from_url`` splits plain queries by hand for speed; for every URL it finds the
    same code as urllib's parser, or refuses it. It refuses every URL with white space or
    a control character (urllib drops tabs and line breaks silently)."""
    url = f"{base}?{joiner.join(parts)}"
    expected = _reference_code(url)
    try:
        found: str | None = code_from_url(url)
    except InvalidLink:
        found = None
    if found is not None:
        assert found == expected
        assert url.isprintable()
        assert " " not in url
    elif expected is not None and url.isprintable() and " " not in url:
        # Refused although urllib found a code: only when the code itself is malformed.
        assert not expected or not set(expected) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        )
