"""The HTTP Task Runner client against the bundled mock, over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workflow.adapters.http.auth import StaticToken
from workflow.adapters.http.task_runner import HttpTaskRunner
from workflow.errors import StatusRefused, SubmissionRefused, TaskRunnerUnavailable
from workflow.mock_runner import MockTaskRunner, fingerprint
from workflow.model.dag import Task

TASK = Task("train", "gcr.io/p/train:1", {"epochs": "3"}, scale_tier="BASIC", labels={"team": "ml"})


@pytest.fixture
def mock() -> Iterator[MockTaskRunner]:
    with MockTaskRunner(duration=0, token="s3cret") as m:
        yield m


def client(token: str = "s3cret") -> HttpTaskRunner:
    return HttpTaskRunner(StaticToken(token), retries=3, backoff=0.01, backoff_max=0.05)


def test_submit_sends_the_seed_body_and_the_bearer_token(mock: MockTaskRunner) -> None:
    job = client().submit(mock.url, TASK)
    assert job.state == "QUEUED" and job.job_id
    [req] = mock.requests()
    assert req["auth"] == "Bearer " + fingerprint("s3cret")
    assert req["body"] == {"job_name": "train", "imageUri": "gcr.io/p/train:1", "args": {"epochs": "3"},
                           "scaleTier": "BASIC", "labels": {"team": "ml"}}
    assert client().status(mock.url + "/", job.job_id).state == "SUCCEEDED"


def test_token_none_is_sent_as_is(mock: MockTaskRunner) -> None:
    with pytest.raises(SubmissionRefused) as err:
        client("none").submit(mock.url, TASK)
    assert err.value.status == 401 and "bearer token" in str(err.value)
    assert mock.requests()[0]["auth"] == "Bearer " + fingerprint("none")


def test_503_is_retried(mock: MockTaskRunner) -> None:
    mock.inject_fault("/job", 503, count=2)
    job = client().submit(mock.url, TASK)
    assert job.job_id and mock.submissions() == ["train"]
    assert [r["status"] for r in mock.requests()] == [503, 503, 200]


def test_503_after_all_retries_refuses_the_submission(mock: MockTaskRunner) -> None:
    mock.inject_fault("/job", 503, count=10, body="overloaded")
    with pytest.raises(SubmissionRefused) as err:
        client().submit(mock.url, TASK)
    assert "503" in str(err.value) and "overloaded" in str(err.value)
    assert len(mock.requests()) == 4  # the first try and 3 retries


def test_4xx_on_submission_is_not_retried_and_carries_the_body(mock: MockTaskRunner) -> None:
    with pytest.raises(SubmissionRefused) as err:
        client().submit(mock.url, Task("x", ""))
    assert err.value.status == 400 and "imageUri" in err.value.body
    assert len(mock.requests()) == 1


def test_status_errors(mock: MockTaskRunner) -> None:
    with pytest.raises(StatusRefused):
        client().status(mock.url, "no-such-job")
    mock.inject_fault("/jobstatus", 503, count=10)
    with pytest.raises(TaskRunnerUnavailable):
        client().status(mock.url, "whatever")


def test_unreachable_runner_refuses_submission() -> None:
    with MockTaskRunner() as m:
        url = m.url
    with pytest.raises(SubmissionRefused) as err:
        client().submit(url, TASK)
    assert "could not reach" in str(err.value)
