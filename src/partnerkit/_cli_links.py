"""The ``keys`` and ``link`` subcommands of the ``partnerkit`` command.

``keys new [--ed25519] --out FILE`` writes a new key ring (mode 0600, never over an existing
file); ``keys rotate FILE [--staged]`` adds a signing key to it (a staged one verifies only,
until ``keys activate FILE KID``); ``keys remove FILE KID`` removes a retired one;
``keys public FILE`` prints its public keys as a JWK Set. ``link inspect URL --keys FILE
[--db PATH] [--json]`` verifies a link (or a bare code) and prints its claims, and with the
portal's SQLite file whether it was revoked or used up; ``link new --db PATH --keys FILE
--actor EMAIL ...`` issues one through the Portal of a SQLite file. Exit codes: 0 success (a
valid link), 1 an unusable key file or argument, 2 an invalid link (or a command line
argparse refused), 3 an expired link, 4 a link revoked or used up. No secret is ever printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from partnerkit.cli import path_argument, write_new_file
from partnerkit.directory import email_key
from partnerkit.errors import (
    InvalidLink,
    LinkExhausted,
    LinkExpired,
    LinkRevoked,
    NotFound,
    PartnerKitError,
    ValidationError,
)
from partnerkit.links import (
    ED25519,
    FILE_NAME_HINT,
    HMAC_SHA256,
    Keyring,
    LinkClaims,
    build_url,
    code_from_url,
)
from partnerkit.roles import AdminRole

__all__ = [
    "EXIT_EXPIRED",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_REVOKED",
    "EXIT_USAGE",
    "add_keys_parser",
    "add_link_parser",
]

#: The command did what was asked; for ``link inspect``: the link is valid.
EXIT_OK = 0
#: The key file or an argument is unusable.
EXIT_USAGE = 1
#: ``link inspect``: the link is not valid.
EXIT_INVALID = 2
#: ``link inspect``: the link's signature is valid but it expired.
EXIT_EXPIRED = 3
#: ``link inspect --db``: the link is valid but the portal revoked it or its uses are spent.
EXIT_REVOKED = 4
#: A key ring file is a few kilobytes; one far larger is not read.
MAX_KEY_FILE_BYTES = 1 << 20


def add_keys_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``keys new``, ``rotate``, ``activate``, ``remove`` and ``public`` on
    ``subparsers``.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The ``keys`` parser; each leaf sets ``func=handler(args) -> int``.
    """
    keys: argparse.ArgumentParser = subparsers.add_parser(
        "keys", help="create, rotate and publish link-signing keys"
    )
    actions = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)

    new = actions.add_parser("new", help="write a new key ring to a file (mode 0600)")
    new.add_argument(
        "--ed25519",
        action="store_true",
        help="public-key links that storefronts verify without the secret (default: HMAC)",
    )
    new.add_argument(
        "--out", required=True, type=path_argument, metavar="FILE", help="must not exist"
    )
    new.set_defaults(func=_keys_new)

    rotate = actions.add_parser(
        "rotate",
        help="add a new signing key; older keys still verify",
        description="Add a new key to the ring in FILE; it signs from now on. With several "
        "app servers, use --staged: the key then only verifies, until 'keys activate' makes "
        "it sign, once every server has loaded the ring with it.",
    )
    rotate.add_argument("file", type=path_argument, metavar="FILE")
    rotate.add_argument(
        "--staged", action="store_true", help="add the key without letting it sign yet"
    )
    rotate.set_defaults(func=_keys_rotate)

    activate = actions.add_parser(
        "activate",
        help="make a key of the ring the one that signs",
        description="Make the key KID of the ring in FILE sign new links (a key added with "
        "'keys rotate --staged', or an older one again). Every key keeps verifying.",
    )
    activate.add_argument("file", type=path_argument, metavar="FILE")
    activate.add_argument("kid", metavar="KID", help="the key's id, as 'keys rotate' printed it")
    activate.set_defaults(func=_keys_activate)

    remove = actions.add_parser(
        "remove",
        help="remove a retired key: links it signed stop verifying at once",
        description="Remove the key KID from the ring in FILE (never the active one: rotate "
        "first). Links that key signed stop verifying as soon as the portal loads the ring.",
    )
    remove.add_argument("file", type=path_argument, metavar="FILE")
    remove.add_argument("kid", metavar="KID", help="the key's id, as 'keys rotate' printed it")
    remove.set_defaults(func=_keys_remove)

    public = actions.add_parser("public", help="print the public keys as a JWK Set (Ed25519)")
    public.add_argument("file", type=path_argument, metavar="FILE")
    public.set_defaults(func=_keys_public)
    return keys


