"""The money-path domain on its own: services, catalogues, offers and subscriptions.

No store and no portal here: these are the rules the objects keep by themselves.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from partnerkit import (
    Catalog,
    NotFound,
    OfferLine,
    OfferStatus,
    PartnerKitError,
    PurchaseOffer,
    Redemption,
    Service,
    Subscription,
    SubscriptionStatus,
    TrialTerms,
    ValidationError,
)
from partnerkit.offers import MAX_LICENSES, MAX_OFFER_LINES, MIN_LICENSES, check_licenses

T0 = datetime(2030, 3, 1, 8, 0, tzinfo=UTC)
EXCHANGE = Service(
    sku="EXCHANGE",
    name="Exchange Online",
    min_licenses=1,
    max_licenses=1000,
    trial=TrialTerms(days=30, licenses=25),
)
INTUNE = Service(sku="INTUNE", name="Windows Intune", min_licenses=5, max_licenses=500)
ONE_LINE = (OfferLine("EXCHANGE", 10),)


def offer(lines: Any = ONE_LINE, **changes: Any) -> PurchaseOffer:
    """An open purchase offer of the partner ``cmp_p``."""
    fields: dict[str, Any] = {
        "id": "off_1",
        "quote_id": "Q-1",
        "partner_id": "cmp_p",
        "advisor_id": "PA-1",
        "lines": lines,
        "includes_delegated_admin": False,
        "delegation_offer_id": None,
        "created_by": "usr_p",
        "created_at": T0,
        "expires_at": T0 + timedelta(days=90),
        "link_id": "lnk_1",
    }
    fields.update(changes)
    return PurchaseOffer(**fields)


def trial_of(service: Service = EXCHANGE) -> Subscription:
    """A trial of *service* started at T0 for customer ``cmp_c``."""
    return Subscription.trial(
        ident="sub_1",
        customer_id="cmp_c",
        service=service,
        partner_id="cmp_p",
        advisor_id="PA-1",
        link_id="lnk_t",
        now=T0,
    )


# -- licence counts -------------------------------------------------------------------------


def test_the_licence_bounds_of_the_product_are_one_to_a_million() -> None:
    """No service may go below one licence or above 1,000,000."""
    assert (MIN_LICENSES, MAX_LICENSES) == (1, 1_000_000)


@pytest.mark.parametrize("count", [1, 2, 999_999, 1_000_000])
def test_a_whole_number_within_the_product_bounds_is_kept_as_it_is(count: int) -> None:
    """``check_licenses`` returns a valid count unchanged, the bounds included."""
    assert check_licenses(count) is count


@pytest.mark.parametrize("count", [0, -1, 1_000_001, True, 1.0, "1", None])
def test_check_licenses_names_the_field_it_was_given(count: object) -> None:
    """A refusal names the caller's field, so the portal can point at the right input."""
    with pytest.raises(ValidationError) as info:
        check_licenses(count, field="licenses[EXCHANGE]")
    assert info.value.field == "licenses[EXCHANGE]"


def test_a_service_checks_counts_against_its_own_bounds_inclusively() -> None:
    """A 5-to-500 service takes 5 and 500 and refuses 4 and 501."""
    assert INTUNE.check(5) == 5
    assert INTUNE.check(500) == 500
    for count in (4, 501):
        with pytest.raises(ValidationError, match="between 5 and 500"):
            INTUNE.check(count)


# -- services and trials --------------------------------------------------------------------


