"""Cancel, rerun and resume requests on the control topic (and the HTTP control function), with
in-memory ports: their checks, the engine message each becomes, and what is refused or ignored."""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from devtools.localcloud.client import id_token_for
from enginekit import ListBus, ScriptedRunner
from support import function_client
from workflow.adapters.embedded.events import RecordedEvents
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.adapters.http.auth import StaticToken
from workflow.admission.run_requests import parse_run_request, run_request
from workflow.bootstrap import cloud as cloud_bootstrap
from workflow.bootstrap.cloud import CloudRuntime
from workflow.bootstrap.control import CloudControl, control
from workflow.engine import handle
from workflow.entrypoints import PUBSUB_PUBLISHED, control_message, start_message
from workflow.errors import InputError, PoisonMessage, TransientError
from workflow.model.messages import CancelRun, CheckJob, ReconcileRun, RerunRun
from workflow.model.states import RunStatus, StepState

BY = "a publisher on the control topic"
ENV = {"WORKFLOW_TR_URL": "https://runner.example", "WORKFLOW_CHECK_STATE_DURATION_SEC": "0",
       "WORKFLOW_RUN_ADMINS": "ops@example.com"}
AS_OPS = {"Authorization": f"Bearer {id_token_for('ops@example.com')}"}  # one of WORKFLOW_RUN_ADMINS
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


def event(body: Any, message_id: str) -> CloudEvent:
    data = base64.b64encode(json.dumps(body).encode()).decode()
    return CloudEvent({"type": PUBSUB_PUBLISHED, "source": "//pubsub.googleapis.com/t"},
                      {"message": {"data": data, "attributes": {}, "messageId": message_id}})


def publish(rt: CloudRuntime, body: Any, message_id: str = "m1") -> None:
    """Deliver `body` as a start-topic message to `on_start_message`'s handler."""
    start_message(event(body, message_id), rt)


def ask(rt: CloudRuntime, body: Any, message_id: str = "c1") -> None:
    """Deliver `body` as a control-topic message to `on_control_message`'s handler."""
    control_message(event(body, message_id), rt)


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
        "r1", "cancelled by a publisher on the control topic")
    assert parse_run_request({"action": "resume", "run_id": "r1"}, 600).message == ReconcileRun("r1", 600)
    assert parse_run_request({"action": "rerun", "run_id": "r1", "reruns": 2, "from": "b"}, 600).message == (
        RerunRun("r1", 2, "b"))
    assert parse_run_request({"action": "rerun", "run_id": "r1", "reruns": 0}, 600).message == RerunRun("r1", 0)


