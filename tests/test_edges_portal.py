"""Portal and command-line edges a mutation review found untested (seventh session): one
correlation id for one use case, the recorded reason of a link error, and `link inspect` on
padded codes, unissued links and used-up links."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from partnerkit import AuditEvent
from partnerkit.audit import GENESIS_HASH
from partnerkit.links import code_from_url
from partnerkit.testing import DEFAULT_START, World, snapshot
from test_cli_links import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_REVOKED,
    _portal_file,
    issue_url,
    output,
    portal_on,
    run,
)


def test_events_of_one_use_case_share_a_correlation_id_without_a_block(
    partnerkit_world: World,
) -> None:
    # outside correlation(...), one use case's events still share one id.
    world = partnerkit_world
    url = world.portal.offer_delegated_admin(world.partner_admin)
    before = len(snapshot(world.portal.store).audit)
    world.portal.redeem(url, world.customer_admin, accept_delegated_admin=True)
    events = snapshot(world.portal.store).audit[before:]
    assert [e.action for e in events] == ["delegation.offer", "delegation.accept", "link.redeem"]
    assert len({e.correlation_id for e in events}) == 1


def test_detail_pairs_are_sorted() -> None:
    # the documented "sorted string pairs", independent of insertion order.
    kw = {
        "seq": 1,
        "prev_hash": GENESIS_HASH,
        "at": DEFAULT_START,
        "action": "t",
        "outcome": "success",
        "correlation_id": "c",
    }
    e = AuditEvent.chained(detail={"b": 1, "a": 2}, **kw)
    f = AuditEvent.chained(detail={"a": 2, "b": 1}, **kw)
    assert e.detail == (("a", "2"), ("b", "1"))
    assert e.hash == f.hash


def _code(keys: Path) -> str:
    """The code of a day-long link signed by the ring in *keys*, issued now."""
    return code_from_url(issue_url(keys, issued_at=datetime.now(UTC), days=1))


@pytest.mark.parametrize("wrap", [" {}", "{}\n", "{}#x"])
def test_link_inspect_refuses_a_padded_bare_code(tmp_path, capsys, wrap) -> None:
    # a padded code is not the code.
    _, keys = _portal_file(tmp_path)
    code = _code(keys)
    assert run("link", "inspect", code, "--keys", keys) == EXIT_OK
    assert run("link", "inspect", wrap.format(code), "--keys", keys) == EXIT_INVALID


def test_link_inspect_with_db_refuses_a_link_the_portal_never_issued(tmp_path, capsys) -> None:
    # signed by the ring, unknown to the portal file: invalid there, not valid.
    db, keys = _portal_file(tmp_path)
    code = _code(keys)
    assert run("link", "inspect", code, "--keys", keys) == EXIT_OK
    assert run("link", "inspect", code, "--keys", keys, "--db", db) == EXIT_INVALID
    assert "the portal has no such link" in output(capsys)


def test_link_inspect_with_db_reports_a_used_up_link_as_revoked(tmp_path, capsys) -> None:
    # max_uses spent is exit 4, like a revocation.
    from partnerkit.stores.sqlite import SQLiteStore

    db, keys = _portal_file(tmp_path)
    store = SQLiteStore(db)
    try:
        portal = portal_on(store, keys)
        with store.unit_of_work(write=False) as uow:
            (ana,) = uow.users.find(email_key="ana@contoso.example")
        _, admin = portal.register_customer(
            name="Fabrikam", domain="fabrikam.example", admin_email="cy@fabrikam.example"
        )
        url = portal.create_trial_invitation(ana, "EXCHANGE", False, max_uses=1)
        portal.redeem(url, admin)
    finally:
        store.close()
    capsys.readouterr()
    assert run("link", "inspect", url, "--keys", keys, "--db", db) == EXIT_REVOKED
    assert "status: revoked" in output(capsys)


def test_a_failed_redemption_of_an_expired_link_records_the_error_type(
    partnerkit_world: World, partnerkit_clock
) -> None:
    # the reason is the error's type name (fixed vocabulary), not its message.
    from partnerkit.errors import LinkExpired

    world = partnerkit_world
    url = world.portal.offer_delegated_admin(world.partner_admin, expires_in=timedelta(days=1))
    partnerkit_clock.advance(days=2)
    with pytest.raises(LinkExpired):
        world.portal.redeem(url, world.customer_admin)
    event = snapshot(world.portal.store).audit[-1]
    assert (event.action, event.outcome, event.reason) == ("link.redeem", "failed", "LinkExpired")
    assert url not in repr(event)
    assert url.split("code=")[1] not in repr(event)
