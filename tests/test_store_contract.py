"""The store contract suite (``partnerkit.testing.contract``), run on every store partnerkit
ships. ``PostgresStore`` joins by subclassing ``StoreContract`` the same way."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from partnerkit.ports import Store
from partnerkit.stores.memory import MemoryStore
from partnerkit.stores.sqlite import SQLiteStore
from partnerkit.testing.contract import StoreContract, WriteIntegrityContract


class TestMemoryStore(StoreContract):
    """``MemoryStore`` keeps the contract."""

    def make_store(self, tmp_path: Path) -> Store:
        """A fresh in-memory store."""
        return MemoryStore()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database file made by ``SQLiteStore``, closed (so fully checkpointed)."""
    path = tmp_path_factory.mktemp("template") / "x.db"
    SQLiteStore(path).close()
    return path


class TestSQLiteFileStore(StoreContract):
    """``SQLiteStore`` on a file keeps the contract."""

    @pytest.fixture
    def store(self, tmp_path: Path, sqlite_template: Path) -> Iterator[Store]:
        """A fresh SQLite file: a copy of an empty one, which spares each test the schema's
        creation (``test_sqlite_store.py`` covers creating and migrating files)."""
        path = tmp_path / "x.db"
        shutil.copyfile(sqlite_template, path)
        store = SQLiteStore(path)
        yield store
        store.close()


class TestSQLiteMemoryStore(StoreContract):
    """``SQLiteStore(":memory:")`` keeps the contract."""

    def make_store(self, tmp_path: Path) -> Store:
        """A fresh private in-memory SQLite database."""
        return SQLiteStore(":memory:")


class TestOnePartAlone(WriteIntegrityContract):
    """A part of the contract runs alone (its fixtures come with it), here on MemoryStore."""

    def make_store(self, tmp_path: Path) -> Store:
        """A fresh in-memory store."""
        return MemoryStore()
