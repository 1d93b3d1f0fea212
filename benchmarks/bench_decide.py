"""Benchmark permission decisions against pycasbin's RBAC-with-domains enforcer, in one run.

Run ``.venv/bin/python benchmarks/bench_decide.py`` (``--quick`` for a fast, noisier run,
``--profile`` to add a cProfile of ``Portal.decide`` on ``MemoryStore``). Every subject
answers the same question about the same population: 1,000 users in 100 customer companies,
with role assignments; "may the password admin of company 57 reset passwords in company 57?"
(and, for the targeted rows, "... the password of that company's user without an admin
role?"). The subjects are:

* a floor: membership of a ``Permission`` in a frozenset, the least any lookup costs;
* the pure ``partnerkit.roles.decide``;
* ``Portal.decide`` on ``MemoryStore`` and on ``SQLiteStore`` (a file in a temporary
  directory): a unit of work that re-reads the actor, the company and the target;
* pycasbin with the RBAC-with-domains model (``g = _, _, _``) and every user's role in its
  company as a grouping policy, in three set-ups: the role permissions as policies per
  company, with the textbook ``Enforcer`` and with the ``FastEnforcer``, which filters the
  policies by (domain, object, action) before matching; and one set of policies shared by
  all companies (``p.dom == "*"``) with the textbook ``Enforcer``. The fastest set-up, the
  ``FastEnforcer``, is the anchor the goals are judged against.

Rounds are interleaved (every subject once per round, in an order that alternates), so a slow
stretch of the machine hits all alike; the table gives the median time per call over the
rounds and how many times faster than each pycasbin enforcer a subject is. The exit code is 1
when a goal is missed against the stricter anchor.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.metadata
import io
import os
import platform
import pstats
import statistics
import sys
import tempfile
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import casbin

try:
    from partnerkit import AdminRole, Company, CompanyKind, Permission, Portal, User
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from partnerkit import AdminRole, Company, CompanyKind, Permission, Portal, User

from partnerkit.directory import new_id
from partnerkit.ports import Store
from partnerkit.roles import ROLE_PERMISSIONS, decide
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore

COMPANIES = 100
USERS_PER_COMPANY = 10
#: The admin role of the n-th user of every company; the rest hold no admin role.
ROLE_CYCLE: tuple[AdminRole | None, ...] = (
    AdminRole.GLOBAL_ADMIN,
    AdminRole.BILLING_ADMIN,
    AdminRole.PASSWORD_ADMIN,
    AdminRole.SERVICE_ADMIN,
    AdminRole.USER_MANAGEMENT_ADMIN,
    AdminRole.PASSWORD_ADMIN,
    None,
    None,
    None,
    None,
)
ASKED_COMPANY = 57
ACTOR_INDEX = 2  # a password admin
TARGET_INDEX = 6  # a user without an admin role
DENIED_INDEX = 3  # a service admin: may not reset passwords
PERMISSION = Permission.RESET_PASSWORD

CASBIN_MODEL = """\
[request_definition]
r = sub, dom, obj, act

[policy_definition]
p = sub, dom, obj, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub, r.dom) && r.dom == p.dom && r.obj == p.obj && r.act == p.act
"""
#: The same model with one set of role policies for every company (domain ``*``).
CASBIN_SHARED_MODEL = CASBIN_MODEL.replace("r.dom == p.dom", '(p.dom == "*" || r.dom == p.dom)')

ANCHOR = "pycasbin FastEnforcer, policies per company (anchor)"
TEXTBOOK = "pycasbin Enforcer, policies per company"

# Goals of SPEC section 6 and issue 2.
PURE_MAX_US = 2.0
PURE_MIN_SPEEDUP = 100.0
PORTAL_MEMORY_MIN_SPEEDUP = 20.0


class Population:
    """The same companies and users, as partnerkit objects and as casbin names."""

    def __init__(self) -> None:
        self.companies: list[Company] = []
        self.users: list[list[User]] = []
        for c in range(COMPANIES):
            company = Company(
                id=new_id("cmp"),
                kind=CompanyKind.CUSTOMER,
                name=f"Customer {c:03d}",
                domain=f"customer{c:03d}.example",
            )
            self.companies.append(company)
            self.users.append(
                [
                    User(
                        id=new_id("usr"),
                        company_id=company.id,
                        email=f"user{u}@customer{c:03d}.example",
                        display_name=f"User {u} of customer {c:03d}",
                        admin_role=ROLE_CYCLE[u],
                    )
                    for u in range(USERS_PER_COMPANY)
                ]
            )

    def user(self, index: int) -> User:
        """The *index*-th user of the company the benchmark asks about."""
        return self.users[ASKED_COMPANY][index]

    @property
    def company(self) -> Company:
        """The company the benchmark asks about."""
        return self.companies[ASKED_COMPANY]

    def seed(self, store: Store) -> None:
        """Write every company and user into *store*, in one unit of work."""
        with store.unit_of_work() as uow:
            for company, users in zip(self.companies, self.users, strict=True):
                uow.companies.add(company)
                for user in users:
                    uow.users.add(user)
            uow.commit()

    def casbin_policies(self, domains: list[str]) -> tuple[list[list[str]], list[list[str]]]:
        """The role permissions in each of *domains*, and every user's role in its company."""
        policies = [
            [role.value, domain, "company", permission.value]
            for domain in domains
            for role, permissions in ROLE_PERMISSIONS.items()
            for permission in sorted(permissions, key=lambda p: p.value)
        ]
        groupings = [
            [user.id, user.admin_role.value, user.company_id]
            for users in self.users
            for user in users
            if user.admin_role is not None
        ]
        return policies, groupings


