"""DispatchStep: submit a step's job once, under a claim, then schedule its first check."""

from __future__ import annotations

import math

from ..errors import SubmissionOutcomeUnknown, SubmissionRefused
from ..model.dag import RunIf
from ..model.messages import DispatchStep
from ..model.records import Claim, StepRecord
from ..model.states import StepState, job_outcome
from ..model.text import excerpt
from .context import Ports, dispatch, found, ids, log, recorded_outcome, step_of, submit_key
from .finish import carry_on, complete, finish
from .poll import check_delay, first_check, schedule_check
from .skip import any_failed, skip_unmet


def dispatch_step(msg: DispatchStep, ports: Ports) -> None:
    """Submit the step's job once, then schedule its first check. Once the submission is
    recorded, the step's RUNNING state stops any second one; the claim covers the window
    before that, and is settled only when the submission fails (the step is then FAILED
    without a job)."""
    if msg.attempt:  # the step's attempt is known and no limit applies: claim while reading
        key = submit_key(msg.step_id, msg.attempt)
        claim, read = ports.store.claims.claim_reading(msg.run_id, key, msg.step_id, ports.clock())
        step = found(read, msg.run_id, msg.step_id)
        if claim is Claim.WON:
            if _submittable(step) and step.attempt == msg.attempt and not step.max_parallel:
                _submit(ports, step, key)
                return
            ports.store.claims.release(msg.run_id, key)  # not this step's turn: decide below as without it
    else:
        step = step_of(ports, msg.run_id, msg.step_id)
    if step.state is StepState.RUNNING:
        # Submitted by an earlier delivery: make sure a check is scheduled (duplicates collapse on their claims).
        schedule_check(ports, first_check(step, step.submitted_at or 0.0))
        return
    if step.state is StepState.FAILED and not step.job_id:
        # Refused at submission: finish what a first delivery may have left half done.
        complete(ports, step.run_id, step.step_id, recorded_outcome(step), max_parallel=step.max_parallel)
        return
    if step.state is not StepState.PENDING or step.waiting_on > 0:
        return
    if step.policy.run_if is RunIf.ANY_FAILED and not any_failed(ports, step):
        carry_on(ports, step.run_id, skip_unmet(ports, step, "runIf anyFailed: no dependency failed"),
                 step.max_parallel)
        return
    now = ports.clock()
    if step.max_parallel and not ports.store.slots.take_slot(step.run_id, step.step_id, step.attempt,
                                                             step.max_parallel, now):
        log.info("waiting for a slot (maxParallel %d)", step.max_parallel, extra=ids(step))
        return  # the release of a slot wakes it
    key = submit_key(step.step_id, step.attempt)
    claim = ports.store.claims.claim(msg.run_id, key, now, math.inf)  # a submission claim is never taken over
    if claim is Claim.WON:
        _submit(ports, step, key)
    elif claim is Claim.BUSY:
        _held_elsewhere(ports, step, key, now)


def moved_on(msg: DispatchStep, ports: Ports) -> bool:
    """Whether a dispatch delivered before it is due has nothing left to do: its step is no
    longer PENDING (its submission was recorded, or it ended), so the look it was to take
    again (`_held_elsewhere`) is moot. One read."""
    step = ports.store.steps.get_step(msg.run_id, msg.step_id)
    return step is not None and step.state is not StepState.PENDING


def _held_elsewhere(ports: Ports, step: StepRecord, key: str, now: float) -> None:
    """Another delivery is submitting this step's job, or died doing it. Never submit again:
    past the lease, the outcome is unknown and the step fails saying so; before it, look
    again when the lease ends (a delayed message, not a redelivery that burns attempts)."""
    held = ports.store.claims.held_since(step.run_id, key)
    if held is None:
        return  # settled meanwhile
    left = held + ports.settings.submit_lease - now
    if left > 0:
        log.info("submission in progress elsewhere; looking again in %.0f s", left, extra=ids(step))
        dispatch(ports, step.run_id, [step.step_id], delay=left)
        return
    finish(ports, step, StepState.FAILED, None, unknown_submission(step))
    ports.store.claims.settle(step.run_id, key)


def _submit(ports: Ports, step: StepRecord, claim_key: str) -> None:
    try:
        job = ports.runner.submit(step.tr_url, step.task, step.tr_auth, step.run_id)
    except SubmissionRefused as exc:
        unknown = isinstance(exc, SubmissionOutcomeUnknown)  # the job may exist: never retried
        why = str(exc) if unknown else f"submission refused: {exc}"
        log.warning("%s", why, extra=ids(step))
        finish(ports, step, StepState.FAILED, None, why, retries=0 if unknown else step.policy.retries)
        ports.store.claims.settle(step.run_id, claim_key)
        return
    except Exception as exc:  # a fault of ours mid-request: the job may exist, so never retry it
        log.exception("submission failed unexpectedly", extra=ids(step))
        why = f"{unknown_submission(step)} ({type(exc).__name__}: {excerpt(str(exc), 300)})"
        finish(ports, step, StepState.FAILED, None, why)
        ports.store.claims.settle(step.run_id, claim_key)
        return
    now = ports.clock()
    # Only the claim holder gets here, so check 0 needs no claim of its own; a redelivered
    # dispatch may add a second check 0, and the claims on later checks merge the two
    # chains. A job that ended at once is recorded by that check without polling. The check
    # is published while the submission is recorded: the store never lets the record undo
    # an end the check recorded first, and a check that finds the step still PENDING at its
    # attempt records the job itself.
    check = first_check(step, now, job)
    ended = job_outcome(job.state) is not None
    confirmed = ports.bus.begin_publish([check], delay=0.0 if ended else check_delay(ports.settings, 0))
    if ports.store.steps.record_submission(step, job.job_id, job.state, now):
        log.info("submitted job %s", job.job_id, extra=ids(step))
    else:
        log.info("submitted job %s; the step moved on meanwhile", job.job_id, extra=ids(step))
    confirmed()


def unknown_submission(step: StepRecord) -> str:
    why = (f"submission outcome unknown: it was interrupted, so a job named {step.task.name!r} may be running "
           "at the Task Runner; check there before running this step again")
    log.warning("step %s: %s", step.step_id, why, extra=ids(step))
    return why


def _submittable(step: StepRecord) -> bool:
    """PENDING with every dependency done, and not waiting to see whether one failed."""
    return step.state is StepState.PENDING and step.waiting_on == 0 and step.policy.run_if is not RunIf.ANY_FAILED
