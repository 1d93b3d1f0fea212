"""Ids come from a block of OS randomness: unique, well formed, never shared with a child."""

from __future__ import annotations

import os
import re
import threading

import pytest

from partnerkit._random import random_hex128
from partnerkit.directory import new_id

_HEX128 = re.compile(r"[0-9a-f]{32}")


def test_tokens_are_128_bits_of_hex_and_never_repeat_across_blocks() -> None:
    """Many blocks' worth of tokens: every one well formed, no two the same."""
    tokens = [random_hex128() for _ in range(5_000)]  # about 20 blocks
    assert all(_HEX128.fullmatch(t) for t in tokens)
    assert len(set(tokens)) == len(tokens)
    assert re.fullmatch(r"usr_[0-9a-f]{32}", new_id("usr"))


def test_threads_drawing_at_once_never_get_the_same_token() -> None:
    results: list[list[str]] = [[] for _ in range(8)]

    def draw(out: list[str]) -> None:
        out.extend(random_hex128() for _ in range(2_000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [t for out in results for t in out]
    assert len(set(everything)) == len(everything) == 16_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_reuse_the_parents_block() -> None:
    """Parent and child draw right after the fork, from what was one block: all differ."""
    random_hex128()  # make sure a block is loaded before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        os.write(write, ",".join(random_hex128() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    parent = [random_hex128() for _ in range(50)]
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    child = b"".join(chunks).decode().split(",")
    assert len(child) == 50
    assert not set(parent) & set(child)
