"""Entry points: the command line (`python main.py --help`) and the Cloud Functions.

Each function decodes nothing itself: it hands the CloudEvent to `workflow.entrypoints`
with the instance's runtime, built on the first event and reused for the instance's life.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import functions_framework

from workflow import entrypoints
from workflow.entrypoints import GCS_FINALIZED, PUBSUB_PUBLISHED, accepts


@functools.cache
def runtime() -> entrypoints.CloudRuntime:
    from workflow import bootstrap, logs

    logs.configure()
    return bootstrap.cloud()


@functions_framework.cloud_event
@accepts(GCS_FINALIZED)
def on_dag_uploaded(event: Any) -> None:
    """A DAG file uploaded under the bucket's prefix starts a run."""
    entrypoints.dag_uploaded(event, runtime())


@functions_framework.cloud_event
@accepts(PUBSUB_PUBLISHED)
def on_start_message(event: Any) -> None:
    """A start request published on the start topic starts a run."""
    entrypoints.start_message(event, runtime())


@functions_framework.cloud_event
@accepts(PUBSUB_PUBLISHED)
def on_engine_message(event: Any) -> None:
    """One of the engine's own messages (step ready, job check, step finished, ...)."""
    entrypoints.engine_message(event, runtime())


if __name__ == "__main__":
    from workflow.cli import main

    sys.exit(main())
