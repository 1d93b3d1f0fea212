"""The README's promises: two command lines that do everything, one of them the CI's own."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"


def quick_start_block() -> list[str]:
    """The lines of the fenced block in the README's "Quick start" section."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Quick start\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section is not None, "README has no '## Quick start' section"
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", section.group(1), re.M | re.S)
    assert len(blocks) == 1, "the Quick start section has exactly one code block"
    return blocks[0].splitlines()


def command_lines() -> list[str]:
    """The command lines of the Quick start block (comments and blank lines left out)."""
    return [line for line in quick_start_block() if line.strip() and not line.startswith("#")]


def test_quick_start_has_exactly_two_command_lines() -> None:
    """The Quick start block holds two commands: one for the demo, one for the tests."""
    assert len(command_lines()) == 2


def test_quick_start_demo_line_creates_a_venv_installs_and_runs_the_demo() -> None:
    """The first line makes a fresh venv, installs the package and runs ``partnerkit demo``."""
    demo = command_lines()[0]
    steps = [step.strip() for step in demo.split("&&")]
    assert steps[0] == "python3 -m venv .venv"
    assert steps[1].startswith(".venv/bin/pip install ")
    assert "-e ." in steps[1]
    assert steps[-1] == ".venv/bin/partnerkit demo"


def test_demo_line_runs_the_console_script_the_package_declares() -> None:
    """``partnerkit`` is the console script of ``partnerkit.cli:main`` in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"]["partnerkit"] == "partnerkit.cli:main"


def test_quick_start_test_line_is_verbatim_in_the_ci_script() -> None:
    """The README's test line is, character for character, a line that .ci/run executes."""
    test_line = command_lines()[1]
    ci_lines = [
        line for line in CI.read_text(encoding="utf-8").splitlines() if not line.startswith("#")
    ]
    assert test_line in ci_lines
    assert "pytest" in test_line
    assert test_line.startswith("python3 -m venv .venv && ")


def test_readme_links_point_to_existing_files() -> None:
    """Every relative link in the README names a file of the repository."""
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#]+)\)", text)
    relative = [link for link in links if "://" not in link]
    assert relative, "the README links to the docs"
    missing = [link for link in relative if not (ROOT / link).is_file()]
    assert missing == []
