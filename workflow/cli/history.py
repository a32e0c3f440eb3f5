"""`runs`, `status`, `resume`, `rerun` and `cancel`: the runs recorded in the embedded store
(`--db`), or with `--cloud` those of the cloud runtime: read from Firestore, and acted on
by requests published on the start topic, which the functions handle."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from .. import logs
from ..adapters.embedded.sqlite_store import SqliteStateStore
from ..bootstrap.cloud import PROJECT_ENV
from ..bootstrap.control import CloudControl, control
from ..bootstrap.embedded import embedded
from ..errors import InputError
from ..model.messages import CancelRun, Message, ReconcileRun, RerunRun
from ..model.records import RunRecord, StepRecord
from ..model.states import RunStatus, StepState
from ..model.text import excerpt
from ..ports import StateStore, TaskRunner
from ..settings import Settings
from .options import Parser, add_cloud, add_db, add_execution, check_runtime, seconds_arg, settings
from .output import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Seen, as_json, changes, exit_code, print_run, print_runs
from .run import check_task_runner, interrupted, watch


def runs(argv: Sequence[str], out: TextIO) -> int:
    p = Parser(prog="python main.py runs", description="The most recent runs first.")
    p.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N runs (default 20)")
    p.add_argument("--status", type=_status, metavar="STATUS",
                   help=f"only runs with this status ({', '.join(s.value for s in RunStatus)})")
    p.add_argument("--json", action="store_true", help="JSON for scripts, with the same fields")
    p.add_argument("--watch", action="store_true", help="print the list again whenever it changes, until Ctrl-C")
    _add_interval(p)
    add_db(p)
    add_cloud(p)
    args = _parsed(p, argv)
    with _reading(args) as (store, _):
        shown = None
        while True:
            found = store.runs.list_runs(args.limit, args.status)
            if found != shown:
                _print_list(found, args.json, out, again=shown is not None)
                shown = found
            if not args.watch:
                return EXIT_OK
            time.sleep(args.interval)


def _print_list(found: list[RunRecord], json_out: bool, out: TextIO, again: bool) -> None:
    if again:
        print(file=out)
    if json_out:
        print(as_json(found), file=out)
    elif found:
        print_runs(found, out)
    else:
        print("no runs", file=out)
    out.flush()


def status(argv: Sequence[str], out: TextIO) -> int:
    p = Parser(prog="python main.py status", description="A run, each of its steps, and its DAG with states.")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--watch", action="store_true", help="print it again whenever it changes, until it ends")
    p.add_argument("--json", action="store_true", help="JSON for scripts: the run and its steps")
    _add_interval(p)
    add_db(p)
    add_cloud(p)
    args = _parsed(p, argv)
    with _reading(args) as (store, where):
        run = _appeared(store, args, where)
        shown = None
        while True:
            steps = store.steps.list_steps(args.run_id)
            if (run, steps) != shown:
                _print_status(run, steps, args.json, out, again=shown is not None)
                shown = (run, steps)
            if not args.watch or run.status.terminal:
                return exit_code(run.status)
            time.sleep(args.interval)
            run = store.runs.get_run(args.run_id) or run


APPEAR_WITHIN = 30.0  # seconds `status --watch` waits for a run not recorded yet (an upload being handled)


def _appeared(store: StateStore, args: argparse.Namespace, where: str) -> RunRecord:
    """The run; with --watch, waited for up to APPEAR_WITHIN s. InputError if there is none."""
    give_up = time.monotonic() + (APPEAR_WITHIN if args.watch else 0.0)
    while True:
        run = store.runs.get_run(args.run_id)
        if run is not None:
            return run
        if time.monotonic() >= give_up:
            raise _no_run(args, where)
        time.sleep(args.interval)


def _print_status(run: RunRecord, steps: list[StepRecord], json_out: bool, out: TextIO, again: bool) -> None:
    if json_out:
        print(f'{{"run": {as_json(run)}, "steps": {as_json(steps)}}}', file=out, flush=True)
        return
    if again:
        print(file=out)
    print_run(run, steps, out)
    out.flush()


def resume(argv: Sequence[str], out: TextIO, runner: TaskRunner | None = None) -> int:
    p = Parser(prog="python main.py resume",
               description="Continue an interrupted run: check its running jobs and dispatch what is ready. "
                           "A job already submitted is never submitted again. With --cloud, a resume request "
                           "is published instead: the functions reconcile the run as after a lost message (a "
                           "submission claimed over 10 minutes ago with no job recorded fails its step), and "
                           "the run is followed to its end.")
    p.add_argument("run_id", metavar="RUN_ID")
    add_execution(p)
    add_cloud(p, requests=True)
    args = _parsed(p, argv)
    if args.cloud:
        return _request(args, out, "resume", lambda run: {} if not run.status.terminal else None,
                        lambda before, now: True)
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
    add_cloud(p, requests=True)
    args = _parsed(p, argv)
    if args.cloud:
        return _request(args, out, "rerun", _rerun_request, lambda before, now: len(now.reruns) > len(before.reruns))
    return _execute(args, out, runner,
                    lambda run: RerunRun(run.run_id, len(run.reruns), args.from_step) if run.status.terminal else None,
                    "rerun")


def _rerun_request(run: RunRecord) -> dict[str, Any] | None:
    return {"reruns": len(run.reruns)} if run.status.terminal else None


def _execute(args: argparse.Namespace, out: TextIO, runner: TaskRunner | None,
             request: Callable[[RunRecord], Message | None], verb: str) -> int:
    """Execute `request` for the run on the embedded runtime and follow the run to its end."""
    logs.configure(logging.INFO if args.verbose else logging.WARNING)
    config = settings(args)
    with _store(args.db) as store:
        run, steps = _existing(store, args, args.db)
    message = request(run)
    if message is not None and runner is None:
        check_task_runner(run.tr_url, args.jwt)  # fail now, with a way out, not at the first check
    if message is None:
        return _nothing_to(verb, run, out)
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
    add_cloud(p, requests=True)
    args = _parsed(p, argv)
    if args.cloud:
        return _request(args, out, "cancel", lambda run: None if run.status.terminal else {},
                        lambda before, now: now.status.terminal)
    with _store(args.db) as store:
        run, _ = _existing(store, args, args.db)
    if run.status.terminal:
        return _nothing_to("cancel", run, out)
    rt = embedded(Settings(), jwt="none", db_path=args.db, workers=1)  # never calls the Task Runner
    try:
        running = [s for s in rt.store.steps.list_steps(run.run_id) if s.state is StepState.RUNNING]
        rt.bus.publish([CancelRun(run.run_id, "run cancelled from the command line")])
        while not rt.bus.idle():
            time.sleep(0.05)
        ended = rt.store.runs.get_run(run.run_id)
    finally:
        rt.close()
    print(f"run {run.run_id} {ended.status.value if ended else 'CANCELLED'}", file=out)
    _print_kept_jobs(running, out)
    return exit_code(RunStatus.CANCELLED)


def _print_kept_jobs(running: list[StepRecord], out: TextIO) -> None:
    for step in running:
        print(f"  job {step.job_id} of step {step.step_id} keeps running at the Task Runner "
              "(the protocol has no cancel request)", file=out)


# -- the cloud runtime --------------------------------------------------------------------
EXIT_NOT_SEEN = 3  # a request was published, but the run did not show it within --timeout
CLOUD_POLL = 0.5  # seconds between two reads of the run while waiting for a request's effect


def _request(args: argparse.Namespace, out: TextIO, action: str,
             fields: Callable[[RunRecord], dict[str, Any] | None],
             seen: Callable[[RunRecord, RunRecord], bool]) -> int:
    """Publish the `action` request for the run on the start topic (its other `fields` given,
    or None: nothing to do), then wait, unless --no-wait, until `seen(before, now)` and the
    run ended, or --timeout; print the run as `status` does."""
    with _cloud(args) as ctl:
        run, steps = _existing(ctl.store, args, ctl.where)
        extra = fields(run)
        if extra is None:
            return _nothing_to(action, run, out)
        body = {"action": action, "run_id": run.run_id, **extra}
        if getattr(args, "from_step", ""):
            body["from"] = args.from_step
        ctl.request(body)
        print(f"requested: {json.dumps(body)} on the start topic", file=out, flush=True)
        if args.no_wait:
            return EXIT_OK
        running = [s for s in steps if s.state is StepState.RUNNING]
        return _await(ctl, run, seen, args, out, action, running)


def _await(ctl: CloudControl, before: RunRecord, seen: Callable[[RunRecord, RunRecord], bool],
           args: argparse.Namespace, out: TextIO, action: str, running: list[StepRecord]) -> int:
    deadline = time.monotonic() + args.wait
    now, shown = before, False
    while not (shown and now.status.terminal) and time.monotonic() < deadline:
        time.sleep(CLOUD_POLL)
        now = ctl.store.runs.get_run(before.run_id) or now
        shown = seen(before, now)
    print_run(now, ctl.store.steps.list_steps(now.run_id), out)
    follow = f"'python main.py status --cloud {now.run_id} --watch' follows it"
    if not shown:
        print(f"error: run {now.run_id} does not show the {action} request after {args.wait:g} s: are the "
              f"functions deployed, and is the start topic delivered to on_start_message? {follow}",
              file=sys.stderr)
        return EXIT_NOT_SEEN
    if action == "cancel":
        _print_kept_jobs(running, out)
    if not now.status.terminal:
        print(f"note: run {now.run_id} is still RUNNING after {args.wait:g} s; {follow}", file=sys.stderr)
    return exit_code(now.status)


@contextmanager
def _cloud(args: argparse.Namespace) -> Iterator[CloudControl]:
    """The cloud runtime's store and start topic; the cloud's refusals become InputError."""
    if not (args.project or os.environ.get(PROJECT_ENV)):
        raise InputError(f"--cloud needs a project: --project ID, or {PROJECT_ENV}")
    ctl = control(project=args.project, database=args.database)
    try:
        yield ctl
    except ctl.refusals as exc:
        raise InputError(f"{ctl.where}: {excerpt(str(exc), 300)}") from None


@contextmanager
def _reading(args: argparse.Namespace) -> Iterator[tuple[StateStore, str]]:
    """The store to read (SQLite at --db, or with --cloud Firestore) and its name for messages."""
    if args.cloud:
        with _cloud(args) as ctl:
            yield ctl.store, ctl.where
    else:
        with _store(args.db) as store:
            yield store, args.db


# -- shared -------------------------------------------------------------------------------
def _parsed(p: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    args = p.parse_args(argv)
    check_runtime(args)
    return args


def _existing(store: StateStore, args: argparse.Namespace, where: str) -> tuple[RunRecord, list[StepRecord]]:
    """The run and its steps; InputError if there is no such run, or no such --from step."""
    run = store.runs.get_run(args.run_id)
    if run is None:
        raise _no_run(args, where)
    steps = store.steps.list_steps(args.run_id)
    if getattr(args, "from_step", "") and args.from_step not in {s.step_id for s in steps}:
        raise InputError(f"run {run.run_id} has no step {args.from_step!r}")
    return run, steps


def _no_run(args: argparse.Namespace, where: str) -> InputError:
    lister = "python main.py runs --cloud" if args.cloud else "python main.py runs"
    return InputError(f"no run {args.run_id!r} in {where} ('{lister}' lists them)")


def _nothing_to(verb: str, run: RunRecord, out: TextIO) -> int:
    state = f"already ended {run.status.value}" if run.status.terminal else "is still RUNNING (cancel it first)"
    print(f"run {run.run_id} {state}: nothing to {verb}", file=out)
    return exit_code(run.status)


def _add_interval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interval", type=_interval, default=1.0, metavar="SECONDS",
                   help="with --watch: seconds between two reads (default: %(default)g)")


def _interval(raw: str) -> float:
    value = seconds_arg(raw)
    if value < 0.05:
        raise argparse.ArgumentTypeError(f"{raw!r}: at least 0.05 seconds between two reads")
    return value


COMMANDS = {"runs": runs, "status": status, "resume": resume, "rerun": rerun, "cancel": cancel}


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
