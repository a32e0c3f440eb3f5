"""`DagSources().read("gs://...")` against gcp-storage-emulator on loopback.

Without the emulator the tests are skipped (`pip install gcp-storage-emulator`), except
in CI (CI=true), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from workflow.adapters.dag_sources import EMULATOR_ENV, DagSources, read_dag_bytes
from workflow.dagfile.limits import MAX_FILE_BYTES
from workflow.errors import DagInvalid, DagNotFound

EMULATOR = "gcp-storage-emulator"
LOOPBACK = "127.0.0.1"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

SEED = b"""\
name: fork-join
steps:
  - id: prepare
    task:
      imageUri: gcr.io/project/prepare:1
      args: ["--date", "2020-01-01"]
  - id: train
    dependsOn: [prepare]
    task: {name: train-model, imageUri: gcr.io/project/train:1, labels: {team: ml}}
"""


def emulator_command() -> str:
    """The emulator's executable: beside this interpreter (a virtualenv) or on PATH."""
    beside = Path(sys.executable).with_name(EMULATOR)
    found = str(beside) if beside.is_file() else shutil.which(EMULATOR)
    if found is None:
        message = f"{EMULATOR} is not installed: pip install gcp-storage-emulator"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_listening(process: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> None:
    """Return once the port accepts connections; fail with the log if it never does."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    log.seek(0)
    tail = log.read().decode(errors="replace")[-2000:]
    pytest.fail(f"{EMULATOR} did not listen on port {port} within {READY_TIMEOUT}s; its output:\n{tail}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the emulator's process group, SIGKILL it if still there after a grace period."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=STOP_TIMEOUT)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="module")
def emulator_host() -> Iterator[str]:
    """The URL of a running in-memory emulator, stopped after this module's tests."""
    command = emulator_command()
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [command, "start", f"--host={LOOPBACK}", f"--port={port}", "--in-memory"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_listening(process, port, log)
            yield f"http://{LOOPBACK}:{port}"
        finally:
            stop(process)


@pytest.fixture
def bucket(emulator_host: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A new, empty bucket on the emulator, with STORAGE_EMULATOR_HOST pointing there."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv(EMULATOR_ENV, emulator_host)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    anonymous: Any = AnonymousCredentials
    client = storage.Client(project="test", credentials=anonymous())
    return client.create_bucket(f"dags-{uuid.uuid4().hex[:16]}")


def upload(bucket: Any, name: str, data: bytes) -> str:
    bucket.blob(name).upload_from_string(data)
    return f"gs://{bucket.name}/{name}"


def test_reads_a_dag_from_the_emulator(bucket: Any) -> None:
    path = upload(bucket, "dags/fork-join.yaml", SEED)
    dag = DagSources().read(path)
    assert dag.name == "fork-join"
    assert dag.step_ids == ("prepare", "train")
    assert dag.steps[1].task.to_request() == {
        "job_name": "train-model",
        "imageUri": "gcr.io/project/train:1",
        "labels": {"team": "ml"},
    }
    assert read_dag_bytes(path) == (SEED, path)


def test_reads_a_json_dag(bucket: Any) -> None:
    document = {"steps": [{"id": "only", "task": {"imageUri": "gcr.io/p/x:1", "args": {"k": "v"}}}]}
    path = upload(bucket, "dag.json", json.dumps(document).encode())
    assert DagSources().read(path).steps[0].task.args == {"k": "v"}


def test_missing_object_is_dag_not_found(bucket: Any) -> None:
    path = f"gs://{bucket.name}/no/such/dag.yaml"
    with pytest.raises(DagNotFound) as info:
        DagSources().read(path)
    assert str(info.value).startswith(f"{path}: not found")


def test_missing_bucket_is_dag_not_found(bucket: Any) -> None:
    path = f"gs://{bucket.name}-missing/dag.yaml"
    with pytest.raises(DagNotFound, match="not found"):
        DagSources().read(path)


def test_invalid_dag_names_the_gs_path(bucket: Any) -> None:
    path = upload(bucket, "bad.yaml", b"steps:\n  - id: a\n    depends_on: [b]\n")
    with pytest.raises(DagInvalid) as info:
        DagSources().read(path)
    assert info.value.origin == path
    assert [str(p) for p in info.value.problems] == [
        "steps[0] (id 'a'): unknown key 'depends_on'; did you mean 'dependsOn'?",
        "steps[0] (id 'a'): missing required key 'task' (the job to run, with at least 'imageUri')",
    ]


def test_object_over_the_size_limit_is_refused(bucket: Any) -> None:
    path = upload(bucket, "huge.yaml", b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(DagInvalid) as info:
        DagSources().read(path)
    assert [str(p) for p in info.value.problems] == [
        f"file is {MAX_FILE_BYTES + 1:,} bytes; the limit is {MAX_FILE_BYTES:,} bytes (1 MiB)"
    ]
