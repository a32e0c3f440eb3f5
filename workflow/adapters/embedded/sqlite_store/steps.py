"""StepStore on SQLite: the `steps` table, each transition (`model.transitions`) one
conditional UPDATE in the transaction that also moves the run's counts and the join
counters it releases (`model.join`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import replace

from ....errors import NotFound
from ....model.join import released_by
from ....model.records import Attempt, Completion, StepOutcome, StepRecord
from ....model.states import StepState
from ....model.transitions import END, RETRY, SUBMIT, Transition, ending
from .database import STEP_COLUMNS, step_of
from .slots import SqliteSlots


def _in(rule: Transition) -> str:
    """`state IN (...)` of the states `rule` leaves (`?` marks, for `_states(rule)`)."""
    return f"state IN ({','.join('?' * len(rule.from_states))})"


def _states(rule: Transition) -> list[str]:
    return sorted(s.value for s in rule.from_states)


class SqliteSteps(SqliteSlots):
    """A step's end frees its slot in the same transaction, so steps come with the slots."""

    def get_step(self, run_id: str, step_id: str) -> StepRecord | None:
        with self._tx() as db:
            return self._get_step(db, run_id, step_id)

    def list_steps(self, run_id: str) -> list[StepRecord]:
        with self._tx() as db:
            rows = self._exec(db, f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id=? ORDER BY pos", (run_id,)).fetchall()
        return [step_of(r) for r in rows]

    def record_submission(self, step: StepRecord, job_id: str, job_state: str, at: float) -> bool:
        with self._tx() as db:
            return self._exec(
                db,
                "UPDATE steps SET state=?, job_id=?, job_state=?, submitted_at=? "
                f"WHERE run_id=? AND step_id=? AND {_in(SUBMIT)} AND attempt=?",
                (StepState.RUNNING.value, job_id, job_state, at, step.run_id, step.step_id, *_states(SUBMIT),
                 step.attempt),
            ).rowcount == 1

    def record_job_state(self, step: StepRecord, job_state: str) -> None:
        with self._tx() as db:
            self._exec(db, "UPDATE steps SET job_state=? WHERE run_id=? AND step_id=? AND state=? AND attempt=?",
                       (job_state, step.run_id, step.step_id, StepState.RUNNING.value, step.attempt))

    def complete_step(self, run_id: str, step_id: str, outcome: StepOutcome, successors: Sequence[str] | None = None,
                      free_slot: bool = False) -> Completion:
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
            f"WHERE run_id=? AND step_id=? AND {_in(END)} AND attempt=? RETURNING definition",
            (outcome.state.value, outcome.job_id, outcome.job_id, outcome.job_state, outcome.message,
             outcome.at, outcome.submitted_at, run_id, step_id, *_states(END), outcome.attempt),
        ).fetchone()
        if row is not None:
            unblocked = self._count_down(db, run_id, released_by(json.loads(row[0]), outcome.state))
            return Completion(True, tuple(unblocked), self._count_off(db, run_id, 1, outcome.state, outcome.at) == 0)
        row = self._exec(db, "SELECT definition, state FROM steps WHERE run_id=? AND step_id=?",
                         (run_id, step_id)).fetchone()
        if row is None:
            raise NotFound(f"run {run_id!r} has no step {step_id!r}")
        recorded = StepState(row[1])
        release = released_by(json.loads(row[0]), recorded) if recorded.terminal else []
        return Completion(False, self._unblocked(db, run_id, release), self._done(db, run_id))

    def end_steps(self, run_id: str, step_ids: Sequence[str], state: StepState, reason: str,
                  at: float) -> Completion:
        rule = ending(state)
        with self._tx() as db:
            if rule.releases:
                return self._end_releasing(db, rule, run_id, step_ids, state, reason, at)
            self.ops += 1
            cur = db.executemany(
                f"UPDATE steps SET state=?, message=?, finished_at=? WHERE run_id=? AND step_id=? AND {_in(rule)}",
                [(state.value, reason, at, run_id, s, *_states(rule)) for s in step_ids],
            )
            ended = max(cur.rowcount, 0)
            if ended:
                return Completion(True, (), self._count_off(db, run_id, ended, state, at) == 0)
            return Completion(False, (), self._done(db, run_id))

    def _end_releasing(self, db: sqlite3.Connection, rule: Transition, run_id: str, step_ids: Sequence[str],
                       state: StepState, reason: str, at: float) -> Completion:
        """Each step ended in its own statement, with the join counters its end releases;
        a step ended so before reads back what it released."""
        ended, unblocked = 0, []
        for step_id in step_ids:
            row = self._exec(db, "UPDATE steps SET state=?, message=?, finished_at=? "
                             f"WHERE run_id=? AND step_id=? AND {_in(rule)} RETURNING definition",
                             (state.value, reason, at, run_id, step_id, *_states(rule))).fetchone()
            if row is not None:
                ended += 1
                unblocked += self._count_down(db, run_id, released_by(json.loads(row[0]), state))
                continue
            row = self._exec(db, "SELECT definition FROM steps WHERE run_id=? AND step_id=? AND state=?",
                             (run_id, step_id, state.value)).fetchone()
            if row is not None:
                unblocked += self._unblocked(db, run_id, released_by(json.loads(row[0]), state))
        left = self._count_off(db, run_id, ended, state, at) if ended else None
        done = left == 0 if left is not None else self._done(db, run_id)
        return Completion(ended > 0, tuple(dict.fromkeys(unblocked)), done)

    def retry_step(self, run_id: str, step_id: str, ended: Attempt, at: float) -> bool:
        with self._tx() as db:
            cur = self._exec(
                db,
                "UPDATE steps SET state=?, attempt=attempt+1, history=json_insert(history, '$[#]', json(?)), "
                "job_id='', job_state='', message='', submitted_at=NULL, finished_at=NULL "
                f"WHERE run_id=? AND step_id=? AND {_in(RETRY)} AND attempt=?",
                (StepState.PENDING.value, json.dumps(ended.to_dict()), run_id, step_id, *_states(RETRY),
                 ended.attempt),
            )
            return cur.rowcount == 1

    def heartbeat(self, run_id: str, step_id: str, at: float, spacing: float) -> None:
        with self._tx() as db:
            self._exec(db, "UPDATE steps SET checked_at=? WHERE run_id=? AND step_id=?", (at, run_id, step_id))
            self._exec(db, "UPDATE runs SET updated_at=? WHERE run_id=? AND updated_at<?", (at, run_id, at - spacing))
