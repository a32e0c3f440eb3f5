"""The bundled mock Task Runner, exercised over real HTTP on loopback."""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests
from werkzeug.test import Client

from devtools.mock_runner import (
    DURATION_LABEL,
    FAIL_ATTEMPTS_LABEL,
    FINAL_LABEL,
    MockTaskRunner,
    RunnerState,
    fingerprint,
    job_state,
    max_overlap,
    wsgi_app,
)
from polling import wait_until
from workflow.adapters.http.auth import StaticToken
from workflow.adapters.http.task_runner import HttpTaskRunner
from workflow.model.dag import Task

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"SUCCEEDED", "FAILED"}
ORDER = ["QUEUED", "PREPARING", "RUNNING", "SUCCEEDED", "FAILED"]
TIMEOUT = 5.0


@pytest.fixture
def runner() -> Iterator[MockTaskRunner]:
    with MockTaskRunner(duration=0.3) as mock:
        yield mock


def submit(url: str, job_name: str = "train", image: str = "gcr.io/p/train:1", **extra: Any) -> requests.Response:
    body = {"job_name": job_name, "imageUri": image, **extra}
    return requests.post(f"{url}/job", json=body, timeout=TIMEOUT)


def status(url: str, job_id: str, **kwargs: Any) -> requests.Response:
    return requests.get(f"{url}/jobstatus", params={"job_id": job_id}, timeout=TIMEOUT, **kwargs)


