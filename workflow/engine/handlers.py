"""One handler per message. Each reads and writes the state store, may call the Task
Runner and publishes further messages; none keeps anything between messages.

Every handler is safe when its message arrives twice or out of order: state changes go
through the store's idempotent operations, and the one non-idempotent side effect (a job
submission) happens only under a claim. Retry contract: a TransientError propagates so
the bus redelivers later; PoisonMessage means drop the message after logging it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import (
    PoisonMessage,
    StatusRefused,
    SubmissionRefused,
    TaskRunnerUnavailable,
    TransientError,
)
from ..model.dag import reachable
from ..model.messages import CheckJob, DispatchStep, Message, RunFinished, StartRun, StepFinished
from ..model.records import Claim, Job, RunRecord, StepOutcome, StepRecord
from ..model.states import RunStatus, StepState, job_outcome
from ..ports import Bus, StateStore, TaskRunner
from ..settings import Settings

log = logging.getLogger("workflow.engine")


@dataclass(frozen=True)
class Ports:
    store: StateStore
    bus: Bus
    runner: TaskRunner
    settings: Settings = field(default_factory=Settings)
    clock: Callable[[], float] = time.time


class Busy(TransientError):
    """Another delivery of the same message holds the claim: try again later."""


def start_run(msg: StartRun, ports: Ports) -> None:
    """Record the run and its steps (idempotent), then dispatch the steps with no dependency."""
    now = ports.clock()
    dag = msg.dag
    run = RunRecord(
        run_id=msg.run_id,
        status=RunStatus.RUNNING,
        tr_url=msg.tr_url,
        dag_name=dag.name,
        source=msg.source,
        created_at=now,
        step_count=len(dag.steps),
    )
    steps = [
        StepRecord(
            run_id=msg.run_id,
            step_id=s.id,
            task=s.task,
            tr_url=msg.tr_url,
            tr_auth=msg.tr_auth,
            depends_on=s.depends_on,
            successors=dag.successors(s.id),
            waiting_on=len(s.depends_on),
        )
        for s in dag.steps
    ]
    created = ports.store.create_run(run, steps)
    log.info("run %s", "started" if created else "already started", extra=_ids(msg.run_id))
    ports.bus.publish([DispatchStep(msg.run_id, step_id) for step_id in dag.roots()])


def dispatch_step(msg: DispatchStep, ports: Ports) -> None:
    """Submit the step's job once, then schedule its first check.

    Once the submission is recorded, the step's RUNNING state stops any second one; the
    claim covers the window before that, and is settled only when the Task Runner refuses
    the job (the step then stays PENDING until its StepFinished is handled).
    """
    step = _step(ports, msg.run_id, msg.step_id)
    if step.state is StepState.RUNNING:
        # A redelivery after the submission was recorded: make sure a check is scheduled
        # (duplicate checks collapse on their claims).
        _schedule_check(ports, _first_check(step, step.job_id, step.job_state, step.submitted_at or 0.0))
        return
    if step.state is not StepState.PENDING:
        return
    key = f"submit:{step.step_id}"
    claim = ports.store.claim(msg.run_id, key, ports.clock(), ports.settings.submit_lease)
    if claim is Claim.DONE:
        return
    if claim is Claim.BUSY:
        raise Busy(f"submission of step {step.step_id!r} in progress elsewhere")
    _submit(ports, step, key)


def _submit(ports: Ports, step: StepRecord, claim_key: str) -> None:
    try:
        job = ports.runner.submit(step.tr_url, step.task, step.tr_auth, step.run_id)
    except SubmissionRefused as exc:
        log.warning("submission refused: %s", exc, extra=_ids(step.run_id, step.step_id))
        _finish(ports, step.run_id, step.step_id, StepState.FAILED, None, f"submission refused: {exc}")
        ports.store.settle(step.run_id, claim_key)
        return
    now = ports.clock()
    ports.store.record_submission(step.run_id, step.step_id, job.job_id, job.state, now)
    log.info("submitted job %s", job.job_id, extra=_ids(step.run_id, step.step_id))
    outcome = job_outcome(job.state)
    if outcome is not None:
        _finish(ports, step.run_id, step.step_id, outcome, job, job.message)
    else:
        # Only the claim holder gets here, so check 0 needs no claim of its own; a
        # redelivered dispatch may add a second check 0, and the claims on later checks
        # merge the two chains.
        check = _first_check(step, job.job_id, job.state, now)
        ports.bus.publish([check], delay=ports.settings.poll_interval)


def _first_check(step: StepRecord, job_id: str, job_state: str, submitted_at: float) -> CheckJob:
    return CheckJob(step.run_id, step.step_id, job_id, 0, step.tr_url, step.tr_auth, submitted_at, job_state)


def check_job(msg: CheckJob, ports: Ports) -> None:
    """Poll a running job: finish the step, time it out, or schedule the next check.

    Reads nothing from the store. A duplicate check after the step ended only repeats a
    StepFinished, which changes nothing.
    """
    try:
        job = ports.runner.status(msg.tr_url, msg.job_id, msg.tr_auth, msg.run_id)
    except StatusRefused as exc:
        _finish(ports, msg.run_id, msg.step_id, StepState.FAILED, Job(msg.job_id, msg.job_state), str(exc))
        return
    except TaskRunnerUnavailable as exc:
        # Not the job's fault: keep polling; the step timeout bounds how long.
        log.warning("status unknown: %s", exc, extra=_ids(msg.run_id, msg.step_id))
        job = Job(msg.job_id, msg.job_state)
    outcome = job_outcome(job.state)
    if outcome is not None:
        _finish(ports, msg.run_id, msg.step_id, outcome, job, job.message)
        return
    elapsed = ports.clock() - msg.submitted_at
    if elapsed > ports.settings.step_timeout:
        reason = f"timed out after {elapsed:.0f} s (limit {ports.settings.step_timeout:.0f} s)"
        _finish(ports, msg.run_id, msg.step_id, StepState.FAILED, job, reason)
        return
    if job.state != msg.job_state:
        ports.store.record_job_state(msg.run_id, msg.step_id, job.state)
    _schedule_check(ports, replace(msg, seq=msg.seq + 1, job_state=job.state))


def step_finished(msg: StepFinished, ports: Ports) -> None:
    """Record a step's end; dispatch the successors it unblocks; skip what it dooms."""
    outcome = StepOutcome(msg.state, msg.at, msg.job_id, msg.message, msg.job_state)
    done = ports.store.complete_step(msg.run_id, msg.step_id, outcome)
    log.info("step %s", msg.state.value, extra=_ids(msg.run_id, msg.step_id))
    run_complete = done.run_complete
    if msg.state is not StepState.SUCCEEDED:
        steps = ports.store.list_steps(msg.run_id)
        # The end recorded first wins: a late FAILED (say, a timeout racing the job's
        # success) must not skip what a recorded success released.
        if all(s.state is not StepState.SUCCEEDED for s in steps if s.step_id == msg.step_id):
            doomed = _descendants(steps, msg.step_id)
            reason = f"upstream step '{msg.step_id}' {msg.state.value.lower()}"
            run_complete = ports.store.skip_steps(msg.run_id, doomed, reason, msg.at).run_complete
    if done.unblocked:
        ports.bus.publish([DispatchStep(msg.run_id, s) for s in done.unblocked])
    if run_complete:
        _finish_run(ports, msg.run_id)


