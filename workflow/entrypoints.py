"""What the Cloud Functions do with a CloudEvent; `main.py` only binds them to names.

- `dag_uploaded`: a GCS finalize event of a DAG file under the prefix starts a run whose
  id derives from bucket, object and generation, so a redelivered event starts nothing new.
- `start_message`: a Pub/Sub start request `{"dag_path"|"dag", "tr_hostname", "tr_auth_jwt",
  "run_id"}`; without `run_id` the run id derives from the Pub/Sub message id.
- `engine_message`: the engine's own messages; one with a `not_before` attribute in the
  future is held (up to `MAX_INLINE_WAIT` seconds) or handed back for redelivery.

A bad DAG or request is recorded as an INVALID run with its report and acknowledged; a
malformed engine message is logged with its ids and acknowledged; anything transient
raises, so Pub/Sub or Eventarc redelivers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .adapters.dag_sources import DagSources
from .adapters.http.auth import SealedTokens
from .dagfile import parse_dag
from .engine import Ports, handle
from .errors import AuthError, DagInvalid, InputError, PoisonMessage, TransientError
from .model import codec
from .model.dag import Dag
from .model.messages import StartRun
from .model.records import RunRecord
from .model.states import RunStatus

log = logging.getLogger("workflow.entrypoints")

GCS_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
DAG_EXTENSIONS = (".yaml", ".yml", ".json")
MAX_INLINE_WAIT = 8.0  # below the 10 s ack deadline of an Eventarc push subscription
START_KEYS = frozenset({"dag_path", "dag", "tr_hostname", "tr_url", "tr_auth_jwt", "run_id"})
RUN_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
F = TypeVar("F", bound=Callable[..., Any])


class NotYet(TransientError):
    """A delayed message arrived early: hand it back so Pub/Sub redelivers it later."""


@dataclass(frozen=True)
class CloudRuntime:
    ports: Ports
    dags: DagSources
    tokens: SealedTokens
    dag_prefix: str
    default_tr_url: str
    report_ops: bool = False  # log this instance's store and bus counters after each event


def report_ops(rt: CloudRuntime) -> None:
    """With WORKFLOW_REPORT_OPS=1: one log line of the instance's cumulative counters (benchmarks)."""
    if rt.report_ops:
        counts = {name: getattr(obj, name, None) for obj, name in
                  ((rt.ports.store, "reads"), (rt.ports.store, "writes"), (rt.ports.bus, "published"))}
        counts["pid"] = os.getpid()
        log.info("ops %s", json.dumps(counts))


def accepts(event_type: str) -> Callable[[F], F]:
    """Mark an entry point with the CloudEvent type it decodes (deploy checks read it)."""

    def mark(fn: F) -> F:
        @functools.wraps(fn)
        def checked(event: Any) -> None:
            if event["type"] != event_type:
                log.warning("ignored a %s event: %s takes %s", event["type"], fn.__name__, event_type)
                return
            fn(event)

        checked.event_type = event_type  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return mark


# -- GCS uploads ------------------------------------------------------------------------
def dag_uploaded(event: Any, rt: CloudRuntime) -> None:
    obj: Mapping[str, Any] = event.data or {}
    bucket, name, generation = str(obj.get("bucket", "")), str(obj.get("name", "")), str(obj.get("generation", ""))
    if not name.startswith(rt.dag_prefix) or not name.lower().endswith(DAG_EXTENSIONS):
        log.info("ignored gs://%s/%s: not a DAG file under %r", bucket, name, rt.dag_prefix)
        return
    run_id = upload_run_id(bucket, name, generation)
    if rt.ports.store.get_run(run_id) is not None:
        log.info("upload already started run %s", run_id, extra={"run_id": run_id})
        return
    metadata = obj.get("metadata") or {}
    tr_url = str(metadata.get("tr_url") or metadata.get("tr_hostname") or rt.default_tr_url)
    source = f"gs://{bucket}/{name}#{generation}"
    _start(rt, run_id, source, tr_url, "", lambda: rt.dags.read(f"gs://{bucket}/{name}"))


def upload_run_id(bucket: str, name: str, generation: str) -> str:
    """Deterministic: one upload (bucket, object, generation) is one run."""
    digest = hashlib.sha256(f"{bucket}/{name}#{generation}".encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name.rsplit("/", 1)[-1].rsplit(".", 1)[0])[:60].strip("-")
    return f"{stem or 'dag'}-{digest}"


