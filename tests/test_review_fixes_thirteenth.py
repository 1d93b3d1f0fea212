"""What a sweep of every public entry point with hostile values found (thirteenth session).

The values: objects whose ``__class__`` claims a class they are not (``isinstance``
believes the claim, nothing else does), ``timedelta`` and ``str`` subclasses whose own
methods lie or raise, and values no file, text or number can be. Before the fixes a fake
``AdminRole`` granted a global admin through a delegation, a lying ``timedelta`` gave a
delegation a million days, fakes were stored, and some fifty calls raised an
``AttributeError`` or ``TypeError`` instead of a typed error.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import Mock

import attrs
import pytest

from delegation_kit import CustomerCast, PartnerCast, consent
from partnerkit import (
    AdminRole,
    Catalog,
    Company,
    CompanyKind,
    Conflict,
    ContactInfo,
    OfferLine,
    PartnerAccess,
    Permission,
    Portal,
    Service,
    User,
    ValidationError,
)
from partnerkit.audit import correlation
from partnerkit.cli import main
from partnerkit.links import Keyring, LinkKind, build_url
from partnerkit.ports import Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.support import PasswordHasher, RequestStatus, Severity

pytest_plugins = ["pg_fixtures", "cast_fixtures"]


def claiming(cls: type, *, equal_to: object = None, **attributes: object) -> Any:
    """An object that is no *cls* but says it is (``__class__``), optionally equal to and
    hashing as *equal_to*, with *attributes* (a fake enum's ``value``, say)."""
    namespace: dict[str, Any] = {"__class__": property(lambda self: cls), **attributes}
    if equal_to is not None:
        namespace["__eq__"] = lambda self, other: True
        namespace["__hash__"] = lambda self: hash(equal_to)
    return type(f"Claims{cls.__name__}", (), namespace)()


class Lying(timedelta):
    """A duration whose comparisons say it is within every bound."""

    def __le__(self, other: object) -> bool:
        return True

    def __ge__(self, other: object) -> bool:
        return True

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return False


def _trail(portal: Portal, admin: User) -> int:
    return len(portal.audit_trail(admin))


def _refused(field: str, call: Callable[[], object]) -> None:
    with pytest.raises(ValidationError) as info:
        call()
    assert info.value.field == field, info.value


# -- escalation and stored fakes, on every store ----------------------------------------


def test_a_fake_admin_role_grants_nothing_through_a_delegation(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """A delegated partner admin may not grant a global admin in the customer: not with the
    member, nor with an object that claims to be the member and says its value is it."""
    consent(portal, partner.admin, customer)
    target = customer.by_role[None]
    fake = claiming(AdminRole, value="global_admin", name="GLOBAL_ADMIN")
    before = _trail(portal, customer.admin)
    _refused(
        "admin_role",
        lambda: portal.assign_roles(
            partner.admin, target.id, admin_role=fake, company_id=customer.company.id
        ),
    )
    stored = [u for u in portal.list_users(customer.admin) if u.id == target.id]
    assert stored[0].admin_role is None
    assert _trail(portal, customer.admin) == before + 1  # the failed attempt is in the trail


def test_a_fake_partner_access_is_refused_not_stored(portal: Portal, partner: PartnerCast) -> None:
    """LIMITED access that hashes and compares as LIMITED but says its value is "full"."""
    fake = claiming(PartnerAccess, equal_to=PartnerAccess.LIMITED, value="full")
    _refused(
        "partner_access",
        lambda: portal.assign_roles(partner.admin, partner.plain.id, partner_access=fake),
    )
    _refused(
        "partner_access",
        lambda: portal.create_user(
            partner.admin, email="x@contoso.example", display_name="X", partner_access=fake
        ),
    )
    users = portal.list_users(partner.admin)
    assert [u.partner_access for u in users if u.id == partner.plain.id] == [None]
    assert "x@contoso.example" not in {u.email for u in users}


def test_a_lying_duration_cannot_pass_the_two_year_cap(
    portal: Portal, partner: PartnerCast
) -> None:
    """Its days are read, not its comparisons: a million days is refused."""
    _refused("duration", lambda: portal.offer_delegated_admin(partner.admin, duration=Lying(10**6)))
    _refused(
        "expires_in",
        lambda: portal.create_trial_invitation(
            partner.admin, "EXCHANGE", False, expires_in=Lying(10**6)
        ),
    )
    url = portal.offer_delegated_admin(partner.admin, duration=Lying(days=30))
    assert portal.inspect_link(url).kind is LinkKind.DELEGATED_ADMIN


def test_objects_claiming_a_class_are_refused_by_name(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """Every argument that claims a class it is not is refused as a wrong value is: a
    ``ValidationError`` naming it, nothing written."""
    consent(portal, partner.admin, customer)
    text = claiming(str, equal_to="Fabrikam")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("contact", lambda: portal.update_profile(partner.admin, contact=claiming(ContactInfo))),
        ("name", lambda: portal.update_profile(partner.admin, name=text)),
        ("email", lambda: portal.create_user(partner.admin, email=text, display_name="X")),
        (
            "display_name",
            lambda: portal.create_user(partner.admin, email="y@c.example", display_name=text),
        ),
        ("email", lambda: portal.update_user(partner.admin, partner.plain.id, email=text)),
        (
            "title",
            lambda: portal.create_service_request(partner.full, customer.company.id, title=text),
        ),
        (
            "description",
            lambda: portal.create_service_request(
                partner.full, customer.company.id, title="T", description=text
            ),
        ),
        (
            "severity",
            lambda: portal.create_service_request(
                partner.full, customer.company.id, title="T", severity=claiming(Severity)
            ),
        ),
        (
            "domain",
            lambda: portal.register_customer(name="N", domain=text, admin_email="a@n.example"),
        ),
        ("lines", lambda: portal.create_purchase_offer(partner.admin, claiming(list))),
        (
            "lines",
            lambda: portal.create_purchase_offer(
                partner.admin, [claiming(OfferLine, sku="INTUNE", licenses=5)]
            ),
        ),
        ("roles", lambda: portal.offer_delegated_admin(partner.admin, roles={claiming(AdminRole)})),
        (
            "expires_in",
            lambda: portal.create_trial_invitation(
                partner.admin, "EXCHANGE", False, expires_in=claiming(timedelta)
            ),
        ),
    ]
    before = portal.list_users(partner.admin)
    for field, call in calls:
        _refused(field, call)
    assert portal.list_users(partner.admin) == before
    assert portal.list_service_requests(partner.full, customer.company.id) == []
    request = portal.create_service_request(partner.full, customer.company.id, title="T")
    for status in (claiming(RequestStatus), claiming(str, equal_to="closed")):
        _refused(
            "status",
            lambda s=status: portal.update_service_request(partner.full, request.id, status=s),
        )


def test_a_mapping_is_no_set_of_roles(portal: Portal, partner: PartnerCast) -> None:
    _refused(
        "roles",
        lambda: portal.offer_delegated_admin(partner.admin, roles={AdminRole.PASSWORD_ADMIN: 1}),
    )


def test_an_endless_iterable_is_refused_not_followed(portal: Portal, partner: PartnerCast) -> None:
    _refused(
        "roles",
        lambda: portal.offer_delegated_admin(
            partner.admin, roles=itertools.repeat(AdminRole.PASSWORD_ADMIN)
        ),
    )
    _refused(
        "lines",
        lambda: portal.create_purchase_offer(
            partner.admin, itertools.repeat(OfferLine(sku="INTUNE", licenses=5))
        ),
    )


# -- value objects and helpers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("email", lambda fake: ContactInfo(email=fake)),
        ("address", lambda fake: ContactInfo(email="a@b.example", address=fake)),
        ("sku", lambda fake: OfferLine(sku=fake, licenses=5)),
        ("name", lambda fake: Service(sku="X", name=fake)),
        (
            "display_name",
            lambda fake: User(
                id="usr_1", company_id="cmp_1", email="a@b.example", display_name=fake
            ),
        ),
        (
            "admin_role",
            lambda fake: User(
                id="usr_1",
                company_id="cmp_1",
                email="a@b.example",
                display_name="A",
                admin_role=fake,
            ),
        ),
        (
            "contact",
            lambda fake: Company(
                id="cmp_1", kind=CompanyKind.CUSTOMER, name="N", domain="n.example", contact=fake
            ),
        ),
    ],
)
def test_value_objects_refuse_what_only_claims_their_types(
    field: str, make: Callable[[Any], object]
) -> None:
    kind = {"admin_role": AdminRole, "contact": ContactInfo}.get(field, str)
    _refused(field, lambda: make(claiming(kind, value="global_admin")))


