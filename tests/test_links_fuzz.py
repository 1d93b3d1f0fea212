"""A short fuzz run of link parsing inside the suite (the long one is fuzz/fuzz_links.py).

Arbitrary text, bytes read as latin-1, mangled valid codes and arbitrary payloads signed with
the ring's own key go into ``Keyring.verify`` and ``code_from_url``: the only exceptions that
may come out are InvalidLink and its subclasses, and no single input may take 50 ms.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from _links_kit import sign_raw
from partnerkit.errors import InvalidLink
from partnerkit.links import ED25519, HMAC_SHA256, Keyring, LinkClaims, LinkKind, code_from_url

NOW = datetime(2031, 6, 1, tzinfo=UTC)
SLOWEST = 0.050  # seconds one input may take

RINGS = {algorithm: Keyring.generate(algorithm) for algorithm in (HMAC_SHA256, ED25519)}
VALID = {
    algorithm: ring.issue(
        LinkKind.PURCHASE_OFFER,
        link_id="lnk-1",
        advisor_id="ADV-1",
        target="offer-1",
        includes_delegated_admin=True,
        issued_at=NOW,
        expires_at=NOW + timedelta(days=30),
    )[0]
    for algorithm, ring in RINGS.items()
}

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

latin1_text = st.binary(max_size=3000).map(lambda data: data.decode("latin-1"))
any_text = st.one_of(st.text(max_size=3000), latin1_text)


def _run(call: Callable[[], object]) -> tuple[object, float]:
    """The result (or InvalidLink) of ``call`` and the CPU time it took."""
    started = time.thread_time()
    try:
        result = call()
    except InvalidLink as error:
        result = error
    return result, time.thread_time() - started


def only_invalid_link_and_fast(call: Callable[[], object]) -> object:
    """Run ``call``; let only InvalidLink out, and fail if it takes 50 ms or more.

    Time is the thread's CPU time, so that waiting for a CPU on a busy machine does not
    count; a slow input is timed twice more and judged by its fastest run, so that a garbage
    collection of the test harness's objects does not count either.
    """
    result, elapsed = _run(call)
    if elapsed >= SLOWEST:
        elapsed = min(elapsed, *(_run(call)[1] for _ in range(2)))
    assert elapsed < SLOWEST, f"one input took {elapsed * 1000:.1f} ms"
    return result


@FUZZ
@given(any_text, st.sampled_from([HMAC_SHA256, ED25519]), st.sampled_from([None, *LinkKind]))
def test_arbitrary_text_into_verify_raises_only_invalid_link(
    text: str, algorithm: str, kind: LinkKind | None
) -> None:
    """Random text and latin-1 bytes are refused quickly with InvalidLink."""
    result = only_invalid_link_and_fast(lambda: RINGS[algorithm].verify(text, now=NOW, kind=kind))
    assert isinstance(result, InvalidLink)


@FUZZ
@given(any_text)
def test_arbitrary_text_into_code_from_url_raises_only_invalid_link(text: str) -> None:
    """Random text either yields a code-shaped string or an InvalidLink."""
    result = only_invalid_link_and_fast(lambda: code_from_url(text))
    assert isinstance(result, InvalidLink | str)


@FUZZ
@given(
    st.text(alphabet="abcAZ09-_.=&?#%+ :/[]é\x00", max_size=60),
    st.sampled_from(["https://portal.example/join?", "?", "http://[::1]/?a=1&", "//x?", ""]),
)
def test_url_shaped_input_into_code_from_url_raises_only_invalid_link(
    query: str, prefix: str
) -> None:
    """Queries built from the characters URLs are made of: a code or InvalidLink."""
    result = only_invalid_link_and_fast(lambda: code_from_url(f"{prefix}code={query}"))
    if isinstance(result, str):
        assert result
        assert set(result) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
        )


@FUZZ
@given(
    st.sampled_from([HMAC_SHA256, ED25519]),
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=2000), latin1_text.map(lambda s: s[:4])),
        min_size=1,
        max_size=4,
    ),
)
def test_mangled_valid_codes_raise_only_invalid_link(
    algorithm: str, edits: list[tuple[int, str]]
) -> None:
    """Valid codes with bytes inserted or replaced anywhere: InvalidLink, or unchanged."""
    code = VALID[algorithm]
    mangled = code
    for position, chunk in edits:
        at = position % (len(mangled) + 1)
        mangled = mangled[:at] + chunk + mangled[at + len(chunk) // 2 :]
    result = only_invalid_link_and_fast(lambda: RINGS[algorithm].verify(mangled, now=NOW))
    if mangled != code:
        assert isinstance(result, InvalidLink)


@FUZZ
@given(
    st.sampled_from([HMAC_SHA256, ED25519]),
    st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda payload: json.dumps(payload).encode(),
            st.dictionaries(
                st.sampled_from(["adv", "dla", "exp", "iat", "jti", "knd", "tgt", "ver", "x"]),
                st.one_of(
                    st.integers(min_value=-(10**20), max_value=10**20),
                    st.text(max_size=20),
                    st.booleans(),
                    st.none(),
                    st.floats(allow_nan=True),
                ),
            ),
        ),
    ),
)
def test_arbitrary_payloads_signed_with_the_rings_key_parse_safely(
    algorithm: str, payload: bytes
) -> None:
    """Past the signature, any payload is either canonical claims or an InvalidLink."""
    ring = RINGS[algorithm]
    code = sign_raw(ring, LinkKind.TRIAL_INVITATION, payload)
    result = only_invalid_link_and_fast(lambda: ring.verify(code, now=NOW))
    if isinstance(result, LinkClaims):
        decoded = json.loads(payload)
        assert payload == json.dumps(decoded, separators=(",", ":"), sort_keys=True).encode()


def _expected_outcome(payload: bytes, values: dict[str, object]) -> str:
    """What verify must say about a payload: "valid", "expired" or "invalid"."""
    canonical = json.dumps(values, separators=(",", ":"), sort_keys=True).encode()
    if payload != canonical or set(values) != {
        "adv",
        "dla",
        "exp",
        "iat",
        "jti",
        "knd",
        "tgt",
        "ver",
    }:
        return "invalid"
    ids = [values["adv"], values["jti"], values["tgt"]]
    iat, exp = values["iat"], values["exp"]
    if not (
        all(
            isinstance(i, str) and 0 < len(i) <= 128 and i.isascii() and i.isprintable()
            for i in ids
        )
        and values["knd"] == "trial_invitation"
        and type(values["ver"]) is int
        and values["ver"] == 1
        and type(values["dla"]) is bool
        and type(iat) is int
        and type(exp) is int
        and 0 < exp - iat <= 730 * 86400
        and iat <= NOW.timestamp() + 60
    ):
        return "invalid"
    return "valid" if NOW.timestamp() <= exp + 60 else "expired"


_printable = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1)
_odd_values = {
    "adv": st.one_of(st.just(""), st.text(max_size=3), st.text(min_size=129, max_size=140)),
    "dla": st.sampled_from([0, 1, None, "true"]),
    "exp": st.one_of(st.floats(allow_nan=False), st.just(-0)),
    "iat": st.sampled_from([None, "0", 1.5]),
    "jti": st.text(alphabet='lnk-"\\\t\x7fé', max_size=6),
    "knd": st.sampled_from([k.value for k in LinkKind] + ["TRIAL_INVITATION", ""]),
    "tgt": st.text(max_size=5),
    "ver": st.sampled_from([2, 0, True, 1.0, "1"]),
}


@st.composite
def near_canonical_values(draw: st.DrawFn) -> dict[str, object]:
    """Payload values, valid more often than not, with up to two fields made odd."""
    iat = int(NOW.timestamp()) - draw(st.integers(min_value=-100, max_value=400 * 86400))
    values: dict[str, object] = {
        "adv": draw(_printable.map(lambda s: s[:128])),
        "dla": draw(st.booleans()),
        "exp": iat + draw(st.integers(min_value=-10, max_value=731 * 86400) | st.just(86400)),
        "iat": iat,
        "jti": draw(st.text(alphabet='lnk-"\\/ ', min_size=1, max_size=12)),
        "knd": "trial_invitation",
        "tgt": draw(_printable.map(lambda s: s[:128])),
        "ver": 1,
    }
    for field in draw(st.lists(st.sampled_from(sorted(_odd_values)), max_size=2)):
        values[field] = draw(_odd_values[field])
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        values["x"] = 1
    return values


@FUZZ
@given(
    st.sampled_from([HMAC_SHA256, ED25519]),
    near_canonical_values(),
    st.sampled_from([True, True, True, False]),
    st.sampled_from([(",", ":"), (",", ":"), (", ", ": "), (",", ": ")]),
    st.booleans(),
)
def test_near_canonical_signed_payloads_verify_exactly_when_they_should(
    algorithm: str,
    values: dict[str, object],
    sort_keys: bool,
    separators: tuple[str, str],
    ensure_ascii: bool,
) -> None:
    """A reference model decides validity; the parser agrees on every signed payload."""
    payload = json.dumps(
        values, sort_keys=sort_keys, separators=separators, ensure_ascii=ensure_ascii
    ).encode()
    ring = RINGS[algorithm]
    result = only_invalid_link_and_fast(
        lambda: ring.verify(sign_raw(ring, LinkKind.TRIAL_INVITATION, payload), now=NOW)
    )
    expected = _expected_outcome(payload, values)
    event(expected)
    if expected == "valid":
        assert isinstance(result, LinkClaims)
        assert (result.advisor_id, result.link_id, result.target) == (
            values["adv"],
            values["jti"],
            values["tgt"],
        )
        assert result.includes_delegated_admin is values["dla"]
        assert result.issued_at.timestamp() == values["iat"]
        assert result.expires_at.timestamp() == values["exp"]
    else:
        assert isinstance(result, InvalidLink)
        assert (type(result).__name__ == "LinkExpired") == (expected == "expired")
