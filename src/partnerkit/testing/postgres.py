"""A throwaway PostgreSQL server for tests: ``initdb`` in a temporary directory, then ``postgres``.

:class:`PostgresServer` finds the server binaries on ``PATH`` or through ``pg_config --bindir``,
creates a cluster in a fresh temporary directory, starts it on a free local port (and a Unix
socket in that directory), and removes everything again on :meth:`~PostgresServer.stop`.
PostgreSQL refuses to run as root, so a process running as root starts the server as an
unprivileged user (``$PARTNERKIT_PG_USER``, else ``postgres``, else ``nobody``) and hands the
directory to that user. Authentication is ``trust`` on the socket and on 127.0.0.1 only.

>>> with PostgresServer() as server:  # doctest: +SKIP
...     dsn = server.create_database()
...     # PostgresStore(dsn) ...

The server runs without ``fsync`` unless ``durable=True``: the tests prove partnerkit's
behaviour, not the disk's, and an unsynced throwaway cluster starts and writes much faster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pwd

__all__ = [
    "PostgresNotFound",
    "PostgresServer",
    "PostgresStartError",
    "find_bindir",
]

#: The superuser the throwaway cluster is created with.
SUPERUSER = "postgres"
_BINARIES = ("initdb", "postgres")


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries (``initdb``, ``postgres``) were found on this machine."""


class PostgresStartError(RuntimeError):
    """The binaries exist, but the throwaway server did not start; the message has its log."""


