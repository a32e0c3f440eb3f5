"""The command line. `python main.py --dag-path PATH --tr-hostname URL` runs a DAG as the
Go tool did; `runs`, `status`, `resume`, `rerun` and `cancel` operate the runs it recorded.

Exit codes: 0 the run succeeded (or still runs, for `status`), 1 it failed or was cancelled, 2 invalid input
or usage (an unknown run included), 3 a request made with --cloud was not seen on the run in time,
130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from ..errors import InputError
from ..ports import TaskRunner
from .acting import cancel, rerun, resume
from .output import EXIT_INTERRUPTED, EXIT_USAGE, print_summary
from .reading import runs, status
from .run import main as run
from .ui import ui

__all__ = ["main", "print_summary"]

COMMANDS = {"runs": runs, "status": status, "resume": resume, "rerun": rerun, "cancel": cancel, "ui": ui}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, runner: TaskRunner | None = None) -> int:
    """Dispatch to a command by its first word; anything else is the run form."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in COMMANDS:
        return command(args[0], args[1:], out or sys.stdout, runner)
    return run(args, out, runner)


def command(name: str, argv: Sequence[str], out: TextIO, runner: TaskRunner | None) -> int:
    try:
        if name in ("resume", "rerun"):
            return COMMANDS[name](argv, out, runner)  # type: ignore[call-arg]
        return COMMANDS[name](argv, out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # `--watch` ends this way; a run being executed handles it itself
        return EXIT_INTERRUPTED
