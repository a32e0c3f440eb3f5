"""StateStore on SQLite: a file by default, ":memory:" for tests. One module per role."""

from __future__ import annotations

from typing import Self

from .claims import SqliteClaims
from .runs import SqliteRuns
from .steps import SqliteSteps


class SqliteStateStore(SqliteRuns, SqliteSteps, SqliteClaims):
    """Plays every role of the StateStore port: runs, steps (with their slots) and claims."""

    @property
    def runs(self) -> Self:
        return self

    @property
    def steps(self) -> Self:
        return self

    @property
    def claims(self) -> Self:
        return self

    @property
    def slots(self) -> Self:
        return self


__all__ = ["SqliteStateStore"]
