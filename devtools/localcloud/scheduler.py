"""Cloud Scheduler for the local cloud: the sweep job, calling the HTTP start function on a timer.

`SweepTimer` calls `send` every `every` seconds, as the Terraform job calls the HTTP start
function with `{"action": "sweep"}` on its cron schedule, the first time `every` seconds
after `start()`. A failed call is logged and counted, and the next one is tried on time.
`stop()` is idempotent and returns within one call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

LOG = logging.getLogger(__name__)

SWEEP_REQUEST = {"action": "sweep"}
"""What the scheduler's job posts to the HTTP start function (terraform/scheduler.tf)."""


class SweepTimer:
    """A daemon thread calling `send` (one sweep request; raises if it was not accepted)
    every `every` seconds."""

    def __init__(self, send: Callable[[], None], every: float) -> None:
        if every <= 0:
            raise ValueError(f"a sweep timer needs an interval > 0 s, got {every:g}")
        self.every = every
        self.sent = 0
        self.failed = 0
        self._send = send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="localcloud-sweep", daemon=True)

    def start(self) -> SweepTimer:
        self._thread.start()
        LOG.info("sweep every %g s", self.every)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self._send()
            except Exception:  # the next tick tries again, as Cloud Scheduler's next run would
                self.failed += 1
                LOG.exception("the sweep request failed")
                continue
            self.sent += 1
