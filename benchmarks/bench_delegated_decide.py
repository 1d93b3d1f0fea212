"""Benchmark ``Portal.decide`` through a delegation against an own-company decision.

Run ``.venv/bin/python benchmarks/bench_delegated_decide.py`` (``--quick`` for a noisy run,
``--profile`` to add a cProfile of the delegated decision). The goal (issue 4): on
``MemoryStore``, a decision through a delegation costs at most 1.5x the same decision taken in
the actor's own company.

Both sides ask the same question about the same customer: may this user reset passwords in
the customer (and, in the *targeted* pair, the password of its user without an admin role)?
Own company: the customer's own password admin. Through a delegation: the partner's FULL user
and its LIMITED user, through an active delegation of all five roles, which ``Portal.decide``
must look up and judge against the clock on every call. The store holds 200 customers of the
partner, each with an active delegation and a few users, so the lookup is not on a toy table.
Rounds are interleaved and alternate in order; figures are medians.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

try:
    from partnerkit import AdminRole, ContactInfo, PartnerAccess, Permission, Portal
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from partnerkit import AdminRole, ContactInfo, PartnerAccess, Permission, Portal

from partnerkit.stores.memory import MemoryStore

CUSTOMERS = 200
ASKED = 117
GOAL = 1.5
PERMISSION = Permission.RESET_PASSWORD

Case = tuple[str, Callable[[], object]]


def populate(portal: Portal) -> dict[str, str]:
    """Register the partner, its customers and their delegations; return the ids asked about."""
    partner, admin = portal.register_partner(
        name="Contoso Partners",
        contact=ContactInfo(email="hello@contoso.example"),
        admin_email="admin@contoso.example",
    )
    full = portal.create_user(
        admin, email="full@contoso.example", display_name="Full", partner_access=PartnerAccess.FULL
    )
    limited = portal.create_user(
        admin,
        email="limited@contoso.example",
        display_name="Limited",
        partner_access=PartnerAccess.LIMITED,
    )
    url = portal.offer_delegated_admin(admin)
    ids: dict[str, str] = {"partner": partner.id, "full": full.id, "limited": limited.id}
    for n in range(CUSTOMERS):
        domain = f"customer{n:03d}.example"
        customer, c_admin = portal.register_customer(
            name=f"Customer {n:03d}", domain=domain, admin_email=f"admin@{domain}"
        )
        password_admin = portal.create_user(
            c_admin,
            email=f"password@{domain}",
            display_name="Password Admin",
            admin_role=AdminRole.PASSWORD_ADMIN,
        )
        plain = portal.create_user(c_admin, email=f"user@{domain}", display_name="User")
        portal.redeem(url, c_admin, accept_delegated_admin=True)
        if n == ASKED:
            ids.update(customer=customer.id, password_admin=password_admin.id, plain=plain.id)
    return ids


def cases(portal: Portal, ids: dict[str, str]) -> list[Case]:
    """The decisions timed, after checking that every one is allowed."""
    decide = portal.decide
    cid, plain = ids["customer"], ids["plain"]
    own, full, limited = ids["password_admin"], ids["full"], ids["limited"]
    found: list[Case] = [
        ("own company, permission", lambda: decide(own, PERMISSION, cid)),
        ("delegated FULL, permission", lambda: decide(full, PERMISSION, cid)),
        ("delegated LIMITED, permission", lambda: decide(limited, PERMISSION, cid)),
        ("own company, targeted", lambda: decide(own, PERMISSION, cid, plain)),
        ("delegated FULL, targeted", lambda: decide(full, PERMISSION, cid, plain)),
        ("delegated LIMITED, targeted", lambda: decide(limited, PERMISSION, cid, plain)),
    ]
    for name, function in found:
        decision = function()
        if not decision:
            raise SystemExit(f"{name}: expected an allowed decision, got {decision!r}")
    return found


def _per_call(function: Callable[[], object], number: int) -> float:
    return timeit.repeat(function, number=number, repeat=1)[0] / number


def measure(all_cases: list[Case], rounds: int, budget: float) -> dict[str, float]:
    """Median seconds per call of every case over interleaved rounds of alternating order."""
    numbers = []
    for _, function in all_cases:
        for _ in range(3):
            function()
        per_call = min(_per_call(function, 20) for _ in range(3))
        numbers.append(max(1, int(budget / max(per_call, 1e-9))))
    times: list[list[float]] = [[] for _ in all_cases]
    order = list(range(len(all_cases)))
    for index in range(rounds):
        for i in order if index % 2 == 0 else order[::-1]:
            times[i].append(_per_call(all_cases[i][1], numbers[i]))
    return {name: statistics.median(t) for (name, _), t in zip(all_cases, times, strict=True)}


def report(medians: dict[str, float]) -> tuple[str, list[str]]:
    """The markdown table and the verdict on every goal."""
    lines = ["| decision (MemoryStore) | median µs/call | x own company |", "|---|---:|---:|"]
    verdicts = []
    for name, seconds in medians.items():
        kind = name.split(", ")[1]
        own = medians[f"own company, {kind}"]
        lines.append(f"| {name} | {seconds * 1e6:.2f} | {seconds / own:.2f} |")
        if name.startswith("delegated"):
            ratio = seconds / own
            verdicts.append(
                f"- {'met' if ratio <= GOAL else 'MISSED'}: {name}: {ratio:.2f}x the "
                f"own-company decision (goal <= {GOAL}x)"
            )
    return "\n".join(lines), verdicts


def profile(portal: Portal, ids: dict[str, str], calls: int = 50_000) -> str:
    """The top of a cProfile of the delegated, targeted decision."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        portal.decide(ids["full"], PERMISSION, ids["customer"], ids["plain"])
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(14)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and the goals; exit 1 if a goal is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds")
    parser.add_argument("--budget", type=float, default=0.02, help="seconds per case and round")
    parser.add_argument("--quick", action="store_true", help="7 rounds of 5 ms")
    parser.add_argument("--profile", action="store_true", help="cProfile the delegated decision")
    args = parser.parse_args(argv)
    rounds, budget = (7, 0.005) if args.quick else (args.rounds, args.budget)

    portal = Portal(store=MemoryStore())
    ids = populate(portal)
    medians = measure(cases(portal, ids), rounds, budget)
    text, verdicts = report(medians)
    print("Command: .venv/bin/python benchmarks/bench_delegated_decide.py\n")
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} CPUs; {CUSTOMERS} customers with active "
        f"delegations; {rounds} interleaved rounds of about {budget * 1000:.0f} ms per case; "
        "medians.\n"
    )
    print(text + "\n")
    print("\n".join(verdicts))
    if args.profile:
        print("\ncProfile of Portal.decide, delegated FULL, targeted, by own time:\n")
        print(profile(portal, ids))
    return 0 if all(v.startswith("- met") for v in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
