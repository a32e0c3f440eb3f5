"""The Task Runner protocol over HTTP: `POST {url}/job` with the task as JSON, and
`GET {url}/jobstatus?job_id=ID`, each answering 200 `{"job": {"jobId", "state", "message"}}`.

Retries are urllib3's, each wait capped at `backoff_max` and logged at INFO (docs/design.md:
Failure behaviour). A `POST /job` is sent again only when the Task Runner certainly did
not act on it (no connection, 429, 503); any other failure leaves the outcome unknown:
SubmissionOutcomeUnknown, never a second POST. A `GET /jobstatus` is retried within
`status_deadline` seconds in total, then TaskRunnerUnavailable. No exception or log
record holds the bearer token, and answer bodies are cut to a short excerpt.

Given the runtime's edge settings, the client sends nothing (and no token) to a URL whose
origin they do not allow, whoever asked: OriginRefused. An answer is read up to
MAX_ANSWER_BYTES; a longer one, or a job id or state past its cap, is a malformed answer.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from ... import logs
from ...errors import (
    AuthError,
    OriginRefused,
    StatusRefused,
    SubmissionOutcomeUnknown,
    SubmissionRefused,
    TaskRunnerError,
    TaskRunnerUnavailable,
)
from ...model.dag import Task
from ...model.records import Job
from ...model.text import excerpt, redact
from ...model.urls import origin_of
from ...settings import EdgeSettings
from .auth import TokenSource, check_token

log = logging.getLogger("workflow.taskrunner")
BODY_LIMIT = 200
POST_RETRY_STATUSES = frozenset({429, 503})
GET_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
CERTAIN_REFUSALS = frozenset({501, 503, 429})
"""Answers after which the Task Runner certainly did not start a job."""
MAX_ANSWER_BYTES = 65_536
MAX_JOB_ID_CHARS = 1_024
MAX_JOB_STATE_CHARS = 64


class _Retry(Retry):
    """urllib3's Retry with an overall deadline and capped waits, each logged in our words."""

    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})
    deadline: float = math.inf
    sleeper: Callable[[float], None] = staticmethod(time.sleep)
    run_id: str = ""

    def new(self, **kw: Any) -> _Retry:
        retry = super().new(**kw)
        retry.deadline, retry.sleeper, retry.run_id = self.deadline, self.sleeper, self.run_id
        return retry

    def increment(self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any) -> _Retry:
        if time.monotonic() >= self.deadline:
            pool: Any = kwargs.get("_pool")
            raise MaxRetryError(pool, url or "", kwargs.get("error") or _DeadlinePassed("deadline passed"))
        return super().increment(method, url, *args, **kwargs)

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        wait = self.get_backoff_time()
        if response is not None:
            try:
                wait = self.get_retry_after(response) or wait
            except HTTPError:
                pass  # an unparseable Retry-After: the backoff applies
        wait = max(0.0, min(wait, self.backoff_max, self.deadline - time.monotonic()))
        attempt = len(self.history) + 1
        log.info("%s; retrying in %.1f s (attempt %d of %d)", self._last_failure(), wait, attempt,
                 attempt + int(self.total or 0), extra={"run_id": self.run_id})
        self.sleeper(wait)

    def _last_failure(self) -> str:
        last = self.history[-1]
        what = f"{last.method} {(last.url or '').split('?')[0]}"
        if last.status:
            return f"Task Runner answered {last.status} to {what}"
        return f"{_why(last.error)} on {what}" if last.error else f"no answer to {what}"


class _DeadlinePassed(HTTPError):
    """The time allowed for one status request, retries included, is over."""


class _NotSent(HTTPError):
    """The HTTP layer refused to send the request (nothing reached the Task Runner)."""


class _DeadlineTimeout(Timeout):
    """Per-attempt timeouts that never reach past `deadline` (urllib3 clones it per attempt)."""

    def __init__(self, connect: float, read: float, deadline: float) -> None:
        super().__init__(connect=connect, read=read)
        self._deadline = deadline

    def clone(self) -> Timeout:
        left = max(self._deadline - time.monotonic(), 0.001)
        return Timeout(connect=self._connect, read=self._read, total=left)


