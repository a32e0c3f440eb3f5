"""StartRun: record the run and its steps (idempotent), then dispatch the steps with no dependency."""

from __future__ import annotations

from ..errors import PoisonMessage
from ..model.messages import StartRun
from ..model.records import RunRecord, StepRecord
from ..model.states import RunStatus
from .context import Ports, dispatch, ids, log
from .timeout import arm_timeout


def start_run(msg: StartRun, ports: Ports) -> None:
    now = ports.clock()
    dag = msg.dag
    run = RunRecord(run_id=msg.run_id, status=RunStatus.RUNNING, tr_url=msg.tr_url, dag_name=dag.name,
                    source=msg.source, created_at=now, step_count=len(dag.steps), timeout=dag.timeout,
                    inputs=msg.inputs)
    steps = [
        StepRecord(run_id=msg.run_id, step_id=s.id, task=s.task, tr_url=msg.tr_url, tr_auth=msg.tr_auth,
                   depends_on=s.depends_on, successors=dag.successors(s.id), waiting_on=len(s.depends_on),
                   policy=s.policy, waits_for_any_end=dag.waits_for_any_end(s.id), max_parallel=dag.max_parallel or 0)
        for s in dag.steps
    ]
    created = ports.store.runs.create_run(run, steps)
    if not created and not _same_steps(ports.store.steps.list_steps(msg.run_id), steps):
        raise PoisonMessage(f"run {msg.run_id!r} already exists with another DAG: start refused "
                            "(a run id names one run; choose another)")
    log.info("run %s", "started" if created else "already started", extra=ids(msg.run_id))
    dispatch(ports, msg.run_id, dag.roots(), 1, dag.max_parallel or 0)
    if dag.timeout is not None:
        arm_timeout(ports, run if created else ports.store.runs.get_run(msg.run_id) or run, now)


def _same_steps(stored: list[StepRecord], wanted: list[StepRecord]) -> bool:
    """Whether a stored run has exactly these steps (a repeated start of the same run)."""

    def shape(steps: list[StepRecord]) -> list[tuple[object, ...]]:
        return [(s.step_id, s.task, s.depends_on, s.tr_url, s.policy, s.max_parallel) for s in steps]

    return shape(stored) == shape(wanted)