def add_link_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``link inspect URL --keys FILE [--json]`` on ``subparsers``.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers()`` returned.

    Returns:
        The ``link`` parser; its leaf sets ``func=handler(args) -> int``.
    """
    link: argparse.ArgumentParser = subparsers.add_parser(
        "link", help="issue and inspect signed links"
    )
    actions = link.add_subparsers(dest="link_command", metavar="COMMAND", required=True)
    inspect = actions.add_parser(
        "inspect",
        help="verify a link and print its claims (exit 0 valid, 2 invalid, 3 expired, "
        "4 revoked or used up)",
        description="Verify a link's signature and times and print its claims. Revocation "
        "and max-uses live in the portal's store: give its SQLite file with --db to check "
        "them too; without it, a revoked link is reported valid.",
    )
    inspect.add_argument("url", metavar="URL", help="a link, or the bare code of one")
    inspect.add_argument(
        "--keys", required=True, type=path_argument, metavar="FILE", help="key ring"
    )
    inspect.add_argument(
        "--db",
        type=path_argument,
        metavar="PATH",
        help="the portal's SQLite file (checks revocation)",
    )
    inspect.add_argument("--json", action="store_true", help="print the claims as JSON")
    inspect.set_defaults(func=_link_inspect)

    new = actions.add_parser(
        "new",
        help="issue a link as a partner user of a portal kept in a SQLite file",
        description="Issue a trial invitation or a standalone delegated-admin offer through "
        "the Portal, as the partner user with e-mail ACTOR, so that the link is recorded in "
        "the portal's store (and can be redeemed and revoked there). Prints the URL.",
    )
    new.add_argument(
        "--db", required=True, type=path_argument, metavar="PATH", help="the SQLite file"
    )
    new.add_argument("--keys", required=True, type=path_argument, metavar="FILE", help="key ring")
    new.add_argument("--actor", required=True, metavar="EMAIL", help="the partner user")
    new.add_argument("--base-url", required=True, metavar="URL", help="the page links open")
    what = new.add_mutually_exclusive_group(required=True)
    what.add_argument("--trial", metavar="SKU", help="a trial invitation for this service")
    what.add_argument(
        "--delegated-admin", action="store_true", help="a standalone delegated-admin offer"
    )
    new.add_argument(
        "--catalog", type=path_argument, metavar="FILE", help="the catalogue as JSON (for --trial)"
    )
    new.add_argument(
        "--role",
        action="append",
        choices=[role.value for role in AdminRole],
        help="a role the delegation grants (repeat; default all five); with --delegated-admin "
        "or --with-delegated-admin",
    )
    new.add_argument(
        "--days",
        type=int,
        help="the delegation's duration in days (default: no end date); with "
        "--delegated-admin or --with-delegated-admin",
    )
    new.add_argument(
        "--with-delegated-admin", action="store_true", help="--trial: offer delegated admin too"
    )
    new.add_argument("--expires-in-days", type=int, help="the link's lifetime (default 90)")
    new.add_argument("--max-uses", type=int, help="how many customers may redeem it")
    new.set_defaults(func=_link_new)
    return link


def _error(message: str) -> None:
    print(f"partnerkit: {message}", file=sys.stderr)


def _load(path: Path) -> Keyring | None:
    """The ring in ``path``, or None after telling why not (without its contents)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_KEY_FILE_BYTES + 1)
        if len(data) > MAX_KEY_FILE_BYTES:
            _error(f"{str(path)!r} is not a key ring: larger than {MAX_KEY_FILE_BYTES} bytes")
            return None
        text = data.decode("utf-8")
    except (OSError, UnicodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "unreadable"
        _error(f"cannot read key file {str(path)!r}: {reason}")
        return None
    try:
        return Keyring.from_json(text)
    except ValidationError as error:
        # Here the file's name is what is given: the hint for a caller of the API is not ours.
        _error(f"{str(path)!r} is not a key ring: {str(error).removesuffix(FILE_NAME_HINT)}")
        return None


def _replace(path: Path, text: str) -> None:
    """Replace the file ``path`` is (a symlink's target) atomically with one holding
    ``text``, with the old file's mode, owner and group (as far as this process may set
    them), so that whoever could read the ring still can."""
    target = Path(os.path.realpath(path))
    old = target.stat()
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", text=True
    )
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        if hasattr(os, "chown"):  # POSIX: Windows keeps no owner and group to carry over
            try:
                os.chown(temporary, old.st_uid, old.st_gid)
            except PermissionError:
                # Another user's file: the owner cannot be kept, the group often can (a
                # member of it may give a file to it), and it is the group that reads it.
                with contextlib.suppress(PermissionError):
                    os.chown(temporary, -1, old.st_gid)
        os.chmod(temporary, stat.S_IMODE(old.st_mode))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock for changing the key ring at ``path``: two rotations at once
    would each write the ring as they read it, and one key be lost.

    The lock is on the ring file itself (no lock file is left behind, and nothing more is
    asked of its directory than replacing the file asks). The ring is replaced, not written
    in place, so a lock won on a file that a finished change has replaced since is let go,
    and the new file locked instead.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no advisory locks on this platform
        yield
        return
    while True:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            held, now = os.fstat(descriptor), os.stat(path)
            if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                break
        except BaseException:
            os.close(descriptor)
            raise
        os.close(descriptor)  # replaced while we waited: lock the file that is there now
    try:
        yield
    finally:
        os.close(descriptor)


