"""The embedded runtime: a SQLite store and an in-process bus, in this process (the CLI)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..adapters.embedded.events import RecordedEvents
from ..adapters.embedded.inprocess_bus import InProcessBus
from ..adapters.embedded.sqlite_store import SqliteStateStore
from ..adapters.embedded.waiting_runner import WaitingTaskRunner
from ..adapters.http.auth import StaticToken, TokenSource
from ..adapters.http.user_tokens import UserIdTokenSource
from ..engine import Ports, handle
from ..model.messages import Message
from ..ports import Bus, Events, StateStore, TaskRunner
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
    ports = embedded_ports(settings, runner or WaitingTaskRunner(token_source(jwt), bus.waiting), store, bus)

    def deliver(msg: Message) -> None:
        handle(msg, ports)

    bus.start(deliver)
    return EmbeddedRuntime(ports, bus, store)


def embedded_ports(
    settings: Settings,
    runner: TaskRunner,
    store: StateStore,
    bus: Bus,
    *,
    clock: Callable[[], float] = time.time,
    events: Events | None = None,
) -> Ports:
    """The embedded runtime's ports around any bus and clock, for a caller that delivers
    the messages itself (the engine's tests, which deliver them one by one); `events`
    defaults to recording run ends in memory."""
    return Ports(store=store, bus=bus, runner=runner, settings=settings, clock=clock,
                 events=RecordedEvents() if events is None else events)
