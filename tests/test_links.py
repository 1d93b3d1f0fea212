"""Links: issuing, verifying, time limits, key rotation, serialisation, URLs and secrets."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from _links_kit import b64, sign_raw, unb64
from partnerkit.errors import InvalidLink, LinkExpired, NotFound, ValidationError
from partnerkit.links import (
    _REMEMBERED,
    DEFAULT_LINK_LIFETIME,
    ED25519,
    HMAC_SHA256,
    MAX_CLOCK_SKEW,
    MAX_CODE_LENGTH,
    MAX_ID_LENGTH,
    MAX_LINK_LIFETIME,
    Keyring,
    LinkClaims,
    LinkKind,
    build_url,
    code_from_url,
)

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
ALGORITHMS = [HMAC_SHA256, ED25519]


def issue(ring: Keyring, kind: LinkKind = LinkKind.TRIAL_INVITATION, /, **overrides: Any) -> str:
    """Issue a link valid from T0 for the default lifetime; return its code."""
    fields: dict[str, Any] = {
        "link_id": "lnk-1",
        "advisor_id": "ADV-CONTOSO",
        "target": "EXCHANGE",
        "includes_delegated_admin": False,
        "issued_at": T0,
        "expires_at": T0 + DEFAULT_LINK_LIFETIME,
    }
    fields.update(overrides)
    code, _ = ring.issue(kind, **fields)
    return code


def secrets_of(ring: Keyring) -> list[str]:
    """Every secret of the ring in the encodings a leak could take."""
    found = []
    for key in json.loads(ring.to_json())["keys"]:
        raw = unb64(key["secret"])
        found += [key["secret"], raw.hex(), base64.b64encode(raw).decode().rstrip("="), repr(raw)]
    return found


def canonical_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "adv": "ADV-CONTOSO",
        "dla": False,
        "exp": int((T0 + DEFAULT_LINK_LIFETIME).timestamp()),
        "iat": int(T0.timestamp()),
        "jti": "lnk-1",
        "knd": "trial_invitation",
        "tgt": "EXCHANGE",
        "ver": 1,
    }
    payload.update(overrides)
    return payload


def dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def assert_invalid(ring: Keyring, code: object, **kwargs: Any) -> None:
    """Verifying fails with exactly InvalidLink and its one fixed message."""
    kwargs.setdefault("now", T0 + timedelta(days=1))
    with pytest.raises(InvalidLink) as info:
        ring.verify(code, **kwargs)  # type: ignore[arg-type]
    assert type(info.value) is InvalidLink
    assert str(info.value) == InvalidLink.FIXED_MESSAGE


@pytest.fixture(params=ALGORITHMS)
def ring(request: pytest.FixtureRequest) -> Keyring:
    """A fresh key ring of each algorithm."""
    return Keyring.generate(request.param)


class TestIssueAndVerify:
    """A link issued by a ring verifies there with the claims it was issued with."""

    @pytest.mark.parametrize("kind", list(LinkKind))
    def test_a_link_of_every_kind_verifies_with_its_claims(
        self, ring: Keyring, kind: LinkKind
    ) -> None:
        """verify returns exactly the claims that issue returned."""
        code, claims = ring.issue(
            kind,
            link_id="lnk-42",
            advisor_id="ADV-1",
            target="offer-7",
            includes_delegated_admin=True,
            issued_at=T0,
            expires_at=T0 + timedelta(days=30),
        )
        assert ring.verify(code, now=T0) == claims
        assert ring.verify(code, now=T0, kind=kind) == claims
        assert claims == LinkClaims(
            version=1,
            kind=kind,
            link_id="lnk-42",
            advisor_id="ADV-1",
            target="offer-7",
            includes_delegated_admin=True,
            issued_at=T0,
            expires_at=T0 + timedelta(days=30),
            key_id=ring.active_key_id,
        )

    def test_times_are_returned_in_utc_rounded_down_to_whole_seconds(self, ring: Keyring) -> None:
        """An aware time in another zone with microseconds comes back as whole UTC seconds."""
        plus_two = timezone(timedelta(hours=2))
        issued = datetime(2030, 1, 1, 14, 0, 0, 999_999, tzinfo=plus_two)
        code, claims = ring.issue(
            LinkKind.PURCHASE_OFFER,
            link_id="l",
            advisor_id="a",
            target="t",
            includes_delegated_admin=False,
            issued_at=issued,
            expires_at=issued + timedelta(days=1),
        )
        assert claims.issued_at == T0
        assert claims.issued_at.tzinfo is UTC
        assert claims.expires_at == T0 + timedelta(days=1)
        assert claims.expires_at.tzinfo is UTC
        assert ring.verify(code, now=T0) == claims

    def test_issuing_the_same_claims_again_gives_the_same_code(self, ring: Keyring) -> None:
        """Codes are deterministic: one set of claims has exactly one code per key."""
        assert issue(ring) == issue(ring)

    def test_the_code_is_a_compact_jws_with_the_kind_in_header_and_payload(
        self, ring: Keyring
    ) -> None:
        """Header and payload are canonical JSON with the documented fields."""
        code = issue(ring, LinkKind.DELEGATED_ADMIN, includes_delegated_admin=True)
        header, payload, _ = code.split(".")
        alg = "EdDSA" if ring.algorithm == ED25519 else "HS256"
        assert json.loads(unb64(header)) == {
            "alg": alg,
            "kid": ring.active_key_id,
            "typ": "partnerkit-delegated-admin+jwt",
        }
        decoded = unb64(payload)
        assert decoded == dumps(
            canonical_payload(knd="delegated_admin", dla=True),
        )

    def test_ids_of_maximal_length_full_of_escaped_characters_fit_in_a_code(
        self, ring: Keyring
    ) -> None:
        """The longest ids, each character needing a JSON escape, still make a valid code."""
        longest = '"\\' * (MAX_ID_LENGTH // 2)
        code, claims = ring.issue(
            LinkKind.DELEGATED_ADMIN,
            link_id=longest,
            advisor_id=longest,
            target=longest,
            includes_delegated_admin=False,
            issued_at=T0,
            expires_at=T0 + MAX_LINK_LIFETIME,
        )
        assert len(code) <= MAX_CODE_LENGTH
        assert ring.verify(code, now=T0) == claims
        assert claims.link_id == longest

    def test_a_code_of_one_kind_is_invalid_when_another_kind_is_expected(
        self, ring: Keyring
    ) -> None:
        """Asking for a kind rejects codes of every other kind."""
        code = issue(ring, LinkKind.TRIAL_INVITATION)
        for other in (LinkKind.PURCHASE_OFFER, LinkKind.DELEGATED_ADMIN):
            assert_invalid(ring, code, kind=other)

    def test_a_kind_that_is_not_a_link_kind_is_a_validation_error(self, ring: Keyring) -> None:
        """A string where a LinkKind belongs is a programming error, not an invalid link."""
        code = issue(ring)
        with pytest.raises(ValidationError) as info:
            ring.verify(code, now=T0, kind="purchase_offer")  # type: ignore[arg-type]
        assert info.value.field == "kind"

    def test_a_naive_now_is_a_validation_error(self, ring: Keyring) -> None:
        """The injected clock must be aware."""
        with pytest.raises(ValidationError) as info:
            ring.verify(issue(ring), now=datetime(2030, 1, 1))
        assert info.value.field == "now"

    def test_without_now_the_real_utc_clock_decides(self, ring: Keyring) -> None:
        """A link valid today verifies without now; one from 2001 has expired."""
        today = datetime.now(UTC)
        code = issue(ring, issued_at=today, expires_at=today + timedelta(hours=1))
        assert ring.verify(code).link_id == "lnk-1"
        old = datetime(2001, 1, 1, tzinfo=UTC)
        with pytest.raises(LinkExpired):
            ring.verify(issue(ring, issued_at=old, expires_at=old + timedelta(days=1)))


class TestTimeLimits:
    """Expiry is mandatory and the clock skew is the only leeway."""

    def test_a_link_is_valid_one_second_before_it_expires(self, ring: Keyring) -> None:
        """The last second of its lifetime is still valid."""
        expires = T0 + timedelta(days=7)
        code = issue(ring, expires_at=expires)
        assert ring.verify(code, now=expires - timedelta(seconds=1)).expires_at == expires

    def test_a_link_is_valid_within_the_clock_skew_after_expiry(self, ring: Keyring) -> None:
        """Up to MAX_CLOCK_SKEW after expires_at, inclusive, it still verifies."""
        expires = T0 + timedelta(days=7)
        code = issue(ring, expires_at=expires)
        assert ring.verify(code, now=expires)
        assert ring.verify(code, now=expires + MAX_CLOCK_SKEW)

    def test_a_link_expires_just_after_the_clock_skew(self, ring: Keyring) -> None:
        """One microsecond past expires_at + MAX_CLOCK_SKEW raises LinkExpired."""
        expires = T0 + timedelta(days=7)
        code = issue(ring, expires_at=expires)
        for late in (timedelta(microseconds=1), timedelta(seconds=1), timedelta(days=400)):
            with pytest.raises(LinkExpired):
                ring.verify(code, now=expires + MAX_CLOCK_SKEW + late)

    def test_a_link_issued_in_the_future_beyond_the_skew_is_invalid(self, ring: Keyring) -> None:
        """issued_at > now + MAX_CLOCK_SKEW is an InvalidLink, not an expiry."""
        code = issue(ring)
        assert ring.verify(code, now=T0 - MAX_CLOCK_SKEW)
        assert_invalid(ring, code, now=T0 - MAX_CLOCK_SKEW - timedelta(microseconds=1))
        assert_invalid(ring, code, now=T0 - timedelta(days=1))

    def test_an_expired_link_with_a_bad_signature_is_invalid_not_expired(
        self, ring: Keyring
    ) -> None:
        """LinkExpired is only raised once the signature verified."""
        code = issue(ring)
        forged = code[:-2] + ("AA" if code[-2:] != "AA" else "BA")
        assert_invalid(ring, forged, now=T0 + timedelta(days=1000))

    def test_expiry_needs_no_now_from_the_caller_to_be_enforced(self, ring: Keyring) -> None:
        """There is no way to verify without a time limit: now=None reads the clock."""
        code = issue(
            ring, issued_at=T0 - timedelta(days=20000), expires_at=T0 - timedelta(days=19990)
        )
        with pytest.raises(LinkExpired):
            ring.verify(code)

    @pytest.mark.parametrize("field", ["issued_at", "expires_at"])
    def test_naive_or_non_datetime_times_are_refused(self, ring: Keyring, field: str) -> None:
        """Issuing needs aware datetimes."""
        for bad in (datetime(2030, 1, 1), "2030-01-01T00:00:00Z", 1_900_000_000):
            with pytest.raises(ValidationError) as info:
                issue(ring, **{field: bad})
            assert info.value.field == field

    def test_a_lifetime_that_is_not_positive_is_refused(self, ring: Keyring) -> None:
        """expires_at must be after issued_at, also after rounding to whole seconds."""
        for expires in (T0, T0 - timedelta(days=1), T0 + timedelta(microseconds=999_999)):
            with pytest.raises(ValidationError) as info:
                issue(ring, expires_at=expires)
            assert info.value.field == "expires_in"

    def test_the_longest_lifetime_is_accepted_and_a_second_more_refused(
        self, ring: Keyring
    ) -> None:
        """MAX_LINK_LIFETIME is inclusive."""
        code = issue(ring, expires_at=T0 + MAX_LINK_LIFETIME)
        assert ring.verify(code, now=T0).expires_at == T0 + MAX_LINK_LIFETIME
        with pytest.raises(ValidationError) as info:
            issue(ring, expires_at=T0 + MAX_LINK_LIFETIME + timedelta(seconds=1))
        assert info.value.field == "expires_in"

    def test_times_at_the_edges_of_the_datetime_range_are_refused_cleanly(
        self, ring: Keyring
    ) -> None:
        """A time whose UTC form leaves the datetime range is a ValidationError."""
        edge = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))
        with pytest.raises(ValidationError) as info:
            issue(ring, issued_at=edge, expires_at=edge + timedelta(days=1))
        assert info.value.field == "issued_at"


class TestIssueValidation:
    """issue refuses bad ids and flags with a ValidationError naming the field."""

    @pytest.mark.parametrize("field", ["link_id", "advisor_id", "target"])
    @pytest.mark.parametrize(
        "bad",
        [
            "",
            "é",
            "tab\there",
            "new\nline",
            "\x00",
            "\x7f",
            "x" * (MAX_ID_LENGTH + 1),
            None,
            42,
            b"x",
        ],
    )
    def test_ids_must_be_short_printable_ascii(
        self, ring: Keyring, field: str, bad: object
    ) -> None:
        """Empty, non-ASCII, control characters, too long or not a str: refused."""
        with pytest.raises(ValidationError) as info:
            issue(ring, **{field: bad})
        assert info.value.field == field

    @pytest.mark.parametrize("bad", [1, 0, None, "true"])
    def test_the_delegated_admin_flag_must_be_a_bool(self, ring: Keyring, bad: object) -> None:
        """1 is not True here."""
        with pytest.raises(ValidationError) as info:
            issue(ring, includes_delegated_admin=bad)
        assert info.value.field == "includes_delegated_admin"

    def test_the_kind_must_be_a_link_kind(self, ring: Keyring) -> None:
        """Its string value is not enough."""
        with pytest.raises(ValidationError) as info:
            issue(ring, "trial_invitation")  # type: ignore[arg-type]
        assert info.value.field == "kind"


class TestMalformedCodes:
    """Anything but a code the ring issued is an InvalidLink with the fixed message."""

    @pytest.mark.parametrize(
        "code",
        [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            "x" * (MAX_CODE_LENGTH + 1),
            "é.é.é",
            "\x00",
            None,
            42,
            b"a.b.c",
            ["a", "b", "c"],
        ],
    )
    def test_garbage_is_an_invalid_link(self, ring: Keyring, code: object) -> None:
        """No TypeError, ValueError or dependency error escapes."""
        assert_invalid(ring, code)

    def test_a_valid_code_padded_beyond_the_length_limit_is_invalid(self, ring: Keyring) -> None:
        """The length check comes first, even with a valid code inside."""
        code = issue(ring)
        assert_invalid(ring, code + "A" * (MAX_CODE_LENGTH - len(code) + 1))

    def test_an_hmac_link_is_invalid_against_an_ed25519_ring_and_back(self) -> None:
        """The algorithm comes from the ring, never from the link."""
        hmac_ring = Keyring.generate(HMAC_SHA256)
        ed_ring = Keyring.generate(ED25519)
        assert_invalid(ed_ring, issue(hmac_ring))
        assert_invalid(hmac_ring, issue(ed_ring))

    def test_a_link_of_another_ring_of_the_same_algorithm_is_invalid(self, ring: Keyring) -> None:
        """Another ring's key is an unknown key."""
        other = Keyring.generate(ring.algorithm)
        assert_invalid(ring, issue(other))

    def test_a_link_is_invalid_if_its_kid_is_forged_to_the_rings_active_key(
        self, ring: Keyring
    ) -> None:
        """A foreign signature under the ring's kid fails the signature check."""
        other = Keyring.generate(ring.algorithm)
        foreign = issue(other).split(".")
        header = json.loads(unb64(foreign[0]))
        header["kid"] = ring.active_key_id
        forged_header = b64(json.dumps(header, separators=(",", ":")).encode())
        assert_invalid(ring, ".".join([forged_header, *foreign[1:]]))

    def test_alg_none_and_other_algorithms_in_the_header_are_invalid(self, ring: Keyring) -> None:
        """The header's alg is never consulted: only headers the ring made are known."""
        code = issue(ring)
        header, payload, signature = code.split(".")
        for alg in ("none", "HS256", "EdDSA", "RS256", "HS512"):
            forged = json.loads(unb64(header)) | {"alg": alg}
            segment = b64(json.dumps(forged, separators=(",", ":")).encode())
            if segment != header:
                assert_invalid(ring, f"{segment}.{payload}.{signature}")
                assert_invalid(ring, f"{segment}.{payload}.")


