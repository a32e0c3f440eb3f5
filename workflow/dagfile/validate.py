"""Plain data to a validated `Dag`: hand-written checks, so that every message names its
step and key; all problems of a file are collected and reported at once."""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any
from urllib.parse import urlsplit

from ..errors import DagInvalid, Problem
from ..model.dag import Args, Dag, Step, Task
from .limits import ID_CHARACTERS, MAX_ID_LENGTH, MAX_REPORTED_CYCLES, MAX_REPORTED_PROBLEMS, MAX_STEPS
from .load import _short, load_yaml

TOP_KEYS = ("name", "steps")
STEP_KEYS = ("id", "description", "dependsOn", "task")
TASK_KEYS = ("name", "imageUri", "engine", "url", "args", "scaleTier", "masterType", "labels")

_ID_RE = re.compile(f"[{ID_CHARACTERS}]+")
_STEP_WHERE = re.compile(r"steps\[(\d+)\]")


def parse_dag(data: bytes, origin: str) -> Dag:
    """Validate a DAG file's bytes and return the `Dag`; `DagInvalid(origin, problems)`
    lists every problem found."""
    document, duplicate_keys = load_yaml(data, origin)
    problems = _Problems(duplicate_keys)
    dag = _build_dag(document, problems)
    if problems.items or dag is None:
        raise DagInvalid(origin, problems.reported())
    return dag


_MAX_SUGGESTED_IDS = 100
"""Unknown dependencies for which a close step id is searched (each search scans every id)."""


class _Problems:
    """Problems collected while validating; all of them are reported together."""

    def __init__(self, items: Iterable[Problem] = ()) -> None:
        self.items: list[Problem] = list(items)
        self.id_suggestions = 0

    def add(self, where: str, message: str) -> None:
        self.items.append(Problem(where, message))

    def reported(self) -> list[Problem]:
        """The problems grouped by step in file order (file-level ones first), at most
        `MAX_REPORTED_PROBLEMS` of them, then one saying how many were left out."""
        items = sorted(self.items, key=_step_index)
        if len(items) <= MAX_REPORTED_PROBLEMS:
            return items
        rest = len(items) - MAX_REPORTED_PROBLEMS
        return [*items[:MAX_REPORTED_PROBLEMS], Problem("", f"... and {rest:,} more problem(s) not listed")]


def _step_index(problem: Problem) -> int:
    """The index of the step a problem is about; -1 for the file and the top level."""
    match = _STEP_WHERE.match(problem.where)
    return int(match.group(1)) if match else -1


@dataclass
class _StepDraft:
    """One entry of `steps` as far as it could be read."""

    index: int
    label: str
    valid_id: str | None
    any_id: str | None
    """The id if it is a non-empty string, valid or not: other steps may refer to it."""
    depends_on: list[tuple[int, str]]
    """(position in `dependsOn`, step id) for each string entry."""
    step: Step | None
    duplicate: bool = False


def _build_dag(document: object, out: _Problems) -> Dag | None:
    """The `Dag`, or None with every problem recorded in `out`."""
    if not isinstance(document, dict):
        out.add("", f"the top level must be a mapping with 'steps', got {_describe(document)}")
        return None
    _check_keys(document, TOP_KEYS, "", "top-level key", out)
    name = _optional_str(document, "name", "name", out)
    drafts = [_draft_step(i, raw, out) for i, raw in enumerate(_steps_list(document, out))]
    _check_unique_ids(drafts, out)
    _check_dependencies(drafts, out)
    _check_cycles(drafts, out)
    if out.items:
        return None
    return Dag(steps=tuple(d.step for d in drafts if d.step is not None), name=name or "")


def _steps_list(document: Mapping[Any, Any], out: _Problems) -> list[Any]:
    """The `steps` list (empty when it is unusable, with the problem recorded)."""
    if "steps" not in document:
        out.add("steps", "missing required key 'steps' (the list of steps)")
        return []
    steps = document["steps"]
    if not isinstance(steps, list):
        out.add("steps", f"must be a list of steps, got {_describe(steps)}")
        return []
    if not steps:
        out.add("steps", "must list at least one step")
    elif len(steps) > MAX_STEPS:
        out.add("steps", f"{len(steps):,} steps; the limit is {MAX_STEPS:,} steps per DAG")
    return steps


