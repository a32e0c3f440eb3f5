"""Step, run and Task Runner job states."""

from __future__ import annotations

from enum import StrEnum


class StepState(StrEnum):
    PENDING = "PENDING"  # waiting for its dependencies
    RUNNING = "RUNNING"  # submitted to the Task Runner; not finished
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # an upstream step failed
    CANCELLED = "CANCELLED"  # its run was cancelled before the step ended

    @property
    def terminal(self) -> bool:
        return self not in (StepState.PENDING, StepState.RUNNING)


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    INVALID = "INVALID"  # the DAG was refused; nothing ran
    CANCELLED = "CANCELLED"  # someone cancelled it; jobs already submitted may still run
    SKIPPED = "SKIPPED"  # a schedule's tick that started nothing: the schedule's previous run was still running

    @property
    def terminal(self) -> bool:
        return self is not RunStatus.RUNNING

    @property
    def rerunnable(self) -> bool:
        """Ended with steps to run again: an INVALID run or a SKIPPED tick ran nothing and stays so."""
        return self.terminal and self not in (RunStatus.INVALID, RunStatus.SKIPPED)


INVALID_IS_FINAL = "it is INVALID: nothing of it ran, so nothing can be rerun or resumed; start a new run"
SKIPPED_IS_FINAL = ("it is SKIPPED: a schedule's tick that started nothing, so nothing can be rerun or resumed; "
                    "start a new run")


def why_final(status: RunStatus) -> str:
    """Why a run that ran nothing (INVALID, SKIPPED) cannot be rerun or resumed."""
    return SKIPPED_IS_FINAL if status is RunStatus.SKIPPED else INVALID_IS_FINAL


# Task Runner job states (AI Platform training job states). Only these three end a job;
# every other value, including one never seen before, means "still running".
JOB_SUCCEEDED = "SUCCEEDED"
JOB_FAILED = "FAILED"
JOB_CANCELLED = "CANCELLED"
_JOB_ENDS = {JOB_SUCCEEDED: StepState.SUCCEEDED, JOB_FAILED: StepState.FAILED, JOB_CANCELLED: StepState.FAILED}


def job_outcome(job_state: str) -> StepState | None:
    """The step state a Task Runner job state ends in, or None while the job runs."""
    return _JOB_ENDS.get(job_state)
