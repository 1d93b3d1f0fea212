"""Persistence adapters: MemoryStore, SQLiteStore and PostgresStore, one module each.

This package also gives a store of your own the checks every built-in store runs before it
writes, so that it refuses what they refuse, with the same errors (the contract suite,
``partnerkit.testing.contract``, holds a store to them):

- :func:`check_storable` before an object is added or updated;
- :func:`check_audit_event` before an audit event is appended.
"""

from __future__ import annotations

from typing import Any

from partnerkit.audit import AuditEvent
from partnerkit.ports import Table

__all__ = ["check_audit_event", "check_storable"]


def check_storable(table: Table[Any], obj: Any) -> None:
    """Check *obj* as every built-in store does before it writes it to *table*.

    First the table's own rules (``Table.validate``: a bad licence count is a
    ``ValidationError`` naming its field), then every value against what a store can keep
    (a ``ValidationError`` on ``"store"`` for text with a NUL or a lone surrogate, a whole
    number beyond 64 bits, a flag that is not a bool, a naive time, a value where an enum
    member belongs). The order matters: a count of ``True`` is refused on ``"licenses"``.

    Raises:
        ValidationError: as above; nothing should be written.
    """
    from partnerkit.stores._sql import table_codec

    if table.validate is not None:
        table.validate(obj)
    table_codec(table).check(obj)


def check_audit_event(event: AuditEvent, head: tuple[int, str]) -> None:
    """Check an audit event as every built-in store does before it appends it after *head*
    (the ``(seq, hash)`` of the newest event; ``(0, GENESIS_HASH)`` for none).

    Raises:
        Conflict: the event does not follow the head (another one was appended first).
        ValidationError: its time is not in UTC (on ``"at"``: its hash covers the time as
            text, which a store that gives times back in UTC would change), or a value no
            store keeps (on ``"store"``).
    """
    from partnerkit.stores._sql import AUDIT_COLUMNS, check_appendable

    check_appendable(event, head)
    AUDIT_COLUMNS.check(event)