def run_finished(msg: RunFinished, ports: Ports) -> None:
    """An event for observers; the engine has nothing left to do."""


def _finish(ports: Ports, run_id: str, step_id: str, state: StepState, job: Job | None, message: str) -> None:
    job_id, job_state = (job.job_id, job.state) if job else ("", "")
    ports.bus.publish([StepFinished(run_id, step_id, state, ports.clock(), job_id, message, job_state)])


def _schedule_check(ports: Ports, check: CheckJob) -> None:
    """Publish `check` once, however many deliveries ask for it."""
    key = f"check:{check.step_id}:{check.seq}"
    claim = ports.store.claim(check.run_id, key, ports.clock(), ports.settings.check_lease)
    if claim is Claim.DONE:
        return
    if claim is Claim.BUSY:
        raise Busy(f"check {check.seq} of step {check.step_id!r} being scheduled elsewhere")
    ports.bus.publish([check], delay=ports.settings.poll_interval)
    ports.store.settle(check.run_id, key)


def _finish_run(ports: Ports, run_id: str) -> None:
    steps = ports.store.list_steps(run_id)
    ok = all(s.state is StepState.SUCCEEDED for s in steps)
    status = RunStatus.SUCCEEDED if ok else RunStatus.FAILED
    if ports.store.finish_run(run_id, status, ports.clock()):
        log.info("run %s", status.value, extra=_ids(run_id))
    ports.bus.publish([RunFinished(run_id, status)])


def _descendants(steps: list[StepRecord], step_id: str) -> list[str]:
    seen = reachable({s.step_id: s.successors for s in steps}, step_id)
    return [s.step_id for s in steps if s.step_id in seen]


def _step(ports: Ports, run_id: str, step_id: str) -> StepRecord:
    step = ports.store.get_step(run_id, step_id)
    if step is None:
        raise PoisonMessage(f"run {run_id!r} has no step {step_id!r}")
    return step


def _ids(run_id: str, step_id: str = "") -> dict[str, Any]:
    return {"run_id": run_id, "step_id": step_id}


HANDLERS: dict[type[Any], Callable[[Any, Ports], None]] = {
    StartRun: start_run,
    DispatchStep: dispatch_step,
    CheckJob: check_job,
    StepFinished: step_finished,
    RunFinished: run_finished,
}


def handle(msg: Message, ports: Ports) -> None:
    """Route a message to its handler."""
    HANDLERS[type(msg)](msg, ports)
