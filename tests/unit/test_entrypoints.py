"""The CloudEvent entry points with in-memory ports (no cloud): decoding, idempotent starts,
INVALID runs, delayed messages, poison messages."""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from cloudevents.http import CloudEvent

import main
from enginekit import ListBus, ScriptedRunner
from support import function_client
from workflow.adapters.embedded.events import RecordedEvents
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.adapters.http.auth import SealedTokens, StaticToken
from workflow.adapters.local_dags import LocalDags
from workflow.bootstrap import cloud as cloud_bootstrap
from workflow.bootstrap import embedded as embedded_bootstrap
from workflow.bootstrap.cloud import CloudRuntime
from workflow.dagfile import parse_dag
from workflow.engine.context import Busy
from workflow.entrypoints import (
    GCS_FINALIZED,
    PUBSUB_PUBLISHED,
    REPUBLISH_AFTER,
    NotYet,
    dag_uploaded,
    engine_message,
    start_message,
    upload_run_id,
)
from workflow.errors import InputError, TransientError
from workflow.model import codec
from workflow.model.messages import DispatchStep, StartRun, SweepRuns, TimeoutRun
from workflow.model.records import RunRecord, StepRecord
from workflow.model.states import RunStatus, StepState
from workflow.settings import DEFAULT_MAX_INLINE_WAIT_SEC

KEY = "q3v6oVn8kR9A0QG7lq2m2n7pPZxG2Jm0y9dQ9ZpVb3U="
DAG = {"steps": [{"id": "a", "task": {"imageUri": "img/a"}}, {"id": "b", "dependsOn": ["a"],
                                                               "task": {"imageUri": "img/b"}}]}
ENV = {
    "WORKFLOW_TR_URL": "https://runner.example",
    "WORKFLOW_ALLOWED_TR_ORIGINS": "https://runner.example, https://tr.example,https://other.example",
    "WORKFLOW_DAG_BUCKETS": "b",
    "WORKFLOW_CHECK_STATE_DURATION_SEC": "0",
}


class FileDags(LocalDags):
    """gs://b/NAME reads tmp_path/NAME: the GCS object store stands in as files."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def read_bytes(self, path: str) -> tuple[bytes, str]:
        return super().read_bytes(str(self.root / path.removeprefix("gs://b/")))


class RecordingStore(SqliteStateStore):
    """Keeps every run and step it was asked to create, to check what was stored."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.created: list[tuple[RunRecord, list[StepRecord]]] = []

    def create_run(self, run: RunRecord, steps: Sequence[StepRecord]) -> bool:
        self.created.append((run, list(steps)))
        return super().create_run(run, steps)


def cloud(tmp_path: Path, tokens: SealedTokens | None = None, **env: str) -> CloudRuntime:
    return cloud_bootstrap.cloud(
        {**ENV, **env}, store=RecordingStore(), bus=ListBus(), runner=ScriptedRunner(), dags=FileDags(tmp_path),
        tokens=tokens or SealedTokens(KEY, fallback=StaticToken("own")), events=RecordedEvents(),
    )


@pytest.fixture
def rt(tmp_path: Path) -> CloudRuntime:
    return cloud(tmp_path)


def gcs_event(name: str, generation: str = "17", metadata: dict[str, str] | None = None) -> CloudEvent:
    data: dict[str, Any] = {"bucket": "b", "name": name, "generation": generation}
    if metadata:
        data["metadata"] = metadata
    return CloudEvent({"type": GCS_FINALIZED, "source": "//storage.googleapis.com/projects/_/buckets/b"}, data)


def pubsub_event(data: bytes, message_id: str = "m1", **attributes: str) -> CloudEvent:
    message = {"data": base64.b64encode(data).decode(), "attributes": attributes, "messageId": message_id}
    return CloudEvent({"type": PUBSUB_PUBLISHED, "source": "//pubsub.googleapis.com/t"}, {"message": message})


def stored(rt: CloudRuntime) -> list[tuple[RunRecord, list[StepRecord]]]:
    store = rt.ports.store
    assert isinstance(store, RecordingStore)
    return store.created


def published(rt: CloudRuntime) -> list[Any]:
    bus = rt.ports.bus
    assert isinstance(bus, ListBus)
    return bus.pending


