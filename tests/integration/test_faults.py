"""Whole DAGs through the embedded runtime and the real HTTP client, against a faulty mock.

Each fault mode runs a fork-join DAG (a -> b, c -> d) and checks that every step's job is
accepted at most once by the Task Runner, that the run ends the way the fault implies with a
message naming the cause, and that the bearer token is nowhere in the store or the logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devtools.mock_runner import MockTaskRunner
from polling import wait_until
from support import SECRET, free_port
from workflow.adapters.embedded.inprocess_bus import InProcessBus
from workflow.adapters.embedded.waiting_runner import WaitingTaskRunner
from workflow.bootstrap.embedded import embedded, token_source
from workflow.model.dag import Dag, Step, Task
from workflow.model.messages import StartRun
from workflow.model.records import RunRecord, StepRecord
from workflow.settings import Settings

SETTINGS = Settings(poll_interval=0.1, step_timeout=3.0)
CLIENT: dict[str, Any] = {
    "retries": 3, "backoff": 0.05, "backoff_max": 0.2, "timeout": (0.5, 0.5), "status_deadline": 1.0,
}
RUN_BOUND = 15.0
"""Seconds a run may take here: a submission is given up after one 0.5 s read or 4 tries and
3 waits of at most 0.2 s; a step ends within step timeout + poll interval + status deadline."""

DAG = Dag(tuple(Step(s, Task(s, f"img/{s}", labels={"mock_duration_sec": "0.2"}), deps) for s, deps in
                [("a", ()), ("b", ("a",)), ("c", ("a",)), ("d", ("b", "c"))]), name="fork-join")


@dataclass(frozen=True)
class Case:
    inject: Callable[[MockTaskRunner], None]
    status: str
    cause: str  # in the message of a failed step ("" when the run succeeds)


CASES = {
    "slow accept": Case(lambda m: m.inject_fault("/job", 200, accept=True, delay=None), "FAILED",
                        "is unknown (no answer in time (read timeout))"),
    "status hangs a while": Case(lambda m: m.inject_fault("/jobstatus", 200, count=2, delay=None), "SUCCEEDED", ""),
    "status hangs for good": Case(lambda m: m.inject_fault("/jobstatus", 200, count=10_000, delay=None), "FAILED",
                                  "timed out after"),
    "503 with Retry-After 3600": Case(lambda m: m.inject_fault("/job", 503, count=3, retry_after="3600"),
                                      "SUCCEEDED", ""),
    "502 on POST": Case(lambda m: m.inject_fault("/job", 502), "FAILED", "is unknown (HTTP 502"),
    "echoed headers on POST": Case(lambda m: m.inject_fault("/job", 401, echo_headers=True), "FAILED",
                                   "the credential used, the token given with --tr-auth-jwt"),
    "echoed headers on status": Case(lambda m: m.inject_fault("/jobstatus", 500, count=3, echo_headers=True),
                                     "SUCCEEDED", ""),
    "garbled status": Case(lambda m: m.inject_fault("/jobstatus", 200, count=3, body="<html>" * 400_000),
                           "SUCCEEDED", ""),
}


def run_dag(
    url: str, sleep: Callable[[float], None] | None = None
) -> tuple[RunRecord, list[StepRecord]]:
    """Run DAG on the embedded runtime with the real client; wait for its end; its records."""
    options = {**CLIENT, "sleep": sleep} if sleep else CLIENT
    bus = InProcessBus()
    runner = WaitingTaskRunner(token_source(SECRET), bus.waiting, **options)
    runtime = embedded(SETTINGS, runner, bus=bus)
    try:
        runtime.bus.publish([StartRun("run-1", DAG, url)])

        def ended() -> RunRecord | None:
            run = runtime.store.get_run("run-1")
            return run if run is not None and run.status.terminal else None

        run = wait_until(ended, RUN_BOUND, "the run to end")
        steps = runtime.store.list_steps("run-1")
        assert SECRET not in repr(run) + repr(steps)
        return run, steps
    finally:
        runtime.close()


@pytest.fixture
def mock() -> Iterator[MockTaskRunner]:
    with MockTaskRunner(duration=0.2, token=SECRET) as m:
        yield m


def assert_at_most_once(mock: MockTaskRunner) -> None:
    accepted = mock.submissions()
    assert len(accepted) == len(set(accepted)), accepted


@pytest.mark.parametrize("name", list(CASES))
def test_a_run_ends_under_each_fault(
    name: str, mock: MockTaskRunner, caplog: pytest.LogCaptureFixture
) -> None:
    case = CASES[name]
    case.inject(mock)
    with caplog.at_level(logging.DEBUG):
        run, steps = run_dag(mock.url)
    assert run.status == case.status
    assert_at_most_once(mock)
    assert SECRET not in caplog.text and not any(SECRET in r.getMessage() for r in caplog.records)
    if case.cause:
        [failed] = [s for s in steps if s.state == "FAILED"]
        assert case.cause in failed.message, failed.message
        posts = [r for r in mock.requests() if r["method"] == "POST" and r["body"]["job_name"] == failed.step_id]
        assert len(posts) == 1
    else:
        assert sorted(mock.submissions()) == ["a", "b", "c", "d"]


def test_a_refused_connection_for_a_while(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    late = MockTaskRunner(port=port, duration=0.2, token=SECRET)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            late.start()

    try:
        with caplog.at_level(logging.INFO):
            run, _ = run_dag(f"http://127.0.0.1:{port}", sleep)
        assert run.status == "SUCCEEDED" and sorted(late.submissions()) == ["a", "b", "c", "d"]
        assert_at_most_once(late)
    finally:
        late.stop()
    refused = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert refused[0].startswith("connection refused or host unreachable on POST /job")
    assert SECRET not in caplog.text
