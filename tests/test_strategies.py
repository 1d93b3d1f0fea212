"""The kit's hypothesis strategies give what they promise: values every use case takes.

The catalogue strategies (``services``, ``catalogs``, ``offer_lines``, ``license_counts``,
``invalid_license_counts``) came in the sixteenth session, from a newcomer's review: the
kit had none for the values SPEC F4 most asks a developer to test. ``names()`` and
``addresses()`` no longer draw the bidirectional controls the use cases refuse in a name or
an address given now.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from partnerkit import (
    Catalog,
    ContactInfo,
    OfferLine,
    Portal,
    Service,
    Subscription,
    SubscriptionStatus,
    ValidationError,
)
from partnerkit.consent import Delegation, DelegationStatus
from partnerkit.offers import check_licenses
from partnerkit.ports import DELEGATIONS, SERVICE_REQUESTS, SUBSCRIPTIONS, Table
from partnerkit.stores import check_storable
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.support import RequestStatus, ServiceRequest, check_request_text
from partnerkit.testing import DEFAULT_START
from partnerkit.testing import strategies as pks

_FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(catalog=pks.catalogs(), data=st.data())
def test_an_offer_drawn_from_a_drawn_catalogue_is_issued_and_bought_as_adjusted(
    catalog: Catalog, data: st.DataObject
) -> None:
    """A partner offers the drawn lines; the customer adjusts every count to another drawn
    within its service's bounds; the subscriptions hold exactly those counts."""
    portal = Portal(store=MemoryStore(), catalog=catalog)
    _, ana = portal.register_partner(
        name="Contoso", contact=ContactInfo(email="hi@contoso.example"), admin_email="a@c.example"
    )
    _, fay = portal.register_customer(
        name="Fabrikam", domain="fabrikam.example", admin_email="f@fabrikam.example"
    )
    lines = data.draw(pks.offer_lines(catalog))
    url, offer = portal.create_purchase_offer(ana, lines)
    assert offer.lines == lines
    adjusted = {line.sku: data.draw(pks.license_counts(catalog.get(line.sku))) for line in lines}
    result = portal.redeem(url, fay, licenses=adjusted)
    assert {s.sku: s.licenses for s in result.subscriptions} == adjusted
    assert {s.status for s in result.subscriptions} == {SubscriptionStatus.ACTIVE}


@_FAST
@given(service=pks.services(trial=True))
def test_a_drawn_service_with_a_trial_gives_its_trial(service: Service) -> None:
    assert service.trial is not None
    portal = Portal(store=MemoryStore(), catalog=Catalog([service]))
    _, ana = portal.register_partner(
        name="Contoso", contact=ContactInfo(email="hi@contoso.example"), admin_email="a@c.example"
    )
    _, fay = portal.register_customer(
        name="Fabrikam", domain="fabrikam.example", admin_email="f@fabrikam.example"
    )
    (sub,) = portal.redeem(portal.create_trial_invitation(ana, service.sku), fay).subscriptions
    assert (sub.status, sub.licenses) == (SubscriptionStatus.TRIAL, service.trial.licenses)


@_FAST
@given(service=pks.services(), data=st.data())
def test_every_invalid_count_is_refused_by_the_service_and_at_redemption(
    service: Service, data: st.DataObject
) -> None:
    bad: Any = data.draw(pks.invalid_license_counts(service))
    with pytest.raises(ValidationError) as refused:
        service.check(bad)
    assert refused.value.field == "licenses"
    portal = Portal(store=MemoryStore(), catalog=Catalog([service]))
    _, ana = portal.register_partner(
        name="Contoso", contact=ContactInfo(email="hi@contoso.example"), admin_email="a@c.example"
    )
    _, fay = portal.register_customer(
        name="Fabrikam", domain="fabrikam.example", admin_email="f@fabrikam.example"
    )
    url, _ = portal.create_purchase_offer(ana, [OfferLine(service.sku, service.min_licenses)])
    with pytest.raises(ValidationError) as refused:
        portal.redeem(url, fay, licenses={service.sku: bad})
    assert refused.value.field == f"licenses[{service.sku}]"
    assert portal.list_subscriptions(fay, fay.company_id) == []


@_FAST
@given(count=pks.license_counts(), bad=pks.invalid_license_counts())
def test_the_counts_strategies_lie_on_either_side_of_the_bounds(count: int, bad: Any) -> None:
    assert check_licenses(count) == count
    with pytest.raises(ValidationError):
        check_licenses(bad)


@_FAST
@given(name=pks.names(), contact=pks.contact_infos(), display=pks.names())
def test_drawn_names_and_contact_information_are_taken_by_the_use_cases(
    name: str, contact: ContactInfo, display: str
) -> None:
    """A partner registered with them, and a user given a drawn display name: before, a
    drawn right-to-left override in a name or address was refused (``check_new_name``)."""
    portal = Portal(store=MemoryStore())
    partner, ana = portal.register_partner(name=name, contact=contact, admin_email="a@c.example")
    assert (partner.name, partner.contact) == (name, contact)
    lee = portal.create_user(ana, email="lee@c.example", display_name=display)
    assert lee.display_name == display


