"""Builds the ports for a runtime and binds them to the handlers. The only place that wires."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .adapters.embedded.inprocess_bus import InProcessBus
from .adapters.embedded.sqlite_store import SqliteStateStore
from .adapters.http.auth import IdTokenSource, SealedTokens, StaticToken, TokenSource
from .adapters.http.task_runner import HttpTaskRunner
from .engine import Ports, handle
from .errors import InputError
from .model.messages import Message
from .ports import Bus, StateStore, TaskRunner
from .settings import EdgeSettings, Settings

if TYPE_CHECKING:  # the cloud's modules load only for the cloud runtime, not for the CLI
    from .adapters.dag_sources import DagSources


def token_source(jwt: str | None) -> TokenSource:
    """The `--tr-auth-jwt` value when given (sent as is), else ID tokens from google-auth."""
    return StaticToken(jwt) if jwt is not None else IdTokenSource()


@dataclass
class EmbeddedRuntime:
    """SQLite store + in-process bus + the handlers, in this process."""

    ports: Ports
    bus: InProcessBus
    store: SqliteStateStore

    def close(self) -> None:
        self.bus.close()
        self.store.close()


def embedded(
    settings: Settings,
    runner: TaskRunner | None = None,
    *,
    jwt: str | None = None,
    db_path: str = ":memory:",
    workers: int = 8,
    store: SqliteStateStore | None = None,
    bus: InProcessBus | None = None,
) -> EmbeddedRuntime:
    """Start an embedded runtime; builds only what is not given.

    `runner` defaults to the HTTP Task Runner client, `store` to SQLite at `db_path`,
    `bus` to an in-process bus of `workers` threads (started here).
    """
    store = store or SqliteStateStore(db_path)
    bus = bus or InProcessBus(workers=workers)
    ports = Ports(
        store=store,
        bus=bus,
        runner=runner or HttpTaskRunner(token_source(jwt), waiting=bus.waiting),
        settings=settings,
    )

    def deliver(msg: Message) -> None:
        handle(msg, ports)

    bus.start(deliver)
    return EmbeddedRuntime(ports, bus, store)


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
    clock: Callable[[], float] = time.time,
) -> CloudRuntime:
    """Ports for Cloud Functions: Firestore, Pub/Sub, GCS, the HTTP Task Runner.

    Builds only what is not given. Configured by the environment (see README: Cloud
    runtime); clients are created here, once per function instance, never at import time.
    An invalid setting raises InputError naming the variable.
    """
    from .adapters.dag_sources import DagSources

    env = os.environ if env is None else env
    if tokens is None:
        own = StaticToken("none") if env.get("WORKFLOW_TR_AUTH_MODE") == "none" else IdTokenSource()
        tokens = SealedTokens(env.get("WORKFLOW_TOKEN_KEY") or None, fallback=own)
    ports = Ports(
        store=store or _firestore_store(env),
        bus=bus or _pubsub_bus(env),
        runner=runner or HttpTaskRunner(tokens),
        settings=Settings.from_env(env),
        clock=clock,
    )
    return CloudRuntime(
        ports=ports,
        dags=dags or DagSources(),
        tokens=tokens,
        edge=EdgeSettings.from_env(env),
        report_ops=env.get("WORKFLOW_REPORT_OPS") == "1",
    )


def _project(env: Mapping[str, str]) -> str:
    project = env.get("GOOGLE_CLOUD_PROJECT", "")
    if not project:
        raise InputError("GOOGLE_CLOUD_PROJECT is not set")
    return project


def _firestore_store(env: Mapping[str, str]) -> StateStore:
    from google.cloud import firestore

    from .adapters.gcp.firestore_store import FirestoreStateStore

    database = env.get("WORKFLOW_FIRESTORE_DATABASE") or "(default)"
    return FirestoreStateStore(firestore.Client(project=_project(env), database=database))


def _pubsub_bus(env: Mapping[str, str]) -> Bus:
    from .adapters.gcp.pubsub_bus import PubSubBus

    return PubSubBus(_project(env), env.get("WORKFLOW_ENGINE_TOPIC") or "workflow-engine")