def test_a_service_name_is_printable_text() -> None:
    for bad in ("Mail\x00", "Mail\ud800"):
        _refused("name", lambda b=bad: Service(sku="X", name=b))


def test_the_catalogue_reads_keys_and_members_by_their_text() -> None:
    _refused("services", lambda: Catalog(None))  # type: ignore[arg-type]
    _refused("services", lambda: Catalog(claiming(list)))
    _refused("catalog", lambda: Catalog.from_json("[" * 100_000))
    _refused(
        "catalog",
        lambda: Catalog.from_dict(
            {"services": [{claiming(str, equal_to="sku"): "X", "name": "N"}]}
        ),
    )
    _refused("catalog", lambda: Catalog.from_dict({"services": [claiming(dict)]}))
    catalog = Catalog([Service(sku="X", name="N")])
    assert [] not in catalog
    assert claiming(str, equal_to="X") not in catalog
    assert "X" in catalog


def test_passwords_are_judged_by_their_type_and_text() -> None:
    hasher = PasswordHasher(n=2**4, r=1, p=1)
    for bad in (None, 0, b"pw", [], 10**400, claiming(str)):
        _refused("password", lambda b=bad: hasher.hash(b))
    _refused("password", lambda: hasher.hash("pw\ud800"))
    stored = hasher.hash("correct horse")
    assert hasher.verify("correct horse", stored)
    assert not hasher.verify(claiming(str, equal_to="correct horse"), stored)
    assert not hasher.verify("correct horse", claiming(str, equal_to=stored))


