"""Cancel, rerun and resume requests on the start topic (and the HTTP start function), with
in-memory ports: their checks, the engine message each becomes, and what is refused or ignored."""

from __future__ import annotations

import base64
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

import main
from enginekit import ListBus, ScriptedRunner
from workflow.adapters.embedded.events import RecordedEvents
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.adapters.http.auth import StaticToken
from workflow.bootstrap import cloud as cloud_bootstrap
from workflow.bootstrap.cloud import CloudRuntime
from workflow.engine import handle
from workflow.entrypoints import PUBSUB_PUBLISHED, parse_run_request, start_message
from workflow.errors import InputError
from workflow.model.messages import CancelRun, ReconcileRun, RerunRun
from workflow.model.states import RunStatus, StepState

ENV = {"WORKFLOW_TR_URL": "https://runner.example", "WORKFLOW_CHECK_STATE_DURATION_SEC": "0"}
DAG = {"steps": [{"id": "a", "task": {"imageUri": "img/a"}},
                 {"id": "b", "dependsOn": ["a"], "task": {"imageUri": "img/b-error"}}]}


@pytest.fixture
def runner() -> ScriptedRunner:
    return ScriptedRunner(checks=1)


@pytest.fixture
def rt(runner: ScriptedRunner) -> CloudRuntime:
    from workflow.adapters.http.auth import SealedTokens

    return cloud_bootstrap.cloud(ENV, store=SqliteStateStore(":memory:"), bus=ListBus(), runner=runner,
                                 tokens=SealedTokens(None, fallback=StaticToken("own")), events=RecordedEvents())


def publish(rt: CloudRuntime, body: Any, message_id: str = "m1") -> None:
    """Deliver `body` as a start-topic message to `on_start_message`'s handler."""
    data = base64.b64encode(json.dumps(body).encode()).decode()
    event = CloudEvent({"type": PUBSUB_PUBLISHED, "source": "//pubsub.googleapis.com/t"},
                       {"message": {"data": data, "attributes": {}, "messageId": message_id}})
    start_message(event, rt)


def pending(rt: CloudRuntime) -> list[Any]:
    bus = rt.ports.bus
    assert isinstance(bus, ListBus)
    return bus.pending


def deliver(rt: CloudRuntime, rounds: int | None = None) -> None:
    """Hand the published engine messages to the engine, all of them or `rounds` at a time."""
    done = 0
    while pending(rt) and (rounds is None or done < rounds):
        batch = list(pending(rt))
        pending(rt).clear()
        for msg in batch:
            handle(msg, rt.ports)
        done += 1


def failed_run(rt: CloudRuntime, run_id: str = "r1") -> None:
    publish(rt, {"dag": DAG, "run_id": run_id})
    deliver(rt)
    run = rt.ports.store.get_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED


# -- the shape of a request -------------------------------------------------------------------
def test_each_action_becomes_its_engine_message() -> None:
    assert parse_run_request({"action": "cancel", "run_id": "r1"}, 600).message == CancelRun(
        "r1", "cancelled by a request on the start topic")
    assert parse_run_request({"action": "resume", "run_id": "r1"}, 600).message == ReconcileRun("r1", 600)
    assert parse_run_request({"action": "rerun", "run_id": "r1", "reruns": 2, "from": "b"}, 600).message == (
        RerunRun("r1", 2, "b"))
    assert parse_run_request({"action": "rerun", "run_id": "r1", "reruns": 0}, 600).message == RerunRun("r1", 0)


