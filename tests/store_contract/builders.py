"""Runs to test a store with."""

from __future__ import annotations

import uuid
from typing import Any

from workflow.model.dag import Policy, RunIf, Task
from workflow.model.records import RunRecord, StepOutcome, StepRecord
from workflow.model.states import RunStatus, StepState


def make_run(store: Any, spec: dict[str, list[str]], any_end: frozenset[str] = frozenset()) -> str:
    """A run of `spec` ({step: dependencies}); the steps in `any_end` wait for any end of theirs."""
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    succ: dict[str, list[str]] = {s: [] for s in spec}
    for s, deps in spec.items():
        for d in deps:
            succ[d].append(s)
    steps = [
        StepRecord(run_id, s, Task(s, f"img/{s}", ("--x", "1")), tr_url="http://runner", tr_auth="sealed",
                   depends_on=tuple(deps), successors=tuple(succ[s]), waiting_on=len(deps),
                   policy=Policy(retries=2, run_if=RunIf.ALL_DONE if s in any_end else RunIf.ALL_SUCCEEDED),
                   waits_for_any_end=tuple(x for x in succ[s] if x in any_end), max_parallel=2)
        for s, deps in spec.items()
    ]
    run = RunRecord(run_id, RunStatus.RUNNING, "http://runner", "name", "inline", 1.0, step_count=len(spec))
    assert store.create_run(run, steps) is True
    return run_id


def ok(at: float = 2.0, job: str = "job-1") -> StepOutcome:
    return StepOutcome(StepState.SUCCEEDED, at, job, "", "SUCCEEDED")
