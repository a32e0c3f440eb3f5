"""What the commands print: state-change lines, the summary table, run lists, a run's view."""

from __future__ import annotations

import graphlib
import json
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TextIO

from ..model.inputs import RunInputs
from ..model.params import shown
from ..model.records import RunRecord, StepRecord
from ..model.states import RunStatus, why_final

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def exit_code(status: RunStatus) -> int:
    """0 for a run that succeeded or still runs, 1 for any other end."""
    return EXIT_OK if status in (RunStatus.SUCCEEDED, RunStatus.RUNNING) else EXIT_FAILED


Line = tuple[float, str, str, str, str]  # when, step, state, job id, detail
Seen = dict[str, tuple[str, str, int]]  # step: the state, job state and attempt last shown


def changes(step: StepRecord, seen: Seen) -> list[Line]:
    """The lines to print for what changed in `step` since `seen` (which is updated):
    an attempt that was retried or rerun since, then the step's present state."""
    now = (step.state.value, step.job_state, step.attempt)
    before = seen.get(step.step_id, ("PENDING", "", 1))
    if now == before:
        return []
    seen[step.step_id] = now
    lines = [(a.finished_at or time.time(), step.step_id, a.state.value, a.job_id,
              f"attempt {a.attempt}: {a.message}" + ("; retrying" if a.retried else ""))
             for a in step.history if a.attempt >= before[2]]
    if lines:
        before = ("PENDING", "", step.attempt)
        if step.state.value == "PENDING":
            return lines
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


SUMMARY_LEGEND = ("ELAPSED: from the job's submission until its end was seen; A-Bs: it ended after A s "
                  "(a check saw it running then; checks come 1 s after submission, then twice as long each "
                  "time, up to the polling interval); MESSAGE: the Task Runner's message or why the step ended")


def print_summary(steps: Sequence[StepRecord], status: RunStatus, out: TextIO, poll: float = 0.0,
                  inputs: RunInputs | None = None) -> None:
    """The steps as a table, then its forEach groups; `poll`: the polling interval, to say how
    precise each ELAPSED is."""
    rows = [("STEP", "STATE", "ATTEMPT", "JOB ID", "ELAPSED", "MESSAGE")]
    rows += [(s.step_id, s.state.value, str(s.attempt), s.job_id or "-", polled(s.submitted_at, s.finished_at, poll),
              s.message) for s in steps]
    print(file=out)
    table(rows, out)
    print(f"({SUMMARY_LEGEND})", file=out)
    for line in group_lines(inputs or RunInputs(), steps):
        print(line, file=out)
    print_earlier_attempts(steps, out)
    print(f"\nrun {status.value}", file=out, flush=True)


def group_lines(inputs: RunInputs, steps: Sequence[StepRecord]) -> list[str]:
    """A line per forEach step: its members and their states."""
    states = {s.step_id: s.state.value for s in steps}
    lines = []
    for group, members in inputs.groups.items():
        counts = Counter(states.get(m, "?") for m in members)
        shown = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        span = members[0] if len(members) == 1 else f"{members[0]} .. {members[-1]}"
        lines.append(f"{group}: forEach of {len(members)} ({span}): {shown}")
    return lines


def input_lines(inputs: RunInputs) -> list[str]:
    """The run's parameter values and schedule tick, if it has them."""
    lines = []
    if inputs.params:
        values = "  ".join(f"{name}={shown(value)}" for name, value in inputs.params.items())
        lines.append(f"params: {values}")
    if inputs.scheduled_at is not None:
        lines.append(f"scheduled {when(inputs.scheduled_at)}" + (f" by schedule {inputs.schedule}"
                                                                  if inputs.schedule else ""))
    if inputs.started_by:
        lines.append(f"started by {inputs.started_by}")
    return lines



def print_earlier_attempts(steps: Sequence[StepRecord], out: TextIO) -> None:
    """Every attempt of a step before its present one (retried, or run again by a rerun)."""
    rows = [(s.step_id, str(a.attempt), a.state.value, a.job_id or "-", took(a.submitted_at, a.finished_at),
             ("retried: " if a.retried else "rerun: ") + a.message) for s in steps for a in s.history]
    if rows:
        print("\nearlier attempts:", file=out)
        table([("STEP", "ATTEMPT", "STATE", "JOB ID", "ELAPSED", "MESSAGE"), *rows], out)


def when(at: float | None) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at else "-"


def took(start: float | None, end: float | None) -> str:
    return f"{end - start:.1f}s" if start is not None and end is not None else "-"


def polled(start: float | None, end: float | None, poll: float) -> str:
    """How long a job took, as its polling bounds it: "A-Bs" when the check at about A s still
    saw it running and the one at B s saw its end (checks at 1, 3, 7 ... s, then every `poll`)."""
    at, wait = 0.0, min(poll, 1.0)
    if start is None or end is None or wait <= 0 or end - start < wait / 2:
        return took(start, end)
    spent = end - start
    while wait < poll and at + wait * 1.5 < spent:  # the waits doubling
        at, wait = at + wait, min(poll, wait * 2)
    if at + wait * 1.5 < spent:  # then one every `poll`
        at += math.floor((spent - at - wait / 2) / wait) * wait
    digits = 2 if wait < 0.5 else 1
    return f"{at:.{digits}f}-{spent:.{digits}f}s"


