"""RerunRun: run an ended run's failed, cancelled and skipped steps again (and a chosen
step and its descendants), keeping its successes (the store's RERUN transition)."""

from __future__ import annotations

from dataclasses import replace

from ..dagfile import as_the_runs
from ..errors import DagInvalid, PoisonMessage
from ..model.dag import Dag, digest, reachable
from ..model.join import shape_differences, waiting_on
from ..model.messages import RerunRun
from ..model.records import Attempt, RunRecord, StepRecord
from ..model.states import RunStatus, StepState, why_final
from ..model.transitions import RERUN
from .context import Ports, dispatch, ids, log, run_of


def rerun_run(msg: RerunRun, ports: Ports) -> None:
    """Start the next attempt of the run's failed, cancelled and skipped steps (and of
    `from_step` and its descendants), keeping its successes; dispatch those now ready."""
    run = run_of(ports, msg.run_id)
    if run.status.terminal and not run.status.rerunnable:  # INVALID, SKIPPED: nothing of it ran
        raise PoisonMessage(f"run {msg.run_id!r}: {why_final(run.status)}")
    if len(run.reruns) == msg.reruns:
        if run.status is RunStatus.RUNNING:
            raise PoisonMessage(f"run {msg.run_id!r} is still running: cancel it first, or resume it")
        steps = ports.store.steps.list_steps(msg.run_id)
        if msg.dag:
            msg = replace(msg, dag=_with_the_runs_values(msg.dag, run))
        if msg.dag and (changed := shape_differences(steps, msg.dag)):
            raise PoisonMessage(f"run {msg.run_id!r}: the DAG file changes the run's shape ({'; '.join(changed)})")
        chosen = _to_rerun(steps, msg)
        ports.store.runs.rerun_steps(msg.run_id, msg.reruns, chosen, ports.clock())
        log.info("rerun of %d step(s)", len(chosen), extra=ids(msg.run_id))
    elif len(run.reruns) != msg.reruns + 1:
        return  # an older request
    # this rerun is recorded (now, or by an earlier delivery): dispatch what is ready
    steps = ports.store.steps.list_steps(msg.run_id)
    dispatch(ports, msg.run_id, [s.step_id for s in steps if s.state is StepState.PENDING and s.waiting_on == 0])


def _with_the_runs_values(dag: Dag, run: RunRecord) -> Dag:
    try:
        return as_the_runs(dag, run, "the rerun's DAG")
    except DagInvalid as exc:
        raise PoisonMessage(f"run {run.run_id!r}: {exc}") from None


def _to_rerun(steps: list[StepRecord], msg: RerunRun) -> list[StepRecord]:
    """The steps to run again, each as it must become (next attempt, join counter recounted,
    the rerun's own token if it brought one).
    A PENDING step of an ended run was reset by a rerun that crashed half-way: it is taken
    as it is, so a redelivered request completes that rerun without counting it twice."""
    by_id = {s.step_id: s for s in steps}
    given = {s.id: s for s in msg.dag.steps} if msg.dag else {}
    if msg.from_step and msg.from_step not in by_id:
        raise PoisonMessage(f"run {msg.run_id!r} has no step {msg.from_step!r}")
    again = {s.step_id for s in steps if s.state in RERUN.from_states}
    if msg.from_step:
        again |= {msg.from_step} | reachable({s.step_id: s.successors for s in steps}, msg.from_step)
    result = []
    for s in steps:
        if s.step_id not in again:
            continue
        waiting = waiting_on(s.depends_on, again, lambda d: by_id[d].state is StepState.SUCCEEDED)
        new = given.get(s.step_id)
        defined = replace(s, task=new.task, policy=new.policy) if new else s
        if msg.tr_auth:  # the rerun brought its own token: the steps run again use it
            defined = replace(defined, tr_auth=msg.tr_auth)
        if s.state is StepState.PENDING:
            result.append(replace(defined, waiting_on=waiting))
            continue
        earlier = Attempt(s.attempt, s.state, s.job_id, s.message, s.submitted_at, s.finished_at,
                          definition=digest(s.task, s.policy))
        result.append(replace(defined, state=StepState.PENDING, attempt=s.attempt + 1, history=(*s.history, earlier),
                              waiting_on=waiting, job_id="", job_state="", message="", submitted_at=None,
                              finished_at=None))
    return result