def find_bindir() -> Path | None:
    """Return the directory holding ``initdb`` and ``postgres``, or ``None`` if there is none.

    ``PATH`` is searched first, then the directory ``pg_config --bindir`` names.
    """
    found = [shutil.which(name) for name in _BINARIES]
    if all(found):
        dirs = {Path(p).parent for p in found if p is not None}
        if len(dirs) == 1:
            return dirs.pop()
    pg_config = shutil.which("pg_config")
    if pg_config is None:
        return None
    try:
        out = subprocess.run(  # noqa: S603 - a binary found on PATH, no shell, fixed arguments
            [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    bindir = Path(out)
    if all((bindir / name).is_file() for name in _BINARIES):
        return bindir
    return None


def _server_user() -> pwd.struct_passwd | None:
    """The account the server runs as: ``None`` (this one) unless this process is root."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None  # not root, or not POSIX (Windows has no root, nor the pwd module)
    import pwd  # POSIX only: the module itself stays importable everywhere

    wanted = os.environ.get("PARTNERKIT_PG_USER")
    for name in [wanted] if wanted else ["postgres", "nobody"]:
        with contextlib.suppress(KeyError):
            account = pwd.getpwnam(name)
            if account.pw_uid != 0:
                return account
    raise PostgresStartError(
        "running as root, and no unprivileged account to run PostgreSQL as: create a "
        "'postgres' user or name one in PARTNERKIT_PG_USER"
    )


def _reachable_temp_root() -> str:
    """A temporary directory whose every parent other users may traverse."""
    base = Path(tempfile.gettempdir()).resolve()
    for part in (base, *base.parents):
        if not part.stat().st_mode & 0o001:
            return "/tmp"  # noqa: S108 - world-traversable by definition; a private dir goes in it
    return str(base)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop_process(process: subprocess.Popen[bytes], owner_pid: int, base: str) -> None:
    """Stop the postmaster and remove its directory (only from the process that started it)."""
    if os.getpid() != owner_pid:
        return  # a forked child must never stop its parent's server
    # PostgreSQL's fast shutdown, then its immediate one (POSIX signals), then a kill.
    stops = [("SIGINT", 15.0), ("SIGQUIT", 5.0)] if os.name == "posix" else []
    for name, wait in [*stops, ("kill", 5.0)]:
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            if name == "kill":
                process.kill()
            else:
                process.send_signal(getattr(signal, name))
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)
    shutil.rmtree(base, ignore_errors=True)


class PostgresServer:
    """A PostgreSQL cluster of its own, in a temporary directory, for the length of a test run.

    Args:
        bindir: where ``initdb`` and ``postgres`` live; found with :func:`find_bindir` if not given.
        durable: keep ``fsync`` on (for benchmarks that compare against commits that reach disk).
        settings: extra server settings, such as ``{"max_connections": "300"}``.
        startup_timeout: seconds to wait for the server to accept connections.

    Raises:
        PostgresNotFound: (from :meth:`start`) there are no binaries.
        PostgresStartError: (from :meth:`start`) the server did not come up; with its log.
    """

    def __init__(
        self,
        *,
        bindir: str | os.PathLike[str] | None = None,
        durable: bool = False,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self._bindir = Path(bindir) if bindir is not None else None
        self.durable = durable
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        #: The temporary directory: ``data/``, the server log and the Unix socket.
        self.base: Path | None = None
        #: The TCP port on 127.0.0.1 (also the number in the socket's name).
        self.port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[..., PostgresServer] | None = None
        self._lock = threading.Lock()
        self._count = 0

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        """Create the cluster and start the server; return ``self`` once it accepts connections."""
        if self._process is not None:
            return self
        bindir = self._bindir or find_bindir()
        if bindir is None:
            raise PostgresNotFound(
                "no PostgreSQL server binaries: initdb and postgres are neither on PATH "
                "nor in the directory `pg_config --bindir` names"
            )
        account = _server_user()
        base = Path(tempfile.mkdtemp(prefix="partnerkit-pg-", dir=_reachable_temp_root()))
        try:
            if account is not None:
                os.chown(base, account.pw_uid, account.pw_gid)
            self._initdb(bindir, base, account)
            last_error: PostgresStartError | None = None
            for _ in range(3):  # a free port may be taken between choosing and binding it
                try:
                    self._launch(bindir, base, account, _free_port())
                    return self
                except PostgresStartError as exc:
                    last_error = exc
                    if "could not bind" not in str(exc) and "in use" not in str(exc):
                        break
            assert last_error is not None
            raise last_error
        except BaseException:
            if self._process is None:
                shutil.rmtree(base, ignore_errors=True)
            else:
                self.stop()
            raise

    def _env(self, account: pwd.struct_passwd | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if account is not None:
            env["HOME"] = str(self.base or "/")
            env["USER"] = env["LOGNAME"] = account.pw_name
        return env

    def _initdb(self, bindir: Path, base: Path, account: pwd.struct_passwd | None) -> None:
        self.base = base
        cmd = [
            str(bindir / "initdb"),
            "--pgdata",
            str(base / "data"),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ]
        done = subprocess.run(  # noqa: S603 - our own fixed arguments, no shell
            cmd,
            capture_output=True,
            text=True,
            cwd=base,
            env=self._env(account),
            timeout=self.startup_timeout,
            check=False,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
        )
        if done.returncode != 0:
            raise PostgresStartError(f"initdb failed ({done.returncode}):\n{done.stderr[-4000:]}")

    def _launch(
        self, bindir: Path, base: Path, account: pwd.struct_passwd | None, port: int
    ) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(port),
            "unix_socket_directories": str(base),
            "max_connections": "200",
            "shared_buffers": "32MB",
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
            "log_min_messages": "warning",
            **self.settings,
        }
        cmd = [str(bindir / "postgres"), "-D", str(base / "data")]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        log_path = base / "server.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our own fixed arguments, no shell
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=base,
                env=self._env(account),
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
                extra_groups=[] if account else None,
            )
        self._process = process
        self.port = port
        self._finalizer = weakref.finalize(self, _stop_process, process, os.getpid(), str(base))
        pid_file = base / "data" / "postmaster.pid"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._process = None
                self._finalizer.detach()
                raise PostgresStartError(
                    f"postgres exited with {process.returncode}:\n{self.log()[-4000:]}"
                )
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                # Line 8 of postmaster.pid is the postmaster's status ("ready" once it is).
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
            time.sleep(0.02)
        raise PostgresStartError(
            f"postgres did not accept connections within {self.startup_timeout} s:\n"
            f"{self.log()[-4000:]}"
        )

    def stop(self) -> None:
        """Stop the server and remove its directory; harmless if it is not running."""
        finalizer, self._finalizer = self._finalizer, None
        self._process = None
        if finalizer is not None:
            finalizer()

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- using it -------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        return self._process.pid if self._process is not None else None

    def dsn(self, dbname: str = "postgres") -> str:
        """Return a libpq connection string for *dbname*, through the Unix socket."""
        if self.base is None or self.port is None or self._process is None:
            raise PostgresStartError("the server is not running")
        return f"host={self.base} port={self.port} user={SUPERUSER} dbname={dbname}"

    def tcp_dsn(self, dbname: str = "postgres") -> str:
        """Return a libpq connection string for *dbname*, over TCP on 127.0.0.1."""
        self.dsn(dbname)
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={dbname}"

    def create_database(
        self,
        name: str | None = None,
        *,
        template: str = "template0",
        icu_locale: str | None = None,
    ) -> str:
        """Create a database (a copy of *template*) and return its connection string.

        With *icu_locale* (such as ``"en-US"``) the database sorts text by that ICU
        collation by default, instead of the cluster's ``C``: a way to show that code does
        not depend on the default collation.
        """
        import psycopg
        from psycopg import sql

        if name is None:
            with self._lock:
                self._count += 1
                name = f"pk_{self._count}_{uuid.uuid4().hex[:8]}"
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)
        )
        if icu_locale is not None:
            query += sql.SQL(" LOCALE_PROVIDER icu ICU_LOCALE {} LOCALE 'C'").format(
                sql.Literal(icu_locale)
            )
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            if conn.info.server_version >= 150000:
                # Copying files (and one checkpoint, cheap without fsync) beats logging
                # every page of the template, which PostgreSQL 15 does by default.
                query += sql.SQL(" STRATEGY FILE_COPY")
            conn.execute(query)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        import psycopg
        from psycopg import sql

        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(query)

    def log(self) -> str:
        """Return the server's log so far."""
        if self.base is None:
            return ""
        try:
            return (self.base / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def __repr__(self) -> str:
        state = f"port={self.port} pid={self.pid}" if self._process is not None else "stopped"
        return f"<PostgresServer {state}>"
