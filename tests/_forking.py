"""Run a piece of a test in a forked child and bring back what it reports."""

from __future__ import annotations

import os
from collections.abc import Callable


def in_child(work: Callable[[], str]) -> str:
    """Fork; in the child, run *work* and send back the text it returns; in the parent, wait
    for the child, check that it ended well, and return that text.

    The child never returns to pytest: it leaves with ``os._exit`` (1 if *work* raised).
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, work().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        reported = pipe.read()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed"
    return reported
