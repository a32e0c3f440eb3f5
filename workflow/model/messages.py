"""Messages between handlers. Commands are imperative, events past tense; JSON lives in codec.py."""

from __future__ import annotations

from dataclasses import dataclass, field

from .dag import Dag
from .inputs import RunInputs
from .states import RunStatus, StepState


@dataclass(frozen=True)
class StartRun:
    run_id: str
    dag: Dag
    tr_url: str
    source: str = ""
    tr_auth: str = ""  # a sealed token (never a clear one), or "" for the runtime's identity
    inputs: RunInputs = field(default_factory=RunInputs)  # recorded with the run; `dag` already applies them


@dataclass(frozen=True)
class DispatchStep:
    """Every dependency of the step SUCCEEDED: submit its job."""

    run_id: str
    step_id: str
    attempt: int = 0  # set when the publisher knows it and no maxParallel applies: claim while reading


@dataclass(frozen=True)
class CheckJob:
    """Ask the Task Runner for a job's state; `seq` numbers the checks of one job. It carries
    what the check needs, so that a check reads nothing from the store."""

    run_id: str
    step_id: str
    job_id: str
    seq: int = 0
    tr_url: str = ""
    tr_auth: str = ""
    submitted_at: float = 0.0
    job_state: str = ""
    job_message: str = ""  # the Task Runner's message when the job ended at submission
    attempt: int = 1  # the step's attempt this job belongs to
    successors: tuple[str, ...] | None = None  # the step's successors (None: not carried, read them)
    timeout: float = 0.0  # the step's timeout in seconds (0: the runtime's default)
    retries: int = 0  # the step's retries (whether a failure is worth reading the step for)
    max_parallel: int = 0  # the run's limit on jobs in flight (0: none): the step holds a slot


@dataclass(frozen=True)
class StepFinished:
    """A step's end as a message: no longer published (the check records it), still handled."""

    run_id: str
    step_id: str
    state: StepState
    at: float
    job_id: str = ""
    message: str = ""
    job_state: str = ""  # the Task Runner's last state of the job (FAILED, CANCELLED, ...)


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    status: RunStatus


@dataclass(frozen=True)
class TimeoutRun:
    """The run's `timeoutSec` passes at `deadline`, unless it ended or was rerun since
    `reruns` (the count it was armed at)."""

    run_id: str
    deadline: float
    reruns: int = 0


@dataclass(frozen=True)
class ReconcileRun:
    """Rebuild what a run needs from its stored state alone. A submission claimed at least
    `stale_after` seconds ago with nothing recorded is taken as interrupted."""

    run_id: str
    stale_after: float = 0.0
    quiet_since: float = 0.0  # re-check only running jobs with no heartbeat since (0: every one)


@dataclass(frozen=True)
class SweepRuns:
    """Reconcile the RUNNING runs with no sign of progress for `stale_after` seconds, at
    most `limit` of them, stalest first (published by a scheduler)."""

    stale_after: float = 900.0
    limit: int = 100


@dataclass(frozen=True)
class RerunRun:
    """Run again a run's failed, cancelled and skipped steps (and `from_step` with its
    descendants). `reruns` is the count the requester saw: a repeat changes nothing. With
    `dag` (of the run's shape), the steps run again take its definitions (task, policy);
    with `tr_auth` (a sealed token), they call the Task Runner with it instead of the one
    the run was started with."""

    run_id: str
    reruns: int
    from_step: str = ""
    dag: Dag | None = None
    tr_auth: str = ""


@dataclass(frozen=True)
class CancelRun:
    """Stop a run: no new submission, every open step CANCELLED, the run CANCELLED."""

    run_id: str
    reason: str = "run cancelled"


Message = (StartRun | DispatchStep | CheckJob | StepFinished | RunFinished | ReconcileRun | CancelRun | RerunRun
           | TimeoutRun | SweepRuns)
