"""One handler per message. Each reads and writes the state store, may call the Task
Runner and publishes further messages; none keeps anything between messages.

Every handler is safe when its message arrives twice or out of order: state changes go
through the store's idempotent operations, and the one non-idempotent side effect (a job
submission) happens only under a claim. Retry contract: a TransientError propagates so
the bus redelivers later; PoisonMessage means drop the message after logging it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import (
    PoisonMessage,
    StatusRefused,
    SubmissionOutcomeUnknown,
    SubmissionRefused,
    TaskRunnerUnavailable,
    TransientError,
)
from ..model.dag import RunIf, reachable
from ..model.events import RunEnded
from ..model.messages import (
    CancelRun,
    CheckJob,
    DispatchStep,
    Message,
    ReconcileRun,
    RerunRun,
    RunFinished,
    StartRun,
    StepFinished,
    SweepRuns,
    TimeoutRun,
)
from ..model.records import Attempt, Claim, Completion, Job, RunRecord, StepOutcome, StepRecord
from ..model.states import JOB_FAILED, RunStatus, StepState, job_outcome
from ..model.text import excerpt
from ..ports import Bus, Events, StateStore, TaskRunner
from ..settings import Settings

log = logging.getLogger("workflow.engine")


@dataclass(frozen=True)
class Ports:
    store: StateStore
    bus: Bus
    runner: TaskRunner
    settings: Settings = field(default_factory=Settings)
    clock: Callable[[], float] = time.time
    events: Events | None = None  # where a run's end is announced; None: nowhere


class Busy(TransientError):
    """Another delivery of the same message holds the claim: try again later."""


def start_run(msg: StartRun, ports: Ports) -> None:
    """Record the run and its steps (idempotent), then dispatch the steps with no dependency."""
    now = ports.clock()
    dag = msg.dag
    run = RunRecord(run_id=msg.run_id, status=RunStatus.RUNNING, tr_url=msg.tr_url, dag_name=dag.name,
                    source=msg.source, created_at=now, step_count=len(dag.steps), timeout=dag.timeout)
    steps = [
        StepRecord(run_id=msg.run_id, step_id=s.id, task=s.task, tr_url=msg.tr_url, tr_auth=msg.tr_auth,
                   depends_on=s.depends_on, successors=dag.successors(s.id), waiting_on=len(s.depends_on),
                   policy=s.policy, waits_for_any_end=dag.waits_for_any_end(s.id), max_parallel=dag.max_parallel or 0)
        for s in dag.steps
    ]
    created = ports.store.create_run(run, steps)
    if not created and not _same_steps(ports.store.list_steps(msg.run_id), steps):
        raise PoisonMessage(f"run {msg.run_id!r} already exists with another DAG: start refused "
                            "(a run id names one run; choose another)")
    log.info("run %s", "started" if created else "already started", extra=_ids(msg.run_id))
    _dispatch(ports, msg.run_id, dag.roots(), 1, dag.max_parallel or 0)
    if dag.timeout is not None:
        _arm_timeout(ports, run if created else ports.store.get_run(msg.run_id) or run, now)


def _same_steps(stored: list[StepRecord], wanted: list[StepRecord]) -> bool:
    """Whether a stored run has exactly these steps (a repeated start of the same run)."""

    def shape(steps: list[StepRecord]) -> list[tuple[object, ...]]:
        return [(s.step_id, s.task, s.depends_on, s.tr_url, s.policy, s.max_parallel) for s in steps]

    return shape(stored) == shape(wanted)


def dispatch_step(msg: DispatchStep, ports: Ports) -> None:
    """Submit the step's job once, then schedule its first check. Once the submission is
    recorded, the step's RUNNING state stops any second one; the claim covers the window
    before that, and is settled only when the submission fails (the step is then FAILED
    without a job)."""
    if msg.attempt:  # the step's attempt is known and no limit applies: claim while reading
        key = _submit_key(msg.step_id, msg.attempt)
        claim, found = ports.store.claim_reading(msg.run_id, key, msg.step_id, ports.clock())
        step = _found(found, msg.run_id, msg.step_id)
        if claim is Claim.WON:
            if _submittable(step) and step.attempt == msg.attempt and not step.max_parallel:
                _submit(ports, step, key)
                return
            ports.store.release(msg.run_id, key)  # not this step's turn: decide below as without it
    else:
        step = _step(ports, msg.run_id, msg.step_id)
    if step.state is StepState.RUNNING:
        # Submitted by an earlier delivery: make sure a check is scheduled (duplicates collapse on their claims).
        _schedule_check(ports, _first_check(step, step.submitted_at or 0.0))
        return
    if step.state is StepState.FAILED and not step.job_id:
        # Refused at submission: finish what a first delivery may have left half done.
        _complete(ports, step.run_id, step.step_id, _recorded_outcome(step), max_parallel=step.max_parallel)
        return
    if step.state is not StepState.PENDING or step.waiting_on > 0:
        return
    if step.policy.run_if is RunIf.ANY_FAILED and not _any_failed(ports, step):
        _skip(ports, step, "runIf anyFailed: no dependency failed")
        return
    now = ports.clock()
    if step.max_parallel and not ports.store.take_slot(step.run_id, step.step_id, step.attempt, step.max_parallel,
                                                       now):
        log.info("waiting for a slot (maxParallel %d)", step.max_parallel, extra=_ids(step))
        return  # the release of a slot wakes it
    key = _submit_key(step.step_id, step.attempt)
    claim = ports.store.claim(msg.run_id, key, now, math.inf)  # a submission claim is never taken over
    if claim is Claim.WON:
        _submit(ports, step, key)
    elif claim is Claim.BUSY:
        _held_elsewhere(ports, step, key, now)


def _held_elsewhere(ports: Ports, step: StepRecord, key: str, now: float) -> None:
    """Another delivery is submitting this step's job, or died doing it. Never submit again:
    past the lease, the outcome is unknown and the step fails saying so; before it, look
    again when the lease ends (a delayed message, not a redelivery that burns attempts)."""
    held = ports.store.held_since(step.run_id, key)
    if held is None:
        return  # settled meanwhile
    left = held + ports.settings.submit_lease - now
    if left > 0:
        log.info("submission in progress elsewhere; looking again in %.0f s", left, extra=_ids(step))
        _dispatch(ports, step.run_id, [step.step_id], delay=left)
        return
    _finish(ports, step, StepState.FAILED, None, _unknown_submission(step))
    ports.store.settle(step.run_id, key)


def _submit(ports: Ports, step: StepRecord, claim_key: str) -> None:
    try:
        job = ports.runner.submit(step.tr_url, step.task, step.tr_auth, step.run_id)
    except SubmissionRefused as exc:
        unknown = isinstance(exc, SubmissionOutcomeUnknown)  # the job may exist: never retried
        why = str(exc) if unknown else f"submission refused: {exc}"
        log.warning("%s", why, extra=_ids(step))
        _finish(ports, step, StepState.FAILED, None, why, retries=0 if unknown else step.policy.retries)
        ports.store.settle(step.run_id, claim_key)
        return
    except Exception as exc:  # a fault of ours mid-request: the job may exist, so never retry it
        log.exception("submission failed unexpectedly", extra=_ids(step))
        why = f"{_unknown_submission(step)} ({type(exc).__name__}: {excerpt(str(exc), 300)})"
        _finish(ports, step, StepState.FAILED, None, why)
        ports.store.settle(step.run_id, claim_key)
        return
    now = ports.clock()
    # Only the claim holder gets here, so check 0 needs no claim of its own; a redelivered
    # dispatch may add a second check 0, and the claims on later checks merge the two
    # chains. A job that ended at once is recorded by that check without polling. The check
    # is published while the submission is recorded: the store never lets the record undo
    # an end the check recorded first, and a check that finds the step still PENDING at its
    # attempt records the job itself.
    check = _first_check(step, now, job)
    ended = job_outcome(job.state) is not None
    confirmed = ports.bus.begin_publish([check], delay=0.0 if ended else ports.settings.poll_interval)
    if ports.store.record_submission(step, job.job_id, job.state, now):
        log.info("submitted job %s", job.job_id, extra=_ids(step))
    else:
        log.info("submitted job %s; the step moved on meanwhile", job.job_id, extra=_ids(step))
    confirmed()


def _first_check(step: StepRecord, submitted_at: float, job: Job | None = None) -> CheckJob:
    """Check 0 of `job`, or of the job recorded on the step."""
    job = job or Job(step.job_id, step.job_state)
    return CheckJob(step.run_id, step.step_id, job.job_id, 0, step.tr_url, step.tr_auth, submitted_at, job.state,
                    job.message, attempt=step.attempt, successors=step.successors,
                    timeout=step.policy.timeout or 0.0, retries=step.policy.retries, max_parallel=step.max_parallel)


def _unknown_submission(step: StepRecord) -> str:
    why = (f"submission outcome unknown: it was interrupted, so a job named {step.task.name!r} may be running "
           "at the Task Runner; check there before running this step again")
    log.warning("step %s: %s", step.step_id, why, extra=_ids(step))
    return why


def _submit_key(step_id: str, attempt: int) -> str:
    """The claim on submitting an attempt's job (the first keeps the plain form)."""
    return f"submit:{step_id}" if attempt == 1 else f"submit:{step_id}#{attempt}"