def test_upload_starts_one_run_per_generation(rt: CloudRuntime, tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags/flow.yaml").write_text(json.dumps(DAG))
    dag_uploaded(gcs_event("dags/flow.yaml"), rt)
    dag_uploaded(gcs_event("dags/flow.yaml"), rt)  # redelivered
    run_id = upload_run_id("b", "dags/flow.yaml", "17")
    run = rt.ports.store.get_run(run_id)
    assert run is not None and run.status is RunStatus.RUNNING and run.tr_url == "https://runner.example"
    assert run.source == "gs://b/dags/flow.yaml#17"
    assert published(rt) == [DispatchStep(run_id, "a", 1)]
    dag_uploaded(gcs_event("dags/flow.yaml", generation="18", metadata={"tr_url": "https://other.example"}), rt)
    other = rt.ports.store.get_run(upload_run_id("b", "dags/flow.yaml", "18"))
    assert other is not None and other.tr_url == "https://other.example"
    assert upload_run_id("b", "dags/flow.yaml", "17").startswith("flow-")


@pytest.mark.parametrize("name", ["other/flow.yaml", "dags/notes.txt", "dags/"])
def test_objects_outside_the_prefix_or_not_dags_are_ignored(rt: CloudRuntime, name: str) -> None:
    dag_uploaded(gcs_event(name), rt)
    assert rt.ports.store.get_run(upload_run_id("b", name, "17")) is None and published(rt) == []


def test_invalid_upload_records_an_invalid_run_and_submits_nothing(rt: CloudRuntime, tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags/bad.yaml").write_text("steps:\n  - id: a\n    depends_on: [a]\n    task: {imageUri: x}\n")
    dag_uploaded(gcs_event("dags/bad.yaml"), rt)
    dag_uploaded(gcs_event("dags/bad.yaml"), rt)  # delivered twice
    run = rt.ports.store.get_run(upload_run_id("b", "dags/bad.yaml", "17"))
    assert run is not None and run.status is RunStatus.INVALID
    assert any("dependsOn" in p for p in run.problems) and published(rt) == []
    events = rt.ports.events.published  # type: ignore[union-attr]
    assert [(e["run_id"], e["status"]) for e in events] == [(run.run_id, "INVALID")]
    assert any("dependsOn" in p for p in events[0]["problems"])


def test_start_message_inline_with_a_token_keeps_it_sealed(rt: CloudRuntime) -> None:
    body = {"dag": DAG, "run_id": "r-1", "tr_hostname": "https://tr.example", "tr_auth_jwt": "secret-jwt"}
    start_message(pubsub_event(json.dumps(body).encode()), rt)
    start_message(pubsub_event(json.dumps(body).encode()), rt)
    step = rt.ports.store.get_step("r-1", "a")
    assert step is not None and step.tr_url == "https://tr.example"
    assert "secret-jwt" not in step.tr_auth and step.tr_auth.startswith("fernet:")
    assert rt.tokens.token("https://tr.example", step.tr_auth, "r-1") == "secret-jwt"
    assert rt.tokens.token("https://tr.example", "") == "own"
    assert published(rt) == [DispatchStep("r-1", "a", 1)]


def test_start_message_without_run_id_derives_it_from_the_message_id(rt: CloudRuntime, tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(json.dumps(DAG))
    start_message(pubsub_event(json.dumps({"dag_path": "gs://b/x.yaml"}).encode(), message_id="42"), rt)
    run = rt.ports.store.get_run("start-42")
    assert run is not None and run.source == "gs://b/x.yaml"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"run_id": "r-2"}, "exactly one of 'dag'"),
        ({"run_id": "r-2", "dag": DAG, "dag_path": "gs://b/x"}, "exactly one of 'dag'"),
        ({"run_id": "r-2", "dag": DAG, "tr_hostnme": "x"}, "unknown key(s) tr_hostnme"),
        ({"run_id": "r-2", "dag": {"steps": []}}, "steps"),
        ({"run_id": "r-2", "dag": DAG, "tr_hostname": "ftp://x"}, "no usable Task Runner URL"),
        ({"run_id": "r-2", "dag": DAG, "tr_hostname": "https://evil.example"}, "origin https://evil.example is not"),
    ],
)
def test_bad_start_requests_record_an_invalid_run(rt: CloudRuntime, body: dict[str, Any], problem: str) -> None:
    start_message(pubsub_event(json.dumps(body).encode()), rt)
    run = rt.ports.store.get_run("r-2")
    assert run is not None and run.status is RunStatus.INVALID and problem in " ".join(run.problems)
    assert published(rt) == []


def test_a_token_without_a_sealing_key_is_refused(tmp_path: Path) -> None:
    keyless = cloud(tmp_path, tokens=SealedTokens(None, StaticToken("own")))
    start_message(pubsub_event(json.dumps({"dag": DAG, "run_id": "r-3", "tr_auth_jwt": "t"}).encode()), keyless)
    run = keyless.ports.store.get_run("r-3")
    assert run is not None and run.status is RunStatus.INVALID and "WORKFLOW_TOKEN_KEY" in run.problems[0]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not an object"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"dag": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b" " * (1024 * 1024 + 1), "at most 1,048,576"),
        (json.dumps({"run_id": "bad id!", "dag": DAG}).encode(), "run_id 'bad id!' is not"),
        (json.dumps({"run_id": 5, "dag": DAG}).encode(), "run_id must be a string"),
        (json.dumps({"run_id": ".", "dag": DAG}).encode(), "run_id '.' is not"),
        (json.dumps({"run_id": "..", "dag": DAG}).encode(), "run_id '..' is not"),
        (json.dumps({"run_id": "__x__", "dag": DAG}).encode(), "run_id '__x__' is not"),
        (json.dumps({"dag": DAG, "tr_hostname": 7}).encode(), "tr_hostname must be a string"),
        (json.dumps({"dag_path": ["gs://b/x"]}).encode(), "dag_path must be a string"),
    ],
)
def test_malformed_start_messages_are_recorded_invalid_once(rt: CloudRuntime, data: bytes, problem: str) -> None:
    start_message(pubsub_event(data, message_id="77"), rt)
    start_message(pubsub_event(data, message_id="77"), rt)  # redelivered: nothing new
    run = rt.ports.store.get_run("start-77")
    assert run is not None and run.status is RunStatus.INVALID
    assert problem in " ".join(run.problems), run.problems
    assert len(stored(rt)) == 1 and published(rt) == []


