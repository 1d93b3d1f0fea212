"""The public API's types, as ``mypy --strict`` sees them from a portal developer's code.

``tests/typing/usage.py`` pins what the types promise (precise results, strategies that say
when they never draw ``None``, a JWK Set typed key by key, algorithm names a typo cannot
pass); this module runs mypy on it, as CI's own ``mypy --strict src`` does on the library.
"""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api", reason="mypy is a development tool ([dev])")

USAGE = Path(__file__).parent / "typing" / "usage.py"


def _mypy(path: Path, cache: Path) -> tuple[str, int]:
    out, err, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(cache), str(path)]
    )
    return out + err, status


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module: the second run reads partnerkit's types from it."""
    return tmp_path_factory.mktemp("mypy-cache")


def test_a_developers_typed_code_type_checks_as_the_api_promises(cache: Path) -> None:
    report, status = _mypy(USAGE, cache)
    assert status == 0, report


def test_the_check_finds_a_type_the_api_does_not_promise(tmp_path: Path, cache: Path) -> None:
    """The check above can fail: the same module with one promise changed is refused."""
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        USAGE.read_text(encoding="utf-8").replace(
            "st.SearchStrategy[AdminRole])", "st.SearchStrategy[AdminRole | None])", 1
        ),
        encoding="utf-8",
    )
    assert wrong.read_text(encoding="utf-8") != USAGE.read_text(encoding="utf-8")
    report, status = _mypy(wrong, cache)
    assert status == 1
    assert "assert-type" in report, report
