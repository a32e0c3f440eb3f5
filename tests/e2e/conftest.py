"""Shared by the command-line tests: the bundled mock Task Runner, requiring TOKEN."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.mock_runner import MockTaskRunner
from support import TOKEN
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.model.states import RunStatus


@pytest.fixture
def mock() -> Iterator[MockTaskRunner]:
    with MockTaskRunner(duration=0.1, token=TOKEN) as m:
        yield m


@pytest.fixture(autouse=True)
def no_run_left_running(tmp_path: Path) -> Iterator[None]:
    """Fail a test that leaves a run RUNNING in any store it wrote under its tmp_path."""
    yield
    left = []
    for db in tmp_path.rglob("*.sqlite3"):
        store = SqliteStateStore(str(db))
        try:
            left += [f"{r.run_id} in {db.name}" for r in store.list_runs(1000, RunStatus.RUNNING)]
        finally:
            store.close()
    assert not left, f"runs left RUNNING: {left}"
