"""The SQLite database behind SqliteStateStore: its schema, its transactions, the stored
layout of runs and steps, and the counters a step's end moves (run counts, join counters).

Each store method is one SQLite transaction under one lock, so every guarantee of the
ports holds trivially; the join counter is a column decremented inside the transaction
that records the predecessor's end.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ....model.inputs import RunInputs
from ....model.records import RunRecord, StepRecord
from ....model.states import RunStatus, StepState
from ....model.stored import step_fields, step_from_fields

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, status TEXT NOT NULL, tr_url TEXT NOT NULL,
    dag_name TEXT NOT NULL, source TEXT NOT NULL, created_at REAL NOT NULL,
    finished_at REAL, step_count INTEGER NOT NULL, open_steps INTEGER NOT NULL,
    problems TEXT NOT NULL, succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0, reruns TEXT NOT NULL DEFAULT '[]',
    updated_at REAL NOT NULL DEFAULT 0, timeout REAL, inputs TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (created_at DESC);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, step_id TEXT NOT NULL, pos INTEGER NOT NULL,
    definition TEXT NOT NULL, tr_url TEXT NOT NULL, tr_auth TEXT NOT NULL,
    state TEXT NOT NULL, waiting_on INTEGER NOT NULL, job_id TEXT NOT NULL,
    job_state TEXT NOT NULL, message TEXT NOT NULL, submitted_at REAL, finished_at REAL,
    attempt INTEGER NOT NULL DEFAULT 1, history TEXT NOT NULL DEFAULT '[]',
    slot INTEGER, queued_at REAL, woke TEXT NOT NULL DEFAULT '', checked_at REAL,
    PRIMARY KEY (run_id, step_id)
);
CREATE TABLE IF NOT EXISTS claims (
    run_id TEXT NOT NULL, key TEXT NOT NULL, claimed_at REAL NOT NULL,
    settled INTEGER NOT NULL, PRIMARY KEY (run_id, key)
);
"""
# Columns added after the first version, for files written by an earlier one.
_ADDED = {"runs": [(c, "INTEGER NOT NULL DEFAULT 0") for c in ("succeeded", "failed", "skipped", "cancelled")]
          + [("reruns", "TEXT NOT NULL DEFAULT '[]'"), ("updated_at", "REAL NOT NULL DEFAULT 0"),
             ("timeout", "REAL"), ("inputs", "TEXT NOT NULL DEFAULT '{}'")],
          "steps": [("attempt", "INTEGER NOT NULL DEFAULT 1"), ("history", "TEXT NOT NULL DEFAULT '[]'"),
                    ("slot", "INTEGER"), ("queued_at", "REAL"), ("woke", "TEXT NOT NULL DEFAULT ''"),
                    ("checked_at", "REAL")]}
_JSON_FIELDS = ("definition", "history")
STEP_FIELDS = ("run_id", "step_id", "pos", "definition", "tr_url", "tr_auth", "state", "waiting_on", "job_id",
               "job_state", "message", "submitted_at", "finished_at", "attempt", "history", "checked_at")
STEP_COLUMNS = ", ".join(STEP_FIELDS)
RUN_COLUMNS = ("run_id, status, tr_url, dag_name, source, created_at, finished_at, step_count, problems, "
               "succeeded, failed, skipped, cancelled, reruns, updated_at, timeout, inputs")
ENDED_COLUMN = {StepState.SUCCEEDED: "succeeded", StepState.FAILED: "failed", StepState.SKIPPED: "skipped",
                StepState.CANCELLED: "cancelled"}


