"""Steps skipped: the descendants a step's unsuccessful end dooms, and a step whose
`runIf` cannot be met (the store's SKIP transition releases the steps that wait for any end)."""

from __future__ import annotations

from ..model.records import Completion, StepOutcome, StepRecord
from ..model.states import StepState
from .context import Ports, ids, log, step_of


def skip_descendants(ports: Ports, run_id: str, step_id: str, outcome: StepOutcome) -> Completion:
    """Mark SKIPPED the descendants that run only after a success; dispatch nothing, but say
    which steps waiting for any end it unblocked. The end recorded first wins: a late FAILED
    (a timeout racing the job's success, an attempt already retried) skips nothing."""
    step = step_of(ports, run_id, step_id)
    if step.state in (StepState.PENDING, StepState.RUNNING, StepState.SUCCEEDED) or step.attempt != outcome.attempt:
        return Completion(False)
    reason = f"upstream step '{step_id}' {step.state.value.lower()}"
    return skip_all(ports, run_id, _doomed(ports, step), reason, outcome.at)


def skip_unmet(ports: Ports, step: StepRecord, reason: str) -> Completion:
    """Skip a step whose `runIf` cannot be met, and what that dooms (those first, so that a
    redelivery finds the step still PENDING and finishes the job); what it unblocked, for
    the caller to carry on."""
    now = ports.clock()
    below = skip_all(ports, step.run_id, _doomed(ports, step), f"upstream step '{step.step_id}' skipped", now)
    done = ports.store.steps.end_steps(step.run_id, [step.step_id], StepState.SKIPPED, reason, now)
    if done.recorded:
        log.info("step SKIPPED: %s", reason, extra=ids(step))
    return Completion(done.recorded, below.unblocked + done.unblocked, done.run_complete)


def skip_all(ports: Ports, run_id: str, step_ids: list[str], reason: str, at: float) -> Completion:
    return ports.store.steps.end_steps(run_id, step_ids, StepState.SKIPPED, reason, at) if step_ids \
        else Completion(False)


def any_failed(ports: Ports, step: StepRecord) -> bool:
    """Whether a dependency of the step FAILED (its `runIf: anyFailed`)."""
    return any(step_of(ports, step.run_id, d).state is StepState.FAILED for d in step.depends_on)


def _doomed(ports: Ports, step: StepRecord) -> list[str]:
    """The descendants that can no longer run once `step` ended without success."""
    doomed: list[str] = []
    todo, seen = [step], {step.step_id}
    while todo:
        current = todo.pop()
        for succ in current.successors:
            if succ not in seen and succ not in current.waits_for_any_end:
                seen.add(succ)
                doomed.append(succ)
                todo.append(step_of(ports, step.run_id, succ))
    return doomed
