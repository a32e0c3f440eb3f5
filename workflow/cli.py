"""`python main.py --dag-path PATH --tr-hostname URL`: run a DAG to completion on the embedded runtime.

Exit codes: 0 the run succeeded, 1 it failed, 2 invalid input or usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import urlparse

from . import logs
from .adapters.http.auth import check_token
from .bootstrap import EmbeddedRuntime, embedded, token_source
from .dagfile import read_dag
from .errors import InputError
from .model.messages import StartRun
from .model.records import StepRecord
from .model.states import RunStatus
from .ports import TaskRunner
from .settings import POLL_ENV, TIMEOUT_ENV, Settings, parse_seconds

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_DB = "workflow-runs.sqlite3"

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

exit codes: 0 run succeeded, 1 run failed, 2 invalid input or usage, 130 interrupted
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise InputError(message)


def _flags(*names: str) -> list[str]:
    """Each `--name` also as `-name`, the Go flag package's spelling (`-dag-path=x`)."""
    return [*names, *(n[1:] for n in names)]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python main.py",
        description="Run a DAG of containerized jobs against a Task Runner, to completion.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(*_flags("--dag-path", "--workflow-path"), dest="dag_path", required=True, metavar="PATH",
                   help="the DAG file: a local path or gs://bucket/object (YAML or JSON)")
    p.add_argument(*_flags("--tr-hostname", "--tr-url"), dest="tr_url", required=True, metavar="URL",
                   help="the Task Runner's base URL (scheme and host), e.g. https://runner.example.com")
    p.add_argument(*_flags("--tr-auth-jwt"), dest="jwt", metavar="JWT",
                   help="bearer token sent as is (even 'none'); without it, an ID token for the "
                        "Task Runner URL is obtained from Google credentials")
    p.add_argument(*_flags("--check-state-duration-sec"), dest="poll", metavar="SECONDS",
                   help=f"polling interval; overrides {POLL_ENV}")
    p.add_argument(*_flags("--step-timeout-sec"), dest="timeout", metavar="SECONDS",
                   help=f"step timeout; overrides {TIMEOUT_ENV}")
    p.add_argument("--db", default=DEFAULT_DB, metavar="PATH",
                   help="SQLite file recording runs (default: %(default)s; ':memory:' keeps nothing)")
    p.add_argument("--run-id", metavar="ID", help="id of this run (default: generated)")
    p.add_argument("--verbose", "-v", action="store_true", help="log every handler's work to stderr")
    return p


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, runner: TaskRunner | None = None) -> int:
    out = out or sys.stdout
    try:
        args = build_parser().parse_args(argv)
        logs.configure(logging.INFO if args.verbose else logging.WARNING)
        settings = _settings(args)
        url = _check_url(args.tr_url)
        if args.jwt is not None:
            check_token(args.jwt, "--tr-auth-jwt")
        dag = read_dag(args.dag_path)
        if runner is None:
            _probe(url)
        if runner is None and args.jwt is None:
            token_source(None).token(url)  # fail now, with a way out, rather than at the first step
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    run_id = args.run_id or _run_id(dag.name)
    rt = embedded(settings, runner, jwt=args.jwt, db_path=args.db)
    existing = rt.store.get_run(run_id)
    if existing is not None:
        rt.close()
        print(f"error: run {run_id} already exists in {args.db} (status {existing.status.value}, DAG "
              f"{existing.source or existing.dag_name!r}): choose another --run-id", file=sys.stderr)
        return EXIT_USAGE
    try:
        rt.bus.publish([StartRun(run_id, dag, url, source=args.dag_path)])
        count = f"{len(dag.steps)} step{'s' if len(dag.steps) != 1 else ''}"
        print(f"run {run_id}: {count}, Task Runner {url}; times are UTC", file=out, flush=True)
        status = watch(rt, run_id, out)
    except KeyboardInterrupt:
        print(f"interrupted; run {run_id} stays RUNNING in {args.db}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        rt.close()
    return EXIT_OK if status is RunStatus.SUCCEEDED else EXIT_FAILED


def watch(rt: EmbeddedRuntime, run_id: str, out: TextIO, every: float = 0.1) -> RunStatus:
    """Print a line per step state change until the run ends; then the summary. Returns the status."""
    seen: dict[str, tuple[str, str]] = {}
    while True:
        idle = rt.bus.idle()  # read before the store: nothing can happen after an idle bus
        run = rt.store.get_run(run_id)
        steps = rt.store.list_steps(run_id)
        for line in sorted(change for step in steps for change in changes(step, seen)):
            print_line(out, *line)
        if run is not None and run.status.terminal and idle:
            print_summary(steps, run.status, out)
            return run.status
        if idle:
            reasons = "; ".join(f"{type(m).__name__} for {getattr(m, 'step_id', '')}: {why}"
                                for m, why in rt.bus.dead_letters) or "no message left to handle"
            print(f"error: run {run_id} is stuck ({reasons})", file=sys.stderr)
            print_summary(steps, RunStatus.FAILED, out)
            return RunStatus.FAILED
        time.sleep(every)


Line = tuple[float, str, str, str, str]  # when, step, state, job id, detail


def changes(step: StepRecord, seen: dict[str, tuple[str, str]]) -> list[Line]:
    """The lines to print for what changed in `step` since `seen` (which is updated)."""
    now = (step.state.value, step.job_state)
    before = seen.get(step.step_id, ("PENDING", ""))
    if now == before:
        return []
    seen[step.step_id] = now
    lines: list[Line] = []
    if before[0] == "PENDING" and step.submitted_at is not None and step.state.terminal:
        lines.append((step.submitted_at, step.step_id, "RUNNING", step.job_id, ""))
    if step.state.terminal:
        at = step.finished_at
    else:  # first seen RUNNING: when it was submitted; a later job state: now
        at = step.submitted_at if before[0] == "PENDING" else time.time()
    detail = step.message if step.state.terminal else step.job_state
    lines.append((at or time.time(), step.step_id, step.state.value, step.job_id, detail))
    return lines


def print_line(out: TextIO, at: float, step_id: str, state: str, job_id: str, detail: str) -> None:
    stamp = datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3] + "Z"
    job = f"job={job_id}" if job_id else ""
    print(f"{stamp}  {step_id:<20} {state:<10} {job:<28} {detail}".rstrip(), file=out, flush=True)