def poll_until_terminal(url: str, job_id: str, limit: float = 3.0) -> list[dict[str, Any]]:
    """Every job object seen, polling every 20 ms until a terminal state or `limit` seconds."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        answer = status(url, job_id)
        assert answer.status_code == 200, answer.text
        seen.append(answer.json()["job"])
        if seen[-1]["state"] in TERMINAL:
            return seen
        time.sleep(0.02)
    pytest.fail(f"job {job_id} not terminal after {limit}s; last state {seen[-1]['state']}")


def distinct_states(seen: list[dict[str, Any]]) -> list[str]:
    states: list[str] = []
    for job in seen:
        if not states or states[-1] != job["state"]:
            states.append(job["state"])
    return states


# --- state walk -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [(0.0, "QUEUED"), (0.99, "QUEUED"), (1.0, "PREPARING"), (1.99, "PREPARING"), (2.0, "RUNNING"),
     (2.99, "RUNNING"), (3.0, "SUCCEEDED"), (100.0, "SUCCEEDED")],
)
def test_job_state_is_one_third_of_the_duration_each(elapsed: float, expected: str) -> None:
    assert job_state(elapsed, 3.0, fails=False) == expected


def test_job_state_with_zero_duration_is_terminal_at_once() -> None:
    assert job_state(0.0, 0.0, fails=False) == "SUCCEEDED"
    assert job_state(0.0, 0.0, fails=True) == "FAILED"


def test_submit_then_walk_states_to_succeeded(runner: MockTaskRunner) -> None:
    answer = submit(runner.url, "train")
    assert answer.status_code == 200
    job = answer.json()["job"]
    assert job == {"jobId": job["jobId"], "state": "QUEUED", "message": ""}
    assert job["jobId"].startswith("train-")

    seen = poll_until_terminal(runner.url, job["jobId"])
    states = distinct_states(seen)
    assert states[-1] == "SUCCEEDED"
    assert len(states) >= 2, "a 0.3 s job should be seen before it ends"
    assert states == sorted(states, key=ORDER.index), f"states went backwards: {states}"
    assert all(j["jobId"] == job["jobId"] and j["message"] == "" for j in seen)


def test_error_image_ends_failed_with_a_message(runner: MockTaskRunner) -> None:
    image = "gcr.io/p/always-error:1"
    job_id = submit(runner.url, "bad", image).json()["job"]["jobId"]
    final = poll_until_terminal(runner.url, job_id)[-1]
    assert final["state"] == "FAILED"
    assert image in final["message"] and "exited with status 1" in final["message"]


def test_duration_label_overrides_the_default() -> None:
    with MockTaskRunner(duration=60) as mock:
        slow = submit(mock.url, "slow").json()["job"]["jobId"]
        fast = submit(mock.url, "fast", labels={DURATION_LABEL: "0", "team": "ml"}).json()["job"]["jobId"]
        assert status(mock.url, slow).json()["job"]["state"] == "QUEUED"
        assert status(mock.url, fast).json()["job"]["state"] == "SUCCEEDED"


def test_job_ids_are_unique_and_sanitized(runner: MockTaskRunner) -> None:
    ids = [submit(runner.url, "my job/v2.1").json()["job"]["jobId"] for _ in range(3)]
    assert len(set(ids)) == 3
    for job_id in ids:
        assert job_id.startswith("my_job_v2_1-")
        assert all(c.isalnum() or c in "_-" for c in job_id)


def test_optional_fields_are_accepted(runner: MockTaskRunner) -> None:
    for args in (["--epochs", "3"], {"epochs": "3"}):
        answer = submit(runner.url, args=args, scaleTier="BASIC", masterType="n1", labels={"a": "b"})
        assert answer.status_code == 200, answer.text


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"imageUri": "img"}, "job_name"),
        ({"job_name": "j"}, "imageUri"),
        ({"job_name": "j", "imageUri": ""}, "imageUri"),
        ({"job_name": "j", "imageUri": "i", "args": [1]}, "args"),
        ({"job_name": "j", "imageUri": "i", "labels": ["x"]}, "labels"),
    ],
)
def test_bad_submission_is_400_naming_the_field(runner: MockTaskRunner, body: dict[str, Any], field: str) -> None:
    answer = requests.post(f"{runner.url}/job", json=body, timeout=TIMEOUT)
    assert answer.status_code == 400
    assert field in answer.json()["error"]
    assert runner.submissions() == []


def test_bad_json_is_400(runner: MockTaskRunner) -> None:
    answer = requests.post(f"{runner.url}/job", data=b"{not json", timeout=TIMEOUT)
    assert answer.status_code == 400
    assert "JSON" in answer.json()["error"]


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_bad_duration_label_is_400_naming_the_label(runner: MockTaskRunner, value: str) -> None:
    answer = submit(runner.url, labels={DURATION_LABEL: value})
    assert answer.status_code == 400
    assert DURATION_LABEL in answer.json()["error"]


def test_unknown_job_is_404_and_missing_id_is_400(runner: MockTaskRunner) -> None:
    unknown = status(runner.url, "nope-1")
    assert unknown.status_code == 404
    assert "nope-1" in unknown.json()["error"]
    missing = requests.get(f"{runner.url}/jobstatus", timeout=TIMEOUT)
    assert missing.status_code == 400
    assert "job_id" in missing.json()["error"]


def test_wrong_method_is_405(runner: MockTaskRunner) -> None:
    answer = requests.get(f"{runner.url}/job", timeout=TIMEOUT)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"


# --- auth -----------------------------------------------------------------------------------


def test_token_is_required_when_configured() -> None:
    with MockTaskRunner(duration=0, token="s3cret") as mock:
        assert submit(mock.url).status_code == 401
        wrong = requests.post(
            f"{mock.url}/job", json={"job_name": "j", "imageUri": "i"}, headers={"Authorization": "Bearer nope"},
            timeout=TIMEOUT,
        )
        assert wrong.status_code == 401
        assert wrong.json() == {"error": "missing or wrong bearer token"}

        auth = {"Authorization": "Bearer s3cret"}
        ok = requests.post(f"{mock.url}/job", json={"job_name": "j", "imageUri": "i"}, headers=auth, timeout=TIMEOUT)
        assert ok.status_code == 200
        job_id = ok.json()["job"]["jobId"]
        assert status(mock.url, job_id).status_code == 401
        assert status(mock.url, job_id, headers=auth).json()["job"]["state"] == "SUCCEEDED"
        assert mock.submissions() == ["j"]
        assert [r["status"] for r in mock.requests()] == [401, 401, 200, 401, 200]
        assert requests.get(f"{mock.url}/_mock/requests", timeout=TIMEOUT).status_code == 200


def test_any_authorization_is_accepted_without_token(runner: MockTaskRunner) -> None:
    answer = requests.post(
        f"{runner.url}/job", json={"job_name": "j", "imageUri": "i"}, headers={"Authorization": "Bearer whatever"},
        timeout=TIMEOUT,
    )
    assert answer.status_code == 200
    assert runner.requests()[0]["auth"] == "Bearer " + fingerprint("whatever")


# --- test hooks -----------------------------------------------------------------------------


def test_fault_injection_answers_twice_then_recovers(runner: MockTaskRunner) -> None:
    runner.inject_fault("/job", 503, count=2, body="try later")
    answers = [submit(runner.url, f"j{i}") for i in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 200]
    assert answers[0].text == "try later"
    assert runner.submissions() == ["j2"]
    assert [r["status"] for r in runner.requests()] == [503, 503, 200]


def test_fault_injection_over_http_comes_before_auth() -> None:
    with MockTaskRunner(token="t") as mock:
        hook = requests.post(f"{mock.url}/_mock/faults", json={"path": "/jobstatus", "status": 500}, timeout=TIMEOUT)
        assert hook.status_code == 200
        assert status(mock.url, "x").status_code == 500
        assert status(mock.url, "x").status_code == 401


def test_bad_fault_is_refused(runner: MockTaskRunner) -> None:
    with pytest.raises(ValueError, match="path"):
        runner.inject_fault("/other", 503)
    with pytest.raises(ValueError, match="count"):
        runner.inject_fault("/job", 503, count=0)
    answer = requests.post(f"{runner.url}/_mock/faults", json={"path": "/job", "status": 42}, timeout=TIMEOUT)
    assert answer.status_code == 400
    assert "status" in answer.json()["error"]


def test_records_and_submissions_in_order(runner: MockTaskRunner) -> None:
    names = ["extract", "transform", "load"]
    ids = [submit(runner.url, name).json()["job"]["jobId"] for name in names]
    submit(runner.url, "", "img")  # refused: not a submission
    status(runner.url, ids[0])

    assert runner.submissions() == names
    over_http = requests.get(f"{runner.url}/_mock/submissions", timeout=TIMEOUT).json()
    assert over_http == names

    records = requests.get(f"{runner.url}/_mock/requests", timeout=TIMEOUT).json()
    assert records == runner.requests()
    assert [(r["method"], r["path"], r["status"]) for r in records] == [
        ("POST", "/job", 200), ("POST", "/job", 200), ("POST", "/job", 200), ("POST", "/job", 400),
        ("GET", "/jobstatus", 200),
    ]
    assert records[0]["body"] == {"job_name": "extract", "imageUri": "gcr.io/p/train:1"}
    assert records[4]["query"] == {"job_id": ids[0]}
    assert records[4]["body"] is None and records[4]["auth"] is None
    assert [r["time"] for r in records] == sorted(r["time"] for r in records)


def test_reset_clears_jobs_records_and_faults(runner: MockTaskRunner) -> None:
    job_id = submit(runner.url).json()["job"]["jobId"]
    runner.inject_fault("/job", 503)
    assert requests.post(f"{runner.url}/_mock/reset", timeout=TIMEOUT).status_code == 200
    assert runner.requests() == [] and runner.submissions() == []
    assert status(runner.url, job_id).status_code == 404
    new_id = submit(runner.url).json()["job"]["jobId"]
    assert new_id != job_id


def test_records_are_copies(runner: MockTaskRunner) -> None:
    submit(runner.url)
    runner.requests()[0]["status"] = 999
    assert runner.requests()[0]["status"] == 200


def test_engine_and_url_stand_in_for_the_image(runner: MockTaskRunner) -> None:
    task = {"job_name": "seed", "engine": "python", "url": "gs://b/error.py"}
    answer = requests.post(f"{runner.url}/job", json=task, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    body = runner.requests()[0]["body"]
    assert body["engine"] == "python" and body["url"] == "gs://b/error.py" and "imageUri" not in body
    job_id = answer.json()["job"]["jobId"]
    assert poll_until_terminal(runner.url, job_id)[-1]["state"] == "FAILED"  # 'error' in the url
    no_url = requests.post(f"{runner.url}/job", json={"job_name": "x", "engine": "python"}, timeout=TIMEOUT)
    assert no_url.status_code == 400 and "'url'" in no_url.json()["error"]


@pytest.mark.parametrize("final", ["SUCCEEDED", "FAILED"])
def test_final_state_label_ends_the_job_in_its_submission_answer(runner: MockTaskRunner, final: str) -> None:
    answer = submit(runner.url, labels={FINAL_LABEL: final})
    job = answer.json()["job"]
    assert job["state"] == final
    assert status(runner.url, job["jobId"]).json()["job"]["state"] == final


def test_bad_final_state_label_is_400(runner: MockTaskRunner) -> None:
    answer = submit(runner.url, labels={FINAL_LABEL: "RUNNING"})
    assert answer.status_code == 400 and FINAL_LABEL in answer.json()["error"]


def test_slow_accept_records_the_job_before_its_late_answer(runner: MockTaskRunner) -> None:
    runner.inject_fault("/job", 200, accept=True, delay=None)
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{runner.url}/job", json={"job_name": "slow", "imageUri": "i"}, timeout=(TIMEOUT, 0.3))
    assert runner.submissions() == ["slow"]
    [record] = runner.requests()
    assert record["status"] is None  # not answered yet


def test_a_hang_ends_when_the_mock_stops() -> None:
    mock = MockTaskRunner().start()
    mock.inject_fault("/jobstatus", 503, delay=None)
    answers: list[int] = []
    worker = threading.Thread(target=lambda: answers.append(status(mock.url, "x").status_code))
    worker.start()
    wait_until(mock.requests, TIMEOUT, "the status request to arrive")
    assert answers == []
    mock.stop()
    worker.join(TIMEOUT)
    assert answers == [503] and mock.requests()[0]["status"] == 503


def test_retry_after_and_echoed_headers(runner: MockTaskRunner) -> None:
    runner.inject_fault("/job", 503, retry_after="3600", echo_headers=True)
    answer = requests.post(f"{runner.url}/job", json={"job_name": "j", "imageUri": "i"}, timeout=TIMEOUT,
                           headers={"Authorization": "Bearer tok-SECRET-123"})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "3600"
    assert answer.json()["request_headers"]["Authorization"] == "Bearer tok-SECRET-123"
    records = requests.get(f"{runner.url}/_mock/requests", timeout=TIMEOUT).text
    assert "tok-SECRET-123" not in records and fingerprint("tok-SECRET-123") in records


def test_faults_over_http_take_every_mode(runner: MockTaskRunner) -> None:
    fault = {"path": "/job", "status": 429, "retry_after": "2", "delay": 0.01, "echo_headers": True}
    assert requests.post(f"{runner.url}/_mock/faults", json=fault, timeout=TIMEOUT).status_code == 200
    answer = submit(runner.url)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "2" and "request_headers" in answer.json()
    for bad, word in [({"delay": -1}, "delay"), ({"hang": True}, "hang"), ({"accept": "yes"}, "accept")]:
        refused = requests.post(f"{runner.url}/_mock/faults", json={"path": "/job", "status": 503, **bad},
                                timeout=TIMEOUT)
        assert refused.status_code == 400 and word in refused.json()["error"]


# --- failing the first attempts ------------------------------------------------------------


class ManualClock:
    """A clock that moves only when a test sets `now`."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Answer(NamedTuple):
    status: int
    body: bytes


