"""Benchmark ``Portal.find_customers`` on SQLite files of 10,000 and 1,000,000 customers.

Run ``.venv/bin/python benchmarks/bench_search.py`` (``--quick`` for a noisy run, ``--profile``
to add a cProfile of the slowest search, ``--rebuild`` to build the files again). The goals
(SPEC section 6, issue 4): each search at most 2x the raw indexed range query on the same
file, and at 1,000,000 customers at most 2x the time at 10,000.

The files are built once and cached under the system's temporary directory
(``partnerkit-bench-search-<n>.db``): one partner registered through the Portal, with a FULL
user, and *n* customers related to it. Building a million customers through the Portal would
take most of an hour, so the customers are written with bulk inserts; but every row is made by
the store's own codec and insert statements from the very ``Company`` and ``CustomerRelation``
objects the Portal writes (checked before timing: a customer the Portal registered and
related, and the same customer encoded by the builder, give identical rows).

Every case asks for one page of 50 (``limit=50``) and compares three subjects, interleaved
round by round, medians over the rounds:

* ``find_customers``: the Portal use case (a read unit of work that re-reads the actor and its
  company, decides, runs the store's search, and returns ``Company`` objects);
* the raw indexed range query, the anchor of the goal: one hand-written statement on a bare
  ``sqlite3`` connection to the same file, ``partner_id = ? AND name_key >= ? AND name_key < ?
  ORDER BY name_key, id LIMIT 50`` joined to ``companies``, rows as tuples;
* the raw query for the same question (name *or* domain prefix, as ``find_customers``
  answers it: names that match by name, else domains by domain), the two index ranges
  merged, for reference.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import platform
import pstats
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

try:
    from partnerkit import Company, CompanyKind, ContactInfo, PartnerAccess, Portal, User
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from partnerkit import Company, CompanyKind, ContactInfo, PartnerAccess, Portal, User

from partnerkit.ports import COMPANIES, RELATIONS
from partnerkit.records import CustomerRelation
from partnerkit.stores._sql import customer_search, listed_sql, prefix_range
from partnerkit.stores.sqlite import SCHEMA_VERSION, SQLiteStore

SIZES = (10_000, 1_000_000)
PAGE = 50
#: Bump when the builder writes different data, so that cached files are rebuilt.
BUILD_VERSION = 2
SEED = 20240115
CREATED_AT = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SYLLABLES = (
    "ka", "ro", "mi", "tel", "van", "dor", "li", "sa", "ber", "nu",
    "fa", "bri", "kam", "tor", "wen", "zu", "pe", "lo", "gra", "hes",
)  # fmt: skip
SUFFIXES = ("", " Inc", " Ltd", " GmbH", " AG", " LLC", " Group", " Systems")
#: The prefixes asked, from broad to narrow; "kavan" is two syllables, "zzq" matches nothing.
PREFIXES = {
    "empty prefix": "",
    "1 letter": "k",
    "2 letters": "ka",
    "3 letters": "kam",
    "5 letters": "kavan",
    "no match": "zzq",
}
SAME_ORDER_NOTE = "raw, same question (name or domain)"
ANCHOR = "raw indexed range query (anchor)"
SUBJECT = "find_customers"
GOAL_VS_RAW = 2.0
GOAL_SCALING = 2.0


# -- the data -------------------------------------------------------------------------------


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 3))))


def customer_objects(
    partner_id: str, index: int, rng: random.Random
) -> tuple[Company, CustomerRelation]:
    """The customer and relation the Portal would write for the *index*-th customer."""
    first, second = _word(rng), _word(rng)
    name = f"{first.title()} {second.title()}{rng.choice(SUFFIXES)}"
    company = Company(
        id=f"cmp_{rng.getrandbits(128):032x}",
        kind=CompanyKind.CUSTOMER,
        name=name,
        domain=f"{second}{index}.example",
        created_at=CREATED_AT,
    )
    assert company.domain is not None
    relation = CustomerRelation(
        id=CustomerRelation.key(partner_id, company.id),
        partner_id=partner_id,
        customer_id=company.id,
        name_key=company.name.casefold(),
        domain=company.domain,
        advises=index % 2 == 0,
        administers=index % 2 == 1,
        # Administered through a delegation without an end date (the builder writes no
        # delegations themselves: the search reads only whether the relation names one).
        delegation_id=f"dlg_{index:026x}" if index % 2 == 1 else None,
    )
    return company, relation


class Rows:
    """Encodes objects exactly as the store does: its codec, its computed columns."""

    def __init__(self, store: SQLiteStore) -> None:
        self.companies = store.tables[COMPANIES.name]
        self.relations = store.tables[RELATIONS.name]

    def company(self, company: Company) -> list[Any]:
        computed = [fn(company) for fn in COMPANIES.computed.values()]
        return self.companies.codec.encode(company, computed)

    def relation(self, relation: CustomerRelation) -> list[Any]:
        return self.relations.codec.encode(relation, [])


def db_path(size: int) -> Path:
    """Where the file of *size* customers is cached."""
    return Path(tempfile.gettempdir()) / f"partnerkit-bench-search-{size}.db"


def _stamp(size: int) -> str:
    return f"build={BUILD_VERSION} schema={SCHEMA_VERSION} size={size} seed={SEED}"


def _cached(path: Path, size: int) -> bool:
    if not path.exists():
        return False
    try:
        conn = sqlite3.connect(path)
        try:
            row = conn.execute("SELECT stamp FROM bench_build").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == _stamp(size)


def build(size: int, *, rebuild: bool = False) -> tuple[Path, str, str]:
    """Return the file with *size* customers, its partner id and the FULL user's id."""
    path = db_path(size)
    if rebuild or not _cached(path, size):
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            stale.unlink(missing_ok=True)
        started = time.perf_counter()
        _build(path, size)
        print(f"built {path} ({size:,} customers) in {time.perf_counter() - started:.0f} s")
    conn = sqlite3.connect(path)
    try:
        partner_id, user_id = conn.execute("SELECT partner_id, user_id FROM bench_build").fetchone()
    finally:
        conn.close()
    return path, partner_id, user_id


