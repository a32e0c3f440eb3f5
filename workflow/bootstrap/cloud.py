"""The cloud runtime: Firestore, Pub/Sub, GCS and the HTTP Task Runner behind the Cloud Functions."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..adapters.http.auth import IdTokenSource, SealedTokens, StaticToken
from ..adapters.http.task_runner import HttpTaskRunner
from ..engine import Ports
from ..errors import InputError
from ..ports import Bus, Events, StateStore, TaskRunner
from ..settings import EdgeSettings, Settings

if TYPE_CHECKING:
    from ..adapters.dag_sources import DagSources

PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
DATABASE_ENV = "WORKFLOW_FIRESTORE_DATABASE"


@dataclass(frozen=True)
class CloudRuntime:
    """What the Cloud Functions' entry points need, built once per function instance."""

    ports: Ports
    dags: DagSources
    tokens: SealedTokens
    edge: EdgeSettings


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

    Builds only what is not given. Configured by the environment (see docs/cloud-runtime.md);
    clients are created here, once per function instance, never at import time.
    An invalid setting raises InputError naming the variable.
    """
    from ..adapters.dag_sources import DagSources

    env = os.environ if env is None else env
    if tokens is None:
        none = env.get("WORKFLOW_TR_AUTH_MODE") == "none"
        own = StaticToken("none", origin="WORKFLOW_TR_AUTH_MODE=none") if none else IdTokenSource()
        tokens = SealedTokens(env.get("WORKFLOW_TOKEN_KEY") or None, fallback=own)
    edge = EdgeSettings.from_env(env)  # checked where requests enter, and again by the client on every call
    ports = Ports(
        store=store or firestore_store(env),
        bus=bus or _pubsub_bus(env),
        runner=runner or HttpTaskRunner(tokens, edge=edge),
        settings=Settings.from_env(env),
        clock=clock,
        events=events or _pubsub_events(env),
    )
    return CloudRuntime(
        ports=ports,
        dags=dags or DagSources(),
        tokens=tokens,
        edge=edge,
    )


def project_of(env: Mapping[str, str]) -> str:
    project = env.get(PROJECT_ENV, "")
    if not project:
        raise InputError(f"{PROJECT_ENV} is not set")
    return project


def database_of(env: Mapping[str, str]) -> str:
    return env.get(DATABASE_ENV) or "(default)"


def firestore_store(env: Mapping[str, str]) -> StateStore:
    from google.cloud import firestore

    from ..adapters.gcp.firestore_store import FirestoreStateStore

    client = firestore.Client(project=project_of(env), database=database_of(env))
    return FirestoreStateStore(client)


def _pubsub_bus(env: Mapping[str, str]) -> Bus:
    from ..adapters.gcp.pubsub_bus import PubSubBus

    return PubSubBus(project_of(env), env.get("WORKFLOW_ENGINE_TOPIC") or "workflow-engine")


def _pubsub_events(env: Mapping[str, str]) -> Events:
    from ..adapters.gcp.pubsub_events import PubSubEvents

    return PubSubEvents(project_of(env), env.get("WORKFLOW_EVENTS_TOPIC") or "workflow-events")