def test_engine_message_is_handled_and_poison_is_dropped(rt: CloudRuntime) -> None:
    start = StartRun("r-4", parse_dag(json.dumps(DAG).encode(), "t"), "https://tr.example")
    engine_message(pubsub_event(codec.encode(start)), rt)
    assert published(rt) == [DispatchStep("r-4", "a", 1)]
    engine_message(pubsub_event(b"{}"), rt)  # malformed: logged, acknowledged
    engine_message(pubsub_event(codec.encode(DispatchStep("r-4", "nope"))), rt)  # unknown step
    assert len(published(rt)) == 1


def test_delayed_engine_message_waits_or_asks_for_redelivery(rt: CloudRuntime) -> None:
    slept: list[float] = []
    data = codec.encode(DispatchStep("nope", "x"))
    with pytest.raises(NotYet):
        engine_message(pubsub_event(data, not_before=str(1000 + DEFAULT_MAX_INLINE_WAIT_SEC + 1)), rt,
                       clock=lambda: 1000.0, sleep=slept.append)
    engine_message(pubsub_event(data, not_before="1003.5"), rt, clock=lambda: 1000.0, sleep=slept.append)
    assert slept == [3.5]


def test_a_message_due_in_hours_is_published_afresh_before_its_redeliveries_run_out(rt: CloudRuntime) -> None:
    data = codec.encode(TimeoutRun("r", deadline=1_000_000.0))
    event = pubsub_event(data, not_before="1000000")
    event.data["message"]["publishTime"] = "1970-01-01T00:16:40.000Z"  # Unix 1000
    with pytest.raises(NotYet):  # bounced for 30 s only: Pub/Sub redelivers it later
        engine_message(event, rt, clock=lambda: 1030.0)
    assert published(rt) == []
    engine_message(event, rt, clock=lambda: 1000.0 + REPUBLISH_AFTER + 1)  # acknowledged...
    assert published(rt) == [TimeoutRun("r", deadline=1_000_000.0)]  # ...once published again, still due then
    assert rt.ports.bus.delays == [pytest.approx(1_000_000.0 - 1061.0)]  # type: ignore[attr-defined]


def test_entry_points_declare_and_check_their_event_type(rt: CloudRuntime) -> None:
    assert main.on_dag_uploaded.event_type == GCS_FINALIZED  # type: ignore[attr-defined]
    assert main.on_start_message.event_type == PUBSUB_PUBLISHED  # type: ignore[attr-defined]
    assert main.on_engine_message.event_type == PUBSUB_PUBLISHED  # type: ignore[attr-defined]
    main.on_engine_message(gcs_event("dags/x.yaml"))  # wrong type: ignored before any runtime is built
    assert main.runtime.cache_info().currsize == 0


def test_a_transient_error_asks_for_redelivery_without_a_traceback(
    rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from werkzeug.exceptions import ServiceUnavailable

    monkeypatch.setattr(main, "runtime", lambda: rt)
    early = pubsub_event(codec.encode(DispatchStep("r", "a")), not_before="99999999999", run_id="r", step_id="a")
    with pytest.raises(ServiceUnavailable):
        main.on_engine_message(early)
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "retry later" in r.getMessage()]
    assert warnings and all(getattr(r, "run_id", None) == "r" and "run r" in r.getMessage() for r in warnings)


# -- hostile input at the edge --------------------------------------------------------------
HOSTILE_URLS = [
    ("http://tr.example", "plain http"),
    ("https://169.254.169.254/computeMetadata/v1", "origin https://169.254.169.254 is not allowed"),
    ("https://10.0.0.7", "origin https://10.0.0.7 is not allowed"),
    ("https://user:pw@tr.example", "userinfo"),
    ("https://tr.example/" + "a" * 200_000, "at most 2,048"),
    ("https://tr.example:99999", "no usable Task Runner URL"),
]


@pytest.mark.parametrize(("url", "problem"), HOSTILE_URLS)
def test_a_task_runner_url_outside_the_allowed_origins_is_refused(rt: CloudRuntime, url: str, problem: str) -> None:
    start_message(pubsub_event(json.dumps({"dag": DAG, "run_id": "r-5", "tr_hostname": url}).encode()), rt)
    run = rt.ports.store.get_run("r-5")
    assert run is not None and run.status is RunStatus.INVALID and problem in " ".join(run.problems)
    assert run.tr_url == "" and "pw" not in " ".join(run.problems) and len(" ".join(run.problems)) < 1000
    assert published(rt) == [] and stored(rt)[0][1] == []


@pytest.mark.parametrize(("url", "problem"), HOSTILE_URLS)
def test_an_upload_naming_a_task_runner_outside_the_allowed_origins_is_refused(
    rt: CloudRuntime, tmp_path: Path, url: str, problem: str
) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags/flow.yaml").write_text(json.dumps(DAG))
    dag_uploaded(gcs_event("dags/flow.yaml", metadata={"tr_url": url}), rt)
    run = rt.ports.store.get_run(upload_run_id("b", "dags/flow.yaml", "17"))
    assert run is not None and run.status is RunStatus.INVALID and problem in " ".join(run.problems)
    assert "metadata tr_url" in " ".join(run.problems) and published(rt) == []


