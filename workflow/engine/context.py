"""What every handler gets (`Ports`) and the few things they all do: find a run or a
step, publish a dispatch, do a side effect once under a claim, label a log line.

Retry contract: a TransientError propagates so the bus redelivers later; PoisonMessage
means drop the message after logging it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import PoisonMessage, TransientError
from ..model.messages import CheckJob, DispatchStep
from ..model.records import Claim, RunRecord, StepOutcome, StepRecord
from ..ports import Bus, Events, StateStore, TaskRunner
from ..settings import Settings

log = logging.getLogger("workflow.engine")


@dataclass(frozen=True)
class Ports:
    store: StateStore  # reached by role: store.runs, store.steps, store.claims, store.slots
    bus: Bus
    runner: TaskRunner
    settings: Settings = field(default_factory=Settings)
    clock: Callable[[], float] = time.time
    events: Events | None = None  # where a run's end is announced; None: nowhere


class Busy(TransientError):
    """Another delivery of the same message holds the claim: try again later."""


def dispatch(ports: Ports, run_id: str, step_ids: Sequence[str], attempt: int = 0, max_parallel: int = 0,
             delay: float = 0.0) -> None:
    """Publish a DispatchStep per step, carrying `attempt` unless a limit applies (a slot
    comes before the claim) or it is not known (0)."""
    ports.bus.publish([DispatchStep(run_id, s, 0 if max_parallel else attempt) for s in step_ids], delay=delay)


def free_slot(ports: Ports, run_id: str, step_id: str, attempt: int) -> None:
    """Give back the slot the step's attempt holds, and dispatch the step it wakes."""
    woke = ports.store.slots.free_slot(run_id, step_id, attempt)
    if woke:
        dispatch(ports, run_id, [woke])


def once(ports: Ports, run_id: str, key: str, effect: Callable[[], None]) -> None:
    """Do `effect` under the claim `key`: skipped once settled, retried later (Busy) while
    another delivery holds it, retaken after the check lease if that holder vanished."""
    claim = ports.store.claims.claim(run_id, key, ports.clock(), ports.settings.check_lease)
    if claim is Claim.DONE:
        return
    if claim is Claim.BUSY:
        raise Busy(f"{key!r} of run {run_id!r} is being done elsewhere")
    effect()
    ports.store.claims.settle(run_id, key)


def submit_key(step_id: str, attempt: int) -> str:
    """The claim on submitting an attempt's job (the first keeps the plain form)."""
    return f"submit:{step_id}" if attempt == 1 else f"submit:{step_id}#{attempt}"


def recorded_outcome(step: StepRecord) -> StepOutcome:
    """The end recorded on a step, as the outcome that recorded it."""
    return StepOutcome(step.state, step.finished_at or 0.0, step.job_id, step.message, step.job_state, step.attempt)


def run_of(ports: Ports, run_id: str) -> RunRecord:
    run = ports.store.runs.get_run(run_id)
    if run is None:
        raise PoisonMessage(f"no run {run_id!r}")
    return run


def step_of(ports: Ports, run_id: str, step_id: str) -> StepRecord:
    return found(ports.store.steps.get_step(run_id, step_id), run_id, step_id)


def found(step: StepRecord | None, run_id: str, step_id: str) -> StepRecord:
    if step is None:
        raise PoisonMessage(f"run {run_id!r} has no step {step_id!r}")
    return step


def ids(of: StepRecord | CheckJob | str, step_id: str = "") -> dict[str, Any]:
    """The ids a log line carries: a step's (as read, or from its check), or a run id and a step id."""
    if isinstance(of, str):
        return {"run_id": of, "step_id": step_id}
    return {"run_id": of.run_id, "step_id": of.step_id}
