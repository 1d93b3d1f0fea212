"""The `keys` and `link` subcommands: key files, JWKS output, inspecting links, exit codes."""

from __future__ import annotations

import argparse
import base64
import json
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from partnerkit._cli_links import (
    EXIT_EXPIRED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_REVOKED,
    EXIT_USAGE,
    add_keys_parser,
    add_link_parser,
)
from partnerkit.links import ED25519, HMAC_SHA256, Keyring, LinkKind, build_url


def run(*argv: str | Path) -> int:
    """Parse argv with a parser holding only these subcommands and call the handler."""
    parser = argparse.ArgumentParser(prog="partnerkit")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_keys_parser(subparsers)
    add_link_parser(subparsers)
    args = parser.parse_args([str(arg) for arg in argv])
    result: int = args.func(args)
    return result


def secrets_in(path: Path) -> list[str]:
    """The secrets of a key file, in the encodings a leak could take."""
    found = []
    for key in json.loads(path.read_text())["keys"]:
        raw = base64.urlsafe_b64decode(key["secret"] + "=" * (-len(key["secret"]) % 4))
        found += [key["secret"], raw.hex(), base64.b64encode(raw).decode().rstrip("=")]
    return found


def output(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    return captured.out + captured.err


def issue_url(path: Path, *, issued_at: datetime, days: int = 30) -> str:
    ring = Keyring.from_json(path.read_text())
    code, _ = ring.issue(
        LinkKind.TRIAL_INVITATION,
        link_id="lnk-7",
        advisor_id="ADV-7",
        target="EXCHANGE",
        includes_delegated_admin=True,
        issued_at=issued_at,
        expires_at=issued_at + timedelta(days=days),
    )
    return build_url("https://portal.example/join?lang=en", code)


@pytest.fixture
def key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """An HMAC key file made by `keys new`."""
    path = tmp_path / "keys.json"
    assert run("keys", "new", "--out", path) == EXIT_OK
    capsys.readouterr()
    return path


@pytest.fixture
def ed_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """An Ed25519 key file made by `keys new --ed25519`."""
    path = tmp_path / "ed.json"
    assert run("keys", "new", "--ed25519", "--out", path) == EXIT_OK
    capsys.readouterr()
    return path


class TestKeys:
    """keys new, rotate and public."""

    @pytest.mark.parametrize(("flag", "algorithm"), [((), HMAC_SHA256), (("--ed25519",), ED25519)])
    def test_keys_new_writes_a_private_key_ring_and_prints_only_its_id(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        flag: tuple[str, ...],
        algorithm: str,
    ) -> None:
        """The file is a loadable ring, readable by its owner only; no secret is printed."""
        path = tmp_path / "keys.json"
        assert run("keys", "new", *flag, "--out", path) == EXIT_OK
        ring = Keyring.from_json(path.read_text())
        assert ring.algorithm == algorithm
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        printed = output(capsys)
        assert ring.active_key_id in printed
        assert not any(secret in printed for secret in secrets_in(path))

    def test_keys_new_never_overwrites_an_existing_file(
        self, key_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An existing key ring is precious: exit 1 and the file is unchanged."""
        before = key_file.read_text()
        assert run("keys", "new", "--out", key_file) == EXIT_USAGE
        assert key_file.read_text() == before
        assert "exists" in capsys.readouterr().err

    def test_keys_new_into_a_missing_directory_fails_cleanly(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An unwritable path is exit 1 with a message, not a traceback."""
        assert run("keys", "new", "--out", tmp_path / "missing" / "k.json") == EXIT_USAGE
        assert "cannot write" in capsys.readouterr().err

    def test_keys_rotate_adds_a_signing_key_and_keeps_the_file_private(
        self, key_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The new key signs, the old one still verifies, the file stays 0600."""
        old = Keyring.from_json(key_file.read_text())
        old_url = issue_url(key_file, issued_at=datetime.now(UTC))
        assert run("keys", "rotate", key_file) == EXIT_OK
        ring = Keyring.from_json(key_file.read_text())
        assert ring.key_ids[0] == old.active_key_id
        assert len(ring.key_ids) == 2
        assert ring.active_key_id in output(capsys)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert run("link", "inspect", old_url, "--keys", key_file) == EXIT_OK
        assert list(key_file.parent.iterdir()) == [key_file]

    @pytest.mark.parametrize("action", [("rotate",), ("activate", "kid"), ("remove", "kid")])
    def test_changing_a_missing_ring_says_it_cannot_be_read(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], action: tuple[str, ...]
    ) -> None:
        """A ring file that is not there is exit 1, named as unreadable, and not created."""
        missing = tmp_path / "missing.json"
        assert run("keys", action[0], missing, *action[1:]) == EXIT_USAGE
        assert f"cannot read {str(missing)!r}" in capsys.readouterr().err
        assert not missing.exists()

    def test_keys_rotate_staged_then_activate(
        self, key_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--staged`` adds a key that does not sign; ``keys activate`` makes it sign; an
        unknown key id is exit 1 and changes nothing."""
        old = Keyring.from_json(key_file.read_text()).active_key_id
        assert run("keys", "rotate", "--staged", key_file) == EXIT_OK
        ring = Keyring.from_json(key_file.read_text())
        staged = ring.key_ids[1]
        assert (ring.active_key_id, len(ring.key_ids)) == (old, 2)
        assert f"staged key {staged}" in output(capsys)
        before = key_file.read_text()
        assert run("keys", "activate", key_file, "nope") == EXIT_USAGE
        assert "not changed" in capsys.readouterr().err
        assert key_file.read_text() == before
        assert run("keys", "activate", key_file, staged) == EXIT_OK
        assert Keyring.from_json(key_file.read_text()).active_key_id == staged
        assert f"signing key {staged}" in output(capsys)
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    def test_keys_public_prints_a_jwks_that_pyjwt_verifies_links_with(
        self, ed_key_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The printed JWK Set holds the public keys and no secret."""
        assert run("keys", "public", ed_key_file) == EXIT_OK
        printed = capsys.readouterr().out
        assert not any(secret in printed for secret in secrets_in(ed_key_file))
        jwks = json.loads(printed)
        url = issue_url(ed_key_file, issued_at=datetime.now(UTC))
        code = url.split("code=")[1]
        key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(code)["kid"]]
        assert jwt.decode(code, key.key, algorithms=["EdDSA"])["jti"] == "lnk-7"

    def test_keys_public_of_an_hmac_ring_is_an_error(
        self, key_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An HMAC ring has no public keys: exit 1 and a hint."""
        assert run("keys", "public", key_file) == EXIT_USAGE
        assert "--ed25519" in capsys.readouterr().err

    @pytest.mark.parametrize("command", [("keys", "rotate"), ("keys", "public")])
    @pytest.mark.parametrize("content", [None, "not json", '{"format": 1}', "\udcff"])
    def test_missing_or_corrupt_key_files_are_exit_1_without_a_traceback(
        self,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        command: tuple[str, str],
        content: str | None,
    ) -> None:
        """Unreadable, non-JSON or incomplete key files are reported, not raised."""
        path = tmp_path / "keys.json"
        if content is not None:
            path.write_bytes(content.encode("utf-8", "surrogateescape"))
        assert run(*command, path) == EXIT_USAGE
        assert "partnerkit:" in capsys.readouterr().err


class TestLinkInspect:
    """link inspect URL --keys FILE [--json]: exit 0 valid, 2 invalid, 3 expired."""

    @pytest.mark.parametrize("file_fixture", ["key_file", "ed_key_file"])
    def test_a_valid_link_prints_its_claims_as_text(
        self,
        file_fixture: str,
        request: pytest.FixtureRequest,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Exit 0 and every claim, but no secret."""
        path: Path = request.getfixturevalue(file_fixture)
        issued = datetime.now(UTC).replace(microsecond=0)
        url = issue_url(path, issued_at=issued)
        assert run("link", "inspect", url, "--keys", path) == EXIT_OK
        printed = output(capsys)
        assert "status: valid" in printed
        for expected in ("trial_invitation", "lnk-7", "ADV-7", "EXCHANGE", "true"):
            assert expected in printed
        assert issued.isoformat().replace("+00:00", "Z") in printed
        assert not any(secret in printed for secret in secrets_in(path))

    def test_a_valid_link_prints_its_claims_as_json(
        self, key_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--json prints the claims as one JSON document."""
        issued = datetime.now(UTC).replace(microsecond=0)
        url = issue_url(key_file, issued_at=issued)
        assert run("link", "inspect", url, "--keys", key_file, "--json") == EXIT_OK
        document = json.loads(capsys.readouterr().out)
        ring = Keyring.from_json(key_file.read_text())
        assert document == {
            "status": "valid",
            "store_checked": False,
            "claims": {
                "version": 1,
                "kind": "trial_invitation",
                "link_id": "lnk-7",
                "advisor_id": "ADV-7",
                "target": "EXCHANGE",
                "includes_delegated_admin": True,
                "issued_at": issued.isoformat().replace("+00:00", "Z"),
                "expires_at": (issued + timedelta(days=30)).isoformat().replace("+00:00", "Z"),
                "key_id": ring.active_key_id,
            },
        }

    def test_a_bare_code_is_inspected_like_a_link(
        self, key_file: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The code alone, without the URL around it, works too."""
        code = issue_url(key_file, issued_at=datetime.now(UTC)).split("code=")[1]
        assert run("link", "inspect", code, "--keys", key_file) == EXIT_OK
        assert "lnk-7" in capsys.readouterr().out

    @pytest.mark.parametrize("as_json", [False, True])
    def test_an_invalid_link_is_exit_2(
        self, key_file: Path, capsys: pytest.CaptureFixture[str], as_json: bool
    ) -> None:
        """A tampered link, another ring's link or garbage: exit 2, the fixed message."""
        url = issue_url(key_file, issued_at=datetime.now(UTC))
        other = Keyring.generate()
        foreign_code, _ = other.issue(
            LinkKind.TRIAL_INVITATION,
            link_id="x",
            advisor_id="y",
            target="z",
            includes_delegated_admin=False,
            issued_at=datetime.now(UTC),
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        flags = ["--json"] if as_json else []
        for bad in (url[:-1], url + "A", foreign_code, "https://x.example/?code=a&code=b", "x"):
            assert run("link", "inspect", bad, "--keys", key_file, *flags) == EXIT_INVALID
            printed = output(capsys)
            assert "invalid" in printed
            if as_json:
                assert json.loads(printed)["status"] == "invalid"

    @pytest.mark.parametrize("as_json", [False, True])
    def test_an_expired_link_is_exit_3(
        self, key_file: Path, capsys: pytest.CaptureFixture[str], as_json: bool
    ) -> None:
        """A genuine link past its expiry and the clock skew: exit 3."""
        url = issue_url(key_file, issued_at=datetime.now(UTC) - timedelta(days=40), days=30)
        flags = ["--json"] if as_json else []
        assert run("link", "inspect", url, "--keys", key_file, *flags) == EXIT_EXPIRED
        printed = output(capsys)
        assert "expired" in printed
        if as_json:
            assert json.loads(printed)["status"] == "expired"

    def test_a_missing_key_file_is_exit_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Without keys nothing can be verified: exit 1 with a message."""
        assert run("link", "inspect", "x.y.z", "--keys", tmp_path / "none.json") == EXIT_USAGE
        assert "cannot read key file" in capsys.readouterr().err

    def test_subcommands_are_required(self) -> None:
        """`keys` and `link` alone are usage errors from argparse."""
        for argv in (("keys",), ("link",), ("link", "inspect", "x")):
            with pytest.raises(SystemExit) as info:
                run(*argv)
            assert info.value.code == 2


def portal_on(store: Any, keys: Path) -> Any:
    """A Portal on *store*, with the key ring in *keys* and a catalogue of one trial service."""
    from partnerkit import Catalog, Portal, Service, TrialTerms

    return Portal(
        store=store,
        keyring=Keyring.from_json(keys.read_text()),
        catalog=Catalog([Service(sku="EXCHANGE", name="Exchange", trial=TrialTerms(30, 25))]),
    )


def _portal_file(tmp_path: Path) -> tuple[Path, Path]:
    """A portal on a SQLite file with a partner (ana, FULL access) and a key ring file."""
    from partnerkit import ContactInfo
    from partnerkit.stores.sqlite import SQLiteStore

    db, keys = tmp_path / "portal.db", tmp_path / "keys.json"
    assert run("keys", "new", "--out", keys) == EXIT_OK
    store = SQLiteStore(db)
    try:
        portal = portal_on(store, keys)
        portal.register_partner(
            name="Contoso",
            contact=ContactInfo(email="hi@contoso.example"),
            admin_email="ana@contoso.example",
        )
    finally:
        store.close()
    return db, keys


def test_link_new_issues_a_delegated_admin_offer_the_portal_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``link new --delegated-admin`` prints a link that verifies with the key ring and that
    the portal in the file knows (it can be inspected there, with its terms)."""
    from partnerkit import Portal
    from partnerkit.stores.sqlite import SQLiteStore

    db, keys = _portal_file(tmp_path)
    capsys.readouterr()
    code = run(
        "link", "new", "--db", db, "--keys", keys, "--actor", "ANA@contoso.example",
        "--base-url", "https://portal.example/join", "--delegated-admin",
        "--role", "password_admin", "--days", "30", "--max-uses", "3",
    )  # fmt: skip
    assert code == EXIT_OK
    url = capsys.readouterr().out.strip()
    assert url.startswith("https://portal.example/join?code=")
    store = SQLiteStore(db)
    try:
        portal = Portal(store=store, keyring=Keyring.from_json(keys.read_text()))
        claims = portal.inspect_link(url)
        with store.unit_of_work(write=False) as uow:
            record = uow.links.get(claims.link_id)
            terms = uow.delegation_offers.get(claims.target)
    finally:
        store.close()
    assert claims.kind is LinkKind.DELEGATED_ADMIN
    assert record is not None
    assert record.max_uses == 3
    assert terms is not None
    assert terms.duration == timedelta(days=30)
    assert {r.value for r in terms.roles} == {"password_admin"}


def _catalog_file(tmp_path: Path) -> Path:
    """A catalogue file of one service, ``EXCHANGE``, with a trial."""
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        json.dumps({"services": [{"sku": "EXCHANGE", "name": "Exchange", "trial": {"days": 30,
                    "licenses": 25}}]})
    )  # fmt: skip
    return catalog


def test_link_new_issues_a_trial_invitation_with_a_catalogue_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``link new --trial SKU --catalog FILE`` issues a trial link for that service."""
    db, keys = _portal_file(tmp_path)
    catalog = _catalog_file(tmp_path)
    capsys.readouterr()
    code = run(
        "link", "new", "--db", db, "--keys", keys, "--actor", "ana@contoso.example",
        "--base-url", "https://portal.example/join", "--trial", "EXCHANGE", "--catalog", catalog,
    )  # fmt: skip
    assert code == EXIT_OK
    url = capsys.readouterr().out.strip()
    assert run("link", "inspect", url, "--keys", keys) == EXIT_OK
    assert "trial_invitation" in capsys.readouterr().out


def test_link_new_gives_a_trials_delegation_the_roles_and_days_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--trial --with-delegated-admin --role R --days N``: the delegation offered with the
    trial asks for R for N days (the options were dropped, and all five roles with no end
    date offered instead)."""
    from partnerkit import Portal
    from partnerkit.stores.sqlite import SQLiteStore

    db, keys = _portal_file(tmp_path)
    catalog = _catalog_file(tmp_path)
    capsys.readouterr()
    code = run(
        "link", "new", "--db", db, "--keys", keys, "--actor", "ana@contoso.example",
        "--base-url", "https://portal.example/join", "--trial", "EXCHANGE", "--catalog", catalog,
        "--with-delegated-admin", "--role", "password_admin", "--days", "5",
    )  # fmt: skip
    assert code == EXIT_OK
    url = capsys.readouterr().out.strip()
    store = SQLiteStore(db)
    try:
        portal = Portal(store=store, keyring=Keyring.from_json(keys.read_text()))
        claims = portal.inspect_link(url)
        with store.unit_of_work(write=False) as uow:
            record = uow.links.get(claims.link_id)
            assert record is not None
            assert record.delegation_offer_id is not None
            terms = uow.delegation_offers.get(record.delegation_offer_id)
    finally:
        store.close()
    assert claims.includes_delegated_admin
    assert terms is not None
    assert {r.value for r in terms.roles} == {"password_admin"}
    assert terms.duration == timedelta(days=5)


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (
            ["--trial", "EXCHANGE", "--role", "password_admin"],
            "--role and --days set a delegation's terms: add --with-delegated-admin",
        ),
        (
            ["--trial", "EXCHANGE", "--days", "5"],
            "--role and --days set a delegation's terms: add --with-delegated-admin",
        ),
        (
            ["--delegated-admin", "--with-delegated-admin"],
            "--with-delegated-admin and --catalog go with --trial",
        ),
        (
            ["--delegated-admin", "--catalog", "catalog.json"],
            "--with-delegated-admin and --catalog go with --trial",
        ),
        # An empty SKU (an unset shell variable) is a trial of no service, not a standalone
        # delegation of all five roles (review of the sixteenth session).
        (["--trial", ""], "service not found: ''"),
    ],
)
def test_link_new_refuses_options_it_would_ignore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], why: str
) -> None:
    db, keys = _portal_file(tmp_path)
    capsys.readouterr()
    code = run("link", "new", "--db", db, "--keys", keys, "--base-url", "https://p.example/j",
               "--actor", "ana@contoso.example", *extra)  # fmt: skip
    assert code == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert why in captured.err


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["--actor", "nobody@contoso.example", "--delegated-admin"], "no user"),
        # Unicode case folding makes this ana's address; partnerkit's comparison does not.
        (["--actor", "ana@conto\u017fo.example", "--delegated-admin"], "no user"),
        (["--actor", "ana@contoso.example", "--trial", "NOPE"], "not found"),
        (["--actor", "ana@contoso.example", "--trial", "NOPE"], "--catalog FILE"),
        (["--actor", "ana@contoso.example", "--delegated-admin", "--days", "0"], "duration"),
        (
            ["--actor", "ana@contoso.example", "--delegated-admin", "--days", "99999999999"],
            "--days",
        ),
        (
            ["--actor", "ana@contoso.example", "--delegated-admin", "--expires-in-days", "9" * 11],
            "--expires-in-days",
        ),
    ],
)
def test_link_new_refuses_what_the_portal_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], why: str
) -> None:
    """An unknown actor, an unknown service or bad terms: exit 1 with the reason, no link."""
    db, keys = _portal_file(tmp_path)
    capsys.readouterr()
    code = run("link", "new", "--db", db, "--keys", keys, "--base-url", "https://p.example/j",
               *extra)  # fmt: skip
    assert code == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert why in captured.err


