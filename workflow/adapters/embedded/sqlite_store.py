"""StateStore on SQLite: a file by default, ":memory:" for tests.

Each method is one SQLite transaction under one lock, so every guarantee of the port
holds trivially; the join counter is a column decremented inside the transaction that
records the predecessor's end.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from ...errors import NotFound
from ...model.dag import Policy, Task
from ...model.records import Attempt, Claim, Completion, RunRecord, StepOutcome, StepRecord
from ...model.states import RunStatus, StepState

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, status TEXT NOT NULL, tr_url TEXT NOT NULL,
    dag_name TEXT NOT NULL, source TEXT NOT NULL, created_at REAL NOT NULL,
    finished_at REAL, step_count INTEGER NOT NULL, open_steps INTEGER NOT NULL,
    problems TEXT NOT NULL, succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0, reruns TEXT NOT NULL DEFAULT '[]',
    updated_at REAL NOT NULL DEFAULT 0, timeout REAL
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
_OPEN = (StepState.PENDING.value, StepState.RUNNING.value)
_STEP_COLUMNS = ("run_id, step_id, pos, definition, tr_url, tr_auth, state, waiting_on, job_id, job_state, message, "
                 "submitted_at, finished_at, attempt, history, checked_at")
_RUN_COLUMNS = ("run_id, status, tr_url, dag_name, source, created_at, finished_at, step_count, problems, "
                "succeeded, failed, skipped, cancelled, reruns, updated_at, timeout")
_ENDED_COLUMN = {StepState.SUCCEEDED: "succeeded", StepState.FAILED: "failed", StepState.SKIPPED: "skipped",
                 StepState.CANCELLED: "cancelled"}


class SqliteStateStore:
    """Thread-safe; counts the statements it runs in `ops` (for the benchmark)."""

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
        added = {"runs": [(c, "INTEGER NOT NULL DEFAULT 0") for c in ("succeeded", "failed", "skipped", "cancelled")]
                 + [("reruns", "TEXT NOT NULL DEFAULT '[]'"), ("updated_at", "REAL NOT NULL DEFAULT 0"),
                    ("timeout", "REAL")],
                 "steps": [("attempt", "INTEGER NOT NULL DEFAULT 1"), ("history", "TEXT NOT NULL DEFAULT '[]'"),
                           ("slot", "INTEGER"), ("queued_at", "REAL"), ("woke", "TEXT NOT NULL DEFAULT ''"),
                           ("checked_at", "REAL")]}
        for table, columns in added.items():
            have = {row[1] for row in self._conn.execute(f"PRAGMA table_info({table})")}
            for column, kind in columns:
                if column not in have:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        # the slots held and the steps waiting for one, without scanning a run's steps
        self._conn.execute("CREATE INDEX IF NOT EXISTS steps_holding ON steps (run_id) WHERE slot IS NOT NULL")
        self._conn.execute("CREATE INDEX IF NOT EXISTS steps_waiting ON steps (run_id, queued_at) "
                           "WHERE queued_at IS NOT NULL")
        self._conn.execute("CREATE INDEX IF NOT EXISTS runs_by_progress ON runs (status, updated_at)")
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

    def create_run(self, run: RunRecord, steps: Sequence[StepRecord]) -> bool:
        with self._tx() as db:
            cur = self._exec(
                db,
                f"INSERT OR IGNORE INTO runs ({_RUN_COLUMNS}, open_steps) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run.run_id, run.status.value, run.tr_url, run.dag_name, run.source,
                 run.created_at, run.finished_at, run.step_count, json.dumps(list(run.problems)),
                 0, 0, 0, 0, "[]", run.created_at, run.timeout, len(steps)),
            )
            if cur.rowcount == 0:
                return False
            self.ops += 1
            db.executemany(
                f"INSERT INTO steps ({_STEP_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [_step_row(pos, s) for pos, s in enumerate(steps)],
            )
            return True

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._tx() as db:
            row = self._exec(db, f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return None if row is None else _run(row)

    def list_runs(self, limit: int, status: RunStatus | None = None) -> list[RunRecord]:
        where, args = ("WHERE status=?", [status.value]) if status else ("", [])
        with self._tx() as db:
            rows = self._exec(
                db, f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY created_at DESC LIMIT ?", [*args, limit]
            ).fetchall()
        return [_run(r) for r in rows]

    def get_step(self, run_id: str, step_id: str) -> StepRecord | None:
        with self._tx() as db:
            return self._get_step(db, run_id, step_id)

    def _get_step(self, db: sqlite3.Connection, run_id: str, step_id: str) -> StepRecord | None:
        row = self._exec(
            db, f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id=? AND step_id=?", (run_id, step_id)
        ).fetchone()
        return None if row is None else _step(row)

    def list_steps(self, run_id: str) -> list[StepRecord]:
        with self._tx() as db:
            rows = self._exec(
                db, f"SELECT {_STEP_COLUMNS} FROM steps WHERE run_id=? ORDER BY pos", (run_id,)
            ).fetchall()
        return [_step(r) for r in rows]

    def claim(self, run_id: str, key: str, now: float, lease: float) -> Claim:
        with self._tx() as db:
            return self._claim(db, run_id, key, now, lease)

    def _claim(self, db: sqlite3.Connection, run_id: str, key: str, now: float, lease: float) -> Claim:
        cur = self._exec(db, "INSERT OR IGNORE INTO claims VALUES (?,?,?,0)", (run_id, key, now))
        if cur.rowcount == 1:
            return Claim.WON
        row = self._exec(
            db, "SELECT claimed_at, settled FROM claims WHERE run_id=? AND key=?", (run_id, key)
        ).fetchone()
        if row[1]:
            return Claim.DONE
        if now - row[0] <= lease:
            return Claim.BUSY
        self._exec(db, "UPDATE claims SET claimed_at=? WHERE run_id=? AND key=?", (now, run_id, key))
        return Claim.WON

    def settle(self, run_id: str, key: str) -> None:
        with self._tx() as db:
            self._settle(db, run_id, key)

    def claim_reading(self, run_id: str, key: str, step_id: str, now: float) -> tuple[Claim, StepRecord | None]:
        with self._tx() as db:  # one transaction: a failed read leaves no claim behind
            return self._claim(db, run_id, key, now, math.inf), self._get_step(db, run_id, step_id)

    def release(self, run_id: str, key: str) -> None:
        with self._tx() as db:
            self._exec(db, "DELETE FROM claims WHERE run_id=? AND key=? AND settled=0", (run_id, key))

    def held_since(self, run_id: str, key: str) -> float | None:
        with self._tx() as db:
            row = self._exec(
                db, "SELECT claimed_at FROM claims WHERE run_id=? AND key=? AND settled=0", (run_id, key)
            ).fetchone()
        return None if row is None else float(row[0])

    def record_submission(self, step: StepRecord, job_id: str, job_state: str, at: float) -> bool:
        with self._tx() as db:
            return self._exec(
                db,
                "UPDATE steps SET state=?, job_id=?, job_state=?, submitted_at=? "
                "WHERE run_id=? AND step_id=? AND state=? AND attempt=?",
                (StepState.RUNNING.value, job_id, job_state, at, step.run_id, step.step_id,
                 StepState.PENDING.value, step.attempt),
            ).rowcount == 1

    def record_job_state(self, run_id: str, step_id: str, job_state: str) -> None:
        with self._tx() as db:
            self._exec(
                db,
                "UPDATE steps SET job_state=? WHERE run_id=? AND step_id=? AND state=?",
                (job_state, run_id, step_id, StepState.RUNNING.value),
            )

    def complete_step(
        self, run_id: str, step_id: str, outcome: StepOutcome, successors: Sequence[str] | None = None,
        free_slot: bool = False,
    ) -> Completion:
        with self._tx() as db:
            done = self._complete(db, run_id, step_id, outcome)
            if free_slot:
                done = replace(done, woke=self._free_slot(db, run_id, step_id, outcome.attempt))
            return done

    def _complete(self, db: sqlite3.Connection, run_id: str, step_id: str, outcome: StepOutcome) -> Completion:
        row = self._exec(
            db,
            "UPDATE steps SET state=?, job_id=CASE WHEN ?='' THEN job_id ELSE ? END, "
            "job_state=?, message=?, finished_at=?, submitted_at=COALESCE(submitted_at, ?) "
            "WHERE run_id=? AND step_id=? AND state IN (?,?) AND attempt=? RETURNING definition",
            (outcome.state.value, outcome.job_id, outcome.job_id, outcome.job_state, outcome.message,
             outcome.at, outcome.submitted_at, run_id, step_id, *_OPEN, outcome.attempt),
        ).fetchone()
        if row is not None:
            release = _released(row[0], outcome.state)
            unblocked = tuple(s for s in release if self._count_down(db, run_id, s) == 0)
            return Completion(True, unblocked, self._count_off(db, run_id, 1, outcome.state, outcome.at) == 0)
        row = self._exec(
            db, "SELECT definition, state FROM steps WHERE run_id=? AND step_id=?", (run_id, step_id)
        ).fetchone()
        if row is None:
            raise NotFound(f"run {run_id!r} has no step {step_id!r}")
        release = _released(row[0], StepState(row[1])) if StepState(row[1]).terminal else []
        return Completion(False, self._unblocked(db, run_id, release), self._done(db, run_id))

    def skip_steps(
        self, run_id: str, step_ids: Sequence[str], reason: str, at: float
    ) -> Completion:
        skipped = 0
        unblocked: list[str] = []
        with self._tx() as db:
            for step_id in step_ids:
                row = self._exec(
                    db, "UPDATE steps SET state=?, message=?, finished_at=? WHERE run_id=? AND step_id=? AND state=? "
                    "RETURNING definition", (StepState.SKIPPED.value, reason, at, run_id, step_id,
                                             StepState.PENDING.value)).fetchone()
                if row is not None:
                    skipped += 1
                    released = _released(row[0], StepState.SKIPPED)
                    unblocked += [s for s in released if self._count_down(db, run_id, s) == 0]
                    continue
                row = self._exec(db, "SELECT definition FROM steps WHERE run_id=? AND step_id=? AND state=?",
                                 (run_id, step_id, StepState.SKIPPED.value)).fetchone()
                if row is not None:  # skipped before: read back what it released
                    unblocked += self._unblocked(db, run_id, _released(row[0], StepState.SKIPPED))
            left = self._count_off(db, run_id, skipped, StepState.SKIPPED, at) if skipped else None
            done = left == 0 if left is not None else self._done(db, run_id)
        return Completion(skipped > 0, tuple(dict.fromkeys(unblocked)), done)

    def fail_steps(
        self, run_id: str, step_ids: Sequence[str], reason: str, at: float
    ) -> Completion:
        return self._end_steps(run_id, step_ids, StepState.FAILED, reason, at)

    def retry_step(self, run_id: str, step_id: str, ended: Attempt, at: float) -> bool:
        with self._tx() as db:
            cur = self._exec(
                db,
                "UPDATE steps SET state=?, attempt=attempt+1, history=json_insert(history, '$[#]', json(?)), "
                "job_id='', job_state='', message='', submitted_at=NULL, finished_at=NULL "
                "WHERE run_id=? AND step_id=? AND state IN (?,?) AND attempt=?",
                (StepState.PENDING.value, json.dumps(ended.to_dict()), run_id, step_id, *_OPEN, ended.attempt),
            )
            return cur.rowcount == 1

    def take_slot(self, run_id: str, step_id: str, attempt: int, limit: int, now: float) -> bool:
        # a slot counts while the attempt that took it is the step's current, open one
        held = "(SELECT COUNT(*) FROM steps WHERE run_id=?1 AND slot IS NOT NULL AND slot=attempt AND state IN (?5,?6))"
        with self._tx() as db:
            row = self._exec(
                db, f"UPDATE steps SET slot=CASE WHEN slot=?3 OR {held} < ?4 THEN ?3 ELSE slot END, "
                f"queued_at=CASE WHEN slot=?3 OR {held} < ?4 THEN NULL ELSE COALESCE(queued_at, ?7) END "
                "WHERE run_id=?1 AND step_id=?2 RETURNING slot",
                (run_id, step_id, attempt, limit, *_OPEN, now)).fetchone()
        if row is None:
            raise NotFound(f"run {run_id!r} has no step {step_id!r}")
        return bool(row[0] == attempt)

    def queue_steps(self, run_id: str, step_ids: Sequence[str], now: float) -> None:
        with self._tx() as db:
            self.ops += 1
            db.executemany("UPDATE steps SET queued_at=COALESCE(queued_at, ?) WHERE run_id=? AND step_id=? "
                           "AND state=? AND (slot IS NULL OR slot!=attempt)",
                           [(now, run_id, s, StepState.PENDING.value) for s in step_ids])

    def free_slot(self, run_id: str, step_id: str, attempt: int) -> str | None:
        with self._tx() as db:
            return self._free_slot(db, run_id, step_id, attempt)

    def _free_slot(self, db: sqlite3.Connection, run_id: str, step_id: str, attempt: int) -> str | None:
        memo = f"{attempt}:"
        row = self._exec(db, "UPDATE steps SET slot=CASE WHEN slot=? THEN NULL ELSE slot END "
                         "WHERE run_id=? AND step_id=? RETURNING woke", (attempt, run_id, step_id)).fetchone()
        if row is None:
            raise NotFound(f"run {run_id!r} has no step {step_id!r}")
        if row[0].startswith(memo):
            return row[0][len(memo):] or None
        head = self._exec(db, "UPDATE steps SET queued_at=NULL WHERE rowid=(SELECT rowid FROM steps WHERE "
                          "run_id=? AND queued_at IS NOT NULL AND state=? AND waiting_on=0 ORDER BY queued_at "
                          "LIMIT 1) RETURNING step_id", (run_id, StepState.PENDING.value)).fetchone()
        woke = head[0] if head else ""
        self._exec(db, "UPDATE steps SET woke=? WHERE run_id=? AND step_id=?", (memo + woke, run_id, step_id))
        return woke or None

    def cancel_steps(
        self, run_id: str, step_ids: Sequence[str], reason: str, at: float
    ) -> Completion:
        return self._end_steps(run_id, step_ids, StepState.CANCELLED, reason, at)

    def _end_steps(self, run_id: str, step_ids: Sequence[str], state: StepState, reason: str,
                   at: float) -> Completion:
        """Mark open steps `state`, releasing nothing: the run is being stopped."""
        with self._tx() as db:
            self.ops += 1
            cur = db.executemany(
                "UPDATE steps SET state=?, message=?, finished_at=? "
                "WHERE run_id=? AND step_id=? AND state IN (?,?)",
                [(state.value, reason, at, run_id, s, *_OPEN) for s in step_ids],
            )
            ended = max(cur.rowcount, 0)
            if ended:
                return Completion(True, (), self._count_off(db, run_id, ended, state, at) == 0)
            return Completion(False, (), self._done(db, run_id))

    def rerun_steps(self, run_id: str, reruns: int, steps: Sequence[StepRecord], at: float) -> bool:
        moved = Counter(_ENDED_COLUMN[s.history[-1].state] for s in steps)
        back = "".join(f", {column}={column}-{n}" for column, n in moved.items())
        with self._tx() as db:
            cur = self._exec(
                db,
                "UPDATE runs SET status=?, finished_at=NULL, updated_at=?, open_steps=open_steps+?, "
                "reruns=json_insert(reruns, "
                f"'$[#]', ?){back} WHERE run_id=? AND json_array_length(reruns)=?",
                (RunStatus.RUNNING.value, at, len(steps), at, run_id, reruns),
            )
            if cur.rowcount != 1:
                return False
            self.ops += 1
            db.executemany(
                "UPDATE steps SET state=?, waiting_on=?, job_id='', job_state='', message='', submitted_at=NULL, "
                "finished_at=NULL, attempt=?, history=?, slot=NULL, queued_at=NULL, woke='' "
                "WHERE run_id=? AND step_id=?",
                [(s.state.value, s.waiting_on, s.attempt, json.dumps([a.to_dict() for a in s.history]), run_id,
                  s.step_id) for s in steps],
            )
            return True

    def finish_run(self, run_id: str, status: RunStatus, at: float) -> bool:
        with self._tx() as db:
            cur = self._exec(
                db,
                "UPDATE runs SET status=?, finished_at=? WHERE run_id=? AND status=?",
                (status.value, at, run_id, RunStatus.RUNNING.value),
            )
            return cur.rowcount == 1

    def _settle(self, db: sqlite3.Connection, run_id: str, key: str) -> None:
        self._exec(db, "UPDATE claims SET settled=1 WHERE run_id=? AND key=?", (run_id, key))

    def _count_off(self, db: sqlite3.Connection, run_id: str, n: int, ended: StepState, at: float) -> int:
        """Take `n` off the run's open steps and add them to those ended `ended` (progress at
        `at`); the open count left."""
        column = _ENDED_COLUMN[ended]
        sql = (f"UPDATE runs SET open_steps=open_steps-?, {column}={column}+?, updated_at=MAX(updated_at, ?) "
               "WHERE run_id=? RETURNING open_steps")
        return int(self._exec(db, sql, (n, n, at, run_id)).fetchone()[0])

    def heartbeat(self, run_id: str, step_id: str, at: float, spacing: float) -> None:
        with self._tx() as db:
            self._exec(db, "UPDATE steps SET checked_at=? WHERE run_id=? AND step_id=?", (at, run_id, step_id))
            self._exec(db, "UPDATE runs SET updated_at=? WHERE run_id=? AND updated_at<?", (at, run_id, at - spacing))

    def stale_runs(self, before: float, limit: int) -> list[RunRecord]:
        with self._tx() as db:
            rows = self._exec(db, f"SELECT {_RUN_COLUMNS} FROM runs WHERE status=? AND updated_at<? "
                              "ORDER BY updated_at LIMIT ?", (RunStatus.RUNNING.value, before, limit)).fetchall()
        return [_run(r) for r in rows]

    def _count_down(self, db: sqlite3.Connection, run_id: str, step_id: str) -> int:
        """Take one off a step's join counter; the count left."""
        sql = "UPDATE steps SET waiting_on=waiting_on-1 WHERE run_id=? AND step_id=? RETURNING waiting_on"
        return int(self._exec(db, sql, (run_id, step_id)).fetchone()[0])

    def _unblocked(
        self, db: sqlite3.Connection, run_id: str, release: Sequence[str]
    ) -> tuple[str, ...]:
        if not release:
            return ()
        found: list[str] = []
        for chunk_start in range(0, len(release), 500):
            chunk = list(release[chunk_start : chunk_start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._exec(
                db,
                f"SELECT step_id FROM steps WHERE run_id=? AND waiting_on=0 "
                f"AND step_id IN ({marks})",
                (run_id, *chunk),
            ).fetchall()
            found.extend(r[0] for r in rows)
        order = {s: i for i, s in enumerate(release)}
        return tuple(sorted(found, key=order.__getitem__))

    def _done(self, db: sqlite3.Connection, run_id: str) -> bool:
        row = self._exec(db, "SELECT open_steps FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return row is not None and row[0] == 0


def _step_row(pos: int, s: StepRecord) -> tuple[Any, ...]:
    definition = {"task": s.task.to_dict(), "dependsOn": s.depends_on, "successors": s.successors,
                  "policy": s.policy.to_dict(), "anyEnd": s.waits_for_any_end, "maxParallel": s.max_parallel}
    return (
        s.run_id, s.step_id, pos, json.dumps(definition), s.tr_url, s.tr_auth, s.state.value, s.waiting_on,
        s.job_id, s.job_state, s.message, s.submitted_at, s.finished_at, s.attempt,
        json.dumps([a.to_dict() for a in s.history]), s.checked_at,
    )


def _released(definition: str, ended: StepState) -> list[str]:
    """The successors whose join counter an end `ended` of the step takes one off."""
    parsed = json.loads(definition)
    released: list[str] = parsed["successors"] if ended is StepState.SUCCEEDED else parsed.get("anyEnd", [])
    return released


def _step(row: Sequence[Any]) -> StepRecord:
    definition = json.loads(row[3])
    return StepRecord(
        run_id=row[0], step_id=row[1], task=Task.from_dict(definition["task"]), tr_url=row[4],
        tr_auth=row[5], depends_on=tuple(definition["dependsOn"]),
        successors=tuple(definition["successors"]), state=StepState(row[6]), waiting_on=row[7],
        job_id=row[8], job_state=row[9], message=row[10], submitted_at=row[11], finished_at=row[12],
        attempt=row[13], history=tuple(Attempt.from_dict(a) for a in json.loads(row[14])), checked_at=row[15],
        policy=Policy.from_dict(definition.get("policy", {})), waits_for_any_end=tuple(definition.get("anyEnd", ())),
        max_parallel=definition.get("maxParallel", 0),
    )


def _run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0], status=RunStatus(row[1]), tr_url=row[2], dag_name=row[3],
        source=row[4], created_at=row[5], finished_at=row[6], step_count=row[7],
        problems=tuple(json.loads(row[8])), succeeded=row[9], failed=row[10], skipped=row[11], cancelled=row[12],
        reruns=tuple(json.loads(row[13])), updated_at=row[14], timeout=row[15],
    )
