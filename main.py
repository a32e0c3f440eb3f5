"""Entry points: the command line (`python main.py --help`) and the Cloud Functions.

Each function decodes nothing itself: it hands the CloudEvent to `workflow.entrypoints`
with the instance's runtime, built on the first event and reused for the instance's life.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import functions_framework
from werkzeug.exceptions import ServiceUnavailable

from workflow import entrypoints
from workflow.entrypoints import GCS_FINALIZED, PUBSUB_PUBLISHED, CloudRuntime, accepts
from workflow.errors import TransientError


@functools.cache
def runtime() -> CloudRuntime:
    from workflow import bootstrap, logs

    logs.configure(logging.INFO)
    return bootstrap.cloud()


def _serve(handler: Callable[[Any, CloudRuntime], None], event: Any) -> None:
    rt = runtime()
    try:
        handler(event, rt)
    except TransientError as exc:
        # Expected (an early delayed message, a claim held elsewhere, contention): ask for
        # redelivery with a 503 and a warning, not an error with a traceback.
        logging.getLogger("workflow.entrypoints").warning("retry later: %s", exc)
        raise ServiceUnavailable(str(exc)) from exc
    finally:
        entrypoints.report_ops(rt)


@functions_framework.cloud_event
@accepts(GCS_FINALIZED)
def on_dag_uploaded(event: Any) -> None:
    """A DAG file uploaded under the bucket's prefix starts a run."""
    _serve(entrypoints.dag_uploaded, event)


@functions_framework.cloud_event
@accepts(PUBSUB_PUBLISHED)
def on_start_message(event: Any) -> None:
    """A start request published on the start topic starts a run."""
    _serve(entrypoints.start_message, event)


@functions_framework.cloud_event
@accepts(PUBSUB_PUBLISHED)
def on_engine_message(event: Any) -> None:
    """One of the engine's own messages (step ready, job check, step finished, ...)."""
    _serve(entrypoints.engine_message, event)


if __name__ == "__main__":
    from workflow.cli import main

    sys.exit(main())