def _keys_new(args: argparse.Namespace) -> int:
    ring = Keyring.generate(ED25519 if args.ed25519 else HMAC_SHA256)
    try:
        write_new_file(args.out, ring.to_json())
    except FileExistsError:
        _error(f"{str(args.out)!r} exists; not overwriting a key ring")
        return EXIT_USAGE
    except OSError as error:
        _error(f"cannot write {str(args.out)!r}: {error.strerror}")
        return EXIT_USAGE
    print(f"wrote {ring.algorithm} key ring {str(args.out)!r}, key id {ring.active_key_id}")
    return EXIT_OK


def _keys_rotate(args: argparse.Namespace) -> int:
    def rotate(ring: Keyring) -> str:
        kid = ring.rotate(activate=not args.staged)
        what = "staged key" if args.staged else "new signing key"
        return f"{what} {kid}; keys: {', '.join(ring.key_ids)}; signing: {ring.active_key_id}"

    return _change_ring(args.file, rotate)


def _keys_activate(args: argparse.Namespace) -> int:
    def activate(ring: Keyring) -> str:
        ring.activate(args.kid)
        return f"signing key {ring.active_key_id}; keys: {', '.join(ring.key_ids)}"

    return _change_ring(args.file, activate)


def _keys_remove(args: argparse.Namespace) -> int:
    def remove(ring: Keyring) -> str:
        ring.remove(args.kid)
        return f"removed a key; keys: {', '.join(ring.key_ids)}"

    return _change_ring(args.file, remove)


def _change_ring(path: Path, change: Callable[[Keyring], str]) -> int:
    """Read the ring at *path*, *change* it and write it back, all under the ring's lock;
    print what *change* says. A change the ring refuses writes nothing."""
    verb = "read"  # until the ring is read and changed, an OSError is the reading's
    try:
        with _locked(path):
            ring = _load(path)
            if ring is None:
                return EXIT_USAGE
            try:
                said = change(ring)
            except PartnerKitError as error:
                _error(f"key ring {str(path)!r} not changed: {error}")
                return EXIT_USAGE
            verb = "write"
            _replace(path, ring.to_json())
            verb = "read"
            mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as error:
        _error(f"cannot {verb} {str(path)!r}: {error.strerror}")
        return EXIT_USAGE
    if mode & 0o077:
        # The file keeps its mode (an operator's choice); its secrets are said to be open.
        print(
            f"partnerkit: warning: the key ring {str(path)!r} holds secrets and others may "
            f"read it (mode {mode:04o}): chmod 600 it",
            file=sys.stderr,
        )
    try:
        print(said, flush=True)
    except BrokenPipeError:
        # The ring is changed: that is the answer, whether or not anyone read this line
        # (a script retrying on failure would change it twice).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK


