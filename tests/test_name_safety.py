"""Names given to the Portal refuse C1 control characters and bidirectional formatting
characters, on every built-in store.

A company's name and a user's display name are shown to other companies (a partner's
customer list, an audit trail). C0 control characters were always refused; C1 ones (U+0080
to U+009F) were not, nor were the bidirectional embedding, override and isolate characters
(U+202A to U+202E, U+2066 to U+2069), with which a name can display as another one. Each
entry point that takes a name refuses them now with a ``ValidationError`` naming its
argument, and writes nothing. Right-to-left names, which need none of them, are accepted.
Names stored before the rule (written here through the store, as an older version would
have) still read, and their company can still be changed.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest

from delegation_kit import PartnerCast, add_partner
from delegation_kit import make_portal as _make_portal
from partnerkit import Company, ContactInfo, Portal, ValidationError
from partnerkit.ports import Store
from partnerkit.testing import FakeClock, sample_catalog, snapshot

pytest_plugins = ["pg_fixtures"]

#: One of each kind of character refused, each in a name that is otherwise fine.
UNSAFE = [
    "Contoso\x85Ltd",  # NEXT LINE, a C1 control character
    "Contoso\x9b31m",  # the C1 control sequence introducer
    "\u202eosotnoC",  # RIGHT-TO-LEFT OVERRIDE
    "Conto\u202aso",  # LEFT-TO-RIGHT EMBEDDING
    "Contoso \u2067Ltd\u2069",  # RIGHT-TO-LEFT ISOLATE ... POP DIRECTIONAL ISOLATE
]
#: Names with right-to-left text and other marks that remain allowed.
SAFE = ["شركة كونتوسو", "קונטוסו בע״מ", "Contoso\u200fLtd", "Zoë & Søn"]


@pytest.fixture
def portal(any_store: Store) -> Portal:
    return _make_portal(any_store, FakeClock(), sample_catalog())


@pytest.fixture
def partner(portal: Portal) -> PartnerCast:
    return add_partner(portal, "Contoso", "contoso")


def _entry_points(portal: Portal, partner: PartnerCast) -> dict[str, Callable[[str], object]]:
    """Each way a name reaches the Portal, keyed by the argument it is refused under."""
    url = portal.create_trial_invitation(partner.full, "EXCHANGE", include_delegated_admin=False)
    return {
        "sign_up name": lambda name: portal.sign_up(
            url, name=name, domain="fabrikam.example", admin_email="a@fabrikam.example"
        ),
        "register_partner name": lambda name: portal.register_partner(
            name=name, contact=ContactInfo(email="a@tailspin.example"), admin_email="a@t.example"
        ),
        "register_partner admin_name": lambda name: portal.register_partner(
            name="Tailspin",
            contact=ContactInfo(email="a@tailspin.example"),
            admin_email="a@t.example",
            admin_name=name,
        ),
        "register_customer name": lambda name: portal.register_customer(
            name=name, domain="fabrikam.example", admin_email="a@fabrikam.example"
        ),
        "register_customer admin_name": lambda name: portal.register_customer(
            name="Fabrikam",
            domain="fabrikam.example",
            admin_email="a@fabrikam.example",
            admin_name=name,
        ),
        "update_profile name": lambda name: portal.update_profile(partner.admin, name=name),
        "create_user display_name": lambda name: portal.create_user(
            partner.admin, email="new@contoso.example", display_name=name
        ),
    }


@pytest.mark.parametrize("name", UNSAFE)
def test_every_entry_point_refuses_an_unsafe_name_and_writes_nothing(
    portal: Portal, partner: PartnerCast, name: str
) -> None:
    for label, call in _entry_points(portal, partner).items():
        before = snapshot(portal.store)
        with pytest.raises(ValidationError) as raised:
            call(name)
        assert raised.value.field == label.split()[1], label
        after = snapshot(portal.store)
        assert (after.companies, after.users) == (before.companies, before.users), label


@pytest.mark.parametrize("name", SAFE)
def test_right_to_left_and_accented_names_are_accepted(
    portal: Portal, partner: PartnerCast, name: str
) -> None:
    company, admin = portal.register_customer(
        name=name, domain="fabrikam.example", admin_email="a@fabrikam.example", admin_name=name
    )
    assert company.name == name
    assert admin.display_name == name
    assert portal.update_profile(partner.admin, name=name).name == name
    user = portal.create_user(partner.admin, email="n@contoso.example", display_name=name)
    assert user.display_name == name


def test_a_name_stored_before_the_rule_still_reads_and_its_company_still_changes(
    portal: Portal, partner: PartnerCast
) -> None:
    old_name = "Conto\u202eso\x85Ltd"
    with portal.store.unit_of_work() as uow:
        stored = uow.companies.get(partner.company.id)
        assert stored is not None
        uow.companies.update(attrs.evolve(stored, name=old_name, version=stored.version + 1))
        uow.commit()
    assert portal.profile(partner.admin).name == old_name
    contact = ContactInfo(email="new@contoso.example")
    changed: Company = portal.update_profile(partner.admin, contact=contact)
    assert (changed.name, changed.contact) == (old_name, contact)
    # Renaming it to a safe name works too; back to an unsafe one does not.
    assert portal.update_profile(partner.admin, name="Contoso").name == "Contoso"
    with pytest.raises(ValidationError):
        portal.update_profile(partner.admin, name=old_name)