@pytest.mark.parametrize(("body", "problems"), [
    ({"action": "stop", "run_id": "r1"}, ["unknown action 'stop' (known: cancel, rerun, resume)"]),
    ({"action": ["cancel"], "run_id": "r1"}, ["unknown action ['cancel'] (known: cancel, rerun, resume)"]),
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


def test_a_huge_run_id_is_cut_short_wherever_it_is_shown() -> None:
    request = parse_run_request({"action": "cancel", "run_id": "x" * 100_000}, 600)
    assert request.message is None and len(request.run_id) < 200
    assert len(request.problems) == 1 and len(request.problems[0]) < 300


# -- on the control topic ---------------------------------------------------------------------
def test_a_cancel_request_cancels_a_running_run(rt: CloudRuntime, runner: ScriptedRunner) -> None:
    publish(rt, {"dag": DAG, "run_id": "r1"})
    deliver(rt, rounds=1)  # `a` submitted: its check is pending
    assert runner.submitted == ["a"]
    ask(rt, {"action": "cancel", "run_id": "r1"})
    cancel = pending(rt).pop()
    assert cancel == CancelRun("r1", "cancelled by a publisher on the control topic")
    handle(cancel, rt.ports)  # before the pending check
    deliver(rt)
    run = rt.ports.store.get_run("r1")
    assert run is not None and run.status is RunStatus.CANCELLED
    assert [s.state for s in rt.ports.store.list_steps("r1")] == [StepState.CANCELLED] * 2
    assert runner.submitted == ["a"]  # nothing submitted after the cancel


def test_a_rerun_request_runs_the_failed_step_again(rt: CloudRuntime, runner: ScriptedRunner) -> None:
    failed_run(rt)
    runner.healed = True
    ask(rt, {"action": "rerun", "run_id": "r1", "reruns": 0})
    assert pending(rt) == [RerunRun("r1", 0)]
    deliver(rt)
    run = rt.ports.store.get_run("r1")
    assert run is not None and run.status is RunStatus.SUCCEEDED and len(run.reruns) == 1
    assert runner.submitted == ["a", "b", "b"]

    ask(rt, {"action": "rerun", "run_id": "r1", "reruns": 0})  # redelivered
    assert pending(rt) == []


def test_a_resume_request_reconciles_a_running_run(rt: CloudRuntime) -> None:
    publish(rt, {"dag": DAG, "run_id": "r1"})
    pending(rt).clear()  # the first dispatch was lost
    ask(rt, {"action": "resume", "run_id": "r1"})
    quiet_since = rt.ports.clock() - rt.ports.settings.stale_after
    [resume] = pending(rt)
    assert resume == ReconcileRun("r1", rt.ports.settings.submit_lease, resume.quiet_since)
    assert quiet_since - 5 < resume.quiet_since <= quiet_since  # re-checks only jobs quiet for stale_after
    deliver(rt)
    run = rt.ports.store.get_run("r1")
    assert run is not None and run.status is RunStatus.FAILED  # `b` fails: the run went on to its end


@pytest.mark.parametrize(("body", "logged"), [
    ({"action": "cancel", "run_id": "nope"}, f"INVALID cancel request for run 'nope' by {BY}: no run 'nope'"),
    ({"action": "rerun", "run_id": "r1", "reruns": 1}, f"INVALID rerun request for run 'r1' by {BY}: reruns is 1, "
                                                       "but the run has had 0 rerun(s)"),
    ({"action": "rerun", "run_id": "r1", "reruns": 0, "from": "zz"},
     f"INVALID rerun request for run 'r1' by {BY}: run r1 has no step 'zz'"),
    ({"action": "cancel", "run_id": "r1"}, f"ignored cancel request for run r1 by {BY}: it already ended FAILED"),
    ({"action": "resume", "run_id": "r1"}, f"ignored resume request for run r1 by {BY}: it already ended FAILED"),
    ({"action": "halt", "run_id": "r1"}, f"INVALID halt request for run 'r1' by {BY}: unknown action 'halt' "
                                         "(known: cancel, rerun, resume)"),
])
def test_a_request_that_cannot_be_done_is_logged_and_sends_nothing(
    rt: CloudRuntime, caplog: pytest.LogCaptureFixture, body: dict[str, Any], logged: str
) -> None:
    failed_run(rt)
    before = rt.ports.store.list_runs(10)
    with caplog.at_level(logging.INFO, logger="workflow.entrypoints"):
        ask(rt, body)
    assert pending(rt) == []
    assert rt.ports.store.list_runs(10) == before  # no INVALID run recorded for a request about a run
    assert logged in [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.exc_info]


def test_a_rerun_of_a_running_run_is_ignored(rt: CloudRuntime, caplog: pytest.LogCaptureFixture) -> None:
    publish(rt, {"dag": DAG, "run_id": "r1"})
    pending(rt).clear()
    with caplog.at_level(logging.INFO, logger="workflow.entrypoints"):
        ask(rt, {"action": "rerun", "run_id": "r1", "reruns": 0})
    assert pending(rt) == []
    assert f"ignored rerun request for run r1 by {BY}: it is still RUNNING: cancel it first, or resume it" \
        in caplog.messages


def test_an_explicit_start_action_starts_a_run(rt: CloudRuntime) -> None:
    publish(rt, {"action": "start", "dag": DAG, "run_id": "s1"})
    run = rt.ports.store.get_run("s1")
    assert run is not None and run.status is RunStatus.RUNNING


# -- over HTTP --------------------------------------------------------------------------------
@pytest.fixture
def client(rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch) -> Any:
    return function_client("on_control_request", rt, monkeypatch)


def test_requests_over_http_answer_202_400_or_409(client: Any, rt: CloudRuntime) -> None:
    failed_run(rt)
    done = client.post("/", json={"action": "rerun", "run_id": "r1", "reruns": 0}, headers=AS_OPS)
    assert (done.status_code, done.get_json()) == (202, {"run_id": "r1", "action": "rerun"})
    assert pending(rt) == [RerunRun("r1", 0)]
    pending(rt).clear()
    bad = client.post("/", json={"action": "cancel", "run_id": "r1", "why": "x"}, headers=AS_OPS)
    assert bad.status_code == 400 and bad.get_json()["problems"] == [
        "unknown key(s) why (a cancel request takes: action, run_id)"]
    moot = client.post("/", json={"action": "cancel", "run_id": "r1"}, headers=AS_OPS)
    assert (moot.status_code, moot.get_json()) == (409, {"run_id": "r1", "error": "it already ended FAILED"})
    assert pending(rt) == []


# -- the command line's side of the cloud -----------------------------------------------------
def test_the_cli_control_needs_a_project_and_uses_the_flags_over_the_environment() -> None:
    with pytest.raises(InputError, match="GOOGLE_CLOUD_PROJECT is not set"):
        control({}, store=SqliteStateStore(":memory:"), request=lambda body: None)
    sent: list[Any] = []
    ctl = control({"GOOGLE_CLOUD_PROJECT": "env-p", "WORKFLOW_FIRESTORE_DATABASE": "env-db"},
                                  project="flag-p", store=SqliteStateStore(":memory:"), request=sent.append)
    assert "project flag-p, database env-db" in ctl.where
    ctl.request({"action": "cancel", "run_id": "r1"})
    assert sent == [{"action": "cancel", "run_id": "r1"}]


# -- `python main.py cancel|rerun|status --cloud`, with the functions in this process ---------
class CloudCli:
    """The command line with `--cloud`, on a cloud control whose control topic hands each
    request to the entry point, and its engine messages to the engine, in this process."""

    def __init__(self, rt: CloudRuntime) -> None:
        self.rt = rt
        self.published: list[dict[str, Any]] = []
        self.lost = False  # requests are published but never handled
        self.control = CloudControl(rt.ports.store, self.request, (TransientError,),
                                    "Firestore of project p, database (default)")

    def request(self, body: Any) -> None:
        self.published.append(dict(body))
        if not self.lost:
            run_request(body, self.rt)
            deliver(self.rt)

    def __call__(self, *argv: str) -> tuple[int, str]:
        """(exit code, stdout) of `python main.py ARGV --cloud --project p`."""
        from workflow import cli as command_line

        out = io.StringIO()
        code = command_line.main([*argv, "--cloud", "--project", "p"], out=out)
        return code, out.getvalue()


@pytest.fixture
def cli(rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch) -> CloudCli:
    from workflow.cli import cloud_requests

    fake = CloudCli(rt)
    monkeypatch.setattr(cloud_requests, "control", lambda **where: fake.control)
    monkeypatch.setattr(cloud_requests, "CLOUD_POLL", 0.01)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    return fake


def test_cancel_on_the_cloud_publishes_waits_and_prints_the_run(rt: CloudRuntime, cli: CloudCli) -> None:
    publish(rt, {"dag": DAG, "run_id": "r1"})
    deliver(rt, rounds=1)
    code, out = cli("cancel", "r1")
    assert code == 0 and cli.published == [{"action": "cancel", "run_id": "r1"}]  # a cancel done exits 0
    lines = out.splitlines()
    assert lines[0] == 'requested: {"action": "cancel", "run_id": "r1"} on the control topic'
    assert lines[1].startswith("run r1  CANCELLED  DAG ")
    assert "  job a-1 of step a keeps running at the Task Runner (the protocol has no cancel request)" in lines
    assert cli("cancel", "r1") == (1, "run r1 already ended CANCELLED: nothing to cancel\n")


def test_rerun_on_the_cloud_sends_the_count_it_saw_and_follows_the_run(
    rt: CloudRuntime, cli: CloudCli, runner: ScriptedRunner
) -> None:
    failed_run(rt)
    runner.healed = True
    code, out = cli("rerun", "r1", "--from", "a")
    assert code == 0 and cli.published == [{"action": "rerun", "run_id": "r1", "reruns": 0, "from": "a"}]
    assert out.splitlines()[1].startswith("run r1  SUCCEEDED  DAG ")
    assert runner.submitted == ["a", "b", "a", "b"]
    assert cli("rerun", "r1", "--from", "zz") == (2, "")
    assert cli.published == [{"action": "rerun", "run_id": "r1", "reruns": 0, "from": "a"}]


def test_a_request_the_run_does_not_show_in_time_exits_3(
    rt: CloudRuntime, cli: CloudCli, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(rt, {"dag": DAG, "run_id": "r1"})
    cli.lost = True
    code, out = cli("cancel", "r1", "--timeout", "0.05")
    assert code == 3 and "run r1  RUNNING" in out
    assert "error: run r1 does not show the cancel request after 0.05 s" in capsys.readouterr().err
    assert cli("cancel", "r1", "--no-wait") == (0, 'requested: {"action": "cancel", "run_id": "r1"} '
                                                   "on the control topic\n")


def test_the_cloud_refusing_is_an_error_naming_the_store_not_a_traceback(
    rt: CloudRuntime, cli: CloudCli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def down(*args: Any) -> None:
        raise TransientError("Firestore: 503 unavailable")

    monkeypatch.setattr(rt.ports.store, "list_runs", down)
    assert cli("runs") == (2, "")
    assert capsys.readouterr().err == ("error: Firestore of project p, database (default): "
                                       "Firestore: 503 unavailable\n")
    assert cli("status", "nope")[0] == 2
    assert "error: no run 'nope' in Firestore of project p, database (default) ('python main.py runs --cloud' " \
           "lists them)" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "error"), [
    (["runs", "--cloud"], "--cloud needs a project: --project ID, or GOOGLE_CLOUD_PROJECT"),
    (["status", "r1", "--database", "d"], "--database: only with --cloud"),
    (["cancel", "r1", "--no-wait"], "--no-wait: only with --cloud"),
    (["resume", "r1", "--cloud", "--project", "p", "--check-state-duration-sec", "1"],
     "--check-state-duration-sec: for the embedded runtime, not with --cloud"),
])
def test_options_of_the_other_runtime_are_refused(
    argv: list[str], error: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workflow import cli as command_line

    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    assert command_line.main(argv) == 2
    assert error in capsys.readouterr().err


def test_a_rerun_on_the_cloud_with_a_fixed_dag_file_runs_the_fix(
    rt: CloudRuntime, cli: CloudCli, runner: ScriptedRunner, tmp_path: Path
) -> None:
    failed_run(rt)  # b's image fails
    fixed, reshaped = tmp_path / "fixed.json", tmp_path / "reshaped.json"
    fixed.write_text(json.dumps(DAG).replace("img/b-error", "img/b-fixed"))
    reshaped.write_text(json.dumps({"steps": DAG["steps"][:1]}))
    assert cli("rerun", "r1", "--dag-path", str(reshaped)) == (2, "") and cli.published == []
    code, _ = cli("rerun", "r1", "--dag-path", str(fixed))
    assert code == 0 and cli.published[0]["dag"]["steps"][1]["task"]["imageUri"] == "img/b-fixed"
    assert runner.submitted == ["a", "b", "b"]  # a succeeded: not submitted again
    b = rt.ports.store.get_step("r1", "b")
    assert b is not None and b.task.image_uri == "img/b-fixed" and b.history[0].definition.startswith("img/b-error@")
    refused = run_request({"action": "rerun", "run_id": "r1", "reruns": 1, "dag": {"steps": DAG["steps"][:1]}}, rt)
    assert refused.message is None and "changes the run's shape" in refused.problems[0]


# -- an INVALID run is final ------------------------------------------------------------------
def invalid_run(rt: CloudRuntime) -> None:
    publish(rt, {"dag": {"steps": []}, "run_id": "bad"})
    run = rt.ports.store.get_run("bad")
    assert run is not None and run.status is RunStatus.INVALID


def test_an_invalid_run_stays_invalid_after_rerun_and_resume_requests(rt: CloudRuntime) -> None:
    invalid_run(rt)
    for n, body in enumerate([{"action": "rerun", "run_id": "bad", "reruns": 0},
                              {"action": "resume", "run_id": "bad"}]):
        ask(rt, body, message_id=f"m{n + 2}")
        assert pending(rt) == []  # refused at the edge: nothing handed to the engine
    with pytest.raises(PoisonMessage, match="INVALID"):  # and the engine refuses it too
        handle(RerunRun("bad", 0), rt.ports)
    handle(ReconcileRun("bad", 600), rt.ports)
    deliver(rt)
    run = rt.ports.store.get_run("bad")
    assert run is not None and run.status is RunStatus.INVALID and run.reruns == ()
    events = rt.ports.events.published  # type: ignore[union-attr]
    assert [(e["run_id"], e["status"]) for e in events] == [("bad", "INVALID")]  # one run.ended, for its one end


def test_resume_requests_for_a_run_with_live_checks_start_no_more_polling(rt: CloudRuntime,
                                                                          runner: ScriptedRunner) -> None:
    three = {"steps": [{"id": s, "task": {"imageUri": f"img/{s}"}} for s in ("a", "b", "c")]}
    runner.checks = 10_000  # the jobs run on
    publish(rt, {"dag": three, "run_id": "live"})
    deliver(rt, rounds=1)  # submitted: each job's first check pending
    checks_before = [m for m in pending(rt) if isinstance(m, CheckJob)]
    assert len(checks_before) == 3
    for n in range(20):
        ask(rt, {"action": "resume", "run_id": "live"}, message_id=f"resume-{n}")
    resumes = [m for m in pending(rt) if isinstance(m, ReconcileRun)]
    assert len(resumes) == 20
    for resume in resumes:
        handle(resume, rt.ports)
    chains = [m for m in pending(rt) if isinstance(m, CheckJob)]
    assert len(chains) == 3, f"{len(chains)} checks per round instead of 3"
    handle(CancelRun("live", "done"), rt.ports)


def test_a_rerun_with_a_dag_of_parameters_takes_the_runs_own_values(rt: CloudRuntime, runner: ScriptedRunner) -> None:
    dag = {"params": {"shards": {"type": "list", "default": ["x"]}, "img": {"type": "string", "default": "b-error"}},
           "steps": [{"id": "a", "task": {"imageUri": "img/a"}},
                     {"id": "b", "dependsOn": ["a"], "forEach": "{{ params.shards }}",
                      "task": {"imageUri": "img/b-error", "args": ["{{ item }}"]}}]}
    publish(rt, {"dag": dag, "run_id": "r1", "params": {"shards": ["p", "q"]}})
    deliver(rt)
    assert [s.step_id for s in rt.ports.store.list_steps("r1")] == ["a", "b.0", "b.1"]
    runner.healed = True
    fixed_b = {**dag["steps"][1], "task": {"imageUri": "img/b", "args": ["{{ item }}"]}}
    fixed = {**dag, "steps": [dag["steps"][0], fixed_b]}
    ask(rt, {"action": "rerun", "run_id": "r1", "reruns": 0, "dag": fixed})  # its default list would be ["x"]
    assert len(pending(rt)) == 1
    deliver(rt)
    run = rt.ports.store.get_run("r1")
    assert run is not None and run.status is RunStatus.SUCCEEDED
    assert {s.step_id: s.task.args for s in rt.ports.store.list_steps("r1")} == {
        "a": None, "b.0": ("p",), "b.1": ("q",)}
