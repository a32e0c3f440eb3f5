"""RunPages: the reads the run pages make, shaped so a page costs little on Firestore.

A page of runs is one query; a refresh of an open run page reads the run's own record and
the steps that moved since the last refresh (one query), never the whole run again.
"""

from __future__ import annotations

from typing import Protocol

from ..model.records import RunRecord, StepRecord
from ..model.states import RunStatus


class RunPages(Protocol):
    def runs_page(self, limit: int, status: RunStatus | None = None, before: float | None = None) -> list[RunRecord]:
        """At most `limit` runs created before `before` (None: from the newest), newest
        first, optionally of one status; one query."""

    def run_head(self, run_id: str) -> RunRecord | None:
        """The run as its own record holds it, in one read: its status, times and reruns.
        Its counts by state may lag while it runs (Firestore keeps a running run's counts
        apart, in shards that `RunStore.get_run` reads); once it ended they are exact."""

    def steps_changed(self, run_id: str, since: float) -> list[StepRecord]:
        """The run's steps submitted or ended at or after `since`, in DAG-file order: one
        query (an empty answer costs one document read on Firestore)."""