# -- start requests ---------------------------------------------------------------------
def start_message(event: Any, rt: CloudRuntime) -> None:
    data, _, message_id = pubsub_message(event)
    try:
        body = json.loads(data)
    except ValueError:
        log.error("start message %s is not JSON: ignored", message_id)
        return
    if not isinstance(body, dict):
        log.error("start message %s is not a JSON object: ignored", message_id)
        return
    run_id = str(body.get("run_id") or f"start-{message_id}")
    if not RUN_ID.match(run_id):
        log.error("start message %s: run_id %r is not 1-128 of A-Z a-z 0-9 . _ -", message_id, run_id)
        return
    if rt.ports.store.get_run(run_id) is not None:
        log.info("run %s already started", run_id, extra={"run_id": run_id})
        return
    tr_url = str(body.get("tr_hostname") or body.get("tr_url") or rt.default_tr_url)
    source = str(body.get("dag_path") or "inline")
    _start(rt, run_id, source, tr_url, body.get("tr_auth_jwt") or "", lambda: _requested_dag(body, rt))


def _requested_dag(body: dict[str, Any], rt: CloudRuntime) -> Dag:
    unknown = sorted(set(body) - START_KEYS)
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(START_KEYS))})")
    if ("dag" in body) == ("dag_path" in body):
        raise InputError("give exactly one of 'dag' (the DAG itself) or 'dag_path' (gs://bucket/object)")
    if "dag_path" in body:
        return rt.dags.read(str(body["dag_path"]))
    return parse_dag(json.dumps(body["dag"]).encode(), "the start message's 'dag'")


def _start(rt: CloudRuntime, run_id: str, source: str, tr_url: str, jwt: str, load: Callable[[], Dag]) -> None:
    """Start the run, or record it INVALID with every problem (and acknowledge)."""
    try:
        dag = load()
        if not re.match(r"^https?://[^/\s]+", tr_url):
            raise InputError(f"no usable Task Runner URL ({tr_url!r}): set WORKFLOW_TR_URL, or tr_hostname "
                             "in the start message, or the object's metadata tr_url")
        sealed = rt.tokens.seal(jwt, run_id=run_id, origin=tr_url) if jwt else ""
    except DagInvalid as exc:
        _record_invalid(rt, run_id, source, tr_url, [str(p) for p in exc.problems])
        return
    except (InputError, AuthError) as exc:
        _record_invalid(rt, run_id, source, tr_url, [str(exc)])
        return
    handle(StartRun(run_id, dag, tr_url.rstrip("/"), source=source, tr_auth=sealed), rt.ports)


def _record_invalid(rt: CloudRuntime, run_id: str, source: str, tr_url: str, problems: list[str]) -> None:
    log.warning("run %s INVALID: %s", run_id, "; ".join(problems), extra={"run_id": run_id})
    run = RunRecord(run_id, RunStatus.INVALID, tr_url, source=source, created_at=time.time(),
                    finished_at=time.time(), problems=tuple(problems))
    rt.ports.store.create_run(run, [])


# -- engine messages --------------------------------------------------------------------
def engine_message(event: Any, rt: CloudRuntime, clock: Callable[[], float] = time.time,
                   sleep: Callable[[float], None] = time.sleep) -> None:
    data, attributes, message_id = pubsub_message(event)
    ids = {"run_id": attributes.get("run_id", ""), "step_id": attributes.get("step_id", "")}
    try:
        msg = codec.decode(data)
    except PoisonMessage as exc:
        log.error("dropped malformed message %s: %s", message_id, exc, extra=ids)
        return
    wait = float(attributes.get("not_before") or 0) - clock()
    if wait > MAX_INLINE_WAIT:
        raise NotYet(f"message {message_id} is due in {wait:.1f} s")
    if wait > 0:
        sleep(wait)
    try:
        handle(msg, rt.ports)
    except PoisonMessage as exc:
        log.error("dropped message %s: %s", message_id, exc, extra=ids)


def pubsub_message(event: Any) -> tuple[bytes, dict[str, str], str]:
    """(data, attributes, message id) of a messagePublished CloudEvent."""
    import base64

    message = (event.data or {}).get("message") or {}
    try:
        data = base64.b64decode(message.get("data") or "")
    except ValueError:
        data = b""
    return data, dict(message.get("attributes") or {}), str(message.get("messageId") or message.get("message_id") or "")
