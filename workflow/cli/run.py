"""`dag-workflow run DAG_PATH --tr-hostname URL` (or the Go tool's `--dag-path PATH` without a
verb): run a DAG to completion on the embedded runtime."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shlex
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
from ..dagfile import RunContext, instantiate
from ..errors import InputError
from ..model.messages import StartRun
from ..model.states import RunStatus
from ..ports import TaskRunner
from ..settings import POLL_ENV, TIMEOUT_ENV
from .options import DEFAULT_DB, JWT_ENV, VERSION, Parser, add_execution, flags, prog, settings
from .output import EXIT_INTERRUPTED, EXIT_USAGE, Seen, changes, exit_code, print_line, print_summary
from .params import add_params, param_values


def epilog() -> str:
    return f"""\
environment variables:
  {POLL_ENV}  the longest wait between two checks of a running job
                                     (default 10; the first checks come sooner: 1 s after
                                     submission, then twice as long each time; 0 = no pause)
  {TIMEOUT_ENV}          a step still running this long after submission FAILS
                                     (default 36000, i.e. 10 hours)
  {JWT_ENV}               the token when --tr-auth-jwt is not given ('none' allowed)
  GOOGLE_APPLICATION_CREDENTIALS     service account key used for ID tokens when
                                     neither of these is given
  STORAGE_EMULATOR_HOST              read gs:// DAG paths from a GCS emulator

every option also takes the Go tool's single-dash form: -dag-path=PATH, -tr-hostname URL, ...
and '{prog()} --dag-path PATH ...' (without 'run') is the Go tool's form of this command.

other commands (each with --help):
  {prog()} runs [--limit N] [--status S] [--json]   the recorded runs, most recent first
  {prog()} status RUN_ID [--watch] [--json]         a run, its steps and its DAG with states
  {prog()} resume RUN_ID [--tr-hostname URL]        continue an interrupted run
  {prog()} rerun RUN_ID [--from STEP] [--dag-path FILE]  run what failed again, keeping successes
  {prog()} cancel RUN_ID                            stop a run (another process may execute it)
  {prog()} backfill DAG_PATH --from DATE --to DATE  one run per schedule tick in the range
  {prog()} ui                                       the runs in a browser
  (each of these with --cloud: the runs of the cloud runtime, in Firestore)

exit codes: 0 run succeeded, 1 run failed, 2 invalid input or usage, 3 a --cloud request not seen
in time, 130 interrupted
"""


def build_parser(verb: str = "") -> Parser:
    """The run form's parser: with `verb` ("run") the DAG file may come first, without a flag."""
    p = Parser(
        verb,
        description="Run a DAG of containerized jobs against a Task Runner, to completion.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if verb:
        p.add_argument("dag_file", nargs="?", metavar="DAG_PATH", help="the DAG file (or --dag-path)")
    p.add_argument(*flags("--dag-path", "--workflow-path"), dest="dag_path", required=not verb, metavar="PATH",
                   help="the DAG file: a local path or gs://bucket/object (YAML or JSON)")
    p.add_argument(*flags("--tr-hostname", "--tr-url"), dest="tr_url", required=True, metavar="URL",
                   help="the Task Runner's base URL (scheme and host), e.g. https://runner.example.com")
    add_execution(p)
    p.add_argument("--run-id", metavar="ID", help="id of this run (default: generated)")
    add_params(p)
    p.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    return p


def version() -> str:
    return VERSION


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, runner: TaskRunner | None = None,
         verb: str = "") -> int:
    """Run a DAG file to its end; the exit code says how it ended. `verb`: called as `run`."""
    out = out or sys.stdout
    try:
        args = _arguments(build_parser(verb), argv)
        logs.configure(logging.INFO if args.verbose else logging.WARNING)
        config = settings(args)
        url = check_url(args.tr_url)
        template = LocalDags().read(args.dag_path)
        run_id = args.run_id or _run_id(template.name)
        dag, inputs = instantiate(template, param_values(args), RunContext(run_id, time.time()), args.dag_path)
        if runner is None:
            check_task_runner(url, args.jwt)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
            print(f"note: run {other} of this DAG did not finish; '{resume_command(other, args.db, args.jwt)}' "
                  "continues it instead of starting over", file=sys.stderr)
        rt.bus.publish([StartRun(run_id, dag, url, source=args.dag_path, inputs=inputs)])
        count = f"{len(dag.steps)} step{'s' if len(dag.steps) != 1 else ''}"
        print(f"run {run_id}: {count}, Task Runner {url}; times are UTC", file=out, flush=True)
        return exit_code(watch(rt, run_id, out))
    except KeyboardInterrupt:
        return interrupted(run_id, args.db, args.jwt)
    finally:
        rt.close()


def _arguments(p: Parser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = p.parse(sys.argv[1:] if argv is None else argv)
    if getattr(args, "dag_file", None):
        if args.dag_path:
            p.error(f"the DAG file given twice: {args.dag_file} and --dag-path {args.dag_path}")
        args.dag_path = args.dag_file
    if not args.dag_path:
        p.error(f"a DAG file is needed: {prog('run')} DAG_PATH --tr-hostname URL")
    return args


def resume_command(run_id: str, db: str, jwt: str | None) -> str:
    """The command that continues the run, to be pasted as printed: it never holds a token
    (a real one is read from WORKFLOW_TR_AUTH_JWT; 'none' is written out)."""
    words = [prog("resume"), run_id]
    if db != DEFAULT_DB:
        words += ["--db", shlex.quote(db)]
    if jwt == "none":
        words += ["--tr-auth-jwt", "none"]
    elif jwt is not None and os.environ.get(JWT_ENV) != jwt:
        words += ["--tr-auth-jwt", f'"${JWT_ENV}"']
    return " ".join(words)


def interrupted(run_id: str, db: str, jwt: str | None) -> int:
    """Say how to continue the run, which stays RUNNING in the store."""
    command = resume_command(run_id, db, jwt)
    needs = f" (with the token in {JWT_ENV})" if JWT_ENV in command else ""
    print(f"\ninterrupted: run {run_id} stays RUNNING in {db}; jobs already submitted keep running at the "
          f"Task Runner. Continue it with: {command}{needs}", file=sys.stderr)
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
            print_summary(steps, run.status, out, rt.ports.settings.poll_interval, run.inputs)
            return run.status
        if idle:
            reasons = "; ".join(f"{type(m).__name__} for {getattr(m, 'step_id', '')}: {why}"
                                for m, why in rt.bus.dead_letters) or "no message left to handle"
            print(f"error: run {run_id} is stuck ({reasons})", file=sys.stderr)
            print_summary(steps, RunStatus.FAILED, out, rt.ports.settings.poll_interval)
            return RunStatus.FAILED
        time.sleep(every)


def check_url(raw: str) -> str:
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