def casbin_enforcers(population: Population, workdir: Path) -> tuple[Any, Any, Any]:
    """Build the three pycasbin set-ups: per-company textbook, per-company fast, shared."""
    model_path = workdir / "rbac_with_domains.conf"
    model_path.write_text(CASBIN_MODEL, encoding="utf-8")
    shared_path = workdir / "rbac_with_shared_domain.conf"
    shared_path.write_text(CASBIN_SHARED_MODEL, encoding="utf-8")
    per_company = population.casbin_policies([c.id for c in population.companies])
    shared = population.casbin_policies(["*"])
    plain = casbin.Enforcer(str(model_path))
    # The FastEnforcer keeps the policies in a tree keyed on (dom, obj, act) = r[1], r[2], r[3].
    fast = casbin.FastEnforcer(str(model_path), cache_key_order=[1, 2, 3])
    shared_plain = casbin.Enforcer(str(shared_path))
    for enforcer, (policies, groupings) in (
        (plain, per_company),
        (fast, per_company),
        (shared_plain, shared),
    ):
        enforcer.add_policies(policies)
        enforcer.add_grouping_policies(groupings)
    return plain, fast, shared_plain


Case = tuple[str, Callable[[], object]]


@contextmanager
def cases(population: Population) -> Iterator[tuple[list[Case], Portal]]:
    """Yield the benchmark cases (name, call), after checking they all agree."""
    with tempfile.TemporaryDirectory(prefix="partnerkit-bench-") as tmp:
        workdir = Path(tmp)
        memory_portal = Portal(store=MemoryStore())
        sqlite_store = SQLiteStore(workdir / "bench.db")
        sqlite_portal = Portal(store=sqlite_store)
        for portal in (memory_portal, sqlite_portal):
            population.seed(portal.store)
        plain, fast, shared = casbin_enforcers(population, workdir)

        actor = population.user(ACTOR_INDEX)
        target = population.user(TARGET_INDEX)
        cid = population.company.id
        floor_set = ROLE_PERMISSIONS[AdminRole.PASSWORD_ADMIN]
        request = (actor.id, cid, "company", PERMISSION.value)
        enforce_plain = plain.enforce
        enforce_fast = fast.enforce
        enforce_shared = shared.enforce
        decide_memory = memory_portal.decide
        decide_sqlite = sqlite_portal.decide

        _check_agreement(population, memory_portal, sqlite_portal, (plain, fast, shared))
        try:
            yield (
                [
                    ("frozenset membership (floor)", lambda: PERMISSION in floor_set),
                    ("roles.decide, permission", lambda: decide(actor, PERMISSION, cid)),
                    (
                        "roles.decide, targeted RESET_PASSWORD",
                        lambda: decide(actor, PERMISSION, cid, target=target),
                    ),
                    (
                        "Portal.decide, MemoryStore, permission",
                        lambda: decide_memory(actor.id, PERMISSION, cid),
                    ),
                    (
                        "Portal.decide, MemoryStore, targeted",
                        lambda: decide_memory(actor.id, PERMISSION, cid, target.id),
                    ),
                    (
                        "Portal.decide, SQLiteStore file, permission",
                        lambda: decide_sqlite(actor.id, PERMISSION, cid),
                    ),
                    (
                        "Portal.decide, SQLiteStore file, targeted",
                        lambda: decide_sqlite(actor.id, PERMISSION, cid, target.id),
                    ),
                    (ANCHOR, lambda: enforce_fast(*request)),
                    (TEXTBOOK, lambda: enforce_plain(*request)),
                    (
                        "pycasbin Enforcer, policies shared by all companies",
                        lambda: enforce_shared(*request),
                    ),
                ],
                memory_portal,
            )
        finally:
            sqlite_store.close()


def _check_agreement(
    population: Population,
    memory_portal: Portal,
    sqlite_portal: Portal,
    enforcers: tuple[Any, ...],
) -> None:
    """Every subject allows the question asked, and denies it to a service admin."""
    cid = population.company.id
    target = population.user(TARGET_INDEX)
    for index, expected in ((ACTOR_INDEX, True), (DENIED_INDEX, False)):
        user = population.user(index)
        answers = {
            "roles.decide": bool(decide(user, PERMISSION, cid)),
            "roles.decide targeted": bool(decide(user, PERMISSION, cid, target=target)),
            "Portal.decide memory": bool(memory_portal.decide(user.id, PERMISSION, cid)),
            "Portal.decide sqlite": bool(sqlite_portal.decide(user.id, PERMISSION, cid, target.id)),
        }
        for n, enforcer in enumerate(enforcers):
            answers[f"casbin {n}"] = enforcer.enforce(user.id, cid, "company", PERMISSION.value)
        wrong = {name: answer for name, answer in answers.items() if answer is not expected}
        if wrong:
            raise SystemExit(f"subjects disagree for user {index}: {wrong}")


