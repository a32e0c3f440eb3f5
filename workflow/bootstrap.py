"""Builds the ports for a runtime and binds them to the handlers. The only place that wires."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .adapters.embedded.inprocess_bus import InProcessBus
from .adapters.embedded.sqlite_store import SqliteStateStore
from .adapters.http.auth import IdTokenSource, SealedTokens, StaticToken, TokenSource
from .adapters.http.task_runner import HttpTaskRunner
from .engine import Ports, handle
from .errors import InputError
from .model.messages import Message
from .ports import TaskRunner
from .settings import Settings

if TYPE_CHECKING:  # the cloud's modules load only for the cloud runtime, not for the CLI
    from .entrypoints import CloudRuntime


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
) -> EmbeddedRuntime:
    """Start an embedded runtime; `runner` defaults to the HTTP Task Runner client."""
    store = SqliteStateStore(db_path)
    bus = InProcessBus(workers=workers)
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


def cloud(env: Mapping[str, str] | None = None) -> CloudRuntime:
    """Ports for Cloud Functions: Firestore, Pub/Sub, GCS, the HTTP Task Runner.

    Configured by the environment (see README: Cloud runtime); clients are created here,
    once per function instance, never at import time.
    """
    from google.cloud import firestore

    from .adapters.dag_sources import DagSources
    from .adapters.gcp.firestore_store import FirestoreStateStore
    from .adapters.gcp.pubsub_bus import PubSubBus
    from .entrypoints import CloudRuntime

    env = os.environ if env is None else env
    project = env.get("GOOGLE_CLOUD_PROJECT", "")
    if not project:
        raise InputError("GOOGLE_CLOUD_PROJECT is not set")
    database = env.get("WORKFLOW_FIRESTORE_DATABASE") or "(default)"
    own = StaticToken("none") if env.get("WORKFLOW_TR_AUTH_MODE") == "none" else IdTokenSource()
    tokens = SealedTokens(env.get("WORKFLOW_TOKEN_KEY") or None, fallback=own)
    ports = Ports(
        store=FirestoreStateStore(firestore.Client(project=project, database=database)),
        bus=PubSubBus(project, env.get("WORKFLOW_ENGINE_TOPIC") or "workflow-engine"),
        runner=HttpTaskRunner(tokens),
        settings=Settings.from_env(env),
    )
    return CloudRuntime(
        ports=ports,
        dags=DagSources(),
        tokens=tokens,
        dag_prefix=env.get("WORKFLOW_DAG_PREFIX", "dags/"),
        default_tr_url=env.get("WORKFLOW_TR_URL", ""),
        report_ops=env.get("WORKFLOW_REPORT_OPS") == "1",
    )
