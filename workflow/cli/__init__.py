"""The command line. `dag-workflow run DAG_PATH --tr-hostname URL` runs a DAG (and the Go tool's
`--dag-path PATH --tr-hostname URL` without a verb still does); `runs`, `status`, `resume`, `rerun`
and `cancel` operate the runs it recorded. Each verb is one entry of COMMANDS.

Exit codes: 0 the run succeeded (or still runs, for `status`; a cancel done), 1 it failed or was
cancelled, 2 invalid input or usage (an unknown run included), 3 a request made with --cloud was
not seen on the run in time, 130 interrupted, 141 the output's reader went away (`| head`).
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from ..errors import InputError
from ..ports import TaskRunner
from .acting import cancel, rerun, resume
from .backfill import backfill
from .options import prog
from .output import EXIT_INTERRUPTED, EXIT_USAGE, print_summary
from .reading import runs, status
from .run import main as run
from .run import version
from .terminal import PrintableStream
from .ui import ui

__all__ = ["main", "print_summary"]

COMMANDS = {"run": run, "runs": runs, "status": status, "resume": resume, "rerun": rerun, "cancel": cancel, "ui": ui,
            "backfill": backfill}
WITH_RUNNER = ("run", "resume", "rerun", "backfill")  # the commands that reach a Task Runner (tests hand them one)
# What users of other workflow tools type first, and the verb that does it here.
SYNONYMS = {"catchup": "backfill",
            "list": "runs", "ls": "runs", "get": "status", "show": "status", "logs": "status", "watch": "status",
            "submit": "run", "start": "run", "trigger": "run", "retry": "rerun", "clear": "rerun", "stop": "cancel",
            "terminate": "cancel", "kill": "cancel"}
EXIT_BROKEN_PIPE = 141  # as a shell reports a command ended by SIGPIPE


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, runner: TaskRunner | None = None) -> int:
    """Dispatch to a command by its first word; options first are the Go tool's run form."""
    args = list(sys.argv[1:] if argv is None else argv)
    stream = out or sys.stdout
    try:
        return _dispatch(args, PrintableStream(stream), runner)  # type: ignore[arg-type]
    except BrokenPipeError:  # `status RUN | head -1`: the reader has all it wanted
        _silence(stream)
        return EXIT_BROKEN_PIPE


def _dispatch(args: list[str], out: TextIO, runner: TaskRunner | None) -> int:
    if not args:
        print(overview(), file=sys.stderr)
        return EXIT_USAGE
    if args == ["help"]:
        print(overview(), file=out)
        return 0
    if args[0] in ("--version", "-version", "-V"):
        print(f"{prog()} {version()}", file=out)
        return 0
    if args[0] in COMMANDS:
        return command(args[0], args[1:], out, runner)
    if args[0].startswith("-"):
        return run(args, out, runner)
    print(f"error: {unknown_verb(args[0])}\n\n{overview()}", file=sys.stderr)
    return EXIT_USAGE


def unknown_verb(word: str) -> str:
    """What to say of a first word that is no command: the closest command, if any."""
    close = SYNONYMS.get(word.lower()) or next(iter(difflib.get_close_matches(word, COMMANDS, n=1)), "")
    if close not in COMMANDS and word.endswith((".yaml", ".yml", ".json")):
        close = f"run {word}"
    hint = f" (did you mean '{prog(close)}'?)" if close else ""
    return f"unknown command {word!r}{hint}"


def overview() -> str:
    return (f"usage: {prog()} COMMAND ...   (each command has --help)\n"
            f"commands: {', '.join(COMMANDS)}\n"
            f"run a DAG: {prog('run')} DAG_PATH --tr-hostname URL [--tr-auth-jwt JWT]\n"
            f"(the Go tool's form, {prog()} --dag-path PATH --tr-hostname URL, works too; --version)")


def command(name: str, argv: Sequence[str], out: TextIO, runner: TaskRunner | None) -> int:
    try:
        if name == "run":
            return run(argv, out, runner, verb="run")
        if name in WITH_RUNNER:
            return COMMANDS[name](argv, out, runner)  # type: ignore[call-arg]
        return COMMANDS[name](argv, out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # `--watch` ends this way; a run being executed handles it itself
        return EXIT_INTERRUPTED


def _silence(out: TextIO) -> None:
    """Point stdout at /dev/null so that the interpreter's last flush raises nothing."""
    if out is not sys.stdout:
        return
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind it: nothing will flush there
        return
