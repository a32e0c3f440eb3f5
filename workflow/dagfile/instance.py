"""A run's own DAG: the file's DAG with the run's parameter values checked and substituted,
and its forEach steps expanded into one step per item, ready for StartRun (`instantiate`)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ..errors import DagInvalid, Problem
from ..model.dag import Dag, Step, Task
from ..model.inputs import ParamValue, RunInputs
from ..model.params import MAX_VALUES_BYTES, ParamSpec, checked_value, looks_like_credential, values_size
from ..model.placeholders import ITEM, has_placeholder, substitute
from ..model.records import RunRecord
from ..model.text import excerpt
from .limits import MAX_ID_LENGTH, MAX_STEPS

LABEL_VALUE_LIMIT = 63  # Google Cloud's label values: lowercase letters, digits, '_' and '-', at most 63


@dataclass(frozen=True)
class RunContext:
    """What a run's placeholders may name besides its parameters (`run.id`, `run.date`,
    `run.scheduledTime`), and what is recorded with it."""

    run_id: str
    started_at: float  # epoch seconds: `run.date` when there is no schedule tick
    scheduled_at: float | None = None  # a schedule's tick
    schedule: str = ""
    started_by: str = ""

    def values(self) -> dict[str, str]:
        at = datetime.fromtimestamp(self.started_at if self.scheduled_at is None else self.scheduled_at, UTC)
        return {"run.id": self.run_id, "run.date": at.strftime("%Y-%m-%d"),
                "run.scheduledTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def instantiate(dag: Dag, given: Mapping[str, Any], run: RunContext, origin: str) -> tuple[Dag, RunInputs]:
    """The run's DAG and what to record with it; `DagInvalid` (from `origin`) naming every
    parameter and expansion problem. A DAG without parameters, placeholders or forEach
    comes back equal to it."""
    problems: list[Problem] = []
    values = _values(dag.params, given, problems)
    if problems:
        raise DagInvalid(origin, problems, "invalid run parameters")
    texts = {**run.values(), **{f"params.{n}": v if isinstance(v, str) else json.dumps(list(v), separators=(",", ":"))
                                for n, v in values.items()}}
    groups = {s.id: _items(s, values) for s in dag.steps if s.for_each is not None}
    members = {group: tuple(f"{group}.{i}" for i in range(len(items))) for group, items in groups.items()}
    steps: list[Step] = []
    for step in dag.steps:
        depends_on = tuple(m for d in step.depends_on for m in members.get(d, (d,)))
        if step.id not in groups:
            steps.append(_applied(step, step.id, depends_on, texts, problems))
            continue
        if not groups[step.id]:
            problems.append(Problem(f"step {step.id!r}", "forEach has an empty list: there is nothing to run"))
        for member, item in zip(members[step.id], groups[step.id], strict=True):
            steps.append(_applied(step, member, depends_on, {**texts, ITEM: item}, problems))
    _check_ids(steps, len(dag.steps), problems)
    if problems:
        raise DagInvalid(origin, problems[:500], "invalid run parameters")
    inputs = RunInputs(values, run.scheduled_at, run.schedule, run.started_by, members)
    return Dag(tuple(steps), dag.name, dag.max_parallel, dag.timeout), inputs


def as_the_runs(dag: Dag, run: RunRecord, origin: str) -> Dag:
    """Another DAG file for a recorded run (a rerun's new definitions) with the run's own
    parameter values, date and forEach lists; DagInvalid if they do not fit it."""
    given = {name: list(v) if isinstance(v, tuple) else v for name, v in run.inputs.params.items()}
    context = RunContext(run.run_id, run.created_at, run.inputs.scheduled_at, run.inputs.schedule)
    return instantiate(dag, {k: v for k, v in given.items() if k in dag.params}, context, origin)[0]


def _values(params: Mapping[str, ParamSpec], given: Mapping[str, Any],
            problems: list[Problem]) -> dict[str, ParamValue]:
    """Every declared parameter's value: given, else its default, else (unless required) empty."""
    declared = ", ".join(sorted(params)[:20]) or "none"
    lowered = {name.lower().replace("-", "_"): name for name in params}
    for name in given:
        if name not in params:
            why = "looks like a credential's name, and" if looks_like_credential(str(name)) else ""
            close = lowered.get(str(name).lower().replace("-", "_")) or next(
                iter(difflib.get_close_matches(str(name), list(params), n=1)), None)
            hint = f"did you mean {close!r}?" if close else f"declared: {declared}"
            problems.append(Problem(f"params.{excerpt(str(name), 60)}",
                                    f"{why} is not a parameter of this DAG ({hint})".strip()))
    values: dict[str, ParamValue] = {}
    for name, spec in params.items():
        if name in given:
            value, why = checked_value(spec, given[name])
        elif spec.default is not None:
            value, why = spec.default, ""
        else:
            value, why = (None, "is required: no value given") if spec.required else ((), "") if \
                spec.type == "list" else ("", "")
        if value is None:
            problems.append(Problem(f"params.{name}", why))
        else:
            values[name] = value
    if not problems and values_size(values) > MAX_VALUES_BYTES:
        problems.append(Problem("params", f"the values are {values_size(values):,} bytes together "
                                          f"(at most {MAX_VALUES_BYTES:,})"))
    return values


def _items(step: Step, values: Mapping[str, ParamValue]) -> tuple[str, ...]:
    if isinstance(step.for_each, tuple):
        return step.for_each
    name = str(step.for_each).strip()[2:-2].strip().removeprefix("params.")
    found = values[name]
    return found if isinstance(found, tuple) else (found,)


def _applied(step: Step, step_id: str, depends_on: tuple[str, ...], texts: Mapping[str, str],
             problems: list[Problem]) -> Step:
    task = step.task
    args = task.args
    if isinstance(args, tuple):
        args = tuple(substitute(a, texts) for a in args)
    elif args is not None:
        args = {k: substitute(v, texts) for k, v in args.items()}
    labels = None if task.labels is None else {k: substitute(v, texts) for k, v in task.labels.items()}
    for key, value in (task.labels or {}).items():
        if has_placeholder(value) and (why := _label_problem(labels[key] if labels else "")):
            problems.append(Problem(f"step {step_id!r}: task.labels.{key}", why))
    name = step_id if task.name == step.id and step.for_each is not None else task.name
    task = Task(name, task.image_uri, args, task.scale_tier, task.master_type, labels, task.engine, task.url)
    return replace(step, id=step_id, task=task, depends_on=depends_on, for_each=None,
                   description=substitute(step.description, texts))


def _label_problem(value: str) -> str:
    bad = sorted({c for c in value if not (c.isdigit() or c in "_-" or (c.isalpha() and c == c.lower()))})
    if len(value) > LABEL_VALUE_LIMIT or bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        return (f"{excerpt(value, 80)!r} is not a Google Cloud label value (at most {LABEL_VALUE_LIMIT} lowercase "
                f"letters, digits, '_' and '-'{'; it holds ' + shown if bad else ''})")
    return ""


def _check_ids(steps: list[Step], written: int, problems: list[Problem]) -> None:
    if len(steps) > MAX_STEPS:
        problems.append(Problem("steps", f"forEach makes {len(steps):,} steps from {written:,}; the limit is "
                                         f"{MAX_STEPS:,} steps per run"))
        return
    seen: set[str] = set()
    for step in steps:
        if step.id in seen:
            problems.append(Problem(f"step {step.id!r}", "a forEach step's member has the id of another step: "
                                                         "rename one of them"))
        elif len(step.id) > MAX_ID_LENGTH:
            problems.append(Problem(f"step {excerpt(step.id, 60)!r}", f"the id is over {MAX_ID_LENGTH} characters"))
        seen.add(step.id)
