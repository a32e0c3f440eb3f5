"""The CloudEvent entry points with in-memory ports (no cloud): decoding, idempotent starts,
INVALID runs, delayed messages, poison messages."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import pytest
from cloudevents.http import CloudEvent

import main
from enginekit import ListBus, ScriptedRunner
from workflow import bootstrap
from workflow.adapters.dag_sources import DagSources
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.adapters.http.auth import SealedTokens, StaticToken
from workflow.bootstrap import CloudRuntime
from workflow.dagfile import parse_dag
from workflow.entrypoints import (
    GCS_FINALIZED,
    MAX_INLINE_WAIT,
    PUBSUB_PUBLISHED,
    NotYet,
    dag_uploaded,
    engine_message,
    start_message,
    upload_run_id,
)
from workflow.model import codec
from workflow.model.messages import DispatchStep, StartRun
from workflow.model.records import RunRecord, StepRecord
from workflow.model.states import RunStatus

KEY = "q3v6oVn8kR9A0QG7lq2m2n7pPZxG2Jm0y9dQ9ZpVb3U="
DAG = {"steps": [{"id": "a", "task": {"imageUri": "img/a"}}, {"id": "b", "dependsOn": ["a"],
                                                               "task": {"imageUri": "img/b"}}]}
ENV = {
    "WORKFLOW_TR_URL": "https://runner.example",
    "WORKFLOW_ALLOWED_TR_ORIGINS": "https://runner.example, https://tr.example,https://other.example",
    "WORKFLOW_DAG_BUCKETS": "b",
    "WORKFLOW_CHECK_STATE_DURATION_SEC": "0",
}


class FileDags(DagSources):
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
    return bootstrap.cloud(
        {**ENV, **env}, store=RecordingStore(), bus=ListBus(), runner=ScriptedRunner(), dags=FileDags(tmp_path),
        tokens=tokens or SealedTokens(KEY, fallback=StaticToken("own")),
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
    assert published(rt) == [DispatchStep(run_id, "a")]
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
    run = rt.ports.store.get_run(upload_run_id("b", "dags/bad.yaml", "17"))
    assert run is not None and run.status is RunStatus.INVALID
    assert any("dependsOn" in p for p in run.problems) and published(rt) == []


def test_start_message_inline_with_a_token_keeps_it_sealed(rt: CloudRuntime) -> None:
    body = {"dag": DAG, "run_id": "r-1", "tr_hostname": "https://tr.example", "tr_auth_jwt": "secret-jwt"}
    start_message(pubsub_event(json.dumps(body).encode()), rt)
    start_message(pubsub_event(json.dumps(body).encode()), rt)
    step = rt.ports.store.get_step("r-1", "a")
    assert step is not None and step.tr_url == "https://tr.example"
    assert "secret-jwt" not in step.tr_auth and step.tr_auth.startswith("fernet:")
    assert rt.tokens.token("https://tr.example", step.tr_auth, "r-1") == "secret-jwt"
    assert rt.tokens.token("https://tr.example", "") == "own"
    assert published(rt) == [DispatchStep("r-1", "a")]


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
    assert published(rt) == [DispatchStep("r-4", "a")]
    engine_message(pubsub_event(b"{}"), rt)  # malformed: logged, acknowledged
    engine_message(pubsub_event(codec.encode(DispatchStep("r-4", "nope"))), rt)  # unknown step
    assert len(published(rt)) == 1


def test_delayed_engine_message_waits_or_asks_for_redelivery(rt: CloudRuntime) -> None:
    slept: list[float] = []
    data = codec.encode(DispatchStep("nope", "x"))
    with pytest.raises(NotYet):
        engine_message(pubsub_event(data, not_before=str(1000 + MAX_INLINE_WAIT + 1)), rt,
                       clock=lambda: 1000.0, sleep=slept.append)
    engine_message(pubsub_event(data, not_before="1003.5"), rt, clock=lambda: 1000.0, sleep=slept.append)
    assert slept == [3.5]


def test_entry_points_declare_and_check_their_event_type(rt: CloudRuntime) -> None:
    assert main.on_dag_uploaded.event_type == GCS_FINALIZED  # type: ignore[attr-defined]
    assert main.on_start_message.event_type == PUBSUB_PUBLISHED  # type: ignore[attr-defined]
    assert main.on_engine_message.event_type == PUBSUB_PUBLISHED  # type: ignore[attr-defined]
    assert main.on_start_request.trigger == "http"  # type: ignore[attr-defined]
    assert main.on_start_message.trigger == PUBSUB_PUBLISHED  # type: ignore[attr-defined]
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