def handle(state: RunnerState, method: str, path: str, query: dict[str, str], body: bytes) -> Answer:
    """One request answered by the mock's WSGI app for `state`, in this process (no socket)."""
    answer = Client(wsgi_app(state)).open(path, method=method, query_string=query, data=body)
    return Answer(answer.status_code, answer.get_data())


def submit_in_process(state: RunnerState, job_name: str = "train", **labels: str) -> dict[str, Any]:
    """The answer to one ``POST /job`` handled by `state` (status code and body)."""
    body = json.dumps({"job_name": job_name, "imageUri": "gcr.io/p/train:1", "labels": labels}).encode()
    answer = handle(state, "POST", "/job", {}, body)
    return {"status": answer.status, **json.loads(answer.body)}


def state_in_process(state: RunnerState, job_id: str) -> str:
    answer = handle(state, "GET", "/jobstatus", {"job_id": job_id}, b"")
    assert answer.status == 200, answer.body
    return str(json.loads(answer.body)["job"]["state"])


def final_states(runner: MockTaskRunner, task: Task, attempts: int) -> list[str]:
    """The terminal state of each of `attempts` submissions of `task`, through the HTTP client."""
    client = HttpTaskRunner(StaticToken("s3cret"), retries=0)
    states = []
    for _ in range(attempts):
        job = client.submit(runner.url, task)
        states.append(client.status(runner.url, job.job_id).state)
    return states


