"""What the review of the twelfth session's audit pages found, each fixed, on every store.

- An id of a ``str`` subclass that fakes ``__class__`` with a property passed for a plain
  ``str``: its own ``__eq__`` then answered the Portal's "is this the actor's own company?",
  and another company's trail was read (``audit_trail`` and ``audit_trail_page``).
- A stored event numbered by a float (a table rebuilt behind the store's back) made the
  chain check fail with a ``ValidationError`` of its own bounds, not ``AuditChainBroken``.
- Details nested deeper than json reads raised a bare ``RecursionError``.
- A tampered store's events numbered below 1 gave page cursors the same method refused.

And what a hunt through every use case with such subclasses found next: the stores bound a
subclass by what its own ``__conform__`` (sqlite3) or ``encode`` (behind a faked class, on
PostgreSQL) said, and the use cases validated it with its own ``__len__`` and ``strip``. A
password verified for another user; a use case acted on one object and recorded another;
a name was checked short and stored long. Every public use case now reads its arguments of a
``str`` subclass by their text (``portal.py``), and so do the stores and the values objects
keep.
"""

from __future__ import annotations

import inspect
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _faked_text import FakedStr as _FakedStr
from delegation_kit import CustomerCast, PartnerCast, add_customer, consent
from partnerkit import (
    AdminRole,
    AuditChainBroken,
    ContactInfo,
    Forbidden,
    InvalidLink,
    NotFound,
    OfferLine,
    PartnerKitError,
    Permission,
    Portal,
    User,
    ValidationError,
)
from partnerkit.ports import USERS
from partnerkit.stores import check_storable
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore

pytest_plugins = ["pg_fixtures", "cast_fixtures"]


def test_the_faked_class_fools_the_attribute_but_not_type() -> None:
    """The premise: ``x.__class__`` says ``str``, ``type(x)`` does not."""
    faked = _FakedStr("cmp_x")
    assert faked.__class__ is str
    assert type(faked) is not str


