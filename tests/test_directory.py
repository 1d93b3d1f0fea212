"""Companies, contact information and users validate themselves on construction."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest
from hypothesis import given

from partnerkit import (
    AdminRole,
    Company,
    CompanyKind,
    ContactInfo,
    PartnerAccess,
    User,
    ValidationError,
)
from partnerkit.directory import email_key, normalize_domain
from partnerkit.testing import strategies as pks

BAD_EMAILS = [
    "",
    "   ",
    "plain",
    "@example.com",
    "ada@",
    "ada@example",
    "ada@@example.com",
    "ada lovelace@example.com",
    "ada@exa mple.com",
    "ada@example..com",
    ".ada@example.com",
    "ada.@example.com",
    "ada..lovelace@example.com",
    "ada@-example.com",
    "ada@example-.com",
    "ada@example.c",
    "ada@example.123",
    "ada\n@example.com",
    "ada@example.com\n",
    "ada@example.com ",
    "ädä@example.com",
    "a" * 65 + "@example.com",
    "ada@" + "a" * 250 + ".com",
]
BAD_PHONES = [
    "",
    "123",
    "12 34 5",
    "phone",
    "+",
    "++1 425 555 0100",
    "+1 425 555 0100 ",
    "425-555-0100x",
    ")425 555 0100",
    "1234567890123456",
    "+1\t425 555 0100",
    "1" * 31,
]
BAD_NAMES = [
    ("", "must not be empty"),
    ("   ", "must not be empty"),
    ("x" * 101, "at most 100"),
    (" Ada", "white space"),
    ("Ada ", "white space"),
    ("Ada\nLovelace", "control"),
    ("Ada\x00", "control"),
    ("Ada\x7f", "control"),
]


def _user(**changes: object) -> User:
    fields: dict[str, object] = {
        "id": "usr_1",
        "company_id": "cmp_1",
        "email": "ada@example.com",
        "display_name": "Ada",
    }
    fields.update(changes)
    return User(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("email", BAD_EMAILS)
def test_a_malformed_email_is_refused_naming_the_field(email: str) -> None:
    """Every malformed e-mail is a ``ValidationError`` naming ``email``, for users and for
    contact information alike."""
    with pytest.raises(ValidationError) as info:
        _user(email=email)
    assert info.value.field == "email"
    with pytest.raises(ValidationError) as info:
        ContactInfo(email=email)
    assert info.value.field == "email"


@pytest.mark.parametrize("phone", BAD_PHONES)
def test_a_malformed_phone_is_refused_naming_the_field(phone: str) -> None:
    """Every malformed phone number is a ``ValidationError`` naming ``phone``."""
    with pytest.raises(ValidationError) as info:
        ContactInfo(email="office@example.com", phone=phone)
    assert info.value.field == "phone"


@pytest.mark.parametrize(("name", "why"), BAD_NAMES)
def test_a_bad_display_name_is_refused_with_its_reason(name: str, why: str) -> None:
    """Empty, blank, overlong, untrimmed and control-character names are refused."""
    with pytest.raises(ValidationError) as info:
        _user(display_name=name)
    assert info.value.field == "display_name"
    assert why in info.value.message


@pytest.mark.parametrize(("name", "why"), BAD_NAMES)
def test_a_bad_company_name_is_refused_with_its_reason(name: str, why: str) -> None:
    """Company names follow the same rules as display names."""
    with pytest.raises(ValidationError) as info:
        Company(id="cmp_1", kind=CompanyKind.CUSTOMER, name=name, domain="example.com")
    assert info.value.field == "name"
    assert why in info.value.message


def test_names_of_up_to_100_characters_of_any_script_are_accepted() -> None:
    """The limit is 100 characters, and names are not restricted to ASCII."""
    assert _user(display_name="x" * 100).display_name == "x" * 100
    assert _user(display_name="Zoë 李 Ñandú").display_name == "Zoë 李 Ñandú"


@pytest.mark.parametrize("value", [None, 42, b"ada@example.com"])
def test_a_non_string_is_refused_where_text_is_expected(value: object) -> None:
    """Wrong types are validation errors, not ``TypeError`` or ``AttributeError``."""
    with pytest.raises(ValidationError) as info:
        _user(email=value)
    assert info.value.field == "email"
    with pytest.raises(ValidationError):
        _user(display_name=value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("website", "ftp://example.com"),
        ("website", "javascript:alert(1)"),
        ("website", "https://"),
        ("website", "https://exa mple.com"),
        ("address", ""),
        ("address", "   "),
        ("address", "x" * 501),
        ("address", "Main Street\x00"),
    ],
)
def test_contact_info_refuses_bad_websites_and_addresses(field: str, value: str) -> None:
    """Web sites must be http(s) URLs; addresses 1 to 500 characters of text."""
    with pytest.raises(ValidationError) as info:
        ContactInfo(email="office@example.com", **{field: value})  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"version": 0}, "version"),
        ({"version": True}, "version"),
        ({"version": 1.0}, "version"),
        ({"admin_role": "global_admin"}, "admin_role"),
        ({"partner_access": "full"}, "partner_access"),
        ({"must_change_password": 1}, "must_change_password"),
        ({"id": ""}, "id"),
        ({"company_id": "x" * 65}, "company_id"),
    ],
)
def test_a_user_refuses_values_of_the_wrong_kind(changes: dict[str, object], field: str) -> None:
    """Versions are positive ints, roles are enum members, flags are bools, ids are short."""
    with pytest.raises(ValidationError) as info:
        _user(**changes)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (
            {"kind": CompanyKind.PARTNER, "domain": "example.com", "advisor_id": "PA-1"},
            "advisor_id",
        ),
        ({"kind": CompanyKind.PARTNER}, "advisor_id"),
        ({"kind": CompanyKind.CUSTOMER}, "domain"),
        ({"kind": CompanyKind.CUSTOMER, "domain": "Example.COM"}, "domain"),
        ({"kind": CompanyKind.CUSTOMER, "domain": "example"}, "domain"),
        ({"kind": CompanyKind.CUSTOMER, "domain": "x.com", "advisor_id": "PA-1"}, "domain"),
        ({"kind": "customer", "domain": "example.com"}, "kind"),
    ],
)
def test_partners_carry_an_advisor_id_and_customers_a_domain(
    fields: dict[str, object], field: str
) -> None:
    """A partner has an advisor id and no domain; a customer a lower-case domain and no
    advisor id."""
    with pytest.raises(ValidationError) as info:
        Company(id="cmp_1", name="Contoso", **fields)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize("cls", ["user", "company"])
def test_a_naive_creation_time_is_refused(cls: str) -> None:
    """Times are aware UTC only: a naive ``created_at`` is a ``ValidationError``."""
    naive = datetime(2024, 1, 1, 12, 0)
    build = {
        "user": lambda: _user(created_at=naive),
        "company": lambda: Company(
            id="cmp_1",
            kind=CompanyKind.CUSTOMER,
            name="Fabrikam",
            domain="fabrikam.example",
            created_at=naive,
        ),
    }[cls]
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == "created_at"


def test_values_are_frozen_and_changed_copies_are_validated_again() -> None:
    """Users cannot be changed in place; ``attrs.evolve`` re-validates the copy."""
    user = _user()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        user.email = "eve@example.com"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        attrs.evolve(user, email="not an e-mail")
    assert attrs.evolve(user, admin_role=AdminRole.BILLING_ADMIN).admin_role is not None


def test_email_uniqueness_ignores_case_and_domains_are_normalised() -> None:
    """E-mails compare case-insensitively; domains are stored lower case without a final
    dot."""
    assert email_key("Ada.Lovelace@Example.COM") == email_key("ada.lovelace@example.com")
    assert email_key("ada@example.com") != email_key("ad@example.com")
    assert normalize_domain("  Fabrikam.Example. ") == "fabrikam.example"


def test_a_user_with_partner_access_is_privileged() -> None:
    """Holding partner access, FULL or LIMITED, makes a user privileged."""
    assert not _user().is_privileged
    assert _user(partner_access=PartnerAccess.LIMITED).is_privileged
    assert _user(partner_access=PartnerAccess.FULL).is_privileged


@given(pks.emails())
def test_every_generated_email_is_accepted(email: str) -> None:
    """The strategy's e-mails pass validation (and are not changed by it)."""
    assert ContactInfo(email=email).email == email


