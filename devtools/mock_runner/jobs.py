"""Jobs of the mock Task Runner: what a submission asks for and how a job's state unfolds.

A job walks QUEUED -> PREPARING -> RUNNING (one third of its duration each) and then ends
SUCCEEDED, or FAILED when its ``imageUri`` (or ``url``) contains ``error``. The state is
computed from the time elapsed since submission whenever a status is asked for. Labels
steer one job (a bad value is a :class:`BadRequest` naming the label):

- ``mock_duration_sec`` (seconds >= 0): the job's duration instead of the server default;
- ``mock_final_state`` (SUCCEEDED or FAILED): the job ends at once, in its submission answer;
- ``mock_fail_attempts`` (an integer N >= 0, as a string): the first N accepted submissions
  carrying this label with a given ``job_name`` end FAILED (after their duration, or at once
  with ``mock_final_state``), later ones end as they would otherwise.

A job is in flight from its submission until its state becomes terminal: over the
half-open interval [submitted, submitted + duration), empty for a job that ends at once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Final

from workflow.model.text import excerpt

DURATION_LABEL: Final = "mock_duration_sec"
"""Label whose (string) value overrides the default duration of one job, in seconds."""

FINAL_LABEL: Final = "mock_final_state"
"""Label (SUCCEEDED or FAILED) that ends a job at once: its submission answer is final."""
FINAL_STATES: Final = ("SUCCEEDED", "FAILED")

FAIL_ATTEMPTS_LABEL: Final = "mock_fail_attempts"
"""Label (an integer N >= 0, as a string): the first N submissions of a job name with it fail."""
LABEL_VALUE_LIMIT: Final = 40

WALK: Final = ("QUEUED", "PREPARING", "RUNNING")

JsonObject = dict[str, Any]


class BadRequest(Exception):
    """A request the mock refuses; the message says which field is wrong."""


def job_state(elapsed: float, duration: float, fails: bool) -> str:
    """The state of a job `elapsed` seconds after submission.

    Each third of `duration` is one of QUEUED, PREPARING, RUNNING; from `duration` on the
    job is FAILED if `fails`, else SUCCEEDED. A duration of 0 is terminal at once.
    """
    if elapsed >= duration:
        return "FAILED" if fails else "SUCCEEDED"
    index = int(3 * max(elapsed, 0.0) / duration)
    return WALK[min(index, len(WALK) - 1)]


def max_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most half-open intervals ``[start, end)`` sharing one instant, in O(n log n).

    An interval ending where another starts does not overlap it; an empty one never counts.
    """
    edges = sorted(edge for start, end in intervals if end > start for edge in ((start, 1), (end, -1)))
    return max(accumulate(delta for _, delta in edges), default=0)


@dataclass(frozen=True)
class Job:
    """A submitted job; its state is derived from the clock, never stored.

    `failure`: why this attempt fails whatever its image (``mock_fail_attempts``), or "".
    """

    job_id: str
    image_uri: str
    submitted: float
    duration: float
    final: str | None = None
    failure: str = ""

    @property
    def ends(self) -> float:
        """The clock time from which the job's state is terminal."""
        return self.submitted if self.final else self.submitted + self.duration

    def status(self, now: float) -> JsonObject:
        """The ``job`` object of a status answer at clock time `now`."""
        fails = bool(self.failure) or "error" in self.image_uri
        state = self.final or job_state(now - self.submitted, self.duration, fails)
        message = self._failure_message() if state == "FAILED" else ""
        return {"jobId": self.job_id, "state": state, "message": message}

    def accepted(self) -> JsonObject:
        """The ``job`` object of the submission's answer: final at once, else QUEUED."""
        return self.status(self.submitted) if self.final else {"jobId": self.job_id, "state": "QUEUED", "message": ""}

    def _failure_message(self) -> str:
        return self.failure or f"job failed: image {self.image_uri} exited with status 1"


@dataclass(frozen=True)
class Submission:
    """The validated fields of a ``POST /job`` body that the mock acts on."""

    job_name: str
    image_uri: str
    duration: float | None
    final: str | None = None
    fail_attempts: int | None = None


def _require_str(payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"field '{name}' is required and must be a non-empty string")
    return value


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_str_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(item, str) for item in value.values())


def _check_optional_fields(payload: Mapping[str, Any]) -> None:
    args = payload.get("args")
    if args is not None and not (_is_str_list(args) or _is_str_map(args)):
        raise BadRequest("field 'args' must be a list of strings or a map of strings")
    for name in ("scaleTier", "masterType"):
        if payload.get(name) is not None and not isinstance(payload[name], str):
            raise BadRequest(f"field '{name}' must be a string")
    if payload.get("labels") is not None and not _is_str_map(payload["labels"]):
        raise BadRequest("field 'labels' must be a map of strings")


def _bad_label(label: str, must: str, raw: str) -> BadRequest:
    return BadRequest(f"label '{label}' must be {must}, got {excerpt(repr(raw), LABEL_VALUE_LIMIT)}")


def _label_duration(labels: Mapping[str, str] | None) -> float | None:
    if not labels or DURATION_LABEL not in labels:
        return None
    raw = labels[DURATION_LABEL]
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise _bad_label(DURATION_LABEL, "a non-negative number of seconds", raw)
    return value


def _label_final(labels: Mapping[str, str] | None) -> str | None:
    final = (labels or {}).get(FINAL_LABEL)
    if final is not None and final not in FINAL_STATES:
        raise _bad_label(FINAL_LABEL, f"one of {', '.join(FINAL_STATES)}", final)
    return final


def _label_fail_attempts(labels: Mapping[str, str] | None) -> int | None:
    raw = (labels or {}).get(FAIL_ATTEMPTS_LABEL)
    if raw is None:
        return None
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise _bad_label(FAIL_ATTEMPTS_LABEL, "a whole number >= 0 of at most 9 digits", raw)
    return int(raw)


def _target(payload: Mapping[str, Any]) -> str:
    """``imageUri``, or ``url`` when the task names an ``engine`` and a ``url`` instead."""
    if "imageUri" not in payload and "engine" in payload:
        _require_str(payload, "engine")
        return _require_str(payload, "url")
    return _require_str(payload, "imageUri")


def parse_json_object(body: bytes) -> JsonObject:
    """`body` decoded as a JSON object; :class:`BadRequest` otherwise."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("body must be a JSON object")
    return payload


def parse_submission(payload: Mapping[str, Any]) -> Submission:
    """The submission in a decoded ``POST /job`` body; :class:`BadRequest` naming the bad field."""
    job_name = _require_str(payload, "job_name")
    image_uri = _target(payload)
    _check_optional_fields(payload)
    labels = payload.get("labels")
    return Submission(
        job_name, image_uri, _label_duration(labels), _label_final(labels), _label_fail_attempts(labels)
    )


def make_job_id(job_name: str, counter: int) -> str:
    """``<job_name>-<counter>`` with every character outside [A-Za-z0-9_-] replaced by ``_``."""
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', job_name)}-{counter}"


def check_duration(duration: float) -> float:
    """`duration` as a float; :class:`ValueError` unless finite and >= 0."""
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be a finite number >= 0, got {duration!r}")
    return float(duration)
