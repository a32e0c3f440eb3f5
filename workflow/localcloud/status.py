"""Read runs from the local cloud's Firestore and print them (`python -m workflow.localcloud status`).

Where Firestore is comes from the state file written by `up` (its `env`), else from the
environment (FIRESTORE_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT, as the `export` lines of
`up` set them). Only the emulator is ever read: without an emulator host this refuses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from workflow.adapters.gcp.firestore_store import FirestoreStateStore
from workflow.cli.output import EXIT_USAGE, Seen, changes, print_line, print_summary
from workflow.cli.output import exit_code as status_exit_code
from workflow.errors import InputError
from workflow.model.records import RunRecord, StepRecord
from workflow.model.states import RunStatus

from . import processes
from .stack import firestore_client

RUNS = "runs"


@dataclass(frozen=True)
class Target:
    """Where the local cloud's Firestore is, and where that was learnt."""

    host_port: str
    project: str
    origin: str


@dataclass(frozen=True)
class RunRow:
    """One line of the run list."""

    run_id: str
    status: str
    created_at: float | None
    step_count: int
    open_steps: int | None
    dag_name: str
    source: str


def read_state(path: Path) -> dict[str, Any] | None:
    """The state file written by `up`, or None when there is none; InputError if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot read the state file {path}: {exc.strerror or exc}") from exc
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise InputError(f"the state file {path} is not JSON: {exc}") from exc
    if not isinstance(state, dict) or not isinstance(state.get("env"), dict):
        raise InputError(f"the state file {path} has no 'env' object: not written by 'up'")
    return state


def locate(state_file: Path, environ: Mapping[str, str]) -> Target:
    """The Firestore emulator of the state file, else of the environment; InputError if neither."""
    state = read_state(state_file)
    if state is not None:
        env = {str(k): str(v) for k, v in state["env"].items()}
        origin = f"state file {state_file}"
    else:
        env = dict(environ)
        origin = "environment"
    host = env.get("FIRESTORE_EMULATOR_HOST", "")
    project = env.get("GOOGLE_CLOUD_PROJECT", "")
    if not host or not project:
        raise InputError(
            f"no local cloud found: no state file {state_file}, and FIRESTORE_EMULATOR_HOST and "
            "GOOGLE_CLOUD_PROJECT are not both set; start one with 'python -m workflow.localcloud up'"
        )
    return Target(host, project, origin)


def connect(target: Target, timeout: float = 3.0) -> Any:
    """A Firestore client for `target`; InputError when the emulator does not answer."""
    if not processes.http_responds(f"http://{target.host_port}/", any_status=True, timeout=timeout):
        raise InputError(
            f"the Firestore emulator at {target.host_port} (from the {target.origin}) does not answer: "
            "is 'python -m workflow.localcloud up' still running?"
        )
    return firestore_client(target.host_port, target.project)


def load_run(client: Any, run_id: str) -> tuple[RunRecord, list[StepRecord]] | None:
    """The run and its steps (in DAG order), or None when there is no such run."""
    store = FirestoreStateStore(client)
    run = store.get_run(run_id)
    if run is None:
        return None
    return run, store.list_steps(run_id)


def list_runs(client: Any) -> list[RunRow]:
    """Every run, newest first."""
    rows = [_row(snap.id, snap.to_dict() or {}) for snap in client.collection(RUNS).stream()]
    return sorted(rows, key=lambda r: r.created_at or 0.0, reverse=True)


def _row(run_id: str, doc: Mapping[str, Any]) -> RunRow:
    open_steps = doc.get("open_steps")
    return RunRow(
        run_id=run_id,
        status=str(doc.get("status", "?")),
        created_at=_number(doc.get("created_at")),
        step_count=int(doc.get("step_count") or 0),
        open_steps=int(open_steps) if isinstance(open_steps, int | float) else None,
        dag_name=str(doc.get("dag_name") or ""),
        source=str(doc.get("source") or ""),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def stamp(at: float | None) -> str:
    """`YYYY-MM-DD HH:MM:SS` UTC, or `-`."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def print_runs(rows: Sequence[RunRow], out: TextIO) -> None:
    """The run list: id, status, created, steps (done/total), DAG name and source."""
    if not rows:
        print("no runs yet", file=out, flush=True)
        return
    table = [("RUN ID", "STATUS", "CREATED (UTC)", "STEPS", "DAG", "SOURCE")]
    for r in rows:
        done = f"{r.step_count - r.open_steps}/{r.step_count}" if r.open_steps is not None else str(r.step_count)
        table.append((r.run_id, r.status, stamp(r.created_at), done, r.dag_name or "-", r.source))
    widths = [max(len(row[i]) for row in table) for i in range(5)]
    for row in table:
        cells = [c.ljust(w) for c, w in zip(row[:5], widths, strict=True)]
        print("  ".join([*cells, row[5]]).rstrip(), file=out)
    out.flush()


