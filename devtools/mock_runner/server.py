"""A stand-in Task Runner speaking the real service's HTTP protocol, for tests and local runs.

Protocol (the real Task Runner's):

- ``POST /job`` with a JSON object ``{"job_name", "imageUri", "args", "scaleTier",
  "masterType", "labels"}`` (only ``job_name`` and ``imageUri`` required; ``engine`` and
  ``url`` may stand in for ``imageUri``) answers 200
  ``{"job": {"jobId", "state": "QUEUED", "message": ""}}``; a bad body answers 400
  ``{"error": ...}`` naming the offending field.
- ``GET /jobstatus?job_id=ID`` answers 200 ``{"job": {"jobId", "state", "message"}}``;
  404 for an unknown id, 400 without ``job_id``.

A job walks QUEUED -> PREPARING -> RUNNING (one third of its duration each) and then ends
SUCCEEDED, or FAILED when its ``imageUri`` (or ``url``) contains ``error``. The state is
computed from the time elapsed since submission whenever a status is asked for. Labels
steer one job (a bad value answers 400 naming the label):

- ``mock_duration_sec`` (seconds >= 0): the job's duration instead of the server default;
- ``mock_final_state`` (SUCCEEDED or FAILED): the job ends at once, in its submission answer;
- ``mock_fail_attempts`` (an integer N >= 0, as a string): the first N accepted submissions
  carrying this label with a given ``job_name`` end FAILED (after their duration, or at once
  with ``mock_final_state``), later ones end as they would otherwise. A step retried by
  submitting the same task again thus fails N times, then behaves as usual.

A job is in flight from its submission until its state becomes terminal: over the
half-open interval [submitted, submitted + duration), empty for a job that ends at once.

With a token configured, every ``/job`` and ``/jobstatus`` request must carry
``Authorization: Bearer <token>``, otherwise it gets 401. The token is never logged nor
recorded: a record keeps the scheme and a short hash (:func:`fingerprint`).

Test hooks (never behind the token): ``GET /_mock/requests``, ``GET /_mock/submissions``,
``GET /_mock/in_flight`` (``{"now": int, "max": int}``: jobs in flight now, and the most in
flight at any instant since the last reset), ``POST /_mock/faults`` and ``POST /_mock/reset``
(which also forgets the attempts counted for ``mock_fail_attempts``); the same operations
exist in-process on :class:`MockTaskRunner`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import math
import re
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request as HttpRequest
from werkzeug.wrappers import Response as HttpResponse

from workflow.model.text import excerpt

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

__all__ = [
    "DURATION_LABEL",
    "FAIL_ATTEMPTS_LABEL",
    "FAULT_PATHS",
    "FINAL_LABEL",
    "MockTaskRunner",
    "RunnerState",
    "fingerprint",
    "job_state",
    "max_overlap",
]

log = logging.getLogger(__name__)

DURATION_LABEL: Final = "mock_duration_sec"
"""Label whose (string) value overrides the default duration of one job, in seconds."""

FINAL_LABEL: Final = "mock_final_state"
"""Label (SUCCEEDED or FAILED) that ends a job at once: its submission answer is final."""
FINAL_STATES: Final = ("SUCCEEDED", "FAILED")

FAIL_ATTEMPTS_LABEL: Final = "mock_fail_attempts"
"""Label (an integer N >= 0, as a string): the first N submissions of a job name with it fail."""
LABEL_VALUE_LIMIT: Final = 40

FAULT_PATHS: Final = ("/job", "/jobstatus")
"""The protocol paths: the only ones that are recorded and can have faults injected."""

FAULT_KINDS: Final = ("delay", "accept", "retry_after", "echo_headers")
MAX_BODY_BYTES: Final = 1 << 20
WALK: Final = ("QUEUED", "PREPARING", "RUNNING")
AUTH_ERROR: Final = "missing or wrong bearer token"

JsonObject = dict[str, Any]
Clock = Callable[[], float]


class BadRequest(Exception):
    """A request the mock refuses; the message says which field is wrong."""


@dataclass(frozen=True)
class Request:
    """One HTTP request, reduced to what routing needs."""

    method: str
    path: str
    query: dict[str, str]
    body: bytes
    authorization: str | None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Response:
    """One HTTP answer: status, encoded body and its content type."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, payload: object) -> Response:
    """A JSON answer with `status`."""
    return Response(status, json.dumps(payload).encode())


