"""``import partnerkit`` imports a public name's module when the name is first used.

pytest loads partnerkit's plugin in every session of an environment partnerkit is installed
in, and a storefront may only verify links: neither should pay for the whole library.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import partnerkit


def _fresh(code: str) -> str:
    """Run *code* in a fresh interpreter; return what it printed."""
    done = subprocess.run(  # noqa: S603 - this interpreter, no shell
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_importing_the_package_imports_none_of_its_modules() -> None:
    loaded = _fresh(
        "import sys, partnerkit; "
        "print(sorted(m for m in sys.modules if m.startswith('partnerkit.')))"
    )
    assert loaded == "[]"


def test_the_pytest_plugin_and_the_links_import_no_portal() -> None:
    loaded = _fresh(
        "import sys, partnerkit.testing.plugin, partnerkit.links; "
        "print('partnerkit.portal' in sys.modules, 'partnerkit.stores.memory' in sys.modules)"
    )
    assert loaded == "False False"


def test_a_name_is_its_modules_own_and_stays() -> None:
    for name in partnerkit.__all__:
        home = importlib.import_module(partnerkit._HOMES[name])
        assert getattr(partnerkit, name) is getattr(home, name), name
        assert name in vars(partnerkit), name  # kept: the module is asked once
    assert set(partnerkit._HOMES) == set(partnerkit.__all__)


def test_star_import_and_dir_list_every_public_name() -> None:
    names: dict[str, object] = {}
    exec("from partnerkit import *", names)  # noqa: S102 - a fixed statement
    assert set(partnerkit.__all__) <= set(names)
    assert set(partnerkit.__all__) <= set(dir(partnerkit))


def test_a_submodule_is_an_attribute_and_anything_else_is_not() -> None:
    loaded = _fresh("import partnerkit; print(partnerkit.links.Keyring.__module__)")
    assert loaded == "partnerkit.links"
    with pytest.raises(AttributeError, match="no attribute 'Keyrng'"):
        partnerkit.Keyrng  # noqa: B018 - the attribute access is the test
    with pytest.raises(ImportError):
        exec("from partnerkit import _nothing_here", {})  # noqa: S102 - a fixed statement
