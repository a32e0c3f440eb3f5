"""Eventarc for the GCS emulator: deliver `object.v1.finalized` CloudEvents to a function.

gcp-storage-emulator has no notification hook (no Pub/Sub notifications, no callbacks), so
`FinalizeForwarder` polls the bucket with the google-cloud-storage client and, for every
(name, generation) it has not seen, POSTs the event Eventarc would send: binary content
mode, `ce-type: google.cloud.storage.object.v1.finalized`,
`ce-source: //storage.googleapis.com/projects/_/buckets/BUCKET`, `ce-subject: objects/NAME`,
and the object resource as JSON body, integers as strings.

Guarantees:
- one delivery (plus retries) per (bucket, name, generation): an overwrite is a new
  generation and so a new event; objects present when the forwarder starts are skipped
  (a trigger only sees uploads made after it exists) unless `deliver_existing`;
- the same upload always yields the same `ce-id` and body (`finalize_event` is pure), so
  a test can deliver an event twice exactly as an at-least-once redelivery would;
- a delivery answered with a status other than 102/200/201/202/204, or failing on the
  network, is retried with exponential backoff, `max_attempts` times at most, then
  dropped and logged (Eventarc with retries on, compressed in time);
- deliveries run concurrently on worker threads; `stop()` ends polling and abandons
  pending retries, and returns within about `request_timeout` seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import requests
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials

LOG = logging.getLogger(__name__)

FINALIZED = "google.cloud.storage.object.v1.finalized"
ACK_STATUSES = frozenset({102, 200, 201, 202, 204})
"""The statuses Eventarc (through its Pub/Sub push subscription) takes as success."""

_INT_FIELDS = ("generation", "size")
_COPIED_FIELDS = (
    "contentType",
    "timeCreated",
    "updated",
    "storageClass",
    "timeStorageClassUpdated",
)
_OPTIONAL_FIELDS = (
    "md5Hash",
    "contentEncoding",
    "contentDisposition",
    "contentLanguage",
    "cacheControl",
    "crc32c",
    "etag",
    "customTime",
)


# --------------------------------------------------------------------------- event shape


def object_resource(blob: Any) -> Mapping[str, Any]:
    """The JSON API object resource of a `google.cloud.storage.Blob` (or a mapping as is)."""
    if isinstance(blob, Mapping):
        return blob
    properties = getattr(blob, "_properties", None)
    if not isinstance(properties, Mapping):
        raise TypeError(f"not a Blob nor an object resource: {blob!r}")
    return properties


def object_data(bucket: str, resource: Mapping[str, Any]) -> dict[str, Any]:
    """The event's data: the object resource as Eventarc sends it (production links)."""
    name = str(resource["name"])
    generation = str(resource["generation"])
    quoted = urllib.parse.quote(name, safe="")
    data: dict[str, Any] = {
        "kind": "storage#object",
        "id": f"{bucket}/{name}/{generation}",
        "selfLink": f"https://www.googleapis.com/storage/v1/b/{bucket}/o/{quoted}",
        "name": name,
        "bucket": bucket,
    }
    for key in _INT_FIELDS:
        if resource.get(key) is not None:
            data[key] = str(resource[key])
    # A generation is finalized with metageneration 1; the emulator counts the metadata
    # sent with the upload as a second one, and a later patch is not a finalize event.
    data["metageneration"] = "1"
    data.update({key: resource[key] for key in _COPIED_FIELDS if resource.get(key) is not None})
    data["mediaLink"] = (
        f"https://storage.googleapis.com/download/storage/v1/b/{bucket}/o/{quoted}?generation={generation}&alt=media"
    )
    data.update({key: resource[key] for key in _OPTIONAL_FIELDS if resource.get(key)})
    if resource.get("metadata"):
        data["metadata"] = {str(k): str(v) for k, v in dict(resource["metadata"]).items()}
    return _ordered(data)


def _ordered(data: dict[str, Any]) -> dict[str, Any]:
    order = ("kind", "id", "selfLink", "name", "bucket", "generation", "metageneration")
    head = {key: data[key] for key in order if key in data}
    return {**head, **{k: v for k, v in data.items() if k not in head}}


def event_id(bucket: str, name: str, generation: str) -> str:
    """A decimal id, stable for one upload, like Eventarc's numeric ids."""
    digest = hashlib.sha256(f"{bucket}\0{name}\0{generation}".encode()).digest()
    return str(int.from_bytes(digest[:7], "big"))


def finalize_event(bucket: str, blob: Any) -> tuple[dict[str, str], bytes]:
    """(HTTP headers, body) of the finalize event for `blob` in `bucket`, binary mode.

    `blob` is a `google.cloud.storage.Blob` with its properties loaded (as listed or
    reloaded) or the object resource as a mapping. Pure: equal inputs, equal outputs.
    """
    data = object_data(bucket, object_resource(blob))
    headers = {
        "ce-specversion": "1.0",
        "ce-type": FINALIZED,
        "ce-source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "ce-subject": f"objects/{data['name']}",
        "ce-id": event_id(bucket, data["name"], data.get("generation", "")),
        "ce-time": str(data.get("updated") or data.get("timeCreated") or _now()),
        "content-type": "application/json",
    }
    return headers, json.dumps(data, separators=(",", ":")).encode("utf-8")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


