"""Recovery: ReconcileRun (resume, and the repair of one run) re-issues what a RUNNING run
needs from the store alone; SweepRuns finds the runs that need it (no progress for a while)."""

from __future__ import annotations

from dataclasses import replace

from ..model.messages import ReconcileRun, SweepRuns
from ..model.records import StepRecord
from ..model.states import StepState
from .context import Ports, dispatch, free_slot, ids, log, recorded_outcome, run_of, submit_key
from .finish import complete, finish, finish_run
from .poll import first_check
from .submit import unknown_submission
from .timeout import arm_timeout


def reconcile_run(msg: ReconcileRun, ports: Ports) -> None:
    """Re-issue what a RUNNING run needs, from the store alone (after an interruption or a
    lost message). Never submits a job twice: a submission that may have happened without
    being recorded fails its step with "submission outcome unknown" instead."""
    run = run_of(ports, msg.run_id)
    if run.status.terminal:
        return
    now = ports.clock()
    arm_timeout(ports, run, now)  # again: its message may be the one that was lost
    steps = ports.store.steps.list_steps(msg.run_id)
    for step in steps:
        if step.state is StepState.RUNNING and (step.checked_at or step.submitted_at or 0) >= msg.quiet_since > 0:
            continue  # its checks showed they are alive since: do not start a second chain
        if step.max_parallel and (step.state.terminal or step.attempt > 1):
            # a slot its (earlier) attempt may have kept, had the release been lost
            free_slot(ports, step.run_id, step.step_id, step.attempt - (not step.state.terminal))
        if step.state is StepState.RUNNING:
            # a chain of checks numbered past any earlier chain's claims
            ports.bus.publish([replace(first_check(step, step.submitted_at or now), seq=int(now * 1000))])
            # the new chain counts as alive from now: reconciles that follow (sweeps held back
            # by an outage) leave it alone rather than start another
            ports.store.steps.heartbeat(step.run_id, step.step_id, now, 0.0)
        elif step.state is StepState.PENDING and step.waiting_on == 0:
            _redispatch(ports, step, now, msg.stale_after)
        elif step.state is StepState.FAILED:
            complete(ports, step.run_id, step.step_id, recorded_outcome(step))
    if all(s.state.terminal for s in steps):
        finish_run(ports, msg.run_id)


def _redispatch(ports: Ports, step: StepRecord, now: float, stale_after: float) -> None:
    held = ports.store.claims.held_since(step.run_id, submit_key(step.step_id, step.attempt))
    if held is None:
        dispatch(ports, step.run_id, [step.step_id])
    elif now - held >= stale_after:  # as a dispatch finding the claim held past its lease: fails, frees its slot
        finish(ports, step, StepState.FAILED, None, unknown_submission(step))
    # else: a submission is in progress elsewhere; its holder records it


def sweep_runs(msg: SweepRuns, ports: Ports) -> None:
    """Reconcile the RUNNING runs with no sign of progress for `stale_after` seconds (a
    lost or dead-lettered message): one query, at most `limit` runs, stalest first."""
    now = ports.clock()
    stale = ports.store.runs.stale_runs(now - msg.stale_after, msg.limit)
    if stale:
        ports.bus.publish([ReconcileRun(r.run_id, ports.settings.submit_lease, now - msg.stale_after) for r in stale])
    for run in stale:
        log.warning("sweep: no progress for %.0f s: reconciling", now - run.updated_at, extra=ids(run.run_id))
    log.info("sweep: %d run(s) without progress for %.0f s", len(stale), msg.stale_after)
