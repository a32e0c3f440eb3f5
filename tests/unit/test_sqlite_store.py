from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store_contract import StoreContract
from workflow.adapters.embedded.sqlite_store import SqliteStateStore


class TestSqliteInMemory(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[SqliteStateStore]:
        s = SqliteStateStore(":memory:")
        yield s
        s.close()


class TestSqliteFile(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteStateStore]:
        s = SqliteStateStore(str(tmp_path / "runs.sqlite3"))
        yield s
        s.close()
