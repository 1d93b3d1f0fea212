"""What a Portal remembers of the links it follows: the code of a URL whose code verified
(one link is followed by many customers), on top of the ring's memory of verified codes. The
memory saves work and nothing else: every answer is the one a fresh Portal gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from partnerkit import Catalog, ContactInfo, Portal, Service, TrialTerms
from partnerkit.errors import InvalidLink, LinkExpired, LinkRevoked
from partnerkit.links import _REMEMBERED, Keyring
from partnerkit.stores.memory import MemoryStore

T0 = datetime(2030, 1, 1, 12, tzinfo=UTC)
CATALOG = Catalog([Service(sku="EXCHANGE", name="Exchange", trial=TrialTerms(30, 25))])


class World:
    def __init__(self) -> None:
        self.now = T0
        self.ring = Keyring.generate()
        self.portal = Portal(
            store=MemoryStore(), keyring=self.ring, catalog=CATALOG, clock=lambda: self.now
        )
        _, self.admin = self.portal.register_partner(
            name="Contoso", contact=ContactInfo(email="hi@contoso.example"), admin_email="a@c.ex"
        )

    def link(self, **kwargs: object) -> str:
        return self.portal.create_trial_invitation(self.admin, "EXCHANGE", **kwargs)  # type: ignore[arg-type]

    def fresh(self) -> Portal:
        """A Portal on the same store and keys that remembers nothing."""
        ring = Keyring.from_json(self.ring.to_json())
        return Portal(
            store=self.portal.store, keyring=ring, catalog=CATALOG, clock=lambda: self.now
        )


@pytest.fixture
def world() -> World:
    return World()


def test_a_followed_link_is_remembered_and_judged_again(world: World) -> None:
    """The second inspection finds the URL's code remembered; the link's times and its record
    are still judged at every call."""
    url = world.link(expires_in=timedelta(days=1))
    assert world.portal.inspect_link(url).kind.value == "trial_invitation"
    assert url in world.portal._link_codes
    world.now = T0 + timedelta(days=2)
    with pytest.raises(LinkExpired):
        world.portal.inspect_link(url)
    world.now = T0
    link_id = world.portal.inspect_link(url).link_id
    world.portal.revoke_link(world.admin, link_id)
    with pytest.raises(LinkRevoked):
        world.portal.inspect_link(url)


def test_only_urls_whose_codes_verified_are_remembered(world: World) -> None:
    """A forged code, another ring's link or text that is no URL leaves the memory as it
    was: nobody can fill it (and push the live links out) without links that verify."""
    url = world.link()
    world.portal.inspect_link(url)
    forged = url[:-2] + ("AA" if url[-2:] != "AA" else "BA")
    other = World().link()

    class Liar(str):
        @property  # type: ignore[misc]
        def __class__(self) -> type:  # says it is a plain str: only its type tells
            return str

        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return hash(url)

    assert Liar("x").__class__ is str

    for bad in (forged, other, "https://portal.example/join?code=x.y.z", Liar("x")):
        with pytest.raises(InvalidLink):
            world.portal.inspect_link(bad)
    assert list(world.portal._link_codes) == [url]


def test_a_removed_key_ends_remembered_links_at_once(world: World) -> None:
    """A URL remembered a moment ago is invalid once its key is removed."""
    url = world.link()
    world.portal.inspect_link(url)
    old_kid = world.ring.active_key_id
    world.ring.rotate()
    world.portal.inspect_link(url)  # still verifies: its key is in the ring
    world.ring.remove(old_kid)
    with pytest.raises(InvalidLink):
        world.portal.inspect_link(url)
    with pytest.raises(InvalidLink):
        world.fresh().inspect_link(url)


def test_the_memory_is_bounded(world: World) -> None:
    """At most _REMEMBERED URLs (with none followed again, the last ones followed); a
    forgotten one is followed as before."""
    urls = [world.link() for _ in range(_REMEMBERED + 5)]
    for url in urls:
        world.portal.inspect_link(url)
        assert len(world.portal._link_codes) <= _REMEMBERED
    assert list(world.portal._link_codes) == urls[5:]
    fresh = world.fresh()
    assert [world.portal.inspect_link(u) for u in urls[:10]] == [
        fresh.inspect_link(u) for u in urls[:10]
    ]


def test_a_link_followed_often_is_forgotten_last(world: World) -> None:
    """The memory forgets the URL used least lately: a link followed between every other
    stays, however many others come and go."""
    hot = world.link()
    others = [world.link() for _ in range(_REMEMBERED)]
    world.portal.inspect_link(hot)  # the first one in, and the oldest entry from here on
    for url in others[:-1]:
        world.portal.inspect_link(url)
        world.portal.inspect_link(hot)  # remembered: used again
    assert len(world.portal._link_codes) == _REMEMBERED
    world.portal.inspect_link(others[-1])  # full: one entry goes
    assert hot in world.portal._link_codes  # checked before it is followed again
    assert others[0] not in world.portal._link_codes
