"""A schedule's tick at the start routes, with in-memory ports: its run id from the schedule
and X-CloudScheduler-ScheduleTime, a duplicate delivery starting nothing new, and what
`concurrency` does while the schedule's previous run is RUNNING."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_entrypoints import DAG, ENV, KEY, FileDags, RecordingStore, pubsub_event

from enginekit import ListBus, ScriptedRunner
from support import function_client
from workflow.adapters.embedded.events import RecordedEvents
from workflow.adapters.http.auth import SealedTokens, StaticToken
from workflow.bootstrap import cloud as cloud_bootstrap
from workflow.bootstrap.cloud import CloudRuntime
from workflow.entrypoints import start_message
from workflow.model import ticks
from workflow.model.messages import CancelRun, DispatchStep, StartRun
from workflow.model.states import RunStatus

NOW = 1_793_500_000.0  # 2026-11-01T02:26:40Z
TICK = "2026-11-01T00:00:00Z"
TICK_ID = "nightly-20261101T000000Z"
HEADER = {ticks.SCHEDULE_TIME_HEADER: TICK}
DATED = {"steps": [{"id": "a", "task": {"imageUri": "img/a", "args": ["--day", "{{ run.date }}"]}}]}


@pytest.fixture
def rt(tmp_path: Path) -> CloudRuntime:
    (tmp_path / "x.yaml").write_text(json.dumps(DAG))
    return cloud_bootstrap.cloud(
        {**ENV, "WORKFLOW_REPLACING_SCHEDULES": "nightly"}, store=RecordingStore(), bus=ListBus(),
        runner=ScriptedRunner(), dags=FileDags(tmp_path),
        tokens=SealedTokens(KEY, fallback=StaticToken("own")), events=RecordedEvents(), clock=lambda: NOW)


@pytest.fixture
def client(rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch) -> Any:
    """functions-framework's test client of `on_start_request`, on the `rt` runtime."""
    return function_client("on_start_request", rt, monkeypatch)


def published(rt: CloudRuntime) -> list[Any]:
    bus = rt.ports.bus
    assert isinstance(bus, ListBus)
    return bus.pending


def ended(rt: CloudRuntime) -> list[dict[str, Any]]:
    events = rt.ports.events
    assert isinstance(events, RecordedEvents)
    return events.published


def tick(client: Any, when: str = TICK, **body: Any) -> Any:
    return client.post("/", json={"dag_path": "gs://b/x.yaml", "schedule": "nightly", **body},
                       headers={ticks.SCHEDULE_TIME_HEADER: when})