def _submittable(step: StepRecord) -> bool:
    """PENDING with every dependency done, and not waiting to see whether one failed."""
    return step.state is StepState.PENDING and step.waiting_on == 0 and step.policy.run_if is not RunIf.ANY_FAILED


def check_job(msg: CheckJob, ports: Ports) -> None:
    """Poll a running job: record the step's end, time it out, or schedule the next check.
    While the job runs, reads the step, to stop polling one that ended another way (e.g.
    cancelled). A duplicate check after the step ended records nothing new."""
    if job_outcome(msg.job_state) is not None:
        job = Job(msg.job_id, msg.job_state, msg.job_message)  # it ended when submitted
    else:
        try:
            job = ports.runner.status(msg.tr_url, msg.job_id, msg.tr_auth, msg.run_id)
        except StatusRefused as exc:  # the job's fate is unknown: not retried
            _finish(ports, msg, StepState.FAILED, Job(msg.job_id, msg.job_state), str(exc))
            return
        except TaskRunnerUnavailable as exc:
            # Not the job's fault: keep polling; the step timeout bounds how long.
            log.warning("status unknown: %s", exc, extra=_ids(msg))
            job = Job(msg.job_id, msg.job_state)
    outcome = job_outcome(job.state)
    if outcome is not None:
        _finish(ports, msg, outcome, job, job.message, retries=msg.retries if job.state == JOB_FAILED else 0)
        return
    elapsed = ports.clock() - msg.submitted_at
    limit = msg.timeout or ports.settings.step_timeout
    if elapsed > limit:
        reason = f"timed out after {elapsed:.0f} s (limit {limit:.0f} s)"
        _finish(ports, msg, StepState.FAILED, job, reason, retries=msg.retries)
        return
    step = _step(ports, msg.run_id, msg.step_id)
    if step.attempt != msg.attempt or step.state not in (StepState.RUNNING, StepState.PENDING):
        return  # ended another way (cancelled, a duplicate chain) or run again since: stop polling
    if step.state is StepState.PENDING:
        # The dispatch has not recorded the submission this check carries: it is still at
        # it, or it failed after publishing this check. Either record wins, with the same job.
        ports.store.record_submission(step, msg.job_id, job.state, msg.submitted_at)
    else:
        if job.state != msg.job_state:
            ports.store.record_job_state(msg.run_id, msg.step_id, job.state)
        if msg.seq and msg.seq % _heartbeat_every(ports.settings) == 0:
            ports.store.heartbeat(msg.run_id, msg.step_id, ports.clock(), ports.settings.stale_after / 3)
    _schedule_check(ports, replace(msg, seq=msg.seq + 1, job_state=job.state))


