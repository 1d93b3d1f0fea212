"""Licence counts are whole numbers within bounds at every boundary, and nothing is written
when one is refused.

The boundaries (SPEC F4): the ``OfferLine`` constructor, offer creation against the
catalogue's bounds, the customer's adjustment at redemption, ``change_licenses``, and the
store. The service with narrow bounds is ``INTUNE`` (5 to 500), so that counts valid for the
product (1 to 1,000,000) but not for the service are tried too. A bad count is anything but
an ``int`` within bounds: zero, negatives, numbers beyond the bounds (huge ones too), bools,
floats (25.0, NaN and infinities included), strings, ``None``, ``Decimal`` and friends.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from _money import (
    EXCHANGE,
    INTUNE,
    Money,
    audit_outcomes_since,
    money_world,
    new_customer,
    smuggle,
    state,
    subscriptions_of,
    without_audit,
)
from partnerkit import (
    OfferLine,
    PartnerKitError,
    Subscription,
    SubscriptionStatus,
    ValidationError,
)
from partnerkit.offers import MAX_LICENSES, MIN_LICENSES
from partnerkit.ports import Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore

HUGE = [2**31, 2**63 - 1, 2**63, 2**64, 10**100, -(2**63) - 1]


def out_of_bounds(low: int, high: int) -> st.SearchStrategy[int]:
    """Whole numbers outside ``low..high``, the neighbours of the bounds and huge ones first."""
    return st.one_of(
        st.sampled_from([low - 1, high + 1, 0, -1, *HUGE]),
        st.integers(max_value=low - 1),
        st.integers(min_value=high + 1),
    )


def wrong_types(low: int, high: int) -> st.SearchStrategy[object]:
    """Things that are not ``int``: many of them equal to a valid count."""
    inside = st.integers(low, high)
    return st.one_of(
        st.booleans(),
        inside.map(float),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([25.0, math.nan, math.inf, -math.inf, 5.5]),
        inside.map(str),
        st.text(max_size=8),
        inside.map(lambda n: str(n).encode()),
        inside.map(Decimal),
        st.decimals(allow_nan=True, allow_infinity=True),
        inside.map(Fraction),
        inside.map(complex),
        st.none(),
        st.just([25]),
    )


def bad_counts(low: int, high: int) -> st.SearchStrategy[object]:
    """Every kind of count ``low..high`` must refuse."""
    return st.one_of(out_of_bounds(low, high), wrong_types(low, high))


def assert_refused(exc: ValidationError, field: str) -> None:
    assert exc.field == field
    assert isinstance(exc, ValueError)


def assert_nothing_written(m: Money, before: dict[str, Any]) -> None:
    """Every business table is as before; the audit only gained the refused attempt."""
    assert without_audit(state(m.store)) == without_audit(before)
    assert set(audit_outcomes_since(m.store, before)) <= {"failed"}


# -- the OfferLine constructor -------------------------------------------------------------


@given(count=bad_counts(MIN_LICENSES, MAX_LICENSES))
@example(count=0)
@example(count=True)
@example(count=25.0)
@example(count=math.nan)
@example(count="25")
@example(count=None)
@example(count=10**100)
@example(count=Decimal(25))
def test_an_offer_line_refuses_every_bad_count_naming_licenses(count: object) -> None:
    """``OfferLine(sku, count)`` accepts only an int from 1 to 1,000,000."""
    with pytest.raises(ValidationError) as info:
        OfferLine("INTUNE", count)  # type: ignore[arg-type]
    assert_refused(info.value, "licenses")


@given(count=st.integers(MIN_LICENSES, MAX_LICENSES))
def test_an_offer_line_keeps_every_valid_count_exactly(count: int) -> None:
    """Every whole number from 1 to 1,000,000 is a valid line, kept as given."""
    assert OfferLine("INTUNE", count).licenses == count


# -- offer creation against the catalogue ------------------------------------------------------


def line_with(count: object) -> OfferLine:
    """An INTUNE offer line with *count*, made past the constructor if it would refuse."""
    try:
        return OfferLine("INTUNE", count)  # type: ignore[arg-type]
    except ValidationError:
        return smuggle(OfferLine("INTUNE", 5), licenses=count)  # type: ignore[no-any-return]


def test_offer_creation_refuses_every_count_outside_the_services_bounds() -> None:
    """A count a line accepts (1..1,000,000) but INTUNE does not (5..500), and every bad
    count that reached a line past its constructor, are refused with the sku in the field
    name; no offer, link or delegation offer is written."""
    m = money_world(MemoryStore())

    @given(count=bad_counts(INTUNE.min_licenses, INTUNE.max_licenses))
    @example(count=4)
    @example(count=501)
    @example(count=1_000_000)
    @example(count=25.0)
    @example(count=True)
    def check(count: object) -> None:
        before = state(m.store)
        for lines in ([line_with(count)], [OfferLine("EXCHANGE", 10), line_with(count)]):
            with pytest.raises(ValidationError) as info:
                m.portal.create_purchase_offer(m.partner_admin, lines, True)
            assert_refused(info.value, "licenses[INTUNE]")
        assert_nothing_written(m, before)

    check()


def test_offer_creation_keeps_every_count_within_the_services_bounds() -> None:
    """Every count from 5 to 500 makes an INTUNE offer with exactly that count."""
    m = money_world(MemoryStore())

    @given(count=st.integers(INTUNE.min_licenses, INTUNE.max_licenses))
    @example(count=5)
    @example(count=500)
    def check(count: int) -> None:
        _, offer = m.portal.create_purchase_offer(m.partner_admin, [OfferLine("INTUNE", count)])
        assert offer.lines == (OfferLine("INTUNE", count),)

    check()


# -- the customer's adjustment at redemption -------------------------------------------------------


def test_redemption_refuses_every_bad_adjustment_and_buys_nothing() -> None:
    """``redeem(url, actor, licenses={"INTUNE": count})`` with a bad count is refused naming
    ``licenses[INTUNE]``; no subscription, no redemption, no use of the link — and the same
    customer can still accept the offer afterwards."""
    m = money_world(MemoryStore())
    url, _ = m.portal.create_purchase_offer(
        m.partner_admin, [OfferLine("EXCHANGE", 10), OfferLine("INTUNE", 50)], max_uses=1
    )

    @given(count=bad_counts(INTUNE.min_licenses, INTUNE.max_licenses))
    @example(count=4)
    @example(count=501)
    @example(count=25.0)
    @example(count=True)
    @example(count="50")
    @example(count=Decimal(50))
    @example(count=math.nan)
    @example(count=None)
    def check(count: object) -> None:
        before = state(m.store)
        for adjustment in ({"INTUNE": count}, {"EXCHANGE": 20, "INTUNE": count}):
            with pytest.raises(ValidationError) as info:
                m.portal.redeem(url, m.billing, licenses=adjustment)
            assert_refused(info.value, "licenses[INTUNE]")
        assert_nothing_written(m, before)

    check()
    result = m.portal.redeem(url, m.billing, licenses={"INTUNE": 500})
    assert [(s.sku, s.licenses) for s in result.subscriptions] == [
        ("EXCHANGE", 10),
        ("INTUNE", 500),
    ]


@pytest.mark.parametrize(
    "licenses",
    [{"PROJECT": 5}, {"intune": 50}, {5: 50}, [("INTUNE", 50)], "INTUNE=50", 50],
    ids=["sku-not-offered", "wrong-case", "non-str-key", "pairs", "text", "number"],
)
def test_an_adjustment_must_be_a_mapping_of_offered_skus(licenses: Any) -> None:
    """Adjusting a service the offer does not hold, or passing something that is not a
    mapping, is refused naming ``licenses``; nothing is bought."""
    m = money_world(MemoryStore())
    url, _ = m.portal.create_purchase_offer(m.partner_admin, [OfferLine("INTUNE", 50)])
    before = state(m.store)
    with pytest.raises(ValidationError) as info:
        m.portal.redeem(url, m.billing, licenses=licenses)
    assert_refused(info.value, "licenses")
    assert_nothing_written(m, before)


def test_a_trial_link_takes_no_licence_counts() -> None:
    """A trial's licences are the service's trial terms; adjusting them is refused."""
    m = money_world(MemoryStore())
    url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE")
    before = state(m.store)
    with pytest.raises(ValidationError) as info:
        m.portal.redeem(url, m.admin, licenses={"EXCHANGE": 25})
    assert_refused(info.value, "licenses")
    assert_nothing_written(m, before)


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[SQLiteStore]:
    """An empty SQLite store on a file, closed after the test."""
    store = SQLiteStore(tmp_path / "store.db")
    yield store
    store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_every_valid_adjustment_is_bought_and_stored_exactly(
    kind: str, sqlite_file: SQLiteStore
) -> None:
    """Any counts within both services' bounds are the counts bought, returned and stored
    (on the SQLite file too: nothing rounds or converts on the way)."""
    store: Store = MemoryStore() if kind == "memory" else sqlite_file
    m = money_world(store)
    url, _ = m.portal.create_purchase_offer(
        m.partner_admin, [OfferLine("EXCHANGE", 10), OfferLine("INTUNE", 50)]
    )

    @given(
        exchange=st.none() | st.integers(EXCHANGE.min_licenses, EXCHANGE.max_licenses),
        intune=st.integers(INTUNE.min_licenses, INTUNE.max_licenses),
    )
    @example(exchange=1, intune=5)
    @example(exchange=1000, intune=500)
    @example(exchange=None, intune=50)
    def check(exchange: int | None, intune: int) -> None:
        _, buyer = new_customer(m.portal)
        adjustment = (
            {"INTUNE": intune} if exchange is None else {"EXCHANGE": exchange, "INTUNE": intune}
        )
        result = m.portal.redeem(url, buyer, licenses=adjustment)
        expected = {"EXCHANGE": 10 if exchange is None else exchange, "INTUNE": intune}
        assert {s.sku: s.licenses for s in result.subscriptions} == expected
        stored = subscriptions_of(m.store, buyer.company_id)
        assert {s.sku: s.licenses for s in stored} == expected
        assert all(type(s.licenses) is int for s in stored)

    check()


# -- change_licenses -----------------------------------------------------------------------------


def bought(m: Money, count: int = 50) -> Subscription:
    """An active INTUNE subscription of the world's customer."""
    url, _ = m.portal.create_purchase_offer(m.partner_admin, [OfferLine("INTUNE", count)])
    (sub,) = m.portal.redeem(url, m.billing).subscriptions
    return sub


