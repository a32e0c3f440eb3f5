"""What the Cloud Functions do with an event or request; `main.py` only binds them to names.

README (Cloud runtime, Security) gives each function's contract: what starts a run, how a
request is checked, what is acknowledged and what raises so Pub/Sub or Eventarc redelivers.
A caller's token never appears in a report, a log line or an exception.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .adapters.http.auth import check_token
from .bootstrap.cloud import CloudRuntime
from .dagfile import parse_dag
from .engine import announce, handle
from .errors import AuthError, DagInvalid, InputError, PoisonMessage, TransientError
from .model import codec
from .model.dag import Dag
from .model.events import RunEnded
from .model.messages import CancelRun, ReconcileRun, RerunRun, StartRun
from .model.records import RunRecord
from .model.states import RunStatus
from .model.text import excerpt, redact
from .model.urls import origin_of
from .settings import (
    ALLOW_HTTP_ENV,
    ALLOWED_ORIGINS_ENV,
    DAG_BUCKETS_ENV,
    TR_URL_ENV,
    EdgeSettings,
)

log = logging.getLogger("workflow.entrypoints")

GCS_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
DAG_EXTENSIONS = (".yaml", ".yml", ".json")
START_KEYS = frozenset({"action", "dag_path", "dag", "tr_hostname", "tr_url", "tr_auth_jwt", "run_id"})
RUN_ACTIONS = {"cancel": ("action", "run_id"), "rerun": ("action", "run_id", "reruns", "from"),
               "resume": ("action", "run_id")}  # each with the keys it takes
ACTIONS = ("start", *RUN_ACTIONS)
HTTP_ALIASES = {"workflow-path": "dag_path", "tr-url": "tr_hostname"}  # the Go tool's service
MAX_START_BYTES = 1_048_576
MAX_TR_URL = 2_048
MAX_DAG_PATH = 1_024
F = TypeVar("F", bound=Callable[..., Any])


class NotYet(TransientError):
    """A delayed message arrived early: hand it back so Pub/Sub redelivers it later."""


@dataclass(frozen=True)
class Started:
    """The outcome of a start request: the run id and, for an INVALID run, its report."""

    run_id: str
    problems: tuple[str, ...] = ()


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


def event_ids(event: Any) -> dict[str, str]:
    """The run (and step) an event is about, for log lines; empty when it cannot be told."""
    if event["type"] == GCS_FINALIZED:
        obj = event.data or {}
        return {"run_id": upload_run_id(str(obj.get("bucket", "")), str(obj.get("name", "")),
                                        str(obj.get("generation", "")))}
    data, attributes, message_id = pubsub_message(event)
    if attributes.get("run_id"):
        return {"run_id": attributes["run_id"], "step_id": attributes.get("step_id", "")}
    body, _ = _json_object(data)
    given = (body or {}).get("run_id")
    return {"run_id": str(given) if codec.id_problem(given, "run_id") is None else f"start-{message_id}"}


# -- GCS uploads ------------------------------------------------------------------------
def dag_uploaded(event: Any, rt: CloudRuntime) -> None:
    obj: Mapping[str, Any] = event.data or {}
    bucket, name, generation = str(obj.get("bucket", "")), str(obj.get("name", "")), str(obj.get("generation", ""))
    if not name.startswith(rt.edge.dag_prefix) or not name.lower().endswith(DAG_EXTENSIONS):
        log.info("ignored gs://%s/%s: not a DAG file under %r", bucket, name, rt.edge.dag_prefix)
        return
    run_id = upload_run_id(bucket, name, generation)
    if rt.ports.store.runs.get_run(run_id) is not None:
        log.info("upload already started run %s", run_id, extra={"run_id": run_id})
        return
    metadata = obj.get("metadata") or {}
    given = metadata.get("tr_url") or metadata.get("tr_hostname")
    tr_url = given or rt.edge.default_tr_url
    where = "the object's metadata tr_url" if given else TR_URL_ENV
    request = _Request(run_id, f"gs://{bucket}/{name}#{generation}", tr_url, None,
                       tr_url_problems(tr_url, rt.edge, where))
    _start(rt, request, lambda: rt.dags.read(f"gs://{bucket}/{name}"))


def upload_run_id(bucket: str, name: str, generation: str) -> str:
    """Deterministic: one upload (bucket, object, generation) is one run."""
    digest = hashlib.sha256(f"{bucket}/{name}#{generation}".encode()).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name.rsplit("/", 1)[-1].rsplit(".", 1)[0])[:60].strip("-")
    return f"{stem or 'dag'}-{digest}"


# -- start requests ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Request:
    """A start request after its checks: `problems` lists everything wrong with it."""

    run_id: str
    source: str
    tr_url: Any
    jwt: Any
    problems: list[str]
    body: dict[str, Any] = dataclasses.field(default_factory=dict)


def start_message(event: Any, rt: CloudRuntime) -> None:
    data, _, message_id = pubsub_message(event)
    body, _ = _json_object(data)
    if body is not None and body.get("action", "start") != "start":
        run_request(body, rt)
        return
    _started(_checked(data, f"start-{message_id}", rt.edge, {}), rt)


def start_over_http(request: Any, rt: CloudRuntime) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for a werkzeug request: 202 started, 400 INVALID, 405, 415, 503."""
    if request.method != "POST":
        return 405, {"error": "use POST with a JSON start request"}
    if request.mimetype != "application/json":
        return 415, {"error": f"Content-Type must be application/json, not {excerpt(request.mimetype, 100)!r}"}
    data = request.stream.read(MAX_START_BYTES + 1)  # one byte more than allowed: enough to refuse
    body, _ = _json_object(data)
    if body is not None and body.get("action", "start") != "start":
        return _answer(run_request(body, rt))
    checked = _checked(data, f"start-http-{uuid.uuid4().hex}", rt.edge, HTTP_ALIASES)
    try:
        started = _started(checked, rt)
    except TransientError as exc:
        log.warning("run %s: retry later: %s", checked.run_id, exc, extra={"run_id": checked.run_id})
        return 503, {"run_id": checked.run_id, "error": f"try again later: {exc}"}
    if started.problems:
        return 400, {"run_id": started.run_id, "problems": list(started.problems)}
    return 202, {"run_id": started.run_id}