def _draft_step(index: int, raw: object, out: _Problems) -> _StepDraft:
    """Check one step on its own; `step` is set only if it had no problem."""
    if not isinstance(raw, dict):
        out.add(f"steps[{index}]", f"must be a mapping with 'id' and 'task', got {_describe(raw)}")
        return _StepDraft(index, f"steps[{index}]", None, None, [], None)
    before = len(out.items)
    valid_id, any_id = _step_id(index, raw, out)
    label = _label(index, any_id)
    _check_keys(raw, STEP_KEYS, label, "key", out)
    description = _optional_str(raw, "description", f"{label}.description", out)
    depends_on = _depends_on(raw, label, out)
    task = _task(raw, label, valid_id or "", out)
    step = None
    if len(out.items) == before and valid_id is not None and task is not None:
        deps = tuple(dep for _, dep in depends_on)
        step = Step(id=valid_id, task=task, depends_on=deps, description=description or "")
    return _StepDraft(index, label, valid_id, any_id, depends_on, step)


def _label(index: int, any_id: str | None) -> str:
    """How problems name a step: `steps[3] (id 'train')`."""
    if any_id is None:
        return f"steps[{index}]"
    return f"steps[{index}] (id {_short(any_id, 40)!r})"


def _step_id(index: int, raw: Mapping[Any, Any], out: _Problems) -> tuple[str | None, str | None]:
    """(the id if valid, the id if it is any non-empty string)."""
    if "id" not in raw:
        out.add(f"steps[{index}]", "missing required key 'id'")
        return None, None
    value = raw["id"]
    where = f"steps[{index}].id"
    if not isinstance(value, str):
        out.add(where, f"must be a string, got {_describe(value)}{_quote_hint(value)}")
        return None, None
    if not value:
        out.add(where, "must not be empty")
        return None, None
    problem = _id_problem(value)
    if problem is not None:
        out.add(where, problem)
        return None, value
    return value, value


def _id_problem(value: str) -> str | None:
    """Why `value` cannot be a step id, or None if it can."""
    reason = "step ids become document ids and job names"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value):,} characters long; the limit is {MAX_ID_LENGTH} ({reason})"
    if not _ID_RE.fullmatch(value):
        bad = sorted({ch for ch in value if not _ID_RE.fullmatch(ch)})
        shown = ", ".join(repr(ch) for ch in bad[:5])
        return f"{_short(value, 40)!r} contains {shown}: only letters, digits, '.', '_' and '-' are allowed ({reason})"
    if value in (".", "..") or (len(value) >= 4 and value.startswith("__") and value.endswith("__")):
        return f"{value!r} is reserved ({reason}); choose another id"
    return None


def _depends_on(raw: Mapping[Any, Any], label: str, out: _Problems) -> list[tuple[int, str]]:
    """The string entries of `dependsOn` with their positions; other entries are problems."""
    value = raw.get("dependsOn")
    where = f"{label}.dependsOn"
    if value is None:
        return []
    if not isinstance(value, list):
        hint = f"; write [{value}]" if isinstance(value, str) else ""
        out.add(where, f"must be a list of step ids, got {_describe(value)}{hint}")
        return []
    found: list[tuple[int, str]] = []
    seen: set[str] = set()
    for position, dep in enumerate(value):
        if not isinstance(dep, str):
            out.add(f"{where}[{position}]", f"must be a step id (a string), got {_describe(dep)}{_quote_hint(dep)}")
        elif dep in seen:
            out.add(f"{where}[{position}]", f"{_short(dep)!r} is listed more than once")
        else:
            seen.add(dep)
            found.append((position, dep))
    return found