def test_fail_attempts_fail_the_first_n_submissions_of_a_job_name_then_succeed() -> None:
    labels = {FAIL_ATTEMPTS_LABEL: "2", "team": "ml"}
    with MockTaskRunner(duration=0, token="s3cret") as mock:
        assert final_states(mock, Task("train", "gcr.io/p/train:1", labels=labels), 4) == [
            "FAILED", "FAILED", "SUCCEEDED", "SUCCEEDED"]
        assert final_states(mock, Task("eval", "gcr.io/p/eval:1", labels=labels), 3) == [
            "FAILED", "FAILED", "SUCCEEDED"]
        assert final_states(mock, Task("train", "gcr.io/p/train:1"), 1) == ["SUCCEEDED"]
        assert mock.submissions() == ["train"] * 4 + ["eval"] * 3 + ["train"]


def test_a_failed_attempt_says_why_and_ends_after_its_duration() -> None:
    clock = ManualClock()
    state = RunnerState(3.0, None, clock)
    first = submit_in_process(state, **{FAIL_ATTEMPTS_LABEL: "1"})["job"]["jobId"]
    clock.now = 2.5
    assert state_in_process(state, first) == "RUNNING"
    clock.now = 3.0
    failed = json.loads(handle(state, "GET", "/jobstatus", {"job_id": first}, b"").body)["job"]
    assert failed["state"] == "FAILED"
    assert "attempt 1" in failed["message"] and FAIL_ATTEMPTS_LABEL in failed["message"]
    second = submit_in_process(state, **{FAIL_ATTEMPTS_LABEL: "1"})["job"]["jobId"]
    assert state_in_process(state, second) == "QUEUED"
    clock.now = 6.0
    assert state_in_process(state, second) == "SUCCEEDED"


