"""TaskRunner: the service that runs one job per request and is polled for its state."""

from __future__ import annotations

from typing import Protocol

from ..model.dag import Task
from ..model.records import Job


class TaskRunner(Protocol):
    def submit(self, url: str, task: Task, auth: str = "", run_id: str = "") -> Job:
        """Submit a job. Raises SubmissionRefused (4xx, or retries exhausted). `auth` is a
        sealed token for the run `run_id`, or "" for the runtime's own credentials."""

    def status(self, url: str, job_id: str, auth: str = "", run_id: str = "") -> Job:
        """A job's current state. Raises StatusRefused (4xx), or TaskRunnerUnavailable
        when it cannot be read now."""
