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

from workflow import entrypoints
from workflow.entrypoints import GCS_FINALIZED, PUBSUB_PUBLISHED, CloudRuntime, accepts


@functools.cache
def runtime() -> CloudRuntime:
    from workflow import bootstrap, logs

    logs.configure(logging.INFO)
    return bootstrap.cloud()


def _serve(handler: Callable[[Any, CloudRuntime], None], event: Any) -> None:
    rt = runtime()
    try:
        handler(event, rt)
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