def _started(request: _Request, rt: CloudRuntime) -> Started:
    """Start the run a start request asks for, or record it INVALID; idempotent per run id:
    a repeated run id changes nothing and answers as the first request did."""
    run_id = request.run_id
    existing = rt.ports.store.runs.get_run(run_id)
    if existing is not None:
        log.info("run %s already started", run_id, extra={"run_id": run_id})
        return Started(run_id, existing.problems if existing.status is RunStatus.INVALID else ())
    return _start(rt, request, lambda: _requested_dag(request.body, rt))


def _json_object(data: bytes) -> tuple[dict[str, Any] | None, str]:
    """(the JSON object, "") or (None, why not)."""
    if len(data) > MAX_START_BYTES:
        return None, f"the start request is {len(data):,}+ bytes long (at most {MAX_START_BYTES:,})"
    try:
        body = json.loads(data)
    except RecursionError:
        return None, "the start request is nested too deeply to be read"
    except ValueError as exc:
        return None, f"the start request is not JSON ({excerpt(str(exc), 120)})"
    if not isinstance(body, dict):
        return None, f"the start request is a JSON {type(body).__name__}, not an object"
    return body, ""


def _checked(data: bytes, fallback_id: str, edge: EdgeSettings, aliases: Mapping[str, str]) -> _Request:
    body, problem = _json_object(data)
    if body is None:
        return _Request(fallback_id, "inline", "", None, [problem])
    problems = _renamed(body, aliases)
    run_id = body.get("run_id", fallback_id)
    id_problem = codec.id_problem(run_id, "run_id")
    if id_problem:
        run_id = fallback_id
        problems.append(id_problem)
    unknown = sorted(set(body) - START_KEYS)
    if unknown:
        problems.append(f"unknown key(s) {excerpt(', '.join(unknown), 300)} (known: {', '.join(sorted(START_KEYS))})")
    given = body.get("tr_hostname") or body.get("tr_url")
    tr_url = given or edge.default_tr_url
    problems += tr_url_problems(tr_url, edge, "tr_hostname" if given else TR_URL_ENV)
    problems += _token_problems(body)
    problems += _dag_problems(body, edge)
    path = body.get("dag_path")
    source = excerpt(path, 200) if isinstance(path, str) else "inline"
    return _Request(run_id, source, tr_url, body.get("tr_auth_jwt"), problems, body)


