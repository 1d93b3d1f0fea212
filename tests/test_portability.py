"""partnerkit on a system without what only POSIX has (Windows): no ``fork`` and its hooks,
no owners to carry over, no ``pwd`` or ``fcntl``, fewer signals.

There is no Windows here, so each test runs a fresh interpreter that takes those away
before it imports partnerkit. ``import partnerkit`` is what pytest does at start-up for its
plugin (the ``pytest11`` entry point) in any environment partnerkit is installed in: a
failure there would end every pytest session of a Windows developer, partnerkit's or not.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: Run first in the child: the parts of the standard library Windows lacks, taken away.
_WITHOUT_POSIX = """
import os, signal, sys
for name in ("fork", "register_at_fork", "chown", "fchown", "geteuid", "getuid", "getgid"):
    if hasattr(os, name):
        delattr(os, name)
for name in ("SIGKILL", "SIGQUIT", "SIGHUP", "SIGUSR1"):
    if hasattr(signal, name):
        delattr(signal, name)
for name in ("pwd", "grp", "fcntl", "termios", "resource"):
    sys.modules[name] = None  # an import of it fails, as it does there
assert not hasattr(os, "register_at_fork")
"""

#: The same for a whole pytest session, whose other plugins (third-party, installed beside
#: partnerkit here) pick their own POSIX modules by the platform, which is still Linux: only
#: what partnerkit's import path touched is taken away.
_WITHOUT_FORK = """
import os, sys
for name in ("fork", "register_at_fork", "chown", "fchown"):
    if hasattr(os, name):
        delattr(os, name)
for name in ("pwd", "grp", "fcntl"):
    sys.modules[name] = None
"""


def _run_without_posix(
    body: str, tmp_path: Path, prelude: str = _WITHOUT_POSIX
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "child.py"
    script.write_text(prelude + textwrap.dedent(body), encoding="utf-8")
    return subprocess.run(  # noqa: S603 - this interpreter on our own script, no shell
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )


def test_every_module_imports_without_fork_pwd_or_fcntl(tmp_path: Path) -> None:
    result = _run_without_posix(
        """
        import importlib
        names = [
            "partnerkit", "partnerkit.cli", "partnerkit.portal", "partnerkit.links",
            "partnerkit.stores.memory", "partnerkit.stores.sqlite", "partnerkit.stores.postgres",
            "partnerkit.testing", "partnerkit.testing.plugin", "partnerkit.testing.contract",
            "partnerkit.testing.strategies", "partnerkit.testing.postgres",
        ]
        for name in names:
            importlib.import_module(name)
        print("imported", len(names))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported 12"


def test_the_portal_and_both_file_stores_work_without_fork(tmp_path: Path) -> None:
    result = _run_without_posix(
        f"""
        from partnerkit import ContactInfo, Portal
        from partnerkit.stores.memory import MemoryStore
        from partnerkit.stores.sqlite import SQLiteStore
        for store in (MemoryStore(), SQLiteStore({str(tmp_path / "portal.db")!r})):
            portal = Portal(store=store)
            _, ana = portal.register_partner(
                name="Contoso", contact=ContactInfo(email="hi@contoso.example"),
                admin_email="ana@contoso.example",
            )
            print(type(store).__name__, portal.verify_audit_trail())
            store.close()
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["MemoryStore", "1", "SQLiteStore", "1"]


def test_keys_rotate_without_owners_or_locks(tmp_path: Path) -> None:
    """The key-ring commands replace the file without ``chown`` (and take no ``flock``)."""
    ring = tmp_path / "keys.json"
    result = _run_without_posix(
        f"""
        from partnerkit.cli import main
        from partnerkit import Keyring
        assert main(["keys", "new", "--out", {str(ring)!r}]) == 0
        assert main(["keys", "rotate", {str(ring)!r}]) == 0
        with open({str(ring)!r}, encoding="utf-8") as file:
            print(len(Keyring.from_json(file.read()).key_ids))
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "2"


@pytest.mark.parametrize(("autoload", "named"), [(True, False), (True, True), (False, True)])
def test_pytest_starts_with_the_plugin_on_such_a_system(
    tmp_path: Path, autoload: bool, named: bool
) -> None:
    """pytest loads the plugin by itself, or named with ``-p partnerkit`` (as docs/testing.md
    says to where autoload is off: also harmless where it is on), and a test that never
    mentions partnerkit runs."""
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    result = _run_without_posix(
        f"""
        import os, pytest
        if not {autoload!r}:
            os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        args = ["-q", "-p", "no:cacheprovider", {str(tmp_path / "test_plain.py")!r}]
        if {named!r}:
            args[:0] = ["-p", "partnerkit"]
        code = pytest.main(args)
        import sys
        print("partnerkit.testing.plugin" in sys.modules, int(code))
        """,
        tmp_path,
        _WITHOUT_FORK,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True 0"
