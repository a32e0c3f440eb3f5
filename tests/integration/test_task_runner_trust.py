"""What the Task Runner client refuses whoever asks it: an origin the runtime may not send
its token to, an answer too long to read, a job id or state past its cap; and a token the
Task Runner echoes in an escaped form stays out of every error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.mock_runner import MockTaskRunner
from workflow.adapters.http.auth import StaticToken
from workflow.adapters.http.task_runner import MAX_ANSWER_BYTES, HttpTaskRunner
from workflow.errors import OriginRefused, SubmissionOutcomeUnknown, SubmissionRefused, TaskRunnerUnavailable
from workflow.model.dag import Task
from workflow.model.urls import origin_of
from workflow.settings import EdgeSettings

TASK = Task("train", "gcr.io/p/train:1")
TOKEN = "tok/with+slash=="


@pytest.fixture
def allowed() -> Iterator[MockTaskRunner]:
    with MockTaskRunner(duration=0, token=TOKEN) as m:
        yield m


@pytest.fixture
def other() -> Iterator[MockTaskRunner]:
    with MockTaskRunner(duration=0) as m:
        yield m


def client(allowed: MockTaskRunner, **kwargs: Any) -> HttpTaskRunner:
    edge = EdgeSettings(allowed_tr_origins=frozenset({origin_of(allowed.url)}), allow_http_tr=True)
    return HttpTaskRunner(StaticToken(TOKEN), retries=1, backoff=0.01, backoff_max=0.02, edge=edge, **kwargs)


def test_nothing_is_sent_to_an_origin_the_runtime_does_not_allow(allowed: MockTaskRunner,
                                                                  other: MockTaskRunner) -> None:
    runner = client(allowed)
    with pytest.raises(OriginRefused, match="is not allowed"):
        runner.status(other.url, "job-1")
    with pytest.raises(SubmissionRefused, match="is not allowed") as err:
        runner.submit(other.url, TASK)
    assert not isinstance(err.value, SubmissionOutcomeUnknown)
    assert other.requests() == []  # no request, so no token, reached the other server
    job = runner.submit(allowed.url, TASK)
    assert runner.status(allowed.url, job.job_id).state == "SUCCEEDED"


def test_an_answer_longer_than_the_cap_is_malformed(allowed: MockTaskRunner) -> None:
    padded = json.dumps({"job": {"jobId": "j-1", "state": "RUNNING", "message": "x" * MAX_ANSWER_BYTES}})
    allowed.inject_fault("/jobstatus", 200, body=padded)
    with pytest.raises(TaskRunnerUnavailable, match="malformed Task Runner answer") as err:
        client(allowed).status(allowed.url, "j-1")
    assert len(str(err.value)) < 1000


@pytest.mark.parametrize("job", [{"jobId": "j" * 5000, "state": "QUEUED"}, {"jobId": "j-1", "state": "Q" * 65},
                                 {"jobId": "", "state": "QUEUED"}])
def test_a_job_id_or_state_past_its_cap_is_malformed(allowed: MockTaskRunner, job: dict[str, str]) -> None:
    allowed.inject_fault("/job", 200, body=json.dumps({"job": job}))
    with pytest.raises(SubmissionOutcomeUnknown, match="malformed Task Runner answer") as err:
        client(allowed).submit(allowed.url, TASK)
    assert "j" * 1100 not in str(err.value)


@pytest.mark.parametrize("echo", [json.dumps(TOKEN)[1:-1], json.dumps(TOKEN)[1:-1].replace("/", "\\/"),
                                  "tok%2Fwith%2Bslash%3D%3D", json.dumps(TOKEN, ensure_ascii=False)])
def test_a_token_echoed_escaped_is_redacted(allowed: MockTaskRunner, echo: str) -> None:
    allowed.inject_fault("/jobstatus", 401, body=f'{{"error": "bad token {echo}"}}')
    with pytest.raises(Exception) as err:
        client(allowed).status(allowed.url, "j-1")
    shown = str(err.value)
    assert "<redacted>" in shown
    for form in (TOKEN, "with+slash", "with%2Bslash", "with\\/slash"):
        assert form not in shown
