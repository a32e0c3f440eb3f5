"""RunPages: the reads the run pages make, shaped so a page costs little on Firestore.

A page of runs is one query; a refresh of an open run page reads the run and the steps
that moved since the last refresh, never the whole run again.
"""

from __future__ import annotations

from typing import Protocol

from ..model.records import RunRecord, StepRecord
from ..model.states import RunStatus


class RunPages(Protocol):
    def runs_page(self, limit: int, status: RunStatus | None = None, before: float | None = None) -> list[RunRecord]:
        """At most `limit` runs created before `before` (None: from the newest), newest
        first, optionally of one status; one query."""

    def steps_since(self, run_id: str, since: float, ended: bool) -> list[StepRecord]:
        """The run's steps submitted at or after `since` and, with `ended`, also those that
        ended at or after it, in DAG-file order: one query each (an empty answer costs one
        document read on Firestore)."""
