"""Running store calls in other threads: a thread opens one unit of work at a time (SPEC 5,
``docs/stores.md``), so a test that needs two open at once opens them in two threads."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from partnerkit.ports import Store, UnitOfWork

R = TypeVar("R")

#: Seconds a helper waits for another thread before the test fails.
LIMIT = 30


def elsewhere(fn: Callable[[], R]) -> R:
    """Run *fn* in a thread of its own and return what it returned (or raise what it
    raised)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result(LIMIT)


@contextlib.contextmanager
def held_open(
    store: Store, count: int, work: Callable[[UnitOfWork], Any] = lambda uow: None
) -> Iterator[list[Any]]:
    """Hold *count* read units of work of *store* open, each in a thread of its own, until
    the block ends; yield what *work* returned in each (called once each is open)."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    entered = threading.Barrier(count + 1)
    release = threading.Event()

    def hold(i: int) -> None:
        try:
            with store.unit_of_work(write=False) as uow:
                results[i] = work(uow)
                entered.wait(LIMIT)
                release.wait(LIMIT)
        except BaseException as exc:  # reported in the test's own thread
            errors.append(exc)
            entered.abort()

    threads = [threading.Thread(target=hold, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        try:
            entered.wait(LIMIT)
        except threading.BrokenBarrierError:
            for thread in threads:
                thread.join(LIMIT)
            raise errors[0] if errors else AssertionError("a holder never opened") from None
        yield results
    finally:
        release.set()
        for thread in threads:
            thread.join(LIMIT)
