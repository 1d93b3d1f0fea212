"""partnerkit's errors survive ``pickle`` and ``copy``, as a worker process hands them back.

``NotFound``, ``ValidationError``, ``Forbidden`` and ``AuditChainBroken`` take several
arguments, and an exception is rebuilt from its ``args`` (its one message) unless it says
otherwise: unpickling one raised ``TypeError``, and a ``ProcessPoolExecutor`` whose worker
raised one broke ("A result has failed to un-serialize").
"""

from __future__ import annotations

import copy
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

import partnerkit
from partnerkit import (
    AdminRole,
    ContactInfo,
    Forbidden,
    NotFound,
    PartnerKitError,
    Portal,
    ValidationError,
)
from partnerkit.audit import AuditChainBroken
from partnerkit.errors import __all__ as error_names
from partnerkit.stores.memory import MemoryStore


def _forbidden() -> Forbidden:
    """A real denial: a password admin asking to edit its company's profile."""
    portal = Portal(store=MemoryStore())
    _, ana = portal.register_partner(
        name="Contoso", contact=ContactInfo(email="hi@contoso.example"), admin_email="a@c.example"
    )
    kim = portal.create_user(
        ana, email="kim@c.example", display_name="Kim", admin_role=AdminRole.PASSWORD_ADMIN
    )
    with pytest.raises(Forbidden) as denied:
        portal.update_profile(kim, contact=ContactInfo(email="x@contoso.example"))
    return denied.value


def _every_error() -> list[PartnerKitError]:
    errors: list[PartnerKitError] = []
    for name in error_names:
        cls = getattr(partnerkit.errors, name)
        if cls is Forbidden:
            errors.append(_forbidden())
        elif cls is NotFound:
            errors.append(NotFound("user", "usr_1"))
        elif issubclass(cls, ValidationError):  # and AlreadyExists, InvalidState
            errors.append(cls("licenses", "must be a whole number"))
        else:
            errors.append(cls("a message"))
    errors.append(AuditChainBroken(7, "hash mismatch"))
    return errors


def _fields(error: BaseException) -> dict[str, Any]:
    return {"type": type(error), "str": str(error), "args": error.args, **vars(error)}


@pytest.mark.parametrize("error", _every_error(), ids=lambda e: type(e).__name__)
def test_every_error_survives_pickle_and_copy_with_its_fields_and_notes(
    error: PartnerKitError,
) -> None:
    error.add_note("the attempt is not in the audit trail")
    for again in (
        pickle.loads(pickle.dumps(error)),  # noqa: S301 - our own bytes
        copy.copy(error),
        copy.deepcopy(error),
    ):
        assert _fields(again) == _fields(error)
        assert again.__notes__ == ["the attempt is not in the audit trail"]


def test_the_list_of_errors_above_is_every_public_one() -> None:
    """A new error class joins the test above (it is taken from ``errors.__all__``)."""
    assert {type(e).__name__ for e in _every_error()} == {*error_names, "AuditChainBroken"}


def _remove_a_user_nobody_has(_: int) -> None:
    portal = Portal(store=MemoryStore())
    _, ana = portal.register_partner(
        name="Contoso", contact=ContactInfo(email="hi@contoso.example"), admin_email="a@c.example"
    )
    portal.remove_user(ana, "usr_nobody")


def test_an_error_raised_in_a_worker_process_reaches_the_parent_as_itself() -> None:
    """The NotFound of removing a user who does not exist, raised in a process pool's
    worker, is the parent's NotFound, fields and all; the pool goes on working."""
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, as on every system
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        with pytest.raises(NotFound) as raised:
            pool.submit(_remove_a_user_nobody_has, 1).result(timeout=120)
        assert (raised.value.kind, raised.value.ident) == ("user", "usr_nobody")
        assert pool.submit(abs, -3).result(timeout=120) == 3
