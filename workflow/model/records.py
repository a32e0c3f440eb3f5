"""What the state store keeps about a run and its steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from itertools import takewhile
from typing import Any

from .dag import Policy, Task
from .inputs import RunInputs
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
    reruns: tuple[float, ...] = ()  # when each rerun was requested
    updated_at: float = 0.0  # the last sign of progress: a step's end, or a running job's heartbeat
    timeout: float | None = None  # the DAG's timeoutSec, counted from created_at
    inputs: RunInputs = field(default_factory=RunInputs)  # parameter values, schedule tick, forEach groups


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
    attempt: int = 1  # numbers the step's runs: a retry or a rerun starts the next
    history: tuple[Attempt, ...] = ()  # earlier attempts, oldest first
    policy: Policy = field(default_factory=Policy)  # retries, timeout, runIf
    waits_for_any_end: tuple[str, ...] = ()  # successors released by any end of this step, not only success
    max_parallel: int = 0  # the run's limit on jobs in flight (0: none), copied here as tr_url is
    checked_at: float | None = None  # the last heartbeat of the checks of its running job
    version: object = field(default=None, compare=False, repr=False)  # the store's token of the read it came from

    @property
    def retries_taken(self) -> int:
        """Retries since the step was (re)started: the trailing attempts that were retried."""
        return sum(1 for _ in takewhile(lambda earlier: earlier.retried, reversed(self.history)))


@dataclass(frozen=True)
class Attempt:
    """One earlier run of a step, kept when it is run again (retried or rerun)."""

    attempt: int
    state: StepState
    job_id: str = ""
    message: str = ""
    submitted_at: float | None = None
    finished_at: float | None = None
    retried: bool = False  # the engine retried it (the step's retries), rather than a rerun
    definition: str = ""  # which definition (task and policy) it ran: `dag.digest` of them ("" if not noted)

    def to_dict(self) -> dict[str, object]:
        return {"attempt": self.attempt, "state": self.state.value, "job_id": self.job_id, "message": self.message,
                "submitted_at": self.submitted_at, "finished_at": self.finished_at, "retried": self.retried,
                "definition": self.definition}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attempt:
        return cls(int(d["attempt"]), StepState(d["state"]), d.get("job_id") or "", d.get("message") or "",
                   d.get("submitted_at"), d.get("finished_at"), bool(d.get("retried")), d.get("definition") or "")


@dataclass(frozen=True)
class StepOutcome:
    """How an attempt of a step ended."""

    state: StepState
    at: float
    job_id: str = ""
    message: str = ""
    job_state: str = ""
    attempt: int = 1
    submitted_at: float | None = None  # when its job was submitted, if it was: kept if none is recorded


@dataclass(frozen=True)
class Completion:
    """What recording a step's end changed. `recorded` is False when the end was already
    recorded (a redelivery); `unblocked` and `run_complete` are then read back, so a
    redelivery can finish the work that a crashed first attempt recorded but did not publish."""

    recorded: bool
    unblocked: tuple[str, ...] = ()
    run_complete: bool = False
    woke: str | None = None  # the step a freed slot woke, when the slot was to be freed


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
