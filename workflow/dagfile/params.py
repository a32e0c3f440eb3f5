"""The `params:` of a DAG file (each parameter's declaration, checked), the placeholders of
its steps (only in `task.args`, `task.labels` values and `description`, naming only what is
declared) and `forEach` (a list parameter's placeholder, or a literal list)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import re2

from ..model.params import (
    MAX_ITEMS_CAP,
    MAX_PATTERN,
    TYPES,
    ParamSpec,
    as_text,
    checked_value,
    compiled_pattern,
    looks_like_credential,
)
from ..model.placeholders import ITEM, RUN_NAMES, PlaceholderError, has_placeholder, names, parse
from ..model.text import excerpt

Report = Callable[[str, str], None]  # (where, message)
KeyCheck = Callable[[Iterable[Any], Sequence[str], str, str], None]  # (keys, known, where, what): unknown keys
PARAM_KEYS = ("type", "default", "required", "description", "enum", "pattern", "minimum", "maximum", "maxLength",
              "maxItems", "multiline")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_ALLOWED = "placeholders are allowed only in task.args, task.labels values and description"
_CREDENTIAL = ("looks like a credential's name: parameter values are stored, shown and logged; give the job a "
               "secret reference that the Task Runner resolves (for example a Secret Manager name) instead")
_BOUNDS = {"maxLength": (1, 65_536), "maxItems": (1, MAX_ITEMS_CAP)}


def declared_params(value: object, add: Report, check_keys: KeyCheck) -> dict[str, ParamSpec]:
    """The valid declarations of `params:`; each problem at `params.NAME[.key]`."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        add("params", "must be a mapping of parameter names to their declarations ({type: string, ...})")
        return {}
    found = {}
    for name, raw in value.items():
        where = f"params.{excerpt(str(name), 60)}"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            add(where, "a parameter name is a letter or '_' then letters, digits or '_' (at most 64)")
        elif looks_like_credential(name):
            add(where, _CREDENTIAL)
        elif not isinstance(raw, dict):
            add(where, "must be a mapping with at least 'type' (string, number, integer, boolean or list)")
        else:
            check_keys(raw, PARAM_KEYS, where, "key")
            spec = _spec(raw, where, add)
            if spec is not None:
                found[name] = spec
    return found


def _spec(raw: Mapping[str, Any], where: str, add: Report) -> ParamSpec | None:
    kind = raw.get("type")
    if kind not in TYPES:
        add(f"{where}.type", f"must be one of {', '.join(TYPES)}, got {excerpt(repr(kind), 60)}")
        return None
    before: list[str] = []

    def problem(key: str, message: str) -> None:
        before.append(key)
        add(f"{where}.{key}", message)

    enum = raw.get("enum")
    texts = [as_text(e) for e in enum] if isinstance(enum, list) else None
    if enum is not None and (texts is None or not texts or None in texts):
        problem("enum", "must be a non-empty list of strings, numbers or booleans")
    pattern = raw.get("pattern")
    if pattern is not None:
        _check_pattern(pattern, problem)
    numbers = {k: raw.get(k) for k in ("minimum", "maximum")}
    for key, number in numbers.items():
        if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))):
            problem(key, f"must be a number, got {excerpt(repr(number), 60)}")
    sizes = {}
    for key, (low, high) in _BOUNDS.items():
        size = raw.get(key)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high):
            problem(key, f"must be an integer from {low} to {high:,}")
        sizes[key] = size if isinstance(size, int) and not isinstance(size, bool) else None
    for key in ("required", "multiline"):
        if raw.get(key) is not None and not isinstance(raw.get(key), bool):
            problem(key, "must be true or false")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        problem("description", "must be a string")
    if before:
        return None
    spec = ParamSpec(kind, None, bool(raw.get("required")), description or "", None if texts is None else
                     tuple(t or "" for t in texts), pattern, numbers["minimum"], numbers["maximum"],
                     sizes["maxLength"] or ParamSpec().max_length, sizes["maxItems"] or ParamSpec().max_items,
                     bool(raw.get("multiline")))
    if raw.get("default") is None:
        return spec
    default, why = checked_value(spec, raw["default"])
    if default is None:
        add(f"{where}.default", f"does not fit its declaration: {why}")
        return None
    return ParamSpec(**{**spec.__dict__, "default": default})


