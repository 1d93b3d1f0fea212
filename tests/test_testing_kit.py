"""The testing kit shipped in ``partnerkit.testing``: the fake clock, the pytest plugin's
fixtures, snapshots, and the contract suite as an outsider would use it (the test module of
docs/testing.md among them)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from partnerkit import AdminRole, PartnerAccess, Portal, ValidationError
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing import DEFAULT_START, FakeClock, World, snapshot

pytest_plugins = ["pytester"]


def test_a_fake_clock_shows_one_time_until_moved() -> None:
    """Reading the clock does not move it; ``advance`` and ``set`` do."""
    clock = FakeClock()
    assert clock() == clock() == DEFAULT_START
    assert clock.advance(timedelta(hours=1), minutes=30) == DEFAULT_START + timedelta(hours=1.5)
    clock.set(datetime(2030, 1, 1, tzinfo=UTC))
    assert clock() == datetime(2030, 1, 1, tzinfo=UTC)
    clock.set(datetime(2020, 1, 1, tzinfo=UTC))
    assert clock().year == 2020


def test_a_fake_clock_keeps_aware_utc_times_only() -> None:
    """Other zones are converted to UTC; naive times and backward steps are refused."""
    clock = FakeClock(datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))))
    assert clock() == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert clock().tzinfo is UTC
    with pytest.raises(ValidationError):
        FakeClock(datetime(2024, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        clock.set(datetime(2024, 1, 1))
    with pytest.raises(ValidationError):
        clock.advance(seconds=-1)
    assert clock() == datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_the_plugin_is_registered_through_its_entry_point(
    request: pytest.FixtureRequest,
) -> None:
    """pytest found the plugin by itself (no ``pytest_plugins`` line needed)."""
    plugin = request.config.pluginmanager.get_plugin("partnerkit")
    assert plugin is not None
    assert plugin.__name__ == "partnerkit.testing.plugin"


def test_the_portal_fixture_runs_on_the_store_and_clock_fixtures(
    partnerkit_portal: Portal, partnerkit_store: MemoryStore, partnerkit_clock: FakeClock
) -> None:
    """The fixtures fit together: the portal keeps its data in the store fixture and reads
    the time from the clock fixture; the store starts empty."""
    assert partnerkit_portal.store is partnerkit_store
    assert snapshot(partnerkit_store).users == ()
    partnerkit_clock.advance(days=3)
    assert partnerkit_portal.now() == DEFAULT_START + timedelta(days=3)
    assert partnerkit_portal.catalog.get("EXCHANGE").trial is not None


def test_the_world_fixture_holds_the_promised_people(partnerkit_world: World) -> None:
    """A partner with a FULL global admin, a LIMITED agent and a billing admin; a customer
    with its global admin and a plain user; all stored as returned."""
    w = partnerkit_world
    roles = {
        "partner_admin": (AdminRole.GLOBAL_ADMIN, PartnerAccess.FULL, w.partner.id),
        "partner_agent": (None, PartnerAccess.LIMITED, w.partner.id),
        "partner_billing": (AdminRole.BILLING_ADMIN, None, w.partner.id),
        "customer_admin": (AdminRole.GLOBAL_ADMIN, None, w.customer.id),
        "customer_user": (None, None, w.customer.id),
    }
    for name, expected in roles.items():
        user = getattr(w, name)
        assert (user.admin_role, user.partner_access, user.company_id) == expected, name
    state = snapshot(w.portal.store)
    assert set(state.users) == {getattr(w, name) for name in roles}
    assert set(state.companies) == {w.partner, w.customer}
    assert w.partner.is_partner
    assert not w.customer.is_partner


def test_the_fixtures_are_fresh_for_every_test(partnerkit_store: MemoryStore) -> None:
    """Nothing a previous test stored is visible (function scope)."""
    assert snapshot(partnerkit_store).audit == ()


CERTIFY = '''
from partnerkit.stores.memory import MemoryStore
from partnerkit.testing.contract import StoreContract


class LastWriterWins:
    """A store that forgets versions: updates always overwrite."""

    def __init__(self):
        self.inner = MemoryStore()

    def unit_of_work(self, *, write=True):
        return Unit(self.inner.unit_of_work(write=write))

    def close(self):
        self.inner.close()


class Unit:
    def __init__(self, inner):
        self.inner = inner

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        return Repo(attr) if name == "users" else attr

    def repository(self, table):
        return getattr(self, table.name)


class Repo:
    def __init__(self, inner):
        self.inner = inner

    def update(self, obj):
        import attrs

        current = self.inner.get(obj.id)
        self.inner.update(attrs.evolve(obj, version=current.version + 1))

    def __getattr__(self, name):
        return getattr(self.inner, name)


class TestHonestStore(StoreContract):
    def make_store(self, tmp_path):
        return MemoryStore()


class TestLastWriterWins(StoreContract):
    def make_store(self, tmp_path):
        return LastWriterWins()
'''


def test_an_outside_store_certifies_itself_and_a_broken_one_is_caught(
    pytester: pytest.Pytester,
) -> None:
    """A test module outside partnerkit subclasses ``StoreContract``: an honest store
    passes, and a store that lets the last writer win fails the version rules."""
    pytester.makepyfile(test_certify=CERTIFY)
    result = pytester.runpytest_subprocess(
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "read_modify_write or refuses_any_other_version",
    )
    outcomes = result.parseoutcomes()
    failed = [line for line in result.outlines if line.startswith("FAILED")]
    assert failed, result.stdout.str()
    assert all("TestLastWriterWins" in line for line in failed)
    assert any("read_modify_write" in line for line in failed)
    assert outcomes["passed"] > 10


def _text_blocks_after(marker: str, page: Path) -> list[str]:
    """The ```text blocks of a docs page from the first one after *marker* on."""
    text = page.read_text(encoding="utf-8")
    rest = text[text.index(marker) :]
    return [block.split("\n", 1)[1] for block in rest.split("```text")[1:]]


def test_the_test_module_in_the_testing_howto_passes_on_memory_and_on_sqlite(
    pytester: pytest.Pytester,
) -> None:
    """docs/testing.md's test module runs as a portal developer's own, with the fixtures
    pytest found by itself; then again with the page's ``conftest.py``, on a SQLite file."""
    page = Path(__file__).parent.parent / "docs" / "testing.md"
    blocks = _text_blocks_after("<!-- the test module below", page)
    module = blocks[0].split("```", 1)[0]
    conftest = blocks[1].split("```", 1)[0]
    pytester.makepyfile(test_our_portal=module)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert result.parseoutcomes() == {"passed": 3}, result.stdout.str()
    pytester.makeconftest(
        conftest
        + "\n\n@pytest.fixture(autouse=True)\n"
        + "def _on_sqlite(partnerkit_store):\n"
        + "    assert isinstance(partnerkit_store, SQLiteStore)\n"
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    assert result.parseoutcomes() == {"passed": 3}, result.stdout.str()


@pytest.mark.parametrize(
    ("module", "missing"),
    [("partnerkit.testing.strategies", "hypothesis"), ("partnerkit.testing.contract", "pytest")],
)
def test_a_kit_module_without_its_test_tool_says_which_extra_to_install(
    module: str, missing: str
) -> None:
    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        f"try:\n    import {module}\n"
        "except ImportError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, no shell
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{module} needs {missing}: pip install 'partnerkit[testing]'"
