"""The cloud runtime: Firestore, Pub/Sub, GCS and the HTTP Task Runner behind the Cloud Functions."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..adapters.http.auth import IdTokenSource, SealedTokens, StaticToken
from ..adapters.http.task_runner import HttpTaskRunner
from ..engine import Ports
from ..errors import InputError, TransientError
from ..ports import Bus, Events, StateStore, TaskRunner
from ..settings import EdgeSettings, Settings

if TYPE_CHECKING:
    from ..adapters.dag_sources import DagSources

PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
DATABASE_ENV = "WORKFLOW_FIRESTORE_DATABASE"
START_TOPIC_ENV = "WORKFLOW_START_TOPIC"
DEFAULT_START_TOPIC = "workflow-start"


@dataclass(frozen=True)
class CloudRuntime:
    """What the Cloud Functions' entry points need, built once per function instance."""

    ports: Ports
    dags: DagSources
    tokens: SealedTokens
    edge: EdgeSettings
    report_ops: bool = False  # log this instance's store and bus counters after each event


def cloud(
    env: Mapping[str, str] | None = None,
    *,
    store: StateStore | None = None,
    bus: Bus | None = None,
    runner: TaskRunner | None = None,
    dags: DagSources | None = None,
    tokens: SealedTokens | None = None,
    events: Events | None = None,
    clock: Callable[[], float] = time.time,
) -> CloudRuntime:
    """Ports for Cloud Functions: Firestore, Pub/Sub, GCS, the HTTP Task Runner.

    Builds only what is not given. Configured by the environment (see README: Cloud
    runtime); clients are created here, once per function instance, never at import time.
    An invalid setting raises InputError naming the variable.
    """
    from ..adapters.dag_sources import DagSources

    env = os.environ if env is None else env
    if tokens is None:
        none = env.get("WORKFLOW_TR_AUTH_MODE") == "none"
        own = StaticToken("none", origin="WORKFLOW_TR_AUTH_MODE=none") if none else IdTokenSource()
        tokens = SealedTokens(env.get("WORKFLOW_TOKEN_KEY") or None, fallback=own)
    ports = Ports(
        store=store or _firestore_store(env),
        bus=bus or _pubsub_bus(env),
        runner=runner or HttpTaskRunner(tokens),
        settings=Settings.from_env(env),
        clock=clock,
        events=events or _pubsub_events(env),
    )
    return CloudRuntime(
        ports=ports,
        dags=dags or DagSources(),
        tokens=tokens,
        edge=EdgeSettings.from_env(env),
        report_ops=env.get("WORKFLOW_REPORT_OPS") == "1",
    )


@dataclass(frozen=True)
class CloudControl:
    """What the command line needs to operate the cloud runtime's runs: their store, and
    `request`, which publishes a request (JSON) on the start topic and returns once
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
) -> CloudControl:
    """The cloud runtime as the command line sees it: Firestore and the start topic.

    `project` and `database` override GOOGLE_CLOUD_PROJECT and WORKFLOW_FIRESTORE_DATABASE;
    the start topic is WORKFLOW_START_TOPIC (default `workflow-start`). Credentials are
    Application Default Credentials, or none with FIRESTORE_EMULATOR_HOST and
    PUBSUB_EMULATOR_HOST set. InputError when the project is unknown or no credentials exist.
    """
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_errors

    env = dict(os.environ if env is None else env)
    env.update({name: value for name, value in ((PROJECT_ENV, project), (DATABASE_ENV, database)) if value})
    topic = env.get(START_TOPIC_ENV) or DEFAULT_START_TOPIC
    emulator = os.environ.get("FIRESTORE_EMULATOR_HOST")
    where = (f"Firestore of project {_project(env)}, database {_database(env)}"
             + (f" (emulator at {emulator})" if emulator else ""))
    try:
        store = store or _firestore_store(env)
        request = request or _start_requests(env, topic)
    except auth_errors.DefaultCredentialsError:
        raise InputError("no Google credentials: run 'gcloud auth application-default login', or set "
                         "GOOGLE_APPLICATION_CREDENTIALS (or FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST "
                         "for the emulators)") from None
    refusals = (gexc.GoogleAPICallError, gexc.RetryError, auth_errors.GoogleAuthError, TransientError)
    return CloudControl(store, request, refusals, where)


def _start_requests(env: Mapping[str, str], topic: str) -> Callable[[Mapping[str, Any]], None]:
    from ..adapters.gcp.pubsub_bus import PubSubBus

    bus = PubSubBus(_project(env), topic)

    def publish(body: Mapping[str, Any]) -> None:
        attributes = {"action": str(body.get("action", "start")), "run_id": str(body.get("run_id", ""))}
        bus.publish_raw(json.dumps(body).encode(), attributes)

    return publish


def _project(env: Mapping[str, str]) -> str:
    project = env.get(PROJECT_ENV, "")
    if not project:
        raise InputError(f"{PROJECT_ENV} is not set")
    return project


def _database(env: Mapping[str, str]) -> str:
    return env.get(DATABASE_ENV) or "(default)"


def _firestore_store(env: Mapping[str, str]) -> StateStore:
    from google.cloud import firestore

    from ..adapters.gcp.firestore_store import FirestoreStateStore

    return FirestoreStateStore(firestore.Client(project=_project(env), database=_database(env)))


def _pubsub_bus(env: Mapping[str, str]) -> Bus:
    from ..adapters.gcp.pubsub_bus import PubSubBus

    return PubSubBus(_project(env), env.get("WORKFLOW_ENGINE_TOPIC") or "workflow-engine")


def _pubsub_events(env: Mapping[str, str]) -> Events:
    from ..adapters.gcp.pubsub_events import PubSubEvents

    return PubSubEvents(_project(env), env.get("WORKFLOW_EVENTS_TOPIC") or "workflow-events")