class TestCanonicalForm:
    """Only the canonical encoding verifies, even when the signature is genuine."""

    def test_the_signing_helper_makes_valid_codes_from_canonical_payloads(
        self, ring: Keyring
    ) -> None:
        """Control: the helper below signs exactly like the ring."""
        assert sign_raw(ring, LinkKind.TRIAL_INVITATION, dumps(canonical_payload())) == issue(ring)

    @pytest.mark.parametrize(
        "payload",
        [
            json.dumps(canonical_payload(), sort_keys=True).encode(),  # whitespace
            json.dumps(canonical_payload(), separators=(",", ":")).encode()[:-1] + b" }",
            dumps(canonical_payload()) + b"\n",
            b"\xef\xbb\xbf" + dumps(canonical_payload()),  # BOM
            dumps(canonical_payload()).replace(b'"EXCHANGE"', b'"\\u0045XCHANGE"'),
            dumps(canonical_payload()).replace(b'"lnk-1"', b'"lnk\\/1"'),
            dumps(canonical_payload()).replace(b'"ver":1', b'"ver":1.0'),
            dumps(canonical_payload()).replace(b'"ver":1', b'"ver":true'),
            dumps(canonical_payload()).replace(b'"dla":false', b'"dla":0'),
            dumps(canonical_payload()).replace(b'{"adv"', b'{"adv":"EVIL","adv"'),
            json.dumps(dict(reversed(canonical_payload().items())), separators=(",", ":")).encode(),
            dumps(canonical_payload(extra=1)),
            dumps({k: v for k, v in canonical_payload().items() if k != "exp"}),
            dumps(canonical_payload(ver=2)),
            dumps(canonical_payload(knd="purchase_offer")),
            dumps(canonical_payload(iat=canonical_payload()["exp"])),
            dumps(canonical_payload(exp=canonical_payload()["iat"] + 731 * 86400)),
            dumps(canonical_payload(jti="")),
            dumps(canonical_payload(adv="x" * (MAX_ID_LENGTH + 1))),
            dumps(canonical_payload(tgt="caf\u00e9")),
            dumps(canonical_payload(tgt="a\tb")),
            dumps(canonical_payload(iat=str(canonical_payload()["iat"]))),
            json.dumps([1, 2, 3]).encode(),
            b"null",
            b"",
            b"\xff\xfe",
        ],
    )
    def test_a_genuinely_signed_but_non_canonical_payload_is_invalid(
        self, ring: Keyring, payload: bytes
    ) -> None:
        """Whitespace, escapes, key order, duplicates, wrong types or bounds: refused."""
        assert_invalid(ring, sign_raw(ring, LinkKind.TRIAL_INVITATION, payload))

    def test_a_negative_zero_timestamp_is_not_canonical(self) -> None:
        """-0 parses as 0 in JSON; only the shortest form counts."""
        ring = Keyring.generate()
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        code = issue(ring, issued_at=epoch, expires_at=epoch + timedelta(days=1))
        assert ring.verify(code, now=epoch).issued_at == epoch
        payload = dumps(canonical_payload(iat=0, exp=86400)).replace(b'"iat":0', b'"iat":-0')
        assert_invalid(ring, sign_raw(ring, LinkKind.TRIAL_INVITATION, payload), now=epoch)

    def test_a_non_canonical_last_signature_character_is_invalid(self, ring: Keyring) -> None:
        """Base64 characters that decode to the same signature bytes are still refused."""
        code = issue(ring)
        last = code[-1]
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        same_bytes = [
            c
            for c in alphabet
            if c != last and unb64(code.split(".")[2][:-1] + c) == unb64(code.split(".")[2])
        ]
        assert same_bytes  # unused low bits exist in both signature lengths
        for c in same_bytes:
            assert_invalid(ring, code[:-1] + c)

    @pytest.mark.parametrize("suffix", ["=", "==", " ", "\n", "\t", "."])
    def test_padding_and_whitespace_are_invalid(self, ring: Keyring, suffix: str) -> None:
        """A padded or wrapped code is not the code."""
        code = issue(ring)
        assert_invalid(ring, code + suffix)
        assert_invalid(ring, suffix + code)
        header, payload, signature = code.split(".")
        assert_invalid(ring, f"{header}{suffix}.{payload}.{signature}")
        assert_invalid(ring, f"{header}.{payload}{suffix}.{signature}")


