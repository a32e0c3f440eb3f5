"""The events the executor publishes for the world outside it (JSON schema version 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .records import RunRecord, StepRecord
from .states import StepState

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunEnded:
    """A run ended (SUCCEEDED, FAILED, CANCELLED or INVALID); one event per end, reruns included."""

    run: RunRecord
    failed_steps: tuple[tuple[str, str], ...] = ()  # (step id, message) of each FAILED step

    @classmethod
    def of(cls, run: RunRecord, steps: list[StepRecord]) -> RunEnded:
        return cls(run, tuple((s.step_id, s.message) for s in steps if s.state is StepState.FAILED))

    @property
    def key(self) -> str:
        """Names this end among the run's ends (one per rerun)."""
        return f"ended#{len(self.run.reruns)}"

    def to_dict(self) -> dict[str, Any]:
        r = self.run
        return {
            "schema_version": SCHEMA_VERSION, "type": "run.ended", "run_id": r.run_id, "dag_name": r.dag_name,
            "source": r.source, "status": r.status.value, "started_at": r.created_at, "ended_at": r.finished_at,
            "reruns": len(r.reruns),
            "counts": {"steps": r.step_count, "succeeded": r.succeeded, "failed": r.failed, "skipped": r.skipped,
                       "cancelled": r.cancelled},
            "failed_steps": [{"step_id": s, "message": m} for s, m in self.failed_steps],
            "problems": list(r.problems),
        }
