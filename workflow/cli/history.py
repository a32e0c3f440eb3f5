"""`runs`, `status RUN_ID` and `resume RUN_ID`: the runs recorded in the embedded store."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from .. import logs
from ..adapters.embedded.sqlite_store import SqliteStateStore
from ..bootstrap.embedded import embedded
from ..errors import InputError
from ..model.messages import CancelRun, Message, ReconcileRun, RerunRun
from ..model.records import RunRecord
from ..model.states import RunStatus, StepState
from ..ports import TaskRunner
from ..settings import Settings
from .options import Parser, add_db, add_execution, settings
from .output import EXIT_OK, EXIT_USAGE, Seen, as_json, changes, exit_code, print_run, print_runs
from .run import check_task_runner, interrupted, watch


def runs(argv: Sequence[str], out: TextIO) -> int:
    p = Parser(prog="python main.py runs", description="The most recent runs first.")
    p.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N runs (default 20)")
    p.add_argument("--status", type=_status, metavar="STATUS",
                   help=f"only runs with this status ({', '.join(s.value for s in RunStatus)})")
    p.add_argument("--json", action="store_true", help="JSON for scripts, with the same fields")
    add_db(p)
    args = p.parse_args(argv)
    with _store(args.db) as store:
        found = store.list_runs(args.limit, args.status)
    if args.json:
        print(as_json(found), file=out)
    elif found:
        print_runs(found, out)
    else:
        print("no runs", file=out)
    return EXIT_OK


def status(argv: Sequence[str], out: TextIO) -> int:
    p = Parser(prog="python main.py status", description="A run, each of its steps, and its DAG with states.")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--watch", action="store_true", help="print it again whenever it changes, until it ends")
    p.add_argument("--json", action="store_true", help="JSON for scripts: the run and its steps")
    add_db(p)
    args = p.parse_args(argv)
    with _store(args.db) as store:
        shown = None
        while True:
            run, steps = store.get_run(args.run_id), store.list_steps(args.run_id)
            if run is None:
                raise InputError(f"no run {args.run_id!r} in {args.db} ('python main.py runs' lists them)")
            if (run, steps) != shown:
                if args.json:
                    print(f'{{"run": {as_json(run)}, "steps": {as_json(steps)}}}', file=out, flush=True)
                else:
                    print_run(run, steps, out)
                shown = (run, steps)
            if not args.watch or run.status.terminal:
                return exit_code(run.status)
            time.sleep(1.0)


def resume(argv: Sequence[str], out: TextIO, runner: TaskRunner | None = None) -> int:
    p = Parser(prog="python main.py resume",
               description="Continue an interrupted run: check its running jobs and dispatch what is ready. "
                           "A job already submitted is never submitted again.")
    p.add_argument("run_id", metavar="RUN_ID")
    add_execution(p)
    args = p.parse_args(argv)
    return _execute(args, out, runner, lambda run: ReconcileRun(run.run_id) if not run.status.terminal else None,
                    "resume")


def rerun(argv: Sequence[str], out: TextIO, runner: TaskRunner | None = None) -> int:
    p = Parser(prog="python main.py rerun",
               description="Run an ended run's failed, cancelled and skipped steps again (with --from, that "
                           "step and its descendants too), keeping its successes and every earlier attempt.")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--from", dest="from_step", default="", metavar="STEP",
                   help="also run STEP and every step after it again")
    add_execution(p)
    args = p.parse_args(argv)
    return _execute(args, out, runner,
                    lambda run: RerunRun(run.run_id, len(run.reruns), args.from_step) if run.status.terminal else None,
                    "rerun")


def _execute(args: argparse.Namespace, out: TextIO, runner: TaskRunner | None,
             request: Callable[[RunRecord], Message | None], verb: str) -> int:
    """Execute `request` for the run on the embedded runtime and follow the run to its end."""
    logs.configure(logging.INFO if args.verbose else logging.WARNING)
    config = settings(args)
    with _store(args.db) as store:
        run = store.get_run(args.run_id)
        steps = store.list_steps(args.run_id)
    if run is None:
        raise InputError(f"no run {args.run_id!r} in {args.db} ('python main.py runs' lists them)")
    if getattr(args, "from_step", "") and args.from_step not in {s.step_id for s in steps}:
        raise InputError(f"run {run.run_id} has no step {args.from_step!r}")
    message = request(run)
    if message is not None and runner is None:
        check_task_runner(run.tr_url, args.jwt)  # fail now, with a way out, not at the first check
    if message is None:
        state = f"already ended {run.status.value}" if run.status.terminal else "is still RUNNING (cancel it first)"
        print(f"run {run.run_id} {state}: nothing to {verb}", file=out)
        return exit_code(run.status)
    rt = embedded(config, runner, jwt=args.jwt, db_path=args.db)
    try:
        seen: Seen = {}
        for step in steps:
            changes(step, seen)  # what happened before is not news
        print(f"{verb}: run {run.run_id}; times are UTC", file=out, flush=True)
        rt.bus.publish([message])
        return exit_code(watch(rt, run.run_id, out, seen=seen))
    except KeyboardInterrupt:
        return interrupted(run.run_id, args.db)
    finally:
        rt.close()


def cancel(argv: Sequence[str], out: TextIO) -> int:
    p = Parser(prog="python main.py cancel",
               description="Cancel a run, also while another process executes it: nothing more is submitted, "
                           "its open steps end CANCELLED. Jobs already submitted keep running at the Task "
                           "Runner (its protocol has no cancel request); their ids are listed.")
    p.add_argument("run_id", metavar="RUN_ID")
    add_db(p)
    args = p.parse_args(argv)
    with _store(args.db) as store:
        run = store.get_run(args.run_id)
    if run is None:
        raise InputError(f"no run {args.run_id!r} in {args.db} ('python main.py runs' lists them)")
    if run.status.terminal:
        print(f"run {run.run_id} already ended {run.status.value}: nothing to cancel", file=out)
        return exit_code(run.status)
    rt = embedded(Settings(), jwt="none", db_path=args.db, workers=1)  # never calls the Task Runner
    try:
        running = [s for s in rt.store.list_steps(run.run_id) if s.state is StepState.RUNNING]
        rt.bus.publish([CancelRun(run.run_id, "run cancelled from the command line")])
        while not rt.bus.idle():
            time.sleep(0.05)
        ended = rt.store.get_run(run.run_id)
    finally:
        rt.close()
    print(f"run {run.run_id} {ended.status.value if ended else 'CANCELLED'}", file=out)
    for step in running:
        print(f"  job {step.job_id} of step {step.step_id} keeps running at the Task Runner "
              "(the protocol has no cancel request)", file=out)
    return exit_code(RunStatus.CANCELLED)


COMMANDS = {"runs": runs, "status": status, "resume": resume, "rerun": rerun, "cancel": cancel}


def command(name: str, argv: Sequence[str], out: TextIO, runner: TaskRunner | None) -> int:
    try:
        if name in ("resume", "rerun"):
            return COMMANDS[name](argv, out, runner)  # type: ignore[call-arg]
        return COMMANDS[name](argv, out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


@contextmanager
def _store(path: str) -> Iterator[SqliteStateStore]:
    """The SQLite store at `path`, which must exist; closed after use."""
    if path != ":memory:" and not os.path.exists(path):
        raise InputError(f"no run store at {path} (runs are recorded there by 'python main.py --dag-path ...')")
    store = SqliteStateStore(path)
    try:
        yield store
    finally:
        store.close()


def _positive(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number >= 1")
    return value


def _status(raw: str) -> RunStatus:
    try:
        return RunStatus(raw.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r}: expected one of {', '.join(s.value for s in RunStatus)}") from None
