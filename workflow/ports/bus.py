"""Bus (the engine's messages) and Events (a run's end, for subscribers outside the executor)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from ..model.events import RunEnded
from ..model.messages import Message


class Bus(Protocol):
    def publish(self, messages: Sequence[Message], delay: float = 0.0) -> None:
        """Accept messages for at-least-once delivery, each no earlier than `delay` s from now.
        Returns only once every message is accepted (durable for a cloud bus); raises
        TransientError otherwise. Delivery order is not guaranteed."""

    def begin_publish(self, messages: Sequence[Message], delay: float = 0.0) -> Callable[[], None]:
        """`publish` in two halves, so that a handler can do other work while the bus
        confirms: the call returned waits until every message is accepted, or raises
        TransientError. The messages may be delivered before that call."""


class Events(Protocol):
    def run_ended(self, event: RunEnded) -> None:
        """Publish that a run ended, for subscribers outside the executor. Returns once the
        event is accepted (durable for a cloud topic); raises TransientError otherwise."""