def _heartbeat_every(settings: Settings) -> int:
    """Checks between two heartbeats: about three in each `stale_after` span."""
    return max(1, int(settings.stale_after / 3 / max(settings.poll_interval, 1.0)))


def step_finished(msg: StepFinished, ports: Ports) -> None:
    """Record a step's end handed over as a message (a replay, or an older deployment's)."""
    _complete(ports, msg.run_id, msg.step_id, StepOutcome(msg.state, msg.at, msg.job_id, msg.message, msg.job_state))


def run_finished(msg: RunFinished, ports: Ports) -> None:
    """An event for observers; the engine has nothing left to do."""


def _finish(ports: Ports, ended: StepRecord | CheckJob, state: StepState, job: Job | None, message: str, *,
            retries: int = 0) -> None:
    """The attempt `ended` (a step as read, or its check) ended: retry the step if it may be
    (`retries`: the step's, when this end is one that is retried), else record its end, here
    in the handler that saw it."""
    job_id, job_state = (job.job_id, job.state) if job else ("", "")
    if not message and job_state:
        message = f"job {job_state}"
    outcome = StepOutcome(state, ports.clock(), job_id, excerpt(message), job_state, ended.attempt,
                          ended.submitted_at)
    if retries and _retried(ports, ended.run_id, ended.step_id, outcome, ended.max_parallel):
        return
    _complete(ports, ended.run_id, ended.step_id, outcome, ended.successors, ended.max_parallel)


