"""Cloud Scheduler for the local cloud: the sweep job, publishing SweepRuns on a timer.

`SweepTimer` publishes the JSON of `SweepRuns(stale_after, limit)` (attribute
`type: SweepRuns`) every `every` seconds, as the Terraform job does on its cron schedule,
the first one `every` seconds after `start()`. A failed publish is logged and counted, and
the next one is tried on time. `stop()` is idempotent and returns within one publish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from workflow.model import codec
from workflow.model.messages import SweepRuns

LOG = logging.getLogger(__name__)

Publish = Callable[[bytes, dict[str, str]], None]
"""Publish (data, attributes) on the engine topic and return once Pub/Sub accepted it."""


class SweepTimer:
    """A daemon thread publishing `message` every `every` seconds through `publish`."""

    def __init__(self, publish: Publish, every: float, message: SweepRuns) -> None:
        if every <= 0:
            raise ValueError(f"a sweep timer needs an interval > 0 s, got {every:g}")
        self.every = every
        self.message = message
        self.published = 0
        self.failed = 0
        self._publish = publish
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="localcloud-sweep", daemon=True)

    def start(self) -> SweepTimer:
        self._thread.start()
        LOG.info("sweep every %g s (runs quiet for %g s)", self.every, self.message.stale_after)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        data = codec.encode(self.message)
        while not self._stop.wait(self.every):
            try:
                self._publish(data, {"type": type(self.message).__name__})
            except Exception:  # the next tick tries again, as Cloud Scheduler's next run would
                self.failed += 1
                LOG.exception("publishing the sweep failed")
                continue
            self.published += 1
