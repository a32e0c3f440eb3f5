"""DAG files in Cloud Storage: `gs://bucket/object`, through google-cloud-storage.

Every failure to read becomes a project error; an object over `MAX_FILE_BYTES` is
refused before it is downloaded. With `STORAGE_EMULATOR_HOST` set (e.g. `http://127.0.0.1:9023`) the library sends
requests there; this module then uses anonymous credentials and the project
`GOOGLE_CLOUD_PROJECT` (default "local"). The client is created on first use and kept.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol

from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions

from ..dagfile import parse_dag
from ..dagfile.limits import MAX_FILE_BYTES
from ..dagfile.load import oversize_problem
from ..errors import DagInvalid, DagNotFound, TransientError
from ..model.dag import Dag

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
GCS_TIMEOUT = 30.0
"""Seconds allowed for each GCS request (the client retries transient failures itself)."""


class StorageClient(Protocol):
    """The part of `google.cloud.storage.Client` used here."""

    def bucket(self, bucket_name: str) -> Any: ...


class DagSources:
    """The DagSource role: `read(path)` returns the validated `Dag` stored at `path`. Thread-safe.

    `storage_client` makes the GCS client (default: google-cloud-storage), on the first read only.
    """

    def __init__(self, storage_client: Callable[[], StorageClient] | None = None) -> None:
        self._make_client = storage_client
        self._lock = threading.Lock()
        self._client: StorageClient | None = None

    def read(self, path: str) -> Dag:
        """The validated DAG at `path`. Raises `DagNotFound`, `DagInvalid` or `TransientError`."""
        data, origin = self.read_bytes(path)
        return parse_dag(data, origin)

    def read_bytes(self, path: str) -> tuple[bytes, str]:
        """The object's bytes (at most `MAX_FILE_BYTES`) and its origin label for messages."""
        return self._read_gcs(path), path

    def _read_gcs(self, path: str) -> bytes:
        bucket_name, object_name = _split_gs(path)
        try:
            blob = self._storage().bucket(bucket_name).blob(object_name)
            blob.reload(timeout=GCS_TIMEOUT)
            size = int(blob.size or 0)
            if size > MAX_FILE_BYTES:
                raise DagInvalid(path, [oversize_problem(size)])
            if size == 0:
                return b""
            # Pinned to the generation whose size was checked: a replaced object is not read.
            data: bytes = blob.download_as_bytes(if_generation_match=blob.generation, timeout=GCS_TIMEOUT)
        except (api_exceptions.GoogleAPICallError, auth_exceptions.GoogleAuthError) as exc:
            raise _gcs_error(path, exc) from exc
        except OSError as exc:  # requests' connection errors are OSErrors
            raise TransientError(f"{path}: cannot reach Cloud Storage: {exc}") from exc
        if len(data) > MAX_FILE_BYTES:
            raise DagInvalid(path, [oversize_problem(len(data))])
        return data

    def _storage(self) -> StorageClient:
        with self._lock:
            if self._client is None:
                self._client = (self._make_client or _default_storage_client)()
            return self._client


def _default_storage_client() -> StorageClient:
    """google-cloud-storage's client: anonymous against an emulator, else default credentials."""
    from google.auth.credentials import AnonymousCredentials

    storage: Any = importlib.import_module("google.cloud.storage")  # untyped; imported on first use only
    project = os.environ.get(PROJECT_ENV) or None
    if os.environ.get(EMULATOR_ENV):
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        client: StorageClient = storage.Client(project=project or "local", credentials=anonymous)
    else:
        # project=None: reading an object needs no project, so none is looked up.
        client = storage.Client(project=project)
    return client


def _split_gs(path: str) -> tuple[str, str]:
    """(bucket, object) of `gs://bucket/object`; `DagNotFound` if either is missing."""
    bucket_name, _, object_name = path[len("gs://") :].partition("/")
    if path[: len("gs://")].lower() != "gs://" or not bucket_name or not object_name:
        raise DagNotFound(f"{path}: expected gs://BUCKET/OBJECT")
    return bucket_name, object_name


def _gcs_error(path: str, exc: Exception) -> Exception:
    """The project error for a google-cloud / google-auth exception."""
    detail = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, api_exceptions.NotFound):
        return DagNotFound(f"{path}: not found (no such bucket or object): {detail}")
    if isinstance(exc, (api_exceptions.Forbidden, api_exceptions.Unauthorized)):
        return DagNotFound(f"{path}: permission denied: {detail}; the credentials in use need storage.objects.get")
    if isinstance(exc, auth_exceptions.DefaultCredentialsError):
        return DagNotFound(
            f"{path}: no Google Cloud credentials to read it: run 'gcloud auth application-default login' "
            f"or set GOOGLE_APPLICATION_CREDENTIALS ({detail})"
        )
    if isinstance(exc, api_exceptions.PreconditionFailed):
        return TransientError(f"{path}: the object changed while it was being read; try again")
    if isinstance(exc, (api_exceptions.ServerError, api_exceptions.TooManyRequests, auth_exceptions.TransportError)):
        return TransientError(f"{path}: Cloud Storage is unavailable: {detail}")
    return DagNotFound(f"{path}: cannot be read: {detail}")