def test_change_licenses_refuses_every_bad_count_and_changes_nothing() -> None:
    """``change_licenses`` with a bad count is refused naming ``licenses``; the subscription
    keeps its count and version."""
    m = money_world(MemoryStore())
    sub = bought(m)

    @given(count=bad_counts(INTUNE.min_licenses, INTUNE.max_licenses))
    @example(count=4)
    @example(count=501)
    @example(count=50.0)
    @example(count=True)
    @example(count=math.inf)
    def check(count: object) -> None:
        before = state(m.store)
        with pytest.raises(ValidationError) as info:
            m.portal.change_licenses(m.billing, sub.id, count)  # type: ignore[arg-type]
        assert_refused(info.value, "licenses")
        assert_nothing_written(m, before)

    check()
    assert subscriptions_of(m.store, m.customer.id) == [sub]


def test_change_licenses_keeps_every_valid_count_exactly() -> None:
    """Every count from 5 to 500 is stored as given, one version newer each time."""
    m = money_world(MemoryStore())
    sub = bought(m)

    @given(count=st.integers(INTUNE.min_licenses, INTUNE.max_licenses))
    @example(count=5)
    @example(count=500)
    def check(count: int) -> None:
        (current,) = subscriptions_of(m.store, m.customer.id)
        changed = m.portal.change_licenses(m.billing, sub.id, count)
        assert (changed.licenses, changed.version) == (count, current.version + 1)
        assert subscriptions_of(m.store, m.customer.id) == [changed]

    check()


