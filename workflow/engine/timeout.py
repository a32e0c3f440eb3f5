"""TimeoutRun: a run past its `timeoutSec` deadline ends FAILED: its running and ready
steps FAILED, the others SKIPPED, nothing released or dispatched."""

from __future__ import annotations

from ..model.messages import TimeoutRun
from ..model.records import Completion, RunRecord
from ..model.states import StepState
from .context import Busy, Ports, ids, log, run_of
from .finish import finish_run
from .skip import skip_all


def arm_timeout(ports: Ports, run: RunRecord, now: float) -> None:
    """Publish the run's TimeoutRun, due at its deadline (a rerun is not bound by it)."""
    if run.timeout is not None and not run.reruns:
        deadline = run.created_at + run.timeout
        ports.bus.publish([TimeoutRun(run.run_id, deadline)], delay=max(deadline - now, 0.0))


def timeout_run(msg: TimeoutRun, ports: Ports) -> None:
    """The run's timeoutSec passed. Once: an ended run is left alone."""
    run = run_of(ports, msg.run_id)
    if run.status.terminal or len(run.reruns) != msg.reruns:
        return  # ended in time, or rerun since (a rerun is not bound by the first deadline)
    now = ports.clock()
    if msg.deadline > now:
        ports.bus.publish([msg], delay=msg.deadline - now)  # delivered early: wait on
        return
    reason = f"run timed out (timeoutSec {msg.deadline - run.created_at:.0f} s)"
    for _ in range(3):  # a step may move on while this runs: look again
        steps = [s for s in ports.store.steps.list_steps(msg.run_id) if not s.state.terminal]
        ready = [s.step_id for s in steps if s.state is StepState.RUNNING or s.waiting_on == 0]
        blocked = [s.step_id for s in steps if s.step_id not in ready]
        failed = (ports.store.steps.end_steps(msg.run_id, ready, StepState.FAILED, reason, now) if ready
                  else Completion(False))
        skipped = skip_all(ports, msg.run_id, blocked, reason, now)
        if failed.recorded or skipped.recorded:
            log.warning("%s: %d step(s) failed, %d skipped", reason, len(ready), len(blocked), extra=ids(msg.run_id))
        if not steps or failed.run_complete or skipped.run_complete:
            finish_run(ports, msg.run_id)
            return
    raise Busy(f"run {msg.run_id!r} kept moving while it timed out")
