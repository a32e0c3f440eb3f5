"""JSON form of the messages, for the edges (Pub/Sub, logs). Schema version 1.

Every message is an object `{"v": 1, "type": <class name>, ...fields}`; see README for each.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..errors import PoisonMessage
from .dag import Dag
from .messages import (
    CancelRun,
    CheckJob,
    DispatchStep,
    Message,
    ReconcileRun,
    RerunRun,
    RunFinished,
    StartRun,
    StepFinished,
)
from .states import RunStatus, StepState

VERSION = 1
_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (StartRun, DispatchStep, CheckJob, StepFinished, RunFinished, ReconcileRun, CancelRun, RerunRun)
}


def to_dict(msg: Message) -> dict[str, Any]:
    body: dict[str, Any] = {"v": VERSION, "type": type(msg).__name__}
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if isinstance(value, Dag):
            value = value.to_dict()
        elif isinstance(value, (StepState, RunStatus)):
            value = value.value
        body[f.name] = value
    return body


def encode(msg: Message) -> bytes:
    return json.dumps(to_dict(msg), separators=(",", ":")).encode()


def from_dict(body: Any) -> Message:
    """Rebuild a message; anything malformed raises PoisonMessage naming the problem."""
    if not isinstance(body, dict):
        raise PoisonMessage("message is not a JSON object")
    if body.get("v") != VERSION:
        raise PoisonMessage(f"unsupported message version {body.get('v')!r} (expected {VERSION})")
    cls = _TYPES.get(str(body.get("type")))
    if cls is None:
        raise PoisonMessage(f"unknown message type {body.get('type')!r}")
    kwargs = {k: v for k, v in body.items() if k not in ("v", "type")}
    try:
        if cls is StartRun:
            kwargs["dag"] = Dag.from_dict(kwargs["dag"])
        if cls is StepFinished:
            kwargs["state"] = StepState(kwargs["state"])
        if cls is RunFinished:
            kwargs["status"] = RunStatus(kwargs["status"])
        msg: Message = cls(**kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        raise PoisonMessage(f"malformed {cls.__name__}: {exc}") from exc
    return msg


def decode(data: bytes) -> Message:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonMessage(f"message is not JSON: {exc}") from exc
    return from_dict(body)
