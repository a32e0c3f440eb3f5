"""The control route with in-memory ports: the start route refuses cancel, rerun and resume;
over HTTP the verified caller is read from its ID token, recorded as a run's starter and on
what it asks, and limited to the runs it started (or WORKFLOW_RUN_ADMINS); a rerun may bring
its own token, kept sealed and never shown."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from cloudevents.http import CloudEvent

import main
from devtools.localcloud.client import id_token_for
from enginekit import ListBus, ScriptedRunner
from support import function_client
from workflow.adapters.embedded.events import RecordedEvents
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.adapters.http.auth import SealedTokens, StaticToken
from workflow.bootstrap import cloud as cloud_bootstrap
from workflow.bootstrap.cloud import CloudRuntime
from workflow.bootstrap.control import CloudControl
from workflow.engine import handle
from workflow.entrypoints import PUBSUB_PUBLISHED, control_message, start_message
from workflow.entrypoints.callers import verified_caller
from workflow.errors import InputError, TransientError
from workflow.model.dag import Task
from workflow.model.messages import CancelRun, RerunRun
from workflow.model.states import RunStatus, StepState
from workflow.settings import EdgeSettings

KEY = "q3v6oVn8kR9A0QG7lq2m2n7pPZxG2Jm0y9dQ9ZpVb3U="
ENV = {"WORKFLOW_TR_URL": "https://runner.example", "WORKFLOW_CHECK_STATE_DURATION_SEC": "0",
       "WORKFLOW_RUN_ADMINS": "Ops@Example.com, oncall@example.com"}
DAG = {"steps": [{"id": "a", "task": {"imageUri": "img/a"}},
                 {"id": "b", "dependsOn": ["a"], "task": {"imageUri": "img/b-error"}}]}
RERUN_TOKEN = "rerun-SECRET-456"  # must never show in a log line, an answer or a record


def bearer(email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {id_token_for(email)}"}


@dataclass
class TokenRunner(ScriptedRunner):
    """Also notes the sealed token each submission was handed."""

    auths: list[str] = field(default_factory=list)

    def submit(self, url: str, task: Task, auth: str = "", run_id: str = "") -> Any:
        self.auths.append(auth)
        return super().submit(url, task, auth, run_id)


@pytest.fixture
def runner() -> TokenRunner:
    return TokenRunner(checks=1)


def runtime(runner: ScriptedRunner, key: str | None = KEY) -> CloudRuntime:
    return cloud_bootstrap.cloud(ENV, store=SqliteStateStore(":memory:"), bus=ListBus(), runner=runner,
                                 tokens=SealedTokens(key, fallback=StaticToken("own")), events=RecordedEvents())


@pytest.fixture
def rt(runner: TokenRunner) -> CloudRuntime:
    return runtime(runner)


def event(body: Any, message_id: str = "m1") -> CloudEvent:
    data = base64.b64encode(body if isinstance(body, bytes) else json.dumps(body).encode()).decode()
    return CloudEvent({"type": PUBSUB_PUBLISHED, "source": "//pubsub.googleapis.com/t"},
                      {"message": {"data": data, "attributes": {}, "messageId": message_id}})


def pending(rt: CloudRuntime) -> list[Any]:
    assert isinstance(rt.ports.bus, ListBus)
    return rt.ports.bus.pending


def deliver(rt: CloudRuntime) -> None:
    while pending(rt):
        batch = list(pending(rt))
        pending(rt).clear()
        for msg in batch:
            handle(msg, rt.ports)


def http(name: str, rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch) -> Any:
    return function_client(name, rt, monkeypatch)


@pytest.fixture
def starting(rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch) -> Any:
    return http("on_start_request", rt, monkeypatch)


@pytest.fixture
def controlling(rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch) -> Any:
    return http("on_control_request", rt, monkeypatch)


# -- the caller -------------------------------------------------------------------------------
def test_the_caller_is_the_email_of_the_token_cloud_run_checked() -> None:
    token = id_token_for("Alice@Example.com")
    assert verified_caller({"Authorization": f"Bearer {token}"}) == "alice@example.com"
    # with X-Serverless-Authorization, Cloud Run checked that one and passed Authorization through unchecked
    both = {"X-Serverless-Authorization": f"Bearer {token}", "Authorization": f"Bearer {id_token_for('eve@x.io')}"}
    assert verified_caller(both) == "alice@example.com"
    unverified = base64.urlsafe_b64encode(json.dumps({"email": "a@b.c", "email_verified": False}).encode())
    for header in ("", "Bearer", f"Basic {token}", "Bearer not-a-jwt", "Bearer a.%%%.c", "Bearer a.bnVsbA.c",
                   f"Bearer x.{unverified.decode()}.y", f"Bearer {id_token_for('no-at-sign')}",
                   f"Bearer {id_token_for('a@b@c')}", f"Bearer {'x' * 20_000}.e30.y"):
        assert verified_caller({"Authorization": header}) == "", header


def test_the_command_line_publishes_run_requests_on_the_control_topic_and_starts_on_the_start_topic(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    from workflow.bootstrap import control as control_module

    topics: list[str] = []
    monkeypatch.setattr(control_module, "_requests", lambda env, topic: topics.append(topic))
    store = SqliteStateStore(":memory:")
    env = {"GOOGLE_CLOUD_PROJECT": "p"}
    control_module.control(env, store=store)
    control_module.control(env, store=store, starts=True)  # a backfill's ticks
    control_module.control({**env, "WORKFLOW_CONTROL_TOPIC": "ops-control"}, store=store)
    assert topics == ["workflow-run-control", "workflow-start", "ops-control"]


def test_run_admins_are_emails_in_lower_case() -> None:
    assert EdgeSettings.from_env(ENV).run_admins == {"ops@example.com", "oncall@example.com"}
    assert EdgeSettings.from_env({}).run_admins == frozenset()
    with pytest.raises(InputError, match=re.escape("WORKFLOW_RUN_ADMINS: 'user:ops@example.com' is not an email")):
        EdgeSettings.from_env({"WORKFLOW_RUN_ADMINS": "user:ops@example.com"})


# -- the start route no longer acts on a run --------------------------------------------------
def test_the_start_topic_refuses_a_cancel_records_nothing_and_names_the_control_route(
    rt: CloudRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    start_message(event({"dag": DAG, "run_id": "r1"}), rt)
    handle(pending(rt).pop(0), rt.ports)  # `a` submitted
    before = (rt.ports.store.list_runs(10), rt.ports.store.list_steps("r1"))
    with caplog.at_level(logging.INFO, logger="workflow.entrypoints"):
        for n, body in enumerate([{"action": "cancel", "run_id": "r1"}, {"action": "rerun", "run_id": "r1",
                                                                       "reruns": 0}, {"action": "halt"}]):
            start_message(event(body, f"m{n + 2}"), rt)
    assert (rt.ports.store.list_runs(10), rt.ports.store.list_steps("r1")) == before
    assert not [m for m in pending(rt) if isinstance(m, CancelRun | RerunRun)]
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert refused[0] == ("refused message m2 on the start topic (run r1): a cancel request is not taken on the "
                          "start route: send it by the control route: the control topic (<prefix>-run-control, "
                          "WORKFLOW_CONTROL_TOPIC) or the HTTP function on_control_request")
    assert "unknown action 'halt': a start request's action is 'start'" in refused[2]
    assert not [r for r in caplog.records if r.exc_info]


def test_the_http_start_answers_a_cancel_400_and_records_nothing(rt: CloudRuntime, starting: Any) -> None:
    answer = starting.post("/", json={"action": "cancel", "run_id": "r1"}, headers=bearer("ops@example.com"))
    assert answer.status_code == 400 and "on_control_request" in answer.get_json()["problems"][0]
    assert rt.ports.store.list_runs(10) == [] and pending(rt) == []
    sweep = starting.post("/", json={"action": "sweep"})  # the scheduler's request stays where it was
    assert sweep.status_code == 202


def test_a_run_started_over_http_records_its_verified_caller(rt: CloudRuntime, starting: Any) -> None:
    assert starting.post("/", json={"dag": DAG, "run_id": "h1"}, headers=bearer("Alice@example.com")).status_code \
        == 202
    assert starting.post("/", json={"dag": DAG, "run_id": "h2"}).status_code == 202
    start_message(event({"dag": DAG, "run_id": "t1"}), rt)
    inputs = {r: rt.ports.store.get_run(r).inputs.started_by for r in ("h1", "h2", "t1")}  # type: ignore[union-attr]
    assert inputs == {"h1": "alice@example.com", "h2": "", "t1": ""}


# -- over HTTP: the starter, the admins, nobody else ------------------------------------------
def started_by(starting: Any, email: str, run_id: str = "r1") -> None:
    assert starting.post("/", json={"dag": DAG, "run_id": run_id}, headers=bearer(email)).status_code == 202


def test_over_http_only_the_starter_or_an_admin_may_cancel_and_the_reason_names_the_caller(
    rt: CloudRuntime, starting: Any, controlling: Any, caplog: pytest.LogCaptureFixture
) -> None:
    started_by(starting, "alice@example.com")
    deliver(rt)
    started_by(starting, "alice@example.com", "r2")
    cancel = {"action": "cancel", "run_id": "r2"}
    with caplog.at_level(logging.INFO, logger="workflow.entrypoints"):
        stranger = controlling.post("/", json=cancel, headers=bearer("mallory@example.com"))
        nobody = controlling.post("/", json=cancel)
    assert stranger.status_code == 403 and stranger.get_json() == {"run_id": "r2", "error": (
        "mallory@example.com may not cancel run r2: only the caller who started it over HTTP, or one listed in "
        "WORKFLOW_RUN_ADMINS, may")}
    assert nobody.status_code == 403 and "names no email" in nobody.get_json()["error"]
    assert not [m for m in pending(rt) if isinstance(m, CancelRun)]
    assert rt.ports.store.get_run("r2").status is RunStatus.RUNNING  # type: ignore[union-attr]
    assert "refused cancel request for run r2 by mallory@example.com over HTTP: mallory@example.com may not " \
           "cancel run r2" in caplog.text

    with caplog.at_level(logging.INFO, logger="workflow.entrypoints"):
        done = controlling.post("/", json=cancel, headers=bearer("Alice@Example.com"))
    assert (done.status_code, done.get_json()) == (202, {"run_id": "r2", "action": "cancel"})
    assert "cancel requested by alice@example.com over HTTP" in caplog.messages
    assert [m for m in pending(rt) if isinstance(m, CancelRun)] == [
        CancelRun("r2", "cancelled by alice@example.com over HTTP")]
    deliver(rt)
    assert rt.ports.store.get_run("r2").status is RunStatus.CANCELLED  # type: ignore[union-attr]
    assert {s.message for s in rt.ports.store.list_steps("r2")} == {"cancelled by alice@example.com over HTTP"}

    admin = controlling.post("/", json={"action": "rerun", "run_id": "r1", "reruns": 0},
                             headers=bearer("oncall@example.com"))  # r1 failed; an admin may rerun anyone's
    assert admin.status_code == 202
    missing = controlling.post("/", json={"action": "cancel", "run_id": "nope"}, headers=bearer("m@x.io"))
    assert (missing.status_code, missing.get_json()["problems"]) == (400, ["no run 'nope'"])


def test_the_control_function_takes_json_posts_only(controlling: Any, rt: CloudRuntime) -> None:
    assert controlling.get("/").status_code == 405
    assert controlling.post("/", data="x", content_type="text/plain").status_code == 415
    bad = controlling.post("/", data="[1]", content_type="application/json")
    assert (bad.status_code, bad.get_json()) == (400, {"problems": ["the control request is a JSON list, not "
                                                                     "an object"]})
    big = controlling.post("/", data=b" " * 1_048_577, content_type="application/json")
    assert big.status_code == 413


def test_the_control_function_asks_for_a_retry_when_the_store_is_down(
    controlling: Any, rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(run_id: str) -> None:
        raise TransientError("Firestore: unavailable")

    monkeypatch.setattr(rt.ports.store, "get_run", down)
    answer = controlling.post("/", json={"action": "cancel", "run_id": "r1"}, headers=bearer("ops@example.com"))
    assert answer.status_code == 503 and "try again later" in answer.get_json()["error"]


def test_a_malformed_message_on_the_control_topic_is_logged_and_acknowledged(
    rt: CloudRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="workflow.entrypoints"):
        control_message(event(b"not json", "c9"), rt)
    assert pending(rt) == [] and rt.ports.store.list_runs(10) == []
    assert "INVALID message c9 on the control topic: the control request is not JSON" in caplog.text
    assert main.on_control_message.event_type == PUBSUB_PUBLISHED  # type: ignore[attr-defined]


# -- a rerun with its own token ---------------------------------------------------------------
def failed(rt: CloudRuntime, run_id: str = "r1") -> None:
    start_message(event({"dag": DAG, "run_id": run_id, "tr_auth_jwt": "start-SECRET-123"}), rt)
    deliver(rt)
    assert rt.ports.store.get_run(run_id).status is RunStatus.FAILED  # type: ignore[union-attr]


def test_a_rerun_with_its_own_token_seals_it_and_the_steps_run_again_use_it(
    rt: CloudRuntime, runner: TokenRunner, caplog: pytest.LogCaptureFixture
) -> None:
    failed(rt)
    runner.healed = True
    started = rt.ports.store.get_step("r1", "a").tr_auth  # type: ignore[union-attr]
    with caplog.at_level(logging.DEBUG):
        control_message(event({"action": "rerun", "run_id": "r1", "reruns": 0, "tr_auth_jwt": RERUN_TOKEN}), rt)
        [rerun] = pending(rt)
        assert isinstance(rerun, RerunRun) and rerun.tr_auth.startswith("fernet:")
        assert rt.tokens.token("https://runner.example", rerun.tr_auth, "r1") == RERUN_TOKEN
        deliver(rt)
    assert rt.ports.store.get_run("r1").status is RunStatus.SUCCEEDED  # type: ignore[union-attr]
    a, b = rt.ports.store.list_steps("r1")
    assert (a.tr_auth, a.attempt) == (started, 1)  # succeeded: not run again, keeps the start's token
    assert (b.tr_auth, b.attempt, b.state) == (rerun.tr_auth, 2, StepState.SUCCEEDED)
    assert runner.auths == [started, started, rerun.tr_auth]  # a, b, then b again with the rerun's token
    assert RERUN_TOKEN not in caplog.text and RERUN_TOKEN not in repr(rt.ports.store.list_steps("r1"))


@pytest.mark.parametrize(("token", "key", "problem"), [
    ("with space", KEY, "tr_auth_jwt contains whitespace or control characters"),
    (7, KEY, "tr_auth_jwt must be a string, not int"),
    (RERUN_TOKEN, None, "no WORKFLOW_TOKEN_KEY to seal it with"),
])
def test_a_rerun_token_that_cannot_be_taken_is_refused_without_showing_it(
    runner: TokenRunner, monkeypatch: pytest.MonkeyPatch, token: Any, key: str | None, problem: str
) -> None:
    rt = runtime(runner, key)
    start_message(event({"dag": DAG, "run_id": "r1"}), rt)
    deliver(rt)
    client = http("on_control_request", rt, monkeypatch)
    answer = client.post("/", json={"action": "rerun", "run_id": "r1", "reruns": 0, "tr_auth_jwt": token},
                         headers=bearer("ops@example.com"))
    assert answer.status_code == 400 and problem in answer.get_json()["problems"][0]
    assert str(token) not in answer.get_data(as_text=True) and pending(rt) == []


# -- the command line: rerun --cloud with its own token ---------------------------------------
def test_rerun_on_the_cloud_sends_its_own_token_and_never_prints_it(
    rt: CloudRuntime, runner: TokenRunner, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from workflow import cli
    from workflow.admission.run_requests import run_request
    from workflow.cli import cloud_requests

    failed(rt)
    runner.healed = True
    published: list[dict[str, Any]] = []

    def request(body: Any) -> None:
        published.append(dict(body))
        run_request(body, rt)
        deliver(rt)

    monkeypatch.setattr(cloud_requests, "control", lambda **where: CloudControl(rt.ports.store, request, (), "p"))
    monkeypatch.setattr(cloud_requests, "CLOUD_POLL", 0.01)
    out = io.StringIO()
    assert cli.main(["rerun", "r1", "--cloud", "--project", "p", "--tr-auth-jwt", RERUN_TOKEN], out=out) == 0
    assert published == [{"action": "rerun", "run_id": "r1", "reruns": 0, "tr_auth_jwt": RERUN_TOKEN}]
    assert out.getvalue().startswith('requested: {"action": "rerun", "run_id": "r1", "reruns": 0, '
                                     '"tr_auth_jwt": "<redacted>"} on the control topic\n')
    assert RERUN_TOKEN not in out.getvalue() + "".join(capsys.readouterr())
    assert runner.auths[-1] == rt.ports.store.get_step("r1", "b").tr_auth != runner.auths[0]  # type: ignore[union-attr]

    runner.healed = False
    failed(rt, "r2")
    monkeypatch.setenv("WORKFLOW_TR_AUTH_JWT", "from-the-ENV")
    assert cli.main(["rerun", "r2", "--cloud", "--project", "p", "--no-wait"], out=io.StringIO()) == 0
    assert "tr_auth_jwt" not in published[-1]  # a token kept for a local Task Runner is never sent unasked
    assert cli.main(["resume", "r1", "--cloud", "--project", "p", "--tr-auth-jwt", "t"]) == 2
    assert "--tr-auth-jwt: for the embedded runtime, not with --cloud" in capsys.readouterr().err
