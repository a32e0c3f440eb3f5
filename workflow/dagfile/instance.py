"""A run's own DAG: the file's DAG with the run's parameter values checked and substituted,
and its forEach steps expanded, ready for StartRun (`instantiate`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..model.dag import Dag
from ..model.inputs import RunInputs


@dataclass(frozen=True)
class RunContext:
    """What a run's placeholders may name besides its parameters (`run.id`, `run.date`,
    `run.scheduledTime`), and what is recorded with it."""

    run_id: str
    started_at: float  # epoch seconds: `run.date` when there is no schedule tick
    scheduled_at: float | None = None  # a schedule's tick
    schedule: str = ""
    started_by: str = ""


def instantiate(dag: Dag, given: Mapping[str, Any], run: RunContext, origin: str) -> tuple[Dag, RunInputs]:
    """The run's DAG and what to record with it; `DagInvalid` (from `origin`) naming every
    parameter or placeholder problem."""
    inputs = RunInputs({}, run.scheduled_at, run.schedule, run.started_by, {})
    return dag, inputs
