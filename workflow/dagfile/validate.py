"""Plain data to a validated `Dag`: every problem of a file, each naming its step and key, reported at once."""

import datetime
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from graphlib import CycleError, TopologicalSorter
from typing import Any
from urllib.parse import urlsplit

from ..errors import DagInvalid, Problem
from ..model.dag import Args, Dag, Policy, RunIf, Step, Task
from ..model.params import ParamSpec
from ..model.placeholders import has_placeholder
from ..model.text import excerpt
from .limits import ID_CHARACTERS, MAX_ID_LENGTH, MAX_REPORTED_CYCLES, MAX_REPORTED_PROBLEMS, MAX_STEPS, NUMBER_RANGES
from .load import load_yaml
from .params import check_placeholders, declared_params, for_each_of

TASK_KEYS = ("name", "imageUri", "engine", "url", "args", "scaleTier", "masterType", "labels")
POLICY_KEYS = ("retries", "retryDelaySec", "timeoutSec", "runIf")  # of a step, or of all steps in `defaults`
RUN_KEYS, RUN_IF = ("maxParallel", "timeoutSec"), tuple(r.value for r in RunIf)
_IMAGE = "the container image to run"
_ID_RE, _WORD = re.compile(f"[{ID_CHARACTERS}]+"), re.compile(r"[A-Za-z0-9_-]+")
_MAX_SUGGESTED_IDS = 100  # unknown dependencies for which a close id is searched (each scans every id)


def parse_dag(data: bytes, origin: str) -> Dag:
    """The `Dag` in a file's bytes; `DagInvalid` lists up to `MAX_REPORTED_PROBLEMS` problems, by step in file order."""
    document, duplicate_keys = load_yaml(data, origin)
    if dag := _build_dag(document, out := _Problems(duplicate_keys)):
        return dag
    found = sorted(out, key=lambda p: int(m.group(1)) if (m := re.match(r"steps\[(\d+)\]", p.where)) else -1)
    if len(found) > MAX_REPORTED_PROBLEMS:
        rest = f"... and {len(found) - MAX_REPORTED_PROBLEMS:,} more problem(s) not listed"
        found[MAX_REPORTED_PROBLEMS:] = [Problem("", rest)]
    raise DagInvalid(origin, found)


class _Problems(list[Problem]):
    def add(self, where: str, message: str) -> None:
        self.append(Problem(where, message))


@dataclass
class _Draft:  # one entry of `steps` as far as it could be read
    index: int
    label: str
    valid_id: str | None
    any_id: str | None  # the id even if invalid: other steps may refer to it
    depends_on: dict[str, int]
    step: Step | None


def _build_dag(document: object, out: _Problems) -> Dag | None:
    if not isinstance(document, dict):
        out.add("", f"the top level must be a mapping with 'steps', got {_describe(document)}")
        return None
    _check_keys(document, ("name", "params", "steps", *RUN_KEYS, "defaults"), "", "top-level key", out)
    name = _text(document.get("name"), "name", out, optional=True)
    if isinstance(name, str) and has_placeholder(name):
        out.add("name", "a placeholder is not allowed here: placeholders are allowed only in task.args, "
                        "task.labels values and description")
    params = declared_params(document.get("params"), out.add,
                             lambda keys, known, where, what: _check_keys(keys, known, where, what, out))
    run, defaults = _settings(document, RUN_KEYS, "", out), _defaults(document.get("defaults"), out)
    steps = document.get("steps", KeyError)
    if steps is KeyError:
        out.add("steps", "missing required key 'steps' (the list of steps)")
    elif not isinstance(steps, list):
        out.add("steps", f"must be a list of steps, got {_describe(steps)}")
    elif not steps:
        out.add("steps", "must list at least one step")
    elif len(steps) > MAX_STEPS:
        out.add("steps", f"{len(steps):,} steps; the limit is {MAX_STEPS:,} steps per DAG")
    listed = steps if isinstance(steps, list) else []
    drafts = [_draft_step(i, raw, defaults, params, out) for i, raw in enumerate(listed)]
    _check_cycles(_check_references(drafts, out), out)
    steps = tuple(d.step for d in drafts if d.step)
    return None if out else Dag(steps, name or "", max_parallel=run.get("maxParallel"), timeout=run.get("timeoutSec"),
                                params=params)


