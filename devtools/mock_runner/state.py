"""What one mock Task Runner remembers: its jobs, the requests it received, the faults to come.

With a token configured, every ``/job`` and ``/jobstatus`` request must carry
``Authorization: Bearer <token>``. The token is never logged nor recorded: a record keeps
the scheme and a short hash (:func:`fingerprint`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any

from .faults import FAULT_PATHS, Fault, check_fault
from .jobs import FAIL_ATTEMPTS_LABEL, Job, JsonObject, Submission, check_duration, make_job_id, max_overlap

Clock = Callable[[], float]


def fingerprint(token: str) -> str:
    """``sha256:`` and the first 12 hex digits of the token's SHA-256: how records name it."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _recorded_auth(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, credentials = header.partition(" ")
    return f"{scheme} {fingerprint(credentials.strip())}"


class RunnerState:
    """Jobs, records and faults of one mock; every public method is thread-safe."""

    def __init__(self, duration: float, token: str | None, clock: Clock = time.monotonic) -> None:
        if token is not None and not token:
            raise ValueError("token must be non-empty when given")
        self.duration = check_duration(duration)
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
        check_fault(path, fault)
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

    # --- protocol ---------------------------------------------------------------------

    def take_fault(self, path: str) -> Fault | None:
        """The fault the next request to `path` gets (using one of its `remaining`), or None."""
        with self._lock:
            queue = self._faults[path]
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            return fault

    def authorized(self, header: str | None) -> bool:
        """True without a token, else when `header` is ``Bearer <token>`` (compared in constant time)."""
        if self._token is None:
            return True
        scheme, _, credentials = (header or "").partition(" ")
        expected = self._token.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), expected)

    def submit(self, submission: Submission) -> JsonObject:
        """Accept `submission` as a new job; return the ``job`` object of the answer."""
        duration = self.duration if submission.duration is None else submission.duration
        with self._lock:
            self._counter += 1
            job_id = make_job_id(submission.job_name, self._counter)
            failure = self._count_attempt(submission)
            final = "FAILED" if failure and submission.final else submission.final
            job = Job(job_id, submission.image_uri, self._clock(), duration, final, failure)
            self._jobs[job.job_id] = job
            self._submissions.append(submission.job_name)
        return job.accepted()

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

    def status(self, job_id: str) -> JsonObject | None:
        """The ``job`` object of a status answer for `job_id` now, or None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
        return None if job is None else job.status(self._clock())

    def record(self, method: str, path: str, query: Mapping[str, str], body: bytes, auth: str | None) -> JsonObject:
        """Record a protocol request on arrival; :meth:`answered` fills in its ``status``."""
        decoded: object = None
        if method == "POST":
            try:
                decoded = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                decoded = None
        record = {
            "method": method,
            "path": path,
            "query": dict(query),
            "body": decoded,
            "auth": _recorded_auth(auth),
            "time": time.time(),
            "status": None,
        }
        with self._lock:
            self._records.append(record)
        return record

    def answered(self, record: JsonObject, status: int) -> None:
        """Set the ``status`` of a record made by :meth:`record`."""
        with self._lock:
            record["status"] = status
