"""StepStore: a run's steps, and the transitions that move them (`model.transitions`).

Every transition is conditional on the step's state and attempt, so it happens once
however many deliveries ask for it; an end moves the run's counts and the successors'
join counters (`model.join`) in the same atomic write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..model.records import Attempt, Completion, StepOutcome, StepRecord
from ..model.states import StepState


class StepStore(Protocol):
    def get_step(self, run_id: str, step_id: str) -> StepRecord | None: ...

    def list_steps(self, run_id: str) -> list[StepRecord]:
        """Every step of the run, in DAG-file order."""

    def record_submission(self, step: StepRecord, job_id: str, job_state: str, at: float) -> bool:
        """`transitions.SUBMIT`: mark the step RUNNING with its job, if it is still PENDING at
        `step.attempt`; True if recorded. Called only by the holder of the step's submission
        claim. Never undoes what moved the step on since `step` was read (an end recorded by
        a check that overlaps this call, a cancel, a rerun); idempotent."""

    def record_job_state(self, step: StepRecord, job_state: str) -> None:
        """Note the Task Runner's latest state of the RUNNING step's job (display only).
        Never overwrites what moved the step on since `step` was read (its end, a cancel,
        a retry): such a step keeps what its end recorded."""

    def complete_step(self, run_id: str, step_id: str, outcome: StepOutcome, successors: Sequence[str] | None = None,
                      free_slot: bool = False) -> Completion:
        """`transitions.END`: record the end of the step's attempt `outcome.attempt`, once,
        atomically with its effects on the joins.

        The first call sets the step's terminal state, takes one off the run's count of
        open steps (adding one to its count of steps ended that way) and one off the join
        counter of each successor it releases (`join.released`). `unblocked` lists the
        successors whose counter is now zero (each reported by exactly one first call);
        `run_complete` says no step is open. A repeated call changes nothing and reads the
        same facts back (recorded=False). `successors`, when the caller knows them, spares
        a read. With `free_slot`, the attempt's slot is then released as `SlotStore.free_slot`
        does (in the same transaction where the store has them), and `woke` names the step
        it woke."""

    def end_steps(self, run_id: str, step_ids: Sequence[str], state: StepState, reason: str,
                  at: float) -> Completion:
        """End steps in `state` by the rule `transitions.ending(state)`, each once: SKIPPED
        (`SKIP`, from PENDING) releases the successors waiting for any end and reports those
        it unblocked (read back on a repeated call, as `complete_step` does); FAILED or
        CANCELLED (`STOP`, from PENDING or RUNNING: the run is being stopped) release
        nothing. Each counts off the run's open steps. A step whose end is being recorded at
        the same moment ends one way only."""

    def retry_step(self, run_id: str, step_id: str, ended: Attempt, at: float) -> bool:
        """`transitions.RETRY`: start the next attempt of an open step whose attempt
        `ended.attempt` ended: the step becomes PENDING, its attempt number moves on and
        `ended` joins its history. Once per attempt, and never after that attempt's end was
        recorded another way (the two exclude each other): True when this call did it."""

    def heartbeat(self, run_id: str, step_id: str, at: float, spacing: float) -> None:
        """Note that the checks of the step's running job are alive (`checked_at`), and so
        is its run (`updated_at`, which every step end also moves), the run only if its
        `updated_at` is older than `spacing` seconds: however many jobs run, the run's
        document takes a heartbeat about once per `spacing`."""