def _draft_step(index: int, raw: object, defaults: dict[str, Any], params: dict[str, ParamSpec],
                out: _Problems) -> _Draft:
    if not isinstance(raw, dict):
        out.add(f"steps[{index}]", f"must be a mapping with 'id' and 'task', got {_describe(raw)}")
        return _Draft(index, f"steps[{index}]", None, None, {}, None)
    before = len(out)
    valid_id, any_id = _step_id(index, raw, out)
    label = f"steps[{index}]" + (f" (id {excerpt(any_id, 40)!r})" if any_id else "")
    _check_keys(raw, ("id", "description", "dependsOn", "task", "forEach", *POLICY_KEYS), label, "key", out)
    check_placeholders(raw, label, params, out.add)
    for_each = for_each_of(raw, f"{label}.forEach", params, out.add)
    description = _text(raw.get("description"), f"{label}.description", out, optional=True) or ""
    depends_on = _depends_on(raw.get("dependsOn"), f"{label}.dependsOn", out)
    task = _task(raw, label, valid_id or "", out)
    policy = Policy.from_dict({**defaults, **_settings(raw, POLICY_KEYS, f"{label}.", out)})
    fine = len(out) == before
    step = Step(valid_id, task, tuple(depends_on), description, policy, for_each) if valid_id and task and fine \
        else None
    return _Draft(index, label, valid_id, any_id, depends_on, step)


def _step_id(index: int, raw: Mapping[Any, Any], out: _Problems) -> tuple[str | None, str | None]:
    value, where, why = raw.get("id"), f"steps[{index}].id", "step ids become document ids and job names"
    if "id" not in raw:
        out.add(f"steps[{index}]", "missing required key 'id'")
    elif value == "":
        out.add(where, "must not be empty")
    elif (text := _text(value, where, out)) is None:
        pass
    elif len(text) > MAX_ID_LENGTH:
        out.add(where, f"is {len(text):,} characters long; the limit is {MAX_ID_LENGTH} ({why})")
    elif not _ID_RE.fullmatch(text):
        bad = ", ".join(repr(ch) for ch in sorted({ch for ch in text if not _ID_RE.fullmatch(ch)})[:5])
        allowed = "only letters, digits, '.', '_' and '-' are allowed"
        out.add(where, f"{excerpt(text, 40)!r} contains {bad}: {allowed} ({why})")
    elif text in (".", "..") or (len(text) >= 4 and text.startswith("__") and text.endswith("__")):
        out.add(where, f"{text!r} is reserved ({why}); choose another id")
    else:
        return text, text
    return None, value if isinstance(value, str) and value else None


def _depends_on(value: object, where: str, out: _Problems) -> dict[str, int]:
    if value is not None and not isinstance(value, list):
        hint = f"; write [{value}]" if isinstance(value, str) else ""
        out.add(where, f"must be a list of step ids, got {_describe(value)}{hint}")
    found: dict[str, int] = {}
    for position, dep in enumerate(value if isinstance(value, list) else []):
        if _text(dep, f"{where}[{position}]", out, f"must be a step id (a string), got {_describe(dep)}") is None:
            continue
        if found.setdefault(dep, position) != position:
            out.add(f"{where}[{position}]", f"{excerpt(dep, 60)!r} is listed more than once")
    return found