class SqliteDatabase:
    """A connection, its lock, and the statements every role shares. Thread-safe; counts
    the statements it runs in `ops` (for the benchmark)."""

    def __init__(self, path: str = ":memory:") -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        self.ops = 0
        if path != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns a file written by an earlier version lacks."""
        for table, columns in _ADDED.items():
            have = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            for column, kind in columns:
                if column not in have:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        # the slots held and the steps waiting for one, without scanning a run's steps
        self._conn.execute("CREATE INDEX IF NOT EXISTS steps_holding ON steps (run_id) WHERE slot IS NOT NULL")
        self._conn.execute("CREATE INDEX IF NOT EXISTS steps_waiting ON steps (run_id, queued_at) "
                           "WHERE queued_at IS NOT NULL")
        self._conn.execute("CREATE INDEX IF NOT EXISTS runs_by_progress ON runs (status, updated_at)")
        self._conn.execute("CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at DESC)")  # run pages
        self._conn.commit()

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._conn:
            yield self._conn

    def _exec(self, db: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        self.ops += 1
        return db.execute(sql, args)

    def _get_step(self, db: sqlite3.Connection, run_id: str, step_id: str) -> StepRecord | None:
        row = self._exec(
            db, f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id=? AND step_id=?", (run_id, step_id)
        ).fetchone()
        return None if row is None else step_of(row)

    def _count_off(self, db: sqlite3.Connection, run_id: str, n: int, ended: StepState, at: float) -> int:
        """Take `n` off the run's open steps and add them to those ended `ended` (progress at
        `at`); the open count left."""
        column = ENDED_COLUMN[ended]
        sql = (f"UPDATE runs SET open_steps=open_steps-?, {column}={column}+?, updated_at=MAX(updated_at, ?) "
               "WHERE run_id=? RETURNING open_steps")
        return int(self._exec(db, sql, (n, n, at, run_id)).fetchone()[0])

    def _count_down(self, db: sqlite3.Connection, run_id: str, release: Sequence[str]) -> list[str]:
        """Take one off the join counter of each step of `release`; those now at zero."""
        sql = "UPDATE steps SET waiting_on=waiting_on-1 WHERE run_id=? AND step_id=? RETURNING waiting_on"
        return [s for s in release if int(self._exec(db, sql, (run_id, s)).fetchone()[0]) == 0]

    def _unblocked(self, db: sqlite3.Connection, run_id: str, release: Sequence[str]) -> tuple[str, ...]:
        """The steps of `release` whose join counter is at zero (read back for a repeated end)."""
        found: list[str] = []
        for start in range(0, len(release), 500):
            chunk = list(release[start:start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._exec(db, f"SELECT step_id FROM steps WHERE run_id=? AND waiting_on=0 AND step_id IN ({marks})",
                              (run_id, *chunk)).fetchall()
            found.extend(r[0] for r in rows)
        order = {s: i for i, s in enumerate(release)}
        return tuple(sorted(found, key=order.__getitem__))

    def _done(self, db: sqlite3.Connection, run_id: str) -> bool:
        row = self._exec(db, "SELECT open_steps FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return row is not None and row[0] == 0


def step_row(pos: int, s: StepRecord) -> tuple[Any, ...]:
    """The row `STEP_FIELDS` of a new step, from the stored layout (`model.stored`)."""
    fields = {**step_fields(s), "run_id": s.run_id, "step_id": s.step_id, "pos": pos, "checked_at": s.checked_at}
    return tuple(json.dumps(fields[f]) if f in _JSON_FIELDS else fields[f] for f in STEP_FIELDS)


def step_of(row: Sequence[Any]) -> StepRecord:
    fields = {f: json.loads(v) if f in _JSON_FIELDS else v for f, v in zip(STEP_FIELDS, row, strict=True)}
    return step_from_fields(row[0], row[1], fields)


def run_of(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0], status=RunStatus(row[1]), tr_url=row[2], dag_name=row[3],
        source=row[4], created_at=row[5], finished_at=row[6], step_count=row[7],
        problems=tuple(json.loads(row[8])), succeeded=row[9], failed=row[10], skipped=row[11], cancelled=row[12],
        reruns=tuple(json.loads(row[13])), updated_at=row[14], timeout=row[15],
        inputs=RunInputs.from_dict(json.loads(row[16])),
    )