def test_a_service_defaults_to_the_product_bounds_and_no_trial() -> None:
    """Only sku and name are required."""
    service = Service(sku="PROJECT", name="Project Online")
    assert (service.min_licenses, service.max_licenses, service.trial) == (1, 1_000_000, None)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"min_licenses": 0}, "min_licenses"),
        ({"min_licenses": True}, "min_licenses"),
        ({"max_licenses": 1_000_001}, "max_licenses"),
        ({"max_licenses": 10.0}, "max_licenses"),
        ({"min_licenses": 10, "max_licenses": 9}, "max_licenses"),
        ({"sku": "exchange"}, "sku"),
        ({"sku": ""}, "sku"),
        ({"sku": "X" * 65}, "sku"),
        ({"name": " "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"trial": (30, 25)}, "trial"),
        ({"max_licenses": 1000, "trial": TrialTerms(days=30, licenses=1001)}, "trial.licenses"),
        ({"min_licenses": 50, "trial": TrialTerms(days=30, licenses=25)}, "trial.licenses"),
    ],
)
def test_a_service_with_impossible_terms_is_refused_naming_the_field(
    changes: dict[str, Any], field: str
) -> None:
    """Bounds outside 1..1,000,000, a minimum above the maximum, a bad sku or name, and a
    trial whose licences fall outside the service's bounds are all refused."""
    fields: dict[str, Any] = {"sku": "EXCHANGE", "name": "Exchange Online", **changes}
    with pytest.raises(ValidationError) as info:
        Service(**fields)
    assert info.value.field == field


@pytest.mark.parametrize("days", [0, -1, 366, True, 30.0, "30", None])
def test_a_trial_lasts_a_whole_number_of_days_up_to_a_year(days: object) -> None:
    """Trial days outside 1..365, or not an int, are refused."""
    with pytest.raises(ValidationError) as info:
        TrialTerms(days=days, licenses=25)  # type: ignore[arg-type]
    assert info.value.field == "days"


def test_a_trial_of_one_day_and_of_a_year_are_both_allowed() -> None:
    """The trial-length bounds are inclusive."""
    assert TrialTerms(days=1, licenses=1).days == 1
    assert TrialTerms(days=365, licenses=1).days == 365


# -- the catalogue --------------------------------------------------------------------------


def test_a_catalogue_finds_its_services_by_sku() -> None:
    """``get``, ``in``, iteration and ``len`` see the services it was built from."""
    catalog = Catalog([EXCHANGE, INTUNE])
    assert catalog.get("INTUNE") is INTUNE
    assert "EXCHANGE" in catalog
    assert "PROJECT" not in catalog
    assert list(catalog) == [EXCHANGE, INTUNE]
    assert len(catalog) == 2


@pytest.mark.parametrize("sku", ["PROJECT", "exchange", "", None, 42])
def test_an_unknown_sku_is_not_found(sku: Any) -> None:
    """A sku the catalogue does not hold, of any type, is ``NotFound`` (a ``LookupError``)."""
    with pytest.raises(NotFound) as info:
        Catalog([EXCHANGE]).get(sku)
    assert info.value.kind == "service"
    assert isinstance(info.value, LookupError)


def test_a_catalogue_refuses_a_sku_twice_and_things_that_are_not_services() -> None:
    """Two services with one sku, or a non-Service, make no catalogue."""
    with pytest.raises(ValidationError, match="twice"):
        Catalog([EXCHANGE, attrs.evolve(EXCHANGE, name="Other")])
    with pytest.raises(ValidationError) as info:
        Catalog([{"sku": "EXCHANGE", "name": "Exchange"}])  # type: ignore[list-item]
    assert info.value.field == "services"


def test_a_catalogue_survives_a_round_trip_through_a_dict_and_json() -> None:
    """``to_dict`` is what ``from_dict`` reads, and JSON carries it unchanged."""
    catalog = Catalog([EXCHANGE, INTUNE])
    again = Catalog.from_dict(catalog.to_dict())
    assert list(again) == [EXCHANGE, INTUNE]
    from_text = Catalog.from_json(json.dumps(catalog.to_dict()))
    assert list(from_text) == [EXCHANGE, INTUNE]


