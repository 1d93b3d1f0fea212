"""A revocation racing with password resets on a SQLite file: once it commits, no reset does.

Worker threads reset the passwords of a customer's users through the partner's delegation,
as fast as they can, while the main thread revokes the delegation (or the partner ends it) in
the middle of the stream. The order in which the store committed is read back from the audit
trail's sequence numbers, which are assigned inside each unit of work: every successful reset
must come before the revocation, every reset after it must be denied, and every reset that
started after the revocation returned must have been refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from delegation_kit import (
    CustomerCast,
    PartnerCast,
    add_customer,
    add_partner,
    consent,
    make_portal,
)
from partnerkit import Delegation, Forbidden, Portal
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.support import PasswordHasher

WORKERS = 4
USERS = 6
RESETS_BEFORE = 12  # successful resets before the revocation is sent
TRIES_AFTER = 5  # attempts each worker makes once the revocation has returned


@attrs.define
class Attempt:
    """One reset as a worker saw it."""

    user_id: str
    started_after_revocation: bool
    succeeded: bool
    temporary_password: str | None = None


@attrs.frozen
class Race:
    """The outcome of one race."""

    attempts: list[Attempt]
    errors: list[BaseException]
    delegation: Delegation


def _race(
    portal: Portal,
    partner: PartnerCast,
    customer: CustomerCast,
    targets: list[str],
    withdraw: Callable[[Delegation], object],
) -> Race:
    delegation = consent(portal, partner.admin, customer)
    start = threading.Barrier(WORKERS + 1)
    revoked = threading.Event()
    enough = threading.Event()
    lock = threading.Lock()
    attempts: list[Attempt] = []
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        start.wait()
        after = 0
        i = worker
        try:
            while after < TRIES_AFTER:
                user_id = targets[i % len(targets)]
                i += WORKERS
                late = revoked.is_set()
                try:
                    reset = portal.reset_password(partner.limited, customer.company.id, user_id)
                except Forbidden:
                    attempt = Attempt(user_id, late, succeeded=False)
                else:
                    attempt = Attempt(user_id, late, True, reset.temporary_password)
                with lock:
                    attempts.append(attempt)
                    if sum(a.succeeded for a in attempts) >= RESETS_BEFORE:
                        enough.set()
                after += late
        except BaseException as exc:  # reported by the test, not lost in the thread
            with lock:
                errors.append(exc)
            enough.set()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(WORKERS)]
    for thread in threads:
        thread.start()
    start.wait()
    assert enough.wait(timeout=30)
    withdraw(delegation)
    revoked.set()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()
    return Race(attempts, errors, delegation)


@pytest.mark.parametrize("how", ["customer-revokes", "partner-ends"])
def test_no_reset_commits_after_the_delegation_is_withdrawn(tmp_path: Path, how: str) -> None:
    """Resets from four threads race a revocation (or an ending) on one SQLite file: in commit
    order every successful reset precedes it, every later one is denied, and each reset that
    began after it returned was refused."""
    store = SQLiteStore(tmp_path / "race.db")
    try:
        portal = make_portal(store)
        partner = add_partner(portal, "Contoso Partners", "contoso")
        customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=[None])
        targets = [customer.by_role[None].id] + [
            portal.create_user(customer.admin, email=f"u{n}@fabrikam.example", display_name="U").id
            for n in range(USERS - 1)
        ]

        def withdraw(delegation: Delegation) -> object:
            if how == "customer-revokes":
                return portal.revoke_delegation(customer.admin, delegation.id)
            return portal.end_delegation(partner.admin, delegation.id)

        race = _race(portal, partner, customer, targets, withdraw)
        assert race.errors == []

        action = "delegation.revoke" if how == "customer-revokes" else "delegation.end"
        with store.unit_of_work(write=False) as uow:
            events = uow.audit_events()
        [cut] = [e for e in events if e.action == action]
        assert cut.outcome == "success"
        resets = [e for e in events if e.action == "user.reset_password"]
        before = [e for e in resets if e.seq < cut.seq]
        after = [e for e in resets if e.seq > cut.seq]
        assert {e.outcome for e in before} == {"success"}
        assert after
        assert {e.outcome for e in after} == {"denied"}
        assert {e.reason for e in after} == {"no-active-delegation"}

        succeeded = [a for a in race.attempts if a.succeeded]
        assert len(succeeded) == len(before) >= RESETS_BEFORE
        assert len(race.attempts) == len(resets)
        late = [a for a in race.attempts if a.started_after_revocation]
        assert len(late) >= WORKERS * TRIES_AFTER
        assert not any(a.succeeded for a in late)

        # Each user's last committed reset is the one password of theirs the store holds;
        # and since the consent behind it is gone, none of them signs in any more.
        assert portal.verify_audit_trail() == events[-1].seq
        for user_id in {a.user_id for a in succeeded}:
            passwords = [a.temporary_password for a in succeeded if a.user_id == user_id]
            with store.unit_of_work(write=False) as uow:
                stored = uow.credentials.get(user_id)
            assert stored is not None
            assert sum(PasswordHasher.verify(p or "", stored.password_hash) for p in passwords) == 1
            assert not any(portal.verify_password(user_id, p or "") for p in passwords)
    finally:
        store.close()


def test_a_race_is_not_won_by_a_stale_read_of_the_delegation(tmp_path: Path) -> None:
    """The reset's unit of work re-reads the delegation under the write lock: a reset whose
    hashing began before the revocation, and whose transaction began after it, is denied."""
    store = SQLiteStore(tmp_path / "stale.db")
    try:
        portal = make_portal(store)
        partner = add_partner(portal, "Contoso Partners", "contoso")
        customer = add_customer(portal, "Fabrikam", "fabrikam.example", roles=[None])
        delegation = consent(portal, partner.admin, customer)
        hashing = threading.Event()
        proceed = threading.Event()
        real_hash = portal.password_hasher.hash
        real_verify = portal.password_hasher.verify

        class SlowHasher:
            """Holds the reset in its hashing step (before its unit of work) until told."""

            def hash(self, password: str) -> str:
                hashing.set()
                assert proceed.wait(timeout=30)
                return real_hash(password)

            def verify(self, password: str, hashed: str) -> bool:
                return real_verify(password, hashed)

        portal.password_hasher = SlowHasher()  # type: ignore[assignment]
        outcome: list[BaseException | None] = []

        def reset() -> None:
            try:
                portal.reset_password(partner.full, customer.company.id, customer.by_role[None].id)
            except BaseException as exc:
                outcome.append(exc)
            else:
                outcome.append(None)

        worker = threading.Thread(target=reset)
        worker.start()
        assert hashing.wait(timeout=30)
        portal.revoke_delegation(customer.admin, delegation.id)
        proceed.set()
        worker.join(timeout=30)
        [result] = outcome
        assert isinstance(result, Forbidden)
        assert not portal.verify_password(customer.by_role[None].id, "")
    finally:
        store.close()
