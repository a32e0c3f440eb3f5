"""The embedded runtime's Task Runner client: each network exchange inside `waiting`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from devtools.mock_runner import MockTaskRunner
from workflow.adapters.embedded.waiting_runner import WaitingTaskRunner
from workflow.adapters.http.auth import StaticToken
from workflow.errors import SubmissionRefused
from workflow.model.dag import Task


def test_each_request_is_sent_inside_waiting() -> None:
    seen: list[str] = []

    @contextmanager
    def waiting() -> Iterator[None]:
        seen.append("enter")
        yield
        seen.append("exit")

    with MockTaskRunner(duration=0) as mock:
        runner = WaitingTaskRunner(StaticToken("none"), waiting, retries=0)
        job = runner.submit(mock.url, Task("a", "img/a"))
        assert seen == ["enter", "exit"]
        assert runner.status(mock.url, job.job_id).job_id == job.job_id
        assert seen == ["enter", "exit"] * 2
        mock.inject_fault("/job", 400)
        with pytest.raises(SubmissionRefused):
            runner.submit(mock.url, Task("b", "img/b"))
    assert seen == ["enter", "exit"] * 3