def _build(path: Path, size: int) -> None:
    store = SQLiteStore(path)
    try:
        portal = Portal(store=store)
        partner, admin = portal.register_partner(
            name="Contoso Partners",
            contact=ContactInfo(email="hello@contoso.example"),
            admin_email="admin@contoso.example",
        )
        agent = portal.create_user(
            admin,
            email="agent@contoso.example",
            display_name="Agent",
            partner_access=PartnerAccess.FULL,
        )
        rows = Rows(store)
        check_rows_match_the_portal(portal, store, rows, partner.id)
        insert_company = rows.companies.statements["insert"]
        insert_relation = rows.relations.statements["insert"]
    finally:
        store.close()
    rng = random.Random(SEED)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # Only the bulk load runs without a journal and fsync, with a large page cache (the
        # random ids make index inserts scattered); the file goes back to WAL afterwards, as
        # the store keeps it.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-524288")
        conn.execute("BEGIN IMMEDIATE")
        batch = 50_000
        for start in range(0, size, batch):
            pairs = [
                customer_objects(partner.id, i, rng) for i in range(start, min(size, start + batch))
            ]
            conn.executemany(insert_company, [rows.company(c) for c, _ in pairs])
            conn.executemany(insert_relation, [rows.relation(r) for _, r in pairs])
        conn.execute(
            "CREATE TABLE bench_build (stamp TEXT NOT NULL, partner_id TEXT NOT NULL, "
            "user_id TEXT NOT NULL)"
        )
        conn.execute(
            "INSERT INTO bench_build VALUES (?, ?, ?)", (_stamp(size), partner.id, agent.id)
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def check_rows_match_the_portal(
    portal: Portal, store: SQLiteStore, rows: Rows, partner_id: str
) -> None:
    """A customer the Portal wrote and the builder's rows for it must be identical."""
    customer, _ = portal.register_customer(
        name="Probe Customer", domain="probe.example", admin_email="admin@probe.example"
    )
    partner_user = next(
        u for u in _users(store, partner_id) if u.partner_access is PartnerAccess.FULL
    )
    url = portal.offer_delegated_admin(partner_user)
    admin = next(u for u in _users(store, customer.id))
    redemption = portal.redeem(url, admin, accept_delegated_admin=True)
    assert redemption.delegation is not None
    # The probe's relation names the delegation the Portal just recorded, with no end date,
    # as the builder's administered relations do.
    relation = CustomerRelation(
        id=CustomerRelation.key(partner_id, customer.id),
        partner_id=partner_id,
        customer_id=customer.id,
        name_key=customer.name.casefold(),
        domain="probe.example",
        administers=True,
        delegation_id=redemption.delegation.id,
    )
    conn = sqlite3.connect(store.path)
    try:
        for table, obj, row in (
            ("companies", customer, rows.company(customer)),
            ("customer_relations", relation, rows.relation(relation)),
        ):
            names = rows.companies.codec.names() if table == "companies" else None
            names = names or rows.relations.codec.names()
            stored = conn.execute(
                f"SELECT {', '.join(names)} FROM {table} WHERE id = ?", (obj.id,)
            ).fetchone()
            if list(stored) != row:
                raise SystemExit(f"builder rows differ from the Portal's in {table}: {row}")
        # The probe is not one of the n customers: take it out again.
        conn.execute("DELETE FROM customer_relations WHERE id = ?", (relation.id,))
    finally:
        conn.commit()
        conn.close()


def _users(store: SQLiteStore, company_id: str) -> list[User]:
    with store.unit_of_work(write=False) as uow:
        return uow.users.find(company_id=company_id)


# -- the subjects ---------------------------------------------------------------------------

_COMPANY_COLUMNS = ", ".join(f"c.{field.name}" for field in attrs.fields(Company))


def raw_name_range(conn: sqlite3.Connection, partner_id: str, prefix: str) -> list[Any]:
    """The anchor: one index range on ``(partner_id, name_key)``, joined to the companies."""
    where, params = prefix_range("r.name_key", prefix.casefold())
    return conn.execute(
        f"SELECT {_COMPANY_COLUMNS} FROM customer_relations r "
        "JOIN companies c ON c.id = r.customer_id "
        f"WHERE r.partner_id = ? AND {where} ORDER BY r.name_key, r.id LIMIT ?",
        (partner_id, *params, PAGE),
    ).fetchall()


def raw_same_question(conn: sqlite3.Connection, partner_id: str, prefix: str) -> list[Any]:
    """Name or domain prefix, as ``find_customers`` answers it, in one statement: the names
    that match (by name) and the domains that match where the name does not (by domain),
    each range read in index order and joined to the companies as it is read, merged as it
    comes (``MERGE (UNION ALL)``), up to the page's end."""
    key = prefix.casefold()
    by_name, name_params = prefix_range("r.name_key", key)
    by_domain, domain_params = prefix_range("r.domain", key)
    # Only the customers advised, or administered through a delegation not ended at *now*.
    listed = listed_sql("?", True, "r.")
    now = (datetime.now(UTC) - EPOCH) // timedelta(microseconds=1)  # as the store keeps it
    joined = "customer_relations r JOIN companies c ON c.id = r.customer_id"
    return conn.execute(
        f"SELECT {_COMPANY_COLUMNS}, r.name_key AS k, r.id AS rid FROM {joined} "
        f"WHERE r.partner_id = ? AND {by_name} AND {listed} UNION ALL "
        f"SELECT {_COMPANY_COLUMNS}, r.domain AS k, r.id AS rid FROM {joined} "
        f"WHERE r.partner_id = ? AND {by_domain} AND NOT ({by_name}) AND {listed} "
        "ORDER BY k, rid LIMIT ?",
        (partner_id, *name_params, now, partner_id, *domain_params, *name_params, now, PAGE),
    ).fetchall()


Case = tuple[str, str, int, Callable[[], object]]


class Subjects:
    """The open files, their Portals and bare connections."""

    def __init__(self, rebuild: bool) -> None:
        self.portals: dict[int, Portal] = {}
        self.conns: dict[int, sqlite3.Connection] = {}
        self.actors: dict[int, tuple[str, str]] = {}
        for size in SIZES:
            path, partner_id, user_id = build(size, rebuild=rebuild)
            self.portals[size] = Portal(store=SQLiteStore(path))
            self.conns[size] = sqlite3.connect(path, isolation_level=None)
            self.actors[size] = (partner_id, user_id)

    def close(self) -> None:
        for portal in self.portals.values():
            portal.store.close()
        for conn in self.conns.values():
            conn.close()

    def cases(self) -> list[Case]:
        """Every (subject, prefix case, size) with its call, checked to agree first."""
        found: list[Case] = []
        for size in SIZES:
            portal, conn = self.portals[size], self.conns[size]
            partner_id, user_id = self.actors[size]
            for label, prefix in PREFIXES.items():
                self._check(portal, conn, partner_id, user_id, prefix)
                found += [
                    (SUBJECT, label, size, _bind_find(portal, user_id, prefix)),
                    (ANCHOR, label, size, _bind_raw(raw_name_range, conn, partner_id, prefix)),
                    (
                        SAME_ORDER_NOTE,
                        label,
                        size,
                        _bind_raw(raw_same_question, conn, partner_id, prefix),
                    ),
                ]
            # The next page, after the 50th customer of the "ka" prefix.
            first = portal.find_customers(user_id, "ka", limit=PAGE)
            after = first[-1].id
            found.append(
                (SUBJECT, "2 letters, page 2", size, _bind_find(portal, user_id, "ka", after))
            )
        return found

    @staticmethod
    def _check(
        portal: Portal, conn: sqlite3.Connection, partner_id: str, user_id: str, prefix: str
    ) -> None:
        via_portal = [c.id for c in portal.find_customers(user_id, prefix, limit=PAGE)]
        via_sql = [row[0] for row in raw_same_question(conn, partner_id, prefix)]
        if via_portal != via_sql:
            raise SystemExit(f"find_customers and raw SQL disagree for prefix {prefix!r}")


def _bind_find(
    portal: Portal, user_id: str, prefix: str, after: str | None = None
) -> Callable[[], object]:
    find = portal.find_customers
    return lambda: find(user_id, prefix, PAGE, after)


def _bind_raw(
    query: Callable[[sqlite3.Connection, str, str], list[Any]],
    conn: sqlite3.Connection,
    partner_id: str,
    prefix: str,
) -> Callable[[], object]:
    return lambda: query(conn, partner_id, prefix)


# -- measuring ------------------------------------------------------------------------------


def _per_call(function: Callable[[], object], number: int) -> float:
    return timeit.repeat(function, number=number, repeat=1)[0] / number


def measure(cases: list[Case], rounds: int, budget: float) -> dict[tuple[str, str, int], float]:
    """Median seconds per call of every case, over interleaved rounds of alternating order."""
    numbers = []
    for *_, function in cases:
        function()
        per_call = min(_per_call(function, 2) for _ in range(3))
        numbers.append(max(1, int(budget / max(per_call, 1e-9))))
    times: list[list[float]] = [[] for _ in cases]
    order = list(range(len(cases)))
    for index in range(rounds):
        for i in order if index % 2 == 0 else order[::-1]:
            times[i].append(_per_call(cases[i][3], numbers[i]))
    return {
        (name, label, size): statistics.median(t)
        for (name, label, size, _), t in zip(cases, times, strict=True)
    }


def report(medians: dict[tuple[str, str, int], float]) -> tuple[str, list[str]]:
    """The markdown table and the verdict on every goal."""
    small, large = SIZES
    lines = [
        "| prefix (page of 50) | customers | find_customers µs | raw range µs | ratio | "
        "raw same question µs | ratio | 1M / 10k |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    labels = [*PREFIXES, "2 letters, page 2"]
    for label in labels:
        for size in SIZES:
            find = medians[SUBJECT, label, size]
            raw = medians.get((ANCHOR, label, size))
            same = medians.get((SAME_ORDER_NOTE, label, size))
            scale = find / medians[SUBJECT, label, small] if size == large else None
            lines.append(
                f"| {label} | {size:,} | {find * 1e6:,.0f} | "
                f"{_us(raw)} | {_ratio(find, raw)} | {_us(same)} | {_ratio(find, same)} | "
                f"{'' if scale is None else f'{scale:.2f}x'} |"
            )
            if raw is not None:
                verdicts.append(
                    _verdict(
                        f"{label}, {size:,}: find_customers {find / raw:.2f}x the raw range "
                        f"query (goal <= {GOAL_VS_RAW:.0f}x)",
                        find / raw <= GOAL_VS_RAW,
                    )
                )
            if scale is not None:
                verdicts.append(
                    _verdict(
                        f"{label}: {scale:.2f}x slower at {large:,} than at {small:,} "
                        f"(goal <= {GOAL_SCALING:.0f}x)",
                        scale <= GOAL_SCALING,
                    )
                )
    return "\n".join(lines), verdicts


def _us(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1e6:,.0f}"


def _ratio(subject: float, anchor: float | None) -> str:
    return "" if anchor is None else f"{subject / anchor:.2f}x"


def _verdict(text: str, met: bool) -> str:
    return f"- {'met' if met else 'MISSED'}: {text}"


def profile(subjects: Subjects, size: int, prefix: str, calls: int = 300) -> str:
    """The top of a cProfile of ``find_customers`` at *size* customers for *prefix*."""
    portal = subjects.portals[size]
    _, user_id = subjects.actors[size]
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        portal.find_customers(user_id, prefix, PAGE)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(14)
    return out.getvalue()


def query_plans(subjects: Subjects, size: int) -> Iterator[str]:
    """SQLite's plan for the statement the store runs for a page, for the record: the
    search joined to the companies (``search_customers``, which ``find_customers`` uses)."""
    conn = subjects.conns[size]
    partner_id, _ = subjects.actors[size]
    columns = [field.name for field in attrs.fields(Company)]
    for name, after in (("page 1", None), ("page 2", ("kam", f"{partner_id}:cmp_0"))):
        statement, params = customer_search(
            columns, partner_id, "ka", PAGE, after, now=datetime.now(UTC)
        )
        plan = conn.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
        yield f"{name}: " + "; ".join(str(row[-1]) for row in plan)


def main(argv: list[str] | None = None) -> int:
    """Build or reuse the files, measure, print the table and the goals; 1 if one is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11, help="interleaved rounds")
    parser.add_argument("--budget", type=float, default=0.03, help="seconds per case and round")
    parser.add_argument("--quick", action="store_true", help="5 rounds of 10 ms")
    parser.add_argument("--profile", action="store_true", help="cProfile the 1-letter search")
    parser.add_argument("--rebuild", action="store_true", help="build the cached files again")
    args = parser.parse_args(argv)
    rounds, budget = (5, 0.01) if args.quick else (args.rounds, args.budget)

    subjects = Subjects(args.rebuild)
    try:
        medians = measure(subjects.cases(), rounds, budget)
        plans = list(query_plans(subjects, SIZES[-1]))
        profiles = (
            [
                (size, label, profile(subjects, size, PREFIXES[label]))
                for size in SIZES
                for label in ("1 letter", "3 letters")
            ]
            if args.profile
            else []
        )
    finally:
        subjects.close()

    text, verdicts = report(medians)
    print("Command: .venv/bin/python benchmarks/bench_search.py\n")
    print(
        f"{platform.python_implementation()} {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} CPUs; {rounds} interleaved rounds of about {budget * 1000:.0f} ms "
        "per case; medians.\n"
    )
    print(text + "\n")
    print("Query plans of the store's statement for a page, prefix 'ka' (1M file):")
    for plan in plans:
        print(f"  {plan}")
    print()
    print("\n".join(verdicts))
    for size, label, text_profile in profiles:
        print(f"\ncProfile of find_customers, {label}, {size:,} customers, by own time:\n")
        print(text_profile)
    return 0 if all(v.startswith("- met") for v in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