@pytest.mark.parametrize(("body", "problems"), [
    ({"action": "stop", "run_id": "r1"}, ["unknown action 'stop' (known: start, cancel, rerun, resume)"]),
    ({"action": ["cancel"], "run_id": "r1"}, ["unknown action ['cancel'] (known: start, cancel, rerun, resume)"]),
    ({"action": "cancel"}, ["run_id is missing"]),
    ({"action": "cancel", "run_id": "a/b"}, ["run_id 'a/b' is not 1-128 of A-Z a-z 0-9 . _ - "
                                             "(and not '.', '..' or __name__)"]),
    ({"action": "resume", "run_id": 7}, ["run_id must be a string, not int"]),
    ({"action": "cancel", "run_id": "r1", "reason": "x", "dag": {}},
     ["unknown key(s) dag, reason (a cancel request takes: action, run_id)"]),
    ({"action": "rerun", "run_id": "r1"},
     ["reruns must be a whole number >= 0 (the run's count of reruns so far), not None"]),
    ({"action": "rerun", "run_id": "r1", "reruns": True},
     ["reruns must be a whole number >= 0 (the run's count of reruns so far), not True"]),
    ({"action": "rerun", "run_id": "r1", "reruns": -1, "from": ""},
     ["reruns must be a whole number >= 0 (the run's count of reruns so far), not -1",
      "from '' is not 1-128 of A-Z a-z 0-9 . _ - (and not '.', '..' or __name__)"]),
])
def test_a_malformed_request_names_every_problem(body: dict[str, Any], problems: list[str]) -> None:
    request = parse_run_request(body, 600)
    assert request.message is None and list(request.problems) == problems


# -- on the start topic -----------------------------------------------------------------------
def test_a_cancel_request_cancels_a_running_run(rt: CloudRuntime, runner: ScriptedRunner) -> None:
    publish(rt, {"dag": DAG, "run_id": "r1"})
    deliver(rt, rounds=1)  # `a` submitted: its check is pending
    assert runner.submitted == ["a"]
    publish(rt, {"action": "cancel", "run_id": "r1"}, message_id="m2")
    cancel = pending(rt).pop()
    assert cancel == CancelRun("r1", "cancelled by a request on the start topic")
    handle(cancel, rt.ports)  # before the pending check
    deliver(rt)
    run = rt.ports.store.get_run("r1")
    assert run is not None and run.status is RunStatus.CANCELLED
    assert [s.state for s in rt.ports.store.list_steps("r1")] == [StepState.CANCELLED] * 2
    assert runner.submitted == ["a"]  # nothing submitted after the cancel


def test_a_rerun_request_runs_the_failed_step_again(rt: CloudRuntime, runner: ScriptedRunner) -> None:
    failed_run(rt)
    runner.healed = True
    publish(rt, {"action": "rerun", "run_id": "r1", "reruns": 0}, message_id="m2")
    assert pending(rt) == [RerunRun("r1", 0)]
    deliver(rt)
    run = rt.ports.store.get_run("r1")
    assert run is not None and run.status is RunStatus.SUCCEEDED and len(run.reruns) == 1
    assert runner.submitted == ["a", "b", "b"]

    publish(rt, {"action": "rerun", "run_id": "r1", "reruns": 0}, message_id="m2")  # redelivered
    assert pending(rt) == []


def test_a_resume_request_reconciles_a_running_run(rt: CloudRuntime) -> None:
    publish(rt, {"dag": DAG, "run_id": "r1"})
    pending(rt).clear()  # the first dispatch was lost
    publish(rt, {"action": "resume", "run_id": "r1"}, message_id="m2")
    assert pending(rt) == [ReconcileRun("r1", rt.ports.settings.submit_lease)]
    deliver(rt)
    run = rt.ports.store.get_run("r1")
    assert run is not None and run.status is RunStatus.FAILED  # `b` fails: the run went on to its end