class HttpTaskRunner:
    """Thread-safe enough for a worker pool: one connection pool, stateless otherwise.

    `retries`: re-sends after the first try; `backoff`: the backoff factor and jitter;
    `backoff_max`: the longest wait between two tries, a `Retry-After` included;
    `timeout`: (connect, read) seconds of one try; `sleep`: how waits are spent;
    `edge`: the origins requests may go to (None: any, for a URL the user gave the CLI).
    """

    def __init__(
        self,
        tokens: TokenSource,
        retries: int = 5,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        timeout: tuple[float, float] = (5.0, 30.0),
        status_deadline: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        edge: EdgeSettings | None = None,
    ) -> None:
        self._tokens = tokens
        self._edge = edge
        self._timeout = timeout
        self._status_deadline = status_deadline
        self._retry: dict[str, Any] = dict(total=retries, backoff_factor=backoff, backoff_max=backoff_max,
                           backoff_jitter=backoff, redirect=False, raise_on_status=False,
                           allowed_methods=frozenset({"GET", "POST"}))
        self._sleep = sleep
        self._pool = urllib3.PoolManager(maxsize=32)
        logs.quiet_library_retries()

    def submit(self, url: str, task: Task, auth: str = "", run_id: str = "") -> Job:
        token = self._token(url, auth, run_id, SubmissionRefused)
        retry = self._retries(math.inf, run_id, read=False, other=0, status_forcelist=POST_RETRY_STATUSES)
        timeout = Timeout(connect=self._timeout[0], read=self._timeout[1])
        try:
            resp = self._send("POST", url, "/job", token, retry, timeout, json=task.to_request())
        except (MaxRetryError, HTTPError) as exc:
            reason = exc.reason if isinstance(exc, MaxRetryError) else exc
            why = redact(_why(reason), [token])
            if isinstance(reason, (ConnectTimeoutError, LocationValueError, _NotSent)):
                raise SubmissionRefused(f"could not reach the Task Runner at {origin_of(url)}: {why}") from None
            raise SubmissionOutcomeUnknown(_unknown(url, task, why)) from None
        if resp.status == 200:
            try:
                return _job(resp)
            except ValueError as exc:
                raise SubmissionOutcomeUnknown(_unknown(url, task, redact(str(exc), [token]))) from None
        body = _body(resp, token)
        if resp.status >= 500 and resp.status not in CERTAIN_REFUSALS:
            raise SubmissionOutcomeUnknown(_unknown(url, task, f"HTTP {resp.status}: {body}"))
        raise SubmissionRefused(self._refusal(url, auth, resp.status, body))

    def status(self, url: str, job_id: str, auth: str = "", run_id: str = "") -> Job:
        token = self._token(url, auth, run_id, TaskRunnerUnavailable)
        deadline = time.monotonic() + self._status_deadline
        retry = self._retries(deadline, run_id, status_forcelist=GET_RETRY_STATUSES)
        timeout = _DeadlineTimeout(self._timeout[0], self._timeout[1], deadline)
        try:
            resp = self._send("GET", url, "/jobstatus", token, retry, timeout, fields={"job_id": job_id})
        except (MaxRetryError, HTTPError) as exc:
            reason = exc.reason if isinstance(exc, MaxRetryError) else exc
            why = redact(_why(reason), [token])
            raise TaskRunnerUnavailable(
                f"no status of job {job_id} from the Task Runner at {origin_of(url)} within "
                f"{self._status_deadline:g} s: {why}") from None
        body = _body(resp, token)
        if resp.status in GET_RETRY_STATUSES:
            raise TaskRunnerUnavailable(f"status of job {job_id}: HTTP {resp.status}: {body}")
        if resp.status != 200:
            raise StatusRefused(f"status of job {job_id}: {self._refusal(url, auth, resp.status, body)}")
        try:
            return _job(resp)
        except ValueError as exc:
            raise TaskRunnerUnavailable(redact(str(exc), [token])) from None

    def _token(self, url: str, auth: str, run_id: str, error: type[TaskRunnerError]) -> str:
        """The token for `url`, once its origin is known to be allowed."""
        problems = self._edge.tr_url_problems(url, "the Task Runner URL") if self._edge else []
        if problems:
            raise OriginRefused("; ".join(problems))
        base = url.rstrip("/")
        try:
            return check_token(self._tokens.token(base, auth, run_id), self._tokens.describe(base, auth))
        except AuthError as exc:
            raise error(f"no usable token for the Task Runner: {exc}") from exc

    def _retries(self, deadline: float, run_id: str, **kwargs: Any) -> _Retry:
        retry = _Retry(**self._retry, **kwargs)
        retry.deadline, retry.sleeper, retry.run_id = deadline, self._sleep, run_id
        return retry

    def _send(self, method: str, url: str, path: str, token: str, retry: Retry, timeout: Timeout,
              **kwargs: Any) -> Answer:
        headers = {"Authorization": f"Bearer {token}"}
        try:
            resp = self._pool.request(method, url.rstrip("/") + path, headers=headers, retries=retry,
                                      timeout=timeout, preload_content=False, **kwargs)
        except ValueError as exc:  # a request the HTTP layer refused to send
            raise _NotSent(redact(str(exc), [token])) from None
        try:
            data = resp.read(MAX_ANSWER_BYTES + 1)
        except BaseException:
            resp.close()
            raise
        if len(data) > MAX_ANSWER_BYTES:
            resp.close()  # the rest is never read: this connection is not reused
        else:
            resp.release_conn()
        return Answer(resp.status, data)

    def _refusal(self, url: str, auth: str, status: int, body: str) -> str:
        if status not in (401, 403):
            return f"HTTP {status}: {body}"
        what = "is not valid there (expired, or meant for another audience?)" if status == 401 else \
            "is not allowed to call it (on Cloud Run: roles/run.invoker)"
        who = self._tokens.describe(url.rstrip("/"), auth)
        return (f"the Task Runner at {origin_of(url)} refused the request (HTTP {status}: {body}); "
                f"the credential used, {who}, {what}")