def _task(raw: Mapping[Any, Any], label: str, step_id: str, out: _Problems) -> Task | None:
    """The step's `Task` (name defaulting to the step id), or None with the problems recorded."""
    if "task" not in raw:
        out.add(label, "missing required key 'task' (the job to run, with at least 'imageUri')")
        return None
    value, where = raw["task"], f"{label}.task"
    if not isinstance(value, dict):
        out.add(where, f"must be a mapping with at least 'imageUri', got {_describe(value)}")
        return None
    before = len(out.items)
    _check_keys(value, TASK_KEYS, where, "key", out)
    text = {key: _optional_str(value, key, f"{where}.{key}", out) for key in TASK_KEYS if key not in _NOT_TEXT}
    for key, what in (("name", "leave it out to use the step id"), ("imageUri", _IMAGE), ("engine", "or leave it out")):
        if text[key] is not None and not str(text[key]).strip():
            out.add(f"{where}.{key}", f"must not be empty ({what})")
    _check_url(text["url"], f"{where}.url", out)
    if text["engine"] is None and "imageUri" not in value:
        out.add(where, f"missing required key 'imageUri' ({_IMAGE})")
    elif text["engine"] is None and value["imageUri"] is None:
        out.add(f"{where}.imageUri", f"must be a string ({_IMAGE}), got null")
    args = _args(value.get("args"), f"{where}.args", out)
    labels = _string_map(value.get("labels"), f"{where}.labels", out)
    if len(out.items) != before:
        return None
    return Task.from_dict({**text, "args": args, "labels": labels, "name": text["name"] or step_id})


_IMAGE = "the container image to run"
_NOT_TEXT = ("args", "labels")


def _check_url(url: str | None, where: str, out: _Problems) -> None:
    """Record a `url` that is not an absolute http(s) URL."""
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            out.add(where, f"must be an absolute http:// or https:// URL, got {_short(url)!r}")


def _args(value: object, where: str, out: _Problems) -> Args | None:
    """`args` as written: a tuple of strings or a string-to-string mapping, order kept."""
    if value is None:
        return None
    if isinstance(value, list):
        before = len(out.items)
        for position, item in enumerate(value):
            if not isinstance(item, str):
                out.add(f"{where}[{position}]", f"must be a string, got {_describe(item)}{_quote_hint(item)}")
        return tuple(value) if len(out.items) == before else None
    if isinstance(value, dict):
        return _string_map(value, where, out)
    out.add(where, f"must be a list of strings or a mapping of string to string, got {_describe(value)}")
    return None


def _string_map(value: object, where: str, out: _Problems) -> dict[str, str] | None:
    """A string-to-string mapping, order kept; None when absent or invalid."""
    if value is None:
        return None
    if not isinstance(value, dict):
        out.add(where, f"must be a mapping of string to string, got {_describe(value)}")
        return None
    before = len(out.items)
    for key, item in value.items():
        if not isinstance(key, str):
            out.add(where, f"key {_describe(key)} must be a string{_quote_hint(key)}")
        elif not isinstance(item, str):
            out.add(_key_path(where, key), f"must be a string, got {_describe(item)}{_quote_hint(item)}")
    return dict(value) if len(out.items) == before else None


def _optional_str(mapping: Mapping[Any, Any], key: str, where: str, out: _Problems) -> str | None:
    """`mapping[key]` if it is a string; None if absent or null; a problem otherwise."""
    value = mapping.get(key)
    if value is None or isinstance(value, str):
        return value
    out.add(where, f"must be a string, got {_describe(value)}{_quote_hint(value)}")
    return None


def _check_keys(mapping: Mapping[Any, Any], known: Sequence[str], where: str, what: str, out: _Problems) -> None:
    """Record each key of `mapping` not in `known`, suggesting the closest known key."""
    for key in mapping:
        if key not in known:
            shown = repr(_short(key)) if isinstance(key, str) else _describe(key)
            out.add(where, f"unknown {what} {shown}{_suggest_key(key, known)}")


def _suggest_key(key: object, known: Sequence[str]) -> str:
    """'; did you mean ...?' ignoring case, '_' and '-', else by similarity; or the known keys."""
    if isinstance(key, str):
        by_form = {_key_form(k): k for k in known}
        match = by_form.get(_key_form(key))
        if match is None:
            close = difflib.get_close_matches(_key_form(key), list(by_form), n=1, cutoff=0.6)
            match = by_form[close[0]] if close else None
        if match is not None:
            return f"; did you mean {match!r}?"
    return f"; expected one of: {', '.join(known)}"


