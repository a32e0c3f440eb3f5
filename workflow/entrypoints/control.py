"""The control route, apart from starting runs: cancel, rerun and resume requests about a
run, published on the control topic (`on_control_message`; the topic's IAM is what limits
its publishers) or POSTed to the HTTP control function (`on_control_request`, whose verified
caller is recorded and must be the run's starter or one of WORKFLOW_RUN_ADMINS)."""

import logging
from typing import Any

from ..admission.run_requests import RunRequest, run_request
from ..admission.start_requests import MAX_START_BYTES, json_object
from ..bootstrap.cloud import CloudRuntime
from ..errors import TransientError
from ..model.text import excerpt
from .callers import verified_caller
from .events import pubsub_message

log = logging.getLogger("workflow.entrypoints")

WHAT = "the control request"


def control_message(event: Any, rt: CloudRuntime) -> None:
    """Hand a request on the control topic to the engine, or log why not (acknowledged
    either way; nothing is ever recorded as a run)."""
    data, _, message_id = pubsub_message(event)
    body, problem = json_object(data, WHAT)
    if body is None:
        log.warning("INVALID message %s on the control topic: %s", message_id, problem)
        return
    run_request(body, rt)


def control_over_http(request: Any, rt: CloudRuntime) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for a werkzeug request: 202 handed over, 400 invalid, 403 not
    the caller's run, 409 nothing to do, 405, 413, 415, 503."""
    if request.method != "POST":
        return 405, {"error": "use POST with a JSON control request"}
    if request.mimetype != "application/json":
        return 415, {"error": f"Content-Type must be application/json, not {excerpt(request.mimetype, 100)!r}"}
    data = request.stream.read(MAX_START_BYTES + 1)
    if len(data) > MAX_START_BYTES:
        return 413, {"error": f"a control request is at most {MAX_START_BYTES:,} bytes"}
    body, problem = json_object(data, WHAT)
    if body is None:
        return 400, {"problems": [problem]}
    try:
        return answer(run_request(body, rt, verified_caller(request.headers)))
    except TransientError as exc:
        given = body.get("run_id")
        run_id = excerpt(given, 130) if isinstance(given, str) else ""
        log.warning("run %s: retry later: %s", run_id, exc, extra={"run_id": run_id})
        return 503, {"error": f"try again later: {exc}"}


def answer(request: RunRequest) -> tuple[int, dict[str, Any]]:
    """The HTTP answer to a run request: 202 handed over, 400 invalid, 403 forbidden, 409 nothing to do."""
    if request.problems:
        return 400, {"run_id": request.run_id, "problems": list(request.problems)}
    if request.forbidden:
        return 403, {"run_id": request.run_id, "error": request.forbidden}
    if request.ignored:
        return 409, {"run_id": request.run_id, "error": request.ignored}
    return 202, {"run_id": request.run_id, "action": request.action}
