"""Random 128-bit hex tokens for ids, drawn from the operating system in blocks.

``os.urandom(16)`` is one system call per id; a redemption makes several ids. Here one call
fetches 256 ids' worth of bytes, and each id is the next 32 characters of their hex form.
The bytes are the same CSPRNG output ``os.urandom`` gives, each used once. Every thread
draws from a block of its own (no lock on the way), and a forked child drops the blocks it
inherited, or parent and child would hand out the same ids.
"""

from __future__ import annotations

import os
import threading

__all__ = ["random_hex128"]

_BLOCK_BYTES = 4096
_TOKEN_CHARS = 32  # 16 bytes


class _Pool(threading.local):
    """One thread's block of random hex and how much of it is used."""

    def __init__(self) -> None:
        self.hex = ""
        self.at = 0


_pool = _Pool()


def _forget_blocks() -> None:
    global _pool
    _pool = _Pool()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_blocks)


def random_hex128() -> str:
    """Return 128 fresh random bits as 32 lowercase hex characters."""
    pool = _pool
    at = pool.at
    if at >= len(pool.hex):
        pool.hex = os.urandom(_BLOCK_BYTES).hex()
        at = 0
    pool.at = at + _TOKEN_CHARS
    return pool.hex[at : at + _TOKEN_CHARS]
