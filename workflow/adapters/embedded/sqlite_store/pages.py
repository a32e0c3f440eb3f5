"""RunPages on SQLite: pages of the `runs` table, and a run's steps that moved since a time."""

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

    def steps_since(self, run_id: str, since: float, ended: bool) -> list[StepRecord]:
        moved = "submitted_at>=?" + (" OR finished_at>=?" if ended else "")
        args = (run_id, since, since) if ended else (run_id, since)
        with self._tx() as db:
            rows = self._exec(db, f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id=? AND ({moved}) ORDER BY pos",
                              args).fetchall()
        return [step_of(r) for r in rows]