# -- found in the sixth session's review of the command ---------------------------------------


def _issued(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, str]:
    """A portal file, its key ring, and a delegated-admin link issued through it."""
    db, keys = _portal_file(tmp_path)
    capsys.readouterr()
    argv = ["link", "new", "--db", db, "--keys", keys, "--actor", "ana@contoso.example"]
    argv += ["--base-url", "https://portal.example/join", "--delegated-admin"]
    assert run(*argv) == EXIT_OK
    return db, keys, capsys.readouterr().out.strip()


def test_link_inspect_with_the_portal_file_reports_a_revoked_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the store a revoked link verifies (its signature is good); with ``--db`` the
    command asks the portal, and a revoked link is exit 4. Before, there was no ``--db`` and
    an operator checking a revocation was told the link was valid."""
    from partnerkit import Portal
    from partnerkit.stores.sqlite import SQLiteStore

    db, keys, url = _issued(tmp_path, capsys)
    assert run("link", "inspect", url, "--keys", keys, "--db", db, "--json") == EXIT_OK
    assert json.loads(capsys.readouterr().out)["store_checked"] is True
    store = SQLiteStore(db)
    try:
        portal = Portal(store=store, keyring=Keyring.from_json(keys.read_text()))
        with store.unit_of_work(write=False) as uow:
            (ana,) = uow.users.find(email_key="ana@contoso.example")
        portal.revoke_link(ana, portal.inspect_link(url).link_id)
    finally:
        store.close()
    assert run("link", "inspect", url, "--keys", keys, "--db", db) == EXIT_REVOKED
    assert "status: revoked" in output(capsys)
    assert run("link", "inspect", url, "--keys", keys) == EXIT_OK
    assert "status: valid (store not checked)" in output(capsys)


def _tables(path: Path) -> list[str]:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master"))
    finally:
        conn.close()


@pytest.mark.parametrize("command", ["new", "inspect"])
def test_link_commands_never_write_into_another_applications_database(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """``link new --db`` migrated any SQLite file it was given (16 tables added) before it
    found no user there; it refuses a file that is not a partnerkit database, as the demo
    does, and ``link inspect --db`` likewise."""
    import sqlite3

    crm = tmp_path / "crm.db"
    conn = sqlite3.connect(crm)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.commit()
    conn.close()
    url = issue_url(key_file, issued_at=datetime.now(UTC))
    argv = {
        "new": (
            "link", "new", "--db", crm, "--keys", key_file, "--actor", "ana@contoso.example",
            "--base-url", "https://portal.example/join", "--delegated-admin",
        ),
        "inspect": ("link", "inspect", url, "--keys", key_file, "--db", crm),
    }[command]  # fmt: skip
    assert run(*argv) == EXIT_USAGE
    assert "not a partnerkit database" in output(capsys)
    assert _tables(crm) == ["contacts"]


def test_keys_rotate_warns_when_others_may_read_the_ring(
    key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ring the portal's group may read keeps its mode, with a warning that names the
    mode (its secrets are open to more than the owner); a ring only its owner reads gets
    none."""
    assert run("keys", "rotate", key_file) == EXIT_OK
    assert "warning" not in capsys.readouterr().err
    key_file.chmod(0o644)
    assert run("keys", "rotate", key_file) == EXIT_OK
    err = capsys.readouterr().err
    assert "warning" in err
    assert "0644" in err
    assert "chmod 600" in err
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o644