def _task(raw: Mapping[Any, Any], label: str, step_id: str, out: _Problems) -> Task | None:
    task, where = raw.get("task"), f"{label}.task"
    if not isinstance(task, dict):
        if "task" in raw:
            out.add(where, f"must be a mapping with at least 'imageUri', got {_describe(task)}")
        else:
            out.add(label, "missing required key 'task' (the job to run, with at least 'imageUri')")
        return None
    before = len(out)
    _check_keys(task, TASK_KEYS, where, "key", out)
    text = {k: _text(task.get(k), f"{where}.{k}", out, optional=True) for k in TASK_KEYS if k not in ("args", "labels")}
    for key, what in (("name", "leave it out to use the step id"), ("imageUri", _IMAGE), ("engine", "or leave it out")):
        if text[key] is not None and not str(text[key]).strip():
            out.add(f"{where}.{key}", f"must not be empty ({what})")
    try:
        url = urlsplit(text["url"] or "")
    except ValueError:  # a bracketed host that is not an IP address
        url = urlsplit("")
    if text["url"] is not None and (url.scheme not in ("http", "https") or not url.netloc):
        out.add(f"{where}.url", f"must be an absolute http:// or https:// URL, got {excerpt(text['url'], 60)!r}")
    if text["engine"] is None and "imageUri" not in task:
        out.add(where, f"missing required key 'imageUri' ({_IMAGE})")
    elif text["engine"] is None and task["imageUri"] is None:
        out.add(f"{where}.imageUri", f"must be a string ({_IMAGE}), got null")
    args = _args(task.get("args"), f"{where}.args", out)
    labels = _args(task.get("labels"), f"{where}.labels", out, lists=False)
    if len(out) != before:
        return None
    return Task.from_dict({**text, "args": args, "labels": labels, "name": text["name"] or step_id})


def _args(value: object, where: str, out: _Problems, lists: bool = True) -> Args | None:
    """A tuple of strings (when `lists`) or a string-to-string mapping, order kept; None when absent or invalid."""
    if isinstance(value, list) and lists:
        bad = [_text(item, f"{where}[{position}]", out) is None for position, item in enumerate(value)]
        return None if any(bad) else tuple(value)
    if value is not None and not isinstance(value, dict):
        kind = "a list of strings or a mapping" if lists else "a mapping"
        out.add(where, f"must be {kind} of string to string, got {_describe(value)}")
    if not isinstance(value, dict):
        return None
    bad = [
        _text(k, where, out, f"key {_describe(k)} must be a string") is None
        or _text(v, f"{where}.{k}" if _WORD.fullmatch(k) else f"{where}[{excerpt(k, 60)!r}]", out) is None
        for k, v in value.items()
    ]
    return None if any(bad) else dict(value)


def _defaults(value: object, out: _Problems) -> dict[str, Any]:
    if value is not None and not isinstance(value, dict):
        out.add("defaults", f"must be a mapping of step keys ({', '.join(POLICY_KEYS)}), got {_describe(value)}")
    mapping = value if isinstance(value, dict) else {}
    _check_keys(mapping, POLICY_KEYS, "defaults", "key", out)
    return _settings(mapping, POLICY_KEYS, "defaults.", out)


def _settings(raw: Mapping[Any, Any], keys: Sequence[str], prefix: str, out: _Problems) -> dict[str, Any]:
    """The valid values of the `keys` set (not null) in `raw`; each invalid one is a problem at `prefix` + key."""
    found = {key: _setting(key, raw[key], prefix + key, out) for key in keys if raw.get(key) is not None}
    return {key: value for key, value in found.items() if value is not None}


def _setting(key: str, value: object, where: str, out: _Problems) -> object:
    if key == "runIf":
        _check_keys([value], RUN_IF, where, "value", out)
        return value if value in RUN_IF else None
    integer, low, high = NUMBER_RANGES[key]
    kinds = (int,) if integer else (int, float)
    if isinstance(value, kinds) and not isinstance(value, bool) and low <= value <= high and (integer or value > low):
        return value if integer else float(value)
    kind = f"an integer from {low} to {high:,.0f}" if integer else f"a number over {low} and at most {high:,.0f}"
    out.add(where, f"must be {kind}, got {_describe(value)}")
    return None