def _renamed(body: dict[str, Any], aliases: Mapping[str, str]) -> list[str]:
    """Rename the aliased keys in place; a problem for each key given under both names."""
    problems = []
    for alias, key in aliases.items():
        if alias in body:
            if key in body:
                problems.append(f"give {alias!r} or {key!r}, not both")
            body[key] = body.pop(alias)
    return problems


def tr_url_problems(url: Any, edge: EdgeSettings, where: str) -> list[str]:
    """Why the functions must not send requests (with their identity's token) to `url`."""
    if not isinstance(url, str):
        return [f"{where} must be a string, not {type(url).__name__}"]
    if len(url) > MAX_TR_URL:
        return [f"{where} is {len(url):,} characters long (at most {MAX_TR_URL:,})"]
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return [f"no usable Task Runner URL in {where} ({excerpt(url, 100)!r}): set {TR_URL_ENV}, or "
                "tr_hostname in the start message, or the object's metadata tr_url"]
    if "@" in parts.netloc:
        return [f"{where}: a Task Runner URL with userinfo (user@host) is refused"]
    origin = excerpt(origin_of(url), 300)
    problems = []
    if origin_of(url) not in edge.allowed_tr_origins:
        allowed = ", ".join(sorted(edge.allowed_tr_origins)) or "none"
        problems.append(f"{where}: Task Runner origin {origin} is not allowed ({ALLOWED_ORIGINS_ENV}: {allowed})")
    if parts.scheme.lower() == "http" and not edge.allow_http_tr:
        problems.append(f"{where}: Task Runner origin {origin} is plain http, refused ({ALLOW_HTTP_ENV}=1 "
                        "allows it, for local use only)")
    return problems


def _token_problems(body: dict[str, Any]) -> list[str]:
    if "tr_auth_jwt" not in body:
        return []
    jwt = body["tr_auth_jwt"]
    if not isinstance(jwt, str):
        return [f"tr_auth_jwt must be a string, not {type(jwt).__name__}"]
    try:
        check_token(jwt, "tr_auth_jwt")
    except AuthError as exc:
        return [str(exc)]
    return []


def _dag_problems(body: dict[str, Any], edge: EdgeSettings) -> list[str]:
    if ("dag" in body) == ("dag_path" in body):
        return ["give exactly one of 'dag' (the DAG itself) or 'dag_path' (gs://bucket/object)"]
    if "dag_path" not in body:
        return []
    path = body["dag_path"]
    if not isinstance(path, str):
        return [f"dag_path must be a string, not {type(path).__name__}"]
    if len(path) > MAX_DAG_PATH:
        return [f"dag_path is {len(path):,} characters long (at most {MAX_DAG_PATH:,})"]
    bucket, _, name = path.removeprefix("gs://").partition("/")
    if not path.startswith("gs://") or not name or bucket not in edge.dag_buckets:
        buckets = ", ".join(sorted(edge.dag_buckets)) or "none"
        return [f"dag_path {excerpt(path, 200)!r} is not gs://BUCKET/OBJECT in an allowed bucket "
                f"({DAG_BUCKETS_ENV}: {buckets})"]
    return []


def _requested_dag(body: dict[str, Any], rt: CloudRuntime) -> Dag:
    if "dag_path" in body:
        return rt.dags.read(body["dag_path"])
    try:
        text = json.dumps(body["dag"])
    except RecursionError:
        raise InputError("the start message's 'dag' is nested too deeply") from None
    return parse_dag(text.encode(), "the start message's 'dag'")


def _start(rt: CloudRuntime, request: _Request, load: Callable[[], Dag]) -> Started:
    """Start the run, or record it INVALID with every problem (and acknowledge)."""
    problems = list(request.problems)
    try:
        if not problems:
            dag = load()
            sealed = rt.tokens.seal(request.jwt, run_id=request.run_id, origin=request.tr_url) if request.jwt else ""
            handle(StartRun(request.run_id, dag, request.tr_url.rstrip("/"), source=request.source,
                            tr_auth=sealed), rt.ports)
            return Started(request.run_id)
    except DagInvalid as exc:
        problems = [str(p) for p in exc.problems]
    except (InputError, RecursionError) as exc:
        problems = [str(exc) if isinstance(exc, InputError) else "the DAG is nested too deeply"]
    return _record_invalid(rt, request, problems)


