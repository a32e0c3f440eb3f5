"""StateStore on SQLite: a file by default, ":memory:" for tests. One module per role."""

from __future__ import annotations

from ...roles import EveryRole
from .claims import SqliteClaims
from .pages import SqlitePages
from .runs import SqliteRuns
from .steps import SqliteSteps


class SqliteStateStore(SqliteRuns, SqliteSteps, SqliteClaims, SqlitePages, EveryRole):
    """Plays every role of the StateStore port: runs, steps (with their slots) and claims;
    and the run pages' reads (`ports.pages.RunPages`)."""


__all__ = ["SqliteStateStore"]