def error_response(status: int, message: str, **headers: str) -> Response:
    """A JSON ``{"error": message}`` answer with `status`."""
    return Response(status, json.dumps({"error": message}).encode(), headers=tuple(headers.items()))


def fingerprint(token: str) -> str:
    """``sha256:`` and the first 12 hex digits of the token's SHA-256: how records name it."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _recorded_auth(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    return f"{scheme} {fingerprint(credentials.strip())}"


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

    def _failure_message(self) -> str:
        return self.failure or f"job failed: image {self.image_uri} exited with status 1"


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

    def response(self, request: Request) -> Response:
        """The injected answer: `body` as text, or a JSON error when `body` is empty."""
        headers = (("Retry-After", self.retry_after),) if self.retry_after else ()
        if self.echo_headers:
            echo = {"error": "injected fault", "request_headers": dict(request.headers)}
            return Response(self.status, json.dumps(echo).encode(), headers=headers)
        if self.body:
            return Response(self.status, self.body.encode(), "text/plain; charset=utf-8", headers)
        return error_response(self.status, f"injected fault (status {self.status})", **dict(headers))


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


def _check_duration(duration: float) -> float:
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be a finite number >= 0, got {duration!r}")
    return float(duration)


def _check_fault(path: str, fault: Fault) -> None:
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


class RunnerState:
    """Jobs, records and faults of one mock; every public method is thread-safe."""

    def __init__(self, duration: float, token: str | None, clock: Clock = time.monotonic) -> None:
        if token is not None and not token:
            raise ValueError("token must be non-empty when given")
        self.duration = _check_duration(duration)
        self._token = token
        self._clock = clock
        self._lock = threading.Lock()
        self._counter = 0
        self._jobs: dict[str, Job] = {}
        self._records: list[JsonObject] = []
        self._submissions: list[str] = []
        self._attempts: Counter[str] = Counter()
        self._faults: dict[str, deque[Fault]] = {path: deque() for path in FAULT_PATHS}
        self.stopping = threading.Event()
        """Set while the mock stops: delayed answers go out at once."""

    # --- test hooks -------------------------------------------------------------------

    def records(self) -> list[JsonObject]:
        """Deep copies of the records of every protocol request, oldest first."""
        with self._lock:
            return copy.deepcopy(self._records)

    def submissions(self) -> list[str]:
        """The job names of accepted submissions, in the order received."""
        with self._lock:
            return list(self._submissions)

    def in_flight(self) -> dict[str, int]:
        """``{"now": n, "max": m}``: jobs in flight at this clock time, and the most in flight at
        any instant since the last reset. A job is in flight over [submitted, ends)."""
        with self._lock:
            now = self._clock()
            intervals = [(job.submitted, job.ends) for job in self._jobs.values()]
        current = sum(start <= now < end for start, end in intervals)
        return {"now": current, "max": max_overlap(intervals)}

    def inject_fault(self, path: str, status: int, count: int = 1, body: str = "", **kind: Any) -> None:
        """The next `count` requests to `path` answer `status` with `body`, before auth.

        `kind`: the other fields of :class:`Fault` (delay, accept, retry_after,
        echo_headers). Faults on the same path queue up: the second starts when the first is
        used up. Raises :class:`ValueError` for an unknown path or a bad status, count or
        delay, and :class:`TypeError` for a body that is not a string or an unknown field.
        """
        fault = Fault(status, body, count, **kind)
        _check_fault(path, fault)
        with self._lock:
            self._faults[path].append(fault)

    def reset(self) -> None:
        """Forget every job, record, submission, counted attempt and fault. Job ids stay unique."""
        with self._lock:
            self._jobs.clear()
            self._records.clear()
            self._submissions.clear()
            self._attempts.clear()
            for queue in self._faults.values():
                queue.clear()

    # --- routing ----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """The answer to `request`; protocol requests are recorded with their status."""
        if request.path.startswith("/_mock/"):
            return self._handle_control(request)
        if request.path not in FAULT_PATHS:
            return error_response(404, f"no such endpoint: {request.path}")
        record = self._record(request)
        fault = self._take_fault(request.path)
        if fault is None or fault.accept:
            response = self._handle_protocol(request)
        else:
            response = fault.response(request)
        if fault is not None:
            self.stopping.wait(fault.delay)
        with self._lock:
            record["status"] = response.status
        return response

    def _handle_protocol(self, request: Request) -> Response:
        if not self._authorized(request.authorization):
            return error_response(401, AUTH_ERROR, **{"WWW-Authenticate": "Bearer"})
        if request.path == "/job":
            return self._submit(request) if request.method == "POST" else _not_allowed("POST")
        return self._status(request) if request.method == "GET" else _not_allowed("GET")

    def _handle_control(self, request: Request) -> Response:
        routes: dict[str, tuple[str, Callable[[Request], Response]]] = {
            "/_mock/requests": ("GET", lambda _: json_response(200, self.records())),
            "/_mock/submissions": ("GET", lambda _: json_response(200, self.submissions())),
            "/_mock/in_flight": ("GET", lambda _: json_response(200, self.in_flight())),
            "/_mock/faults": ("POST", self._fault_from_http),
            "/_mock/reset": ("POST", self._reset_from_http),
        }
        if request.path not in routes:
            return error_response(404, f"no such endpoint: {request.path}")
        method, action = routes[request.path]
        return action(request) if request.method == method else _not_allowed(method)

    def _fault_from_http(self, request: Request) -> Response:
        try:
            payload = parse_json_object(request.body)
            unknown = sorted(set(payload) - {"path", "status", "count", "body", *FAULT_KINDS})
            if unknown:
                raise BadRequest(f"unknown fault field(s): {', '.join(unknown)}")
            kind = {key: payload[key] for key in FAULT_KINDS if key in payload}
            self.inject_fault(
                payload.get("path", ""), payload.get("status", 0), payload.get("count", 1), payload.get("body", ""),
                **kind,
            )
        except (BadRequest, ValueError, TypeError) as exc:
            return error_response(400, str(exc))
        return json_response(200, {"ok": True})

    def _reset_from_http(self, _request: Request) -> Response:
        self.reset()
        return json_response(200, {"ok": True})

    # --- protocol ---------------------------------------------------------------------

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self._faults[path]
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            return fault

    def _authorized(self, header: str | None) -> bool:
        if self._token is None:
            return True
        scheme, _, credentials = (header or "").partition(" ")
        expected = self._token.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), expected)

    def _submit(self, request: Request) -> Response:
        try:
            submission = parse_submission(parse_json_object(request.body))
        except BadRequest as exc:
            return error_response(400, str(exc))
        duration = self.duration if submission.duration is None else submission.duration
        with self._lock:
            self._counter += 1
            job_id = make_job_id(submission.job_name, self._counter)
            failure = self._count_attempt(submission)
            final = "FAILED" if failure and submission.final else submission.final
            job = Job(job_id, submission.image_uri, self._clock(), duration, final, failure)
            self._jobs[job.job_id] = job
            self._submissions.append(submission.job_name)
        answer = job.status(job.submitted) if job.final else {"jobId": job.job_id, "state": "QUEUED", "message": ""}
        return json_response(200, {"job": answer})

    def _count_attempt(self, submission: Submission) -> str:
        """Why this attempt must fail under ``mock_fail_attempts``, or ""; holds the lock."""
        limit = submission.fail_attempts
        if limit is None:
            return ""
        self._attempts[submission.job_name] += 1
        attempt = self._attempts[submission.job_name]
        if attempt > limit:
            return ""
        return f"job failed: attempt {attempt} of the first {limit} set to fail by label '{FAIL_ATTEMPTS_LABEL}'"

    def _status(self, request: Request) -> Response:
        job_id = request.query.get("job_id", "")
        if not job_id:
            return error_response(400, "query parameter 'job_id' is required")
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return error_response(404, f"unknown job id: {job_id}")
        return json_response(200, {"job": job.status(self._clock())})

    def _record(self, request: Request) -> JsonObject:
        """Record `request` on arrival; its ``status`` is filled in once answered."""
        body: object = None
        if request.method == "POST":
            try:
                body = json.loads(request.body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = None
        record = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "body": body,
            "auth": _recorded_auth(request.authorization),
            "time": time.time(),
            "status": None,
        }
        with self._lock:
            self._records.append(record)
        return record


def _not_allowed(method: str) -> Response:
    return error_response(405, f"method not allowed; use {method}", Allow=method)


# --- HTTP plumbing ------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silenced: the app logs one line per request."""


