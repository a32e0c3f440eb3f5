"""The Task Runner protocol over HTTP.

`POST {url}/job` with the task as JSON answers 200 `{"job": {"jobId", "state", "message"}}`;
`GET {url}/jobstatus?job_id=ID` answers the same shape. Connection errors, timeouts, 429
and 5xx are retried by urllib3 with capped exponential backoff and jitter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ...errors import (
    AuthError,
    StatusRefused,
    SubmissionRefused,
    TaskRunnerError,
    TaskRunnerUnavailable,
)
from ...model.dag import Task
from ...model.records import Job
from .auth import TokenSource

log = logging.getLogger("workflow.taskrunner")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class HttpTaskRunner:
    """Thread-safe enough for a worker pool: one pooled session, stateless otherwise."""

    def __init__(
        self,
        tokens: TokenSource,
        retries: int = 5,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        timeout: tuple[float, float] = (5.0, 30.0),
        waiting: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        """`waiting`: entered around each network exchange (the embedded bus lets other
        handlers run meanwhile)."""
        self._tokens = tokens
        self._timeout = timeout
        self._waiting = waiting
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),
            backoff_factor=backoff,
            backoff_max=backoff_max,
            backoff_jitter=backoff,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        self._session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=32)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def submit(self, url: str, task: Task, auth: str = "", run_id: str = "") -> Job:
        try:
            resp = self._request("POST", url, "/job", auth, run_id, json=task.to_request())
        except (requests.RequestException, AuthError) as exc:
            raise SubmissionRefused(f"could not reach the Task Runner: {exc}") from exc
        if resp.status_code != 200:
            raise SubmissionRefused(
                f"HTTP {resp.status_code}: {_body(resp)}", resp.status_code, _body(resp)
            )
        return _job(resp, SubmissionRefused)

    def status(self, url: str, job_id: str, auth: str = "", run_id: str = "") -> Job:
        try:
            resp = self._request("GET", url, "/jobstatus", auth, run_id, params={"job_id": job_id})
        except (requests.RequestException, AuthError) as exc:
            raise TaskRunnerUnavailable(f"could not reach the Task Runner: {exc}") from exc
        if resp.status_code in RETRY_STATUSES:
            raise TaskRunnerUnavailable(f"HTTP {resp.status_code}: {_body(resp)}")
        if resp.status_code != 200:
            raise StatusRefused(f"status of job {job_id}: HTTP {resp.status_code}: {_body(resp)}")
        return _job(resp, TaskRunnerUnavailable)

    def _request(self, method: str, url: str, path: str, auth: str, run_id: str, **kwargs: Any) -> requests.Response:
        base = url.rstrip("/")
        with self._waiting():
            headers = {"Authorization": f"Bearer {self._tokens.token(base, auth, run_id)}"}
            return self._session.request(method, base + path, headers=headers, timeout=self._timeout, **kwargs)


def _body(resp: requests.Response) -> str:
    return resp.text[:1000].strip()


def _job(resp: requests.Response, error: type[TaskRunnerError]) -> Job:
    try:
        job = resp.json()["job"]
        return Job(str(job["jobId"]), str(job["state"]), str(job.get("message") or ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise error(f"malformed Task Runner answer: {_body(resp)!r}") from exc
