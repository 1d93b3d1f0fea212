"""``_build.builder``: the same object as the class's own ``__init__`` makes, or the class."""

from __future__ import annotations

from datetime import UTC, datetime

import attrs
import pytest

from partnerkit import audit, consent, directory, offers, records, support
from partnerkit._build import builder
from partnerkit.audit import AuditEvent
from partnerkit.errors import ValidationError
from partnerkit.links import LinkKind
from partnerkit.offers import Redemption, Subscription, SubscriptionStatus
from partnerkit.records import CustomerRelation, LinkRecord, RedemptionRecord

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _classes() -> list[type]:
    found = []
    for module in (audit, consent, directory, offers, records, support):
        for value in vars(module).values():
            if isinstance(value, type) and attrs.has(value) and value.__module__ == module.__name__:
                found.append(value)
    return found


def test_the_classes_a_redemption_makes_are_built_plainly() -> None:
    """The point of the builders: a class on the redemption's path that gains a converter,
    a factory default or a hook falls back to its own ``__init__`` (still right, slower),
    and this says so."""
    for cls in (LinkRecord, RedemptionRecord, CustomerRelation, Subscription, AuditEvent):
        assert builder(cls) is not cls, cls
        assert builder(cls) is builder(cls)  # made once
    assert builder(Redemption) is not Redemption


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_every_domain_class_is_built_or_given_back(cls: type) -> None:
    build = builder(cls)
    assert build is cls or (callable(build) and build.__name__ == "build")


def test_same_objects_as_the_classes_make() -> None:
    cases = [
        (
            LinkRecord,
            (
                "lnk_1",
                LinkKind.PURCHASE_OFFER,
                "cmp_p",
                "PA-1",
                "off_1",
                False,
                None,
                "usr_1",
                NOW,
                NOW,
            ),
            {"uses": 2},
        ),
        (RedemptionRecord, ("lnk_1:cmp_c", "lnk_1", "cmp_c", ("sub_1",), None, "usr_1", NOW), {}),
        (
            CustomerRelation,
            ("cmp_p:cmp_c", "cmp_p", "cmp_c", "acme", "acme.example"),
            {"advises": True},
        ),
        (
            Subscription,
            ("sub_1", "cmp_c", "INTUNE", 5, SubscriptionStatus.ACTIVE, "cmp_p", "PA-1", NOW),
            {"source_link_id": "lnk_1"},
        ),
    ]
    for cls, args, kwargs in cases:
        made, built = cls(*args, **kwargs), builder(cls)(*args, **kwargs)
        assert builder(cls) is not cls
        assert type(built) is cls
        assert built == made
        assert attrs.asdict(built, recurse=False) == attrs.asdict(made, recurse=False)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            built.id = "x"  # type: ignore[misc]
        with pytest.raises(TypeError):
            builder(cls)(*args, no_such_field=1)


def test_validators_run_as_attrs_runs_them() -> None:
    args = ("sub_1", "cmp_c", "INTUNE", 0, SubscriptionStatus.ACTIVE, "cmp_p", "PA-1", NOW)
    with pytest.raises(ValidationError) as made:
        Subscription(*args)
    with pytest.raises(ValidationError) as built:
        builder(Subscription)(*args)
    assert str(built.value) == str(made.value)
    with attrs.validators.disabled():
        assert builder(Subscription)(*args) == Subscription(*args)


def test_a_class_it_cannot_build_exactly_is_given_back() -> None:
    @attrs.frozen
    class Converted:
        x: int = attrs.field(converter=int)

    @attrs.frozen
    class PostInit:
        x: int

        def __attrs_post_init__(self) -> None:
            pass

    @attrs.frozen
    class Factory:
        x: list[int] = attrs.Factory(list)

    @attrs.frozen(slots=False)
    class Dicted:
        x: int

    @attrs.frozen(cache_hash=True)
    class CachedHash:
        x: int

    class Meta(type):
        pass

    @attrs.frozen
    class Metered(metaclass=Meta):
        x: int

    made_subclasses: list[str] = []

    class Hooked:
        __slots__ = ()

        def __init_subclass__(cls) -> None:
            made_subclasses.append(cls.__name__)

    @attrs.frozen
    class Final(Hooked):
        x: int

    for cls in (Converted, PostInit, Factory, Dicted, CachedHash, Metered, Final):
        assert builder(cls) is cls
    assert not any(name.startswith("_Unfrozen") for name in made_subclasses)


def test_a_field_may_bear_any_name_the_generated_code_used_to() -> None:
    @attrs.frozen
    class Odd:
        obj: str
        twin: str = "t"
        cls: str = "c"
        disabled: bool = False
        v0: int = attrs.field(default=0, validator=attrs.validators.instance_of(int))
        a0: str = "a"
        build: str = "b"

    made = Odd("o")
    built = builder(Odd)("o")
    assert builder(Odd) is not Odd
    assert type(built) is Odd
    assert built == made
    assert built.obj == "o"
    with pytest.raises(TypeError):
        builder(Odd)("o", v0="not an int")