def table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Columns padded to their widest cell; the last column is left ragged."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)]
        print("  ".join([*cells, r[-1]]).rstrip(), file=out)


def print_runs(runs: Sequence[RunRecord], out: TextIO) -> None:
    rows = [("RUN ID", "STATUS", "DAG", "STARTED (UTC)", "DURATION", "OK/FAILED/SKIPPED")]
    now = time.time()
    for r in runs:
        end = r.finished_at if r.status.terminal else now
        rows.append((r.run_id, r.status.value, r.source or r.dag_name or "-", when(r.created_at),
                     took(r.created_at, end), f"{r.succeeded}/{r.failed}/{r.skipped} of {r.step_count}"))
    table(rows, out)


def print_run(run: RunRecord, steps: Sequence[StepRecord], out: TextIO) -> None:
    """The run, every step, and the DAG drawn as text with each step's state."""
    print(f"run {run.run_id}  {run.status.value}  DAG {run.source or run.dag_name or '-'}", file=out)
    print(f"started {when(run.created_at)}  ended {when(run.finished_at)}  Task Runner {run.tr_url}", file=out)
    for line in input_lines(run.inputs):
        print(line, file=out)
    label = "skipped" if run.status is RunStatus.SKIPPED else "problem"  # a skipped tick says why
    for problem in run.problems:
        print(f"  {label}: {problem}", file=out)
    if not steps:
        return
    print(file=out)
    rows = [("STEP", "STATE", "ATTEMPT", "JOB ID", "SUBMITTED (UTC)", "ENDED (UTC)", "MESSAGE")]
    rows += [(s.step_id, s.state.value, str(s.attempt), s.job_id or "-", when(s.submitted_at), when(s.finished_at),
              s.message) for s in steps]
    table(rows, out)
    for line in group_lines(run.inputs, steps):
        print(line, file=out)
    print_earlier_attempts(steps, out)
    print(file=out)
    for line in draw(steps, run.inputs.group_of()):
        print(line, file=out)


def draw(steps: Sequence[StepRecord], group_of: Mapping[str, str] | None = None) -> list[str]:
    """Each step indented by its depth (the longest path from a root), with its state; the
    members of a forEach group drawn as one line with their states counted."""
    group_of = group_of or {}
    deps = {s.step_id: s.depends_on for s in steps}
    depth: dict[str, int] = {}
    for step_id in graphlib.TopologicalSorter(deps).static_order():
        depth[step_id] = max((depth[p] + 1 for p in deps[step_id]), default=0)
    lines, members = [], Counter[tuple[str, str]]()
    for s in steps:
        if s.step_id in group_of:
            members[(group_of[s.step_id], s.state.value)] += 1
    drawn: set[str] = set()
    for s in sorted(steps, key=lambda s: depth[s.step_id]):
        name, state = group_of.get(s.step_id, s.step_id), f"[{s.state.value}]"
        if name in drawn:
            continue
        drawn.add(name)
        if name != s.step_id:
            state = "[" + ", ".join(f"{n} {st}" for (g, st), n in sorted(members.items()) if g == name) + "]"
            name = f"{name} (forEach)"
        after = dict.fromkeys(group_of.get(d, d) for d in s.depends_on)
        lines.append(f"{'    ' * depth[s.step_id]}{state} {name}{'  <- ' + ', '.join(after) if after else ''}")
    return lines


def as_json(value: Any) -> str:
    """A run or step record as JSON, without the sealed token."""
    def clean(obj: Any) -> Any:
        data = asdict(obj)
        data.pop("tr_auth", None)
        return data
    if isinstance(value, list):
        return json.dumps([clean(v) for v in value], default=str, indent=2)
    return json.dumps(clean(value), default=str, indent=2)


def nothing_to(verb: str, run: RunRecord, out: TextIO) -> int:
    """Say why there is nothing to do for `run`; its exit code."""
    if run.status in (RunStatus.INVALID, RunStatus.SKIPPED) and verb in ("rerun", "resume"):
        print(f"run {run.run_id}: {why_final(run.status)}", file=out)
        return EXIT_USAGE
    state = f"already ended {run.status.value}" if run.status.terminal else "is still RUNNING (cancel it first)"
    print(f"run {run.run_id} {state}: nothing to {verb}", file=out)
    return exit_code(run.status)


def print_kept_jobs(running: Sequence[StepRecord], out: TextIO) -> None:
    for step in running:
        print(f"  job {step.job_id} of step {step.step_id} keeps running at the Task Runner "
              "(the protocol has no cancel request)", file=out)