def _per_call(function: Callable[[], object], number: int) -> float:
    return timeit.repeat(function, number=number, repeat=1)[0] / number


def measure(all_cases: list[Case], rounds: int, budget: float) -> dict[str, float]:
    """Return the median seconds per call of every case over interleaved rounds."""
    numbers = []
    for _, function in all_cases:
        for _ in range(3):
            function()  # warm up caches and lazily built objects
        per_call = min(_per_call(function, 3) for _ in range(3))
        numbers.append(max(1, int(budget / max(per_call, 1e-9))))
    times: list[list[float]] = [[] for _ in all_cases]
    order = list(range(len(all_cases)))
    for index in range(rounds):
        for i in order if index % 2 == 0 else order[::-1]:
            times[i].append(_per_call(all_cases[i][1], numbers[i]))
    return {name: statistics.median(t) for (name, _), t in zip(all_cases, times, strict=True)}


def machine_note(rounds: int, budget: float) -> str:
    """Describe the machine and the run, for the note under the table."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} CPUs; "
        f"pycasbin {importlib.metadata.version('pycasbin')}; "
        f"{COMPANIES * USERS_PER_COMPANY:,} users in {COMPANIES} companies; "
        f"{rounds} interleaved rounds of about {budget * 1000:.0f} ms per subject; medians."
    )


def table(medians: dict[str, float]) -> tuple[str, list[str]]:
    """Return the markdown table and the verdict on every goal."""
    fast = medians[ANCHOR]
    plain = medians[TEXTBOOK]
    lines = [
        "| subject | median µs/call | x faster than FastEnforcer | x faster than Enforcer |",
        "|---|---:|---:|---:|",
    ]
    for name, seconds in medians.items():
        lines.append(
            f"| {name} | {seconds * 1e6:,.2f} | {_times(fast / seconds)} | "
            f"{_times(plain / seconds)} |"
        )
    verdicts = []
    for name in ("roles.decide, permission", "roles.decide, targeted RESET_PASSWORD"):
        us = medians[name] * 1e6
        verdicts.append(_verdict(f"{name}: {us:.2f} µs < {PURE_MAX_US} µs", us < PURE_MAX_US))
        speedup = fast / medians[name]
        verdicts.append(
            _verdict(
                f"{name}: {speedup:,.0f}x >= {PURE_MIN_SPEEDUP:.0f}x faster than the anchor",
                speedup >= PURE_MIN_SPEEDUP,
            )
        )
    for name in ("Portal.decide, MemoryStore, permission", "Portal.decide, MemoryStore, targeted"):
        speedup = fast / medians[name]
        verdicts.append(
            _verdict(
                f"{name}: {speedup:,.1f}x >= {PORTAL_MEMORY_MIN_SPEEDUP:.0f}x "
                "faster than the anchor",
                speedup >= PORTAL_MEMORY_MIN_SPEEDUP,
            )
        )
    return "\n".join(lines), verdicts


def _times(ratio: float) -> str:
    if ratio >= 100:
        return f"{ratio:,.0f}"
    if ratio >= 1:
        return f"{ratio:.1f}"
    return f"{ratio:.2g}"


def _verdict(text: str, met: bool) -> str:
    return f"- {'met' if met else 'MISSED'}: {text}"


def profile_portal_decide(portal: Portal, population: Population, calls: int = 50_000) -> str:
    """Return the top of a cProfile of targeted ``Portal.decide`` calls on *portal*."""
    actor = population.user(ACTOR_INDEX).id
    target = population.user(TARGET_INDEX).id
    cid = population.company.id
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        portal.decide(actor, PERMISSION, cid, target)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(15)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and the goals; exit 1 if a goal is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="interleaved rounds")
    parser.add_argument("--budget", type=float, default=0.02, help="seconds per subject and round")
    parser.add_argument("--quick", action="store_true", help="7 rounds of 5 ms")
    parser.add_argument(
        "--profile", action="store_true", help="also profile Portal.decide on MemoryStore"
    )
    args = parser.parse_args(argv)
    rounds, budget = (7, 0.005) if args.quick else (args.rounds, args.budget)

    population = Population()
    with cases(population) as (all_cases, memory_portal):
        medians = measure(all_cases, rounds, budget)
        profile = profile_portal_decide(memory_portal, population) if args.profile else ""

    text, verdicts = table(medians)
    print("Command: .venv/bin/python benchmarks/bench_decide.py\n")
    print(machine_note(rounds, budget) + "\n")
    print(text + "\n")
    print(
        "The targeted rows answer more than pycasbin does: the target rules of F2 (whose\n"
        "password, privileged partner users, oneself) on top of the permission.\n"
    )
    print("\n".join(verdicts))
    if profile:
        print("\ncProfile of Portal.decide (MemoryStore, targeted), by own time:\n")
        print(profile)
    return 0 if all(v.startswith("- met") for v in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
