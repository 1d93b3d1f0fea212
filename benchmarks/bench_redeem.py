"""Benchmark ``Portal.redeem`` of an offer link against a bare INSERT+COMMIT (SPEC section 6).

Run ``python benchmarks/bench_redeem.py`` (``--quick`` for a fast, noisier run;
``--profile`` to print where a redemption spends its time). It prints a markdown table.

- SQLite: ``Portal.redeem`` of one purchase-offer link on a ``SQLiteStore`` file (WAL,
  ``synchronous=FULL``), each redemption by a fresh customer registered before timing starts,
  against the anchor: one ``BEGIN IMMEDIATE; INSERT; COMMIT`` on the same file, through its
  own connection with the same pragmas, measured in the same run. Target: at most 3x.
- Memory: ``Portal.redeem`` on a ``MemoryStore``, fresh customers again. Target: at least
  10,000 redemptions per second. For reference, the same with a link of its own for every
  redemption: the key ring remembers the codes it verified (one link, many customers, is
  how offers and trials are used), and that row shows the cost of a code seen first.

Subject and anchor rounds are interleaved (and their order alternates), so that a slow
stretch of the machine hits both; each figure is the median over the rounds, and the ratio
is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

try:
    from partnerkit import Catalog, OfferLine, Portal, Service, TrialTerms, User
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from partnerkit import Catalog, OfferLine, Portal, Service, TrialTerms, User

from partnerkit import ContactInfo
from partnerkit.ports import Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore

CATALOG = Catalog(
    [
        Service(
            sku="EXCHANGE",
            name="Exchange Online",
            min_licenses=1,
            max_licenses=1000,
            trial=TrialTerms(days=30, licenses=25),
        ),
        Service(sku="INTUNE", name="Windows Intune", min_licenses=5, max_licenses=500),
    ]
)


class Setup:
    """A portal with a partner, one open offer link and customers waiting to redeem it."""

    def __init__(self, store: Store) -> None:
        self.portal = Portal(store=store, catalog=CATALOG)
        _, self.partner_admin = self.portal.register_partner(
            name="Contoso",
            contact=ContactInfo(email="hello@contoso.example"),
            admin_email="ada@contoso.example",
        )
        self.url, _ = self.portal.create_purchase_offer(
            self.partner_admin, [OfferLine("INTUNE", 25)]
        )
        self._registered = 0

    def customers(self, n: int) -> list[User]:
        """Register *n* new customers (not timed); return their global admins."""
        admins = []
        for _ in range(n):
            self._registered += 1
            i = self._registered
            _, admin = self.portal.register_customer(
                name=f"Customer {i}", domain=f"c{i}.example", admin_email=f"a@c{i}.example"
            )
            admins.append(admin)
        return admins

    def redeem_all(self, admins: list[User]) -> float:
        """Redeem the offer once per admin; return the seconds per redemption."""
        redeem, url = self.portal.redeem, self.url
        start = time.perf_counter()
        for admin in admins:
            redeem(url, admin)
        return (time.perf_counter() - start) / len(admins)

    def redeem_distinct(self, admins: list[User]) -> float:
        """Redeem a link of its own for each admin (issued before timing starts), so that no
        redemption finds its link's code verified before; return the seconds per redemption."""
        create = self.portal.create_purchase_offer
        urls = [create(self.partner_admin, [OfferLine("INTUNE", 25)])[0] for _ in admins]
        redeem = self.portal.redeem
        start = time.perf_counter()
        for url, admin in zip(urls, admins, strict=True):
            redeem(url, admin)
        return (time.perf_counter() - start) / len(admins)


