"""The public surface of the package and what the wheel ships."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

import partnerkit

#: ``partnerkit.__all__``, pinned: a name added or removed is a decision, made here too.
PUBLIC_NAMES = [
    "AdminRole",
    "AlreadyExists",
    "AuditChainBroken",
    "AuditEvent",
    "AuditPage",
    "Catalog",
    "Company",
    "CompanyKind",
    "Conflict",
    "ContactInfo",
    "CustomerPage",
    "Decision",
    "Delegation",
    "DelegationOffer",
    "DelegationStatus",
    "Forbidden",
    "InvalidLink",
    "InvalidState",
    "IssuedLink",
    "Keyring",
    "LinkClaims",
    "LinkExhausted",
    "LinkExpired",
    "LinkKind",
    "LinkRevoked",
    "LinkStatus",
    "LinkTerms",
    "NotFound",
    "OfferLine",
    "OfferStatus",
    "PartnerAccess",
    "PartnerKitError",
    "PasswordHasher",
    "PasswordReset",
    "Permission",
    "Portal",
    "PurchaseOffer",
    "Redemption",
    "RequestStatus",
    "Rule",
    "Service",
    "ServiceRequest",
    "Severity",
    "StaleVersion",
    "StoreUnavailable",
    "Subscription",
    "SubscriptionStatus",
    "TrialInvitation",
    "TrialTerms",
    "User",
    "ValidationError",
    "correlation",
]

#: The names SPEC section 3 promises from ``partnerkit`` (all of them exist now).
SPEC_SECTION_3 = [
    "Portal",
    "AdminRole",
    "PartnerAccess",
    "Permission",
    "Decision",
    "Company",
    "CompanyKind",
    "ContactInfo",
    "User",
    "Keyring",
    "LinkKind",
    "LinkClaims",
    "Redemption",
    "Service",
    "TrialTerms",
    "Catalog",
    "OfferLine",
    "PurchaseOffer",
    "Subscription",
    "SubscriptionStatus",
    "Delegation",
    "DelegationStatus",
    "ServiceRequest",
    "PasswordReset",
    "AuditEvent",
    "PartnerKitError",
    "Forbidden",
    "NotFound",
    "ValidationError",
    "Conflict",
    "InvalidLink",
    "LinkExpired",
    "LinkRevoked",
    "LinkExhausted",
]


def test_all_is_sorted_and_pinned() -> None:
    """``__all__`` is sorted, without duplicates, and exactly the pinned list."""
    assert partnerkit.__all__ == sorted(set(partnerkit.__all__))
    assert partnerkit.__all__ == PUBLIC_NAMES


def test_every_name_of_spec_section_3_is_public() -> None:
    """What SPEC section 3 imports from ``partnerkit`` is in ``__all__``."""
    assert sorted(set(SPEC_SECTION_3) - set(partnerkit.__all__)) == []


def test_every_public_name_resolves_to_an_object_of_the_package() -> None:
    """Each name in ``__all__`` is an attribute defined inside partnerkit."""
    for name in partnerkit.__all__:
        obj = getattr(partnerkit, name)
        assert obj.__module__.startswith("partnerkit."), name


def test_the_stores_import_from_their_modules() -> None:
    """Stores are imported from ``partnerkit.stores.*``, as SPEC section 3 says."""
    from partnerkit.stores.memory import MemoryStore
    from partnerkit.stores.sqlite import SQLiteStore

    assert MemoryStore.__module__ == "partnerkit.stores.memory"
    assert SQLiteStore.__module__ == "partnerkit.stores.sqlite"


def test_the_errors_form_the_promised_tree() -> None:
    """One base; errors mixed with the builtins callers already catch."""
    p = partnerkit
    for name in ("Forbidden", "NotFound", "ValidationError", "Conflict", "InvalidLink"):
        assert issubclass(getattr(p, name), p.PartnerKitError), name
    assert issubclass(p.NotFound, LookupError)
    assert issubclass(p.ValidationError, ValueError)
    for name in ("LinkExpired", "LinkRevoked", "LinkExhausted"):
        assert issubclass(getattr(p, name), p.InvalidLink), name
    assert issubclass(p.AuditChainBroken, p.PartnerKitError)


def test_py_typed_is_part_of_the_package() -> None:
    """The PEP 561 marker sits next to the modules."""
    assert importlib.resources.files("partnerkit").joinpath("py.typed").is_file()


def test_the_wheel_ships_py_typed_the_testing_kit_and_the_entry_points(tmp_path: Path) -> None:
    """A wheel built from this checkout holds ``py.typed``, the testing kit, the pytest
    plugin entry point, the console script and the licence's text."""
    wheel_builder = pytest.importorskip("hatchling.builders.wheel")
    root = Path(__file__).resolve().parents[1]
    built = list(
        wheel_builder.WheelBuilder(str(root)).build(directory=str(tmp_path), versions=["standard"])
    )
    with zipfile.ZipFile(built[0]) as wheel:
        names = set(wheel.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_text = wheel.read(entry_points).decode()
    for module in ("py.typed", "testing/__init__.py", "testing/contract.py", "testing/plugin.py"):
        assert f"partnerkit/{module}" in names, module
    assert "testing/strategies.py" in {n.removeprefix("partnerkit/") for n in names}
    assert "[pytest11]\npartnerkit = partnerkit.testing.plugin" in entry_text
    assert "partnerkit = partnerkit.cli:main" in entry_text
    licence = [n for n in names if n.endswith("/LICENSE") and ".dist-info/" in n]
    assert licence, "the wheel carries no licence text"


def test_the_installed_distribution_declares_the_plugin_and_the_command() -> None:
    """The environment pytest runs in knows both entry points."""
    plugins = importlib.metadata.entry_points(group="pytest11")
    assert plugins["partnerkit"].value == "partnerkit.testing.plugin"
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert scripts["partnerkit"].value == "partnerkit.cli:main"


def test_importing_the_package_and_its_testing_kit_stays_light() -> None:
    """``import partnerkit`` and ``import partnerkit.testing`` load no test framework and
    no database driver (no I/O at import)."""
    probe = (
        "import sys, partnerkit, partnerkit.testing\n"
        "heavy = ('pytest', 'hypothesis', 'sqlite3', '_sqlite3', 'psycopg')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, a literal probe
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_ci_runs_the_suite_on_the_lowest_versions_pyproject_allows() -> None:
    """``.ci/minimum-versions.txt`` pins each lower bound of the runtime, ``test`` and
    ``postgres`` requirements at exactly that bound, and ``.ci/run`` installs with it."""
    requirements = pytest.importorskip("packaging.requirements")
    version = pytest.importorskip("packaging.version")
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [
        *project["dependencies"],
        *project["optional-dependencies"]["test"],
        *project["optional-dependencies"]["postgres"],
    ]
    pinned = {}
    for line in (root / ".ci" / "minimum-versions.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, at = line.partition("==")
            pinned[name.strip().lower()] = version.Version(at.strip())
    for text in declared:
        requirement = requirements.Requirement(text)
        (lower,) = [s.version for s in requirement.specifier if s.operator == ">="]
        assert pinned.get(requirement.name.lower()) == version.Version(lower), text
    assert "-c .ci/minimum-versions.txt" in (root / ".ci" / "run").read_text(encoding="utf-8")
