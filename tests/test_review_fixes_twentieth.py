"""Fixes from the twentieth session's reviews: a storefront and key-management integrator,
a PostgreSQL operator, and a red team on races and links."""

from __future__ import annotations

import base64

import pytest

from partnerkit import (
    ContactInfo,
    InvalidLink,
    Keyring,
    LinkKind,
    Portal,
    ValidationError,
)
from partnerkit.links import code_from_url
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing import sample_catalog

CONTACT = ContactInfo(email="hello@contoso.example")


def _flip_last_signature_char(code: str) -> str:
    head, payload, signature = code.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 1
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    return f"{head}.{payload}.{forged}"


def _hidden(error: BaseException) -> bool:
    """No other exception shows through *error*: neither as its cause nor as its context."""
    return error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


@pytest.mark.parametrize("algorithm", ["hmac-sha256", "ed25519"])
def test_a_refused_code_shows_no_dependency_error_behind_it(algorithm: str) -> None:
    """SPEC 3: no exception of cryptography, base64 or urllib reaches a caller, not even
    as the context of the ``InvalidLink`` (a logged traceback told "a known key, a wrong
    signature" from every other refusal by the cryptography error behind it)."""
    ring = Keyring.generate(algorithm)  # type: ignore[arg-type]
    portal = Portal(store=MemoryStore(), keyring=ring, catalog=sample_catalog())
    _, admin = portal.register_partner(
        name="Contoso", contact=CONTACT, admin_email="ada@contoso.example"
    )
    url = portal.create_trial_invitation(admin, "EXCHANGE", False)
    code = code_from_url(url)
    forged = _flip_last_signature_char(code)
    head, payload, signature = code.split(".")
    attempts = [
        lambda: ring.verify(forged),
        lambda: ring.verify(forged, kind=LinkKind.TRIAL_INVITATION),
        lambda: portal.inspect_link(f"https://portal.example/join?code={forged}"),
        lambda: ring.verify(f"{head}.{payload[:-1]}!.{signature}"),
        lambda: ring.verify(f"{head}.{payload}.{signature[:-2]}"),
        lambda: code_from_url("https://[::1/join?code=" + code),
        lambda: portal.inspect_link("https://[::1/join?code=" + code),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidLink) as info:
            attempt()
        assert type(info.value) is InvalidLink
        assert _hidden(info.value), repr(info.value.__context__)


@pytest.mark.parametrize(
    ("part", "bad"),
    [
        ("keyring", '{"format": 1}'),  # the ring's JSON text, not the ring
        ("keyring", None),
        ("catalog", [{"sku": "EXCHANGE"}]),
        ("store", "portal.db"),
        ("clock", "2026-01-01T00:00:00Z"),
        ("base_url", "ftp://portal.example/join"),
        ("base_url", 5),
        ("password_hasher", object()),
    ],
)
def test_a_running_portals_parts_are_checked_when_replaced(part: str, bad: object) -> None:
    """docs/links.md reloads a key ring by assigning ``portal.keyring``: an assignment of
    the wrong thing is refused then, naming the part, and the Portal keeps the part it had
    (before, the next use case failed with an ``AttributeError`` from inside, unaudited)."""
    portal = Portal(store=MemoryStore(), catalog=sample_catalog())
    before = getattr(portal, part)
    with pytest.raises(ValidationError) as info:
        setattr(portal, part, bad)
    assert info.value.field == part
    assert getattr(portal, part) is before
    _, admin = portal.register_partner(
        name="Contoso", contact=CONTACT, admin_email="ada@contoso.example"
    )
    portal.inspect_link(portal.create_trial_invitation(admin, "EXCHANGE", False))


def test_a_replaced_part_of_its_kind_is_taken_as_given() -> None:
    """A reloaded ring is used from the next call; a base URL given as a ``str`` subclass
    is kept as its plain text, as the constructor keeps it."""

    class Url(str):
        pass

    portal = Portal(store=MemoryStore(), catalog=sample_catalog())
    _, admin = portal.register_partner(
        name="Contoso", contact=CONTACT, admin_email="ada@contoso.example"
    )
    old = portal.create_trial_invitation(admin, "EXCHANGE", False)
    reloaded = Keyring.from_json(portal.keyring.to_json())
    reloaded.rotate()
    portal.keyring = reloaded
    portal.base_url = Url("https://partners.example/join")
    assert type(portal.base_url) is str
    new = portal.create_trial_invitation(admin, "EXCHANGE", False)
    assert new.startswith("https://partners.example/join?code=")
    assert portal.inspect_link(old).key_id != portal.inspect_link(new).key_id
