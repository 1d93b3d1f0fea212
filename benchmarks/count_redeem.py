"""Count the CPU instructions of a ``MemoryStore`` redemption, for ``valgrind``.

The machine's speed moves; the count of instructions does not, so it is what tells whether
code got cheaper (``docs/performance.md``, "Redemption")::

    for n in 0 300; do
        PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=cg.$n.out \\
            .venv/bin/python benchmarks/count_redeem.py $n
    done
    # instructions a redemption: (the "summary:" of cg.300.out - that of cg.0.out) / 300

Both runs register the same 320 customers and redeem 20 links before counting, so the
difference is the N redemptions alone. The random bytes are seeded, so two runs of the same
code do the same work.
"""

from __future__ import annotations

import os
import random
import secrets
import sys

_rng = random.Random(12345)
os.urandom = _rng.randbytes
secrets.token_bytes = lambda n=32: _rng.randbytes(n)  # type: ignore[assignment,misc]

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_redeem import Setup  # noqa: E402

from partnerkit.stores.memory import MemoryStore  # noqa: E402

REGISTERED = 320
WARM_UP = 20


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    if not 0 <= count <= REGISTERED - WARM_UP:
        raise SystemExit(f"N must be from 0 to {REGISTERED - WARM_UP}")
    setup = Setup(MemoryStore())
    admins = setup.customers(REGISTERED)
    redeem, url = setup.portal.redeem, setup.url
    for admin in admins[:WARM_UP]:
        redeem(url, admin)
    for admin in admins[WARM_UP : WARM_UP + count]:
        redeem(url, admin)


if __name__ == "__main__":
    main()
