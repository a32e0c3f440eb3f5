"""The embedded runtime: a SQLite store and an in-process bus, in this process (the CLI)."""

from __future__ import annotations

from dataclasses import dataclass

from ..adapters.embedded.events import RecordedEvents
from ..adapters.embedded.inprocess_bus import InProcessBus
from ..adapters.embedded.sqlite_store import SqliteStateStore
from ..adapters.embedded.waiting_runner import WaitingTaskRunner
from ..adapters.http.auth import StaticToken, TokenSource
from ..adapters.http.user_tokens import UserIdTokenSource
from ..engine import Ports, handle
from ..model.messages import Message
from ..ports import TaskRunner
from ..settings import Settings


def token_source(jwt: str | None) -> TokenSource:
    """The `--tr-auth-jwt` value when given (sent as is), else ID tokens from google-auth."""
    return StaticToken(jwt) if jwt is not None else UserIdTokenSource()


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
        runner=runner or WaitingTaskRunner(token_source(jwt), bus.waiting),
        settings=settings,
        events=RecordedEvents(),
    )

    def deliver(msg: Message) -> None:
        handle(msg, ports)

    bus.start(deliver)
    return EmbeddedRuntime(ports, bus, store)
