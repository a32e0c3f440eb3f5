"""CheckJob: poll a running job until it ends, each check published once however many
deliveries ask for it; the waits grow from 1 s to the poll interval (`check_delay`)."""

from __future__ import annotations

from dataclasses import replace

from ..errors import OriginRefused, PoisonMessage, StatusRefused, TaskRunnerUnavailable
from ..model.messages import CheckJob
from ..model.records import Job, StepRecord
from ..model.states import JOB_FAILED, StepState, job_outcome
from ..model.text import excerpt
from ..settings import Settings
from .context import Ports, ids, log, once, step_of
from .finish import finish


def check_job(msg: CheckJob, ports: Ports) -> None:
    """Poll a running job: record the step's end, time it out, or schedule the next check.
    While the job runs, reads the step, to stop polling one that ended another way (e.g.
    cancelled). A duplicate check after the step ended records nothing new."""
    if job_outcome(msg.job_state) is not None:
        job = Job(msg.job_id, msg.job_state, msg.job_message)  # it ended when submitted
    else:
        try:
            job = ports.runner.status(msg.tr_url, msg.job_id, msg.tr_auth, msg.run_id)
        except OriginRefused as exc:  # nothing was sent: a forged check, unless its step names that URL
            step = step_of(ports, msg.run_id, msg.step_id)
            if (step.tr_url, step.job_id, step.attempt) != (msg.tr_url, msg.job_id, msg.attempt):
                raise PoisonMessage(f"a check of job {excerpt(msg.job_id, 100)!r} that is not its step's: "
                                    f"{exc}") from None
            finish(ports, msg, StepState.FAILED, Job(msg.job_id, msg.job_state), str(exc))
            return
        except StatusRefused as exc:  # the job's fate is unknown: not retried
            finish(ports, msg, StepState.FAILED, Job(msg.job_id, msg.job_state), str(exc))
            return
        except TaskRunnerUnavailable as exc:
            # Not the job's fault: keep polling; the step timeout bounds how long.
            log.warning("status unknown: %s", exc, extra=ids(msg))
            job = Job(msg.job_id, msg.job_state)
    outcome = job_outcome(job.state)
    if outcome is not None:
        finish(ports, msg, outcome, job, job.message, retries=msg.retries if job.state == JOB_FAILED else 0)
        return
    elapsed = ports.clock() - msg.submitted_at
    limit = msg.timeout or ports.settings.step_timeout
    if elapsed > limit:
        reason = f"timed out after {elapsed:.0f} s (limit {limit:.0f} s)"
        finish(ports, msg, StepState.FAILED, job, reason, retries=msg.retries)
        return
    step = step_of(ports, msg.run_id, msg.step_id)
    if step.attempt != msg.attempt or step.state not in (StepState.RUNNING, StepState.PENDING):
        return  # ended another way (cancelled, a duplicate chain) or run again since: stop polling
    if step.state is StepState.PENDING:
        # The dispatch has not recorded the submission this check carries: it is still at
        # it, or it failed after publishing this check. Either record wins, with the same job.
        ports.store.steps.record_submission(step, msg.job_id, job.state, msg.submitted_at)
    else:
        if job.state != msg.job_state:
            ports.store.steps.record_job_state(step, job.state)
        if msg.seq and msg.seq % _heartbeat_every(ports.settings) == 0:
            ports.store.steps.heartbeat(msg.run_id, msg.step_id, ports.clock(), ports.settings.stale_after / 3)
    schedule_check(ports, replace(msg, seq=msg.seq + 1, job_state=job.state))


def _heartbeat_every(settings: Settings) -> int:
    """Checks between two heartbeats: about three in each `stale_after` span."""
    return max(1, int(settings.stale_after / 3 / max(settings.poll_interval, 1.0)))


def check_delay(settings: Settings, seq: int, first: float = 1.0) -> float:
    """The wait before check `seq` of a job: `first` * 2**seq, at most the poll interval, so a
    short job is seen ending soon and a long one costs a few checks more than at a fixed one."""
    return min(settings.poll_interval, first * 2.0 ** min(seq, 30))


def first_check(step: StepRecord, submitted_at: float, job: Job | None = None) -> CheckJob:
    """Check 0 of `job`, or of the job recorded on the step."""
    job = job or Job(step.job_id, step.job_state)
    return CheckJob(step.run_id, step.step_id, job.job_id, 0, step.tr_url, step.tr_auth, submitted_at, job.state,
                    job.message, attempt=step.attempt, successors=step.successors,
                    timeout=step.policy.timeout or 0.0, retries=step.policy.retries, max_parallel=step.max_parallel)


def schedule_check(ports: Ports, check: CheckJob) -> None:
    """Publish `check` once, however many deliveries ask for it."""
    attempt = "" if check.attempt == 1 else f"#{check.attempt}"
    once(ports, check.run_id, f"check:{check.step_id}{attempt}:{check.seq}",
         lambda: ports.bus.publish([check], delay=check_delay(ports.settings, check.seq)))