def _retried(ports: Ports, run_id: str, step_id: str, outcome: StepOutcome, max_parallel: int) -> bool:
    """Start the step's next attempt after `retryDelaySec` if it has retries left; True if
    it was retried (now, or by an earlier delivery of the same end)."""
    step = _step(ports, run_id, step_id)
    again = _retried_after(step, outcome.attempt)
    if not again:
        if step.attempt != outcome.attempt or step.state.terminal or step.retries_taken >= step.policy.retries:
            return False
        ended = Attempt(outcome.attempt, outcome.state, outcome.job_id, outcome.message, step.submitted_at,
                        outcome.at, retried=True)
        if not ports.store.retry_step(run_id, step_id, ended, outcome.at):
            step = _step(ports, run_id, step_id)  # that attempt ended meanwhile: retried by another delivery?
            if not _retried_after(step, outcome.attempt):
                return False
            again = True
        else:
            step = replace(step, attempt=step.attempt + 1, history=(*step.history, ended))
    delay = step.policy.delay_before(step.retries_taken, f"{run_id}/{step_id}/{step.attempt}")
    if not again:
        log.warning("attempt %d failed: %s; retry %d of %d in %.0f s", outcome.attempt, outcome.message,
                    step.retries_taken, step.policy.retries, delay, extra=_ids(run_id, step_id))
    if max_parallel:
        _free_slot(ports, run_id, step_id, outcome.attempt)
    _dispatch(ports, run_id, [step_id], step.attempt, max_parallel, delay)
    return True


def _retried_after(step: StepRecord, attempt: int) -> bool:
    """Whether the step's attempt `attempt` was retried and the step is on the next one."""
    last = step.history[-1] if step.history else None
    return last is not None and last.retried and last.attempt == attempt and step.attempt == attempt + 1


