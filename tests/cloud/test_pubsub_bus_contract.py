"""The Bus contract on the Pub/Sub emulator: what PubSubBus publishes, pulled back."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from unittest import mock

import pytest

from bus_contract import BusContract, Channel, Delivered
from devtools.localcloud import pubsub_wiring
from devtools.localcloud.servers import Service
from polling import wait_until
from workflow.adapters.gcp.pubsub_bus import PubSubBus
from workflow.model import codec

pytestmark = pytest.mark.cloud


class TestPubSubBus(BusContract):
    @pytest.fixture
    def channel(self, pubsub_emulator: Service, project: str, unique_id: Callable[[str], str]) -> Iterator[Channel]:
        topic, sub = unique_id("bus"), unique_id("pull")
        host = pubsub_emulator.host_port
        subscriber = pubsub_wiring.subscription_admin(host)
        pubsub_wiring.ensure_topic(pubsub_wiring.topic_admin(host), project, topic)
        pubsub_wiring.ensure_pull_subscription(subscriber, project, sub, topic)
        path = pubsub_wiring.subscription_path(project, sub)
        got: list[Delivered] = []

        def pull() -> None:
            resp = subscriber.pull(request={"subscription": path, "max_messages": 50}, timeout=5)
            if resp.received_messages:
                subscriber.acknowledge(request={"subscription": path,
                                                "ack_ids": [r.ack_id for r in resp.received_messages]})
            for r in resp.received_messages:
                published = r.message.publish_time.timestamp()
                earliest = float(r.message.attributes.get("not_before") or published)
                got.append(Delivered(codec.decode(r.message.data), earliest))

        def receive(n: int) -> list[Delivered]:
            def enough() -> bool:
                if len(got) < n:
                    pull()
                return len(got) >= n

            wait_until(enough, 30, f"{n} messages pulled")
            return list(got)

        with mock.patch.dict(os.environ, {"PUBSUB_EMULATOR_HOST": host}):
            yield Channel(PubSubBus(project, topic), receive)


