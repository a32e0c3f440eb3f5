"""RunStore: a run's record, its counts by state, and its life as a whole."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..model.records import RunRecord, StepRecord
from ..model.states import RunStatus


class RunStore(Protocol):
    def create_run(self, run: RunRecord, steps: Sequence[StepRecord]) -> bool:
        """Create the run and its steps unless the run exists; True when this call created it.
        Idempotent: a call repeated after a crash completes the steps a first call left out
        and never resets a step that has moved on."""

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def list_runs(self, limit: int, status: RunStatus | None = None) -> list[RunRecord]:
        """The most recent runs first (by `created_at`), optionally of one status; one query."""

    def stale_runs(self, before: float, limit: int) -> list[RunRecord]:
        """RUNNING runs whose `updated_at` is before `before`, stalest first, at most
        `limit` (one query; a store that keeps a run's progress spread over documents also
        reads those of each run found, and may move its `updated_at` forward to them)."""

    def running_of_schedule(self, schedule: str, limit: int) -> list[RunRecord]:
        """RUNNING runs started for the schedule `schedule` (their `inputs.schedule`), at
        most `limit`, oldest first (one query)."""

    def finish_run(self, run_id: str, status: RunStatus, at: float) -> bool:
        """Set a RUNNING run's final status. True if this call set it; idempotent."""

    def rerun_steps(self, run_id: str, reruns: int, steps: Sequence[StepRecord], at: float) -> bool:
        """Start the next attempt of each of `steps` (ended steps of the run, given as they
        must become by `transitions.RERUN`: PENDING, next attempt, their earlier attempt added
        to `history`, join counters recomputed; their task, policy and sealed token written as
        given), reopen the run (RUNNING, counts moved back)
        and note the rerun. Only if the run has had exactly `reruns` reruns: True when this
        call did it; a repeated request changes nothing. Atomic on SQLite; on Firestore the
        rerun marker is written last, so a crashed call is completed by its redelivery."""
