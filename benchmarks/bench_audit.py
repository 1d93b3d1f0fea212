"""Benchmark reading a long audit trail on a SQLite file: the chain check, and one page.

Run ``.venv/bin/python benchmarks/bench_audit.py`` (``--events N`` for another length; the
default is 200,000). There is no SPEC target here; the point is what a long trail costs. It
builds a SQLite file with one partner, one customer and *N* more events appended through
the store's own unit of work (a third of them on the customer), then measures, in the same
run:

* ``Portal.verify_audit_trail``, which reads the chain a part of ``MAX_AUDIT_RANGE`` events
  at a time, against the way it read the chain before (``audit_events()`` whole, then
  ``verify_chain``): the median time of five runs, interleaved, and in a run of its own
  the most memory Python held at once (``tracemalloc``);
* ``Portal.audit_trail_page`` (100 events, newest first, the customer's global admin),
  against ``Portal.audit_trail`` of the same company, whole.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from partnerkit import ContactInfo, Portal
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from partnerkit import ContactInfo, Portal

from partnerkit.audit import AuditEvent, verify_chain
from partnerkit.stores.sqlite import SQLiteStore


def build(store: SQLiteStore, portal: Portal, count: int) -> Any:
    """The customer's global admin, after *count* more events."""
    partner, _ = portal.register_partner(
        name="Contoso", contact=ContactInfo(email="p@contoso.example"), admin_email="a@c.example"
    )
    customer, admin = portal.register_customer(
        name="Fabrikam", domain="fabrikam.example", admin_email="kim@fabrikam.example"
    )
    now = portal.now()
    done = 0
    while done < count:
        with store.unit_of_work() as uow:
            seq, prev = uow.audit_head()
            for _ in range(min(10_000, count - done)):
                seq += 1
                on = customer.id if seq % 3 == 0 else partner.id
                event = AuditEvent.chained(
                    seq=seq,
                    prev_hash=prev,
                    at=now,
                    actor_id=admin.id,
                    actor_company_id=on,
                    company_id=on,
                    role="global_admin",
                    action="user.update",
                    outcome="success",
                    target_id=admin.id,
                    detail={"fields": "display_name"},
                    correlation_id=f"req-{seq}",
                )
                uow.append_audit(event)
                prev = event.hash
                done += 1
            uow.commit()
    return admin


def peak_memory(run: Callable[[], object]) -> tuple[int, object]:
    """The most bytes Python held at once above the start of *run*, and its result
    (``tracemalloc`` slows the run down, so it is timed apart)."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    result = run()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak, result


def timed(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000, help="events to append")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        store = SQLiteStore(Path(tmp) / "audit.db")
        portal = Portal(store=store)
        started = time.perf_counter()
        admin = build(store, portal, args.events)
        print(f"built {args.events:,} events in {time.perf_counter() - started:.0f} s\n")

        def whole() -> int:
            with store.unit_of_work(write=False) as uow:
                events, head = uow.audit_events(), uow.audit_head()
            return verify_chain(events, head)

        subjects = (("in parts (now)", portal.verify_audit_trail), ("whole", whole))
        times: dict[str, list[float]] = {name: [] for name, _ in subjects}
        for round_ in range(5):  # interleaved, the order flipped each round
            for name, run in subjects[:: 1 if round_ % 2 else -1]:
                times[name].append(timed(run, 1))
        rows = []
        for name, run in subjects:
            peak, count = peak_memory(run)
            rows.append((name, statistics.median(times[name]), peak, count))
        page = timed(lambda: portal.audit_trail_page(admin, limit=100, newest_first=True), 50)
        trail = timed(lambda: portal.audit_trail(admin), 3)
        store.close()

    print(f"Python {sys.version.split()[0]}; SQLite file, {args.events:,} events appended.\n")
    print("| `verify_audit_trail`, chain read | events | median time | most memory held at once |")
    print("|---|---:|---:|---:|")
    for name, seconds, peak, count in rows:
        print(f"| {name} | {count:,} | {seconds:.2f} s | {peak / 2**20:,.1f} MiB |")
    customer_events = args.events // 3
    print(f"\n| the customer's trail (about {customer_events:,} events) | median |")
    print("|---|---:|")
    print(f"| `audit_trail_page`, 100 newest | {page * 1e3:,.2f} ms |")
    print(f"| `audit_trail`, whole | {trail * 1e3:,.0f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
