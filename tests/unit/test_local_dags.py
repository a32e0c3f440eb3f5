"""Reading DAG files from local paths and `file://` URLs (the command line's source)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from workflow.adapters import local_dags
from workflow.adapters.dag_sources import DagSources
from workflow.adapters.local_dags import LocalDags
from workflow.dagfile.limits import MAX_FILE_BYTES
from workflow.errors import DagInvalid, DagNotFound

SEED = """\
name: fork-join
steps:
  - id: prepare
    task:
      imageUri: gcr.io/project/prepare:1
  - id: train
    dependsOn: [prepare]
    task:
      imageUri: gcr.io/project/train:1
"""


def test_read_dag_from_a_local_path_and_a_file_url(tmp_path: Path) -> None:
    path = tmp_path / "my dag.yaml"
    path.write_text(SEED)
    assert LocalDags().read(str(path)).step_ids == ("prepare", "train")
    url = "file://" + str(path).replace(" ", "%20")
    assert LocalDags().read(url).step_ids == ("prepare", "train")


def test_invalid_local_file_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("steps: []\n")
    with pytest.raises(DagInvalid) as info:
        LocalDags().read(str(path))
    assert info.value.origin == str(path)
    assert str(info.value).startswith(f"{path}: invalid DAG")


def test_missing_local_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    with pytest.raises(DagNotFound, match=r"missing\.yaml: no such file"):
        LocalDags().read(missing)


def test_directory_is_not_a_dag_file(tmp_path: Path) -> None:
    with pytest.raises(DagNotFound, match="is a directory"):
        LocalDags().read(str(tmp_path))


def test_unreadable_local_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.yaml"
    path.write_text(SEED)

    def refuse(file: str, mode: str) -> Any:
        raise PermissionError(13, "Permission denied", file)

    monkeypatch.setattr(local_dags, "open", refuse, raising=False)
    with pytest.raises(DagNotFound, match=r"secret\.yaml: permission denied"):
        LocalDags().read(str(path))


def test_big_local_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(50 * MAX_FILE_BYTES)  # sparse: costs no disk
    with pytest.raises(DagInvalid) as info:
        LocalDags().read(str(path))
    assert [str(p) for p in info.value.problems] == [
        f"file is {50 * MAX_FILE_BYTES:,} bytes; the limit is {MAX_FILE_BYTES:,} bytes (1 MiB)"
    ]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "no DAG path given"),
        ("https://example.com/dag.yaml", "unsupported scheme 'https'"),
        ("gs://bucket-only", "expected gs://BUCKET/OBJECT"),
        ("gs:///object", "expected gs://BUCKET/OBJECT"),
        ("file://otherhost/dag.yaml", "is not local"),
    ],
)
def test_unusable_paths(path: str, message: str) -> None:
    with pytest.raises(DagNotFound, match=message):
        LocalDags().read(path)


def test_gs_paths_are_read_from_cloud_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []

    def from_gcs(self: DagSources, path: str) -> bytes:
        read.append(path)
        return SEED.encode()

    monkeypatch.setattr(DagSources, "_read_gcs", from_gcs)
    assert LocalDags().read("GS://bkt/dags/seed.yaml").step_ids == ("prepare", "train")
    assert read == ["GS://bkt/dags/seed.yaml"]