class TestKeyRotation:
    """Several keys with ids; the newest signs; retired keys verify until removed."""

    def test_old_links_verify_after_rotation_until_their_key_is_removed(
        self, ring: Keyring
    ) -> None:
        """rotate keeps old keys; remove makes their links invalid at once."""
        old_kid = ring.active_key_id
        old_code = issue(ring)
        new_kid = ring.rotate()
        assert new_kid != old_kid
        assert ring.active_key_id == new_kid
        assert ring.key_ids == (old_kid, new_kid)
        assert ring.verify(old_code, now=T0).key_id == old_kid
        new_code = issue(ring)
        assert ring.verify(new_code, now=T0).key_id == new_kid
        ring.remove(old_kid)
        assert list(ring.key_ids) == [new_kid]
        assert_invalid(ring, old_code)
        assert ring.verify(new_code, now=T0).key_id == new_kid

    def test_rotation_keeps_the_algorithm(self, ring: Keyring) -> None:
        """A rotated Ed25519 ring still makes Ed25519 links."""
        algorithm = ring.algorithm
        ring.rotate()
        assert ring.algorithm == algorithm
        header = json.loads(unb64(issue(ring).split(".")[0]))
        assert header["alg"] == ("EdDSA" if algorithm == ED25519 else "HS256")

    def test_removing_the_active_key_is_a_validation_error(self, ring: Keyring) -> None:
        """A ring always keeps a key to sign with."""
        with pytest.raises(ValidationError) as info:
            ring.remove(ring.active_key_id)
        assert info.value.field == "kid"

    def test_a_staged_key_verifies_and_signs_only_once_activated(self, ring: Keyring) -> None:
        """``rotate(activate=False)`` adds a key every server can verify with before any of
        them signs with it; ``activate`` makes it sign, and an older key may sign again."""
        old_kid = ring.active_key_id
        staged = ring.rotate(activate=False)
        assert ring.key_ids == (old_kid, staged)
        assert ring.active_key_id == old_kid
        assert ring.verify(issue(ring), now=T0).key_id == old_kid
        # Another server loaded the ring while the key was staged: it verifies what this
        # one signs after the activation.
        other = Keyring.from_json(ring.to_json())
        assert other.active_key_id == old_kid
        ring.activate(staged)
        assert ring.active_key_id == staged
        code = issue(ring)
        assert other.verify(code, now=T0).key_id == staged
        assert Keyring.from_json(ring.to_json()).active_key_id == staged
        ring.activate(old_kid)
        assert ring.verify(issue(ring), now=T0).key_id == old_kid
        assert ring.verify(code, now=T0).key_id == staged

    @pytest.mark.parametrize("kid", ["nope", "", 42, None, b"x"])
    def test_activating_an_unknown_key_is_not_found(self, ring: Keyring, kid: object) -> None:
        """Only a key of the ring is activated; the ring is unchanged otherwise."""
        before = ring.to_json()
        with pytest.raises(NotFound) as info:
            ring.activate(kid)  # type: ignore[arg-type]
        assert info.value.kind == "key"
        assert ring.to_json() == before

    @pytest.mark.parametrize("activate", [None, 1, "yes"])
    def test_rotate_takes_only_a_bool(self, ring: Keyring, activate: object) -> None:
        """A mistyped ``activate`` adds no key."""
        with pytest.raises(ValidationError) as info:
            ring.rotate(activate=activate)  # type: ignore[arg-type]
        assert info.value.field == "activate"
        assert len(ring.key_ids) == 1

    def test_a_key_id_that_is_not_text_is_no_key(self, ring: Keyring) -> None:
        """An object whose ``==`` raises or says yes to everything is not asked: it names no
        key, for ``remove`` and ``activate`` alike."""

        class Raises:
            def __eq__(self, other: object) -> bool:
                raise RuntimeError("asked")

            __hash__ = object.__hash__

        class Yes:
            def __eq__(self, other: object) -> bool:
                return True

            __hash__ = object.__hash__

        for kid in [Raises(), Yes(), 7, None]:
            with pytest.raises(NotFound):
                ring.remove(kid)  # type: ignore[arg-type]
            with pytest.raises(NotFound):
                ring.activate(kid)  # type: ignore[arg-type]
        assert len(ring.key_ids) == 1

    def test_a_key_id_of_a_str_subclass_is_judged_by_its_text(self, ring: Keyring) -> None:
        """A typed id (a ``str`` subclass) of the active key is still the active key, and one
        whose ``__eq__`` lies removes nothing it does not name: the ring keeps a signer."""

        class KeyId(str):
            pass

        class Liar(str):
            def __eq__(self, other: object) -> bool:
                return True

            def __ne__(self, other: object) -> bool:
                return False

            __hash__ = str.__hash__

        active = ring.active_key_id
        with pytest.raises(ValidationError):
            ring.remove(KeyId(active))
        ring.rotate()
        with pytest.raises(NotFound):
            ring.remove(Liar("zz"))
        assert ring.key_ids[0] == active
        assert len(ring.key_ids) == 2
        ring.remove(KeyId(active))
        assert active not in ring.key_ids
        assert ring.verify(issue(ring), now=T0).key_id == ring.active_key_id

    @pytest.mark.parametrize("kid", ["nope", "", "../x", "' OR 1=1", "x" * 10_000])
    def test_removing_an_unknown_key_is_not_found(self, ring: Keyring, kid: str) -> None:
        """An unknown kid is a NotFound (a LookupError)."""
        with pytest.raises(NotFound) as info:
            ring.remove(kid)
        assert info.value.kind == "key"
        assert isinstance(info.value, LookupError)

    def test_concurrent_verifies_survive_rotation_and_removal(self, ring: Keyring) -> None:
        """Verifying threads never fail while another thread rotates and removes keys."""
        keeper = ring.active_key_id
        kept_code = issue(ring)
        failures: list[BaseException] = []
        stop = threading.Event()

        def verify_forever() -> None:
            while not stop.is_set():
                try:
                    assert ring.verify(kept_code, now=T0).key_id == keeper
                except BaseException as error:
                    failures.append(error)
                    return

        threads = [threading.Thread(target=verify_forever) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(30):
                previous = ring.active_key_id
                ring.rotate()
                if previous != keeper:
                    ring.remove(previous)
                issue(ring)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert failures == []
        assert ring.key_ids[0] == keeper
        assert len(ring.key_ids) == 2

    def test_concurrent_rotations_lose_no_key(self) -> None:
        """Writers are serialised: every rotation's key stays in the ring."""
        ring = Keyring.generate()
        kids: list[str] = []

        def rotate_ten_times() -> None:
            for _ in range(10):
                kids.append(ring.rotate())

        threads = [threading.Thread(target=rotate_ten_times) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(kids) <= set(ring.key_ids)
        assert len(ring.key_ids) == 61


class TestSerialisation:
    """to_json and from_json round-trip a ring; bad input is a ValidationError."""

    def test_a_ring_survives_a_round_trip_through_json(self, ring: Keyring) -> None:
        """Same keys, same active key, the same codes, and old links still verify."""
        old_code = issue(ring)
        ring.rotate()
        loaded = Keyring.from_json(ring.to_json())
        assert loaded.algorithm == ring.algorithm
        assert loaded.key_ids == ring.key_ids
        assert loaded.active_key_id == ring.active_key_id
        assert loaded.verify(old_code, now=T0) == ring.verify(old_code, now=T0)
        assert issue(loaded) == issue(ring)
        assert loaded.to_json() == ring.to_json()

    def test_unknown_algorithms_are_refused(self) -> None:
        """Only hmac-sha256 and ed25519 exist."""
        for algorithm in ("HS256", "rsa", "", None):
            with pytest.raises(ValidationError) as info:
                Keyring.generate(algorithm)  # type: ignore[arg-type]
            assert info.value.field == "algorithm"

    @staticmethod
    def _variants(ring: Keyring) -> list[object]:
        document = json.loads(ring.to_json())
        key = document["keys"][0]

        def with_(**changes: Any) -> str:
            return json.dumps(document | changes)

        def with_key(**changes: Any) -> str:
            return with_(keys=[key | changes])

        secret = key["secret"]
        return [
            "",
            "{",
            "[]",
            "null",
            "42",
            '"text"',
            "[" * 100_000,
            b"\xff\xfe\x00",
            None,
            42,
            with_(format=2),
            with_(format=True),
            with_(algorithm="rsa"),
            with_(algorithm=None),
            with_(keys=[]),
            with_(keys={}),
            with_(keys=[1]),
            with_(keys=[key, key]),
            with_(active_key_id="missing"),
            with_(active_key_id=None),
            with_key(kid=""),
            with_key(kid="../x"),
            with_key(kid="' OR 1=1"),
            with_key(kid="x" * 10_000),
            with_key(kid=7),
            with_key(secret=secret + "="),
            with_key(secret=secret[:-1]),
            with_key(secret=secret + "!"),
            with_key(secret=secret[:-4]),
            with_key(secret=" " + secret),
            with_key(secret="é" * 43),
            with_key(secret=None),
            with_key(secret=b64(b"\x00" * 16)),
            with_key(secret=b64(b"\x00" * 100)),
            with_key(extra="field"),
            json.dumps({k: v for k, v in document.items() if k != "keys"}),
        ]

    def test_bad_json_is_a_validation_error_that_names_no_secret(self, ring: Keyring) -> None:
        """Malformed text, wrong types, bad ids or secrets: ValidationError, never a leak."""
        leaks = secrets_of(ring)
        for variant in self._variants(ring):
            with pytest.raises(ValidationError) as info:
                Keyring.from_json(variant)  # type: ignore[arg-type]
            message = str(info.value)
            assert not any(leak in message for leak in leaks), message
            # No json, binascii or cryptography error shows through, not even as context.
            assert info.value.__cause__ is None
            assert info.value.__context__ is None or info.value.__suppress_context__

    def test_the_public_jwks_lists_every_ed25519_key(self) -> None:
        """One OKP Ed25519 JWK per key, with kid, alg EdDSA and use sig."""
        ring = Keyring.generate(ED25519)
        ring.rotate()
        jwks = ring.public_jwks()
        assert [jwk["kid"] for jwk in jwks["keys"]] == list(ring.key_ids)
        for jwk in jwks["keys"]:
            assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
            assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["use"]) == (
                "OKP",
                "Ed25519",
                "EdDSA",
                "sig",
            )
            assert len(unb64(jwk["x"])) == 32
        assert not any(leak in json.dumps(jwks) for leak in secrets_of(ring))

    def test_an_hmac_ring_has_no_public_keys(self) -> None:
        """Asking an HMAC ring for a JWKS is a ValidationError."""
        with pytest.raises(ValidationError) as info:
            Keyring.generate().public_jwks()
        assert info.value.field == "algorithm"


class TestSecrets:
    """Secrets never appear in repr, str or errors."""

    def test_repr_and_str_of_a_ring_show_ids_but_no_secret(self, ring: Keyring) -> None:
        """The repr names the algorithm and key ids only."""
        ring.rotate()
        for text in (repr(ring), str(ring), f"{ring}"):
            assert ring.active_key_id in text
            assert not any(leak in text for leak in secrets_of(ring))

    def test_errors_and_claims_carry_no_secret(self, ring: Keyring) -> None:
        """Nothing a caller sees after verify or a failed call holds a secret."""
        leaks = secrets_of(ring)
        code = issue(ring)
        seen = [repr(ring.verify(code, now=T0))]
        attempts: list[Callable[[], object]] = [
            lambda: ring.verify(code[:-1], now=T0),
            lambda: ring.verify(code, now=T0 + timedelta(days=1000)),
            lambda: ring.remove(ring.active_key_id),
            lambda: ring.remove("nope"),
            lambda: issue(ring, link_id=""),
            lambda: ring.verify(code, now=datetime(2030, 1, 1)),
        ]
        for attempt in attempts:
            with pytest.raises(Exception) as info:  # noqa: PT011 - any error, checked below
                attempt()
            seen += [str(info.value), repr(info.value), repr(info.value.args)]
        assert not any(leak in text for leak in leaks for text in seen)


class TestPyJWTInteroperability:
    """A storefront verifies Ed25519 links with a standard JOSE library and the JWKS."""

    def test_pyjwt_verifies_an_ed25519_link_with_the_published_jwk(self) -> None:
        """PyJWT decodes the payload and sees kid and the per-kind typ."""
        ring = Keyring.generate(ED25519)
        now = datetime.now(UTC).replace(microsecond=0)
        code, claims = ring.issue(
            LinkKind.PURCHASE_OFFER,
            link_id="lnk-9",
            advisor_id="ADV-9",
            target="offer-9",
            includes_delegated_admin=True,
            issued_at=now,
            expires_at=now + timedelta(days=1),
        )
        header = jwt.get_unverified_header(code)
        assert header == {
            "alg": "EdDSA",
            "kid": ring.active_key_id,
            "typ": LinkKind.PURCHASE_OFFER.jws_type,
        }
        jwk = jwt.PyJWKSet.from_dict(ring.public_jwks())[header["kid"]]
        payload = jwt.decode(code, jwk.key, algorithms=["EdDSA"])
        assert payload == {
            "adv": "ADV-9",
            "dla": True,
            "exp": int(claims.expires_at.timestamp()),
            "iat": int(claims.issued_at.timestamp()),
            "jti": "lnk-9",
            "knd": "purchase_offer",
            "tgt": "offer-9",
            "ver": 1,
        }

    def test_pyjwt_rejects_the_link_with_a_different_key(self) -> None:
        """Another ring's public key does not verify the link."""
        ring = Keyring.generate(ED25519)
        other = Keyring.generate(ED25519)
        now = datetime.now(UTC)
        code = issue(ring, issued_at=now, expires_at=now + timedelta(days=1))
        wrong = jwt.PyJWK(other.public_jwks()["keys"][0])
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(code, wrong.key, algorithms=["EdDSA"])

    def test_pyjwt_signing_the_canonical_claims_makes_the_very_same_code(self) -> None:
        """The format is plain JWS: PyJWT with the ring's key writes byte-identical codes."""
        ring = Keyring.generate(ED25519)
        seed = unb64(json.loads(ring.to_json())["keys"][0]["secret"])
        private = Ed25519PrivateKey.from_private_bytes(seed)
        headers = {"kid": ring.active_key_id, "typ": LinkKind.TRIAL_INVITATION.jws_type}
        token = jwt.encode(canonical_payload(), private, algorithm="EdDSA", headers=headers)
        assert token == issue(ring)
        reordered = dict(reversed(canonical_payload().items()))
        other = jwt.encode(reordered, private, algorithm="EdDSA", headers=headers)
        assert_invalid(ring, other)


class TestUrls:
    """Links are base_url with the code in its query parameter `code`."""

    def test_build_url_appends_the_code_and_keeps_other_parameters(self) -> None:
        """Existing query parameters and the fragment stay as they were."""
        ring = Keyring.generate()
        code = issue(ring)
        url = build_url("https://portal.example/join?lang=de&ref=a%20b#top", code)
        assert url == f"https://portal.example/join?lang=de&ref=a%20b&code={code}#top"
        assert code_from_url(url) == code
        assert build_url("https://portal.example/join", code) == (
            f"https://portal.example/join?code={code}"
        )

    @pytest.mark.parametrize(
        "base_url",
        [
            "portal.example/join",
            "/join",
            "ftp://portal.example/",
            "javascript:alert(1)",
            "https://portal.example/join?code=old",
            "https://portal.example/join?a=1&code=",
            "https://por tal.example/",
            "https://portal.example/\n",
            "https://pörtal.example/",
            "http://[::1/",
            None,
        ],
    )
    def test_build_url_refuses_bad_base_urls(self, base_url: object) -> None:
        """Only absolute http(s) ASCII URLs without a code of their own."""
        with pytest.raises(ValidationError) as info:
            build_url(base_url, "abc.def.ghi")  # type: ignore[arg-type]
        assert info.value.field == "base_url"

    @pytest.mark.parametrize("code", ["", "a b", "a&b=c", "x" * (MAX_CODE_LENGTH + 1), "é", None])
    def test_build_url_refuses_what_cannot_be_a_code(self, code: object) -> None:
        """A code is base64url segments joined by dots."""
        with pytest.raises(ValidationError) as info:
            build_url("https://portal.example/join", code)  # type: ignore[arg-type]
        assert info.value.field == "code"

    @pytest.mark.parametrize(
        "url",
        [
            "https://portal.example/join",
            "https://portal.example/join?code=",
            "https://portal.example/join?code=a&code=b",
            "https://portal.example/join?code=a&code=a",
            "https://portal.example/join?CODE=abc",
            "https://portal.example/join#code=abc",
            "https://portal.example/join?code=a+b",
            "https://portal.example/join?code=a%20b",
            "https://portal.example/join?code=%C3%A9",
            "https://portal.example/join?code=%ff",
            "https://portal.example/join?code=é",
            "https://portal.example/join?code=" + "A" * (MAX_CODE_LENGTH + 1),
            "https://portal.example/join?x=" + "A" * (MAX_CODE_LENGTH * 2) + "&code=abc",
            "http://[::1?code=abc",
            "",
            None,
            42,
            b"https://portal.example/join?code=abc",
        ],
    )
    def test_code_from_url_refuses_malformed_urls(self, url: object) -> None:
        """No code, two codes, non-ASCII, oversized or not a str: InvalidLink."""
        with pytest.raises(InvalidLink) as info:
            code_from_url(url)  # type: ignore[arg-type]
        assert str(info.value) == InvalidLink.FIXED_MESSAGE

    def test_code_from_url_ignores_the_rest_of_the_url(self) -> None:
        """Scheme, host, path and other parameters do not matter to the code."""
        assert code_from_url("https://x.example/a?b=1&code=abc.d-e_f&c=2") == "abc.d-e_f"
        assert code_from_url("/join?code=abc") == "abc"


class TestLinkKind:
    """The kinds and their JWS types."""

    def test_kinds_have_lowercase_values_and_distinct_jws_types(self) -> None:
        """Values are the lowercase names; each kind has its own typ."""
        assert [kind.value for kind in LinkKind] == [kind.name.lower() for kind in LinkKind]
        types = {kind.jws_type for kind in LinkKind}
        assert len(types) == len(LinkKind)
        assert all(t.startswith("partnerkit-") and t.endswith("+jwt") for t in types)


class TestVerifiedCodes:
    """A ring remembers the codes it verified (one link is redeemed by many customers), and
    judges their kind and times again at every call; URLs' codes are remembered likewise."""

    def test_a_remembered_code_is_judged_by_the_time_of_each_call(self, ring: Keyring) -> None:
        """Once verified, a code still expires, and is still invalid before its issue."""
        expires = T0 + timedelta(days=7)
        code = issue(ring, expires_at=expires)
        claims = ring.verify(code, now=T0)
        assert code in ring._state.verified  # remembered: the next call skips the signature
        assert ring.verify(code, now=expires + MAX_CLOCK_SKEW) is claims
        with pytest.raises(LinkExpired):
            ring.verify(code, now=expires + MAX_CLOCK_SKEW + timedelta(microseconds=1))
        assert_invalid(ring, code, now=T0 - MAX_CLOCK_SKEW - timedelta(microseconds=1))
        with pytest.raises(ValidationError) as info:
            ring.verify(code, now=datetime(2030, 1, 1))  # naive: refused before the memory
        assert info.value.field == "now"

    def test_a_remembered_code_is_judged_by_the_kind_of_each_call(self, ring: Keyring) -> None:
        """Another kind is an InvalidLink, a kind that is none a ValidationError, as at first."""
        code = issue(ring, LinkKind.PURCHASE_OFFER)
        assert (
            ring.verify(code, now=T0, kind=LinkKind.PURCHASE_OFFER).kind is LinkKind.PURCHASE_OFFER
        )
        assert code in ring._state.verified
        assert_invalid(ring, code, now=T0, kind=LinkKind.TRIAL_INVITATION)
        with pytest.raises(ValidationError) as info:
            ring.verify(code, now=T0, kind="purchase_offer")  # type: ignore[arg-type]
        assert info.value.field == "kind"

    def test_a_text_that_claims_to_equal_a_remembered_code_is_refused(self, ring: Keyring) -> None:
        """Only a plain str is looked up: a subclass equal to every code (and hashed as one)
        must not reach a remembered verification."""
        code = issue(ring)
        ring.verify(code, now=T0)

        class Liar(str):
            def __eq__(self, other: object) -> bool:
                return True

            def __hash__(self) -> int:
                return hash(code)

        assert_invalid(ring, Liar("forged"), now=T0)
        url = build_url("https://portal.example/join", code)
        assert code_from_url(url) == code
        with pytest.raises(InvalidLink):
            code_from_url(Liar("https://portal.example/join?code=x"))

    def test_a_new_ring_state_forgets_what_the_old_one_verified(self, ring: Keyring) -> None:
        """Rotating or removing a key starts from nothing remembered: a removed key's codes
        stop verifying at once, though they were remembered a moment before."""
        old_code = issue(ring)
        ring.verify(old_code, now=T0)
        old_kid = ring.active_key_id
        ring.rotate()
        assert ring._state.verified == {}
        ring.verify(old_code, now=T0)
        assert old_code in ring._state.verified
        ring.remove(old_kid)
        assert_invalid(ring, old_code, now=T0)

    def test_the_memory_is_bounded(self) -> None:
        """However many codes verify, the ring remembers at most _REMEMBERED of them (with
        none used again, the last ones verified); every code verifies as before once
        forgotten."""
        ring = Keyring.generate()
        codes = [issue(ring, link_id=f"lnk-{i}") for i in range(_REMEMBERED + 10)]
        for code in codes:
            ring.verify(code, now=T0)
            assert len(ring._state.verified) <= _REMEMBERED
        assert list(ring._state.verified) == codes[10:]
        assert [ring.verify(c, now=T0).link_id for c in codes] == [
            f"lnk-{i}" for i in range(_REMEMBERED + 10)
        ]

    def test_a_code_verified_often_is_forgotten_last(self) -> None:
        """The ring forgets the code used least lately: one verified between every other new
        code stays remembered, however many come and go."""
        ring = Keyring.generate()
        hot = issue(ring, link_id="hot")
        ring.verify(hot, now=T0)  # the first one in, and the oldest entry from here on
        for i in range(_REMEMBERED - 1):
            ring.verify(issue(ring, link_id=f"lnk-{i}"), now=T0)
            ring.verify(hot, now=T0)  # remembered: used again
        assert len(ring._state.verified) == _REMEMBERED
        first_other = next(iter(ring._state.verified))
        ring.verify(issue(ring, link_id="one-more"), now=T0)  # full: one entry goes
        assert hot in ring._state.verified  # checked before it is verified again
        assert first_other not in ring._state.verified

    def test_codes_that_do_not_verify_are_not_remembered(self, ring: Keyring) -> None:
        """Only a verification that succeeded is kept: an expired, future, forged or
        other-kind code leaves the memory as it was."""
        good = issue(ring)
        ring.verify(good, now=T0)
        expired = issue(ring, link_id="lnk-2", expires_at=T0 + timedelta(days=1))
        with pytest.raises(LinkExpired):
            ring.verify(expired, now=T0 + timedelta(days=3))
        assert_invalid(ring, issue(ring, link_id="lnk-3"), now=T0 - timedelta(days=1))
        assert_invalid(ring, good[:-2] + ("AA" if good[-2:] != "AA" else "BA"), now=T0)
        other = issue(ring, LinkKind.PURCHASE_OFFER, link_id="lnk-4")
        assert_invalid(ring, other, now=T0, kind=LinkKind.TRIAL_INVITATION)
        assert list(ring._state.verified) == [good]


class TestTheTimeGiven:
    """``now`` is read with datetime's own methods: a subclass cannot move it."""

    def test_a_datetime_subclass_is_read_as_the_time_it_holds(self, ring: Keyring) -> None:
        """A subclass whose timestamp() is NaN (every comparison false) or lies about its
        offset made an expired link verify; it is judged by the time it holds."""

        class NaNTime(datetime):
            def timestamp(self) -> float:
                return float("nan")

        class Lying(datetime):
            def timestamp(self) -> float:
                return T0.timestamp()

            def utcoffset(self) -> timedelta | None:
                return timedelta(0)

        code = issue(ring, expires_at=T0 + timedelta(days=1))
        late = T0 + timedelta(days=400)
        for cls in (NaNTime, Lying):
            for _ in range(2):  # first seen, then remembered
                with pytest.raises(LinkExpired):
                    ring.verify(code, now=cls.fromtimestamp(late.timestamp(), UTC))
            naive = cls(2030, 1, 1)
            with pytest.raises(ValidationError):
                ring.verify(code, now=naive)