def test_the_refusal_names_the_origin_and_the_setting(rt: CloudRuntime) -> None:
    body = {"dag": DAG, "run_id": "r-6", "tr_hostname": "https://evil.example:8443/x"}
    start_message(pubsub_event(json.dumps(body).encode()), rt)
    run = rt.ports.store.get_run("r-6")
    assert run is not None
    assert "https://evil.example:8443" in run.problems[0] and "WORKFLOW_ALLOWED_TR_ORIGINS" in run.problems[0]


def test_plain_http_needs_the_explicit_local_setting(tmp_path: Path) -> None:
    env = {"WORKFLOW_ALLOWED_TR_ORIGINS": "http://127.0.0.1:8080"}
    body = json.dumps({"dag": DAG, "run_id": "r-7", "tr_hostname": "http://127.0.0.1:8080/"}).encode()
    refused = cloud(tmp_path, **env)
    start_message(pubsub_event(body), refused)
    run = refused.ports.store.get_run("r-7")
    assert run is not None and run.status is RunStatus.INVALID and "WORKFLOW_ALLOW_HTTP_TR=1" in run.problems[0]
    allowed = cloud(tmp_path, WORKFLOW_ALLOW_HTTP_TR="1", **env)
    start_message(pubsub_event(body), allowed)
    run = allowed.ports.store.get_run("r-7")
    assert run is not None and run.status is RunStatus.RUNNING and run.tr_url == "http://127.0.0.1:8080"


def test_by_default_only_the_default_task_runner_is_allowed(tmp_path: Path) -> None:
    rt = cloud(tmp_path, WORKFLOW_ALLOWED_TR_ORIGINS="")
    assert rt.edge.allowed_tr_origins == frozenset({"https://runner.example"})
    start_message(pubsub_event(json.dumps({"dag": DAG, "run_id": "r-8"}).encode()), rt)
    start_message(pubsub_event(json.dumps({"dag": DAG, "run_id": "r-9", "tr_hostname": "https://tr.example"}).encode()),
                  rt)
    assert [r.status for r, _ in stored(rt)] == [RunStatus.RUNNING, RunStatus.INVALID]


@pytest.mark.parametrize("origins", ["https://tr.example/path", "ftp://x", "https://u@tr.example", "https://x:port"])
def test_a_malformed_allowed_origin_is_a_clear_setting_error(tmp_path: Path, origins: str) -> None:
    with pytest.raises(InputError, match="WORKFLOW_ALLOWED_TR_ORIGINS"):
        cloud(tmp_path, WORKFLOW_ALLOWED_TR_ORIGINS=origins)


def test_dag_path_outside_the_dag_buckets_reads_nothing(rt: CloudRuntime, tmp_path: Path) -> None:
    secret = tmp_path / "key.json"
    secret.write_text('{"private_key": "KEY-FRAGMENT-42"}')
    for n, path in enumerate([str(secret), f"file://{secret}", "gs://other/x.yaml", "gs://b", "gs://b/" + "x" * 1100]):
        start_message(pubsub_event(json.dumps({"dag_path": path, "run_id": f"p-{n}"}).encode()), rt)
        run = rt.ports.store.get_run(f"p-{n}")
        assert run is not None and run.status is RunStatus.INVALID, path
        assert "KEY-FRAGMENT" not in " ".join(run.problems) and "private_key" not in " ".join(run.problems)
        assert "WORKFLOW_DAG_BUCKETS: b" in run.problems[0] or "at most 1,024" in run.problems[0]
    assert published(rt) == []


@pytest.mark.parametrize(("jwt", "problem"), [
    (5, "must be a string"), ("", "is empty"), ("tok-SECRET-123 x", "whitespace"), ("tok\x00SECRET", "control"),
    ("x" * 16_385, "at most 16384"), (None, "must be a string"),
])
def test_a_malformed_token_is_refused(rt: CloudRuntime, jwt: Any, problem: str) -> None:
    start_message(pubsub_event(json.dumps({"dag": DAG, "run_id": "t-1", "tr_auth_jwt": jwt}).encode()), rt)
    run = rt.ports.store.get_run("t-1")
    assert run is not None and run.status is RunStatus.INVALID and problem in " ".join(run.problems)
    assert published(rt) == []


