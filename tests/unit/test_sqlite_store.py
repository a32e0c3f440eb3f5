from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from store_contract import StoreContract
from workflow.adapters.embedded.sqlite_store import SqliteStateStore, database


class SqliteReads:
    def fail_reads(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        def broken(row: Any) -> None:
            raise sqlite3.OperationalError("read failed")

        monkeypatch.setattr(database, "step_of", broken)


class TestSqliteInMemory(SqliteReads, StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[SqliteStateStore]:
        s = SqliteStateStore(":memory:")
        yield s
        s.close()


class TestSqliteFile(SqliteReads, StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqliteStateStore]:
        s = SqliteStateStore(str(tmp_path / "runs.sqlite3"))
        yield s
        s.close()
