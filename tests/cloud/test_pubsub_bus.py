"""PubSubBus against the Pub/Sub emulator: what it publishes is what the entry point decodes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest

from devtools.localcloud import pubsub_wiring
from devtools.localcloud.servers import Service
from workflow.adapters.gcp.pubsub_bus import PubSubBus
from workflow.model import codec
from workflow.model.messages import CheckJob, DispatchStep

pytestmark = pytest.mark.cloud


def test_published_messages_round_trip_with_attributes(
    pubsub_emulator: Service, project: str, unique_id: Callable[[str], str]
) -> None:
    topic, sub = unique_id("bus"), unique_id("pull")
    host = pubsub_emulator.host_port
    subscriber = pubsub_wiring.subscription_admin(host)
    pubsub_wiring.ensure_topic(pubsub_wiring.topic_admin(host), project, topic)
    pubsub_wiring.ensure_pull_subscription(subscriber, project, sub, topic)
    with mock.patch.dict(os.environ, {"PUBSUB_EMULATOR_HOST": host}):
        bus = PubSubBus(project, topic, clock=lambda: 1000.0)
        bus.publish([DispatchStep("r", "a"), DispatchStep("r", "b")])
        bus.publish([CheckJob("r", "a", "job-1", 3)], delay=2.5)
    got = pull(subscriber, pubsub_wiring.subscription_path(project, sub), 3)
    decoded = {codec.decode(m.data): dict(m.attributes) for m in got}
    assert decoded[DispatchStep("r", "a")] == {"type": "DispatchStep", "run_id": "r", "step_id": "a"}
    assert decoded[CheckJob("r", "a", "job-1", 3)]["not_before"] == "1002.500"
    assert "not_before" not in decoded[DispatchStep("r", "b")]
    assert bus.published == 3


def pull(subscriber: Any, path: str, n: int, timeout: float = 20.0) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        resp = subscriber.pull(request={"subscription": path, "max_messages": 10}, timeout=5)
        if resp.received_messages:
            subscriber.acknowledge(request={"subscription": path,
                                            "ack_ids": [r.ack_id for r in resp.received_messages]})
        got.extend(r.message for r in resp.received_messages)
    assert len(got) == n, f"pulled {len(got)} of {n}"
    return got
