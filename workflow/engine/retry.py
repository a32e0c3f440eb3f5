"""A retry scheduled: after an attempt ended in a way that is retried (job FAILED, a
refused submission, a step timeout), the step's next attempt starts after `retryDelaySec`
(doubled each retry, with a jitter that is the same on every redelivery)."""

from __future__ import annotations

from dataclasses import replace

from ..model.dag import digest
from ..model.records import Attempt, StepOutcome, StepRecord
from .context import Ports, dispatch, free_slot, ids, log, step_of


def retried(ports: Ports, run_id: str, step_id: str, outcome: StepOutcome, max_parallel: int) -> bool:
    """Start the step's next attempt after `retryDelaySec` if it has retries left; True if
    it was retried (now, or by an earlier delivery of the same end)."""
    step = step_of(ports, run_id, step_id)
    again = retried_after(step, outcome.attempt)
    if not again:
        if step.attempt != outcome.attempt or step.state.terminal or step.retries_taken >= step.policy.retries:
            return False
        ended = Attempt(outcome.attempt, outcome.state, outcome.job_id, outcome.message, step.submitted_at,
                        outcome.at, retried=True, definition=digest(step.task, step.policy))
        if not ports.store.steps.retry_step(run_id, step_id, ended, outcome.at):
            step = step_of(ports, run_id, step_id)  # that attempt ended meanwhile: retried by another delivery?
            if not retried_after(step, outcome.attempt):
                return False
            again = True
        else:
            step = replace(step, attempt=step.attempt + 1, history=(*step.history, ended))
    delay = step.policy.delay_before(step.retries_taken, f"{run_id}/{step_id}/{step.attempt}")
    if not again:
        log.warning("attempt %d failed: %s; retry %d of %d in %.0f s", outcome.attempt, outcome.message,
                    step.retries_taken, step.policy.retries, delay, extra=ids(run_id, step_id))
    if max_parallel:
        free_slot(ports, run_id, step_id, outcome.attempt)
    dispatch(ports, run_id, [step_id], step.attempt, max_parallel, delay)
    return True


def retried_after(step: StepRecord, attempt: int) -> bool:
    """Whether the step's attempt `attempt` was retried and the step is on the next one."""
    last = step.history[-1] if step.history else None
    return last is not None and last.retried and last.attempt == attempt and step.attempt == attempt + 1
