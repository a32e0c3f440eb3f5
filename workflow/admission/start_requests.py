"""A start request: checked (every problem found, none raised), then the run started, or
recorded INVALID with its report and its end announced; idempotent per run id."""

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..adapters.http.auth import check_token
from ..bootstrap.cloud import CloudRuntime
from ..dagfile import RunContext, instantiate, parse_dag
from ..engine import announce, handle
from ..errors import AuthError, DagInvalid, InputError
from ..model import codec
from ..model.dag import Dag
from ..model.events import RunEnded
from ..model.messages import StartRun
from ..model.records import RunRecord
from ..model.states import RunStatus
from ..model.text import excerpt, redact
from ..settings import DAG_BUCKETS_ENV, DAG_EXTENSIONS, TR_URL_ENV, EdgeSettings

log = logging.getLogger("workflow.entrypoints")  # the functions' log lines keep one logger name

START_KEYS = frozenset({"action", "dag_path", "dag", "tr_hostname", "tr_url", "tr_auth_jwt", "run_id", "params",
                        "schedule", "scheduled_time", "concurrency"})  # the last three: a tick (schedules.py)
MAX_START_BYTES = 1_048_576
MAX_DAG_PATH = 1_024


@dataclass(frozen=True)
class StartRequest:
    """A start request after its checks: `problems` lists everything wrong with it."""

    run_id: str
    source: str
    tr_url: Any
    jwt: Any
    problems: list[str]
    body: dict[str, Any] = dataclasses.field(default_factory=dict)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # the run's parameter values, unchecked
    schedule: str = ""  # a schedule's tick (admission/schedules.py): its schedule, and its time
    scheduled_at: float | None = None
    started_by: str = ""  # the verified caller of an HTTP start ("" otherwise)
    requested_at: float | None = None  # when it was asked, the same on every delivery (None: now)


@dataclass(frozen=True)
class Started:
    """The outcome of a start request: the run id and, for an INVALID run, its report."""

    run_id: str
    problems: tuple[str, ...] = ()
    skipped: str = ""  # why a schedule's tick started nothing (recorded SKIPPED)


def json_object(data: bytes, what: str = "the start request") -> tuple[dict[str, Any] | None, str]:
    """(the JSON object, "") or (None, why not), `what` naming the request."""
    if len(data) > MAX_START_BYTES:
        return None, f"{what} is {len(data):,}+ bytes long (at most {MAX_START_BYTES:,})"
    try:
        body = json.loads(data)
    except RecursionError:
        return None, f"{what} is nested too deeply to be read"
    except ValueError as exc:
        return None, f"{what} is not JSON ({excerpt(str(exc), 120)})"
    if not isinstance(body, dict):
        return None, f"{what} is a JSON {type(body).__name__}, not an object"
    return body, ""


def checked_start(data: bytes, fallback_id: str, edge: EdgeSettings, aliases: Mapping[str, str]) -> StartRequest:
    """The start request in `data` (its `aliases` renamed), with every problem it has."""
    body, problem = json_object(data)
    if body is None:
        return StartRequest(fallback_id, "inline", "", None, [problem])
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
    problems += edge.tr_url_problems(tr_url, "tr_hostname" if given else TR_URL_ENV)
    problems += _token_problems(body)
    problems += _dag_problems(body, edge)
    params = body.get("params", {})
    if not isinstance(params, dict):
        problems.append(f"params must be an object of parameter names to values, not {type(params).__name__}")
    path = body.get("dag_path")
    source = excerpt(path, 200) if isinstance(path, str) else "inline"
    return StartRequest(run_id, source, tr_url, body.get("tr_auth_jwt"), problems, body,
                        params if isinstance(params, dict) else {})


def _renamed(body: dict[str, Any], aliases: Mapping[str, str]) -> list[str]:
    """Rename the aliased keys in place; a problem for each key given under both names."""
    problems = []
    for alias, key in aliases.items():
        if alias in body:
            if key in body:
                problems.append(f"give {alias!r} or {key!r}, not both")
            body[key] = body.pop(alias)
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
    if not name.lower().endswith(DAG_EXTENSIONS):  # an env file or a key is never read, nor quoted in a report
        return [f"dag_path {excerpt(path, 200)!r} is not a DAG file: its name must end in {', '.join(DAG_EXTENSIONS)}"]
    return []


def start_requested(request: StartRequest, rt: CloudRuntime) -> Started:
    """Start the run a start request asks for, or record it INVALID; a repeated run id
    changes nothing and answers as the first request did."""
    run_id = request.run_id
    existing = rt.ports.store.runs.get_run(run_id)
    if existing is not None:
        log.info("run %s already started", run_id, extra={"run_id": run_id})
        return Started(run_id, existing.problems if existing.status is RunStatus.INVALID else ())
    return _start(rt, request, lambda: _requested_dag(request.body, rt))


def start_upload(run_id: str, path: str, generation: str, given_tr_url: Any, rt: CloudRuntime,
                 params: dict[str, str] | None = None, created: float | None = None) -> None:
    """Start the run the upload of `path` makes (once per generation), or record it INVALID;
    `params`: the parameter values of the object's metadata; `created`: when the object was."""
    if rt.ports.store.runs.get_run(run_id) is not None:
        log.info("upload already started run %s", run_id, extra={"run_id": run_id})
        return
    tr_url = given_tr_url or rt.edge.default_tr_url
    where = "the object's metadata tr_url" if given_tr_url else TR_URL_ENV
    request = StartRequest(run_id, f"{path}#{generation}", tr_url, None, rt.edge.tr_url_problems(tr_url, where),
                           params=params or {}, requested_at=created)
    _start(rt, request, lambda: rt.dags.read(path))


def _requested_dag(body: dict[str, Any], rt: CloudRuntime) -> Dag:
    if "dag_path" in body:
        return rt.dags.read(body["dag_path"])
    try:
        text = json.dumps(body["dag"])
    except RecursionError:
        raise InputError("the start message's 'dag' is nested too deeply") from None
    return parse_dag(text.encode(), "the start message's 'dag'")


def _start(rt: CloudRuntime, request: StartRequest, load: Callable[[], Dag]) -> Started:
    """Start the run, or record it INVALID with every problem (and acknowledge)."""
    problems = list(request.problems)
    try:
        if not problems:
            template = load()
            asked = rt.ports.clock() if request.requested_at is None else request.requested_at
            context = RunContext(request.run_id, asked, request.scheduled_at, request.schedule, request.started_by)
            dag, inputs = instantiate(template, request.params, context, request.source)
            sealed = rt.tokens.seal(request.jwt, run_id=request.run_id, origin=request.tr_url) if request.jwt else ""
            handle(StartRun(request.run_id, dag, request.tr_url.rstrip("/"), source=request.source,
                            tr_auth=sealed, inputs=inputs), rt.ports)
            return Started(request.run_id)
    except DagInvalid as exc:
        problems = [str(p) for p in exc.problems]
    except (InputError, RecursionError) as exc:
        problems = [str(exc) if isinstance(exc, InputError) else "the DAG is nested too deeply"]
    return _record_invalid(rt, request, problems)


def _record_invalid(rt: CloudRuntime, request: StartRequest, problems: list[str]) -> Started:
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
