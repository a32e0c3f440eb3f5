"""ClaimStore on SQLite: the `claims` table, a row per side effect to perform once."""

from __future__ import annotations

import math
import sqlite3

from ....model.records import Claim, StepRecord
from .database import SqliteDatabase


class SqliteClaims(SqliteDatabase):
    def claim(self, run_id: str, key: str, now: float, lease: float) -> Claim:
        with self._tx() as db:
            return self._claim(db, run_id, key, now, lease)

    def _claim(self, db: sqlite3.Connection, run_id: str, key: str, now: float, lease: float) -> Claim:
        cur = self._exec(db, "INSERT OR IGNORE INTO claims VALUES (?,?,?,0)", (run_id, key, now))
        if cur.rowcount == 1:
            return Claim.WON
        row = self._exec(db, "SELECT claimed_at, settled FROM claims WHERE run_id=? AND key=?",
                         (run_id, key)).fetchone()
        if row[1]:
            return Claim.DONE
        if now - row[0] <= lease:
            return Claim.BUSY
        self._exec(db, "UPDATE claims SET claimed_at=? WHERE run_id=? AND key=?", (now, run_id, key))
        return Claim.WON

    def settle(self, run_id: str, key: str) -> None:
        with self._tx() as db:
            self._exec(db, "UPDATE claims SET settled=1 WHERE run_id=? AND key=?", (run_id, key))

    def claim_reading(self, run_id: str, key: str, step_id: str, now: float) -> tuple[Claim, StepRecord | None]:
        with self._tx() as db:  # one transaction: a failed read leaves no claim behind
            return self._claim(db, run_id, key, now, math.inf), self._get_step(db, run_id, step_id)

    def release(self, run_id: str, key: str) -> None:
        with self._tx() as db:
            self._exec(db, "DELETE FROM claims WHERE run_id=? AND key=? AND settled=0", (run_id, key))

    def held_since(self, run_id: str, key: str) -> float | None:
        with self._tx() as db:
            row = self._exec(db, "SELECT claimed_at FROM claims WHERE run_id=? AND key=? AND settled=0",
                             (run_id, key)).fetchone()
        return None if row is None else float(row[0])
