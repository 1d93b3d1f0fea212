"""Fuzz link parsing: ``Keyring.verify`` and ``code_from_url`` raise only InvalidLink.

With atheris installed (``pip install atheris``; wheels exist for CPython 3.11), this is a
coverage-guided libFuzzer target; libFuzzer's own flags pass through::

    python fuzz/fuzz_links.py -max_total_time=300            # five minutes
    python fuzz/fuzz_links.py -atheris_runs=1000000 corpus/  # a million inputs, kept corpus

Without atheris, or with ``--hypothesis``, hypothesis drives the same target::

    python fuzz/fuzz_links.py --hypothesis --examples 100000

Each input is a byte string. Its first byte picks a mode: the rest, read as latin-1, goes
into ``verify`` of an HMAC or an Ed25519 ring or into ``code_from_url``; is spliced into a
valid code; or is signed as a payload with the ring's own key, to reach the parser behind the
signature, where a reference model says whether the claims are valid. Anything but
InvalidLink (and its subclasses), a verdict that disagrees with the model, or one input taking
50 ms or more is a crash.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

try:
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the machine
    atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["partnerkit"]):
        try:
            from partnerkit import links
        except ImportError:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
            from partnerkit import links
else:
    try:
        from partnerkit import links
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from partnerkit import links

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from itsdangerous import Signer

from partnerkit.errors import InvalidLink, LinkExpired

NOW = datetime(2031, 6, 1, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
SLOWEST = 0.050
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_TS = int((datetime(1, 1, 1, tzinfo=UTC) - EPOCH).total_seconds())
MAX_TS = int((datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - EPOCH).total_seconds())
KIND = links.LinkKind.TRIAL_INVITATION
RINGS = [links.Keyring.generate(links.HMAC_SHA256), links.Keyring.generate(links.ED25519)]
VALID = [
    ring.issue(
        KIND,
        link_id="lnk-1",
        advisor_id="ADV-1",
        target="EXCHANGE",
        includes_delegated_admin=True,
        issued_at=NOW,
        expires_at=NOW + timedelta(days=30),
    )[0]
    for ring in RINGS
]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(ring: links.Keyring, payload: bytes) -> str:
    """A code for any payload, signed with the ring's active key as its owner could."""
    document = json.loads(ring.to_json())
    kid = document["active_key_id"]
    secret_text = next(k["secret"] for k in document["keys"] if k["kid"] == kid)
    secret = base64.urlsafe_b64decode(secret_text + "=" * (-len(secret_text) % 4))
    alg = "EdDSA" if ring.algorithm == links.ED25519 else "HS256"
    header = json.dumps({"alg": alg, "kid": kid, "typ": KIND.jws_type}, separators=(",", ":"))
    signing_input = f"{_b64(header.encode())}.{_b64(payload)}".encode()
    if ring.algorithm == links.ED25519:
        signature = Ed25519PrivateKey.from_private_bytes(secret).sign(signing_input)
    else:
        derived = Signer(
            secret,
            salt=f"partnerkit.links.{KIND.value}",
            key_derivation="hmac",
            digest_method=hashlib.sha256,
        ).derive_key()
        signature = hmac.digest(derived, signing_input, "sha256")
    return f"{signing_input.decode()}.{_b64(signature)}"


def _model(payload: bytes) -> str:
    """The reference verdict on a signed payload: "valid", "expired" or "invalid"."""
    try:
        values: Any = json.loads(payload)
    except (ValueError, RecursionError):
        return "invalid"
    keys = {"adv", "dla", "exp", "iat", "jti", "knd", "tgt", "ver"}
    if not isinstance(values, dict) or set(values) != keys:
        return "invalid"
    if payload != json.dumps(values, separators=(",", ":"), sort_keys=True).encode():
        return "invalid"
    ids = [values["adv"], values["jti"], values["tgt"]]
    iat, exp = values["iat"], values["exp"]
    if not (
        all(
            isinstance(i, str)
            and 0 < len(i) <= links.MAX_ID_LENGTH
            and i.isascii()
            and i.isprintable()
            for i in ids
        )
        and values["knd"] == KIND.value
        and type(values["ver"]) is int
        and values["ver"] == 1
        and type(values["dla"]) is bool
        and type(iat) is int
        and type(exp) is int
        and 0 < exp - iat <= links.MAX_LINK_LIFETIME.total_seconds()
        and iat <= NOW_TS + 60
        and iat >= MIN_TS
        and exp <= MAX_TS
    ):
        return "invalid"
    return "valid" if exp + 60 >= NOW_TS else "expired"