@pytest.mark.parametrize(("body", "logged"), [
    ({"action": "cancel", "run_id": "nope"}, "INVALID cancel request for run 'nope': no run 'nope'"),
    ({"action": "rerun", "run_id": "r1", "reruns": 1}, "INVALID rerun request for run 'r1': reruns is 1, "
                                                       "but the run has had 0 rerun(s)"),
    ({"action": "rerun", "run_id": "r1", "reruns": 0, "from": "zz"},
     "INVALID rerun request for run 'r1': run r1 has no step 'zz'"),
    ({"action": "cancel", "run_id": "r1"}, "ignored cancel request for run r1: it already ended FAILED"),
    ({"action": "resume", "run_id": "r1"}, "ignored resume request for run r1: it already ended FAILED"),
    ({"action": "halt", "run_id": "r1"}, "INVALID halt request for run 'r1': unknown action 'halt' "
                                         "(known: start, cancel, rerun, resume)"),
])
def test_a_request_that_cannot_be_done_is_logged_and_sends_nothing(
    rt: CloudRuntime, caplog: pytest.LogCaptureFixture, body: dict[str, Any], logged: str
) -> None:
    failed_run(rt)
    before = rt.ports.store.list_runs(10)
    with caplog.at_level(logging.INFO, logger="workflow.entrypoints"):
        publish(rt, body, message_id="m2")
    assert pending(rt) == []
    assert rt.ports.store.list_runs(10) == before  # no INVALID run recorded for a request about a run
    assert logged in [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info]


def test_a_rerun_of_a_running_run_is_ignored(rt: CloudRuntime, caplog: pytest.LogCaptureFixture) -> None:
    publish(rt, {"dag": DAG, "run_id": "r1"})
    pending(rt).clear()
    with caplog.at_level(logging.INFO, logger="workflow.entrypoints"):
        publish(rt, {"action": "rerun", "run_id": "r1", "reruns": 0}, message_id="m2")
    assert pending(rt) == []
    assert "ignored rerun request for run r1: it is still RUNNING: cancel it first, or resume it" in caplog.messages


def test_an_explicit_start_action_starts_a_run(rt: CloudRuntime) -> None:
    publish(rt, {"action": "start", "dag": DAG, "run_id": "s1"})
    run = rt.ports.store.get_run("s1")
    assert run is not None and run.status is RunStatus.RUNNING


# -- over HTTP --------------------------------------------------------------------------------
@pytest.fixture
def client(rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch) -> Any:
    import functions_framework

    monkeypatch.setitem(sys.modules, "main", sys.modules["main"])
    app = functions_framework.create_app("on_start_request", str(Path(main.__file__)))
    monkeypatch.setattr(sys.modules["main"], "runtime", lambda: rt)
    return app.test_client()


def test_requests_over_http_answer_202_400_or_409(client: Any, rt: CloudRuntime) -> None:
    failed_run(rt)
    done = client.post("/", json={"action": "rerun", "run_id": "r1", "reruns": 0})
    assert (done.status_code, done.get_json()) == (202, {"run_id": "r1", "action": "rerun"})
    assert pending(rt) == [RerunRun("r1", 0)]
    pending(rt).clear()
    bad = client.post("/", json={"action": "cancel", "run_id": "r1", "why": "x"})
    assert bad.status_code == 400 and bad.get_json()["problems"] == [
        "unknown key(s) why (a cancel request takes: action, run_id)"]
    moot = client.post("/", json={"action": "cancel", "run_id": "r1"})
    assert (moot.status_code, moot.get_json()) == (409, {"run_id": "r1", "error": "it already ended FAILED"})
    assert pending(rt) == []


# -- the command line's side of the cloud -----------------------------------------------------
def test_the_cli_control_needs_a_project_and_uses_the_flags_over_the_environment() -> None:
    with pytest.raises(InputError, match="GOOGLE_CLOUD_PROJECT is not set"):
        cloud_bootstrap.control({}, store=SqliteStateStore(":memory:"), request=lambda body: None)
    sent: list[Any] = []
    ctl = cloud_bootstrap.control({"GOOGLE_CLOUD_PROJECT": "env-p", "WORKFLOW_FIRESTORE_DATABASE": "env-db"},
                                  project="flag-p", store=SqliteStateStore(":memory:"), request=sent.append)
    assert "project flag-p, database env-db" in ctl.where
    ctl.request({"action": "cancel", "run_id": "r1"})
    assert sent == [{"action": "cancel", "run_id": "r1"}]