def _keys_public(args: argparse.Namespace) -> int:
    ring = _load(args.file)
    if ring is None:
        return EXIT_USAGE
    try:
        jwks = ring.public_jwks()
    except ValidationError:
        _error("an HMAC key ring has no public keys; create one with 'keys new --ed25519'")
        return EXIT_USAGE
    print(json.dumps(jwks, indent=2))
    return EXIT_OK


def _claims_document(claims: LinkClaims) -> dict[str, Any]:
    return {
        "version": claims.version,
        "kind": claims.kind.value,
        "link_id": claims.link_id,
        "advisor_id": claims.advisor_id,
        "target": claims.target,
        "includes_delegated_admin": claims.includes_delegated_admin,
        "issued_at": claims.issued_at.isoformat().replace("+00:00", "Z"),
        "expires_at": claims.expires_at.isoformat().replace("+00:00", "Z"),
        "key_id": claims.key_id,
    }


def _link_inspect(args: argparse.Namespace) -> int:
    ring = _load(args.keys)
    if ring is None:
        return EXIT_USAGE
    url: str = args.url
    try:
        code = code_from_url(url) if "?" in url else url
        claims = ring.verify(code)
    except LinkExpired:
        _report(args.json, "expired", "link expired")
        return EXIT_EXPIRED
    except InvalidLink:
        _report(args.json, "invalid", InvalidLink.FIXED_MESSAGE)
        return EXIT_INVALID
    if args.db is not None:
        refused = _refused_by_portal(args.db, ring, code, args.json)
        if refused is not None:
            return refused
    document = _claims_document(claims)
    if args.json:
        print(
            json.dumps(
                {"status": "valid", "store_checked": args.db is not None, "claims": document},
                indent=2,
            )
        )
    else:
        print("status: valid" if args.db is not None else "status: valid (store not checked)")
        width = max(map(len, document))
        for name, value in document.items():
            shown = str(value).lower() if isinstance(value, bool) else value
            print(f"{name + ':':<{width + 1}} {shown}")
    return EXIT_OK


def _portal_store(path: Path, *, migrate: bool = True) -> Any:
    """The ``SQLiteStore`` of the portal database at *path*, or ``None`` after telling why
    not: a missing file, or one that is not a partnerkit database (never written to); and,
    unless it may *migrate*, one whose schema is not this partnerkit's (opening it would
    upgrade it under the portal that runs on it)."""
    from partnerkit.cli import _is_partnerkit_db
    from partnerkit.stores.sqlite import SCHEMA_VERSION, SQLiteStore

    if not path.is_file():
        _error(f"no portal database at {str(path)!r}")
        return None
    try:
        ours = _is_partnerkit_db(path)
    except OSError as error:
        _error(f"cannot read {str(path)!r}: {error.strerror or error}")
        return None
    if not ours:
        _error(f"{str(path)!r} is not a partnerkit database; not touching it")
        return None
    if not migrate:
        version = _schema_version(path)
        if version != SCHEMA_VERSION:
            _error(
                f"{str(path)!r} has schema version {version}, this partnerkit "
                f"{SCHEMA_VERSION}: inspect it with the partnerkit its portal runs"
            )
            return None
    try:
        return SQLiteStore(path)
    except PartnerKitError as error:
        _error(str(error))
        return None


def _schema_version(path: Path) -> int | None:
    """The schema version recorded in the partnerkit database at *path* (read only)."""
    import sqlite3

    from partnerkit.cli import _read_only

    try:
        ((version,),) = _read_only(path, "SELECT max(version) FROM schema_version")
    except sqlite3.Error:
        return None
    return int(version) if version is not None else None