def test_a_catalogue_from_config_keeps_the_trial_terms() -> None:
    """A portal that keeps its catalogue in JSON config gets the same services."""
    text = """{"services": [
        {"sku": "EXCHANGE", "name": "Exchange Online", "min_licenses": 1,
         "max_licenses": 1000, "trial": {"days": 30, "licenses": 25}},
        {"sku": "INTUNE", "name": "Windows Intune", "min_licenses": 5, "max_licenses": 500}
    ]}"""
    catalog = Catalog.from_json(text)
    assert catalog.get("EXCHANGE") == EXCHANGE
    assert catalog.get("INTUNE") == INTUNE


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("{", "catalog"),
        ("[]", "catalog"),
        ('"services"', "catalog"),
        ("{}", "catalog"),
        ('{"services": null}', "catalog"),
        ('{"services": [{"sku": "X"}]}', "catalog"),
        ('{"services": [{"sku": "X", "name": "n", "colour": "red"}]}', "catalog"),
        ('{"services": [{"sku": "X", "name": "n", "trial": [30, 5]}]}', "catalog"),
        ('{"services": [{"sku": "X", "name": "n", "min_licenses": 5.0}]}', "min_licenses"),
        ('{"services": [{"sku": "X", "name": "n", "max_licenses": NaN}]}', "max_licenses"),
        ('{"services": [{"sku": "X", "name": "n", "min_licenses": "5"}]}', "min_licenses"),
        (
            '{"services": [{"sku": "X", "name": "n", "trial": {"days": 30, "licenses": 0}}]}',
            "licenses",
        ),
        ('{"services": [{"sku": "X", "name": "n"}, {"sku": "X", "name": "m"}]}', "sku"),
    ],
)
def test_a_bad_catalogue_description_is_a_validation_error_naming_what_is_wrong(
    text: str, field: str
) -> None:
    """Malformed JSON, a wrong shape, unknown keys and bad counts are refused clearly."""
    with pytest.raises(ValidationError) as info:
        Catalog.from_json(text)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"services": [{"sku": "X"}]}', "service 1 (X) has no 'name'"),
        ('{"services": [{"name": "n"}]}', "service 1 has no 'sku'"),
        (
            '{"services": [{"sku": "A", "name": "a"}, {"sku": "X", "name": "n", "price": 3}]}',
            "service 2 (X) has an unknown field 'price'",
        ),
        ('{"services": [{"sku": "X", "name": "n", "trial": [30, 5]}]}', "(X)'s trial must be"),
        (
            '{"services": [{"sku": "X", "name": "n", "trial": {"days": 30}}]}',
            "service 1 (X)'s trial has no 'licenses'",
        ),
        (
            '{"services": [{"sku": "X", "name": "n", "trial": {"days": "30", "licenses": 5}}]}',
            "(service 1 (X))",
        ),
        ('{"services": [{"sku": "X", "name": "n", "min_licenses": "5"}]}', "(service 1 (X))"),
    ],
)
def test_a_bad_catalogue_description_says_which_service(text: str, says: str) -> None:
    """A catalogue in a config file has many services: the error names the one to fix."""
    with pytest.raises(ValidationError) as info:
        Catalog.from_json(text)
    assert says in str(info.value)


@pytest.mark.parametrize(
    "data",
    [{"services": ["EXCHANGE"]}, {"services": [["sku", "X"]]}, {"services": "EXCHANGE"}],
)
def test_a_catalogue_whose_services_are_not_mappings_is_a_validation_error(data: Any) -> None:
    """A service described by a string or a list is refused as a bad catalogue."""
    with pytest.raises(PartnerKitError) as info:
        Catalog.from_dict(data)
    assert isinstance(info.value, ValidationError)
    assert info.value.field == "catalog"


# -- offer lines and purchase offers ------------------------------------------------------------


def test_an_offer_line_keeps_its_sku_and_count() -> None:
    """A valid line is a plain value."""
    line = OfferLine(sku="INTUNE", licenses=25)
    assert (line.sku, line.licenses) == ("INTUNE", 25)
    assert line == OfferLine("INTUNE", 25)