def print_header(run: RunRecord, out: TextIO) -> None:
    """The run's id, status, DAG, source, Task Runner and times."""
    took = f" ({run.finished_at - run.created_at:.1f} s)" if run.finished_at and run.created_at else ""
    print(f"run {run.run_id}: {run.status.value}", file=out)
    print(f"  dag {run.dag_name or '-'}, {run.step_count} steps, source {run.source or '-'}", file=out)
    print(f"  Task Runner {run.tr_url or '-'}", file=out)
    print(f"  created {stamp(run.created_at)} UTC, finished {stamp(run.finished_at)}{took}", file=out, flush=True)


def print_run(run: RunRecord, steps: Sequence[StepRecord], out: TextIO) -> None:
    """Header, then the problems of an INVALID run or the steps table."""
    print_header(run, out)
    print_details(run, steps, out)


def print_details(run: RunRecord, steps: Sequence[StepRecord], out: TextIO) -> None:
    """The problems of an INVALID run, else the steps table; then the run's status."""
    if run.status is RunStatus.INVALID:
        print("problems:", file=out)
        for problem in run.problems:
            print(f"  - {problem}", file=out)
        print(f"\nrun {run.status.value}", file=out, flush=True)
        return
    print_summary(steps, run.status, out)


def exit_code(run: RunRecord) -> int:
    """0 for a run that succeeded or still runs, 1 for any other end (as the CLI's commands)."""
    return status_exit_code(run.status)


def show_run(client: Any, run_id: str, out: TextIO, err: TextIO) -> int:
    """Print one run; the exit code (2 when there is no such run)."""
    found = load_run(client, run_id)
    if found is None:
        print(f"error: no run {run_id!r} (list the runs with 'python -m workflow.localcloud status')", file=err)
        return EXIT_USAGE
    run, steps = found
    print_run(run, steps, out)
    return exit_code(run)


def watch_run(
    client: Any,
    run_id: str,
    out: TextIO,
    err: TextIO,
    *,
    interval: float = 1.0,
    appear_within: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Print a line per step change until the run ends, then the summary; the exit code.

    A run not there yet (its upload is being handled) is waited for `appear_within` s.
    """
    store = FirestoreStateStore(client)
    give_up = clock() + appear_within
    run = store.get_run(run_id)
    while run is None:
        if clock() >= give_up:
            print(f"error: no run {run_id!r} after {appear_within:g} s", file=err)
            return EXIT_USAGE
        sleep(interval)
        run = store.get_run(run_id)
    print_header(run, out)
    seen: Seen = {}
    while True:
        steps = store.list_steps(run_id)
        for line in sorted(change for step in steps for change in changes(step, seen)):
            print_line(out, *line)
        if run.status.terminal:
            final = store.get_run(run_id) or run
            print_details(final, store.list_steps(run_id), out)
            return exit_code(final)
        sleep(interval)
        run = store.get_run(run_id) or run


def watch_runs(
    client: Any, out: TextIO, *, interval: float = 1.0, sleep: Callable[[float], None] = time.sleep
) -> int:
    """Print the run list again whenever it changes, until interrupted."""
    last: list[RunRow] | None = None
    while True:
        rows = list_runs(client)
        if rows != last:
            if last is not None:
                print(file=out)
            print(f"-- {stamp(time.time())} UTC", file=out)
            print_runs(rows, out)
            last = rows
        sleep(interval)
