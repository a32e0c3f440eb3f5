"""SlotStore on SQLite: a step holds a slot while its column `slot` names its current,
open attempt; `queued_at` marks a step waiting for one; `woke` remembers which step a
release woke, so a repeated release wakes the same one."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ....errors import NotFound
from ....model.states import StepState
from .database import SqliteDatabase


class SqliteSlots(SqliteDatabase):
    def take_slot(self, run_id: str, step_id: str, attempt: int, limit: int, now: float) -> bool:
        # a slot counts while the attempt that took it is the step's current, open one
        held = "(SELECT COUNT(*) FROM steps WHERE run_id=?1 AND slot IS NOT NULL AND slot=attempt AND state IN (?5,?6))"
        with self._tx() as db:
            row = self._exec(
                db, f"UPDATE steps SET slot=CASE WHEN slot=?3 OR {held} < ?4 THEN ?3 ELSE slot END, "
                f"queued_at=CASE WHEN slot=?3 OR {held} < ?4 THEN NULL ELSE COALESCE(queued_at, ?7) END "
                "WHERE run_id=?1 AND step_id=?2 RETURNING slot",
                (run_id, step_id, attempt, limit, StepState.PENDING.value, StepState.RUNNING.value, now)).fetchone()
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
