"""The HTTP Task Runner client against the bundled mock, over real HTTP on loopback."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.mock_runner import MockTaskRunner, fingerprint
from support import SECRET, free_port
from workflow.adapters.http.auth import SealedTokens, StaticToken
from workflow.adapters.http.task_runner import HttpTaskRunner
from workflow.errors import StatusRefused, SubmissionOutcomeUnknown, SubmissionRefused, TaskRunnerUnavailable
from workflow.model.dag import Task

TASK = Task("train", "gcr.io/p/train:1", {"epochs": "3"}, scale_tier="BASIC", labels={"team": "ml"})


@pytest.fixture
def mock() -> Iterator[MockTaskRunner]:
    with MockTaskRunner(duration=0, token="s3cret") as m:
        yield m


def client(token: str = "s3cret", **kwargs: Any) -> HttpTaskRunner:
    options: dict[str, Any] = {"retries": 3, "backoff": 0.01, "backoff_max": 0.05, **kwargs}
    return HttpTaskRunner(StaticToken(token), **options)


class Sleeps(list[float]):
    """Records each wait instead of sleeping; `then` runs before the n-th wait returns."""

    def __init__(self, then: dict[int, Callable[[], object]] | None = None) -> None:
        super().__init__()
        self._then = then or {}

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if len(self) in self._then:
            self._then[len(self)]()


def posts(mock: MockTaskRunner) -> int:
    return sum(r["method"] == "POST" for r in mock.requests())


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
    assert "HTTP 401" in str(err.value) and "bearer token" in str(err.value)
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
    assert "HTTP 400" in str(err.value) and "imageUri" in str(err.value)
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


# --- submissions are sent twice only when the runner certainly did not act -------------------


def test_read_timeout_on_submission_is_not_resent_and_says_a_job_may_run(mock: MockTaskRunner) -> None:
    mock.inject_fault("/job", 200, accept=True, delay=None)
    with pytest.raises(SubmissionOutcomeUnknown) as err:
        client(timeout=(5.0, 0.3)).submit(mock.url, TASK)
    message = str(err.value)
    assert "outcome of submitting job 'train' is unknown" in message and "may be running" in message
    assert "read timeout" in message and mock.url in message
    assert posts(mock) == 1 and mock.submissions() == ["train"]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_on_submission_is_not_resent(mock: MockTaskRunner, status: int) -> None:
    mock.inject_fault("/job", status, count=5, body="gateway trouble")
    with pytest.raises(SubmissionOutcomeUnknown) as err:
        client().submit(mock.url, TASK)
    assert f"HTTP {status}: gateway trouble" in str(err.value)
    assert posts(mock) == 1


def test_unreadable_200_on_submission_is_an_unknown_outcome(mock: MockTaskRunner) -> None:
    mock.inject_fault("/job", 200, body="<html>" + "x" * 2_000_000)
    with pytest.raises(SubmissionOutcomeUnknown) as err:
        client().submit(mock.url, TASK)
    assert "malformed Task Runner answer" in str(err.value) and len(str(err.value)) < 1000
    assert posts(mock) == 1


def test_429_and_503_are_resent_waits_capped_and_logged(mock: MockTaskRunner, caplog: pytest.LogCaptureFixture) -> None:
    mock.inject_fault("/job", 503, retry_after="3600")
    mock.inject_fault("/job", 429, retry_after="1")
    sleeps = Sleeps()
    with caplog.at_level(logging.INFO, logger="workflow.taskrunner"):
        job = client(backoff_max=2.0, sleep=sleeps).submit(mock.url, TASK)
    assert job.job_id and posts(mock) == 3 and mock.submissions() == ["train"]
    assert sleeps == [2.0, 1.0]  # Retry-After 3600 capped at backoff_max; 1 obeyed
    messages = [r.getMessage() for r in caplog.records if r.name == "workflow.taskrunner"]
    assert messages == ["Task Runner answered 503 to POST /job; retrying in 2.0 s (attempt 2 of 4)",
                        "Task Runner answered 429 to POST /job; retrying in 1.0 s (attempt 3 of 4)"]


def test_refused_connection_is_retried_until_the_runner_is_up(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    late = MockTaskRunner(port=port, duration=0, token="s3cret")
    sleeps = Sleeps(then={2: late.start})
    try:
        with caplog.at_level(logging.INFO):
            job = client(sleep=sleeps).submit(f"http://127.0.0.1:{port}", TASK)
        assert job.job_id and posts(late) == 1 and len(sleeps) == 2
    finally:
        late.stop()
    waits = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert waits and all(w.startswith("connection refused or host unreachable on POST /job") for w in waits)
    assert not [r for r in caplog.records if r.name.startswith("urllib3")]
    assert "Retrying (Retry(" not in capfd.readouterr().err


def test_unreachable_runner_refuses_after_all_retries() -> None:
    sleeps = Sleeps()
    with pytest.raises(SubmissionRefused) as err:
        client(sleep=sleeps).submit(f"http://127.0.0.1:{free_port()}", TASK)
    assert not isinstance(err.value, SubmissionOutcomeUnknown) and len(sleeps) == 3
    assert "could not reach the Task Runner" in str(err.value)


# --- status requests: retried, within a deadline --------------------------------------------


def test_status_is_retried_on_502_and_timeouts(mock: MockTaskRunner) -> None:
    job = client().submit(mock.url, TASK)
    mock.inject_fault("/jobstatus", 502, count=2)
    mock.inject_fault("/jobstatus", 200, accept=True, delay=1.0)
    assert client(timeout=(5.0, 0.2)).status(mock.url, job.job_id).state == "SUCCEEDED"
    gets = mock.requests()[1:]
    assert len(gets) == 4 and [gets[0]["status"], gets[1]["status"], gets[3]["status"]] == [502, 502, 200]


def test_a_hanging_status_request_is_bounded_by_the_deadline(mock: MockTaskRunner) -> None:
    mock.inject_fault("/jobstatus", 200, count=100, delay=None)
    started = time.monotonic()
    with pytest.raises(TaskRunnerUnavailable) as err:
        client(timeout=(5.0, 60.0), status_deadline=0.5).status(mock.url, "j-1")
    assert time.monotonic() - started < 60.0  # less than one try's read timeout: the deadline cut it
    assert "within 0.5 s: no answer in time (read timeout)" in str(err.value)


def test_repeated_503_on_status_stops_at_the_deadline(mock: MockTaskRunner) -> None:
    mock.inject_fault("/jobstatus", 503, count=1000, retry_after="3600")
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    with pytest.raises(TaskRunnerUnavailable) as err:
        client(retries=1000, backoff_max=0.1, status_deadline=0.3, sleep=sleep).status(mock.url, "j-1")
    assert "HTTP 503" in str(err.value) or "within 0.3 s" in str(err.value)  # last answer, or cut short
    assert 2 <= len(waits) < 1000 and all(w <= 0.1 for w in waits)
    assert len(waits) <= len(mock.requests()) <= len(waits) + 1


# --- secrets and bounded texts ----------------------------------------------------------------



@pytest.mark.parametrize("status", [400, 401, 500])
def test_an_echoed_token_is_in_no_error_or_log(status: int, caplog: pytest.LogCaptureFixture) -> None:
    with MockTaskRunner(duration=0) as m, caplog.at_level(logging.DEBUG):
        m.inject_fault("/job", status, echo_headers=True)
        m.inject_fault("/jobstatus", status, echo_headers=True)
        with pytest.raises(SubmissionRefused) as submitted:
            client(SECRET).submit(m.url, TASK)
        with pytest.raises((StatusRefused, TaskRunnerUnavailable)) as followed:
            client(SECRET, status_deadline=0.2).status(m.url, "j-1")
    texts = [str(submitted.value), str(followed.value), caplog.text, m.requests()]
    assert "request_headers" in str(submitted.value) and SECRET not in repr(texts)


def test_a_token_in_an_answer_is_redacted(mock: MockTaskRunner) -> None:
    mock.inject_fault("/job", 400, body=f"token {SECRET} is not allowed here")
    with pytest.raises(SubmissionRefused) as err:
        client(SECRET).submit(mock.url, TASK)
    assert "token <redacted> is not allowed here" in str(err.value) and SECRET not in str(err.value)


def test_a_token_with_a_line_break_is_refused_before_sending(mock: MockTaskRunner) -> None:
    with pytest.raises(SubmissionRefused) as err:
        client(f"{SECRET}\r\nX-Evil: 1").submit(mock.url, TASK)
    assert SECRET not in str(err.value) and "--tr-auth-jwt" in str(err.value)
    assert "line break" in str(err.value) and mock.requests() == []


def test_401_names_the_credential_used_and_what_to_check(mock: MockTaskRunner) -> None:
    with pytest.raises(SubmissionRefused) as err:
        client("wrong-token").submit(mock.url, TASK)
    message = str(err.value)
    assert "HTTP 401" in message and "the token given with --tr-auth-jwt" in message and "expired" in message
    assert "wrong-token" not in message


def test_403_with_a_sealed_token_names_it(mock: MockTaskRunner) -> None:
    from cryptography.fernet import Fernet

    tokens = SealedTokens(Fernet.generate_key().decode(), StaticToken("own"))
    sealed = tokens.seal("s3cret", run_id="r1", origin=mock.url)
    mock.inject_fault("/jobstatus", 403)
    with pytest.raises(StatusRefused) as err:
        HttpTaskRunner(tokens).status(mock.url, "j-1", sealed, "r1")
    assert "token given when this run was started" in str(err.value) and "roles/run.invoker" in str(err.value)


def test_a_garbled_status_answer_is_excerpted(mock: MockTaskRunner) -> None:
    mock.inject_fault("/jobstatus", 200, body="{" * 2_000_000)
    with pytest.raises(TaskRunnerUnavailable) as err:
        client().status(mock.url, "j-1")
    assert "malformed Task Runner answer" in str(err.value) and len(str(err.value)) < 1000


def test_a_url_without_host_is_refused_not_unknown() -> None:
    with pytest.raises(SubmissionRefused) as err:
        client().submit("http://", TASK)
    assert not isinstance(err.value, SubmissionOutcomeUnknown) and "could not reach" in str(err.value)
