"""Sequences of link operations keep the money path's promises (a hypothesis state machine).

Two partners issue trial links and purchase offers, withdraw, supersede and revoke them;
two customers redeem them with and without (good and bad) licence adjustments while the
clock moves on. A small model predicts the outcome of every step — which error, or which
subscriptions — and after every step the store must agree with it. Whatever the sequence:

- no customer ever gets two subscriptions from one link, or two redemptions of one link;
- no customer ever gets a second trial of a service (a subscription's id never changes);
- a withdrawn, superseded, revoked, expired or spent link never yields anything;
- a refused redemption writes nothing but its audit event.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from _money import (
    SERVICES,
    Money,
    audit_outcomes_since,
    link_id_of,
    money_world,
    new_customer,
    state,
    without_audit,
)
from partnerkit import (
    ContactInfo,
    InvalidLink,
    LinkExhausted,
    LinkExpired,
    LinkRevoked,
    OfferLine,
    PartnerKitError,
    Redemption,
    SubscriptionStatus,
    User,
    ValidationError,
)
from partnerkit.links import MAX_CLOCK_SKEW
from partnerkit.stores.memory import MemoryStore

BY_SKU = {s.sku: s for s in SERVICES}
TRIAL_SKUS = [s.sku for s in SERVICES if s.trial is not None]


@attrs.define
class LinkModel:
    """What the model knows about one issued link."""

    url: str
    link_id: str
    partner: int
    kind: str  # "trial" or "offer"
    expires_at: datetime
    max_uses: int | None
    sku: str | None = None
    lines: dict[str, int] = attrs.Factory(dict)
    offer_id: str | None = None
    offer_open: bool = True
    revoked: bool = False
    #: customer index -> the subscription ids its redemption returned
    redeemed: dict[int, tuple[str, ...]] = attrs.Factory(dict)


@attrs.define
class SubModel:
    id: str
    status: SubscriptionStatus  # as stored: TRIAL or ACTIVE
    licenses: int
    partner: int
    trial_ends_at: datetime | None


def valid_count(sku: str) -> st.SearchStrategy[int]:
    service = BY_SKU[sku]
    return st.integers(service.min_licenses, min(service.max_licenses, 2000))


def any_count(sku: str) -> st.SearchStrategy[object]:
    """Mostly valid counts, sometimes one a boundary must refuse."""
    service = BY_SKU[sku]
    return st.one_of(
        valid_count(sku),
        valid_count(sku),
        st.sampled_from(
            [
                0,
                -1,
                service.min_licenses - 1,
                service.max_licenses + 1,
                True,
                25.0,
                "25",
                None,
                Decimal(25),
                float("nan"),
                2**64,
            ]
        ),
    )


@st.composite
def offer_lines(draw: st.DrawFn) -> dict[str, int]:
    skus = draw(st.lists(st.sampled_from(sorted(BY_SKU)), min_size=1, max_size=3, unique=True))
    return {sku: draw(valid_count(sku)) for sku in skus}


@st.composite
def adjustments(draw: st.DrawFn) -> dict[str, object] | None:
    if draw(st.booleans()):
        return None
    skus = draw(st.lists(st.sampled_from(sorted(BY_SKU)), max_size=2, unique=True))
    return {sku: draw(any_count(sku)) for sku in skus}


class Redemptions(RuleBasedStateMachine):
    """Partners issue and kill links; customers redeem them; the model predicts it all."""

    links = Bundle("links")

    def __init__(self) -> None:
        super().__init__()
        self.m: Money = money_world(MemoryStore())
        portal = self.m.portal
        _, other_admin = portal.register_partner(
            name="Litware",
            contact=ContactInfo(email="hi@litware.example"),
            admin_email="lu@litware.example",
        )
        self.partners: list[User] = [self.m.partner_admin, other_admin]
        self.customers: list[User] = [self.m.admin] + [
            new_customer(portal, "seq")[1] for _ in range(1)
        ]
        self.subs: dict[tuple[int, str], SubModel] = {}
        #: (customer, sku) -> every subscription id ever seen for it
        self.ids_seen: dict[tuple[int, str], set[str]] = {}
        self.all_links: list[LinkModel] = []

    @property
    def now(self) -> datetime:
        return self.m.clock()

    # -- partners ------------------------------------------------------------------------------

    @initialize(target=links, lines=offer_lines())
    def first_links(self, lines: dict[str, int]) -> Any:
        """Every sequence starts with a trial link and an offer for the trialled service."""
        trial = self.create_trial_link(0, "EXCHANGE", None, 90)
        offer = self.create_offer(1, {**lines, "EXCHANGE": 40}, 2, 90)
        return multiple(trial, offer)

    @rule(
        target=links,
        partner=st.integers(0, 1),
        sku=st.sampled_from(TRIAL_SKUS),
        max_uses=st.none() | st.integers(1, 2),
        days=st.sampled_from([1, 10, 90]),
    )
    def create_trial_link(
        self, partner: int, sku: str, max_uses: int | None, days: int
    ) -> LinkModel:
        url = self.m.portal.create_trial_invitation(
            self.partners[partner], sku, expires_in=timedelta(days=days), max_uses=max_uses
        )
        link = LinkModel(
            url,
            link_id_of(url),
            partner,
            "trial",
            self.now + timedelta(days=days),
            max_uses,
            sku=sku,
        )
        self.all_links.append(link)
        return link

    @rule(
        target=links,
        partner=st.integers(0, 1),
        lines=offer_lines(),
        max_uses=st.none() | st.integers(1, 2),
        days=st.sampled_from([1, 10, 90]),
    )
    def create_offer(
        self, partner: int, lines: dict[str, int], max_uses: int | None, days: int
    ) -> LinkModel:
        url, offer = self.m.portal.create_purchase_offer(
            self.partners[partner],
            [OfferLine(sku, n) for sku, n in lines.items()],
            expires_in=timedelta(days=days),
            max_uses=max_uses,
        )
        assert offer.expires_at == self.now + timedelta(days=days)
        link = LinkModel(
            url,
            offer.link_id,
            partner,
            "offer",
            offer.expires_at,
            max_uses,
            lines=dict(lines),
            offer_id=offer.id,
        )
        self.all_links.append(link)
        return link

    @rule(link=links)
    def withdraw(self, link: LinkModel) -> None:
        if link.kind != "offer":
            return
        actor = self.partners[link.partner]
        assert link.offer_id is not None
        if link.offer_open:
            self.m.portal.withdraw_offer(actor, link.offer_id)
            link.offer_open = False
        else:
            with pytest.raises(ValidationError):
                self.m.portal.withdraw_offer(actor, link.offer_id)

    @rule(target=links, link=consumes(links), lines=offer_lines())
    def supersede(self, link: LinkModel, lines: dict[str, int]) -> Any:
        if link.kind != "offer" or not link.offer_open:
            # consumed from the bundle but still redeemable by the invariant's sweep
            return link
        assert link.offer_id is not None
        url, offer = self.m.portal.supersede_offer(
            self.partners[link.partner],
            link.offer_id,
            [OfferLine(sku, n) for sku, n in lines.items()],
        )
        link.offer_open = False
        successor = LinkModel(
            url,
            offer.link_id,
            link.partner,
            "offer",
            offer.expires_at,
            None,
            lines=dict(lines),
            offer_id=offer.id,
        )
        self.all_links.append(successor)
        return successor

    @rule(link=links)
    def revoke(self, link: LinkModel) -> None:
        self.m.portal.revoke_link(self.partners[link.partner], link.link_id)
        link.revoked = True
        link.offer_open = False  # an offer goes with its link: withdrawn

    @rule(hours=st.integers(1, 24 * 20))
    def time_passes(self, hours: int) -> None:
        self.m.clock.advance(hours=hours)

    # -- customers -----------------------------------------------------------------------------

    @rule(link=links, customer=st.integers(0, 1), licenses=adjustments())
    def redeem(self, link: LinkModel, customer: int, licenses: dict[str, object] | None) -> None:
        self._redeem(link, customer, licenses)

    @precondition(lambda self: bool(self.all_links))
    @rule(data=st.data(), customer=st.integers(0, 1))
    def redeem_any_link_ever_issued(self, data: st.DataObject, customer: int) -> None:
        """Superseded links left the bundle; customers still try them."""
        link = data.draw(st.sampled_from(self.all_links))
        self._redeem(link, customer, None)

    @precondition(
        lambda self: any(s.status is SubscriptionStatus.TRIAL for s in self.subs.values())
    )
    @rule(data=st.data(), partner=st.integers(0, 1))
    def a_customer_buys_what_it_tried(self, data: st.DataObject, partner: int) -> None:
        """An offer for a service a customer has on trial, redeemed at once by that customer."""
        tried = sorted(k for k, s in self.subs.items() if s.status is SubscriptionStatus.TRIAL)
        customer, sku = data.draw(st.sampled_from(tried))
        lines = {**data.draw(offer_lines()), sku: data.draw(valid_count(sku))}
        link = self.create_offer(partner, lines, None, 10)
        self._redeem(link, customer, data.draw(adjustments()))

    def _redeem(self, link: LinkModel, customer: int, licenses: dict[str, object] | None) -> None:
        expected = self._predict(link, customer, licenses)
        before = state(self.m.store)
        try:
            result: Redemption | PartnerKitError = self.m.portal.redeem(
                link.url, self.customers[customer], licenses=licenses
            )
        except PartnerKitError as exc:
            result = exc
        event(f"redeem {link.kind}: {type(result).__name__}")
        if isinstance(expected, type):
            assert isinstance(result, expected), (expected, result)
            if expected is ValidationError:
                assert isinstance(result, ValidationError)
                assert result.field in ("sku", "lines", "licenses") or result.field.startswith(
                    "licenses["
                ), result.field
            # A refusal writes nothing but its audit event.
            assert without_audit(state(self.m.store)) == without_audit(before)
            assert set(audit_outcomes_since(self.m.store, before)) <= {"failed"}
            return
        assert isinstance(result, Redemption), result
        self._apply(link, customer, result, expected)

    def _predict(
        self, link: LinkModel, customer: int, licenses: dict[str, object] | None
    ) -> type[PartnerKitError] | dict[str, int] | tuple[str, ...]:
        """The error the redemption must raise, the replayed ids, or the counts it buys."""
        if self.now > link.expires_at + MAX_CLOCK_SKEW:
            return LinkExpired
        if link.revoked or not link.offer_open:
            return LinkRevoked
        # Bad input is refused before anything else, replays included.
        if link.kind == "trial" and licenses is not None:
            return ValidationError
        counts = dict(link.lines) if link.kind != "trial" else {}
        for sku, count in (licenses or {}).items():
            service = BY_SKU[sku]
            if sku not in counts or type(count) is not int:
                return ValidationError
            if not service.min_licenses <= count <= service.max_licenses:
                return ValidationError
            counts[sku] = count
        if customer in link.redeemed:
            return link.redeemed[customer]
        if link.max_uses is not None and len(link.redeemed) >= link.max_uses:
            return LinkExhausted
        if link.kind == "trial":
            assert link.sku is not None
            if (customer, link.sku) in self.subs:
                return ValidationError
            return {link.sku: BY_SKU[link.sku].trial.licenses}  # type: ignore[union-attr]
        for sku in counts:
            sub = self.subs.get((customer, sku))
            if sub is not None and sub.status is not SubscriptionStatus.TRIAL:
                return ValidationError
        return counts

    def _apply(
        self,
        link: LinkModel,
        customer: int,
        result: Redemption,
        expected: dict[str, int] | tuple[str, ...],
    ) -> None:
        ids = tuple(s.id for s in result.subscriptions)
        if isinstance(expected, tuple):  # a replay returns the first result
            assert ids == expected
            return
        assert {s.sku: s.licenses for s in result.subscriptions} == expected
        for sub in result.subscriptions:
            key = (customer, sub.sku)
            known = self.subs.get(key)
            if link.kind == "trial":
                assert known is None
                assert sub.status is SubscriptionStatus.TRIAL
                trial = BY_SKU[sub.sku].trial
                assert trial is not None
                ends = self.now + timedelta(days=trial.days)
                self.subs[key] = SubModel(sub.id, sub.status, sub.licenses, link.partner, ends)
            else:
                assert sub.status is SubscriptionStatus.ACTIVE
                if known is not None:
                    assert sub.id == known.id  # a trial converts: same subscription
                    event("a trial converted")
                ends = known.trial_ends_at if known is not None else None
                self.subs[key] = SubModel(sub.id, sub.status, sub.licenses, link.partner, ends)
        link.redeemed[customer] = ids

    # -- what must always hold ----------------------------------------------------------------

    @invariant()
    def the_store_holds_what_the_model_predicts(self) -> None:
        with self.m.store.unit_of_work(write=False) as uow:
            for c, admin in enumerate(self.customers):
                stored = uow.subscriptions.find(customer_id=admin.company_id)
                assert len({s.sku for s in stored}) == len(stored)
                got = {s.sku: s for s in stored}
                want = {sku: sub for (cc, sku), sub in self.subs.items() if cc == c}
                assert set(got) == set(want)
                for sku, sub in got.items():
                    model = want[sku]
                    assert (sub.id, sub.status, sub.licenses) == (
                        model.id,
                        model.status,
                        model.licenses,
                    )
                    assert sub.partner_id == self.partners[model.partner].company_id
                    assert sub.trial_ends_at == model.trial_ends_at
                    expired = model.trial_ends_at is not None and self.now >= model.trial_ends_at
                    shown = sub.status_at(self.now)
                    if model.status is SubscriptionStatus.TRIAL and expired:
                        assert shown is SubscriptionStatus.EXPIRED
                    else:
                        assert shown is model.status
                    self.ids_seen.setdefault((c, sku), set()).add(sub.id)
                # one redemption record per link the customer redeemed, no more
                records = uow.redemptions.find(customer_id=admin.company_id)
                redeemed = {lk.link_id for lk in self.all_links if c in lk.redeemed}
                assert sorted(r.link_id for r in records) == sorted(redeemed)
            for link in self.all_links:
                record = uow.links.get(link.link_id)
                assert record is not None
                assert record.uses == len(link.redeemed)
                if link.max_uses is not None:
                    assert record.uses <= link.max_uses

    @invariant()
    def a_customer_never_gets_a_second_subscription_or_trial_of_a_service(self) -> None:
        # Every id ever seen for a (customer, service) is the same one: no second trial, no
        # second purchase, and conversion keeps the trial's id.
        assert all(len(ids) == 1 for ids in self.ids_seen.values())


TestRedemptionSequences = Redemptions.TestCase
TestRedemptionSequences.__doc__ = (
    "Random sequences of issuing, killing and redeeming links keep every money-path promise."
)


def test_invalid_link_is_the_base_of_every_link_refusal() -> None:
    """The model's link errors are all ``InvalidLink``: a portal can catch them as one."""
    assert all(issubclass(e, InvalidLink) for e in (LinkExpired, LinkRevoked, LinkExhausted))