def _complete(ports: Ports, run_id: str, step_id: str, outcome: StepOutcome,
              successors: tuple[str, ...] | None = None, max_parallel: int = 0) -> None:
    """Record a step's end once, free its slot, dispatch the successors it unblocks and skip
    what it dooms. Safe to repeat: a second call records nothing and reads the same facts
    back, so it finishes what a first call that crashed half-way left undone."""
    done = ports.store.complete_step(run_id, step_id, outcome, successors, free_slot=max_parallel > 0)
    if done.recorded:  # once, however many deliveries repeat it
        log.info("step %s: %s", outcome.state.value, outcome.message, extra=_ids(run_id, step_id))
    if done.woke:
        _dispatch(ports, run_id, [done.woke])
    if outcome.state is not StepState.SUCCEEDED:
        skipped = _skip_descendants(ports, run_id, step_id, outcome)
        done = Completion(done.recorded, done.unblocked + skipped.unblocked, done.run_complete or skipped.run_complete)
    _carry_on(ports, run_id, done, max_parallel)


def _carry_on(ports: Ports, run_id: str, done: Completion, max_parallel: int = 0) -> None:
    """Dispatch what an end unblocked; finish the run if nothing is open. Under a limit,
    steps past the first `max_parallel` are queued for a slot rather than dispatched only
    to find none; queued first, so a slot freed meanwhile wakes one."""
    ready = list(done.unblocked)
    if max_parallel and len(ready) > max_parallel:
        ports.store.queue_steps(run_id, ready[max_parallel:], ports.clock())
        del ready[max_parallel:]
    if ready:  # a step is unblocked at its first attempt unless a rerun moved it on (the dispatch sees it)
        _dispatch(ports, run_id, ready, 1, max_parallel)
    if done.run_complete:
        _finish_run(ports, run_id)


def _free_slot(ports: Ports, run_id: str, step_id: str, attempt: int) -> None:
    woke = ports.store.free_slot(run_id, step_id, attempt)
    if woke:
        _dispatch(ports, run_id, [woke])


def _skip_descendants(ports: Ports, run_id: str, step_id: str, outcome: StepOutcome) -> Completion:
    """Mark SKIPPED the descendants that run only after a success; dispatch nothing, but say
    which steps waiting for any end it unblocked. The end recorded first wins: a late FAILED
    (a timeout racing the job's success, an attempt already retried) skips nothing."""
    step = _step(ports, run_id, step_id)
    if step.state in (StepState.PENDING, StepState.RUNNING, StepState.SUCCEEDED) or step.attempt != outcome.attempt:
        return Completion(False)
    reason = f"upstream step '{step_id}' {step.state.value.lower()}"
    return _skip_all(ports, run_id, _doomed(ports, step), reason, outcome.at)


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
                todo.append(_step(ports, step.run_id, succ))
    return doomed


def _skip_all(ports: Ports, run_id: str, step_ids: list[str], reason: str, at: float) -> Completion:
    return ports.store.skip_steps(run_id, step_ids, reason, at) if step_ids else Completion(False)


def _skip(ports: Ports, step: StepRecord, reason: str) -> None:
    """Skip a step whose `runIf` cannot be met, and what that dooms (those first, so that a
    redelivery finds the step still PENDING and finishes the job)."""
    now = ports.clock()
    below = _skip_all(ports, step.run_id, _doomed(ports, step), f"upstream step '{step.step_id}' skipped", now)
    done = ports.store.skip_steps(step.run_id, [step.step_id], reason, now)
    if done.recorded:
        log.info("step SKIPPED: %s", reason, extra=_ids(step))
    _carry_on(ports, step.run_id, Completion(done.recorded, below.unblocked + done.unblocked, done.run_complete),
              step.max_parallel)


def _any_failed(ports: Ports, step: StepRecord) -> bool:
    return any(_step(ports, step.run_id, d).state is StepState.FAILED for d in step.depends_on)