def _unknown(url: str, task: Task, cause: str) -> str:
    return (f"the outcome of submitting job {task.name!r} is unknown ({cause}): a job may be running at the "
            f"Task Runner {origin_of(url)}; check its jobs named {task.name!r} before running this step again "
            "(the submission was not sent twice)")


def _why(error: Exception | None) -> str:
    if isinstance(error, NewConnectionError):
        return "connection refused or host unreachable"
    if isinstance(error, ConnectTimeoutError):
        return "connection timed out"
    if isinstance(error, ReadTimeoutError):
        return "no answer in time (read timeout)"
    if isinstance(error, ProtocolError):
        return "connection dropped before an answer"
    if isinstance(error, _DeadlinePassed):
        return "time allowed used up"
    return excerpt(str(error), BODY_LIMIT)


@dataclass(frozen=True)
class Answer:
    """An answer's status and its body, read up to MAX_ANSWER_BYTES (and one byte more)."""

    status: int
    data: bytes


def _body(resp: Answer, token: str) -> str:
    text = resp.data[:MAX_ANSWER_BYTES].decode("utf-8", "replace").strip()
    return excerpt(redact(text, [token]), BODY_LIMIT)


def _job(resp: Answer) -> Job:
    """The job in a 200 answer; ValueError with an excerpt of the body when it has none,
    when it is longer than MAX_ANSWER_BYTES, or when its id or state passes its cap."""
    try:
        if len(resp.data) > MAX_ANSWER_BYTES:
            raise ValueError(f"over {MAX_ANSWER_BYTES:,} bytes")
        job = json.loads(resp.data)["job"]
        job_id, state = str(job["jobId"]), str(job["state"])
        if not 0 < len(job_id) <= MAX_JOB_ID_CHARS or len(state) > MAX_JOB_STATE_CHARS:
            raise ValueError(f"a job id of 1 to {MAX_JOB_ID_CHARS:,} characters and a state of at most "
                             f"{MAX_JOB_STATE_CHARS} are expected")
        return Job(job_id, state, excerpt(str(job.get("message") or "")))
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        text = resp.data[:BODY_LIMIT * 2].decode("utf-8", "replace")
        raise ValueError(f"malformed Task Runner answer (HTTP 200): {excerpt(text, BODY_LIMIT)!r}") from exc