def _record_invalid(rt: CloudRuntime, request: _Request, problems: list[str]) -> Started:
    """Record the run INVALID with its report; nothing of a caller's token is kept or logged."""
    run_id = request.run_id
    secrets = [request.jwt] if isinstance(request.jwt, str) else []
    problems = [redact(p, secrets) for p in problems]
    log.warning("run %s INVALID: %s", run_id, "; ".join(problems), extra={"run_id": run_id})
    shown_url = request.tr_url if isinstance(request.tr_url, str) and not request.problems else ""
    now = rt.ports.clock()
    run = RunRecord(run_id, RunStatus.INVALID, redact(shown_url, secrets), source=redact(request.source, secrets),
                    created_at=now, finished_at=now, problems=tuple(problems))
    rt.ports.store.runs.create_run(run, [])
    announce(rt.ports, RunEnded.of(run, []))  # once: a claim guards it
    return Started(run_id, tuple(problems))


# -- requests about a run (cancel, rerun, resume) ----------------------------------------
RunControl = CancelRun | RerunRun | ReconcileRun


@dataclass(frozen=True)
class RunRequest:
    """A cancel, rerun or resume request: the engine message it asks for, or why it is not
    handed over (`problems`: the request is wrong; `ignored`: nothing to do for this run)."""

    action: str
    run_id: str
    message: RunControl | None = None
    problems: tuple[str, ...] = ()
    ignored: str = ""


def parse_run_request(body: Mapping[str, Any], stale_after: float) -> RunRequest:
    """Check a request's shape (nothing is read): its engine message, or every problem.
    `stale_after` goes into a resume's ReconcileRun."""
    action, run_id = body.get("action"), body.get("run_id")
    shown_id = excerpt(run_id, 130) if isinstance(run_id, str) else ""  # an id is at most 128
    if not isinstance(action, str) or action not in RUN_ACTIONS:
        return RunRequest(excerpt(str(action), 40), shown_id, problems=(
            f"unknown action {excerpt(repr(action), 40)} (known: {', '.join(ACTIONS)})",))
    problems = _run_request_problems(action, body)
    if problems:
        return RunRequest(action, shown_id, problems=tuple(problems))
    message: RunControl
    if action == "cancel":
        message = CancelRun(shown_id, "cancelled by a request on the start topic")
    elif action == "resume":
        message = ReconcileRun(shown_id, stale_after)
    else:
        message = RerunRun(shown_id, int(body["reruns"]), str(body.get("from", "")))
    return RunRequest(action, shown_id, message)


def _run_request_problems(action: str, body: Mapping[str, Any]) -> list[str]:
    problems = [codec.id_problem(body["run_id"], "run_id") if "run_id" in body else "run_id is missing"]
    unknown = sorted(set(body) - set(RUN_ACTIONS[action]))
    if unknown:
        problems.append(f"unknown key(s) {excerpt(', '.join(unknown), 300)} (a {action} request takes: "
                        f"{', '.join(RUN_ACTIONS[action])})")
    if action == "rerun":
        reruns = body.get("reruns")
        if type(reruns) is not int or reruns < 0:
            problems.append("reruns must be a whole number >= 0 (the run's count of reruns so far), "
                            f"not {excerpt(repr(reruns), 40)}")
        if "from" in body:
            problems.append(codec.id_problem(body["from"], "from"))
    return [p for p in problems if p]


def run_request(body: Mapping[str, Any], rt: CloudRuntime) -> RunRequest:
    """Check the request against its run and hand its engine message to the engine's bus;
    log (and return) why not. A repeated request changes nothing the engine did."""
    request = parse_run_request(body, rt.ports.settings.submit_lease)
    if request.message is not None:
        ignored, problems = _against_run(request.message, rt)
        request = dataclasses.replace(request, ignored=ignored, problems=problems,
                                      message=None if ignored or problems else request.message)
    ids = {"run_id": request.run_id}
    if request.problems:
        log.warning("INVALID %s request for run %r: %s", request.action, request.run_id,
                    "; ".join(request.problems), extra=ids)
    elif request.ignored:
        log.info("ignored %s request for run %s: %s", request.action, request.run_id, request.ignored, extra=ids)
    elif request.message is not None:
        rt.ports.bus.publish([request.message])
        log.info("%s requested", request.action, extra=ids)
    return request