def test_an_id_faking_its_class_reads_no_other_company_s_trail(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    consent(portal, partner.admin, customer)
    other = add_customer(portal, "Dunder", "dunder.example", roles=())
    own = portal.audit_trail(other.admin)
    assert portal.audit_trail(other.admin, _FakedStr(other.company.id)) == own
    page = portal.audit_trail_page(other.admin, _FakedStr(other.company.id), limit=500)
    assert list(page.events) == portal.audit_trail(other.admin)
    for company in (customer.company.id, partner.company.id):
        with pytest.raises(Forbidden):
            portal.audit_trail(other.admin, _FakedStr(company))
        with pytest.raises(Forbidden):
            portal.audit_trail_page(other.admin, _FakedStr(company))


def test_an_id_faking_its_class_is_no_own_company_for_a_decision(
    portal: Portal, customer: CustomerCast
) -> None:
    other = add_customer(portal, "Dunder", "dunder.example", roles=())
    for permission in (Permission.MANAGE_USERS, Permission.VIEW_PROFILE):
        assert not portal.decide(other.admin, permission, _FakedStr(customer.company.id))
        assert portal.decide(other.admin, permission, _FakedStr(other.company.id))
    with pytest.raises(Forbidden):
        portal.update_profile(other.admin, company_id=_FakedStr(customer.company.id), name="X")
    # An actor id of a subclass is the actor its text names, for decide as for every use
    # case (decide once answered it as no actor at all), whatever its class claims.
    faked_actor = _FakedStr(other.admin.id)
    assert portal.decide(faked_actor, Permission.MANAGE_USERS, other.company.id)
    assert not portal.decide(faked_actor, Permission.MANAGE_USERS, customer.company.id)
    assert portal.profile(faked_actor).id == other.company.id


def test_a_memory_store_reads_a_faked_id_by_its_text(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """At the store too: a company's events are those of the id's text, never all of them
    (``MemoryStore`` once compared each event's ids with the subclass's ``__eq__``)."""
    consent(portal, partner.admin, customer)
    with portal.store.unit_of_work(write=False) as uow:
        for company in (customer.company.id, partner.company.id):
            faked = _FakedStr(company)
            assert uow.audit_events(faked) == uow.audit_events(company)
            ranges: Any = uow
            assert ranges.audit_range(faked, 1000) == uow.audit_events(company)
        assert uow.users.get(_FakedStr(customer.admin.id)) == customer.admin


@pytest.fixture
def sqlite_portal(tmp_path: Path) -> Iterator[tuple[Portal, Path]]:
    path = tmp_path / "tampered.db"
    store = SQLiteStore(path)
    portal = Portal(store=store)
    _, kim = portal.register_customer(
        name="Fabrikam", domain="fabrikam.example", admin_email="k@f.example"
    )
    portal.create_user(kim, email="jo@f.example", display_name="Jo")
    yield portal, path
    store.close()


def _rebuild_without_integer_seq(path: Path) -> None:
    """Rebuild ``audit_events`` with a ``seq`` of no type, as an attacker with the file can."""
    with sqlite3.connect(path) as raw:
        columns = [row[1] for row in raw.execute("PRAGMA table_info(audit_events)")]
        raw.executescript(
            "ALTER TABLE audit_events RENAME TO old_events;"
            f"CREATE TABLE audit_events ({', '.join(columns)});"  # no types: values as given
            "INSERT INTO audit_events SELECT * FROM old_events;"
            "DROP TABLE old_events;"
        )
    raw.close()


@pytest.mark.parametrize("value", ["1.0", "'1'"])
def test_an_event_numbered_by_what_is_not_a_whole_number_breaks_the_chain(
    sqlite_portal: tuple[Portal, Path], value: str
) -> None:
    portal, path = sqlite_portal
    assert portal.verify_audit_trail() == 2
    _rebuild_without_integer_seq(path)
    assert portal.verify_audit_trail() == 2  # the same rows, the same chain
    with sqlite3.connect(path) as raw:
        raw.execute(f"UPDATE audit_events SET seq = {value} WHERE seq = 1")
    raw.close()
    with pytest.raises(AuditChainBroken):
        portal.verify_audit_trail()


def test_details_nested_too_deep_to_read_break_the_chain(
    sqlite_portal: tuple[Portal, Path],
) -> None:
    portal, path = sqlite_portal
    with sqlite3.connect(path) as raw:
        deep = "[" * 5000 + "]" * 5000
        raw.execute("UPDATE audit_events SET detail = ? WHERE seq = 2", (deep,))
    raw.close()
    with pytest.raises(AuditChainBroken):
        portal.verify_audit_trail()
    admin = portal.store.unit_of_work  # the trail's readers fail the same way
    with pytest.raises(AuditChainBroken), admin(write=False) as uow:
        uow.audit_events()


def test_pages_of_a_store_with_events_below_1_go_on_with_their_cursors(
    sqlite_portal: tuple[Portal, Path],
) -> None:
    """A row slipped in with a number below 1 is in the pages (the chain check refuses the
    store); the cursors the pages give are taken back, not refused as made up."""
    portal, path = sqlite_portal
    with sqlite3.connect(path) as raw:
        raw.execute(
            "INSERT INTO audit_events SELECT -5, at, actor_id, actor_company_id, company_id, "
            "delegation_id, role, action, outcome, target_id, reason, detail, "
            "correlation_id, prev_hash, hash FROM audit_events WHERE seq = 1"
        )
    raw.close()
    with portal.store.unit_of_work(write=False) as uow:
        kim = uow.users.find(email_key="k@f.example")[0]
    oldest = portal.audit_trail_page(kim, limit=1)
    assert [e.seq for e in oldest.events] == [-5]
    assert [e.seq for e in portal.audit_trail_page(kim, cursor=oldest.next_cursor).events] == [
        1,
        2,
    ]
    newest = portal.audit_trail_page(kim, limit=3, newest_first=True)
    assert [e.seq for e in newest.events] == [2, 1, -5]
    after = portal.audit_trail_page(kim, cursor=newest.next_cursor, newest_first=True)
    assert after.events == ()
    with pytest.raises(AuditChainBroken):
        portal.verify_audit_trail()


def test_a_cursor_holds_any_number_of_64_bits_and_no_more() -> None:
    portal = Portal(store=MemoryStore())
    _, admin = portal.register_customer(name="F", domain="f.example", admin_email="a@f.example")
    for cursor in ("o-9223372036854775808", "o-5", "o0"):
        assert len(portal.audit_trail_page(admin, cursor=cursor).events) == 1
    assert portal.audit_trail_page(admin, cursor="o9223372036854775807").events == ()
    assert (
        len(portal.audit_trail_page(admin, cursor="n9223372036854775807", newest_first=True).events)
        == 1
    )
    for cursor in ("n-9223372036854775808", "n0", "n-5"):
        assert portal.audit_trail_page(admin, cursor=cursor, newest_first=True).events == ()
    for cursor in ("o-9223372036854775809", "o9223372036854775808", "n-0"):
        with pytest.raises(ValidationError):
            portal.audit_trail_page(admin, cursor=cursor, newest_first=cursor[0] == "n")


def test_a_value_faking_its_class_is_judged_by_its_text_before_it_is_stored() -> None:
    """``check_storable`` (what every built-in store runs before a write) reads a text
    column's value by its type and its text, not by what its class or ``__contains__`` say."""

    class Sly(str):
        __slots__ = ()

        @property  # type: ignore[misc]
        def __class__(self) -> type:
            return str

        def __contains__(self, item: object) -> bool:
            return False

    user = User(id="usr_1", company_id="cmp_1", email="a@b.example", display_name="A")
    object.__setattr__(user, "display_name", Sly("a\x00b"))
    with pytest.raises(ValidationError) as info:
        check_storable(USERS, user)
    assert info.value.field == "store"
    for store in (MemoryStore(),):
        with pytest.raises(ValidationError), store.unit_of_work() as uow:
            uow.users.add(user)


# -- a subclass's own methods never choose what is validated, compared, bound or stored ----


class _Twin(str):
    """Text of one id that, asked by sqlite3 (``__conform__``) or for its bytes (``encode``,
    behind a faked class), names another."""

    __slots__ = ("other",)

    def __new__(cls, text: str, other: str) -> _Twin:
        twin = super().__new__(cls, text)
        twin.other = other
        return twin

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return str

    def __conform__(self, protocol: object) -> str:
        return self.other

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        return self.other.encode()


class _Short(str):
    """Any text that says it is five characters long and has no white space to strip."""

    __slots__ = ()

    def __len__(self) -> int:
        return 5

    def strip(self, chars: str | None = None) -> str:
        return "short"


def test_a_password_verifies_only_for_the_user_its_text_names(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """A twin naming the victim by its text and the caller by its binding: the caller's own
    password once verified as the victim's on SQLite and PostgreSQL."""
    consent(portal, partner.admin, customer)
    victim, known = customer.by_role[AdminRole.BILLING_ADMIN], customer.by_role[None]
    mine = portal.reset_password(partner.full, customer.company.id, known.id)
    assert portal.verify_password(known.id, mine.temporary_password)
    twin = _Twin(victim.id, known.id)
    assert not portal.verify_password(twin, mine.temporary_password)  # type: ignore[arg-type]
    assert not portal.verify_password(victim.id, mine.temporary_password)


def test_a_use_case_acts_on_the_object_its_id_s_text_names(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """The record names what was acted on: a twin of an unknown id and a real one is the
    unknown id, on every store (SQLite and PostgreSQL once removed the real one, and the
    trail named the unknown)."""
    ghost = "usr_" + "0" * 32
    real = customer.by_role[None]
    with pytest.raises(NotFound):
        portal.remove_user(customer.admin, _Twin(ghost, real.id))
    assert real in portal.list_users(customer.admin)
    event = portal.audit_trail(customer.admin)[-1]
    assert (event.action, event.outcome, event.target_id) == ("user.remove", "failed", ghost)
    with pytest.raises(NotFound):
        portal.reset_password(customer.admin, customer.company.id, _Twin(ghost, real.id))


def test_what_is_validated_is_what_is_stored(portal: Portal, customer: CustomerCast) -> None:
    """Names, titles and e-mails are judged and kept by their text: a subclass that lies
    about its length or its white space gets the refusal its text gets."""
    for name in (_Short("x" * 5000), _Short("  "), _Short(" lead")):
        with pytest.raises(ValidationError) as info:
            portal.update_profile(customer.admin, name=name)
        assert info.value.field == "name"
    with pytest.raises(ValidationError):
        portal.register_customer(
            name=_Short("y" * 500), domain="n.example", admin_email="a@n.example"
        )
    taken = _Twin("new@n.example", customer.admin.email)
    _, admin = portal.register_customer(name="N", domain="n.example", admin_email=taken)
    assert type(admin.email) is str
    assert admin.email == "new@n.example"


def test_values_inside_arguments_are_read_by_their_text(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """A contact's fields, an offer line's sku and the keys of a licence adjustment: the
    objects built from them hold plain text, and nothing of the subclass runs later."""
    contact = ContactInfo(email=_Twin("sales@contoso.example", "x"), phone=_Short("+1 555 0100"))
    assert all(type(v) is str for v in (contact.email, contact.phone))
    line = OfferLine(sku=_Twin("INTUNE", "EXCHANGE"), licenses=5)
    assert type(line.sku) is str
    url, offer = portal.create_purchase_offer(partner.full, [line])
    assert [type(each.sku) for each in offer.lines] == [str]

    class BadFormat(str):
        __slots__ = ()

        def __format__(self, spec: str) -> str:
            return 5  # type: ignore[return-value]

    bought = portal.redeem(url, customer.admin, licenses={BadFormat("INTUNE"): 6})
    assert [(s.sku, s.licenses) for s in bought.subscriptions] == [("INTUNE", 6)]
    with pytest.raises(ValidationError) as info:
        portal.redeem(url, customer.by_role[AdminRole.BILLING_ADMIN], licenses={7: 6})  # type: ignore[dict-item]
    assert info.value.field == "licenses"


def test_a_store_reads_a_twin_by_its_text(portal: Portal, customer: CustomerCast) -> None:
    """Under the Portal too: a store binds an id's text, never what the object says it is
    (sqlite3 asks ``__conform__``; a faked class once reached its ``encode`` on PostgreSQL)."""
    admin, other = customer.admin, customer.by_role[None]
    twin = _Twin(admin.id, other.id)
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.users.get(twin) == admin
        assert uow.users.get_many([twin]) == {admin.id: admin}
        assert uow.users.find(company_id=_Twin(customer.company.id, "cmp_x")) == sorted(
            uow.users.find(company_id=customer.company.id), key=lambda u: u.id
        )
        assert uow.users.count(company_id=_Twin("cmp_none", customer.company.id)) == 0


def test_urls_and_cursors_of_a_subclass_are_read_as_their_text(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """``redeem``, ``inspect_link`` and the page cursors take a subclass's text, as they take
    the same text given plain (they refused it, where ids of a subclass were taken)."""
    consent(portal, partner.admin, customer)
    url = portal.create_trial_invitation(partner.full, "EXCHANGE")
    assert portal.inspect_link(_Twin(url, "x")) == portal.inspect_link(url)
    first = portal.redeem(_Twin(url, "x"), customer.admin)
    assert portal.redeem(url, customer.admin) == first
    page = portal.audit_trail_page(customer.admin, limit=1)
    again = portal.audit_trail_page(customer.admin, limit=1, cursor=_Twin(page.next_cursor, "o0"))
    assert again == portal.audit_trail_page(customer.admin, limit=1, cursor=page.next_cursor)
    decision = portal.decide(
        partner.full,
        Permission.RESET_PASSWORD,
        customer.company.id,
        _Twin(customer.by_role[None].id, "usr_x"),
    )
    assert decision  # through the delegation: a target of its text, in the customer
    assert decision == portal.decide(
        partner.full, Permission.RESET_PASSWORD, customer.company.id, customer.by_role[None].id
    )


class _ClaimsStr:
    """Not a str at all, but its ``__class__`` says ``str`` (so ``isinstance`` agrees)."""

    @property
    def __class__(self) -> type:  # type: ignore[override]
        return str


def test_an_object_that_only_claims_to_be_text_is_refused_as_what_it_is(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """Read by its type, it is no text: refused as any other non-text value is, with a
    partnerkit error, never a ``TypeError`` from taking its text."""
    fake: Any = _ClaimsStr()
    assert isinstance(fake, str)
    url, _ = portal.create_purchase_offer(partner.full, [OfferLine(sku="INTUNE", licenses=5)])
    with pytest.raises(InvalidLink):
        portal.inspect_link(fake)
    with pytest.raises(InvalidLink):
        portal.redeem(fake, customer.admin)
    with pytest.raises(ValidationError) as info:
        portal.redeem(url, customer.admin, licenses={fake: 3})
    assert info.value.field == "licenses"
    with pytest.raises(ValidationError):
        portal.audit_trail_page(customer.admin, cursor=fake)
    assert not portal.verify_password(customer.admin.id, fake)
    with pytest.raises(PartnerKitError):
        portal.remove_user(customer.admin, fake)
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.users.get(fake) is None
        assert uow.audit_events(fake) == []


def test_the_use_cases_stay_what_they_were_to_tools() -> None:
    """Wrapped to read their arguments by their text, the use cases keep their names,
    signatures and docstrings, and pickle by reference; the converted fields stay typed."""
    for name in ("create_user", "audit_trail_page", "sign_up"):
        method = getattr(Portal, name)
        assert method.__qualname__ == f"Portal.{name}"
        assert pickle.loads(pickle.dumps(method)) is method  # noqa: S301 - our own bytes
        assert "actor" in str(inspect.signature(method)) or name == "sign_up"
        assert method.__doc__
    assert str(inspect.signature(ContactInfo)).startswith("(email: 'str', phone: 'str | None'")
    assert str(inspect.signature(OfferLine)) == "(sku: 'str', licenses: 'int') -> None"


class _ClaimsToBe:
    """Not a str, but its ``__class__`` says ``str``, and it hashes and compares as *text*."""

    def __init__(self, text: str) -> None:
        self.text = text

    @property
    def __class__(self) -> type:  # type: ignore[override]
        return str

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return hash(self.text)


def test_an_object_that_claims_an_id_s_text_is_no_one_on_every_store(
    portal: Portal, partner: PartnerCast, customer: CustomerCast
) -> None:
    """Hashing and comparing as a real id once found its row in ``MemoryStore`` (and the
    Portal took it for that user); the SQL stores answered a storage error. It names no row
    on every store, and the Portal refuses it as an unknown actor, or as no company id."""
    consent(portal, partner.admin, customer)
    actor: Any = _ClaimsToBe(customer.admin.id)
    company: Any = _ClaimsToBe(customer.company.id)
    with pytest.raises(Forbidden) as info:
        portal.create_user(actor, email="x@fabrikam.example", display_name="X")
    assert info.value.decision.reason == "actor-does-not-exist"
    with pytest.raises(Forbidden):
        portal.profile(actor)
    for call in (
        lambda: portal.create_service_request(partner.full, company, title="T"),
        lambda: portal.list_service_requests(partner.full, company),
        lambda: portal.reset_password(partner.full, company, customer.by_role[None].id),
    ):
        with pytest.raises(ValidationError):  # no company id at all, on every store
            call()
    # Where the text is judged before anything is read, it is refused as no text at all
    # (it once passed for the admin's own company and read an empty trail, unrefused).
    for field, call in (
        ("company_id", lambda: portal.audit_trail(customer.admin, company)),
        ("company_id", lambda: portal.audit_trail_page(customer.admin, company)),
        ("prefix", lambda: portal.find_customers(partner.full, company)),
        ("cursor", lambda: portal.find_customers_page(partner.full, "", cursor=company)),
        ("after", lambda: portal.find_customers(partner.full, "", after=company)),
    ):
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.field == field
    with portal.store.unit_of_work(write=False) as uow:
        assert uow.users.get(actor) is None
        assert uow.companies.get(company) is None
        assert uow.users.get_many([actor]) == {}
        assert uow.users.find(company_id=company) == []
        assert uow.users.count(company_id=company) == 0
        assert uow.search_relations(company, "", 10) == []
        if hasattr(uow, "get_each"):  # PostgreSQL's reads in one round trip
            assert uow.get_each((USERS, actor)) == [None]
            assert uow.find_each((USERS, actor), (USERS, {"company_id": company})) == [None, []]
