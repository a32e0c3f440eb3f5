"""Cloud Scheduler for the local cloud: the sweep job and the schedules' jobs, calling the
HTTP start function on a timer.

`SweepTimer` calls `send` every `every` seconds, as the Terraform job calls the HTTP start
function with `{"action": "sweep"}` on its cron schedule, the first time `every` seconds
after `start()`. A failed call is logged and counted, and the next one is tried on time.
`stop()` is idempotent and returns within one call.

`ScheduleTimer` is a schedule's job (terraform/schedules.tf) on a timer instead of a cron:
every `every` seconds it posts the schedule's start request with the tick's time (the
second it fires) in `X-CloudScheduler-ScheduleTime`, as Cloud Scheduler does.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from workflow.model.ticks import SCHEDULE_TIME_HEADER, rfc3339

LOG = logging.getLogger(__name__)

SWEEP_REQUEST = {"action": "sweep"}
"""What the scheduler's job posts to the HTTP start function (terraform/scheduler.tf)."""


class SweepTimer:
    """A daemon thread calling `send` (one sweep request; raises if it was not accepted)
    every `every` seconds."""

    def __init__(self, send: Callable[[], None], every: float, name: str = "sweep") -> None:
        if every <= 0:
            raise ValueError(f"a sweep timer needs an interval > 0 s, got {every:g}")
        self.every = every
        self.name = name
        self.sent = 0
        self.failed = 0
        self._send = send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"localcloud-{name}", daemon=True)

    def start(self) -> SweepTimer:
        self._thread.start()
        LOG.info("%s every %g s", self.name, self.every)
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
                LOG.exception("the %s request failed", self.name)
                continue
            self.sent += 1


@dataclass(frozen=True)
class LocalSchedule:
    """A schedule the local cloud runs on a timer: the start request its job posts (as
    terraform/schedules.tf's body: `dag_path` or `dag`, `schedule`, `concurrency`), and the
    seconds between two ticks (at least 1: a tick's run is named by its second)."""

    body: Mapping[str, Any]
    every: float = 60.0


def replacing(schedules: Mapping[str, LocalSchedule]) -> str:
    """WORKFLOW_REPLACING_SCHEDULES for `schedules`, as Terraform sets it from its schedules."""
    return ",".join(sorted(name for name, s in schedules.items() if s.body.get("concurrency") == "replace"))


Post = Callable[..., tuple[int, dict[str, Any]]]
"""`post(body, headers=...)`: POST a start request, (HTTP status, JSON answer)."""


@dataclass
class ScheduleTimer:
    """A schedule's job on a timer: `answers` holds (tick time, status, answer) of each call;
    an answer other than 200 (skipped) or 202 (started) counts as failed."""

    post: Post
    name: str
    schedule: LocalSchedule
    answers: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.schedule.every < 1:
            raise ValueError(f"schedule {self.name}: its ticks are at least 1 s apart, not {self.schedule.every:g}")
        self.timer = SweepTimer(self._tick, self.schedule.every, f"schedule-{self.name}")

    def start(self) -> ScheduleTimer:
        self.timer.start()
        return self

    def stop(self) -> None:
        self.timer.stop()

    def _tick(self) -> None:
        at = rfc3339(time.time())  # at least 1 s after the previous tick: another second
        status, answer = self.post(self.schedule.body, headers={SCHEDULE_TIME_HEADER: at})
        self.answers.append((at, status, answer))
        if status not in (200, 202):
            raise RuntimeError(f"the tick {at} of schedule {self.name} was answered {status}: {answer}")
