"""`runs` and `status`: the runs recorded in the embedded store (`--db`), or with `--cloud`
those of the cloud runtime, read from Firestore."""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from ..model.records import RunRecord, StepRecord
from ..model.states import RunStatus
from ..ports import StateStore
from .cloud_requests import connect
from .options import Parser, add_cloud, add_db, parsed, positive_int, seconds_arg
from .output import EXIT_OK, as_json, exit_code, print_run, print_runs
from .stores import no_run, open_store


def runs(argv: Sequence[str], out: TextIO) -> int:
    p = Parser("runs", description="The most recent runs first.")
    p.add_argument("--limit", type=positive_int, default=20, metavar="N", help="at most N runs (default 20)")
    p.add_argument("--status", type=_status, metavar="STATUS",
                   help=f"only runs with this status ({', '.join(s.value for s in RunStatus)})")
    p.add_argument("--json", action="store_true", help="JSON for scripts, with the same fields")
    p.add_argument("--watch", action="store_true", help="print the list again whenever it changes, until Ctrl-C")
    _add_interval(p)
    add_db(p)
    add_cloud(p)
    args = parsed(p, argv)
    with _reading(args) as (store, _):
        shown = None
        while True:
            found = store.runs.list_runs(args.limit, args.status)
            if _listed(found) != shown:
                _print_list(found, args.json, out, again=shown is not None)
                shown = _listed(found)
            if not args.watch:
                return EXIT_OK
            time.sleep(args.interval)


def _listed(found: list[RunRecord]) -> list[tuple[object, ...]]:
    """What a list shows of each run, but the duration of running ones (it grows every second)."""
    return [(r.run_id, r.status, r.source, r.dag_name, r.finished_at, r.succeeded, r.failed, r.skipped,
             r.cancelled, r.step_count) for r in found]


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
    p = Parser("status", description="A run, each of its steps, and its DAG with states.")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--watch", action="store_true", help="print it again whenever it changes, until it ends")
    p.add_argument("--json", action="store_true", help="JSON for scripts: the run and its steps")
    _add_interval(p)
    add_db(p)
    add_cloud(p)
    args = parsed(p, argv)
    with _reading(args) as (store, where):
        run = _appeared(store, args, where)
        shown = None
        while True:
            screen = _status_text(run, store.steps.list_steps(args.run_id), args.json)
            if screen != shown:  # redrawn only when what it shows changed (not a heartbeat)
                print(("\n" if shown is not None and not args.json else "") + screen, file=out, end="", flush=True)
                shown = screen
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
            raise no_run(args, where)
        time.sleep(args.interval)


def _status_text(run: RunRecord, steps: list[StepRecord], json_out: bool) -> str:
    if json_out:
        return f'{{"run": {as_json(run)}, "steps": {as_json(steps)}}}\n'
    text = io.StringIO()
    print_run(run, steps, text)
    return text.getvalue()


@contextmanager
def _reading(args: argparse.Namespace) -> Iterator[tuple[StateStore, str]]:
    """The store to read (SQLite at --db, or with --cloud Firestore) and its name for messages."""
    if args.cloud:
        with connect(args) as ctl:
            yield ctl.store, ctl.where
    else:
        with open_store(args.db) as store:
            yield store, args.db


def _add_interval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--interval", type=_interval, default=1.0, metavar="SECONDS",
                   help="with --watch: seconds between two reads (default: %(default)g)")


def _interval(raw: str) -> float:
    value = seconds_arg(raw)
    if value < 0.05:
        raise argparse.ArgumentTypeError(f"{raw!r}: at least 0.05 seconds between two reads")
    return value


def _status(raw: str) -> RunStatus:
    try:
        return RunStatus(raw.upper())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r}: expected one of {', '.join(s.value for s in RunStatus)}") from None
