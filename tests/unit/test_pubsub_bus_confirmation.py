"""PubSubBus's confirmation of what it published, against a publisher that fails (the
emulator never does; tests/cloud covers the round trip)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from google.api_core import exceptions as gexc

from workflow.adapters.gcp.pubsub_bus import PubSubBus
from workflow.errors import TransientError
from workflow.model.messages import DispatchStep


class HeldPublisher:
    """Accepts every publish call and hands back a future that the test settles."""

    def __init__(self) -> None:
        self.futures: list[Future[str]] = []

    def topic_path(self, project: str, topic: str) -> str:
        return f"projects/{project}/topics/{topic}"

    def publish(self, path: str, data: bytes, **attributes: Any) -> Future[str]:
        future: Future[str] = Future()
        self.futures.append(future)
        return future


def test_a_failed_publish_surfaces_at_its_confirmation_as_a_transient_error() -> None:
    publisher = HeldPublisher()
    bus = PubSubBus("p", "t", publisher=lambda: publisher)
    confirmed = bus.begin_publish([DispatchStep("r", "a"), DispatchStep("r", "b")])
    assert len(publisher.futures) == 2 and bus.published == 0  # sent, not yet confirmed
    publisher.futures[0].set_result("1")
    publisher.futures[1].set_exception(gexc.ServiceUnavailable("down"))
    with pytest.raises(TransientError, match="publish to t failed"):
        confirmed()
    assert bus.published == 0


def test_publish_returns_once_every_message_is_accepted() -> None:
    publisher = HeldPublisher()
    bus = PubSubBus("p", "t", publisher=lambda: publisher)
    confirmed = bus.begin_publish([DispatchStep("r", "a")])
    publisher.futures[0].set_result("1")
    confirmed()
    assert bus.published == 1