SUMMARY_LEGEND = ("ELAPSED: from the job's submission until its end was seen (to within one polling "
                  "interval); MESSAGE: the Task Runner's message or why the step ended")


def print_summary(steps: Sequence[StepRecord], status: RunStatus, out: TextIO) -> None:
    rows = [("STEP", "STATE", "JOB ID", "ELAPSED", "MESSAGE")]
    for s in steps:
        took = "-"
        if s.submitted_at is not None and s.finished_at is not None:
            took = f"{s.finished_at - s.submitted_at:.1f}s"
        rows.append((s.step_id, s.state.value, s.job_id or "-", took, s.message))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(file=out)
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:4], widths, strict=True)]
        print("  ".join([*cells, r[4]]).rstrip(), file=out)
    print(f"({SUMMARY_LEGEND})", file=out)
    print(f"\nrun {status.value}", file=out, flush=True)


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if args.poll is not None:
        poll = parse_seconds(args.poll, "--check-state-duration-sec", allow_zero=True)
        settings = replace(settings, poll_interval=poll)
    if args.timeout is not None:
        timeout = parse_seconds(args.timeout, "--step-timeout-sec", allow_zero=False)
        settings = replace(settings, step_timeout=timeout)
    return settings


def _check_url(raw: str) -> str:
    url = urlparse(raw)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise InputError(f"--tr-hostname {raw!r}: expected a URL such as https://runner.example.com")
    return raw.rstrip("/")


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