def rerun_run(msg: RerunRun, ports: Ports) -> None:
    """Start the next attempt of the run's failed, cancelled and skipped steps (and of
    `from_step` and its descendants), keeping its successes; dispatch those now ready."""
    run = _run(ports, msg.run_id)
    if len(run.reruns) == msg.reruns:
        if run.status is RunStatus.RUNNING:
            raise PoisonMessage(f"run {msg.run_id!r} is still running: cancel it first, or resume it")
        chosen = _to_rerun(ports.store.list_steps(msg.run_id), msg)
        ports.store.rerun_steps(msg.run_id, msg.reruns, chosen, ports.clock())
        log.info("rerun of %d step(s)", len(chosen), extra=_ids(msg.run_id))
    elif len(run.reruns) != msg.reruns + 1:
        return  # an older request
    # this rerun is recorded (now, or by an earlier delivery): dispatch what is ready
    ready = [s for s in ports.store.list_steps(msg.run_id) if s.state is StepState.PENDING and s.waiting_on == 0]
    _dispatch(ports, msg.run_id, [s.step_id for s in ready])


def _to_rerun(steps: list[StepRecord], msg: RerunRun) -> list[StepRecord]:
    """The steps to run again, each as it must become (next attempt, join counter recounted).
    A PENDING step of an ended run was reset by a rerun that crashed half-way: it is taken
    as it is, so a redelivered request completes that rerun without counting it twice."""
    by_id = {s.step_id: s for s in steps}
    if msg.from_step and msg.from_step not in by_id:
        raise PoisonMessage(f"run {msg.run_id!r} has no step {msg.from_step!r}")
    again = {s.step_id for s in steps if s.state in _RERUN_STATES or s.state is StepState.PENDING}
    if msg.from_step:
        again |= {msg.from_step} | reachable({s.step_id: s.successors for s in steps}, msg.from_step)
    result = []
    for s in steps:
        if s.step_id not in again:
            continue
        waiting = sum(1 for d in s.depends_on if d in again or by_id[d].state is not StepState.SUCCEEDED)
        if s.state is StepState.PENDING:
            result.append(replace(s, waiting_on=waiting))
            continue
        earlier = Attempt(s.attempt, s.state, s.job_id, s.message, s.submitted_at, s.finished_at)
        result.append(replace(s, state=StepState.PENDING, attempt=s.attempt + 1, history=(*s.history, earlier),
                              waiting_on=waiting, job_id="", job_state="", message="", submitted_at=None,
                              finished_at=None))
    return result


_RERUN_STATES = frozenset({StepState.FAILED, StepState.CANCELLED, StepState.SKIPPED})


def cancel_run(msg: CancelRun, ports: Ports) -> None:
    """No new submission; every open step CANCELLED; the run ends CANCELLED. Idempotent.
    The Task Runner protocol has no cancel request: jobs already submitted keep running
    there (their ids stay on their steps). Checks of a cancelled step stop at their next turn."""
    steps = ports.store.list_steps(msg.run_id)
    open_ids = [s.step_id for s in steps if not s.state.terminal]
    done = ports.store.cancel_steps(msg.run_id, open_ids, msg.reason, ports.clock())
    if done.recorded:
        log.info("run cancelled: %s", msg.reason, extra=_ids(msg.run_id))
    if done.run_complete:
        _finish_run(ports, msg.run_id)


def reconcile_run(msg: ReconcileRun, ports: Ports) -> None:
    """Re-issue what a RUNNING run needs, from the store alone (after an interruption or a
    lost message). Never submits a job twice: a submission that may have happened without
    being recorded fails its step with "submission outcome unknown" instead."""
    run = _run(ports, msg.run_id)
    if run.status.terminal:
        return
    now = ports.clock()
    _arm_timeout(ports, run, now)  # again: its message may be the one that was lost
    steps = ports.store.list_steps(msg.run_id)
    for step in steps:
        if step.state is StepState.RUNNING and (step.checked_at or step.submitted_at or 0) >= msg.quiet_since > 0:
            continue  # its checks showed they are alive since: do not start a second chain
        if step.max_parallel and (step.state.terminal or step.attempt > 1):
            # a slot its (earlier) attempt may have kept, had the release been lost
            _free_slot(ports, step.run_id, step.step_id, step.attempt - (not step.state.terminal))
        if step.state is StepState.RUNNING:
            # a chain of checks numbered past any earlier chain's claims
            ports.bus.publish([replace(_first_check(step, step.submitted_at or now), seq=int(now * 1000))])
            # the new chain counts as alive from now: reconciles that follow (sweeps held back
            # by an outage) leave it alone rather than start another
            ports.store.heartbeat(step.run_id, step.step_id, now, 0.0)
        elif step.state is StepState.PENDING and step.waiting_on == 0:
            _redispatch(ports, step, now, msg.stale_after)
        elif step.state is StepState.FAILED:
            _complete(ports, step.run_id, step.step_id, _recorded_outcome(step))
    if all(s.state.terminal for s in steps):
        _finish_run(ports, msg.run_id)