def test_fail_attempts_count_only_submissions_carrying_the_label() -> None:
    state = RunnerState(0.0, None, ManualClock())
    plain = submit_in_process(state, "t")["job"]["jobId"]
    never = submit_in_process(state, "u", **{FAIL_ATTEMPTS_LABEL: "0"})["job"]["jobId"]
    first = submit_in_process(state, "t", **{FAIL_ATTEMPTS_LABEL: "1"})["job"]["jobId"]
    assert [state_in_process(state, job) for job in (plain, never, first)] == ["SUCCEEDED", "SUCCEEDED", "FAILED"]


def test_fail_attempts_with_a_final_state_fail_at_once(runner: MockTaskRunner) -> None:
    labels = {FAIL_ATTEMPTS_LABEL: "1", FINAL_LABEL: "SUCCEEDED"}
    answers = [submit(runner.url, "seed", labels=labels).json()["job"] for _ in range(2)]
    assert [job["state"] for job in answers] == ["FAILED", "SUCCEEDED"]
    assert FAIL_ATTEMPTS_LABEL in answers[0]["message"] and answers[1]["message"] == ""


def test_an_error_image_still_fails_once_its_attempts_are_used_up() -> None:
    with MockTaskRunner(duration=0) as mock:
        labels = {FAIL_ATTEMPTS_LABEL: "1"}
        ids = [submit(mock.url, "bad", "gcr.io/p/error:1", labels=labels).json()["job"]["jobId"] for _ in range(2)]
        jobs = [status(mock.url, job_id).json()["job"] for job_id in ids]
    assert [job["state"] for job in jobs] == ["FAILED", "FAILED"]
    assert FAIL_ATTEMPTS_LABEL in jobs[0]["message"] and "exited with status 1" in jobs[1]["message"]