def test_a_trial_count_cannot_be_changed_through_the_portal() -> None:
    """A running trial keeps the service's trial licences: ``change_licenses`` refuses it."""
    m = money_world(MemoryStore())
    url = m.portal.create_trial_invitation(m.partner_admin, "EXCHANGE")
    (trial,) = m.portal.redeem(url, m.admin).subscriptions
    before = state(m.store)
    with pytest.raises(ValidationError) as info:
        m.portal.change_licenses(m.billing, trial.id, 30)
    assert info.value.field == "status"
    assert_nothing_written(m, before)


# -- the store ---------------------------------------------------------------------------------


def a_subscription(count: int = 50) -> Subscription:
    """A valid active subscription, not yet stored."""
    from partnerkit.testing import DEFAULT_START

    return Subscription(
        id="sub_raw",
        customer_id="cmp_raw",
        sku="INTUNE",
        licenses=count,
        status=SubscriptionStatus.ACTIVE,
        partner_id=None,
        advisor_id=None,
        created_at=DEFAULT_START,
    )


def write_through_store(store: Store, sub: Subscription, how: str) -> None:
    """Write *sub* through the store's own repository: as a new row, or as an update of a
    valid stored row."""
    if how == "update":
        sub = smuggle(sub, version=2)
    with store.unit_of_work() as uow:
        uow.subscriptions.add(sub) if how == "add" else uow.subscriptions.update(sub)
        uow.commit()