def _text(value: object, where: str, out: _Problems, message: str = "", optional: bool = False) -> str | None:
    if isinstance(value, str) or (optional and value is None):
        return value if isinstance(value, str) else None
    hint = "; put it in quotes to keep it as text" if isinstance(value, (int, float, datetime.date)) else ""
    out.add(where, (message or f"must be a string, got {_describe(value)}") + hint)
    return None


def _check_keys(keys: Iterable[Any], known: Sequence[str], where: str, what: str, out: _Problems) -> None:
    """Record each of `keys` not `known`, suggesting the known one equal ignoring case, '_' and '-', or the closest."""
    forms = {k.replace("_", "").replace("-", "").lower(): k for k in known}
    for key in (k for k in keys if k not in known):
        form = key.replace("_", "").replace("-", "").lower() if isinstance(key, str) else ""
        match = forms.get(form) or next(iter(difflib.get_close_matches(form, list(forms), n=1)), None)
        hint = f"did you mean {forms.get(match, match)!r}?" if match else f"expected one of: {', '.join(known)}"
        out.add(where, f"unknown {what} {repr(excerpt(key, 60)) if isinstance(key, str) else _describe(key)}; {hint}")


def _check_references(drafts: Sequence[_Draft], out: _Problems) -> dict[str, _Draft]:
    """Record reused ids and dependencies on the step itself or on no step; returns the first step with each id."""
    first, searched = dict[str, _Draft](), 0
    for draft in drafts:
        earlier = first.setdefault(draft.any_id, draft) if draft.any_id else draft
        if earlier is not draft:
            same = f"duplicate id {excerpt(str(draft.any_id), 60)!r}: steps[{earlier.index}] has the same id"
            out.add(draft.label, same)
    for draft in drafts:
        for dep, position in draft.depends_on.items():
            where = f"{draft.label}.dependsOn[{position}]"
            if dep == draft.any_id:
                out.add(where, "a step cannot depend on itself")
            elif dep not in first:
                searched += 1
                close = difflib.get_close_matches(dep, list(first), n=1) if searched <= _MAX_SUGGESTED_IDS else None
                hint = "" if close is None else f"; did you mean {close[0]!r}?" if close else " (no step has this id)"
                out.add(where, f"unknown step {excerpt(dep, 60)!r}{hint}")
    return first


def _check_cycles(first: dict[str, _Draft], out: _Problems) -> None:
    """Record disjoint dependency cycles among the first steps with each valid id, each from its first step."""
    usable = {key: d for key, d in first.items() if d.valid_id is not None}
    graph = {key: [dep for dep in d.depends_on if dep in usable and dep != key] for key, d in usable.items()}
    for count in range(MAX_REPORTED_CYCLES + 1):
        try:
            TopologicalSorter(graph).prepare()
            return
        except CycleError as exc:
            cycle = list(reversed(exc.args[1]))[:-1]  # graphlib lists a step before its dependents
        if count == MAX_REPORTED_CYCLES:
            out.add("steps", f"more than {MAX_REPORTED_CYCLES} dependency cycles; the others are not listed")
            return
        start = min(range(len(cycle)), key=lambda k: usable[cycle[k]].index)
        ordered, gone = cycle[start:] + cycle[:start], set(cycle)
        path = " -> ".join([*ordered, ordered[0]])
        out.add(usable[ordered[0]].label, f"dependency cycle: {path} (each step depends on the next)")
        graph = {n: [d for d in deps if d not in gone] for n, deps in graph.items() if n not in gone}


def _describe(value: object) -> str:
    if isinstance(value, (bool, datetime.date)):
        return f"boolean {str(value).lower()}" if isinstance(value, bool) else f"date {value.isoformat()}"
    forms = {int: "integer {}", float: "number {!r}", str: "string {!r}", list: "a list", dict: "a mapping"}
    others = {type(None): "null", bytes: "binary data", set: "a set", tuple: "a pair"}
    form = forms.get(type(value)) or others.get(type(value), type(value).__name__)
    return form.format(excerpt(value, 60) if isinstance(value, str) else value)