@pytest.mark.parametrize("value", ["-1", "1.5", "two", "", " 1", "+1", "1e3", "\u0663", "1234567890"])
def test_bad_fail_attempts_label_is_400_naming_the_label(runner: MockTaskRunner, value: str) -> None:
    answer = submit(runner.url, "train", labels={FAIL_ATTEMPTS_LABEL: value})
    assert answer.status_code == 400
    assert FAIL_ATTEMPTS_LABEL in answer.json()["error"]
    assert runner.submissions() == []
    retry = submit(runner.url, "train", labels={FAIL_ATTEMPTS_LABEL: "1", FINAL_LABEL: "SUCCEEDED"})
    assert retry.json()["job"]["state"] == "FAILED", "a refused submission must not count as an attempt"


def test_a_long_bad_label_value_is_cut_in_the_error(runner: MockTaskRunner) -> None:
    answer = submit(runner.url, labels={FAIL_ATTEMPTS_LABEL: "x" * 5000})
    assert answer.status_code == 400 and len(answer.json()["error"]) < 200


def test_reset_forgets_the_counted_attempts(runner: MockTaskRunner) -> None:
    labels = {FAIL_ATTEMPTS_LABEL: "1", FINAL_LABEL: "SUCCEEDED"}
    assert submit(runner.url, "seed", labels=labels).json()["job"]["state"] == "FAILED"
    runner.reset()
    assert submit(runner.url, "seed", labels=labels).json()["job"]["state"] == "FAILED"
    assert submit(runner.url, "seed", labels=labels).json()["job"]["state"] == "SUCCEEDED"


# --- jobs in flight -------------------------------------------------------------------------