# -- lifecycles (nineteenth session) --------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path_factory.mktemp("strategies") / "kept.db")
    yield store
    store.close()


def _kept(store: SQLiteStore, table: Table[Any], obj: Any) -> Any:
    """*obj* written to *table* of a SQLite file and read back (rolled back after); a new
    object is added at version 1, so it is compared at its own version."""
    check_storable(table, obj)
    with store.unit_of_work() as uow:
        repo = uow.repository(table)
        repo.add(attrs.evolve(obj, version=1))
        found = repo.get(obj.id)
        uow.rollback()
    return None if found is None else attrs.evolve(found, version=obj.version)


@_FAST
@given(delegation=pks.delegations(), data=st.data())
def test_a_drawn_delegation_agrees_with_itself_and_is_stored_whole(
    sqlite_file: SQLiteStore, delegation: Delegation, data: st.DataObject
) -> None:
    """Times in order, an acceptance exactly on those once accepted, the end date the
    acceptance plus the duration, a decision on every answered one; shown as the Portal
    shows it (``as_of``: an expired one keeps its stored version); a store keeps it whole;
    ``status=`` is the status asked for, and ``now=`` the time it is shown at."""
    d = delegation
    accepted = d.accepted_at is not None
    assert (d.accepted_by is not None) is accepted
    if d.status in (DelegationStatus.ACTIVE, DelegationStatus.REVOKED):
        assert accepted
    if d.status in (DelegationStatus.PENDING, DelegationStatus.DECLINED):
        assert not accepted
    if d.status is DelegationStatus.PENDING or (
        d.status is DelegationStatus.EXPIRED and not accepted
    ):
        assert (d.decided_at, d.decided_by, d.version) == (None, None, 1)
    else:
        assert d.decided_at is not None
        assert d.offered_at <= d.decided_at
    if accepted:
        assert d.accepted_at is not None
        assert d.offered_at <= d.accepted_at
        assert d.decided_at is not None
        assert d.accepted_at <= d.decided_at
        assert d.ends_at == (None if d.duration is None else d.accepted_at + d.duration)
    else:
        assert d.ends_at is None
    assert d.version == 1 + (d.decided_at is not None) + (
        accepted and d.status in (DelegationStatus.REVOKED, DelegationStatus.ENDED)
    )
    assert _kept(sqlite_file, DELEGATIONS, d) == d
    wanted = data.draw(st.sampled_from(DelegationStatus))
    now = data.draw(st.none() | st.sampled_from([DEFAULT_START]))
    drawn = data.draw(pks.delegations(status=wanted, customer_id="cmp_c", now=now))
    assert (drawn.status, drawn.customer_id) == (wanted, "cmp_c")
    if now is not None:
        assert drawn.as_of(now) == drawn
        times = [drawn.offered_at, drawn.accepted_at, drawn.decided_at]
        assert all(t <= now for t in times if t is not None)


@_FAST
@given(catalog=pks.catalogs(), data=st.data())
def test_a_drawn_subscription_is_to_a_service_of_the_catalogue_and_stored_whole(
    sqlite_file: SQLiteStore, catalog: Catalog, data: st.DataObject
) -> None:
    """To a service of the catalogue, with a count in its bounds, the advisor asked for
    (a converted trial's too), shown as of ``now=``; ``CANCELLED`` only when asked for;
    with the default catalogue any status asked for is drawn."""
    has_trials = any(service.trial is not None for service in catalog)
    trial_kinds = (SubscriptionStatus.TRIAL, SubscriptionStatus.EXPIRED)
    statuses = [s for s in SubscriptionStatus if has_trials or s not in trial_kinds]
    wanted = data.draw(st.sampled_from(statuses))
    now = data.draw(st.none() | st.sampled_from([DEFAULT_START]))
    subscription = data.draw(
        pks.subscriptions(
            catalog, status=wanted, partner_id="cmp_p", advisor_id="PA-AAAAA-BBBBB", now=now
        )
    )
    service = catalog.get(subscription.sku)
    assert subscription.status is wanted
    assert (subscription.partner_id, subscription.advisor_id) == ("cmp_p", "PA-AAAAA-BBBBB")
    assert service.min_licenses <= subscription.licenses <= service.max_licenses
    if wanted in trial_kinds:
        assert service.trial is not None
        assert subscription.licenses == service.trial.licenses
        assert subscription.trial_ends_at is not None
    if now is not None:
        assert subscription.created_at <= now
        assert subscription.as_of(now) == subscription
    assert _kept(sqlite_file, SUBSCRIPTIONS, subscription) == subscription
    unasked = data.draw(pks.subscriptions(catalog))
    assert unasked.status is not SubscriptionStatus.CANCELLED
    if not has_trials:
        with pytest.raises(ValueError, match="no service"):
            data.draw(pks.subscriptions(catalog, status=SubscriptionStatus.TRIAL))
    assert data.draw(pks.subscriptions(status=wanted)).status is wanted  # default catalogue


