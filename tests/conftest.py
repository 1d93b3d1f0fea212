"""Shared fixtures of partnerkit's own tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from partnerkit.stores.sqlite import SQLiteStore

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
# Slow data generation is the machine's load, not a bug: no profile fails a test for it.
settings.register_profile(
    "dev", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def sqlite_template(tmp_path: Path) -> Path:
    """An empty SQLite database with the schema, closed: a test copies it for each example
    instead of creating the schema again."""
    path = tmp_path / "template.db"
    SQLiteStore(path).close()
    return path
