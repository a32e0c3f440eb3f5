"""The local cloud's processes, Pub/Sub push wiring and Eventarc forwarder, end to end."""

from __future__ import annotations

import base64
import datetime
import json
import logging
import os
import signal
import statistics
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.localcloud import emulators, eventarc, processes, pubsub_wiring, servers
from devtools.localcloud.processes import ManagedProcess, MissingTool, StartupError
from devtools.localcloud.servers import Service
from polling import wait_until

LOG = logging.getLogger(__name__)

pytestmark = pytest.mark.cloud

BASELINE = "devtools/localcloud/baseline.py"



class Capture:
    """A local HTTP server that records POSTs and answers with scripted statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[float, str, dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        self._lock = threading.Lock()
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                status = capture.record(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                LOG.debug(format, *args)

        self.server = ThreadingHTTPServer((servers.LOOPBACK, 0), Handler)
        self.url = f"http://{servers.LOOPBACK}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def record(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            self.requests.append((time.monotonic(), path, headers, body))
            return self.statuses.pop(0) if self.statuses else 200

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture() -> Iterator[Callable[..., Capture]]:
    servers: list[Capture] = []

    def make(statuses: list[int] | None = None) -> Capture:
        servers.append(Capture(statuses))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


# --------------------------------------------------------------------------- processes


def test_emulators_start_and_answer(
    firestore_emulator: Service,
    pubsub_emulator: Service,
    storage_emulator: Service,
    firestore_client: Any,
    storage_client: Any,
    unique_id: Callable[[str], str],
    project: str,
    record_property: Callable[[str, object], None],
) -> None:
    for service in (firestore_emulator, pubsub_emulator, storage_emulator):
        assert service.host == "127.0.0.1"
        assert service.url == f"http://127.0.0.1:{service.port}"
        assert requests.get(service.url + "/", timeout=5).status_code == 200
        record_property(f"{service.name}_startup_seconds", round(service.startup_seconds, 2))

    doc = firestore_client.collection(unique_id("c")).document("d")
    doc.set({"x": 1})
    assert doc.get().to_dict() == {"x": 1}

    admin = pubsub_wiring.topic_admin(pubsub_emulator.host_port)
    topic = pubsub_wiring.ensure_topic(admin, project, unique_id("t"))
    assert admin.get_topic(topic=topic).name == topic

    bucket = storage_client.create_bucket(unique_id("b"))
    bucket.blob("a.txt").upload_from_string("hello")
    assert bucket.blob("a.txt").download_as_bytes() == b"hello"


def test_firestore_reset_empties_the_project(
    firestore_emulator: Service, firestore_client: Any, unique_id: Callable[[str], str]
) -> None:
    collection = firestore_client.collection(unique_id("c"))
    collection.document("d").set({"x": 1})
    emulators.reset_firestore(firestore_emulator.host_port, "localcloud-test")
    assert list(collection.stream()) == []


def test_stop_ends_the_whole_group_and_frees_the_port(
    project: str, require_tool: Callable[[Callable[[], Service]], Service]
) -> None:
    service = require_tool(lambda: emulators.start_firestore_emulator(project))
    pgid, port = service.process.pgid, service.port
    assert processes.group_exists(pgid)
    assert not servers.port_is_free(port)

    service.stop()

    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)
    assert servers.port_is_free(port)
    assert service.process not in processes.live_processes()
    service.stop()  # idempotent


def test_stop_escalates_to_sigkill_for_a_group_ignoring_sigterm() -> None:
    script = "trap '' TERM; sleep 300 & sleep 300 & echo armed; wait"
    process = ManagedProcess("stubborn", ["sh", "-c", script])
    wait_until(lambda: "armed" in process.log_path.read_text(), 10, "the shell to install its trap and fork")
    process.stop(grace=0.5)
    with pytest.raises(ProcessLookupError):
        os.killpg(process.pgid, 0)
    assert process.returncode == -signal.SIGKILL


def test_wait_ready_fails_with_the_log_tail_when_the_process_exits() -> None:
    process = ManagedProcess("doomed", ["sh", "-c", "echo 'port busy: boom'; exit 3"])
    with pytest.raises(StartupError, match=r"(?s)exited with code 3.*port busy: boom"):
        process.wait_ready(lambda: False, timeout=10)
    process.stop()


def test_wait_ready_times_out_with_the_log_tail() -> None:
    process = ManagedProcess(
        "slow", [sys.executable, "-c", "print('warming', flush=True); import time; time.sleep(60)"]
    )
    try:
        with pytest.raises(StartupError, match=r"(?s)not ready after 1 s.*warming"):
            process.wait_ready(lambda: False, timeout=1)
    finally:
        process.stop()
    assert not processes.group_exists(process.pgid)


def test_missing_gcloud_names_the_tool_and_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    emulators.sdk_root.cache_clear()
    try:
        with pytest.raises(MissingTool) as caught:
            emulators.start_pubsub_emulator("p")
    finally:
        emulators.sdk_root.cache_clear()
    assert caught.value.tool == "gcloud"
    assert "gcloud components install cloud-firestore-emulator pubsub-emulator" in str(caught.value)
    assert "apt-get install google-cloud-cli-firestore-emulator" in str(caught.value)


# --------------------------------------------------------------------------- Pub/Sub push


def _publish(host_port: str, topic: str, count: int, **attributes: str) -> list[str]:
    publisher = pubsub_wiring.publisher(host_port)
    try:
        futures = [publisher.publish(topic, f"message {i}".encode(), n=str(i), **attributes) for i in range(count)]
        return [future.result(timeout=30) for future in futures]
    finally:
        publisher.stop()


def _seconds(value: Any) -> float:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return float(value.timestamp())


def test_baseline_function_writes_one_document_per_pushed_message(
    start_function: Callable[..., Service],
    pubsub_emulator: Service,
    firestore_client: Any,
    unique_id: Callable[[str], str],
    project: str,
    record_property: Callable[[str, object], None],
) -> None:
    collection = unique_id("baseline")
    function = start_function(BASELINE, "write_one", BASELINE_COLLECTION=collection)
    topic_id = unique_id("t")
    trigger = pubsub_wiring.wire_push_trigger(project, topic_id, function.url, host=pubsub_emulator.host_port)
    again = pubsub_wiring.wire_push_trigger(project, topic_id, function.url, host=pubsub_emulator.host_port)
    assert again == trigger  # idempotent

    ids = _publish(pubsub_emulator.host_port, trigger.topic, 50)

    docs = wait_until(
        lambda: (d := list(firestore_client.collection(collection).stream())) and len(d) >= 50 and d,
        timeout=60,
        what="50 documents",
    )
    assert sorted(doc.id for doc in docs) == sorted(ids)
    first = docs[0].to_dict()
    assert first["ceType"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert first["ceSource"] == f"//pubsub.googleapis.com/projects/{project}/topics/{topic_id}"
    assert first["data"].startswith("message ")
    latencies = [_seconds(d.get("writtenAt")) - _seconds(d.get("publishTime")) for d in docs]
    record_property("push_latency_p50_s", round(statistics.median(latencies), 3))
    record_property("push_latency_max_s", round(max(latencies), 3))


def test_dead_letter_policy_forwards_after_max_attempts(
    capture: Callable[..., Capture],
    pubsub_emulator: Service,
    unique_id: Callable[[str], str],
    project: str,
) -> None:
    target = capture([500] * 100)
    topic_id = unique_id("t")
    trigger = pubsub_wiring.wire_push_trigger(
        project,
        topic_id,
        target.url,
        host=pubsub_emulator.host_port,
        dead_letter_topic_id=unique_id("dlq"),
        max_delivery_attempts=5,
    )
    assert trigger.dead_letter_subscription is not None
    _publish(pubsub_emulator.host_port, trigger.topic, 1)

    admin = pubsub_wiring.subscription_admin(pubsub_emulator.host_port)

    def dead_letters() -> list[Any]:
        response = admin.pull(subscription=trigger.dead_letter_subscription, max_messages=10, timeout=5)
        return list(response.received_messages)

    received = wait_until(dead_letters, timeout=30, what="a dead-lettered message", interval=0.5)
    assert len(received) == 1
    attributes = dict(received[0].message.attributes)
    assert attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert attributes["CloudPubSubDeadLetterSourceSubscription"] == trigger.subscription.rsplit("/", 1)[1]
    assert len(target.requests) == 5


# --------------------------------------------------------------------------- Eventarc


def _events(target: Capture) -> list[tuple[dict[str, str], dict[str, Any]]]:
    return [({k.lower(): v for k, v in h.items()}, json.loads(b)) for _, _, h, b in target.requests]


def _assert_finalize_event(headers: dict[str, str], body: dict[str, Any], bucket: str, blob: Any) -> None:
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    assert headers["ce-source"] == f"//storage.googleapis.com/projects/_/buckets/{bucket}"
    assert headers["ce-subject"] == f"objects/{blob.name}"
    assert headers["ce-id"].isdigit()
    assert headers["ce-time"] == body["updated"]
    assert headers["content-type"] == "application/json"
    assert body["kind"] == "storage#object"
    assert body["id"] == f"{bucket}/{blob.name}/{blob.generation}"
    assert body["selfLink"].startswith("https://www.googleapis.com/storage/v1/b/")
    assert (body["name"], body["bucket"]) == (blob.name, bucket)
    assert body["generation"] == str(blob.generation)
    assert body["metageneration"] == "1"
    assert body["size"] == str(blob.size)
    for key in ("contentType", "timeCreated", "updated", "storageClass", "md5Hash", "crc32c", "etag"):
        assert isinstance(body[key], str) and body[key], key


def test_forwarder_delivers_one_eventarc_event_per_upload_and_overwrite(
    capture: Callable[..., Capture], storage_client: Any, unique_id: Callable[[str], str]
) -> None:
    target = capture()
    bucket = storage_client.create_bucket(unique_id("b"))
    bucket.blob("before-trigger.yaml").upload_from_string("old")
    with eventarc.FinalizeForwarder(storage_client, bucket.name, target.url + "/") as forwarder:
        blob = bucket.blob("dags/my dag.yaml")
        blob.metadata = {"owner": "tests"}
        blob.upload_from_string("steps: []\n", content_type="text/yaml")

        wait_until(lambda: len(target.requests) >= 1, timeout=10, what="the finalize event")
        polled = forwarder.stats.polls
        wait_until(lambda: forwarder.stats.polls >= polled + 3, timeout=10, what="three more polls")
        # three more listings of the bucket: still one event
        ((headers, body),) = _events(target)
        _assert_finalize_event(headers, body, bucket.name, blob)
        assert body["contentType"] == "text/yaml"
        assert body["metadata"] == {"owner": "tests"}
        assert target.requests[0][1] == "/"

        blob.upload_from_string("steps: [a]\n", content_type="text/yaml")
        wait_until(lambda: len(target.requests) >= 2, timeout=10, what="the overwrite's event")
        polled = forwarder.stats.polls
        wait_until(lambda: forwarder.stats.polls >= polled + 3, timeout=10, what="three more polls")
        assert len(target.requests) == 2
        second_headers, second = _events(target)[1]
        _assert_finalize_event(second_headers, second, bucket.name, blob)
        assert int(second["generation"]) > int(body["generation"])
        assert second_headers["ce-id"] != headers["ce-id"]
    assert forwarder.stats.delivered == 2 and forwarder.stats.dropped == 0


def test_forwarder_retries_a_failed_delivery_with_backoff(
    capture: Callable[..., Capture], storage_client: Any, unique_id: Callable[[str], str]
) -> None:
    target = capture([503, 500])
    bucket = storage_client.create_bucket(unique_id("b"))
    retry = eventarc.RetryPolicy(max_attempts=4, initial=0.2, maximum=1.0)
    with eventarc.FinalizeForwarder(storage_client, bucket.name, target.url, retry=retry) as forwarder:
        bucket.blob("x.yaml").upload_from_string("x")
        wait_until(lambda: forwarder.stats.delivered == 1, timeout=10, what="delivery after retries")
    times = [t for t, *_ in target.requests]
    assert len(times) == 3
    assert len({h["ce-id"] for _, _, h, _ in target.requests}) == 1
    assert times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4
    assert forwarder.stats.attempts == 3


def test_forwarder_drops_an_event_after_max_attempts(
    capture: Callable[..., Capture], storage_client: Any, unique_id: Callable[[str], str]
) -> None:
    target = capture([500] * 10)
    bucket = storage_client.create_bucket(unique_id("b"))
    retry = eventarc.RetryPolicy(max_attempts=3, initial=0.05, maximum=0.1)
    with eventarc.FinalizeForwarder(storage_client, bucket.name, target.url, retry=retry) as forwarder:
        bucket.blob("x.yaml").upload_from_string("x")
        wait_until(lambda: forwarder.stats.dropped == 1, timeout=10, what="the event to be dropped")
    assert len(target.requests) == 3 and forwarder.stats.delivered == 0


CAPTURE_FUNCTION = """
import json
import os

