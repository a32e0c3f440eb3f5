"""Events in one process: kept in memory and logged (the embedded runtime has no subscribers)."""

from __future__ import annotations

import json
import logging
import threading

from ...model.events import RunEnded

log = logging.getLogger("workflow.events")


class RecordedEvents:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.published: list[dict[str, object]] = []

    def run_ended(self, event: RunEnded) -> None:
        body = event.to_dict()
        with self._lock:
            self.published.append(body)
        log.info("run ended: %s", json.dumps(body), extra={"run_id": event.run.run_id})
