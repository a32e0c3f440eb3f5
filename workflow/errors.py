"""The project's own exceptions. Adapters translate third-party errors into these."""

from __future__ import annotations

from dataclasses import dataclass


class WorkflowError(Exception):
    """Base of every error this package raises on purpose."""


class InputError(WorkflowError):
    """Bad input from a user (DAG file, flag, environment variable): exit code 2, never retried."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a DAG file; `where` names the place (`steps[2] (id 'train')`, `line 4`)."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class DagInvalid(InputError):
    """A DAG file was refused; `problems` lists every problem found, not only the first."""

    def __init__(self, origin: str, problems: list[Problem], what: str = "invalid DAG") -> None:
        self.origin = origin
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{origin}: {what} ({len(self.problems)} problem(s)):\n{lines}")


class DagNotFound(InputError):
    """The DAG path does not exist or cannot be read."""


class TransientError(WorkflowError):
    """A failure worth retrying later (network, 5xx, contention): the message is redelivered."""


class PoisonMessage(WorkflowError):
    """A message that can never be handled (malformed, unknown run): logged and acknowledged."""


class NotFound(PoisonMessage):
    """A message names a run or step the store does not have."""


class TaskRunnerError(WorkflowError):
    """The Task Runner could not be used."""


class SubmissionRefused(TaskRunnerError):
    """The Task Runner refused a job (4xx, or 5xx/429/network after all retries). Fails the step."""


class SubmissionOutcomeUnknown(SubmissionRefused):
    """A submission was sent but no usable answer came back (read timeout, connection dropped,
    500/502/504, an unreadable 200): a job may be running at the Task Runner. Never re-sent;
    fails the step with a message saying what to check."""


class StatusRefused(TaskRunnerError):
    """A status request got a 4xx: the job cannot be followed. Fails the step."""


class OriginRefused(SubmissionRefused, StatusRefused):
    """The Task Runner URL's origin is not one this runtime may send its token to: nothing
    was sent. A submission fails its step; a check naming another URL than its step's is poison."""


class TaskRunnerUnavailable(TaskRunnerError, TransientError):
    """A status request failed after its retries: retry the check later, do not fail the step."""


class AuthError(InputError):
    """No bearer token could be obtained for the Task Runner; the message says how to get one."""
