"""The roles the engine's handlers talk to. Adapters implement them (SQLite, Firestore, ...).

Each method states what it guarantees; the shapes follow what Firestore does cheaply:
single-document create-if-absent, atomic batched writes with server-side increments,
and no read-modify-write transaction on a document many handlers touch at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from .model.dag import Task
from .model.events import RunEnded
from .model.messages import Message
from .model.records import Attempt, Claim, Completion, Job, RunRecord, StepOutcome, StepRecord
from .model.states import RunStatus


class StateStore(Protocol):
    def create_run(self, run: RunRecord, steps: Sequence[StepRecord]) -> bool:
        """Create the run and its steps unless the run exists; True when this call created it.
        Idempotent: a call repeated after a crash completes the steps a first call left out
        and never resets a step that has moved on."""

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def list_runs(self, limit: int, status: RunStatus | None = None) -> list[RunRecord]:
        """The most recent runs first (by `created_at`), optionally of one status; one query."""

    def get_step(self, run_id: str, step_id: str) -> StepRecord | None: ...

    def list_steps(self, run_id: str) -> list[StepRecord]:
        """Every step of the run, in DAG-file order."""

    def claim(self, run_id: str, key: str, now: float, lease: float) -> Claim:
        """Ask for the right to perform the side effect named `key` once: WON for the first
        caller, and for a caller arriving more than `lease` seconds after an unsettled claim
        (its holder is presumed dead); DONE once settled; BUSY while another caller holds an
        unexpired claim."""

    def settle(self, run_id: str, key: str) -> None:
        """Mark the claimed side effect as done. Idempotent."""

    def claim_reading(self, run_id: str, key: str, step_id: str, now: float) -> tuple[Claim, StepRecord | None]:
        """`claim(key)` with no lease (never taken over) and `get_step(step_id)`, which a
        store may run at the same time: a dispatch that knows its attempt need not wait
        for the read to claim. If the read fails, a claim won by this call is given back."""

    def release(self, run_id: str, key: str) -> None:
        """Give back a claim its caller won and did not use (its side effect was not
        performed), so that a later caller can win it."""

    def held_since(self, run_id: str, key: str) -> float | None:
        """When the unsettled claim `key` was taken; None if never claimed or settled. Reads only."""

    def record_submission(self, step: StepRecord, job_id: str, job_state: str, at: float) -> bool:
        """Mark the step RUNNING with its job, if it is still PENDING at `step.attempt`;
        True if recorded. Called only by the holder of the step's submission claim. Never
        undoes what moved the step on since `step` was read (an end recorded by a check
        that overlaps this call, a cancel, a rerun); idempotent."""

    def record_job_state(self, run_id: str, step_id: str, job_state: str) -> None:
        """Note the Task Runner's latest state for a RUNNING step (display only)."""

    def complete_step(self, run_id: str, step_id: str, outcome: StepOutcome, successors: Sequence[str] | None = None,
                      free_slot: bool = False) -> Completion:
        """Record a step's end, once, atomically with its effects on the joins.

        The first call sets the step's terminal state, takes one off the run's count of
        open steps (adding one to its count of succeeded or failed steps) and one off the
        join counter of each successor it releases: all of them if the step SUCCEEDED,
        else those in its `waits_for_any_end`. `unblocked` lists the successors whose
        counter is now zero (each reported by exactly one first call); `run_complete` says
        no step is open. A repeated call changes nothing and reads the same facts back
        (recorded=False). `successors`, when the caller knows them, spares a read. With
        `free_slot`, the attempt's slot is then released as `free_slot` does (in the same
        transaction where the store has them), and `woke` names the step it woke.
        """

    def skip_steps(self, run_id: str, step_ids: Sequence[str], reason: str, at: float) -> Completion:
        """Mark PENDING steps SKIPPED, each once, counting them off the run's open steps
        (and onto its skipped steps), and take one off the join counter of each step in
        their `waits_for_any_end`. `unblocked` lists those now at zero; a repeated call
        reads them back, as `complete_step` does."""

    def fail_steps(self, run_id: str, step_ids: Sequence[str], reason: str, at: float) -> Completion:
        """Mark PENDING or RUNNING steps FAILED, each once, releasing no successor (the
        run is being stopped), counting them off the run's open steps."""

    def retry_step(self, run_id: str, step_id: str, ended: Attempt, at: float) -> bool:
        """Start the next attempt of an open step whose attempt `ended.attempt` ended: the
        step becomes PENDING, its attempt number moves on and `ended` joins its history.
        Once per attempt, and never after that attempt's end was recorded another way
        (the two exclude each other): True when this call did it."""

    def take_slot(self, run_id: str, step_id: str, attempt: int, limit: int, now: float) -> bool:
        """Give the step's attempt one of the run's `limit` slots (jobs in flight), or
        True at once if it holds one. When all are held, record the step as waiting
        (from `now`) before looking a last time, and return False: the release of any slot
        held then wakes a waiting step (`free_slot`), so no wake-up is lost."""

    def queue_steps(self, run_id: str, step_ids: Sequence[str], now: float) -> None:
        """Record PENDING steps that hold no slot as waiting for one (from `now`, unless
        they wait already), without trying for a slot: for a wide fan-out under a limit,
        whose first steps are dispatched after this returns."""

    def free_slot(self, run_id: str, step_id: str, attempt: int) -> str | None:
        """Release the slot the step's attempt holds (if any), then take the step that has
        waited longest off the waiting list and return its id, for the caller to dispatch.
        A repeated call returns the step the first one woke, so a caller that crashed
        before dispatching it is repaired by its redelivery."""

    def cancel_steps(self, run_id: str, step_ids: Sequence[str], reason: str, at: float) -> Completion:
        """Mark PENDING or RUNNING steps CANCELLED, each once, counting them off the run's
        open steps. A step whose end is being recorded at the same moment ends one way only."""

    def rerun_steps(self, run_id: str, reruns: int, steps: Sequence[StepRecord], at: float) -> bool:
        """Start the next attempt of each of `steps` (ended steps of the run, given as they
        must become: PENDING, next attempt, their earlier attempt added to `history`, join
        counters recomputed), reopen the run (RUNNING, counts moved back) and note the rerun.
        Only if the run has had exactly `reruns` reruns: True when this call did it; a
        repeated request changes nothing. Atomic on SQLite; on Firestore the rerun marker
        is written last, so a crashed call is completed by its redelivery."""

    def heartbeat(self, run_id: str, step_id: str, at: float, spacing: float) -> None:
        """Note that the checks of the step's running job are alive (`checked_at`), and so
        is its run (`updated_at`, which every step end also moves), the run only if its
        `updated_at` is older than `spacing` seconds: however many jobs run, the run's
        document takes a heartbeat about once per `spacing`."""

    def stale_runs(self, before: float, limit: int) -> list[RunRecord]:
        """RUNNING runs whose `updated_at` is before `before`, stalest first, at most
        `limit` (one query)."""

    def finish_run(self, run_id: str, status: RunStatus, at: float) -> bool:
        """Set a RUNNING run's final status. True if this call set it; idempotent."""