def test_an_offer_line_cannot_be_changed_after_it_was_made() -> None:
    """Offers are immutable once issued, their lines too."""
    line = OfferLine("INTUNE", 25)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        line.licenses = 30  # type: ignore[misc]
    with pytest.raises(ValidationError):
        attrs.evolve(line, licenses=0)


@pytest.mark.parametrize(
    "lines",
    [
        (),
        [OfferLine("EXCHANGE", 10)],
        (OfferLine("EXCHANGE", 10), OfferLine("EXCHANGE", 20)),
        ("EXCHANGE",),
        tuple(OfferLine(f"S{i}", 1) for i in range(MAX_OFFER_LINES + 1)),
    ],
    ids=["empty", "list", "repeated-sku", "not-lines", "too-many"],
)
def test_an_offer_needs_one_to_fifty_distinct_lines(lines: Any) -> None:
    """No lines, a list instead of a tuple, a sku twice, non-lines and 51 lines are refused."""
    with pytest.raises(ValidationError) as info:
        offer(lines)
    assert info.value.field == "lines"


def test_an_offer_of_fifty_lines_is_allowed() -> None:
    """The line limit is inclusive."""
    lines = tuple(OfferLine(f"S{i}", 1) for i in range(MAX_OFFER_LINES))
    assert len(offer(lines).lines) == MAX_OFFER_LINES


def test_an_offer_finds_its_line_by_sku() -> None:
    """``line(sku)`` returns the line; an absent sku is ``NotFound``."""
    o = offer((OfferLine("EXCHANGE", 10), OfferLine("INTUNE", 20)))
    assert o.line("INTUNE") == OfferLine("INTUNE", 20)
    with pytest.raises(NotFound):
        o.line("PROJECT")


def test_withdrawing_an_open_offer_returns_a_newer_withdrawn_copy() -> None:
    """The offer itself is not changed; the copy is one version newer."""
    o = offer()
    withdrawn = o.withdraw()
    assert (withdrawn.status, withdrawn.version) == (OfferStatus.WITHDRAWN, 2)
    assert (o.status, o.version) == (OfferStatus.OPEN, 1)
    assert withdrawn.lines == o.lines


def test_superseding_an_open_offer_names_its_successor() -> None:
    """A superseded offer says which offer replaced it."""
    superseded = offer().supersede("off_2")
    assert superseded.status is OfferStatus.SUPERSEDED
    assert (superseded.superseded_by, superseded.version) == ("off_2", 2)


@pytest.mark.parametrize(
    "closed", [offer().withdraw(), offer().supersede("off_2")], ids=["withdrawn", "superseded"]
)
def test_a_withdrawn_or_superseded_offer_cannot_move_again(closed: PurchaseOffer) -> None:
    """Both closed states are final: neither withdraw nor supersede leaves them."""
    with pytest.raises(ValidationError) as info:
        closed.withdraw()
    assert info.value.field == "status"
    with pytest.raises(ValidationError):
        closed.supersede("off_3")


# -- subscriptions ---------------------------------------------------------------------------


def test_a_trial_gets_the_services_trial_licences_and_ends_after_its_days() -> None:
    """Trial licences and end come from the service's trial terms and the clock."""
    trial = trial_of()
    assert trial.status is SubscriptionStatus.TRIAL
    assert trial.licenses == 25
    assert trial.trial_ends_at == T0 + timedelta(days=30)
    assert (trial.partner_id, trial.advisor_id, trial.source_link_id) == (
        "cmp_p",
        "PA-1",
        "lnk_t",
    )


def test_a_service_without_trial_terms_cannot_start_a_trial() -> None:
    """``Subscription.trial`` refuses a service that offers no trial."""
    with pytest.raises(ValidationError) as info:
        trial_of(INTUNE)
    assert info.value.field == "sku"


