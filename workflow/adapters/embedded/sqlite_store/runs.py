"""RunStore on SQLite: the `runs` table (a run, its open-step count and its counts by state)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from ....model.records import RunRecord, StepRecord
from ....model.states import RunStatus
from ....model.stored import definition_of, history_of
from .database import ENDED_COLUMN, RUN_COLUMNS, STEP_FIELDS, SqliteDatabase, run_of, step_row


class SqliteRuns(SqliteDatabase):
    def move_task_runner(self, run_id: str, tr_url: str) -> None:
        """Point the run and its steps at the Task Runner now at `tr_url` (the command line's
        `resume` and `rerun --tr-hostname`, on this store only: one transaction)."""
        with self._tx() as db:
            self._exec(db, "UPDATE runs SET tr_url=? WHERE run_id=?", (tr_url, run_id))
            self._exec(db, "UPDATE steps SET tr_url=? WHERE run_id=?", (tr_url, run_id))

    def create_run(self, run: RunRecord, steps: Sequence[StepRecord]) -> bool:
        with self._tx() as db:
            cur = self._exec(
                db,
                f"INSERT OR IGNORE INTO runs ({RUN_COLUMNS}, open_steps) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run.run_id, run.status.value, run.tr_url, run.dag_name, run.source,
                 run.created_at, run.finished_at, run.step_count, json.dumps(list(run.problems)),
                 0, 0, 0, 0, "[]", run.created_at, run.timeout, json.dumps(run.inputs.to_dict()),
                 len(steps)),
            )
            if cur.rowcount == 0:
                return False
            self.ops += 1
            marks = ",".join("?" * len(STEP_FIELDS))
            db.executemany(f"INSERT INTO steps ({', '.join(STEP_FIELDS)}) VALUES ({marks})",
                           [step_row(pos, s) for pos, s in enumerate(steps)])
            return True

    def get_run(self, run_id: str) -> RunRecord | None:
        with self._tx() as db:
            row = self._exec(db, f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return None if row is None else run_of(row)

    def list_runs(self, limit: int, status: RunStatus | None = None) -> list[RunRecord]:
        where, args = ("WHERE status=?", [status.value]) if status else ("", [])
        with self._tx() as db:
            rows = self._exec(
                db, f"SELECT {RUN_COLUMNS} FROM runs {where} ORDER BY created_at DESC LIMIT ?", [*args, limit]
            ).fetchall()
        return [run_of(r) for r in rows]

    def stale_runs(self, before: float, limit: int) -> list[RunRecord]:
        with self._tx() as db:
            rows = self._exec(db, f"SELECT {RUN_COLUMNS} FROM runs WHERE status=? AND updated_at<? "
                              "ORDER BY updated_at LIMIT ?", (RunStatus.RUNNING.value, before, limit)).fetchall()
        return [run_of(r) for r in rows]

    def running_of_schedule(self, schedule: str, limit: int) -> list[RunRecord]:
        with self._tx() as db:
            rows = self._exec(db, f"SELECT {RUN_COLUMNS} FROM runs WHERE status=? AND "
                              "json_extract(inputs, '$.schedule')=? ORDER BY created_at LIMIT ?",
                              (RunStatus.RUNNING.value, schedule, limit)).fetchall()
        return [run_of(r) for r in rows]

    def finish_run(self, run_id: str, status: RunStatus, at: float) -> bool:
        with self._tx() as db:
            cur = self._exec(db, "UPDATE runs SET status=?, finished_at=? WHERE run_id=? AND status=?",
                             (status.value, at, run_id, RunStatus.RUNNING.value))
            return cur.rowcount == 1

    def rerun_steps(self, run_id: str, reruns: int, steps: Sequence[StepRecord], at: float) -> bool:
        moved = Counter(ENDED_COLUMN[s.history[-1].state] for s in steps)
        back = "".join(f", {column}={column}-{n}" for column, n in moved.items())
        with self._tx() as db:
            cur = self._exec(
                db,
                "UPDATE runs SET status=?, finished_at=NULL, updated_at=?, open_steps=open_steps+?, "
                f"reruns=json_insert(reruns, '$[#]', ?){back} WHERE run_id=? AND json_array_length(reruns)=?",
                (RunStatus.RUNNING.value, at, len(steps), at, run_id, reruns),
            )
            if cur.rowcount != 1:
                return False
            self.ops += 1
            db.executemany(
                "UPDATE steps SET state=?, waiting_on=?, job_id='', job_state='', message='', submitted_at=NULL, "
                "finished_at=NULL, attempt=?, history=?, slot=NULL, queued_at=NULL, woke='', definition=?, tr_auth=? "
                "WHERE run_id=? AND step_id=?",
                [(s.state.value, s.waiting_on, s.attempt, json.dumps(history_of(s)), json.dumps(definition_of(s)),
                  s.tr_auth, run_id, s.step_id) for s in steps],
            )
            return True