@given(pks.phones())
def test_every_generated_phone_is_accepted(phone: str) -> None:
    """The strategy's phone numbers pass validation."""
    assert ContactInfo(email="office@example.com", phone=phone).phone == phone


@given(pks.domains())
def test_every_generated_domain_is_a_valid_customer_domain(domain: str) -> None:
    """The strategy's domains are valid and already normalised."""
    assert normalize_domain(domain) == domain
    company = Company(id="cmp_1", kind=CompanyKind.CUSTOMER, name="Fabrikam", domain=domain)
    assert company.domain == domain


@given(pks.companies(), pks.users(), pks.contact_infos())
def test_generated_objects_survive_a_validating_copy(
    company: Company, user: User, contact: ContactInfo
) -> None:
    """Every generated value is well-formed: copying it through the validators changes
    nothing."""
    assert attrs.evolve(company) == company
    assert attrs.evolve(user) == user
    assert attrs.evolve(contact) == contact
    if company.kind is CompanyKind.CUSTOMER:
        assert company.domain is not None
        assert company.advisor_id is None
    else:
        assert company.advisor_id is not None


@given(pks.users(company=pks.companies(kind=CompanyKind.CUSTOMER)))
def test_generated_customer_users_never_hold_partner_access(user: User) -> None:
    """Users generated for a customer company have no partner access."""
    assert user.partner_access is None


@given(pks.utc_datetimes())
def test_generated_times_are_aware_utc(when: datetime) -> None:
    """The time strategy yields aware UTC datetimes only."""
    assert when.tzinfo is UTC
