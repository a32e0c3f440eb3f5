"""What the state store keeps about a run and its steps."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .dag import Task
from .states import RunStatus, StepState


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    status: RunStatus
    tr_url: str
    dag_name: str = ""
    source: str = ""  # where the DAG came from: a path, gs:// URI or "inline"
    created_at: float = 0.0
    finished_at: float | None = None
    step_count: int = 0
    problems: tuple[str, ...] = ()  # the validation report of an INVALID run
    succeeded: int = 0  # steps ended so far, by how (kept by the store)
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class StepRecord:
    run_id: str
    step_id: str
    task: Task
    tr_url: str = ""  # the run's Task Runner, copied here so a handler needs one read
    tr_auth: str = ""  # a sealed bearer token for it, or "" for the runtime's own identity
    depends_on: tuple[str, ...] = ()
    successors: tuple[str, ...] = ()
    state: StepState = StepState.PENDING
    waiting_on: int = 0  # join counter: dependencies not yet SUCCEEDED
    job_id: str = ""
    job_state: str = ""  # the Task Runner's last reported state
    message: str = ""
    submitted_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class StepOutcome:
    """How a step ended."""

    state: StepState
    at: float
    job_id: str = ""
    message: str = ""
    job_state: str = ""


@dataclass(frozen=True)
class Completion:
    """What recording a step's end changed.

    `recorded` is False when the end was already recorded (a redelivery); `unblocked`
    and `run_complete` are then read back, so a redelivery can finish the work that a
    crashed first attempt recorded but did not publish.
    """

    recorded: bool
    unblocked: tuple[str, ...] = ()
    run_complete: bool = False


class Claim(StrEnum):
    """Result of asking for an exclusive, leased right to perform a side effect once."""

    WON = "WON"  # do the effect, then settle the claim
    DONE = "DONE"  # someone did it already: nothing to do
    BUSY = "BUSY"  # someone is doing it now: try again later


@dataclass(frozen=True)
class Job:
    """A Task Runner job as the runner reports it."""

    job_id: str
    state: str
    message: str = ""