def brute_force_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals holding one instant, checked at every start (where a maximum begins)."""
    return max((sum(s <= start < e for s, e in intervals) for start, _ in intervals), default=0)


@pytest.mark.parametrize(
    ("intervals", "expected"),
    [
        ([], 0),
        ([(0, 1), (2, 3)], 1),
        ([(0, 1), (1, 2), (2, 3)], 1),
        ([(1, 2), (0, 1)], 1),
        ([(0, 3), (1, 4), (2, 2.5)], 3),
        ([(0, 5), (1, 1), (1, 2)], 2),
        ([(0, 0), (0, 0)], 0),
        ([(0, 2), (0, 2), (2, 4), (2, 4)], 2),
    ],
)
def test_max_overlap_of_half_open_intervals(intervals: list[tuple[float, float]], expected: int) -> None:
    assert max_overlap(intervals) == expected


def test_max_overlap_agrees_with_brute_force() -> None:
    rng = random.Random(7)
    for _ in range(200):
        starts = [rng.randint(0, 20) for _ in range(rng.randint(1, 30))]
        intervals = [(float(s), float(s + rng.randint(0, 6))) for s in starts]
        assert max_overlap(intervals) == brute_force_overlap(intervals), intervals


def in_flight_after(submissions: list[tuple[float, str]], now: float) -> dict[str, int]:
    """`in_flight()` at clock time `now` after submitting a job of each (time, duration)."""
    clock = ManualClock()
    state = RunnerState(1.0, None, clock)
    for when, duration in submissions:
        clock.now = when
        assert submit_in_process(state, **{DURATION_LABEL: duration})["status"] == 200
    clock.now = now
    return state.in_flight()


@pytest.mark.parametrize(
    ("submissions", "now", "expected"),
    [
        ([(0, "3"), (1, "3"), (2, "0.5")], 2.0, {"now": 3, "max": 3}),
        ([(0, "3"), (1, "3"), (2, "0.5")], 10.0, {"now": 0, "max": 3}),
        ([(0, "1"), (2, "1")], 2.5, {"now": 1, "max": 1}),
        ([(0, "1"), (1, "1"), (2, "1")], 2.0, {"now": 1, "max": 1}),
        ([(0, "2"), (1, "0"), (1, "2")], 1.0, {"now": 2, "max": 2}),
        ([], 0.0, {"now": 0, "max": 0}),
    ],
    ids=["overlapping", "overlapping-later", "apart", "back-to-back", "zero-duration", "none"],
)
def test_in_flight_from_the_recorded_intervals(
    submissions: list[tuple[float, str]], now: float, expected: dict[str, int]
) -> None:
    assert in_flight_after(submissions, now) == expected


def test_a_job_ending_at_once_is_never_in_flight() -> None:
    state = RunnerState(5.0, None, ManualClock())
    assert submit_in_process(state, **{FINAL_LABEL: "SUCCEEDED"})["status"] == 200
    assert submit_in_process(state, **{FINAL_LABEL: "FAILED", FAIL_ATTEMPTS_LABEL: "1"})["status"] == 200
    assert state.in_flight() == {"now": 0, "max": 0}


def test_refused_submissions_are_not_in_flight() -> None:
    state = RunnerState(5.0, None, ManualClock())
    assert submit_in_process(state, **{DURATION_LABEL: "soon"})["status"] == 400
    assert state.in_flight() == {"now": 0, "max": 0}


def test_in_flight_over_http_and_reset_clears_it() -> None:
    clock = ManualClock()
    with MockTaskRunner(duration=4, clock=clock) as mock:
        for when in (0.0, 1.0, 3.0):
            clock.now = when
            assert submit(mock.url).status_code == 200
        clock.now = 4.0
        over_http = requests.get(f"{mock.url}/_mock/in_flight", timeout=TIMEOUT)
        assert over_http.status_code == 200
        assert over_http.json() == {"now": 2, "max": 3} == mock.in_flight()
        assert requests.post(f"{mock.url}/_mock/in_flight", timeout=TIMEOUT).status_code == 405
        assert requests.post(f"{mock.url}/_mock/reset", timeout=TIMEOUT).status_code == 200
        assert requests.get(f"{mock.url}/_mock/in_flight", timeout=TIMEOUT).json() == {"now": 0, "max": 0}


def test_in_flight_on_the_real_clock() -> None:
    with MockTaskRunner(duration=60) as mock:
        submit(mock.url, "a")
        submit(mock.url, "b")
        assert mock.in_flight() == {"now": 2, "max": 2}


# --- command line ---------------------------------------------------------------------------


def read_line(process: subprocess.Popen[str], limit: float = TIMEOUT) -> str:
    """The first stdout line of `process`, waiting at most `limit` seconds."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=limit):
            pytest.fail(f"no output within {limit}s")
    return process.stdout.readline().strip()


def test_cli_serves_on_a_free_port_and_stops_on_sigterm() -> None:
    token = "cli-secret-token"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "devtools.mock_runner", "--port", "0", "--duration", "0", "--token", token]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        line = read_line(process)
        prefix = "mock Task Runner listening on http://127.0.0.1:"
        assert line.startswith(prefix), line
        url = line.removeprefix("mock Task Runner listening on ")
        assert int(url.rsplit(":", 1)[1]) > 0

        auth = {"Authorization": f"Bearer {token}"}
        answer = requests.post(f"{url}/job", json={"job_name": "cli", "imageUri": "i"}, headers=auth, timeout=TIMEOUT)
        assert answer.status_code == 200
        assert status(url, answer.json()["job"]["jobId"], headers=auth).json()["job"]["state"] == "SUCCEEDED"

        os.killpg(process.pid, signal.SIGTERM)
        out, err = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, err
        assert "POST /job 200" in err and "GET /jobstatus 200" in err
        assert token not in out + err + line
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