@pytest.mark.parametrize("action", ["remove", "activate"])
def test_a_secret_given_for_a_key_id_is_not_printed(
    key_file: Path, capsys: pytest.CaptureFixture[str], action: str
) -> None:
    """``keys remove FILE <secret>``, the secret pasted for the id: refused, and the error
    does not print it (an unknown id that is no secret of the ring is named)."""
    secret = json.loads(key_file.read_text())["keys"][0]["secret"]
    # As pasted: whole, with its padding, with a space or quotes, or cut short.
    for pasted in (secret, secret + "=", f" {secret}", f"'{secret}'", secret[:30]):
        assert run("keys", action, key_file, pasted) == EXIT_USAGE
        shown = output(capsys)
        assert "not found" in shown
        assert not any(leak[:16] in shown for leak in secrets_in(key_file)), pasted
    assert run("keys", action, key_file, "no-such-kid") == EXIT_USAGE
    assert "no-such-kid" in output(capsys)


def test_keys_rotate_keeps_the_files_mode_and_writes_through_a_symlink(
    tmp_path: Path, key_file: Path
) -> None:
    """A ring the portal's group may read stays so, and a link to the ring stays a link to
    the rotated ring (it was replaced by a plain file, the target keeping the old keys)."""
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    real = secret_dir / "ring.json"
    key_file.rename(real)
    real.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert run("keys", "rotate", link) == EXIT_OK
    assert link.is_symlink()
    assert len(Keyring.from_json(real.read_text()).key_ids) == 2
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    assert sorted(p.name for p in secret_dir.iterdir()) == ["ring.json"]


