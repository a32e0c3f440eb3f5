"""Schedules on the local cloud: a schedule's tick POSTed to the HTTP start function with
X-CloudScheduler-ScheduleTime (as Cloud Scheduler calls it), delivered twice, while the
schedule's previous run is RUNNING, and on a timer; and `backfill --cloud` as start requests.
What the mock Task Runner received tells how many runs really started."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.localcloud import processes
from devtools.localcloud.client import RunTimeout
from devtools.localcloud.scheduler import LocalSchedule
from devtools.localcloud.stack import LocalCloud
from polling import wait_until
from support import run_main
from workflow.model.records import RunRecord
from workflow.model.states import RunStatus
from workflow.model.ticks import SCHEDULE_TIME_HEADER

pytestmark = pytest.mark.cloud

ROOT = Path(__file__).resolve().parents[2]
TAG = "sched"  # the label holding a test's unique tag
TIMER = f"timer-{uuid.uuid4().hex[:8]}"  # the module's schedule on a timer


def dated(tag: str, seconds: str = "0.2") -> dict[str, Any]:
    """A DAG whose one job gets the run's date as an argument, labelled with `tag`."""
    return {"name": "dated", "steps": [{"id": "job", "task": {
        "imageUri": "img/job", "args": ["--day", "{{ run.date }}"],
        "labels": {"mock_duration_sec": seconds, TAG: tag}}}]}


@pytest.fixture(scope="module")
def cloud(require_tool: Callable[[Callable[[], LocalCloud]], LocalCloud]) -> Iterator[LocalCloud]:
    processes.install_signal_handlers()
    timer = LocalSchedule({"dag": dated(TIMER, "2.5"), "schedule": TIMER}, every=1.0)
    stack = require_tool(lambda: LocalCloud(project="sched-test", poll=0.1, mock_duration=0.2,
                                            schedules={TIMER: timer}).start())
    try:
        yield stack
    finally:
        stack.stop()


def jobs(cloud: LocalCloud, tag: str) -> list[dict[str, Any]]:
    """The bodies of the accepted submissions of the test's tasks, in the order received."""
    return [r["body"] for r in cloud.mock.requests()
            if r["path"] == "/job" and r["status"] == 200 and ((r["body"] or {}).get("labels") or {}).get(TAG) == tag]


def finished(cloud: LocalCloud, run_id: str) -> RunRecord:
    try:
        return cloud.wait_run(run_id, 90)
    except RunTimeout as exc:
        pytest.fail(f"{exc}\n{cloud.log_tails(60)}", pytrace=False)


def tick(cloud: LocalCloud, body: dict[str, Any], at: str) -> tuple[int, dict[str, Any]]:
    return cloud.post_start(body, headers={SCHEDULE_TIME_HEADER: at})


def test_the_same_tick_delivered_twice_starts_one_run(cloud: LocalCloud, tag: str) -> None:
    body = {"dag": dated(tag), "schedule": f"nightly-{tag}"}
    answers = [tick(cloud, body, "2026-11-01T00:00:00Z") for _ in range(2)]
    run_id = f"nightly-{tag}-20261101T000000Z"
    assert answers == [(202, {"run_id": run_id})] * 2
    run = finished(cloud, run_id)
    assert run.status is RunStatus.SUCCEEDED and run.inputs.schedule == f"nightly-{tag}"
    assert run.inputs.scheduled_at == 1_793_491_200.0
    assert [j["job_name"] for j in jobs(cloud, tag)] == ["job"]  # one run, one job
    assert tick(cloud, body, "2026-11-01T00:00:00Z") == (202, {"run_id": run_id})  # and after its end


def test_the_ticks_job_gets_the_ticks_date(cloud: LocalCloud, tag: str) -> None:
    body = {"dag": dated(tag), "schedule": f"nightly-{tag}"}
    status, answer = tick(cloud, body, "2026-11-02T00:00:00Z")
    assert status == 202
    finished(cloud, answer["run_id"])
    assert [j["args"] for j in jobs(cloud, tag)] == [["--day", "2026-11-02"]]