@pytest.mark.parametrize(("data", "attributes"), [
    (b"[" * 100_000, {}),
    (b'{"v": 1, "type": "CheckJob", "run_id": "r", "step_id": "s", "job_id": "j", "seq": "x"}', {}),
    (b'{"v": 1, "type": "DispatchStep", "run_id": 5, "step_id": "s"}', {}),
    (b'{"v": 1, "type": "CheckJob", "run_id": "r", "step_id": "s", "job_id": "j", "submitted_at": "soon"}', {}),
    (b'{"v": 1, "type": "CheckJob", "run_id": "r", "step_id": "s", "job_id": "j", "seq": true}', {}),
    (b'{"v": 1, "type": "StepFinished", "run_id": "r", "step_id": "s", "state": "MAYBE", "at": 1}', {}),
    (b'{"v": 1, "type": "DispatchStep", "run_id": "__x__", "step_id": "s"}', {}),
    (b'{"v": 1, "type": "DispatchStep", "run_id": "..", "step_id": "s"}', {}),
    (b'{"v": 1, "type": "DispatchStep", "run_id": "r", "step_id": "."}', {}),
    (b'{"v": 1, "type": "StartRun", "run_id": "r", "dag": [1], "tr_url": "https://x"}', {}),
    (codec.encode(DispatchStep("r", "s")), {"not_before": "soon"}),
    (codec.encode(DispatchStep("r", "s")), {"not_before": "inf"}),
])
def test_malformed_engine_messages_are_logged_once_and_acknowledged(
    rt: CloudRuntime, caplog: pytest.LogCaptureFixture, data: bytes, attributes: dict[str, str]
) -> None:
    engine_message(pubsub_event(data, message_id="m9", run_id="r", step_id="s", **attributes), rt,
                   clock=lambda: 1000.0, sleep=lambda s: None)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "m9" in errors[0].getMessage()
    assert getattr(errors[0], "run_id", None) == "r" and getattr(errors[0], "step_id", None) == "s"
    assert published(rt) == [] and stored(rt) == []


def test_well_typed_engine_messages_round_trip() -> None:
    from workflow.model.messages import CheckJob, RunFinished, StepFinished
    from workflow.model.states import StepState

    for msg in (CheckJob("r", "s", "j", 3, "https://x", "", 1.5, "RUNNING"),
                StepFinished("r", "s", StepState.FAILED, 2), RunFinished("r", RunStatus.SUCCEEDED)):
        assert codec.decode(codec.encode(msg)) == msg
    assert codec.decode(b'{"v":1,"type":"CheckJob","run_id":"r","step_id":"s","job_id":"j","submitted_at":3}') \
        == CheckJob("r", "s", "j", submitted_at=3.0)


def test_a_step_too_large_for_a_firestore_document_makes_the_run_invalid(tmp_path: Path) -> None:
    from workflow.adapters.gcp import firestore_store

    class SizedStore(RecordingStore):
        def create_run(self, run: RunRecord, steps: Sequence[StepRecord]) -> bool:
            firestore_store.check_sizes(run.run_id, firestore_store.sized_step_docs("runs", steps))
            return super().create_run(run, steps)

    rt = cloud_bootstrap.cloud(ENV, store=SizedStore(), bus=ListBus(), runner=ScriptedRunner(),
                               dags=FileDags(tmp_path), tokens=SealedTokens(KEY, StaticToken("own")),
                               events=RecordedEvents())
    big = "y" * 400_000  # a 0.4 MB file whose aliases make a 1.2 MB step
    (tmp_path / "big.yaml").write_text(f"steps:\n- id: small\n  task: {{imageUri: &big {big}}}\n"
                                       "- id: huge\n  task: {imageUri: img, args: [*big, *big, *big]}\n")
    start_message(pubsub_event(json.dumps({"dag_path": "gs://b/big.yaml", "run_id": "big"}).encode()), rt)
    run = rt.ports.store.get_run("big")
    assert run is not None and run.status is RunStatus.INVALID
    assert len(run.problems) == 1 and "step 'huge'" in run.problems[0] and "1,048,576" in run.problems[0]
    assert published(rt) == [] and rt.ports.store.list_steps("big") == []


from support import SECRET  # noqa: E402


def secret_paths() -> list[bytes]:
    """Start requests carrying SECRET that are malformed in every way the edge checks."""
    bodies: list[Any] = [
        {"dag": DAG, "tr_auth_jwt": SECRET, "tr_hostname": "https://evil.example"},
        {"dag": DAG, "tr_auth_jwt": SECRET, "tr_hostname": f"https://{SECRET}@tr.example"},
        {"dag": DAG, "tr_auth_jwt": SECRET, "tr_hostname": "http://tr.example"},
        {"dag": DAG, "tr_auth_jwt": SECRET, "tr_hostname": "https://tr.example/" + "a" * 3000},
        {"dag_path": "/etc/hostname", "tr_auth_jwt": SECRET},
        {"dag_path": f"gs://other/{SECRET}", "tr_auth_jwt": SECRET},
        {"dag": {"steps": []}, "tr_auth_jwt": SECRET},
        {"dag": DAG, "tr_auth_jwt": SECRET, "extra": 1},
        {"dag": DAG, "tr_auth_jwt": SECRET, "run_id": "__x__"},
        {"dag": DAG, "tr_auth_jwt": SECRET, "run_id": 5},
        {"dag": DAG, "tr_auth_jwt": [SECRET]},
        {"dag": DAG, "tr_auth_jwt": {"token": SECRET}},
        {"dag": DAG, "tr_auth_jwt": SECRET + " \n"},
        {"dag": DAG, "tr_auth_jwt": SECRET + "\x07"},
        {"dag": DAG, "tr_auth_jwt": SECRET * 2000},
    ]
    token = SECRET.encode()
    return [*(json.dumps(b).encode() for b in bodies), b'{"tr_auth_jwt": "' + token + b'", "dag": ' + b"[" * 50_000,
            b'{"tr_auth_jwt": "' + token + b'"', b'["' + token + b'"]']


