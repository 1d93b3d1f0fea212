"""Benchmark issuing and verifying links against anchors measured in the same run.

Run ``python benchmarks/bench_links.py`` (``--quick`` for a fast, noisier run). It prints a
markdown table: the median time of each subject and of its anchor over several rounds, the
median of the ratios subject / anchor of neighbouring rounds, and the target of SPEC section 6.
Subject and anchor rounds are interleaved, so that a slow stretch of the machine hits both.

A key ring remembers up to 1,024 codes it verified, and a ``Portal`` the codes of up to 1,024
URLs whose codes verified, forgetting the one used least lately first (``docs/links.md``). The
targets are about the work of verifying, so every subject of a target goes round 2,048
distinct codes (or URLs), each subject in one walk: each call finds its code forgotten, as a
code seen for the first time is, and pays for remembering it.
Two rows without a target show a remembered code, the case of one link followed by many
customers.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import itertools
import json
import statistics
import sys
import timeit
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from itsdangerous import URLSafeTimedSerializer

try:
    from partnerkit.links import Keyring, LinkKind
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from partnerkit.links import Keyring, LinkKind

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from partnerkit import Catalog, ContactInfo, Portal, Service, TrialTerms
from partnerkit.stores.memory import MemoryStore

MAX_AGE = 90 * 24 * 3600
SECRET = b"0123456789abcdef0123456789abcdef"


def _claims(now: datetime) -> dict[str, object]:
    return {
        "kind": LinkKind.TRIAL_INVITATION,
        "link_id": "lnk_8f14e45fceea167a5a36dedd4bea2543",
        "advisor_id": "ADV-4711-CONTOSO",
        "target": "EXCHANGE_ONLINE_PLAN_1",
        "includes_delegated_admin": True,
        "issued_at": now,
        "expires_at": now + timedelta(days=90),
    }


def _payload_of(code: str) -> dict[str, object]:
    """The JSON payload a code carries, so that the anchors sign the same bytes."""
    segment = code.split(".")[1]
    loaded: dict[str, object] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return loaded


def _handrolled_token(payload: dict[str, object]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=")
    signature = hmac.new(SECRET, body, hashlib.sha256).digest()
    return f"{body.decode()}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _handrolled_verify(token: str, now: float) -> dict[str, object]:
    """A straightforward json + base64 + hmac verify, the kind one writes by hand."""
    body, _, signature_b64 = token.rpartition(".")
    signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
    expected = hmac.new(SECRET, body.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise ValueError("bad signature")
    data: dict[str, object] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    if not isinstance(data["exp"], int) or data["exp"] < now:
        raise ValueError("expired")
    return data


Case = tuple[str, Callable[[], object], str, Callable[[], object], float | None]

#: Distinct codes a subject goes round: twice what a ring remembers, so that none is remembered.
FRESH = 2048


def _round(function: Callable[[str], object], inputs: list[str]) -> Callable[[], object]:
    """Call *function* on the next of *inputs* each time, round and round."""
    following = itertools.cycle(inputs).__next__
    return lambda: function(following())


def _codes(ring: Keyring, claims: dict[str, object]) -> list[str]:
    """FRESH codes of the ring, which differ only in their link ids."""
    return [
        ring.issue(**{**claims, "link_id": f"lnk_{i:032x}"})[0]  # type: ignore[arg-type]
        for i in range(FRESH)
    ]


def _cases() -> list[Case]:
    now = datetime.now(UTC).replace(microsecond=0)
    claims = _claims(now)

    hmac_ring = Keyring.generate()
    code, _ = hmac_ring.issue(**claims)  # type: ignore[arg-type]
    codes = _codes(hmac_ring, claims)
    payload = _payload_of(code)
    serializer = URLSafeTimedSerializer(SECRET, salt="partnerkit.bench")
    token = serializer.dumps(payload)
    handrolled = _handrolled_token(payload)
    wall = now.timestamp()

    big_ring = Keyring.generate()
    old_codes = _codes(big_ring, claims)
    for _ in range(19):
        big_ring.rotate()
    small_ring = Keyring.generate()
    small_codes = _codes(small_ring, claims)

    ed_ring = Keyring.generate("ed25519")
    ed_code, _ = ed_ring.issue(**claims)  # type: ignore[arg-type]
    ed_codes = _codes(ed_ring, claims)
    private = Ed25519PrivateKey.generate()
    signing_input = ed_code.rpartition(".")[0].encode()
    signature = private.sign(signing_input)
    public = private.public_key()

    portal = Portal(
        store=MemoryStore(),
        keyring=hmac_ring,
        catalog=Catalog([Service(sku="EXCHANGE", name="Exchange", trial=TrialTerms(30, 25))]),
        base_url="https://portal.example/join",
    )
    _, partner_admin = portal.register_partner(
        name="Contoso", contact=ContactInfo(email="hi@contoso.example"), admin_email="a@c.example"
    )
    urls = [portal.create_trial_invitation(partner_admin, "EXCHANGE") for _ in range(FRESH)]
    url = urls[0]
    # One walk round the codes for both rows of the HMAC verify: a second walk of its own
    # would start again at the first codes, which the first walk may have left remembered.
    fresh_verify = _round(hmac_ring.verify, codes)

    return [
        (
            "Portal.inspect_link, MemoryStore (URL parse, verify, link record)",
            _round(portal.inspect_link, urls),
            "itsdangerous URLSafeTimedSerializer.loads(max_age)",
            lambda: serializer.loads(token, max_age=MAX_AGE),
            1.0,
        ),
        (
            "HMAC verify",
            fresh_verify,
            "itsdangerous URLSafeTimedSerializer.loads(max_age)",
            lambda: serializer.loads(token, max_age=MAX_AGE),
            1.0,
        ),
        (
            "HMAC verify",
            fresh_verify,
            "hand-rolled json+base64+hmac verify",
            lambda: _handrolled_verify(handrolled, wall),
            1.5,
        ),
        (
            "HMAC verify, a remembered code",
            lambda: hmac_ring.verify(code),
            "hand-rolled json+base64+hmac verify",
            lambda: _handrolled_verify(handrolled, wall),
            None,
        ),
        (
            "Portal.inspect_link, MemoryStore, a remembered URL",
            lambda: portal.inspect_link(url),
            "itsdangerous URLSafeTimedSerializer.loads(max_age)",
            lambda: serializer.loads(token, max_age=MAX_AGE),
            None,
        ),
        (
            "HMAC issue",
            lambda: hmac_ring.issue(**claims),  # type: ignore[arg-type]
            "itsdangerous URLSafeTimedSerializer.dumps",
            lambda: serializer.dumps(payload),
            1.0,
        ),
        (
            "HMAC verify, 20 keys (oldest key)",
            _round(big_ring.verify, old_codes),
            "HMAC verify, 1 key",
            _round(small_ring.verify, small_codes),
            1.1,
        ),
        (
            "Ed25519 verify",
            _round(ed_ring.verify, ed_codes),
            "bare Ed25519PublicKey.verify, same bytes",
            lambda: public.verify(signature, signing_input),
            1.15,
        ),
    ]


def _per_call(function: Callable[[], object], number: int) -> float:
    return timeit.timeit(function, number=number) / number


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the markdown table; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31, help="interleaved rounds per pair")
    parser.add_argument("--budget", type=float, default=0.02, help="seconds per round and side")
    parser.add_argument("--quick", action="store_true", help="5 rounds of 10 ms")
    args = parser.parse_args(argv)
    rounds, budget = (5, 0.01) if args.quick else (args.rounds, args.budget)

    rows = []
    missed = 0
    for subject_name, subject, anchor_name, anchor, target in _cases():
        # Calibrate the number of calls per round from a first measurement of each side.
        for function in (subject, anchor, subject, anchor):
            function()
        numbers = [
            max(10, int(budget / max(_per_call(function, 50), 1e-9)))
            for function in (subject, anchor)
        ]
        subject_times: list[float] = []
        anchor_times: list[float] = []
        for index in range(rounds):
            # Alternate which side goes first, so that neither always gets a warm cache.
            order = [(subject, numbers[0], subject_times), (anchor, numbers[1], anchor_times)]
            for function, number, times in order if index % 2 == 0 else order[::-1]:
                times.append(_per_call(function, number))
        subject_median = statistics.median(subject_times)
        anchor_median = statistics.median(anchor_times)
        # The median of the ratios of neighbouring rounds: a slow stretch of a shared machine
        # slows both rounds of a pair, so it cancels out of their ratio.
        ratio = statistics.median(s / a for s, a in zip(subject_times, anchor_times, strict=True))
        met = target is None or ratio <= target
        missed += not met
        rows.append(
            f"| {subject_name} | {subject_median * 1e6:.2f} | {anchor_name} | "
            f"{anchor_median * 1e6:.2f} | {ratio:.2f}x | "
            + ("(reference) | |" if target is None else f"<= {target:.2f}x | ")
            + ("" if target is None else f"{'yes' if met else 'no'} |")
        )

    print(
        f"Python {sys.version.split()[0]}, {rounds} interleaved rounds of about "
        f"{budget * 1000:.0f} ms per side; medians in µs, ratio = median of paired ratios\n"
    )
    print("| subject | µs | anchor | µs | ratio | target | met |")
    print("|---|---:|---|---:|---:|---:|:---:|")
    print("\n".join(rows))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
