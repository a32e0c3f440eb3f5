"""What a test (or a user) does with a running local cloud: upload, publish, post, read runs.

`CloudClient` holds the clients, bound to the emulators and made on first use; `LocalCloud`
(in `stack`) is one, once started. Nothing here reads or changes this process's environment,
except for the moment a Firestore client is built (the client only learns of the emulator
from it).
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workflow.adapters.gcp.firestore_store import FirestoreStateStore
from workflow.entrypoints import upload_run_id
from workflow.model.records import RunRecord, StepRecord

from . import eventarc, pubsub_wiring
from .wiring import CONTROL_TOPIC, ENGINE_TOPIC, START_TOPIC

_ENV_LOCK = threading.Lock()


class RunTimeout(TimeoutError):
    """A run did not reach a terminal status in time; the message lists its steps."""


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in os.environ for the block (serialised), then restore what was there."""
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def firestore_client(host_port: str, project: str) -> Any:
    """A Firestore client bound to the emulator at `host_port` (anonymous)."""
    from google.cloud import firestore

    with _environment({"FIRESTORE_EMULATOR_HOST": host_port}):
        return firestore.Client(project=project)


class CloudClient:
    """Clients of the local cloud's emulators and functions, shared and made on first use.

    A subclass says where things are: `firestore_host`, `pubsub_host`, `storage_url`, `start_url`,
    `control_url`.
    """

    def __init__(self, project: str, bucket: str) -> None:
        self.project = project
        self.bucket = bucket
        self._lock = threading.RLock()
        self._clients: dict[str, Any] = {}

    @property
    def firestore_host(self) -> str:
        """FIRESTORE_EMULATOR_HOST (`HOST:PORT`)."""
        raise NotImplementedError

    @property
    def pubsub_host(self) -> str:
        """PUBSUB_EMULATOR_HOST (`HOST:PORT`)."""
        raise NotImplementedError

    @property
    def storage_url(self) -> str:
        """STORAGE_EMULATOR_HOST (`http://HOST:PORT`)."""
        raise NotImplementedError

    @property
    def start_url(self) -> str:
        """The URL of the HTTP start function (POST a start request as JSON)."""
        raise NotImplementedError

    @property
    def control_url(self) -> str:
        """The URL of the HTTP control function (POST a cancel, rerun or resume request as JSON)."""
        raise NotImplementedError

    @property
    def control_topic(self) -> str:
        """`projects/P/topics/workflow-run-control`."""
        return pubsub_wiring.topic_path(self.project, CONTROL_TOPIC)

    @property
    def start_topic(self) -> str:
        """`projects/P/topics/workflow-start`."""
        return pubsub_wiring.topic_path(self.project, START_TOPIC)

    @property
    def engine_topic(self) -> str:
        """`projects/P/topics/workflow-engine`."""
        return pubsub_wiring.topic_path(self.project, ENGINE_TOPIC)

    # -- clients --------------------------------------------------------------------------
    def _client(self, name: str, make: Callable[[], Any]) -> Any:
        with self._lock:
            if name not in self._clients:
                self._clients[name] = make()
            return self._clients[name]

    def firestore_client(self) -> Any:
        """A Firestore client bound to the emulator (shared; made on first use)."""
        return self._client("firestore", lambda: firestore_client(self.firestore_host, self.project))

    def storage_client(self) -> Any:
        """A google-cloud-storage client bound to the GCS emulator, anonymous (shared)."""
        return self._client("storage", lambda: eventarc.storage_client(self.storage_url, self.project))

    def publisher(self) -> Any:
        """A google-cloud-pubsub PublisherClient bound to the Pub/Sub emulator (shared)."""
        return self._client("publisher", lambda: pubsub_wiring.publisher(self.pubsub_host))

    def close_clients(self, quietly: Callable[[str, Callable[[], object]], None]) -> None:
        """Close every client made so far, each through `quietly`."""
        for name, client in self._clients.items():
            closer = getattr(client, "stop", None) if name == "publisher" else getattr(client, "close", None)
            if callable(closer):
                quietly(f"the {name} client", closer)

    def store(self) -> FirestoreStateStore:
        """The engine's state store over `firestore_client()`."""
        return FirestoreStateStore(self.firestore_client())

    # -- doing things ---------------------------------------------------------------------
    def upload(
        self,
        source: str | Path | bytes,
        name: str,
        metadata: Mapping[str, str] | None = None,
        *,
        bucket: str | None = None,
    ) -> tuple[str, str]:
        """Upload a file (path) or bytes as object `name`; return (name, generation)."""
        return upload_object(self.storage_client(), bucket or self.bucket, source, name, metadata)

    def run_id_for(self, name: str, generation: str | int) -> str:
        """The id of the run an upload of `name` at `generation` to the bucket starts."""
        return upload_run_id(self.bucket, name, str(generation))

    def publish_start(self, request: Mapping[str, Any], timeout: float = 30.0) -> str:
        """Publish a start request (JSON) on the start topic; return the message id."""
        data = json.dumps(request).encode()
        message_id: str = self.publisher().publish(self.start_topic, data).result(timeout=timeout)
        return message_id

    def publish_control(self, request: Mapping[str, Any], timeout: float = 30.0) -> str:
        """Publish a cancel, rerun or resume request (JSON) on the control topic; return the message id."""
        data = json.dumps(request).encode()
        message_id: str = self.publisher().publish(self.control_topic, data).result(timeout=timeout)
        return message_id

    def publish_engine(self, data: bytes, attributes: dict[str, str]) -> None:
        """Publish an engine message and wait until the emulator has it."""
        self.publisher().publish(self.engine_topic, data, **attributes).result(timeout=30.0)

    def post_start(self, request: Mapping[str, Any], timeout: float = 30.0,
                   caller: str = "", headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        """POST a start request to the HTTP start function as `caller` (an email; nobody if
        ""), with `headers` (e.g. a schedule's X-CloudScheduler-ScheduleTime): (HTTP status,
        JSON answer)."""
        return _post(self.start_url, request, timeout, caller, headers)

    def post_control(self, request: Mapping[str, Any], timeout: float = 30.0,
                     caller: str = "") -> tuple[int, dict[str, Any]]:
        """POST a cancel, rerun or resume request to the HTTP control function as `caller`
        (an email; nobody if ""): (HTTP status, JSON answer)."""
        return _post(self.control_url, request, timeout, caller)

    def run(self, run_id: str) -> RunRecord | None:
        """The run's record, or None."""
        return self.store().get_run(run_id)

    def steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps, in DAG order."""
        return self.store().list_steps(run_id)

    def wait_run(self, run_id: str, timeout: float = 60.0, interval: float = 0.1) -> RunRecord:
        """Poll Firestore until the run's status is terminal; return its record.

        Raises RunTimeout (naming the run's status and each step's state) after `timeout` s.
        """
        store = self.store()
        deadline = time.monotonic() + timeout
        while True:
            run = store.get_run(run_id)
            if run is not None and run.status.terminal:
                return run
            if time.monotonic() >= deadline:
                steps = store.list_steps(run_id)
                states = ", ".join(f"{s.step_id}={s.state.value}" for s in steps[:50]) or "no steps"
                status = run.status.value if run is not None else "no run record"
                raise RunTimeout(f"run {run_id} not finished after {timeout:g} s: {status}; {states}")
            time.sleep(interval)


def id_token_for(email: str) -> str:
    """An unsigned token shaped as a Google ID token naming `email`. On Cloud Run, Google
    checks the caller's signed token before the function sees it; the local cloud has no
    Cloud Run in front, so its functions take the header as it comes."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part({'email': email, 'email_verified': True})}.unsigned"


def _post(url: str, request: Mapping[str, Any], timeout: float, caller: str,
          extra: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json", **(extra or {})}
    if caller:
        headers["Authorization"] = f"Bearer {id_token_for(caller)}"
    post = urllib.request.Request(url, data=json.dumps(request).encode(), method="POST", headers=headers)
    try:
        with urllib.request.urlopen(post, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, json.loads(refused.read())


def upload_object(
    client: Any, bucket: str, source: str | Path | bytes, name: str, metadata: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """Upload a file (path) or bytes to gs://bucket/name with `client`; return (name, generation)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    blob = client.bucket(bucket).blob(name)
    if metadata:
        blob.metadata = dict(metadata)
    blob.upload_from_string(data, content_type=_content_type(name))
    return name, str(blob.generation)


def _content_type(name: str) -> str:
    lowered = name.lower()
    if lowered.endswith((".yaml", ".yml")):
        return "application/yaml"
    guessed, _ = mimetypes.guess_type(lowered)
    return guessed or "application/octet-stream"