def test_a_token_on_any_malformed_path_is_never_logged_stored_or_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    keyless = cloud(tmp_path, tokens=SealedTokens(None, StaticToken("own")))
    rt = cloud(tmp_path)
    for n, data in enumerate(secret_paths()):
        start_message(pubsub_event(data, message_id=f"s{n}"), rt)
    start_message(pubsub_event(json.dumps({"dag": DAG, "tr_auth_jwt": SECRET}).encode(), message_id="k"), keyless)
    engine_data = codec.encode(main_check_job())
    for data, attributes in [(engine_data.replace(b'"seq":0', b'"seq":"x"'), {}), (engine_data, {"not_before": "x"}),
                             (engine_data.replace(b'"v":1', b'"v":2'), {}), (b"{" + engine_data, {})]:
        engine_message(pubsub_event(data, **attributes), rt)
    runs = stored(rt) + stored(keyless)
    assert len(runs) == len(secret_paths()) + 1 and all(r.status is RunStatus.INVALID for r, _ in runs)
    assert SECRET not in repr(runs)
    assert caplog.records and not [r for r in caplog.records if SECRET in r.getMessage() or SECRET in repr(r.__dict__)]


def main_check_job() -> Any:
    from workflow.model.messages import CheckJob

    return CheckJob("r", "s", "j", 0, "https://tr.example", SECRET, 1.0, "RUNNING")


def test_the_embedded_bootstrap_uses_given_adapters() -> None:
    from workflow.adapters.embedded.inprocess_bus import InProcessBus
    from workflow.settings import Settings

    store, bus = SqliteStateStore(), InProcessBus(workers=1)
    runtime = embedded_bootstrap.embedded(Settings(), ScriptedRunner(), store=store, bus=bus)
    try:
        assert runtime.store is store and runtime.bus is bus and runtime.ports.store is store
    finally:
        runtime.close()


def test_the_cloud_bootstrap_builds_only_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="GOOGLE_CLOUD_PROJECT"):
        cloud_bootstrap.cloud(ENV, bus=ListBus(), runner=ScriptedRunner())  # the store must be built: no project
    rt = cloud(tmp_path, WORKFLOW_DAG_PREFIX="in/")
    assert isinstance(rt.ports.store, RecordingStore) and rt.edge.dag_prefix == "in/"
    assert rt.edge.dag_buckets == frozenset({"b"}) and rt.ports.settings.poll_interval == 0


# -- the HTTP start function ------------------------------------------------------------------
@pytest.fixture
def client(rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch) -> Any:
    """functions-framework's test client of `on_start_request`, on the `rt` runtime."""
    return function_client("on_start_request", rt, monkeypatch)


