"""Rows that pass every store's own checks but not PostgreSQL's limits."""

from __future__ import annotations

import random

from partnerkit.records import CustomerRelation


def unindexable_relation() -> CustomerRelation:
    """A relation whose name key no btree index row holds (4,000 incompressible characters,
    about 12 kB): PostgreSQL refuses it with an error of its own, ``program_limit_exceeded``,
    where every store's own checks let it through."""
    rng = random.Random(1)  # noqa: S311 - incompressible text for an index row, not a secret
    huge = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(4000))
    return CustomerRelation(
        id="cmp_p:cmp_c",
        partner_id="cmp_p",
        customer_id="cmp_c",
        name_key=huge,
        domain="c.example",
        advises=True,
    )