def _wsgi_app(state: RunnerState) -> WSGIApplication:
    """Turns HTTP requests into :class:`Request` objects and the answers into HTTP."""

    @HttpRequest.application
    def app(http: HttpRequest) -> HttpResponse:
        http.max_content_length = MAX_BODY_BYTES
        headers = tuple(http.headers.items())
        request = Request(http.method, http.path, dict(http.args.items()), http.get_data(),
                          http.headers.get("Authorization"), headers)
        response = state.handle(request)
        log.info("%s %s %d", http.method, http.path, response.status)
        return HttpResponse(response.body, response.status, list(response.headers), content_type=response.content_type)

    return app


class MockTaskRunner:
    """An in-process mock Task Runner serving on a daemon thread.

    State (jobs, records, faults) lives in the object, not the thread: the test hooks work
    before :meth:`start` and after :meth:`stop`. Use as a context manager to start and stop.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        duration: float = 3.0,
        token: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        """`clock`: seconds, never going back, from which job states and intervals are derived.

        Raises :class:`ValueError` for a negative or non-finite duration or an empty token.
        """
        self.host = host
        self._requested_port = port
        self._state = RunnerState(duration, token, clock)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.url if self._server else "stopped"
        return f"MockTaskRunner({where})"

    @property
    def port(self) -> int:
        """The bound port; :class:`RuntimeError` until started."""
        if self._server is None:
            raise RuntimeError("mock Task Runner is not started")
        return int(self._server.port)

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server; :class:`RuntimeError` until started."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> MockTaskRunner:
        """Bind (port 0 picks a free port) and serve on a daemon thread; returns self.

        The server accepts connections as soon as this returns. Raises :class:`RuntimeError`
        if already started and :class:`OSError` if the address cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("mock Task Runner is already started")
        self._state.stopping.clear()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.create_server((self.host, self._requested_port), family=family) as listening:
            server = make_server(self.host, listening.getsockname()[1], _wsgi_app(self._state), threaded=True,
                                 request_handler=_QuietHandler, fd=listening.fileno())
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="mock-task-runner", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; does nothing if not started."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        self._state.stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def requests(self) -> list[JsonObject]:
        """Copies of the records of every ``/job`` and ``/jobstatus`` request, oldest first.

        Each record has ``method``, ``path``, ``query`` (first value per key), ``body``
        (decoded JSON of a POST, else ``None``), ``auth`` (the header's scheme and the
        token's :func:`fingerprint`, or ``None``), ``time`` (epoch seconds of arrival) and
        ``status`` (``None`` until answered).
        """
        return self._state.records()

    def submissions(self) -> list[str]:
        """The ``job_name`` of every accepted (200) submission, in the order received."""
        return self._state.submissions()

    def in_flight(self) -> dict[str, int]:
        """``{"now": n, "max": m}``: jobs in flight now, and the most in flight at any instant
        since the last reset. A job is in flight from its submission until its state is
        terminal; one ending exactly when another starts does not overlap it, and one that
        ends at once (``mock_final_state`` or a zero duration) is never in flight."""
        return self._state.in_flight()

    def inject_fault(
        self,
        path: str,
        status: int,
        count: int = 1,
        body: str = "",
        *,
        delay: float | None = 0.0,
        accept: bool = False,
        retry_after: str = "",
        echo_headers: bool = False,
    ) -> None:
        """The next `count` requests to `path` answer `status` with `body`, before auth.

        An empty `body` answers a JSON error instead (a garbled 200: `status` 200 and a
        `body` that is not the protocol's JSON). The answer waits `delay` seconds (None:
        until the mock stops: a hang). `accept`: the request is handled as usual (a job is
        accepted) and only the answer is late; `status` and `body` are not used.
        `retry_after`: the value of a ``Retry-After`` header. `echo_headers`: the body is
        JSON echoing the request's headers, ``Authorization`` included, like a careless
        server. Raises :class:`ValueError` for a path other than ``/job`` or
        ``/jobstatus``, a status outside 200..599, a count < 1 or a negative delay,
        :class:`TypeError` for a body that is not a string.
        """
        self._state.inject_fault(path, status, count, body, delay=delay, accept=accept, retry_after=retry_after,
                                 echo_headers=echo_headers)

    def reset(self) -> None:
        """Forget every job, record, submission, counted attempt and fault."""
        self._state.reset()
