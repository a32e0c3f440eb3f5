"""Run-ended events on a Pub/Sub topic (`workflow-events`), with attributes subscriptions
can filter on (`type`, `run_id`, `status`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ...model.events import RunEnded
from .pubsub_bus import PubSubBus


class PubSubEvents:
    def __init__(self, project: str, topic: str, publisher: Callable[[], Any] | None = None) -> None:
        self._topic = PubSubBus(project, topic, publisher)

    def run_ended(self, event: RunEnded) -> None:
        body = event.to_dict()
        attributes = {"type": body["type"], "run_id": event.run.run_id, "status": event.run.status.value}
        self._topic.publish_raw(json.dumps(body, separators=(",", ":")).encode(), attributes)