# --------------------------------------------------------------------------- client


def storage_client(emulator_url: str, project: str = "local-project") -> Any:
    """A google-cloud-storage Client for the emulator at `emulator_url`, anonymous."""
    from google.cloud import storage  # type: ignore[attr-defined, unused-ignore]

    return storage.Client(
        project=project,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call, unused-ignore]
        client_options={"api_endpoint": emulator_url},
    )


# --------------------------------------------------------------------------- delivery


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: `initial` s, times `multiplier`, at most `maximum` s."""

    max_attempts: int = 5
    initial: float = 0.5
    maximum: float = 8.0
    multiplier: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.maximum, self.initial * self.multiplier ** (attempt - 1)))


@dataclass
class ForwarderStats:
    """Counters of a forwarder (they only grow); `events` holds the headers delivered."""

    polls: int = 0  # listings of the bucket done
    seen: int = 0
    delivered: int = 0
    dropped: int = 0
    attempts: int = 0
    events: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, name: str, headers: dict[str, str] | None = None) -> None:
        """Add one to counter `name`; record `headers` in `events` when given."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
            if headers is not None:
                self.events.append(headers)


def deliver(
    session: requests.Session,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    timeout: float = 10.0,
) -> int | None:
    """POST one event; return the HTTP status, or None when the request itself failed."""
    try:
        response = session.post(url, data=body, headers=dict(headers), timeout=timeout)
    except requests.RequestException as err:
        LOG.warning("delivery of %s to %s failed: %s", headers.get("ce-id"), url, err)
        return None
    return response.status_code


class FinalizeForwarder:
    """Poll a bucket on the GCS emulator and deliver finalize events to `target_url`."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        target_url: str,
        *,
        interval: float = 0.3,
        retry: RetryPolicy | None = None,
        request_timeout: float = 10.0,
        deliver_existing: bool = False,
        workers: int = 8,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.target_url = target_url
        self.interval = interval
        self.retry = retry or RetryPolicy()
        self.request_timeout = request_timeout
        self.stats = ForwarderStats()
        self._deliver_existing = deliver_existing
        self._seen: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix=f"eventarc-{bucket}")
        self._thread = threading.Thread(target=self._run, name=f"eventarc-poll-{bucket}", daemon=True)

    def start(self) -> FinalizeForwarder:
        """Take the initial snapshot of the bucket, then start polling in a daemon thread."""
        snapshot = self._list()
        if not self._deliver_existing:
            self._seen.update(snapshot)
        self._thread.start()
        LOG.info("forwarding finalize events of gs://%s to %s", self.bucket, self.target_url)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop polling and delivering; idempotent. Pending retries are abandoned."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout if timeout is not None else self.request_timeout + 5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for session in self._sessions:
            session.close()

    def __enter__(self) -> FinalizeForwarder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def poll_once(self) -> int:
        """List the bucket once and schedule an event per new generation; return how many."""
        fresh = [(key, blob) for key, blob in self._list().items() if key not in self._seen]
        for key, blob in fresh:
            self._seen.add(key)
            self.stats.count("seen")
            self._pool.submit(self._deliver_with_retries, *finalize_event(self.bucket, blob))
        return len(fresh)

    def _list(self) -> dict[tuple[str, str], Any]:
        try:
            blobs = list(self.client.list_blobs(self.bucket))
        except gexc.NotFound:
            LOG.debug("bucket %s does not exist yet", self.bucket)
            return {}
        return {(str(b.name), str(b.generation)): b for b in blobs}

    def _http(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            self._sessions.append(session)
        return session

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # keep watching through emulator hiccups
                LOG.exception("listing gs://%s failed", self.bucket)
            self.stats.count("polls")
            self._stop.wait(self.interval)

    def _deliver_with_retries(self, headers: dict[str, str], body: bytes) -> None:
        for attempt in range(1, self.retry.max_attempts + 1):
            if self._stop.is_set():
                return
            self.stats.count("attempts")
            status = deliver(self._http(), self.target_url, headers, body, self.request_timeout)
            if status in ACK_STATUSES:
                self.stats.count("delivered", headers)
                LOG.debug("delivered %s (%s) on attempt %d", headers["ce-id"], headers["ce-subject"], attempt)
                return
            LOG.warning(
                "event %s for %s answered %s (attempt %d/%d)",
                headers["ce-id"],
                headers["ce-subject"],
                status,
                attempt,
                self.retry.max_attempts,
            )
            if attempt < self.retry.max_attempts:
                self._stop.wait(self.retry.delay(attempt))
        self.stats.count("dropped")
        LOG.error(
            "dropped event %s for %s after %d attempts",
            headers["ce-id"],
            headers["ce-subject"],
            self.retry.max_attempts,
        )
