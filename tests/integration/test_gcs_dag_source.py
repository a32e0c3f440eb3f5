"""`DagSources().read("gs://...")` against gcp-storage-emulator on loopback.

Without the emulator the tests are skipped (`pip install gcp-storage-emulator`), except
in CI (CI=true), where they fail.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.localcloud import emulators, processes
from workflow.adapters.dag_sources import EMULATOR_ENV, DagSources
from workflow.dagfile.limits import MAX_FILE_BYTES
from workflow.errors import DagInvalid, DagNotFound

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


@pytest.fixture(scope="module")
def emulator_host() -> Iterator[str]:
    """The URL of a running in-memory emulator (the local cloud's launcher), stopped after
    this module's tests."""
    try:
        service = emulators.start_storage_emulator()
    except processes.MissingTool as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        yield service.env["STORAGE_EMULATOR_HOST"]
    finally:
        service.stop()


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