def _timed_verdict(call: Any) -> tuple[str, float]:
    started = time.thread_time()  # CPU time: waiting for a busy CPU does not count
    try:
        call()
        verdict = "valid"
    except LinkExpired:
        verdict = "expired"
    except InvalidLink:
        verdict = "invalid"
    return verdict, time.thread_time() - started


def _verdict(call: Any) -> str:
    """The verdict on one input; fails if its fastest of three runs takes 50 ms or more."""
    verdict, elapsed = _timed_verdict(call)
    if elapsed >= SLOWEST:
        elapsed = min(elapsed, *(_timed_verdict(call)[1] for _ in range(2)))
        if elapsed >= SLOWEST:
            raise AssertionError(f"one input took {elapsed * 1000:.1f} ms")
    return verdict


def test_one_input(data: bytes) -> None:
    """The fuzz target: one input, one of six modes chosen by its first byte."""
    if not data:
        return
    mode, rest = data[0] % 6, data[1:]
    text = rest.decode("latin-1")
    ring = RINGS[data[0] // 6 % 2]
    if mode == 0:
        _verdict(lambda: ring.verify(text, now=NOW))
    elif mode == 1:
        _verdict(lambda: links.code_from_url(text))
    elif mode == 2:
        _verdict(lambda: links.code_from_url("https://portal.example/join?code=" + text))
    elif mode == 3:
        code = VALID[data[0] // 6 % 2]
        at = (rest[0] if rest else 0) * len(code) // 256
        mangled = code[:at] + text[1:] + code[at + len(text) // 2 :]
        verdict = _verdict(lambda: ring.verify(mangled, now=NOW))
        if mangled != code and verdict != "invalid":
            raise AssertionError(f"a mangled code verified: {mangled!r}")
    elif mode == 4:
        verdict = _verdict(lambda: ring.verify(_sign(ring, rest), now=NOW))
        expected = _model(rest)
        if verdict != expected:
            raise AssertionError(f"payload {rest!r}: verify says {verdict}, model {expected}")
    else:
        # A canonical payload whose values come from the input: reaches the "valid" branch.
        text = "".join(chr(0x20 + byte % 95) for byte in rest)  # printable ASCII
        template = {
            "adv": text[:40] or "a",
            "dla": bool(rest[:1] and rest[0] & 1),
            "exp": NOW_TS + int.from_bytes(rest[:3].ljust(3, b"\0"), "big") - 2**23,
            "iat": NOW_TS - int.from_bytes(rest[3:5].ljust(2, b"\0"), "big"),
            "jti": text[40:80] or "l",
            "knd": KIND.value,
            "tgt": text[80:] or "t",
            "ver": 1,
        }
        payload = json.dumps(template, separators=(",", ":"), sort_keys=True).encode()
        verdict = _verdict(lambda: ring.verify(_sign(ring, payload), now=NOW))
        expected = _model(payload)
        if verdict != expected:
            raise AssertionError(f"payload {payload!r}: verify says {verdict}, model {expected}")


def _run_hypothesis(examples: int) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.binary(max_size=3000))
    def fuzz(data: bytes) -> None:
        test_one_input(data)

    fuzz()
    print(f"hypothesis: {examples} inputs, no crash")


def main() -> None:
    """Run atheris when it is installed, hypothesis otherwise (or with --hypothesis)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    parser.add_argument("--hypothesis", action="store_true")
    parser.add_argument("--examples", type=int, default=10_000)
    known, rest = parser.parse_known_args()
    if known.hypothesis or atheris is None:
        _run_hypothesis(known.examples)
        return
    atheris.Setup([sys.argv[0], *rest], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
