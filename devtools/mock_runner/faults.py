"""Faults the mock injects on its protocol paths: late, refused or garbled answers."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from werkzeug.wrappers import Response

from .jobs import BadRequest, parse_json_object

FAULT_PATHS: Final = ("/job", "/jobstatus")
"""The protocol paths: the only ones that are recorded and can have faults injected."""

FAULT_KINDS: Final = ("delay", "accept", "retry_after", "echo_headers")
"""The optional fields of a fault, besides path, status, count and body."""


def json_response(status: int, payload: object, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON answer with `status`."""
    return Response(json.dumps(payload), status, headers, content_type="application/json")


def error_response(status: int, message: str, **headers: str) -> Response:
    """A JSON ``{"error": message}`` answer with `status`."""
    return json_response(status, {"error": message}, headers)


@dataclass
class Fault:
    """The next `remaining` requests to a path answer `status` with `body`, after `delay` s.

    `delay` None: only when the mock stops. `accept`: the request is handled as usual (a
    job is accepted and recorded), only its answer comes late. `retry_after`: the value of a
    ``Retry-After`` header. `echo_headers`: the body echoes the request's headers.
    """

    status: int
    body: str
    remaining: int
    delay: float | None = 0.0
    accept: bool = False
    retry_after: str = ""
    echo_headers: bool = False

    def response(self, request_headers: Mapping[str, str]) -> Response:
        """The injected answer: `body` as text, or a JSON error when `body` is empty."""
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        if self.echo_headers:
            return json_response(
                self.status, {"error": "injected fault", "request_headers": dict(request_headers)}, headers
            )
        if self.body:
            return Response(self.body, self.status, headers, content_type="text/plain; charset=utf-8")
        return error_response(self.status, f"injected fault (status {self.status})", **headers)


def check_fault(path: str, fault: Fault) -> None:
    """:class:`ValueError` for an unknown path or a bad status, count or delay; :class:`TypeError`
    for a field of the wrong type."""
    status, count, delay = fault.status, fault.remaining, fault.delay
    if path not in FAULT_PATHS:
        raise ValueError(f"fault path must be one of {', '.join(FAULT_PATHS)}, got {path!r}")
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise ValueError(f"fault status must be an integer in 200..599, got {status!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"fault count must be an integer >= 1, got {count!r}")
    if not isinstance(fault.body, str) or not isinstance(fault.retry_after, str):
        raise TypeError("fault body and retry_after must be strings")
    if not isinstance(fault.accept, bool) or not isinstance(fault.echo_headers, bool):
        raise TypeError("fault accept and echo_headers must be true or false")
    if delay is not None and (not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0):
        raise ValueError(f"fault delay must be a number of seconds >= 0 or None, got {delay!r}")


def fault_request(body: bytes) -> tuple[str, int, int, str, dict[str, Any]]:
    """The arguments of ``inject_fault`` in a ``POST /_mock/faults`` body: (path, status,
    count, body, other fields); :class:`BadRequest` for a field the mock does not know."""
    payload = parse_json_object(body)
    unknown = sorted(set(payload) - {"path", "status", "count", "body", *FAULT_KINDS})
    if unknown:
        raise BadRequest(f"unknown fault field(s): {', '.join(unknown)}")
    kind: dict[str, Any] = {key: payload[key] for key in FAULT_KINDS if key in payload}
    return payload.get("path", ""), payload.get("status", 0), payload.get("count", 1), payload.get("body", ""), kind
