"""Actions on a run from its page (cancel, rerun, resume), what each needs of the run, and
its command-line twin. The runtime behind them is given to the app as a callable."""

from __future__ import annotations

from collections.abc import Callable

from ..model.records import RunRecord

ACTIONS = ("cancel", "rerun", "resume")


Actions = Callable[[str, RunRecord, str], str]
"""Do an action on the run (for rerun, from the step given, if any, else its failed steps);
a sentence saying what was done. InputError when it cannot be done."""


def allowed(action: str, run: RunRecord) -> bool:
    if action == "rerun":
        return run.status.rerunnable  # not INVALID, nor a SKIPPED tick: nothing of them ran
    return not run.status.terminal


def twin(action: str, run_id: str, where: str, from_step: str = "") -> str:
    """The command that does the same from the command line; `where` its store options."""
    extra = f" --from {from_step}" if from_step else ""
    return f"python main.py {action} {run_id}{extra} {where}".rstrip()