def sweep_runs(msg: SweepRuns, ports: Ports) -> None:
    """Reconcile the RUNNING runs with no sign of progress for `stale_after` seconds (a
    lost or dead-lettered message): one query, at most `limit` runs, stalest first."""
    now = ports.clock()
    stale = ports.store.stale_runs(now - msg.stale_after, msg.limit)
    if stale:
        ports.bus.publish([ReconcileRun(r.run_id, ports.settings.submit_lease, now - msg.stale_after) for r in stale])
    for run in stale:
        log.warning("sweep: no progress for %.0f s: reconciling", now - run.updated_at, extra=_ids(run.run_id))
    log.info("sweep: %d run(s) without progress for %.0f s", len(stale), msg.stale_after)


def _arm_timeout(ports: Ports, run: RunRecord, now: float) -> None:
    """Publish the run's TimeoutRun, due at its deadline (a rerun is not bound by it)."""
    if run.timeout is not None and not run.reruns:
        deadline = run.created_at + run.timeout
        ports.bus.publish([TimeoutRun(run.run_id, deadline)], delay=max(deadline - now, 0.0))


def timeout_run(msg: TimeoutRun, ports: Ports) -> None:
    """The run's timeoutSec passed: its running and ready steps FAILED, the others SKIPPED
    (nothing released, nothing dispatched), the run FAILED. Once: an ended run is left alone."""
    run = _run(ports, msg.run_id)
    if run.status.terminal or len(run.reruns) != msg.reruns:
        return  # ended in time, or rerun since (a rerun is not bound by the first deadline)
    now = ports.clock()
    if msg.deadline > now:
        ports.bus.publish([msg], delay=msg.deadline - now)  # delivered early: wait on
        return
    reason = f"run timed out (timeoutSec {msg.deadline - run.created_at:.0f} s)"
    for _ in range(3):  # a step may move on while this runs: look again
        steps = [s for s in ports.store.list_steps(msg.run_id) if not s.state.terminal]
        ready = [s.step_id for s in steps if s.state is StepState.RUNNING or s.waiting_on == 0]
        blocked = [s.step_id for s in steps if s.step_id not in ready]
        failed = ports.store.fail_steps(msg.run_id, ready, reason, now) if ready else Completion(False)
        skipped = _skip_all(ports, msg.run_id, blocked, reason, now)
        if failed.recorded or skipped.recorded:
            log.warning("%s: %d step(s) failed, %d skipped", reason, len(ready), len(blocked), extra=_ids(msg.run_id))
        if not steps or failed.run_complete or skipped.run_complete:
            _finish_run(ports, msg.run_id)
            return
    raise Busy(f"run {msg.run_id!r} kept moving while it timed out")


def _redispatch(ports: Ports, step: StepRecord, now: float, stale_after: float) -> None:
    held = ports.store.held_since(step.run_id, _submit_key(step.step_id, step.attempt))
    if held is None:
        _dispatch(ports, step.run_id, [step.step_id])
    elif now - held >= stale_after:  # as _held_elsewhere: fails the step and frees its slot
        _finish(ports, step, StepState.FAILED, None, _unknown_submission(step))
    # else: a submission is in progress elsewhere; its holder records it