def _key_form(key: str) -> str:
    """A key compared ignoring case, '_' and '-': `depends_on` and `dependsOn` match."""
    return key.replace("_", "").replace("-", "").lower()


def _key_path(where: str, key: str) -> str:
    """`where.key`, or `where['odd key']` for a key that is not a plain word."""
    return f"{where}.{key}" if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f"{where}[{_short(key)!r}]"


def _check_unique_ids(drafts: Iterable[_StepDraft], out: _Problems) -> None:
    """Record every step whose id an earlier step already uses, naming both positions."""
    first: dict[str, _StepDraft] = {}
    for draft in drafts:
        if draft.any_id is None:
            continue
        earlier = first.setdefault(draft.any_id, draft)
        if earlier is not draft:
            draft.duplicate = True
            out.add(draft.label, f"duplicate id {_short(draft.any_id)!r}: steps[{earlier.index}] has the same id")


def _check_dependencies(drafts: Sequence[_StepDraft], out: _Problems) -> None:
    """Record dependencies on the step itself or on ids no step has."""
    ids = [d.any_id for d in drafts if d.any_id is not None]
    known = set(ids)
    for draft in drafts:
        for position, dep in draft.depends_on:
            where = f"{draft.label}.dependsOn[{position}]"
            if dep == draft.any_id:
                out.add(where, "a step cannot depend on itself")
            elif dep not in known:
                out.add(where, f"unknown step {_short(dep)!r}{_suggest_id(dep, ids, out)}")


def _suggest_id(dep: str, ids: list[str], out: _Problems) -> str:
    """'; did you mean ...?' for a close step id (searched for the first unknown ids only)."""
    out.id_suggestions += 1
    if out.id_suggestions > _MAX_SUGGESTED_IDS:
        return ""
    close = difflib.get_close_matches(dep, ids, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else " (no step has this id)"


def _check_cycles(drafts: Sequence[_StepDraft], out: _Problems) -> None:
    """Record dependency cycles among steps with a valid, unique id (edges to other such steps)."""
    usable = {d.valid_id: d for d in drafts if d.valid_id is not None and not d.duplicate}
    graph = {
        step_id: [dep for _, dep in d.depends_on if dep in usable and dep != step_id] for step_id, d in usable.items()
    }
    cycles = _find_cycles(graph)
    for cycle in cycles[:MAX_REPORTED_CYCLES]:
        start = min(range(len(cycle)), key=lambda k: usable[cycle[k]].index)
        ordered = cycle[start:] + cycle[:start]
        text = " -> ".join([*ordered, ordered[0]])
        out.add(usable[ordered[0]].label, f"dependency cycle: {text} (each step depends on the next)")
    if len(cycles) > MAX_REPORTED_CYCLES:
        out.add("steps", f"more than {MAX_REPORTED_CYCLES} dependency cycles; the others are not listed")


def _find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Disjoint cycles (each as [a, b, c]: a depends on b, b on c, c on a), at most one over the limit."""
    cycles: list[list[str]] = []
    while len(cycles) <= MAX_REPORTED_CYCLES:
        try:
            TopologicalSorter(graph).prepare()
            break
        except CycleError as exc:
            # graphlib lists each node before the nodes that depend on it: reverse it.
            cycle = list(reversed(exc.args[1]))[:-1]
        cycles.append(cycle)
        gone = set(cycle)
        graph = {n: [d for d in deps if d not in gone] for n, deps in graph.items() if n not in gone}
    return cycles


def _describe(value: object) -> str:
    """A value's YAML type, with the value for scalars: `integer 1`, `boolean true`, `a list`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {_short(str(value))}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, datetime.date):
        return f"date {value.isoformat()}"
    if isinstance(value, str):
        return f"string {_short(value)!r}"
    kinds: dict[type, str] = {list: "a list", dict: "a mapping", bytes: "binary data", set: "a set", tuple: "a pair"}
    return kinds.get(type(value), type(value).__name__)


def _quote_hint(value: object) -> str:
    """For a scalar YAML read as a number, boolean or date: how to keep it as text."""
    if isinstance(value, (bool, int, float, datetime.date)):
        return "; put it in quotes to keep it as text"
    return ""
