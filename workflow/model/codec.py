"""JSON form of the messages, for the edges (Pub/Sub, logs). Schema version 1.

Every message is an object `{"v": 1, "type": <class name>, ...fields}`; see docs/cloud-runtime.md (Messages) for each.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from typing import Any

from ..errors import DagInvalid, PoisonMessage
from .dag import Dag
from .inputs import RunInputs
from .messages import Message, SweepRuns
from .states import RunStatus, StepState
from .text import excerpt

VERSION = 1
ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
RESERVED_ID = re.compile(r"^__.*__$")  # Firestore reserves these document ids, as it does '.' and '..'
_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in typing.get_args(Message)}


def to_dict(msg: Message) -> dict[str, Any]:
    body: dict[str, Any] = {"v": VERSION, "type": type(msg).__name__}
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if isinstance(value, (Dag, RunInputs)):
            value = value.to_dict()
        elif isinstance(value, (StepState, RunStatus)):
            value = value.value
        body[f.name] = value
    return body


def encode(msg: Message) -> bytes:
    return json.dumps(to_dict(msg), separators=(",", ":")).encode()


def from_dict(body: Any) -> Message:
    """Rebuild a message, every field checked against its dataclass type and ids against
    `id_problem`; anything malformed raises PoisonMessage naming the problem."""
    if not isinstance(body, dict):
        raise PoisonMessage("message is not a JSON object")
    if body.get("v") != VERSION:
        raise PoisonMessage(f"unsupported message version {excerpt(repr(body.get('v')), 40)} (expected {VERSION})")
    cls = _TYPES.get(str(body.get("type")))
    if cls is None:
        raise PoisonMessage(f"unknown message type {excerpt(repr(body.get('type')), 40)}")
    kwargs = {k: v for k, v in body.items() if k not in ("v", "type")}
    try:
        hints = typing.get_type_hints(cls)
        for name, value in kwargs.items():
            if name in hints:
                kwargs[name] = _typed(name, value, hints[name])
        msg: Message = cls(**kwargs)
    except (KeyError, TypeError, ValueError, AttributeError, DagInvalid) as exc:
        raise PoisonMessage(f"malformed {cls.__name__}: {excerpt(str(exc), 300)}") from exc
    for name in ("run_id", "step_id"):
        problem = id_problem(getattr(msg, name, ""), name) if hasattr(msg, name) else None
        if problem:
            raise PoisonMessage(f"malformed {cls.__name__}: {problem}")
    problem = _out_of_bounds(msg)
    if problem:
        raise PoisonMessage(f"malformed {cls.__name__}: {problem}")
    return msg


DAY = 86_400.0
TEXT_LIMITS = {"job_id": 1_024, "tr_url": 2_048, "tr_auth": 32_768, "job_state": 64, "source": 2_048}
"""Characters a text field may hold; any other text field: DEFAULT_TEXT_LIMIT."""
DEFAULT_TEXT_LIMIT = 4_096
RANGES: dict[str, tuple[float, float]] = {
    "seq": (0, math.inf), "attempt": (0, 10_000), "retries": (0, 20), "max_parallel": (0, 5_000),
    "reruns": (0, 10_000), "limit": (1, 1_000), "stale_after": (0, 30 * DAY), "timeout": (0, 30 * DAY),
    "submitted_at": (0, math.inf), "deadline": (0, math.inf), "quiet_since": (0, math.inf), "at": (0, math.inf),
}
"""The values a number field may take, whatever the message; a sweep's `stale_after` is more than 0."""
MAX_SUCCESSORS = 5_000  # a DAG's most steps


def _out_of_bounds(msg: Message) -> str | None:
    """Why a field of `msg` is out of its bounds (length, range, ids), or None."""
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        cap = TEXT_LIMITS.get(f.name, DEFAULT_TEXT_LIMIT)
        if isinstance(value, str) and len(value) > cap:
            return f"field {f.name!r} is {len(value):,} characters long (at most {cap:,})"
        low, high = RANGES.get(f.name, (-math.inf, math.inf))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not low <= value <= high:
            return f"field {f.name!r} is {value!r}, outside {low:g} to {high:g}"
        if f.name in ("successors", "from_step") and value:
            ids = value if isinstance(value, tuple) else (value,)
            if len(ids) > MAX_SUCCESSORS:
                return f"field {f.name!r} lists {len(ids):,} steps (at most {MAX_SUCCESSORS:,})"
            problem = next((p for s in ids if (p := id_problem(s, f.name))), None)
            if problem:
                return problem
    if isinstance(msg, SweepRuns) and msg.stale_after <= 0:
        return "field 'stale_after' must be more than 0 seconds"
    return None


def _typed(name: str, value: Any, kind: Any) -> Any:
    """`value` as the field type `kind`; TypeError/ValueError naming the field otherwise."""
    if kind in (Dag, Dag | None):
        return None if value is None else Dag.from_dict(value)
    if kind is RunInputs:
        if not isinstance(value, dict):
            raise TypeError(f"field {name!r} must be an object, not {type(value).__name__}")
        return RunInputs.from_dict(value)
    if kind in (StepState, RunStatus):
        if value not in {member.value for member in kind}:
            raise ValueError(f"field {name!r} is not one of {', '.join(m.value for m in kind)}")
        return kind(value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"field {name!r} is not a finite number")
        return float(value)
    if kind in (str, int) and type(value) is kind:
        return value
    if kind == (tuple[str, ...] | None):
        if value is None:
            return None
        if isinstance(value, list) and all(type(v) is str for v in value):
            return tuple(value)
    raise TypeError(f"field {name!r} must be {getattr(kind, '__name__', kind)}, not {type(value).__name__}")


def id_problem(value: Any, name: str) -> str | None:
    """Why `value` cannot be a run or step id (a document id in every store), or None."""
    if not isinstance(value, str):
        return f"{name} must be a string, not {type(value).__name__}"
    if not ID.match(value) or value in (".", "..") or RESERVED_ID.match(value):
        return (f"{name} {excerpt(value, 130)!r} is not 1-128 of A-Z a-z 0-9 . _ - "
                "(and not '.', '..' or __name__)")
    return None


def decode(data: bytes) -> Message:
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise PoisonMessage(f"message is not JSON: {excerpt(str(exc), 200)}") from exc
    return from_dict(body)
