"""Link edges a mutation review found untested (seventh session): the bounds of the parser
(oversized codes refused before any cryptography, lifetimes, raw DEL, the skew), a bare
second `code` parameter, a fragment, and the active key signing."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import partnerkit.links as links_mod
from _links_kit import sign_raw, unb64
from partnerkit.errors import InvalidLink, LinkExpired
from partnerkit.links import (
    ED25519,
    HMAC_SHA256,
    MAX_CLOCK_SKEW,
    MAX_CODE_LENGTH,
    MAX_LINK_LIFETIME,
    Keyring,
    LinkKind,
    code_from_url,
)

T0 = datetime(2030, 1, 1, 12, tzinfo=UTC)
IAT = int(T0.timestamp())


def _issue(ring: Keyring) -> tuple[str, Any]:
    """A day-long trial invitation issued at ``T0``: its code and claims."""
    return ring.issue(
        LinkKind.TRIAL_INVITATION,
        link_id="l",
        advisor_id="a",
        target="t",
        includes_delegated_admin=False,
        issued_at=T0,
        expires_at=T0 + timedelta(days=1),
    )


def payload(**o):
    p = {
        "adv": "ADV",
        "dla": False,
        "exp": IAT + 86400,
        "iat": IAT,
        "jti": "lnk-1",
        "knd": "trial_invitation",
        "tgt": "EXCHANGE",
        "ver": 1,
    } | o
    return json.dumps(p, separators=(",", ":"), sort_keys=True).encode()


def assert_invalid(ring, code, now):
    with pytest.raises(InvalidLink) as info:
        ring.verify(code, now=now)
    assert type(info.value) is InvalidLink


@pytest.mark.parametrize("alg", [HMAC_SHA256, ED25519])
def test_oversized_code_is_refused_before_any_cryptography(alg, monkeypatch):
    # 2049 chars with a genuine header: no MAC / signature check may run.
    ring = Keyring.generate(alg)
    code, _ = _issue(ring)
    h, p, s = code.split(".")
    long = f"{h}.{p}.{s}" + "A" * (MAX_CODE_LENGTH + 1 - len(code))
    assert len(long) == MAX_CODE_LENGTH + 1
    calls = []
    monkeypatch.setattr(links_mod.hmac, "compare_digest", lambda *a: calls.append(a) or False)
    monkeypatch.setattr(links_mod, "_b64decode", lambda *a: calls.append(a) or b"")
    with pytest.raises(InvalidLink):
        ring.verify(long, now=T0)
    assert calls == []


@pytest.mark.parametrize("alg", [HMAC_SHA256, ED25519])
def test_a_signed_payload_with_zero_lifetime_is_invalid(alg):
    # exp == iat (a link that never lived) must not verify, even genuinely signed.
    ring = Keyring.generate(alg)
    assert_invalid(ring, sign_raw(ring, LinkKind.TRIAL_INVITATION, payload(exp=IAT)), T0)


@pytest.mark.parametrize("alg", [HMAC_SHA256, ED25519])
def test_a_signed_payload_one_second_over_the_longest_lifetime_is_invalid(alg):
    # 730 days + 1 s.
    ring = Keyring.generate(alg)
    exp = IAT + int(MAX_LINK_LIFETIME.total_seconds()) + 1
    assert_invalid(ring, sign_raw(ring, LinkKind.TRIAL_INVITATION, payload(exp=exp)), T0)
    ok = sign_raw(ring, LinkKind.TRIAL_INVITATION, payload(exp=exp - 1))
    assert ring.verify(ok, now=T0).link_id == "lnk-1"


@pytest.mark.parametrize("alg", [HMAC_SHA256, ED25519])
def test_a_signed_payload_with_a_del_character_is_invalid(alg):
    # ids are printable ASCII; DEL (0x7f) is not.
    ring = Keyring.generate(alg)
    raw = payload(tgt="aXb").replace(b"aXb", b"a\x7fb")  # json.dumps would write \u007f
    assert_invalid(ring, sign_raw(ring, LinkKind.TRIAL_INVITATION, raw), T0)


def test_the_clock_skew_is_at_most_60_seconds():
    # the spec's bound, independent of the constant.
    ring = Keyring.generate()
    code, claims = _issue(ring)
    assert timedelta(seconds=60) >= MAX_CLOCK_SKEW
    with pytest.raises(LinkExpired):
        ring.verify(code, now=claims.expires_at + timedelta(seconds=60, microseconds=1))
    assert_invalid(ring, code, T0 - timedelta(seconds=60, microseconds=1))


@pytest.mark.parametrize("query", ["code=abc&code", "code&code=abc", "x=1&code=abc&code"])
def test_a_bare_code_parameter_beside_a_code_is_two_codes(query):
    # urllib sees ("code", "") too: two codes, invalid.
    with pytest.raises(InvalidLink):
        code_from_url(f"https://portal.example/join?{query}")


def test_a_fragment_after_the_code_is_ignored():
    # the fragment is not part of the query (as urllib reads it).
    assert code_from_url("https://portal.example/join?code=abc.d-e_f#top") == "abc.d-e_f"


@pytest.mark.parametrize("alg", [HMAC_SHA256, ED25519])
def test_the_active_key_signs_even_when_it_is_not_the_last_one(alg):
    # a ring whose active key is not the newest (rolled back) signs with the active one.
    ring = Keyring.generate(alg)
    first = ring.active_key_id
    ring.rotate()
    doc = json.loads(ring.to_json())
    doc["active_key_id"] = first
    ring = Keyring.from_json(json.dumps(doc))
    code, claims = _issue(ring)
    assert json.loads(unb64(code.split(".")[0]))["kid"] == first
    assert ring.verify(code, now=T0) == claims
