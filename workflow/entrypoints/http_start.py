"""The HTTP start function: a POSTed start request (its verified caller recorded as the run's
starter), or the scheduler's sweep request, answered in JSON. Cancel, rerun and resume
requests are refused here: they go by the control route (`control.py`)."""

import dataclasses
import logging
import uuid
from typing import Any

from ..admission.run_requests import start_route_refusal, sweep_requested
from ..admission.schedules import start_tick, tick_request
from ..admission.start_requests import MAX_START_BYTES, checked_start, json_object
from ..bootstrap.cloud import CloudRuntime
from ..errors import TransientError
from ..model.text import excerpt
from ..model.ticks import SCHEDULE_TIME_HEADER
from .callers import verified_caller

log = logging.getLogger("workflow.entrypoints")

HTTP_ALIASES = {"workflow-path": "dag_path", "tr-url": "tr_hostname"}  # the Go tool's service


def start_over_http(request: Any, rt: CloudRuntime) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for a werkzeug request: 202 started, 200 a schedule's tick
    skipped, 400 INVALID, 405, 413, 415, 503."""
    if request.method != "POST":
        return 405, {"error": "use POST with a JSON start request"}
    if request.mimetype != "application/json":
        return 415, {"error": f"Content-Type must be application/json, not {excerpt(request.mimetype, 100)!r}"}
    data = request.stream.read(MAX_START_BYTES + 1)  # one byte more than allowed: enough to refuse
    if len(data) > MAX_START_BYTES:  # refused before it is read as a request: no run is recorded
        return 413, {"error": f"a start request is at most {MAX_START_BYTES:,} bytes"}
    body, _ = json_object(data)
    if body is not None and body.get("action") == "sweep":  # the scheduler's route to the sweep
        problems = sweep_requested(body, rt)
        return (400, {"problems": problems}) if problems else (202, {"action": "sweep"})
    refusal = start_route_refusal(body) if body is not None else ""
    if refusal:  # nothing recorded
        return 400, {"problems": [refusal]}
    checked = checked_start(data, f"start-http-{uuid.uuid4().hex}", rt.edge, HTTP_ALIASES)
    checked = dataclasses.replace(checked, started_by=verified_caller(request.headers))
    checked = tick_request(checked, request.headers.get(SCHEDULE_TIME_HEADER), rt.ports.clock())
    try:
        started = start_tick(checked, rt)
    except TransientError as exc:
        log.warning("run %s: retry later: %s", checked.run_id, exc, extra={"run_id": checked.run_id})
        return 503, {"run_id": checked.run_id, "error": f"try again later: {exc}"}
    if started.problems:
        return 400, {"run_id": started.run_id, "problems": list(started.problems)}
    if started.skipped:
        return 200, {"run_id": started.run_id, "skipped": started.skipped}
    return 202, {"run_id": started.run_id}