def test_a_trial_reads_expired_from_the_moment_it_ends_with_no_job() -> None:
    """Just before its end a trial is a trial; at and after its end it reads ``EXPIRED``."""
    trial = trial_of()
    end = T0 + timedelta(days=30)
    assert trial.status_at(end - timedelta(microseconds=1)) is SubscriptionStatus.TRIAL
    assert trial.status_at(end) is SubscriptionStatus.EXPIRED
    assert trial.status_at(end + timedelta(days=400)) is SubscriptionStatus.EXPIRED
    assert trial.as_of(end).status is SubscriptionStatus.EXPIRED
    assert trial.as_of(end).version == trial.version
    assert trial.as_of(T0) is trial


def test_an_active_subscription_never_expires_by_the_clock() -> None:
    """Only trials end by time; a converted subscription stays active."""
    active = trial_of().convert(licenses=40, partner_id="cmp_q", advisor_id="PA-2", link_id="l")
    assert active.status_at(T0 + timedelta(days=3650)) is SubscriptionStatus.ACTIVE


def test_converting_a_trial_keeps_its_id_and_names_the_new_advisor() -> None:
    """Conversion is the same subscription, paid now, with the offer's count and partner."""
    trial = trial_of()
    paid = trial.convert(licenses=40, partner_id="cmp_q", advisor_id="PA-2", link_id="lnk_o")
    assert paid.id == trial.id
    assert (paid.status, paid.licenses, paid.version) == (SubscriptionStatus.ACTIVE, 40, 2)
    assert (paid.partner_id, paid.advisor_id, paid.source_link_id) == ("cmp_q", "PA-2", "lnk_o")
    assert paid.trial_ends_at == trial.trial_ends_at  # kept for the record


def test_an_expired_trial_can_still_be_converted() -> None:
    """A customer who buys after the trial ended keeps the same subscription."""
    trial = trial_of()
    assert trial.status_at(T0 + timedelta(days=31)) is SubscriptionStatus.EXPIRED
    paid = trial.convert(licenses=3, partner_id="cmp_p", advisor_id="PA-1", link_id="l")
    assert paid.status is SubscriptionStatus.ACTIVE


def test_only_a_trial_converts() -> None:
    """Converting an active subscription is refused."""
    active = trial_of().convert(licenses=40, partner_id="cmp_p", advisor_id="PA-1", link_id="l")
    with pytest.raises(ValidationError):
        active.convert(licenses=41, partner_id="cmp_p", advisor_id="PA-1", link_id="l")


@pytest.mark.parametrize("count", [0, -3, True, 40.0, "40", 1_000_001])
def test_conversion_refuses_a_bad_count(count: Any) -> None:
    """The converted subscription validates its count like every other."""
    with pytest.raises(ValidationError) as info:
        trial_of().convert(licenses=count, partner_id="cmp_p", advisor_id="PA-1", link_id="l")
    assert info.value.field == "licenses"


def test_changing_the_count_of_an_active_subscription_returns_a_newer_copy() -> None:
    """``with_licenses`` keeps everything but the count and the version."""
    active = trial_of().convert(licenses=40, partner_id="cmp_p", advisor_id="PA-1", link_id="l")
    more = active.with_licenses(41)
    assert (more.licenses, more.version, more.id) == (41, active.version + 1, active.id)


def test_a_trial_count_cannot_be_changed() -> None:
    """A trial's licences are the service's trial terms: ``with_licenses`` refuses it."""
    with pytest.raises(ValidationError) as info:
        trial_of().with_licenses(30)
    assert info.value.field == "status"


@pytest.mark.parametrize("count", [0, -1, True, False, 2.0, float("nan"), "2", None, 10**30])
def test_a_subscription_cannot_be_made_with_a_bad_count(count: Any) -> None:
    """The constructor is a boundary: a bad count makes no subscription."""
    with pytest.raises(ValidationError) as info:
        attrs.evolve(trial_of(), licenses=count)
    assert info.value.field == "licenses"


def test_an_empty_redemption_has_no_subscriptions_and_no_delegation() -> None:
    """A redemption is a plain value with empty defaults."""
    assert Redemption() == Redemption(subscriptions=(), delegation=None)
