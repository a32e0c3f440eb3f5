"""Entry points: the command line (`python main.py --help`) and the Cloud Functions, each of
which hands its CloudEvent or request to `workflow.entrypoints` with the instance's runtime;
and `run_pages`, the run pages (`main.py ui --cloud`) as an HTTP function."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import functions_framework
from werkzeug.exceptions import ServiceUnavailable
from werkzeug.wrappers import Response

from workflow import entrypoints
from workflow.bootstrap.cloud import CloudRuntime
from workflow.entrypoints import GCS_FINALIZED, PUBSUB_PUBLISHED, accepts
from workflow.errors import TransientError

log = logging.getLogger("workflow.entrypoints")


@functools.cache
def runtime() -> CloudRuntime:
    """Built on the instance's first call and reused for its life."""
    from workflow import logs
    from workflow.bootstrap.cloud import cloud

    logs.configure(logging.INFO)
    return cloud()


def _serve(handler: Callable[[Any, CloudRuntime], None], event: Any) -> None:
    rt = runtime()
    try:
        handler(event, rt)
    except TransientError as exc:
        # Expected (an early delayed message, a claim held elsewhere, contention): ask for
        # redelivery with a 503 and a warning, not an error with a traceback.
        ids = entrypoints.event_ids(event)
        log.warning("retry later (run %s): %s", ids.get("run_id", "?"), exc, extra=ids)
        raise ServiceUnavailable(str(exc)) from exc


@functions_framework.cloud_event
@accepts(GCS_FINALIZED)
def on_dag_uploaded(event: Any) -> None:
    """A DAG file uploaded under the bucket's prefix starts a run."""
    _serve(entrypoints.dag_uploaded, event)


@functions_framework.cloud_event
@accepts(PUBSUB_PUBLISHED)
def on_start_message(event: Any) -> None:
    """A start request published on the start topic starts a run (a cancel, rerun or resume
    request is refused there, logged and acknowledged: it goes to the control topic)."""
    _serve(entrypoints.start_message, event)


@functions_framework.cloud_event
@accepts(PUBSUB_PUBLISHED)
def on_control_message(event: Any) -> None:
    """A cancel, rerun or resume request published on the control topic asks that of a run."""
    _serve(entrypoints.control_message, event)


@functions_framework.cloud_event
@accepts(PUBSUB_PUBLISHED)
def on_engine_message(event: Any) -> None:
    """One of the engine's own messages (step ready, job check, step finished, ...)."""
    _serve(entrypoints.engine_message, event)


@functions_framework.http
def on_start_request(request: Any) -> tuple[str, int, dict[str, str]]:
    """POST a start request (JSON, as on the start topic): 202 {"run_id"}, or 400 with the report
    (a cancel, rerun or resume request is answered 400: it goes to on_control_request)."""
    return _json(*entrypoints.start_over_http(request, runtime()))


@functions_framework.http
def on_control_request(request: Any) -> tuple[str, int, dict[str, str]]:
    """POST a cancel, rerun or resume request (JSON, as on the control topic), as the run's
    starter or one of WORKFLOW_RUN_ADMINS: 202 handed over, 400 invalid, 403 not the caller's
    run, 409 nothing to do."""
    return _json(*entrypoints.control_over_http(request, runtime()))


def _json(status: int, body: dict[str, Any]) -> tuple[str, int, dict[str, str]]:
    headers = {"Content-Type": "application/json"} | ({"Allow": "POST"} if status == 405 else {})
    return json.dumps(body), status, headers


@functools.cache
def pages() -> Any:
    """The run pages' Flask app, built on the instance's first request and reused for its life."""
    from workflow import logs
    from workflow.bootstrap.cloud_pages import cloud_ui
    from workflow.ui import create_app
    from workflow.ui.app import SECRET_ENV

    logs.configure(logging.INFO)
    if not os.environ.get(SECRET_ENV):
        log.warning("%s is not set: the pages' action tokens hold on this instance only", SECRET_ENV)
    rt = cloud_ui()
    return create_app(rt.runs, rt.steps, rt.pages, rt.act, where=rt.where)


@functions_framework.http
def run_pages(request: Any) -> Response:
    """The run pages: the request goes whole (method, path, query, form, headers) to their
    Flask app through WSGI, so every page, the JSON API, the actions and the static files
    answer as they do under `main.py ui --cloud`. Reads Firestore; an action publishes a
    request on WORKFLOW_START_TOPIC; WORKFLOW_UI_SECRET keys the pages' action tokens."""
    return Response.from_app(pages(), request.environ)


if __name__ == "__main__":
    from workflow.cli import main

    sys.exit(main())
