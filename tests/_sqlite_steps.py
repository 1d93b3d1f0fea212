"""How much work SQLite does for a call: its virtual machine's steps, in thousands, counted
by a progress handler on the store's connection (the tests that prove a page costs the same
however long the list or the trail it is read from)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from partnerkit.stores.sqlite import SQLiteStore

R = TypeVar("R")


def steps_of(store: SQLiteStore, call: Callable[[], R]) -> tuple[int, R]:
    """Thousands of SQLite steps that *call* takes on *store*'s connection, and its result."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn = store.acquire()
    try:
        conn.set_progress_handler(count, 1000)
        result = call()
        conn.set_progress_handler(None, 1000)
    finally:
        store.release(conn)
    return steps, result
