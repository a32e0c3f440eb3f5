"""The dispatch table: each message type to the handler of its phase."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
from .cancel import cancel_run
from .context import Ports
from .finish import run_finished, step_finished
from .poll import check_job
from .recover import reconcile_run, sweep_runs
from .rerun import rerun_run
from .start import start_run
from .submit import dispatch_step
from .timeout import timeout_run

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