def test_a_later_tick_while_the_run_is_running_starts_nothing_and_is_recorded_skipped(
        cloud: LocalCloud, tag: str) -> None:
    body = {"dag": dated(tag, "3"), "schedule": f"nightly-{tag}"}  # concurrency forbid: the default
    first = f"nightly-{tag}-20261101T000000Z"
    assert tick(cloud, body, "2026-11-01T00:00:00Z") == (202, {"run_id": first})
    wait_until(lambda: jobs(cloud, tag), 30, "the first run's job at the mock")
    status, answer = tick(cloud, body, "2026-11-02T00:00:00Z")
    later = f"nightly-{tag}-20261102T000000Z"
    why = f"the schedule's run {first} was still RUNNING (concurrency forbid): this tick started nothing"
    assert (status, answer) == (200, {"run_id": later, "skipped": why})
    assert tick(cloud, body, "2026-11-02T00:00:00Z") == (200, {"run_id": later, "skipped": why})  # redelivered
    skipped = cloud.run(later)
    assert skipped is not None and skipped.status is RunStatus.SKIPPED and skipped.problems == (why,)
    assert finished(cloud, first).status is RunStatus.SUCCEEDED
    assert len(jobs(cloud, tag)) == 1  # no second run
    listed = run_main("runs", "--status", "SKIPPED", "--cloud", "--project", cloud.project, cwd=ROOT,
                      env={**cloud.env, "WORKFLOW_FIRESTORE_DATABASE": ""})
    assert listed.returncode == 0 and later in listed.stdout, listed.stderr


def test_a_schedule_on_the_timer_starts_a_run_and_skips_the_ticks_while_it_runs(cloud: LocalCloud) -> None:
    timer = cloud.schedule_timers[0]
    wait_until(lambda: [a for _, status, a in timer.answers if status == 200], 60, "a skipped tick of the timer")
    timer.stop()
    started = [a["run_id"] for _, status, a in timer.answers if status == 202]
    skipped = [a["run_id"] for _, status, a in timer.answers if status == 200]
    assert started and skipped and timer.timer.failed == 0, timer.answers
    for run_id in started:
        assert finished(cloud, run_id).status is RunStatus.SUCCEEDED
    assert len(jobs(cloud, TIMER)) == len(started)  # a job per started tick, none for the skipped ones
    runs = [cloud.run(run_id) for run_id in skipped]
    assert all(r is not None and r.status is RunStatus.SKIPPED and r.inputs.schedule == TIMER for r in runs)
    assert all(r.run_id.startswith(f"{TIMER}-") for r in runs if r is not None)


def test_a_cloud_backfill_requests_each_tick_once(cloud: LocalCloud, tag: str) -> None:
    cloud.upload(yaml.safe_dump(dated(tag)).encode(), f"scheduled/{tag}.yaml")  # outside dags/: no upload run
    args = ("backfill", "--cloud", "--project", cloud.project, "--schedule", f"daily-{tag}",
            f"gs://{cloud.bucket}/scheduled/{tag}.yaml", "--from", "2026-11-01", "--to", "2026-11-02",
            "--max-parallel-runs", "2", "--timeout", "90")

    def backfill() -> subprocess.CompletedProcess[str]:
        return run_main(*args, cwd=ROOT, timeout=150,
                        env={**cloud.env, "WORKFLOW_FIRESTORE_DATABASE": "", "WORKFLOW_START_TOPIC": ""})

    done = backfill()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "summary: 2 tick(s): 2 started (2 SUCCEEDED); 0 already there" in done.stdout
    assert len(jobs(cloud, tag)) == 2
    again = backfill()
    assert again.returncode == 0 and "nothing started; 2 already there (2 SUCCEEDED)" in again.stdout
    assert len(jobs(cloud, tag)) == 2
    run = cloud.run(f"daily-{tag}-20261102T000000Z")
    assert run is not None and run.inputs.schedule == f"daily-{tag}" and run.source.endswith(f"{tag}.yaml")