@_FAST
@given(request=pks.service_requests(), data=st.data())
def test_a_drawn_service_request_is_one_a_use_case_would_write(
    sqlite_file: SQLiteStore, request: ServiceRequest, data: st.DataObject
) -> None:
    check_request_text(request.title, request.description)
    on_behalf = request.delegation_id is not None
    assert (request.created_by_company_id != request.customer_id) is on_behalf
    assert request.created_at <= request.updated_at
    assert (request.version == 1) is (request.updated_at == request.created_at) or (
        request.version > 1
    )
    assert _kept(sqlite_file, SERVICE_REQUESTS, request) == request
    wanted = data.draw(st.sampled_from(RequestStatus))
    drawn = data.draw(pks.service_requests(status=wanted, on_behalf=True))
    assert (drawn.status, drawn.delegation_id is not None) == (wanted, True)
    through = data.draw(pks.delegations(status=DelegationStatus.REVOKED, now=DEFAULT_START))
    raised = data.draw(pks.service_requests(delegation=through, now=DEFAULT_START))
    assert (raised.customer_id, raised.created_by_company_id, raised.delegation_id) == (
        through.customer_id,
        through.partner_id,
        through.id,
    )
    assert through.accepted_at is not None
    assert through.decided_at is not None
    assert through.accepted_at <= raised.created_at <= through.decided_at
    assert raised.updated_at <= DEFAULT_START


def test_the_lifecycles_reach_their_less_common_states() -> None:
    """What the reviews of the kit found never drawn: an open request changed since it was
    raised, a paid subscription whose count changed, a converted trial, an expired
    delegation by either route (an offer nobody answered, a delegation past its end), and a
    request raised through an active delegation after the day it was accepted."""
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(
        request=pks.service_requests(status=RequestStatus.OPEN),
        subscription=pks.subscriptions(status=SubscriptionStatus.ACTIVE),
        expired=pks.delegations(status=DelegationStatus.EXPIRED, now=DEFAULT_START),
        data=st.data(),
    )
    def look(
        request: ServiceRequest,
        subscription: Subscription,
        expired: Delegation,
        data: st.DataObject,
    ) -> None:
        if request.version > 1:
            seen.add("open request changed")
        if subscription.trial_ends_at is None and subscription.version > 1:
            seen.add("count changed")
        if subscription.trial_ends_at is not None:
            seen.add("converted trial")
        seen.add("expired, accepted" if expired.accepted_at else "expired, never answered")
        active = data.draw(pks.delegations(status=DelegationStatus.ACTIVE, now=DEFAULT_START))
        raised = data.draw(pks.service_requests(delegation=active, now=DEFAULT_START))
        assert active.accepted_at is not None
        if raised.created_at > active.accepted_at:
            seen.add("raised after the acceptance")

    look()
    assert seen == {
        "open request changed",
        "count changed",
        "converted trial",
        "expired, accepted",
        "expired, never answered",
        "raised after the acceptance",
    }


_TIMES = ("offered_at", "accepted_at", "decided_at", "created_at", "updated_at")
_STATUSES: list[tuple[str, Any]] = [
    *(("delegations", s) for s in DelegationStatus),
    *(("subscriptions", s) for s in SubscriptionStatus),
    *(("service_requests", s) for s in RequestStatus),
]


@pytest.mark.parametrize("now", [None, DEFAULT_START], ids=["anytime", "now"])
@pytest.mark.parametrize(("strategy", "status"), _STATUSES, ids=lambda v: getattr(v, "value", v))
def test_every_status_is_drawn_without_a_health_check_failing(
    strategy: str, status: Any, now: datetime | None
) -> None:
    """Each ``status=``, with and without ``now=``, under hypothesis's own health checks
    (none suppressed): a status reached only through a filter failed them (the review of
    the kit: an expired trial shown at a test's clock, on some seeds)."""

    @settings(max_examples=25, deadline=None, database=None)
    @given(drawn=getattr(pks, strategy)(status=status, now=now))
    def check(drawn: Any) -> None:
        assert drawn.status is status
        if now is not None:
            times = [getattr(drawn, name, None) for name in _TIMES]
            assert all(t <= now for t in times if t is not None)
            assert all(t.tzinfo is UTC for t in times if t is not None)

    check()


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_a_lifecycle_strategy_refuses_what_it_cannot_draw() -> None:
    naive = datetime(2024, 1, 1)
    ends = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    for refused in (naive, *ends):
        with pytest.raises(ValueError, match="now="):
            pks.delegations(now=refused).example()
    london = datetime(2023, 12, 1, 9, 30, tzinfo=ZoneInfo("Europe/London"))
    shown = pks.delegations(status=DelegationStatus.PENDING, now=london).example()
    assert shown.offered_at.tzinfo is UTC  # read in UTC, as the Portal reads its clock
    with pytest.raises(ValueError, match="status="):
        pks.service_requests(status="open").example()  # type: ignore[arg-type]
    pending = pks.delegations(status=DelegationStatus.PENDING).example()
    with pytest.raises(ValueError, match="accepted"):
        pks.service_requests(delegation=pending).example()
