"""Random 128-bit hex tokens for ids, drawn from the operating system in blocks.

``os.urandom(16)`` is one system call per id; a redemption makes several ids. Here one call
fetches 256 ids' worth of bytes, and each id is the next 32 characters of their hex form.
The bytes are the same CSPRNG output ``os.urandom`` gives, each used once. A forked child
drops the block it inherited, or parent and child would hand out the same ids.
"""

from __future__ import annotations

import os
import threading

__all__ = ["random_hex128"]

_BLOCK_BYTES = 4096
_TOKEN_CHARS = 32  # 16 bytes


class _Pool:
    __slots__ = ("at", "hex", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hex = ""
        self.at = 0

    def reset(self) -> None:
        self.lock = threading.Lock()
        self.hex = ""
        self.at = 0

    def take(self) -> str:
        with self.lock:
            at = self.at
            if at >= len(self.hex):
                self.hex = os.urandom(_BLOCK_BYTES).hex()
                at = 0
            self.at = at + _TOKEN_CHARS
            return self.hex[at : at + _TOKEN_CHARS]


_POOL = _Pool()
os.register_at_fork(after_in_child=_POOL.reset)


def random_hex128() -> str:
    """Return 128 fresh random bits as 32 lowercase hex characters."""
    return _POOL.take()