def test_the_key_ring_reads_times_kinds_and_names_by_their_types() -> None:
    ring = Keyring.generate()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    _refused("algorithm", lambda: Keyring.generate(claiming(str, equal_to="hmac-sha256")))
    _refused("keyring", lambda: Keyring.from_json(claiming(str)))
    _refused("now", lambda: ring.verify("a.b.c", now=claiming(datetime)))
    issue: dict[str, Any] = {
        "link_id": "lnk_1",
        "advisor_id": "PA-1",
        "target": "EXCHANGE",
        "includes_delegated_admin": False,
        "issued_at": now,
        "expires_at": now + timedelta(days=1),
    }
    _refused(
        "kind", lambda: ring.issue(claiming(LinkKind, equal_to=LinkKind.TRIAL_INVITATION), **issue)
    )
    _refused(
        "issued_at",
        lambda: ring.issue(LinkKind.TRIAL_INVITATION, **{**issue, "issued_at": claiming(datetime)}),
    )
    _refused("base_url", lambda: Portal(MemoryStore(), base_url=claiming(str)))
    _refused("correlation_id", lambda: correlation(claiming(str)).__enter__())


@pytest.mark.parametrize(
    "argv",
    [
        ["keys", "new", "--out", "x\x00y"],
        ["keys", "public", "key\ud800s.json"],
        ["link", "inspect", "code", "--keys", "a\x00"],
        [1],
        [b"keys"],
    ],
)
def test_a_command_line_no_file_can_have_is_a_usage_error(
    argv: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit code 2 and one line of error, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip()


def test_a_store_keeps_no_member_that_only_claims_its_enum(any_store: Store) -> None:
    """Below the Portal and the classes' own checks (a field set behind a frozen class's
    back), every store refuses what only claims to be an enum's member: SQLite stored its
    ``value`` ("root"), and the company's users could never be listed again."""
    user = User(id="usr_1", company_id="cmp_1", email="a@b.example", display_name="A")
    object.__setattr__(user, "admin_role", claiming(AdminRole, value="root"))
    with any_store.unit_of_work() as uow, pytest.raises(ValidationError):
        uow.users.add(user)
    with any_store.unit_of_work(write=False) as uow:
        assert uow.users.find(company_id="cmp_1") == []


def test_a_version_is_a_number_a_store_can_keep() -> None:
    """A version beyond 64 bits is refused when the object is made, not by the store."""
    _refused(
        "version",
        lambda: User(
            id="usr_1", company_id="cmp_1", email="a@b.example", display_name="A", version=2**63
        ),
    )
    assert User(
        id="usr_1", company_id="c", email="a@b.example", display_name="A", version=2**63 - 1
    )


def test_an_actor_may_be_a_proxy_of_a_user(portal: Portal, partner: PartnerCast) -> None:
    """Only the actor's id is read (then the user is read again from the store): a mock or
    a proxy of a ``User`` (a web framework's "current user") acts as that user, in every
    use case as in ``decide``."""
    for actor in (Mock(spec=User, id=partner.admin.id), weakref.proxy(partner.admin)):
        assert portal.profile(actor).id == partner.company.id
        assert partner.admin in portal.list_users(actor, limit=50)
        assert portal.decide(actor, Permission.MANAGE_USERS, partner.company.id)


def test_a_link_code_of_a_str_subclass_is_read_by_its_text() -> None:
    class Markup(str):
        pass

    assert build_url("https://portal.example/join", Markup("abcDEF123")).endswith("?code=abcDEF123")


def test_an_object_equal_to_the_stored_value_is_no_e_mail(
    portal: Portal, partner: PartnerCast
) -> None:
    """It was taken for "the same again", and the update succeeded changing nothing."""
    for field in ("email", "display_name"):
        same = getattr(partner.plain, field)
        _refused(
            field,
            lambda f=field, v=same: portal.update_user(
                partner.admin, partner.plain.id, **{f: claiming(object, equal_to=v)}
            ),
        )


def test_a_catalogue_from_json_reads_text_by_its_type() -> None:
    class Raising(str):
        def startswith(self, *args: object) -> bool:
            raise AssertionError("its own method ran")

    _refused("catalog", lambda: Catalog.from_json(claiming(str)))
    text = '{"services": [{"sku": "X", "name": "N"}]}'
    assert "X" in Catalog.from_json(Raising(text))


def test_memory_s_page_order_is_kept_only_for_keys_of_plain_values() -> None:
    """A lookup value whose hash changes between two reads must not leave one company's
    order kept under another's key (a later page of that company would show the first's
    users until the next write)."""
    store = MemoryStore()
    with store.unit_of_work() as uow:
        for n, company in enumerate(["cmp_A", "cmp_A", "cmp_B"]):
            uow.users.add(
                User(id=f"usr_{n}", company_id=company, email=f"u{n}@x.example", display_name="U")
            )
        uow.commit()

    class Shifty:
        calls = 0

        def __hash__(self) -> int:
            Shifty.calls += 1
            return hash("cmp_A") if Shifty.calls == 1 else hash("cmp_B")

        def __eq__(self, other: object) -> bool:
            return True

    with store.unit_of_work(write=False) as uow:
        uow.users.find_page({"company_id": Shifty()}, 10)  # type: ignore[attr-defined]
        page = uow.users.find_page({"company_id": "cmp_B"}, 10)  # type: ignore[attr-defined]
    assert [u.id for u in page] == ["usr_2"]


def test_memory_finds_nothing_for_a_value_no_row_can_hold(any_store: Store) -> None:
    """A list or a dict as a lookup value: nothing found and nothing counted, on every store."""
    with any_store.unit_of_work(write=False) as uow:
        for value in ([], {}, ["cmp_1"]):
            assert uow.users.find(company_id=value) == []
            assert uow.users.count(company_id=value) == 0


def test_a_catalogue_from_json_reads_bytes_by_their_bytes() -> None:
    class Sneaky(bytes):
        def decode(self, *args: object, **kwargs: object) -> str:  # type: ignore[override]
            return '{"services": [{"sku": "EVIL", "name": "N"}]}'

    catalog = Catalog.from_json(Sneaky(b'{"services": [{"sku": "REAL", "name": "N"}]}'))
    assert "REAL" in catalog
    assert "EVIL" not in catalog


def test_a_password_with_a_nul_is_no_other_password() -> None:
    """scrypt keys HMAC with the password, which pads a short key with zeros: "pw" and
    "pw\\x00" hashed alike. No password holds a NUL now, so none verifies as another."""
    hasher = PasswordHasher(n=2**4, r=1, p=1)
    stored = hasher.hash("correct horse")
    assert hasher.verify("correct horse", stored)
    for padded in ("correct horse\x00", "correct horse\x00\x00"):
        assert not hasher.verify(padded, stored)
    _refused("password", lambda: hasher.hash("pw\x00"))


def test_removing_a_version_no_store_keeps_is_stale_on_every_store(any_store: Store) -> None:
    """A version beyond 64 bits names no stored row: ``Conflict``, as ``MemoryStore`` said,
    where the SQL stores failed on the parameter (``ValidationError``). Found by the stores'
    differential test."""
    company = Company(id="cmp_1", kind=CompanyKind.CUSTOMER, name="N", domain="n.example")
    with any_store.unit_of_work() as uow:
        uow.companies.add(company)
        uow.commit()
    for version in (2**63, -(2**63) - 1, 10**400):
        stale = attrs.evolve(company)
        object.__setattr__(stale, "version", version)
        with any_store.unit_of_work() as uow, pytest.raises(Conflict):
            uow.companies.remove(stale)
    with any_store.unit_of_work(write=False) as uow:
        assert uow.companies.get("cmp_1") == company