_MAIN = "from partnerkit.cli import main; raise SystemExit(main())"


def _command(*argv: str, **options: Any) -> subprocess.Popen[Any]:
    """The ``partnerkit`` command in a process of its own (this interpreter, no shell)."""
    return subprocess.Popen([sys.executable, "-c", _MAIN, *argv], **options)  # noqa: S603


def test_rotations_at_once_lose_no_key(key_file: Path) -> None:
    """Each rotation read the ring, added a key and replaced the file, with no lock: of eight
    at once, most keys were lost (three of nine kept) though every one was printed."""
    procs = [
        _command("keys", "rotate", str(key_file), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert len(Keyring.from_json(key_file.read_text()).key_ids) == 9


def test_a_key_file_error_never_shows_a_secret_put_where_the_id_belongs(
    tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A secret is also a well-formed key id: with the two swapped, the error quoted it."""
    document = json.loads(key_file.read_text())
    key = document["keys"][0]
    key["kid"], key["secret"] = key["secret"], key["kid"]
    document["active_key_id"] = key["kid"]
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(document))
    assert run("keys", "rotate", swapped) == EXIT_USAGE
    shown = output(capsys)
    assert "not a key ring" in shown
    assert key["kid"] not in shown


def test_a_huge_key_file_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (2 << 20))
    assert run("keys", "public", huge) == EXIT_USAGE
    assert "larger than" in output(capsys)


def test_keys_new_that_cannot_write_leaves_no_file(tmp_path: Path) -> None:
    """A failed write left an empty key file, which refused every later ``keys new``."""
    import resource
    import signal

    def no_room() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    out = tmp_path / "full.json"
    proc = _command(
        "keys", "new", "--out", str(out),
        preexec_fn=no_room, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_USAGE, err
    assert not out.exists()
    assert "Traceback" not in err


def test_a_reader_that_goes_away_gets_no_traceback(ed_key_file: Path) -> None:
    proc = _command(
        "keys", "public", str(ed_key_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    proc.stdout.close()  # as `| true` does
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err
    assert b"BrokenPipeError" not in err


def test_python_dash_m_runs_the_command(tmp_path: Path) -> None:
    """``python -m partnerkit.cli`` did nothing and exited 0."""
    out = tmp_path / "k.json"
    done = subprocess.run(  # noqa: S603 - this interpreter, no shell
        [sys.executable, "-m", "partnerkit.cli", "keys", "new", "--out", str(out)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_OK
    assert Keyring.from_json(out.read_text()).key_ids


def test_the_demo_on_a_path_whose_name_is_not_utf8_tells_its_story(tmp_path: Path) -> None:
    """Printing such a path to a strict UTF-8 output raised ``UnicodeEncodeError`` after
    the database was made; the name's odd bytes are shown as escapes instead."""
    import os

    path = os.fsdecode(os.fsencode(tmp_path) + b"/\xfe.db")
    proc = _command(
        "demo", "--db", path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"},
    )  # fmt: skip
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "\\udcfe.db" in out


def test_keys_remove_retires_a_key_and_its_links_stop_verifying(
    key_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ring rotated from the command line only grew: there was no way to retire a key."""
    old = Keyring.from_json(key_file.read_text()).active_key_id
    old_url = issue_url(key_file, issued_at=datetime.now(UTC))
    assert run("keys", "remove", key_file, old) == EXIT_USAGE  # the active key: rotate first
    assert "rotate first" in output(capsys)
    assert run("keys", "rotate", key_file) == EXIT_OK
    capsys.readouterr()
    assert run("keys", "remove", key_file, old) == EXIT_OK
    assert old not in output(capsys)  # the kept keys are listed, the removed one is not
    assert Keyring.from_json(key_file.read_text()).key_ids == (
        Keyring.from_json(key_file.read_text()).active_key_id,
    )
    assert run("link", "inspect", old_url, "--keys", key_file) == EXIT_INVALID
    assert run("keys", "remove", key_file, "no-such-key") == EXIT_USAGE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_link_inspect_never_upgrades_the_portals_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Opening the file migrated an older schema: inspecting a link upgraded the database
    under the portal that runs on it, which then refused it as newer than it knows."""
    import sqlite3

    db, keys, url = _issued(tmp_path, capsys)
    raw = sqlite3.connect(db)
    raw.execute("DELETE FROM schema_version WHERE version > 1")
    raw.commit()
    raw.close()
    assert run("link", "inspect", url, "--keys", keys, "--db", db) == EXIT_USAGE
    assert "schema version 1" in output(capsys)
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT max(version) FROM schema_version").fetchone() == (1,)
    raw.close()


def test_link_inspect_answers_while_the_portal_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Opening a store took the writers' lock even with nothing to migrate: an inspect
    waited for the portal's writer and failed after the store's timeout."""
    import sqlite3
    import time

    db, keys, url = _issued(tmp_path, capsys)
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        assert run("link", "inspect", url, "--keys", keys, "--db", db) == EXIT_OK
        assert time.monotonic() - started < 5
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_link_that_expires_while_the_portal_is_asked_is_expired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The portal judges the link's times again when asked; an expiry it finds was reported
    as "the portal has no such link" (``LinkExpired`` is an ``InvalidLink``)."""
    from partnerkit._cli_links import _refused_by_portal
    from partnerkit.links import code_from_url

    db, keys, url = _issued(tmp_path, capsys)
    ring = Keyring.from_json(keys.read_text())
    later = datetime.now(UTC) + timedelta(days=400)  # past the link's 90 days
    refused = _refused_by_portal(db, ring, code_from_url(url), False, clock=lambda: later)
    assert refused == EXIT_EXPIRED
    assert "status: expired" in output(capsys)


def test_keys_rotate_into_a_closed_pipe_still_succeeds(key_file: Path) -> None:
    """The ring was rotated, then the line saying so met a closed pipe and the command
    exited 1: a script retrying on failure would rotate twice."""
    proc = _command("keys", "rotate", str(key_file), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_OK, err
    assert len(Keyring.from_json(key_file.read_text()).key_ids) == 2


def test_no_new_key_id_starts_with_a_dash() -> None:
    """A key id that starts with "-" reads as an option on a command line: `keys remove FILE
    -x...` failed with a usage error (a test that removed a random key failed once in 64)."""
    from partnerkit.links import _new_key

    kids = [_new_key(HMAC_SHA256).kid for _ in range(5000)]
    assert not [kid for kid in kids if kid.startswith("-")]
    assert len(set(kids)) == len(kids)


def test_a_key_id_that_starts_with_a_dash_is_given_after_a_double_dash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rings made by an older partnerkit may hold such ids: `--` before them works."""
    secret = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
    keys = [{"kid": "-old", "secret": secret}, {"kid": "kept", "secret": secret}]
    ring = {"format": 1, "algorithm": HMAC_SHA256, "active_key_id": "kept", "keys": keys}
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(ring))
    path.chmod(0o600)
    assert Keyring.from_json(path.read_text()).key_ids == ("-old", "kept")
    assert run("keys", "remove", path, "--", "-old") == EXIT_OK
    assert Keyring.from_json(path.read_text()).key_ids == ("kept",)
    assert "-old" not in output(capsys)