class Anchor:
    """One bare ``INSERT`` + ``COMMIT`` on the store's file, same pragmas, own connection."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_anchor (id INTEGER PRIMARY KEY, payload TEXT)"
        )
        self.n = 0

    def insert_all(self, count: int) -> float:
        """Run *count* one-row transactions; return the seconds per transaction."""
        execute = self.conn.execute
        start = time.perf_counter()
        for _ in range(count):
            self.n += 1
            execute("BEGIN IMMEDIATE")
            execute("INSERT INTO bench_anchor (id, payload) VALUES (?, ?)", (self.n, "x" * 64))
            execute("COMMIT")
        return (time.perf_counter() - start) / count

    def close(self) -> None:
        self.conn.close()


def interleave(
    rounds: int, subject: Callable[[], float], anchor: Callable[[], float]
) -> tuple[list[float], list[float]]:
    """Run subject and anchor rounds alternately (order flipped every round)."""
    subjects, anchors = [], []
    for r in range(rounds):
        if r % 2:
            anchors.append(anchor())
            subjects.append(subject())
        else:
            subjects.append(subject())
            anchors.append(anchor())
    return subjects, anchors


def bench_sqlite(rounds: int, per_round: int, directory: Path) -> dict[str, float]:
    path = directory / "bench-redeem.db"
    store = SQLiteStore(path)
    setup = Setup(store)
    anchor = Anchor(str(path))
    batches = [setup.customers(per_round) for _ in range(rounds + 1)]
    setup.redeem_all(batches.pop())  # warm-up: connections, statement caches
    anchor.insert_all(per_round)
    subjects, anchors = interleave(
        rounds, lambda: setup.redeem_all(batches.pop()), lambda: anchor.insert_all(per_round)
    )
    anchor.close()
    store.close()
    ratios = [s / a for s, a in zip(subjects, anchors, strict=True)]
    return {
        "redeem": statistics.median(subjects),
        "anchor": statistics.median(anchors),
        "ratio": statistics.median(ratios),
    }


def bench_memory(
    rounds: int, per_round: int, store: Store | None = None, *, distinct: bool = False
) -> dict[str, float]:
    setup = Setup(store if store is not None else MemoryStore())
    batches = [setup.customers(per_round) for _ in range(rounds + 1)]
    run = setup.redeem_distinct if distinct else setup.redeem_all
    run(batches.pop())
    times = [run(batches.pop()) for _ in range(rounds)]
    median = statistics.median(times)
    return {"redeem": median, "per_second": 1 / median}


def profile(store_kind: str, count: int, directory: Path) -> None:
    """Print the functions a redemption spends most of its time in."""
    store: Store = MemoryStore() if store_kind == "memory" else SQLiteStore(directory / "prof.db")
    setup = Setup(store)
    admins = setup.customers(count + 10)
    setup.redeem_all(admins[:10])
    profiler = cProfile.Profile()
    profiler.enable()
    setup.redeem_all(admins[10:])
    profiler.disable()
    print(f"\n## cProfile: {count} redemptions on {store_kind}\n")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)
    store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (noisier)")
    parser.add_argument("--profile", action="store_true", help="print cProfile statistics")
    args = parser.parse_args(argv)
    rounds, sqlite_n, memory_n = (5, 50, 500) if args.quick else (11, 200, 2000)

    with tempfile.TemporaryDirectory(prefix="bench-redeem-") as tmp:
        directory = Path(tmp)
        if args.profile:
            profile("sqlite", sqlite_n, directory)
            profile("memory", memory_n, directory)
            return 0
        sq = bench_sqlite(rounds, sqlite_n, directory)
        mem = bench_memory(rounds, memory_n)
        # The same redemption on SQLite without a file: its CPU cost, with no fsync at all.
        cpu = bench_memory(rounds, sqlite_n, SQLiteStore(":memory:"))
        # Every redemption through a link of its own: the ring has verified none of them.
        fresh = bench_memory(rounds, memory_n, distinct=True)

    sqlite_ok = sq["ratio"] <= 3.0
    memory_ok = mem["per_second"] >= 10_000
    print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}; {rounds} rounds")
    print(f"of {sqlite_n} (SQLite) and {memory_n} (memory) redemptions, fresh customer each.\n")
    print("| measurement | median | target | met |")
    print("|---|---|---|---|")
    print(f"| `Portal.redeem`, SQLite file | {sq['redeem'] * 1e6:,.0f} µs | | |")
    print(f"| bare INSERT+COMMIT, same file | {sq['anchor'] * 1e6:,.0f} µs | | |")
    print(
        f"| ratio redeem / INSERT+COMMIT | {sq['ratio']:.2f}x | ≤ 3x | "
        f"{'yes' if sqlite_ok else 'NO'} |"
    )
    print(f"| `Portal.redeem`, SQLite `:memory:` (no fsync) | {cpu['redeem'] * 1e6:,.0f} µs | | |")
    print(
        f"| `Portal.redeem`, MemoryStore | {mem['redeem'] * 1e6:,.1f} µs "
        f"= {mem['per_second']:,.0f}/s | ≥ 10,000/s | {'yes' if memory_ok else 'NO'} |"
    )
    print(
        f"| `Portal.redeem`, MemoryStore, a new link each time | {fresh['redeem'] * 1e6:,.1f} µs "
        f"= {fresh['per_second']:,.0f}/s | (reference) | |"
    )
    return 0 if sqlite_ok and memory_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
