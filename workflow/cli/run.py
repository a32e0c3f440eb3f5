"""`python main.py --dag-path PATH --tr-hostname URL`: run a DAG to completion on the embedded runtime."""

from __future__ import annotations

import argparse
import logging
import secrets
import socket
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import urlparse

from .. import logs
from ..adapters.local_dags import LocalDags
from ..bootstrap.embedded import EmbeddedRuntime, embedded, token_source
from ..errors import InputError
from ..model.messages import StartRun
from ..model.states import RunStatus
from ..ports import TaskRunner
from ..settings import POLL_ENV, TIMEOUT_ENV
from .options import DEFAULT_DB, Parser, add_execution, flags, settings
from .output import EXIT_INTERRUPTED, EXIT_USAGE, Seen, changes, exit_code, print_line, print_summary

EPILOG = f"""\
environment variables:
  {POLL_ENV}  seconds between two checks of a running job
                                     (default 10; fractions allowed; 0 = no pause)
  {TIMEOUT_ENV}          a step still running this long after submission FAILS
                                     (default 36000, i.e. 10 hours)
  GOOGLE_APPLICATION_CREDENTIALS     service account key used for ID tokens when
                                     --tr-auth-jwt is not given
  STORAGE_EMULATOR_HOST              read gs:// DAG paths from a GCS emulator

every option also takes the Go tool's single-dash form: -dag-path=PATH, -tr-hostname URL, ...

other commands (each with --help):
  python main.py runs [--limit N] [--status S] [--json]   the recorded runs, most recent first
  python main.py status RUN_ID [--watch] [--json]         a run, its steps and its DAG with states
  python main.py resume RUN_ID [--tr-auth-jwt JWT]        continue an interrupted run
  python main.py rerun RUN_ID [--from STEP]              run what failed again, keeping successes
  python main.py cancel RUN_ID                            stop a run (another process may execute it)
  (each of these with --cloud: the runs of the cloud runtime, in Firestore)

exit codes: 0 run succeeded, 1 run failed, 2 invalid input or usage, 3 a --cloud request not seen
in time, 130 interrupted
"""


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python main.py",
        description="Run a DAG of containerized jobs against a Task Runner, to completion.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(*flags("--dag-path", "--workflow-path"), dest="dag_path", required=True, metavar="PATH",
                   help="the DAG file: a local path or gs://bucket/object (YAML or JSON)")
    p.add_argument(*flags("--tr-hostname", "--tr-url"), dest="tr_url", required=True, metavar="URL",
                   help="the Task Runner's base URL (scheme and host), e.g. https://runner.example.com")
    add_execution(p)
    p.add_argument("--run-id", metavar="ID", help="id of this run (default: generated)")
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, runner: TaskRunner | None = None) -> int:
    """Run a DAG file to its end; the exit code says how it ended."""
    out = out or sys.stdout
    try:
        args = build_parser().parse_args(argv)
        logs.configure(logging.INFO if args.verbose else logging.WARNING)
        config = settings(args)
        url = _check_url(args.tr_url)
        dag = LocalDags().read(args.dag_path)
        if runner is None:
            check_task_runner(url, args.jwt)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    run_id = args.run_id or _run_id(dag.name)
    rt = embedded(config, runner, jwt=args.jwt, db_path=args.db)
    unfinished = [r.run_id for r in rt.store.list_runs(20, RunStatus.RUNNING) if r.source == args.dag_path]
    existing = rt.store.get_run(run_id)
    if existing is not None:
        rt.close()
        print(f"error: run {run_id} already exists in {args.db} (status {existing.status.value}, DAG "
              f"{existing.source or existing.dag_name!r}): choose another --run-id", file=sys.stderr)
        return EXIT_USAGE
    try:
        for other in unfinished:
            print(f"note: run {other} of this DAG did not finish; 'python main.py resume {other}' continues "
                  "it instead of starting over", file=sys.stderr)
        rt.bus.publish([StartRun(run_id, dag, url, source=args.dag_path)])
        count = f"{len(dag.steps)} step{'s' if len(dag.steps) != 1 else ''}"
        print(f"run {run_id}: {count}, Task Runner {url}; times are UTC", file=out, flush=True)
        return exit_code(watch(rt, run_id, out))
    except KeyboardInterrupt:
        return interrupted(run_id, args.db)
    finally:
        rt.close()


def interrupted(run_id: str, db: str) -> int:
    """Say how to continue the run, which stays RUNNING in the store."""
    where = "" if db == DEFAULT_DB else f" --db {db}"
    print(f"\ninterrupted: run {run_id} stays RUNNING in {db}; jobs already submitted keep running at the "
          f"Task Runner. Continue it with: python main.py resume {run_id}{where}", file=sys.stderr)
    return EXIT_INTERRUPTED


def watch(rt: EmbeddedRuntime, run_id: str, out: TextIO, every: float = 0.1,
          seen: Seen | None = None) -> RunStatus:
    """Print a line per step state change until the run ends; then the summary. Returns the status.

    `seen`: the steps' states already shown (default: none)."""
    seen = {} if seen is None else seen
    while True:
        idle, quiet = rt.bus.idle(), rt.bus.quiet()  # read before the store: see below
        run = rt.store.get_run(run_id)
        steps = rt.store.list_steps(run_id)
        for line in sorted(change for step in steps for change in changes(step, seen)):
            print_line(out, *line)
        # An ended run changes no more once nothing is being handled: what is still queued
        # for later (the run's timeout, a check of a step cancelled) finds it ended.
        if run is not None and run.status.terminal and quiet:
            print_summary(steps, run.status, out)
            return run.status
        if idle:
            reasons = "; ".join(f"{type(m).__name__} for {getattr(m, 'step_id', '')}: {why}"
                                for m, why in rt.bus.dead_letters) or "no message left to handle"
            print(f"error: run {run_id} is stuck ({reasons})", file=sys.stderr)
            print_summary(steps, RunStatus.FAILED, out)
            return RunStatus.FAILED
        time.sleep(every)


def _check_url(raw: str) -> str:
    url = urlparse(raw)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise InputError(f"--tr-hostname {raw!r}: expected a URL such as https://runner.example.com")
    return raw.rstrip("/")


def check_task_runner(url: str, jwt: str | None) -> None:
    """InputError, saying what to do, unless the Task Runner answers and a token can be had."""
    _probe(url)
    if jwt is None:
        token_source(None).token(url)


def _probe(url: str, timeout: float = 5.0) -> None:
    """InputError unless something accepts connections at the Task Runner's host and port."""
    parts = urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"the Task Runner at {url} does not answer ({reason}): is it running, "
                         "and is --tr-hostname right?") from None


def _run_id(name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "run"
    return f"{safe}-{stamp}-{secrets.token_hex(2)}"