class Bus(Protocol):
    def publish(self, messages: Sequence[Message], delay: float = 0.0) -> None:
        """Accept messages for at-least-once delivery, each no earlier than `delay` s from now.
        Returns only once every message is accepted (durable for a cloud bus); raises
        TransientError otherwise. Delivery order is not guaranteed."""

    def begin_publish(self, messages: Sequence[Message], delay: float = 0.0) -> Callable[[], None]:
        """`publish` in two halves, so that a handler can do other work while the bus
        confirms: the call returned waits until every message is accepted, or raises
        TransientError. The messages may be delivered before that call."""


class Events(Protocol):
    def run_ended(self, event: RunEnded) -> None:
        """Publish that a run ended, for subscribers outside the executor. Returns once the
        event is accepted (durable for a cloud topic); raises TransientError otherwise."""


class TaskRunner(Protocol):
    def submit(self, url: str, task: Task, auth: str = "", run_id: str = "") -> Job:
        """Submit a job. Raises SubmissionRefused (4xx, or retries exhausted). `auth` is a
        sealed token for the run `run_id`, or "" for the runtime's own credentials."""

    def status(self, url: str, job_id: str, auth: str = "", run_id: str = "") -> Job:
        """A job's current state. Raises StatusRefused (4xx), or TaskRunnerUnavailable
        when it cannot be read now."""