def _refused_by_portal(
    path: Path,
    ring: Keyring,
    code: str,
    as_json: bool,
    clock: Callable[[], datetime] | None = None,
) -> int | None:
    """Ask the portal at *path* about a link whose signature and times verified: ``None``
    when it stands there, else the exit code after saying why (revoked or spent; expired
    by the time the portal judged it; unknown to that portal; or the file unusable). The
    portal reads *clock* (default: the real one)."""
    from partnerkit.portal import Portal

    store = _portal_store(path, migrate=False)
    if store is None:
        return EXIT_USAGE
    try:
        portal = Portal(store=store, keyring=ring, clock=clock)
        portal.inspect_link(build_url("https://portal.invalid/", code))
    except (LinkRevoked, LinkExhausted) as error:
        _report(as_json, "revoked", str(error))
        return EXIT_REVOKED
    except LinkExpired:  # expired while the portal's file was opened
        _report(as_json, "expired", "link expired")
        return EXIT_EXPIRED
    except InvalidLink:
        _report(as_json, "invalid", "the portal has no such link")
        return EXIT_INVALID
    except PartnerKitError as error:
        _error(str(error))
        return EXIT_USAGE
    finally:
        store.close()
    return None


def _link_new(args: argparse.Namespace) -> int:
    # Imported here: the key commands work without the rest of the package's machinery.
    from partnerkit.offers import Catalog
    from partnerkit.portal import Portal

    # Options that would be ignored are refused: a delegation asked for with a role or an
    # end date must not be offered with all five roles and none.
    trial = args.trial is not None  # by presence: an empty SKU is the catalogue's to refuse
    if not trial and (args.with_delegated_admin or args.catalog is not None):
        _error("--with-delegated-admin and --catalog go with --trial")
        return EXIT_USAGE
    if trial and not args.with_delegated_admin and (args.role or args.days is not None):
        _error("--role and --days set a delegation's terms: add --with-delegated-admin")
        return EXIT_USAGE
    ring = _load(args.keys)
    if ring is None:
        return EXIT_USAGE
    try:
        catalog = Catalog.from_json(args.catalog.read_text("utf-8")) if args.catalog else None
    except (OSError, UnicodeError) as error:
        _error(f"cannot read {str(args.catalog)!r}: {error}")
        return EXIT_USAGE
    except PartnerKitError as error:
        _error(str(error))
        return EXIT_USAGE
    store = _portal_store(args.db)
    if store is None:
        return EXIT_USAGE
    try:
        portal = Portal(store=store, keyring=ring, catalog=catalog, base_url=args.base_url)
        with store.unit_of_work(write=False) as uow:
            found = uow.users.find(email_key=email_key(args.actor))
        if not found:
            _error(f"no user with e-mail {args.actor!r}")
            return EXIT_USAGE
        expires = _days("--expires-in-days", args.expires_in_days)
        roles = None if not args.role else {AdminRole(r) for r in args.role}
        duration = _days("--days", args.days)
        if trial:
            url = portal.create_trial_invitation(
                found[0],
                args.trial,
                args.with_delegated_admin,
                expires_in=expires,
                max_uses=args.max_uses,
                delegation_roles=roles,
                delegation_duration=duration,
            )
        else:
            url = portal.offer_delegated_admin(
                found[0],
                roles=roles,
                duration=duration,
                expires_in=expires,
                max_uses=args.max_uses,
            )
    except NotFound as error:
        missing = trial and not args.catalog
        _error(f"{error} (give the catalogue with --catalog FILE)" if missing else str(error))
        return EXIT_USAGE
    except PartnerKitError as error:
        _error(str(error))
        return EXIT_USAGE
    finally:
        store.close()
    print(url)
    return EXIT_OK


def _report(as_json: bool, status: str, message: str) -> None:
    if as_json:
        print(json.dumps({"status": status, "error": message}, indent=2))
    else:
        print(f"status: {status}")
        _error(message)


def _days(option: str, days: int | None) -> timedelta | None:
    """*days* as a ``timedelta``; a number no ``timedelta`` holds is a usage error, as an
    out-of-range one is (the use case words that one)."""
    if days is None:
        return None
    try:
        return timedelta(days=days)
    except OverflowError:
        raise ValidationError(option, "is far too large a number of days") from None
