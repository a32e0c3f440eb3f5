"""Every log line about a run names the run: a run through the embedded runtime whose Task
Runner refuses (503, 500) before it accepts logs nothing without its run id."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from devtools.mock_runner import MockTaskRunner
from polling import wait_until
from workflow.adapters.embedded.inprocess_bus import InProcessBus
from workflow.adapters.embedded.waiting_runner import WaitingTaskRunner
from workflow.bootstrap.embedded import embedded, token_source
from workflow.model.dag import Dag, Step, Task
from workflow.model.messages import StartRun
from workflow.model.records import RunRecord
from workflow.settings import Settings

RUN_ID = "run-logged"
MOCK_LOGGER = "devtools.mock_runner"  # the Task Runner's side, not the engine's
DAG = Dag(tuple(Step(s, Task(s, f"img/{s}", labels={"mock_duration_sec": "0.1"}), deps)
                for s, deps in [("a", ()), ("b", ("a",))]), name="two-steps")


@pytest.fixture
def refusing() -> Iterator[MockTaskRunner]:
    """A Task Runner that answers 503 to the first two submissions and 500 to two status requests."""
    with MockTaskRunner(duration=0.1) as mock:
        mock.inject_fault("/job", 503, count=2, retry_after="0")
        mock.inject_fault("/jobstatus", 500, count=2)
        yield mock


def run_to_end(url: str) -> RunRecord:
    bus = InProcessBus()
    runner = WaitingTaskRunner(token_source("tok"), bus.waiting, retries=3, backoff=0.01, backoff_max=0.05,
                               timeout=(1.0, 1.0), status_deadline=2.0)
    runtime = embedded(Settings(poll_interval=0.05), runner, bus=bus)
    try:
        runtime.bus.publish([StartRun(RUN_ID, DAG, url)])

        def ended() -> RunRecord | None:
            run = runtime.store.get_run(RUN_ID)
            return run if run is not None and run.status.terminal else None

        return wait_until(ended, 15.0, "the run to end")
    finally:
        runtime.close()


def test_every_record_of_a_run_names_it(refusing: MockTaskRunner, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="workflow"):
        run = run_to_end(refusing.url)
    assert run.status == "SUCCEEDED"
    records = [r for r in caplog.records if r.name.startswith("workflow") and not r.name.startswith(MOCK_LOGGER)]
    retried = " ".join(r.getMessage() for r in records if "retrying in" in r.getMessage())
    assert "503 to POST /job" in retried and "500 to GET /jobstatus" in retried, retried
    unnamed = [f"{r.name}: {r.getMessage()}" for r in records if getattr(r, "run_id", "") != RUN_ID]
    assert not unnamed
