"""The cloud runtime as the command line operates it: Firestore and the control topic. The
run pages' function (`main.run_pages`) publishes its actions through it too."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, TransientError
from ..ports import StateStore
from .cloud import DATABASE_ENV, PROJECT_ENV, database_of, firestore_store, project_of

START_TOPIC_ENV = "WORKFLOW_START_TOPIC"
DEFAULT_START_TOPIC = "workflow-start"
CONTROL_TOPIC_ENV = "WORKFLOW_CONTROL_TOPIC"  # cancel, rerun and resume requests (the control route)
DEFAULT_CONTROL_TOPIC = "workflow-run-control"


@dataclass(frozen=True)
class CloudControl:
    """What the command line needs to operate the cloud runtime's runs: their store, and
    `request`, which publishes a request (JSON) on its topic (the control topic, or the start
    topic for start requests) and returns once
    Pub/Sub accepted it. `refusals` are the exceptions that mean the cloud refused or could
    not be reached (credentials, permissions, a missing database); `where` names the store."""

    store: StateStore
    request: Callable[[Mapping[str, Any]], None]
    refusals: tuple[type[Exception], ...]
    where: str


def control(
    env: Mapping[str, str] | None = None,
    *,
    project: str = "",
    database: str = "",
    store: StateStore | None = None,
    request: Callable[[Mapping[str, Any]], None] | None = None,
    starts: bool = False,
) -> CloudControl:
    """The cloud runtime as the command line sees it: Firestore and the control topic.

    `project` and `database` override GOOGLE_CLOUD_PROJECT and WORKFLOW_FIRESTORE_DATABASE;
    the control topic is WORKFLOW_CONTROL_TOPIC (default `workflow-run-control`), or with
    `starts` (start requests: a backfill's ticks) the start topic WORKFLOW_START_TOPIC
    (default `workflow-start`). Credentials are
    Application Default Credentials, or none with FIRESTORE_EMULATOR_HOST and
    PUBSUB_EMULATOR_HOST set. InputError when the project is unknown or no credentials exist.
    """
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_errors

    env = dict(os.environ if env is None else env)
    env.update({name: value for name, value in ((PROJECT_ENV, project), (DATABASE_ENV, database)) if value})
    topic = (env.get(START_TOPIC_ENV) or DEFAULT_START_TOPIC) if starts else (
        env.get(CONTROL_TOPIC_ENV) or DEFAULT_CONTROL_TOPIC)
    emulator = os.environ.get("FIRESTORE_EMULATOR_HOST")
    where = (f"Firestore of project {project_of(env)}, database {database_of(env)}"
             + (f" (emulator at {emulator})" if emulator else ""))
    try:
        store = store or firestore_store(env)
        request = request or _requests(env, topic)
    except auth_errors.DefaultCredentialsError:
        raise InputError("no Google credentials: run 'gcloud auth application-default login', or set "
                         "GOOGLE_APPLICATION_CREDENTIALS (or FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST "
                         "for the emulators)") from None
    refusals = (gexc.GoogleAPICallError, gexc.RetryError, auth_errors.GoogleAuthError, TransientError)
    return CloudControl(store, request, refusals, where)


def _requests(env: Mapping[str, str], topic: str) -> Callable[[Mapping[str, Any]], None]:
    from ..adapters.gcp.pubsub_bus import PubSubBus

    bus = PubSubBus(project_of(env), topic)

    def publish(body: Mapping[str, Any]) -> None:
        attributes = {"action": str(body.get("action", "start")), "run_id": str(body.get("run_id", ""))}
        bus.publish_raw(json.dumps(body).encode(), attributes)

    return publish