def _check_pattern(pattern: object, problem: Report) -> None:
    if not isinstance(pattern, str) or len(pattern) > MAX_PATTERN:
        problem("pattern", f"must be a regular expression of at most {MAX_PATTERN} characters")
        return
    try:
        compiled_pattern(pattern)
    except re2.error as exc:
        why = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        problem("pattern", f"is not a regular expression RE2 takes ({why}; no lookaround or backreferences)")


def check_placeholders(raw: Mapping[str, Any], label: str, params: Mapping[str, ParamSpec], add: Report) -> None:
    """Record each placeholder of a step that is unknown, malformed or where none is allowed."""
    known = {f"params.{n}" for n in params} | set(RUN_NAMES) | ({ITEM} if "forEach" in raw else set())
    task = raw["task"] if isinstance(raw.get("task"), dict) else {}
    args, labels = task.get("args"), task.get("labels")
    allowed: list[tuple[str, object]] = [(f"{label}.description", raw.get("description"))]
    if isinstance(args, list):
        allowed += [(f"{label}.task.args[{i}]", v) for i, v in enumerate(args)]
    elif isinstance(args, dict):
        allowed += [(f"{label}.task.args.{excerpt(str(k), 60)}", v) for k, v in args.items()]
    if isinstance(labels, dict):
        allowed += [(f"{label}.task.labels.{excerpt(str(k), 60)}", v) for k, v in labels.items()]
    for where, text in allowed:
        if isinstance(text, str) and has_placeholder(text):
            try:
                unknown = [n for n in names(text) if n not in known]
            except PlaceholderError as exc:
                add(where, str(exc))
                continue
            for name in unknown:
                add(where, _unknown(name, params))
    kept = {where for where, _ in allowed} | {f"{label}.forEach"}
    for where, text in _strings(raw, label):
        if where not in kept and has_placeholder(text):
            add(where, f"a placeholder is not allowed here: {_ALLOWED}")


def _unknown(name: str, params: Mapping[str, ParamSpec]) -> str:
    if name == ITEM:
        return "{{ item }} is known only in a step with forEach"
    declared = ", ".join(sorted(params)[:20]) or "none"
    return f"unknown parameter {{{{ {name} }}}}: declare it under params (declared: {declared})"


def _strings(value: object, where: str) -> list[tuple[str, str]]:
    """Every string in `value` (keys too) with the place it is at."""
    if isinstance(value, str):
        return [(where, value)]
    if isinstance(value, list):
        return [found for i, v in enumerate(value) for found in _strings(v, f"{where}[{i}]")]
    if isinstance(value, dict):
        return [found for k, v in value.items() for found in
                [*_strings(k, where), *_strings(v, f"{where}.{excerpt(str(k), 60)}")]]
    return []


def for_each_of(raw: Mapping[str, Any], where: str, params: Mapping[str, ParamSpec],
                add: Report) -> str | tuple[str, ...] | None:
    """A step's `forEach`: `{{ params.LIST }}` naming a list parameter, or a literal list of
    scalars (as text); None if absent or invalid (a problem is recorded)."""
    if "forEach" not in raw:
        return None
    value = raw["forEach"]
    if isinstance(value, list):
        items = [as_text(v) for v in value]
        if not items or None in items or len(items) > MAX_ITEMS_CAP:
            add(where, f"a literal list must hold 1 to {MAX_ITEMS_CAP:,} strings, numbers or booleans")
            return None
        return tuple(t or "" for t in items)
    try:
        parts = parse(value.strip()) if isinstance(value, str) else []
    except PlaceholderError as exc:
        add(where, str(exc))
        return None
    ref = parts[0][0] if len(parts) == 1 and isinstance(parts[0], tuple) else ""
    name = ref.removeprefix("params.")
    if not ref.startswith("params."):
        add(where, "must be a list parameter's placeholder, such as \"{{ params.shards }}\", or a list")
    elif name not in params:
        add(where, _unknown(ref, params))
    elif params[name].type != "list":
        add(where, f"parameter {name!r} is of type {params[name].type}; forEach needs a list")
    else:
        return str(value)
    return None
