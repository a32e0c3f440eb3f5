"""CancelRun: no new submission; every open step CANCELLED; the run ends CANCELLED."""

from __future__ import annotations

from ..model.messages import CancelRun
from ..model.states import StepState
from .context import Ports, ids, log
from .finish import finish_run


def cancel_run(msg: CancelRun, ports: Ports) -> None:
    """Idempotent. The Task Runner protocol has no cancel request: jobs already submitted
    keep running there (their ids stay on their steps). Checks of a cancelled step stop at
    their next turn; a dispatch finds its step no longer PENDING and submits nothing."""
    steps = ports.store.steps.list_steps(msg.run_id)
    open_ids = [s.step_id for s in steps if not s.state.terminal]
    done = ports.store.steps.end_steps(msg.run_id, open_ids, StepState.CANCELLED, msg.reason, ports.clock())
    if done.recorded:
        log.info("run cancelled: %s", msg.reason, extra=ids(msg.run_id))
    if done.run_complete:
        finish_run(ports, msg.run_id)
