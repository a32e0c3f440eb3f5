"""The mock's HTTP face: Werkzeug routes to its protocol endpoints and test hooks.

Protocol (the real Task Runner's):

- ``POST /job`` with a JSON object ``{"job_name", "imageUri", "args", "scaleTier",
  "masterType", "labels"}`` (only ``job_name`` and ``imageUri`` required; ``engine`` and
  ``url`` may stand in for ``imageUri``) answers 200
  ``{"job": {"jobId", "state": "QUEUED", "message": ""}}``; a bad body answers 400
  ``{"error": ...}`` naming the offending field.
- ``GET /jobstatus?job_id=ID`` answers 200 ``{"job": {"jobId", "state", "message"}}``;
  404 for an unknown id, 400 without ``job_id``.

A protocol request is recorded on arrival, then gets its injected fault if one is queued,
then 401 without the right token, then its answer. Test hooks (never behind the token):
``GET /_mock/requests``, ``GET /_mock/submissions``, ``GET /_mock/in_flight``,
``POST /_mock/faults`` and ``POST /_mock/reset``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from .faults import FAULT_PATHS, error_response, fault_request, json_response
from .jobs import BadRequest, parse_json_object, parse_submission
from .state import RunnerState

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 1 << 20
AUTH_ERROR: Final = "missing or wrong bearer token"

View = Callable[[RunnerState, Request], Response]


def submit(state: RunnerState, request: Request) -> Response:
    """``POST /job``."""
    try:
        submission = parse_submission(parse_json_object(request.get_data()))
    except BadRequest as exc:
        return error_response(400, str(exc))
    return json_response(200, {"job": state.submit(submission)})


def job_status(state: RunnerState, request: Request) -> Response:
    """``GET /jobstatus?job_id=ID``."""
    job_id = request.args.get("job_id", "")
    if not job_id:
        return error_response(400, "query parameter 'job_id' is required")
    job = state.status(job_id)
    if job is None:
        return error_response(404, f"unknown job id: {job_id}")
    return json_response(200, {"job": job})


def inject_fault(state: RunnerState, request: Request) -> Response:
    """``POST /_mock/faults``."""
    try:
        path, status, count, body, kind = fault_request(request.get_data())
        state.inject_fault(path, status, count, body, **kind)
    except (BadRequest, ValueError, TypeError) as exc:
        return error_response(400, str(exc))
    return json_response(200, {"ok": True})


def reset(state: RunnerState, _request: Request) -> Response:
    """``POST /_mock/reset``."""
    state.reset()
    return json_response(200, {"ok": True})


VIEWS: Final[dict[str, View]] = {
    "submit": submit,
    "status": job_status,
    "requests": lambda state, _: json_response(200, state.records()),
    "submissions": lambda state, _: json_response(200, state.submissions()),
    "in_flight": lambda state, _: json_response(200, state.in_flight()),
    "faults": inject_fault,
    "reset": reset,
}

URLS: Final = Map(
    [
        Rule("/job", endpoint="submit", methods=["POST"]),
        Rule("/jobstatus", endpoint="status", methods=["GET"]),
        Rule("/_mock/requests", endpoint="requests", methods=["GET"]),
        Rule("/_mock/submissions", endpoint="submissions", methods=["GET"]),
        Rule("/_mock/in_flight", endpoint="in_flight", methods=["GET"]),
        Rule("/_mock/faults", endpoint="faults", methods=["POST"]),
        Rule("/_mock/reset", endpoint="reset", methods=["POST"]),
    ],
    merge_slashes=False,
)


def route(request: Request) -> View:
    """The view for `request`; unknown paths answer 404 and other methods 405, in JSON."""
    try:
        endpoint, _ = URLS.bind_to_environ(request.environ).match()
    except NotFound:
        return lambda _state, request: error_response(404, f"no such endpoint: {request.path}")
    except MethodNotAllowed as refused:
        allowed = ", ".join(method for method in refused.valid_methods or () if method != "HEAD")
        return lambda _state, _request: error_response(405, f"method not allowed; use {allowed}", Allow=allowed)
    return VIEWS[endpoint]


def answer_protocol(state: RunnerState, request: Request, view: View) -> Response:
    """Record the request, apply a queued fault, check the token, answer; late if the fault says so."""
    record = state.record(request.method, request.path, request.args.to_dict(), request.get_data(),
                          request.headers.get("Authorization"))
    fault = state.take_fault(request.path)
    if fault is not None and not fault.accept:
        response = fault.response(dict(request.headers.items()))
    elif not state.authorized(request.headers.get("Authorization")):
        response = error_response(401, AUTH_ERROR, **{"WWW-Authenticate": "Bearer"})
    else:
        response = view(state, request)
    if fault is not None:
        state.stopping.wait(fault.delay)
    state.answered(record, response.status_code)
    return response


class MockRequest(Request):
    """A request whose body may not exceed :data:`MAX_BODY_BYTES` (413 otherwise)."""

    max_content_length = MAX_BODY_BYTES


def wsgi_app(state: RunnerState) -> WSGIApplication:
    """The WSGI application answering for `state`; logs one line per request."""

    @MockRequest.application
    def app(request: Request) -> Response:
        request.get_data()  # an oversized body is refused before anything else
        view = route(request)
        response = answer_protocol(state, request, view) if request.path in FAULT_PATHS else view(state, request)
        log.info("%s %s %d", request.method, request.path, response.status_code)
        return response

    return app
