"""`backfill`: the ticks of a cron schedule in a range (daylight-saving gaps and repeats as
Debian's cron), one run per tick named as the schedule's tick would be, none started twice;
with --cloud, the schedule read from its Cloud Scheduler job (a fake HTTP session) and the
ticks sent as start requests."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from enginekit import ScriptedRunner
from support import NIGHTLY as DAG
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.cli import backfill_cloud, main
from workflow.cli.backfill import build_parser, default_schedule
from workflow.cli.cron import ticks, zone
from workflow.errors import InputError
from workflow.model.records import RunRecord
from workflow.model.states import RunStatus

NY = zone("America/New_York")


def shown(cron: str, first: date, last: date) -> list[str]:
    return [t.isoformat() for t in ticks(cron, NY, first, last)]


def test_a_tick_in_the_hour_skipped_in_spring_comes_right_after_the_gap() -> None:
    # 2026-03-08 02:00 EST -> 03:00 EDT in New York: 02:30 does not exist that night
    assert shown("30 2 * * *", date(2026, 3, 7), date(2026, 3, 9)) == [
        "2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]


def test_a_tick_in_the_hour_repeated_in_autumn_comes_once() -> None:
    # 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice that night, the tick once (the first)
    assert shown("30 1 * * *", date(2026, 10, 31), date(2026, 11, 2)) == [
        "2026-10-31T01:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]


def test_a_schedule_of_every_hour_follows_elapsed_time_through_both_changes() -> None:
    autumn = shown("0 * * * *", date(2026, 11, 1), date(2026, 11, 1))
    assert len(autumn) == 25 and autumn[1:3] == ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"]
    spring = shown("0 * * * *", date(2026, 3, 8), date(2026, 3, 8))
    assert len(spring) == 23 and spring[1:3] == ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"]


def test_the_range_takes_whole_days_in_the_time_zone() -> None:
    utc = ticks("0 0 * * *", zone("UTC"), date(2026, 11, 1), date(2026, 11, 3))
    assert [t.isoformat() for t in utc] == ["2026-11-01T00:00:00+00:00", "2026-11-02T00:00:00+00:00",
                                            "2026-11-03T00:00:00+00:00"]
    assert ticks("0 12 * * MON", zone("UTC"), date(2026, 11, 3), date(2026, 11, 8)) == []


@pytest.mark.parametrize(("cron", "first", "last", "problem"), [
    ("0 0 * *", date(2026, 1, 1), date(2026, 1, 2), "five fields"),
    ("0 0 * * * *", date(2026, 1, 1), date(2026, 1, 2), "five fields"),
    ("61 0 * * *", date(2026, 1, 1), date(2026, 1, 2), "Bad minute"),
    ("0 0 * * *", date(2026, 1, 2), date(2026, 1, 1), "--to 2026-01-01 is before --from 2026-01-02"),
    ("* * * * *", date(2026, 1, 1), date(2026, 1, 1), "more than 1000 ticks"),
])
def test_a_bad_schedule_or_range_is_named(cron: str, first: date, last: date, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        ticks(cron, zone("UTC"), first, last)
    with pytest.raises(InputError, match="not a tz database name"):
        zone("Mars/Olympus")


def test_the_default_schedule_name_is_the_dags_name_else_the_files() -> None:
    assert default_schedule("nightly train", "x.yaml") == "nightly-train"
    assert default_schedule("", "dags/ingest.hourly.yaml") == "ingest-hourly"
    assert default_schedule("", "dags/+++.yaml") == "backfill"


def backfill(tmp_path: Path, *args: str, runner: ScriptedRunner | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["backfill", str(tmp_path / "nightly.yaml"), "--tr-hostname", "http://runner", "--tr-auth-jwt",
                 "none", "--db", str(tmp_path / "runs.sqlite3"), "--check-state-duration-sec", "0", *args],
                out=out, runner=runner or ScriptedRunner())
    return code, out.getvalue()


def stored_runs(tmp_path: Path) -> list[RunRecord]:
    store = SqliteStateStore(str(tmp_path / "runs.sqlite3"))
    try:
        return sorted(store.list_runs(100), key=lambda r: r.run_id)
    finally:
        store.close()


def test_one_run_per_tick_named_as_the_schedule_would_and_none_twice(tmp_path: Path) -> None:
    (tmp_path / "nightly.yaml").write_text(DAG)
    runner = ScriptedRunner()
    code, out = backfill(tmp_path, "--from", "2026-11-01", "--to", "2026-11-03", runner=runner)
    assert code == 0, out
    ids = ["nightly-20261101T000000Z", "nightly-20261102T000000Z", "nightly-20261103T000000Z"]
    assert [r.run_id for r in stored_runs(tmp_path)] == ids and len(runner.submitted) == 6
    assert [(r.status, r.inputs.schedule, r.inputs.scheduled_at) for r in stored_runs(tmp_path)] == [
        (RunStatus.SUCCEEDED, "nightly", 1_793_491_200.0 + day * 86_400) for day in range(3)]
    assert f"tick 2026-11-01T00:00:00+00:00  run {ids[0]}  started" in out
    assert f"run {ids[2]}  SUCCEEDED (2 of 2 step(s) succeeded, 0 failed, 0 skipped" in out
    assert out.rstrip().endswith("summary: 3 tick(s): 3 started (3 SUCCEEDED); 0 already there")
    again = ScriptedRunner()
    code, out = backfill(tmp_path, "--from", "2026-10-31", "--to", "2026-11-03", "--max-parallel-runs", "3",
                         runner=again)
    assert code == 0 and len(again.submitted) == 2  # only the new day's run
    assert f"run {ids[1]}  already exists (SUCCEEDED): not started again" in out
    assert "summary: 4 tick(s): 1 started (1 SUCCEEDED); 3 already there (3 SUCCEEDED)" in out


def test_a_failed_tick_fails_the_backfill_and_the_others_still_run(tmp_path: Path) -> None:
    (tmp_path / "nightly.yaml").write_text(DAG.replace("img/load", "img/error"))
    code, out = backfill(tmp_path, "--from", "2026-11-01", "--to", "2026-11-02", "--schedule", "daily_load",
                         "--max-parallel-runs", "2", "--time-zone", "Europe/Berlin", "--cron", "30 6 * * *")
    assert code == 1
    assert [r.run_id for r in stored_runs(tmp_path)] == ["daily_load-20261101T053000Z", "daily_load-20261102T053000Z"]
    assert "tick 2026-11-01T06:30:00+01:00" in out and "2 started (2 FAILED)" in out


def test_the_ticks_jobs_get_the_date_of_their_tick(tmp_path: Path) -> None:
    (tmp_path / "nightly.yaml").write_text(DAG)
    assert backfill(tmp_path, "--from", "2026-11-01", "--to", "2026-11-02")[0] == 0
    store = SqliteStateStore(str(tmp_path / "runs.sqlite3"))
    try:
        days = [store.get_step(run_id, "extract").task.args for run_id in
                ("nightly-20261101T000000Z", "nightly-20261102T000000Z")]
    finally:
        store.close()
    assert days == [("--day", "2026-11-01"), ("--day", "2026-11-02")]


# -- --cloud --------------------------------------------------------------------------------------
JOB = {"name": "projects/p/locations/europe-west1/jobs/workflow-schedule-nightly", "schedule": "0 2 * * *",
       "timeZone": "America/New_York", "state": "ENABLED",
       "httpTarget": {"uri": "https://start", "httpMethod": "POST", "body": base64.b64encode(json.dumps(
           {"dag_path": "gs://dags/dags/nightly.yaml", "schedule": "nightly", "concurrency": "forbid",
            "params": {"dataset": "daily"}}).encode()).decode()}}


class FakeSession:
    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body, self.urls = status, body, []

    def get(self, url: str, *, timeout: float) -> Any:
        self.urls.append(url)
        return SimpleNamespace(status_code=self.status, json=lambda: self.body, text=json.dumps(self.body))


def test_the_schedule_is_read_from_its_cloud_scheduler_job() -> None:
    session = FakeSession(200, JOB)
    name = backfill_cloud.job_name("p", "europe-west1", "workflow", "nightly")
    schedule = backfill_cloud.from_job(backfill_cloud.read_job(name, session), "nightly")
    assert session.urls == [f"{backfill_cloud.SCHEDULER_API}/projects/p/locations/europe-west1/jobs/"
                            "workflow-schedule-nightly"]
    assert schedule == backfill_cloud.Schedule("gs://dags/dags/nightly.yaml", "0 2 * * *", "America/New_York",
                                               {"dataset": "daily"})
    with pytest.raises(InputError, match="is not schedule 'hourly'"):
        backfill_cloud.from_job(JOB, "hourly")


@pytest.mark.parametrize(("status", "problem"), [
    (404, "no Cloud Scheduler job projects/p/locations/r/jobs/workflow-schedule-n"),
    (403, "roles/cloudscheduler.viewer"),
    (500, "Cloud Scheduler answered 500"),
])
def test_a_job_that_cannot_be_read_says_why(status: int, problem: str) -> None:
    with pytest.raises(InputError, match=problem):
        backfill_cloud.read_job(backfill_cloud.job_name("p", "r", "workflow", "n"), FakeSession(status, {}))


def test_the_cloud_backfill_sends_one_start_request_per_tick_not_yet_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteStateStore(str(tmp_path / "cloud.sqlite3"))
    store.create_run(RunRecord("nightly-20261101T070000Z", RunStatus.SUCCEEDED, "https://tr"), [])
    sent: list[dict[str, Any]] = []

    def request(body: dict[str, Any]) -> None:  # the functions, at once: the run starts and succeeds
        sent.append(body)
        run_id = f"nightly-{body['scheduled_time'].replace('-', '').replace(':', '')}"
        store.create_run(RunRecord(run_id, RunStatus.SUCCEEDED, "https://tr", step_count=1, succeeded=1), [])

    @contextmanager
    def connect(args: Any, *, starts: bool = False) -> Iterator[Any]:
        assert starts  # the ticks are start requests: the start topic, not the control topic
        yield SimpleNamespace(store=store, request=request, where="the fake")

    monkeypatch.setattr(backfill_cloud, "connect", connect)
    monkeypatch.setattr(backfill_cloud, "CLOUD_POLL", 0.0)
    args = build_parser().parse(["--cloud", "--schedule", "nightly", "--region", "europe-west1", "--from",
                                 "2026-11-01", "--to", "2026-11-03", "--project", "p"])
    out = io.StringIO()
    assert backfill_cloud.backfill_cloud(args, out, FakeSession(200, JOB)) == 0
    store.close()
    assert [b["scheduled_time"] for b in sent] == ["2026-11-02T07:00:00Z", "2026-11-03T07:00:00Z"]
    assert sent[0] == {"dag_path": "gs://dags/dags/nightly.yaml", "schedule": "nightly", "concurrency": "allow",
                       "scheduled_time": "2026-11-02T07:00:00Z", "params": {"dataset": "daily"}}
    text = out.getvalue()
    assert "run nightly-20261101T070000Z  already exists (SUCCEEDED): not started again" in text
    assert "summary: 3 tick(s): 2 started (2 SUCCEEDED); 1 already there (1 SUCCEEDED)" in text