@pytest.fixture
def sqlite_with_a_subscription(sqlite_file: SQLiteStore) -> SQLiteStore:
    """A SQLite file holding one valid subscription (50 licences)."""
    write_through_store(sqlite_file, a_subscription(), "add")
    return sqlite_file


@pytest.mark.parametrize("how", ["add", "update"])
def test_the_sqlite_store_refuses_counts_out_of_bounds_by_its_check_constraint(
    how: str, sqlite_file: SQLiteStore
) -> None:
    """A subscription whose count is outside 1..1,000,000 (within SQLite's 64-bit integers)
    that reaches the store past every other check is refused with ``ValidationError``, and
    the file is unchanged."""
    store = sqlite_file
    if how == "update":
        write_through_store(store, a_subscription(), "add")

    @given(count=st.integers(-(2**63), 2**63 - 1).filter(lambda n: not 1 <= n <= MAX_LICENSES))
    @example(count=0)
    @example(count=-1)
    @example(count=MAX_LICENSES + 1)
    @example(count=2**63 - 1)
    def check(count: int) -> None:
        before = state(store)
        with pytest.raises(ValidationError):
            write_through_store(store, smuggle(a_subscription(), licenses=count), how)
        assert state(store) == before

    check()


@pytest.mark.parametrize(
    "count",
    [
        False,
        math.inf,
        "x",
        b"5",
        True,
        25.0,
        25.5,
        "25",
        math.nan,
        None,
        Decimal(25),
        2**63,
        10**100,
    ],
)
def test_the_sqlite_store_refuses_counts_of_the_wrong_type(
    count: object, sqlite_with_a_subscription: SQLiteStore
) -> None:
    """A count that is not an int, written through the store, is a ``ValidationError`` and
    the file is unchanged — never stored as something else, never another exception."""
    store = sqlite_with_a_subscription
    before = state(store)
    for how in ("add", "update"):
        sub = smuggle(a_subscription(), licenses=count)
        if how == "add":
            sub = smuggle(sub, id="sub_other", customer_id="cmp_other")
        with pytest.raises(PartnerKitError) as info:
            write_through_store(store, sub, how)
        assert isinstance(info.value, ValidationError)
    assert state(store) == before


def test_the_sqlite_store_names_the_licences_field_it_refuses(
    sqlite_with_a_subscription: SQLiteStore,
) -> None:
    """The store's refusal names the field, as every other boundary's does."""
    with pytest.raises(ValidationError) as info:
        write_through_store(
            sqlite_with_a_subscription, smuggle(a_subscription(), licenses=0), "update"
        )
    assert "licenses" in info.value.field


@pytest.mark.parametrize("count", [0, -1, MAX_LICENSES + 1])
def test_the_memory_store_refuses_what_the_sqlite_store_refuses(count: int) -> None:
    """The stores behave identically, errors included: a count out of bounds that reaches
    the memory store is refused there too."""
    store = MemoryStore()
    with pytest.raises(ValidationError):
        write_through_store(store, smuggle(a_subscription(), licenses=count), "add")


def raw_update(store: SQLiteStore, value: object) -> None:
    """Set the stored subscription's count with plain SQL, below partnerkit."""
    conn = sqlite3.connect(store.path)
    try:
        with conn:
            conn.execute("UPDATE subscriptions SET licenses = ? WHERE id = 'sub_raw'", (value,))
    finally:
        conn.close()


@pytest.mark.parametrize("value", [0, -5, MAX_LICENSES + 1, "many"])
def test_the_check_constraint_refuses_a_raw_sql_write_of_a_bad_count(
    value: object, sqlite_with_a_subscription: SQLiteStore
) -> None:
    """The constraint is in the file itself: a raw ``UPDATE`` past partnerkit is refused."""
    before = state(sqlite_with_a_subscription)
    # A number out of bounds breaks the CHECK; a string is not an INTEGER of a STRICT table.
    with pytest.raises(sqlite3.IntegrityError, match=r"CHECK|cannot store"):
        raw_update(sqlite_with_a_subscription, value)
    assert state(sqlite_with_a_subscription) == before


def test_the_check_constraint_refuses_a_raw_sql_write_of_a_fractional_count(
    sqlite_with_a_subscription: SQLiteStore,
) -> None:
    """A REAL such as 25.5 is not a licence count, even written in plain SQL: the table is
    STRICT, so SQLite itself refuses a value of the wrong type."""
    with pytest.raises(sqlite3.IntegrityError, match="cannot store REAL value"):
        raw_update(sqlite_with_a_subscription, 25.5)
