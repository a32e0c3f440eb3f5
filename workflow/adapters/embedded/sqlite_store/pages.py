"""RunPages on SQLite: pages of the `runs` table, a run's row, and its steps that moved since a time."""

from __future__ import annotations

from typing import Any

from ....model.records import RunRecord, StepRecord
from ....model.states import RunStatus
from .database import RUN_COLUMNS, STEP_COLUMNS, SqliteDatabase, run_of, step_of


class SqlitePages(SqliteDatabase):
    def runs_page(self, limit: int, status: RunStatus | None = None, before: float | None = None) -> list[RunRecord]:
        where: list[str] = []
        args: list[Any] = []
        if status is not None:
            where.append("status=?")
            args.append(status.value)
        if before is not None:
            where.append("created_at<?")
            args.append(before)
        sql = (f"SELECT {RUN_COLUMNS} FROM runs {'WHERE ' + ' AND '.join(where) if where else ''} "
               "ORDER BY created_at DESC LIMIT ?")
        with self._tx() as db:
            rows = self._exec(db, sql, [*args, limit]).fetchall()
        return [run_of(r) for r in rows]

    def run_head(self, run_id: str) -> RunRecord | None:
        """The run's row, counts included (SQLite keeps them on it)."""
        with self._tx() as db:
            row = self._exec(db, f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return None if row is None else run_of(row)

    def steps_changed(self, run_id: str, since: float) -> list[StepRecord]:
        with self._tx() as db:
            rows = self._exec(db, f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id=? AND "
                                  "(submitted_at>=? OR finished_at>=?) ORDER BY pos", (run_id, since, since)).fetchall()
        return [step_of(r) for r in rows]