def test_the_same_tick_delivered_twice_starts_one_run_named_by_its_schedule_and_time(
        client: Any, rt: CloudRuntime) -> None:
    answers = [tick(client) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    assert [a.get_json() for a in answers] == [{"run_id": TICK_ID}] * 2
    assert published(rt) == [DispatchStep(TICK_ID, "a", 1)]
    run = rt.ports.store.runs.get_run(TICK_ID)
    assert run is not None and run.status is RunStatus.RUNNING and run.source == "gs://b/x.yaml"
    assert (run.inputs.schedule, run.inputs.scheduled_at) == ("nightly", 1_793_491_200.0)


def test_a_tick_without_the_header_is_named_by_the_time_of_the_request(client: Any, rt: CloudRuntime) -> None:
    answer = client.post("/", json={"dag_path": "gs://b/x.yaml", "schedule": "nightly"})
    assert answer.status_code == 202 and answer.get_json() == {"run_id": "nightly-20261101T022640Z"}
    given = client.post("/", json={"dag": DAG, "schedule": "nightly", "scheduled_time": "2026-11-02T01:00:00+01:00",
                                   "concurrency": "allow"})
    assert given.get_json() == {"run_id": "nightly-20261102T000000Z"}  # its own time, in UTC
    run = rt.ports.store.runs.get_run("nightly-20261101T022640Z")
    assert run is not None and run.inputs.scheduled_at == NOW


def test_forbid_records_a_tick_during_the_previous_run_skipped_and_answers_it_again(
        client: Any, rt: CloudRuntime) -> None:
    assert tick(client).status_code == 202
    later = [tick(client, "2026-11-02T00:00:00Z") for _ in range(2)]
    why = f"the schedule's run {TICK_ID} was still RUNNING (concurrency forbid): this tick started nothing"
    assert [a.status_code for a in later] == [200, 200]
    assert [a.get_json() for a in later] == [{"run_id": "nightly-20261102T000000Z", "skipped": why}] * 2
    skipped = rt.ports.store.runs.get_run("nightly-20261102T000000Z")
    assert skipped is not None and skipped.status is RunStatus.SKIPPED and skipped.problems == (why,)
    assert skipped.inputs.schedule == "nightly" and skipped.finished_at == NOW and skipped.step_count == 0
    assert rt.ports.store.steps.list_steps(skipped.run_id) == []
    assert published(rt) == [DispatchStep(TICK_ID, "a", 1)]  # nothing of the skipped tick
    assert [(e["run_id"], e["status"]) for e in ended(rt)] == [(skipped.run_id, "SKIPPED")]  # announced once
    other = client.post("/", json={"dag": DAG, "schedule": "hourly"}, headers=HEADER)
    assert other.status_code == 202  # another schedule's runs do not count


def test_allow_starts_beside_the_running_run_and_replace_cancels_it_first(client: Any, rt: CloudRuntime) -> None:
    assert tick(client).status_code == 202
    allowed = tick(client, "2026-11-02T00:00:00Z", concurrency="allow")
    assert allowed.status_code == 202
    published(rt).clear()
    replaced = tick(client, "2026-11-03T00:00:00Z", concurrency="replace")
    assert replaced.status_code == 202 and replaced.get_json() == {"run_id": "nightly-20261103T000000Z"}
    reason = "replaced by nightly-20261103T000000Z (schedule nightly, concurrency replace)"
    cancels = sorted(published(rt)[:2], key=lambda m: m.run_id)
    assert cancels == [CancelRun(TICK_ID, reason), CancelRun("nightly-20261102T000000Z", reason)]
    assert published(rt)[2:] == [DispatchStep("nightly-20261103T000000Z", "a", 1)]
    published(rt).clear()
    assert tick(client, "2026-11-03T00:00:00Z", concurrency="replace").status_code == 202
    assert published(rt) == []  # the same tick again cancels nothing more


def test_replace_is_only_for_the_schedules_the_deployment_names(client: Any, rt: CloudRuntime) -> None:
    assert client.post("/", json={"dag": DAG, "schedule": "hourly"}, headers=HEADER).status_code == 202
    published(rt).clear()
    later = {ticks.SCHEDULE_TIME_HEADER: "2026-11-01T01:00:00Z"}
    refused = client.post("/", json={"dag": DAG, "schedule": "hourly", "concurrency": "replace"}, headers=later)
    assert refused.status_code == 400 and "only the deployment sets it" in refused.get_json()["problems"][0]
    assert published(rt) == []  # nothing cancelled, nothing started
    assert rt.ports.store.get_run("hourly-20261101T010000Z") is None  # nor recorded: the real tick stays free
    assert client.post("/", json={"dag": DAG, "schedule": "hourly", "concurrency": "allow"},
                       headers=later).status_code == 202


@pytest.mark.parametrize(("body", "header", "problem"), [
    ({"schedule": "night ly"}, TICK, "schedule 'night ly' is not 1-63 of"),
    ({"schedule": "n" * 64}, TICK, "is not 1-63 of"),
    ({"schedule": "nightly"}, "2026-11-01 00:00", "is not an RFC 3339 time with its offset"),
    ({"schedule": "nightly"}, "2026-11-01T00:00:00", "X-CloudScheduler-ScheduleTime header"),
    ({"schedule": "nightly", "concurrency": "queue"}, TICK, "concurrency must be one of forbid, allow, replace"),
    ({"schedule": "nightly", "run_id": "mine"}, TICK, "give 'run_id' or 'schedule', not both"),
    ({"schedule": "nightly", "scheduled_time": TICK}, TICK, "header or scheduled_time, not both"),
    ({"concurrency": "allow", "scheduled_time": TICK}, None, "scheduled_time, concurrency: only with 'schedule'"),
])
def test_a_malformed_tick_is_recorded_invalid_with_what_is_wrong(
        client: Any, rt: CloudRuntime, body: dict[str, Any], header: str | None, problem: str) -> None:
    headers = {ticks.SCHEDULE_TIME_HEADER: header} if header else {}
    answer = client.post("/", json={"dag": DAG, **body}, headers=headers)
    assert answer.status_code == 400, answer.get_json()
    assert problem in " ".join(answer.get_json()["problems"])
    assert published(rt) == []


def test_an_invalid_tick_keeps_its_tick_id_so_a_redelivery_answers_the_same(client: Any, rt: CloudRuntime) -> None:
    answers = [tick(client, concurrency="later") for _ in range(2)]
    assert [a.status_code for a in answers] == [400, 400] and answers[0].get_json() == answers[1].get_json()
    run = rt.ports.store.runs.get_run(TICK_ID)
    assert run is not None and run.status is RunStatus.INVALID


def test_a_tick_on_the_start_topic_names_its_time(rt: CloudRuntime) -> None:
    body = {"dag_path": "gs://b/x.yaml", "schedule": "nightly", "scheduled_time": TICK, "concurrency": "allow"}
    for _ in range(2):
        start_message(pubsub_event(json.dumps(body).encode(), message_id="m7"), rt)
    assert published(rt) == [DispatchStep(TICK_ID, "a", 1)]
    untimed = {"dag_path": "gs://b/x.yaml", "schedule": "nightly"}
    start_message(pubsub_event(json.dumps(untimed).encode(), message_id="m8"), rt)
    run = rt.ports.store.runs.get_run("start-m8")
    assert run is not None and run.status is RunStatus.INVALID
    assert "needs 'scheduled_time'" in run.problems[0]


def test_a_ticks_job_gets_the_date_of_its_tick_as_run_date(client: Any, rt: CloudRuntime) -> None:
    store = rt.ports.store
    assert isinstance(store, RecordingStore)
    late = client.post("/", json={"dag": DATED, "schedule": "nightly"},
                       headers={ticks.SCHEDULE_TIME_HEADER: "2026-11-01T23:30:00-05:00"})
    assert late.get_json() == {"run_id": "nightly-20261102T043000Z"}
    _, steps = store.created[-1]
    assert steps[0].task.args == ("--day", "2026-11-02")  # the tick's UTC date


def test_a_start_run_of_a_tick_carries_its_inputs(rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    from workflow.admission import start_requests

    handled: list[StartRun] = []
    monkeypatch.setattr(start_requests, "handle", lambda msg, ports: handled.append(msg))
    body = {"dag": DAG, "schedule": "nightly", "scheduled_time": TICK}
    start_message(pubsub_event(json.dumps(body).encode()), rt)
    assert [(m.run_id, m.inputs.schedule, m.inputs.scheduled_at) for m in handled] == [
        (TICK_ID, "nightly", 1_793_491_200.0)]


def test_a_skipped_tick_is_listed_shown_with_why_and_never_rerun(tmp_path: Path) -> None:
    import io

    from workflow.adapters.embedded.sqlite_store import SqliteStateStore
    from workflow.cli import main as cli
    from workflow.engine import handle
    from workflow.errors import PoisonMessage
    from workflow.model.inputs import RunInputs
    from workflow.model.messages import RerunRun
    from workflow.model.records import RunRecord

    db = str(tmp_path / "runs.sqlite3")
    store = SqliteStateStore(db)
    why = f"the schedule's run {TICK_ID} was still RUNNING (concurrency forbid): this tick started nothing"
    store.create_run(RunRecord("nightly-20261102T000000Z", RunStatus.SKIPPED, "https://tr", source="gs://b/x.yaml",
                               created_at=NOW, finished_at=NOW, problems=(why,),
                               inputs=RunInputs(scheduled_at=NOW, schedule="nightly")), [])
    rt = cloud_bootstrap.cloud(ENV, store=store, bus=ListBus(), runner=ScriptedRunner(), dags=FileDags(tmp_path),
                               tokens=SealedTokens(KEY, fallback=StaticToken("own")), events=RecordedEvents())
    with pytest.raises(PoisonMessage, match="it is SKIPPED"):
        handle(RerunRun("nightly-20261102T000000Z", 0), rt.ports)
    store.close()
    listed, shown, rerun = io.StringIO(), io.StringIO(), io.StringIO()
    assert cli(["runs", "--status", "skipped", "--db", db], out=listed) == 0
    assert "nightly-20261102T000000Z  SKIPPED  gs://b/x.yaml" in listed.getvalue()
    assert cli(["status", "nightly-20261102T000000Z", "--db", db], out=shown) == 1
    assert f"  skipped: {why}" in shown.getvalue()
    assert cli(["rerun", "nightly-20261102T000000Z", "--db", db, "--tr-auth-jwt", "none"], out=rerun,
               runner=ScriptedRunner()) == 2
    assert "it is SKIPPED: a schedule's tick that started nothing" in rerun.getvalue()


def test_the_run_page_offers_no_rerun_of_a_skipped_tick() -> None:
    from workflow.model.records import RunRecord
    from workflow.ui.actions import allowed

    def run(status: RunStatus) -> RunRecord:
        return RunRecord("r", status, "https://tr")

    assert [s for s in RunStatus if allowed("rerun", run(s))] == [RunStatus.SUCCEEDED, RunStatus.FAILED,
                                                                 RunStatus.CANCELLED]
    assert not allowed("cancel", run(RunStatus.SKIPPED)) and not allowed("resume", run(RunStatus.SKIPPED))