import functions_framework


@functions_framework.cloud_event
def capture(event):
    record = {"attributes": dict(event.get_attributes()), "data": event.data}
    with open(os.environ["CAPTURE_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\\n")
"""


def test_functions_framework_reads_the_finalize_event_delivered_twice(
    start_function: Callable[..., Service],
    storage_client: Any,
    unique_id: Callable[[str], str],
    tmp_path: Path,
) -> None:
    source = tmp_path / "main.py"
    source.write_text(textwrap.dedent(CAPTURE_FUNCTION))
    received = tmp_path / "events.jsonl"
    function = start_function(tmp_path, "capture", CAPTURE_FILE=str(received))
    bucket = storage_client.create_bucket(unique_id("b"))
    blob = bucket.blob("run.yaml")
    blob.upload_from_string("steps: []\n")
    blob.reload()

    headers, body = eventarc.finalize_event(bucket.name, blob)
    assert eventarc.finalize_event(bucket.name, blob) == (headers, body)
    for _ in range(2):
        assert requests.post(function.url, headers=headers, data=body, timeout=10).status_code == 200

    records = [json.loads(line) for line in received.read_text().splitlines()]
    assert len(records) == 2 and records[0] == records[1]
    attributes = records[0]["attributes"]
    assert attributes["type"] == "google.cloud.storage.object.v1.finalized"
    assert attributes["source"] == f"//storage.googleapis.com/projects/_/buckets/{bucket.name}"
    assert attributes["subject"] == "objects/run.yaml"
    assert attributes["id"] == headers["ce-id"]
    assert records[0]["data"]["generation"] == str(blob.generation)


def test_baseline_message_decoding_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudevents.http import CloudEvent

    from devtools.localcloud import baseline

    written: dict[str, Any] = {}

    class FakeDoc:
        def __init__(self, path: str) -> None:
            self.path = path

        def set(self, data: dict[str, Any]) -> None:
            written[self.path] = data

    class FakeClient:
        def collection(self, name: str) -> Any:
            return type("C", (), {"document": lambda _self, doc_id: FakeDoc(f"{name}/{doc_id}")})()

    monkeypatch.setattr(baseline, "_client", FakeClient())
    monkeypatch.setenv("BASELINE_COLLECTION", "coll")
    event = CloudEvent(
        {"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub.googleapis.com/x", "id": "9"},
        {"message": {"data": base64.b64encode(b"hi").decode(), "messageId": "42", "attributes": {"a": "b"}}},
    )
    baseline.write_one(event)
    assert written["coll/42"]["data"] == "hi"
    assert written["coll/42"]["attributes"] == {"a": "b"}