def test_a_post_in_the_go_tools_form_starts_a_run(client: Any, rt: CloudRuntime, tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(json.dumps(DAG))
    answer = client.post("/", json={"workflow-path": "gs://b/x.yaml", "tr-url": "https://tr.example"})
    assert answer.status_code == 202, answer.get_data(as_text=True)
    run_id = answer.get_json()["run_id"]
    run = rt.ports.store.get_run(run_id)
    assert run is not None and run.status is RunStatus.RUNNING and run.tr_url == "https://tr.example"
    assert run.source == "gs://b/x.yaml" and published(rt) == [DispatchStep(run_id, "a", 1)]
    assert client.post("/", json={"dag_path": "gs://b/x.yaml"}).get_json()["run_id"] != run_id


def test_a_repeated_run_id_over_http_starts_once(client: Any, rt: CloudRuntime) -> None:
    body = {"dag": DAG, "run_id": "h-1", "tr_hostname": "https://tr.example", "tr_auth_jwt": "secret-jwt"}
    answers = [client.post("/", json=body) for _ in range(2)]
    assert [a.status_code for a in answers] == [202, 202]
    assert [a.get_json() for a in answers] == [{"run_id": "h-1"}] * 2
    assert published(rt) == [DispatchStep("h-1", "a", 1)] and len(stored(rt)) == 1
    step = rt.ports.store.get_step("h-1", "a")
    assert step is not None and rt.tokens.token("https://tr.example", step.tr_auth, "h-1") == "secret-jwt"


def test_an_invalid_post_gets_400_with_the_report_and_is_recorded(client: Any, rt: CloudRuntime) -> None:
    answer = client.post("/", json={"workflow-path": "/etc/passwd", "tr-url": "https://evil.example", "run_id": "h-2"})
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["run_id"] == "h-2" and len(body["problems"]) == 2
    assert "WORKFLOW_DAG_BUCKETS" in " ".join(body["problems"]) and "https://evil.example" in " ".join(body["problems"])
    run = rt.ports.store.get_run("h-2")
    assert run is not None and run.status is RunStatus.INVALID and list(run.problems) == body["problems"]
    again = client.post("/", json={"dag": DAG, "run_id": "h-2"})  # the id is taken by the INVALID run
    assert again.status_code == 400 and again.get_json() == body and published(rt) == []


@pytest.mark.parametrize(("body", "problem"), [
    ({"workflow-path": "gs://b/x", "dag_path": "gs://b/x"}, "not both"),
    ({"dag": DAG, "tr-url": 5}, "tr_hostname must be a string"),
    ({"dag": DAG, "workflow_path": "x"}, "unknown key(s) workflow_path"),
])
def test_bad_http_bodies_are_invalid(client: Any, body: dict[str, Any], problem: str) -> None:
    answer = client.post("/", json=body)
    assert answer.status_code == 400 and problem in " ".join(answer.get_json()["problems"])


def test_http_refuses_other_methods_and_non_json(client: Any, rt: CloudRuntime) -> None:
    get = client.get("/")
    assert get.status_code == 405 and get.headers["Allow"] == "POST"
    assert client.post("/", data="dag_path=gs://b/x", content_type="text/plain").status_code == 415
    not_json = client.post("/", data=b"{nope", content_type="application/json")
    assert not_json.status_code == 400 and "not JSON" in not_json.get_json()["problems"][0]
    huge = client.post("/", data=b" " * (1024 * 1024 + 10), content_type="application/json")
    assert huge.status_code == 413 and "at most 1,048,576" in huge.get_json()["error"]  # and no run recorded
    assert [r.status for r, _ in stored(rt)] == [RunStatus.INVALID] and published(rt) == []


def test_a_transient_failure_over_http_answers_503_naming_the_run(
    client: Any, rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(run_id: str) -> None:
        raise TransientError("Firestore: unavailable")

    monkeypatch.setattr(rt.ports.store, "get_run", down)
    answer = client.post("/", json={"dag": DAG, "run_id": "h-3"})
    assert answer.status_code == 503 and answer.get_json()["run_id"] == "h-3"
    assert [getattr(r, "run_id", None) for r in caplog.records if "retry later" in r.getMessage()] == ["h-3"]


def test_a_refused_default_task_runner_is_named_as_the_setting(tmp_path: Path) -> None:
    rt = cloud(tmp_path, WORKFLOW_TR_URL="http://127.0.0.1:9", WORKFLOW_ALLOWED_TR_ORIGINS="")
    start_message(pubsub_event(json.dumps({"dag": DAG, "run_id": "d-1"}).encode()), rt)
    run = rt.ports.store.get_run("d-1")
    assert run is not None and run.status is RunStatus.INVALID
    assert run.problems == ("WORKFLOW_TR_URL: Task Runner origin http://127.0.0.1:9 is plain http, refused "
                            "(WORKFLOW_ALLOW_HTTP_TR=1 allows it, for local use only)",)


def test_the_inline_wait_follows_its_setting(tmp_path: Path) -> None:
    rt = cloud(tmp_path, WORKFLOW_MAX_INLINE_WAIT_SEC="60")
    slept: list[float] = []
    data = codec.encode(DispatchStep("nope", "x"))
    engine_message(pubsub_event(data, not_before="1030"), rt, clock=lambda: 1000.0, sleep=slept.append)
    assert slept == [30.0]  # held, not handed back: one invocation for the check
    with pytest.raises(InputError, match="WORKFLOW_MAX_INLINE_WAIT_SEC"):
        cloud(tmp_path, WORKFLOW_MAX_INLINE_WAIT_SEC="soon")


def test_the_schedulers_sweep_request_publishes_a_sweep_of_the_functions_settings(
    client: Any, rt: CloudRuntime, tmp_path: Path
) -> None:
    answer = client.post("/", json={"action": "sweep"})
    assert answer.status_code == 202 and answer.get_json() == {"action": "sweep"}
    settings = rt.ports.settings
    assert published(rt) == [SweepRuns(settings.stale_after, settings.sweep_limit)]
    published(rt).clear()
    bad = client.post("/", json={"action": "sweep", "stale_after": -1, "limit": 10**9})
    assert bad.status_code == 400 and "exactly" in bad.get_json()["problems"][0]
    assert published(rt) == [] and stored(rt) == []  # nothing taken from the request, nothing recorded
    start_message(pubsub_event(json.dumps({"action": "sweep"}).encode()), rt)  # not a start-topic action
    assert published(rt) == []
    limited = cloud(tmp_path, WORKFLOW_STALE_AFTER_SEC="60", WORKFLOW_SWEEP_LIMIT="7")
    assert (limited.ports.settings.stale_after, limited.ports.settings.sweep_limit) == (60.0, 7)
    with pytest.raises(InputError, match="WORKFLOW_SWEEP_LIMIT"):
        cloud(tmp_path, WORKFLOW_SWEEP_LIMIT="0")


def test_a_duplicate_finding_the_work_under_way_waits_for_it_and_is_acknowledged(
        rt: CloudRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    slept: list[float] = []

    def busy(times: int) -> Any:
        def handle(msg: object, ports: object) -> None:
            calls.append(msg)
            if len(calls) <= times:
                raise Busy("'check:a:3' of run 'r' is being done elsewhere")
        return handle

    module = sys.modules["workflow.entrypoints.engine_message"]
    data = codec.encode(DispatchStep("r", "a"))
    monkeypatch.setattr(module, "handle", busy(2))
    engine_message(pubsub_event(data), rt, sleep=slept.append)  # acknowledged: the work was done meanwhile
    assert len(calls) == 3 and slept == [0.25, 0.5]
    calls.clear()
    slept.clear()
    monkeypatch.setattr(module, "handle", busy(100))
    with pytest.raises(Busy):  # still under way: Pub/Sub redelivers it later
        engine_message(pubsub_event(data), rt, sleep=slept.append)
    assert 0 < sum(slept) <= DEFAULT_MAX_INLINE_WAIT_SEC and len(calls) == len(slept) + 1


def test_a_dispatch_delivered_early_whose_step_moved_on_is_acknowledged(rt: CloudRuntime) -> None:
    start = StartRun("r-5", parse_dag(json.dumps(DAG).encode(), "t"), "https://tr.example")
    engine_message(pubsub_event(codec.encode(start)), rt)
    due_later = str(1000 + DEFAULT_MAX_INLINE_WAIT_SEC + 600)
    data = codec.encode(DispatchStep("r-5", "a"))
    with pytest.raises(NotYet):  # still PENDING: it waits until due
        engine_message(pubsub_event(data, not_before=due_later), rt, clock=lambda: 1000.0)
    assert rt.ports.store.steps.end_steps("r-5", ["a"], StepState.CANCELLED, "cancelled", 1000.0).recorded
    engine_message(pubsub_event(data, not_before=due_later), rt, clock=lambda: 1000.0)  # acknowledged


PARAMS_DAG = {"params": {"day": {"type": "string", "required": True}, "shards": {"type": "list", "default": ["a"]}},
              "steps": [{"id": "t", "forEach": "{{ params.shards }}",
                         "task": {"imageUri": "img/t", "args": ["{{ params.day }}", "{{ item }}"]}}]}


def _members(rt: CloudRuntime, run_id: str) -> list[tuple[str, Any]]:
    return [(s.step_id, s.task.args) for s in rt.ports.store.list_steps(run_id)]


def test_params_come_alike_from_a_start_message_an_http_start_and_upload_metadata(
        rt: CloudRuntime, client: Any, tmp_path: Path) -> None:
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags/p.yaml").write_text(json.dumps(PARAMS_DAG))
    params = {"day": "2026-11-01", "shards": ["x", "y"]}
    start_message(pubsub_event(json.dumps({"dag_path": "gs://b/dags/p.yaml", "run_id": "m", "params": params})
                               .encode()), rt)
    assert client.post("/", json={"dag_path": "gs://b/dags/p.yaml", "run_id": "h", "params": params}).status_code == 202
    dag_uploaded(gcs_event("dags/p.yaml", metadata={"param-day": "2026-11-01", "param-shards": '["x","y"]'}), rt)
    upload = upload_run_id("b", "dags/p.yaml", "17")
    wanted = [("t.0", ("2026-11-01", "x")), ("t.1", ("2026-11-01", "y"))]
    assert _members(rt, "m") == _members(rt, "h") == _members(rt, upload) == wanted
    run = rt.ports.store.get_run(upload)
    assert run is not None and run.inputs.params == {"day": "2026-11-01", "shards": ("x", "y")}
    assert run.inputs.groups == {"t": ("t.0", "t.1")}


@pytest.mark.parametrize(("params", "problem"), [
    ({}, "params.day: is required"),
    ({"day": "d", "lr": "1"}, "params.lr: is not a parameter of this DAG"),
    ({"day": 5}, "params.day: must be a string, got integer 5"),
    ("day=1", "params must be an object"),
])
def test_bad_params_in_a_start_record_the_run_invalid_naming_them(rt: CloudRuntime, params: Any,
                                                                  problem: str) -> None:
    start_message(pubsub_event(json.dumps({"dag": PARAMS_DAG, "run_id": "bad", "params": params}).encode()), rt)
    run = rt.ports.store.get_run("bad")
    assert run is not None and run.status is RunStatus.INVALID and problem in " ".join(run.problems)
    assert published(rt) == []


def test_a_start_delivered_twice_across_a_second_is_dated_by_its_publish_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_793_491_199.0]  # 2026-10-31T23:59:59Z
    rt = cloud_bootstrap.cloud(
        ENV, store=RecordingStore(), bus=ListBus(), runner=ScriptedRunner(), dags=FileDags(tmp_path),
        tokens=SealedTokens(KEY, fallback=StaticToken("own")), events=RecordedEvents(), clock=lambda: now[0])
    dated = {"steps": [{"id": "a", "task": {"imageUri": "i", "args": ["{{ run.date }}", "{{ run.scheduledTime }}"]}}]}
    event = pubsub_event(json.dumps({"dag": dated, "run_id": "d-1"}).encode())
    event.data["message"]["publishTime"] = "2026-10-31T23:59:58.250Z"
    start_message(event, rt)
    now[0] += 2  # the next delivery is handled in the next day...
    monkeypatch.setattr(rt.ports.store, "get_run", lambda run_id: None)  # ...at once with the first: both start
    start_message(event, rt)  # the same run, not "another DAG" (which would be refused as poison)
    monkeypatch.undo()
    step = rt.ports.store.get_step("d-1", "a")
    assert step is not None and step.task.args == ("2026-10-31", "2026-10-31T23:59:58Z")
    assert [r.run_id for r in rt.ports.store.list_runs(10)] == ["d-1"]