def _against_run(message: RunControl, rt: CloudRuntime) -> tuple[str, tuple[str, ...]]:
    """(why there is nothing to do, what is wrong) for `message` given its run's state."""
    run = rt.ports.store.runs.get_run(message.run_id)
    if run is None:
        return "", (f"no run {message.run_id!r}",)
    if not isinstance(message, RerunRun):
        return (f"it already ended {run.status.value}", ()) if run.status.terminal else ("", ())
    done = len(run.reruns)
    if message.reruns > done:
        return "", (f"reruns is {message.reruns}, but the run has had {done} rerun(s)",)
    if message.reruns < done:
        return f"rerun number {message.reruns + 1} was already done (the run has had {done})", ()
    if not run.status.terminal:
        return "it is still RUNNING: cancel it first, or resume it", ()
    if message.from_step and rt.ports.store.steps.get_step(run.run_id, message.from_step) is None:
        return "", (f"run {run.run_id} has no step {message.from_step!r}",)
    return "", ()


def _answer(request: RunRequest) -> tuple[int, dict[str, Any]]:
    """The HTTP answer to a run request: 202 handed over, 400 invalid, 409 nothing to do."""
    if request.problems:
        return 400, {"run_id": request.run_id, "problems": list(request.problems)}
    if request.ignored:
        return 409, {"run_id": request.run_id, "error": request.ignored}
    return 202, {"run_id": request.run_id, "action": request.action}


# -- engine messages --------------------------------------------------------------------
def engine_message(event: Any, rt: CloudRuntime, clock: Callable[[], float] = time.time,
                   sleep: Callable[[float], None] = time.sleep) -> None:
    data, attributes, message_id = pubsub_message(event)
    ids = {"run_id": attributes.get("run_id", ""), "step_id": attributes.get("step_id", "")}
    try:
        msg = codec.decode(data)
        due = _not_before(attributes.get("not_before"))
    except PoisonMessage as exc:
        log.error("dropped malformed message %s: %s", message_id, exc, extra=ids)
        return
    wait = due - clock()
    if wait > rt.edge.max_inline_wait:
        if clock() - _published_at(event, clock()) > REPUBLISH_AFTER:
            # before its redeliveries run out (dead letter), publish it afresh, still due at `due`
            rt.ports.bus.publish([msg], delay=wait)
            return
        raise NotYet(f"message {message_id} is due in {wait:.1f} s")
    if wait > 0:
        sleep(wait)
    try:
        handle(msg, rt.ports)
    except PoisonMessage as exc:
        log.error("dropped message %s: %s", message_id, exc, extra=ids)


REPUBLISH_AFTER = 60.0
"""Seconds a message not yet due bounces (4 deliveries, fewer than the 5 a dead-letter
policy allows at least) before it is published again, still due when it was."""


def _published_at(event: Any, default: float) -> float:
    """When Pub/Sub accepted the message (its `publishTime`), in Unix seconds."""
    raw = str(((event.data or {}).get("message") or {}).get("publishTime") or "")
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return default


def _not_before(raw: str | None) -> float:
    """The `not_before` attribute in Unix seconds (0 when absent); PoisonMessage if malformed."""
    try:
        value = float(raw or 0)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise PoisonMessage(f"attribute not_before={excerpt(str(raw), 40)!r} is not a Unix time")
    return value


def pubsub_message(event: Any) -> tuple[bytes, dict[str, str], str]:
    """(data, attributes, message id) of a messagePublished CloudEvent."""
    message = (event.data or {}).get("message") or {}
    try:
        data = base64.b64decode(message.get("data") or "")
    except (ValueError, binascii.Error):
        data = b""
    return data, dict(message.get("attributes") or {}), str(message.get("messageId") or message.get("message_id") or "")
