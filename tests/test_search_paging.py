"""``search_relations`` on SQLite and in memory against a model, for any data and any cursor.

The SQLite store answers a page with one statement that merges two index ranges and starts
both at the cursor; the model is the definition in ``UnitOfWork.search_relations``: the
partner's relations whose name key or domain starts with the prefix and that are listed at
the time of the search (advised, or administered through a delegation not yet ended), ordered by
``(search_key(prefix), id)``, those after the cursor, at most *limit*. Keys are drawn from a
small alphabet (with the last code point, which has no successor) so that prefixes, equal
keys and cursors that fall before, inside or after the range are all common. The same page
as companies (``search_customers``: on SQLite one statement joined to ``companies``) is held
to the model too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from partnerkit import Company, CompanyKind
from partnerkit.records import CustomerRelation
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore

ALPHABET = "abz\U0010ffff"
keys = st.text(alphabet=ALPHABET, max_size=3)
partners = st.sampled_from(["cmp_p", "cmp_q"])
#: The time of every search.
NOW = datetime(2025, 6, 1, tzinfo=UTC)
#: Whether the partner advises the customer, and the end date of its delegation: none, no
#: end date, or one before, at or after the search (``NOW``) by a microsecond.
listings = st.tuples(
    st.booleans(),
    st.sampled_from(["none", "open", *(NOW + timedelta(microseconds=d) for d in (-1, 0, 1))]),
)


@st.composite
def relations(draw: st.DrawFn) -> list[CustomerRelation]:
    rows = draw(st.lists(st.tuples(partners, keys, keys, listings), max_size=25))
    return [
        CustomerRelation(
            id=CustomerRelation.key(partner, f"cmp_c{n:03d}"),
            partner_id=partner,
            customer_id=f"cmp_c{n:03d}",
            name_key=name,
            domain=domain,
            advises=advises,
            administers=delegation != "none",
            delegation_id=None if delegation == "none" else f"dlg_{n}",
            delegation_ends_at=delegation if isinstance(delegation, datetime) else None,
        )
        for n, (partner, name, domain, (advises, delegation)) in enumerate(rows)
    ]


def listed(relation: CustomerRelation) -> bool:
    """The definition, written out: advised, or a delegation with no end or one after NOW."""
    ends = relation.delegation_ends_at
    return relation.advises or (relation.delegation_id is not None and (ends is None or ends > NOW))


def model(
    rows: list[CustomerRelation], prefix: str, limit: int, after: tuple[str, str] | None
) -> list[CustomerRelation]:
    hits = sorted(
        (
            (r.search_key(prefix), r.id)
            for r in rows
            if r.partner_id == "cmp_p"
            and (r.name_key.startswith(prefix) or r.domain.startswith(prefix))
            and listed(r)
        ),
    )
    by_id = {r.id: r for r in rows}
    return [by_id[ident] for key, ident in hits if after is None or (key, ident) > after][:limit]


@given(
    rows=relations(),
    prefix=keys,
    limit=st.integers(min_value=1, max_value=30),
    cursor=st.none() | st.tuples(keys, st.sampled_from(["", "cmp_p:cmp_c003", "cmp_p:cmp_c9"])),
    from_results=st.booleans(),
)
def test_sqlite_and_memory_pages_are_the_model(
    rows: list[CustomerRelation],
    prefix: str,
    limit: int,
    cursor: tuple[str, str] | None,
    from_results: bool,
) -> None:
    """Any prefix, limit and cursor (one a search returned, or any key and id at all)."""
    expected_all = model(rows, prefix, 100, None)
    if from_results and expected_all:
        last = expected_all[len(expected_all) // 2]
        cursor = (last.search_key(prefix), last.id)
    expected = model(rows, prefix, limit, cursor)
    # Every third customer has no company (``search_customers`` leaves its relation out).
    companies = {
        r.customer_id: Company(
            id=r.customer_id,
            kind=CompanyKind.CUSTOMER,
            name=f"Customer {n}",
            domain=f"c{n}.example",
        )
        for n, r in enumerate(rows)
        if n % 3
    }
    for store in (SQLiteStore(":memory:"), MemoryStore()):
        try:
            with store.unit_of_work() as uow:
                for row in rows:
                    uow.customer_relations.add(row)
                for company in companies.values():
                    uow.companies.add(company)
                uow.commit()
            with store.unit_of_work(write=False) as uow:
                found = uow.search_relations("cmp_p", prefix, limit, cursor, now=NOW)
                assert found == expected, store
                assert uow.search_customers("cmp_p", prefix, limit, cursor, now=NOW) == [
                    companies[r.customer_id] for r in expected if r.customer_id in companies
                ], store
        finally:
            store.close()


def test_walking_every_page_finds_each_match_once() -> None:
    """Pages of three over a few hundred relations, cursor by cursor, are the whole list."""
    rows = [
        CustomerRelation(
            id=CustomerRelation.key("cmp_p", f"cmp_c{n:03d}"),
            partner_id="cmp_p",
            customer_id=f"cmp_c{n:03d}",
            name_key=("ab", "ba", "abz", "zab", "a")[n % 5] + str(n % 7),
            domain=("ba", "ab", "zz", "a")[n % 4] + f"{n}.example",
            advises=n % 6 != 5,
        )
        for n in range(300)
    ]
    store = SQLiteStore(":memory:")
    try:
        with store.unit_of_work() as uow:
            for row in rows:
                uow.customer_relations.add(row)
            uow.commit()
        for prefix in ("", "a", "ab", "b", "z", "q"):
            found: list[CustomerRelation] = []
            after = None
            with store.unit_of_work(write=False) as uow:
                while page := uow.search_relations("cmp_p", prefix, 3, after, now=NOW):
                    found += page
                    after = (page[-1].search_key(prefix), page[-1].id)
            assert found == model(rows, prefix, len(rows), None), prefix
    finally:
        store.close()