def _schedule_check(ports: Ports, check: CheckJob) -> None:
    """Publish `check` once, however many deliveries ask for it."""
    attempt = "" if check.attempt == 1 else f"#{check.attempt}"
    _once(ports, check.run_id, f"check:{check.step_id}{attempt}:{check.seq}",
          lambda: ports.bus.publish([check], delay=ports.settings.poll_interval))


def _once(ports: Ports, run_id: str, key: str, effect: Callable[[], None]) -> None:
    """Do `effect` under the claim `key`: skipped once settled, retried later (Busy) while
    another delivery holds it, retaken after the check lease if that holder vanished."""
    claim = ports.store.claim(run_id, key, ports.clock(), ports.settings.check_lease)
    if claim is Claim.DONE:
        return
    if claim is Claim.BUSY:
        raise Busy(f"{key!r} of run {run_id!r} is being done elsewhere")
    effect()
    ports.store.settle(run_id, key)


def _finish_run(ports: Ports, run_id: str) -> None:
    steps = ports.store.list_steps(run_id)
    states = {s.state for s in steps}
    if StepState.CANCELLED in states:
        status = RunStatus.CANCELLED
    else:  # steps SKIPPED by a runIf that was not met do not fail a run
        status = RunStatus.FAILED if StepState.FAILED in states else RunStatus.SUCCEEDED
    if ports.store.finish_run(run_id, status, ports.clock()):
        log.info("run %s", status.value, extra=_ids(run_id))
    run = ports.store.get_run(run_id)
    if run is not None:
        announce(ports, RunEnded.of(run, steps))


def announce(ports: Ports, event: RunEnded) -> None:
    """Publish a run's end once, however many deliveries get here (a claim per end)."""
    events = ports.events
    if events is not None:
        _once(ports, event.run.run_id, event.key, lambda: events.run_ended(event))


def _recorded_outcome(step: StepRecord) -> StepOutcome:
    return StepOutcome(step.state, step.finished_at or 0.0, step.job_id, step.message, step.job_state, step.attempt)


def _dispatch(ports: Ports, run_id: str, step_ids: Sequence[str], attempt: int = 0, max_parallel: int = 0,
              delay: float = 0.0) -> None:
    """Publish a DispatchStep per step, carrying `attempt` unless a limit applies (a slot
    comes before the claim) or it is not known (0)."""
    ports.bus.publish([DispatchStep(run_id, s, 0 if max_parallel else attempt) for s in step_ids], delay=delay)


def _run(ports: Ports, run_id: str) -> RunRecord:
    run = ports.store.get_run(run_id)
    if run is None:
        raise PoisonMessage(f"no run {run_id!r}")
    return run


def _step(ports: Ports, run_id: str, step_id: str) -> StepRecord:
    return _found(ports.store.get_step(run_id, step_id), run_id, step_id)


def _found(step: StepRecord | None, run_id: str, step_id: str) -> StepRecord:
    if step is None:
        raise PoisonMessage(f"run {run_id!r} has no step {step_id!r}")
    return step


def _ids(of: StepRecord | CheckJob | str, step_id: str = "") -> dict[str, Any]:
    """The ids a log line carries: a step's (as read, or from its check), or a run id and a step id."""
    if isinstance(of, str):
        return {"run_id": of, "step_id": step_id}
    return {"run_id": of.run_id, "step_id": of.step_id}


HANDLERS: dict[type[Any], Callable[[Any, Ports], None]] = {
    StartRun: start_run,
    DispatchStep: dispatch_step,
    CheckJob: check_job,
    StepFinished: step_finished,
    RunFinished: run_finished,
    ReconcileRun: reconcile_run,
    CancelRun: cancel_run,
    RerunRun: rerun_run,
    TimeoutRun: timeout_run,
    SweepRuns: sweep_runs,
}


def handle(msg: Message, ports: Ports) -> None:
    """Route a message to its handler."""
    HANDLERS[type(msg)](msg, ports)
