"""Test doubles for the engine's ports, and a driver that delivers messages by hand."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from workflow.adapters.embedded.events import RecordedEvents
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.bootstrap.embedded import embedded_ports
from workflow.engine import handle
from workflow.errors import StatusRefused, SubmissionRefused, TaskRunnerUnavailable
from workflow.model.dag import Dag, Policy, Step, Task
from workflow.model.messages import Message
from workflow.model.records import Job
from workflow.settings import Settings


def dag(spec: dict[str, Sequence[str]], name: str = "test", images: dict[str, str] | None = None,
        policies: dict[str, Policy] | None = None, max_parallel: int | None = None,
        timeout: float | None = None) -> Dag:
    """A DAG from {step: [dependencies]}; images default to `img/<step>`, policies to the default."""
    images, policies = images or {}, policies or {}
    return Dag(
        tuple(Step(s, Task(s, images.get(s, f"img/{s}")), tuple(deps), policy=policies.get(s, Policy()))
              for s, deps in spec.items()),
        name=name, max_parallel=max_parallel, timeout=timeout,
    )


class ListBus:
    """Collects published messages; the test decides when each is delivered."""

    def __init__(self) -> None:
        self.pending: list[Message] = []
        self.delays: list[float] = []

    def publish(self, messages: Sequence[Message], delay: float = 0.0) -> None:
        self.pending.extend(messages)
        self.delays.extend([delay] * len(messages))

    def begin_publish(self, messages: Sequence[Message], delay: float = 0.0) -> Callable[[], None]:
        self.publish(messages, delay)
        return lambda: None

    def take(self) -> list[tuple[Message, float]]:
        """Everything published since the last take, with its delay (none when a test
        edited `pending` by hand)."""
        delays = self.delays if len(self.delays) == len(self.pending) else [0.0] * len(self.pending)
        taken = list(zip(self.pending, delays, strict=True))
        self.pending, self.delays = [], []
        return taken


@dataclass
class ScriptedRunner:
    """A Task Runner in memory. A job runs for `checks` status calls, then ends:
    FAILED if its image contains 'error', else SUCCEEDED. `refuse` images fail submission;
    `flaky` makes the next N status calls unavailable; `lost` answers 4xx to status."""

    checks: int = 1
    refuse: set[str] = field(default_factory=set)
    fail_first: dict[str, int] = field(default_factory=dict)  # task name: its first N jobs fail
    cancelled: set[str] = field(default_factory=set)  # task names whose jobs end CANCELLED
    flaky: int = 0
    lost: bool = False
    message: str | None = None  # the message of ended jobs (default: "exit 1" for failures)
    healed: bool = False  # set it, and 'error' images stop failing
    submitted: list[str] = field(default_factory=list)
    max_in_flight: int = 0  # the most jobs submitted and not yet seen ended at once
    _polls: dict[str, int] = field(default_factory=dict)
    _images: dict[str, str] = field(default_factory=dict)
    _fails: set[str] = field(default_factory=set)
    _running: set[str] = field(default_factory=set)

    def submit(self, url: str, task: Task, auth: str = "", run_id: str = "") -> Job:
        if task.image_uri in self.refuse:
            raise SubmissionRefused("HTTP 400: bad image")
        job_id = f"{task.name}-{len(self.submitted) + 1}"
        if self.submitted.count(task.name) < self.fail_first.get(task.name, 0):
            self._fails.add(job_id)
        self.submitted.append(task.name)
        self._images[job_id] = task.image_uri
        self._polls[job_id] = 0
        self._running.add(job_id)
        self.max_in_flight = max(self.max_in_flight, len(self._running))
        if not self.checks:
            return Job(job_id, self._end(job_id), self._message(job_id))
        return Job(job_id, "QUEUED")

    def status(self, url: str, job_id: str, auth: str = "", run_id: str = "") -> Job:
        if self.lost:
            raise StatusRefused(f"status of job {job_id}: HTTP 404: unknown job")
        if self.flaky:
            self.flaky -= 1
            raise TaskRunnerUnavailable("HTTP 503")
        self._polls[job_id] += 1
        if self._polls[job_id] >= self.checks and job_id.rsplit("-", 1)[0] in self.cancelled:
            self._running.discard(job_id)
            return Job(job_id, "CANCELLED")
        if self._polls[job_id] >= self.checks:
            return Job(job_id, self._end(job_id), self._message(job_id))
        return Job(job_id, "RUNNING")

    def _message(self, job_id: str) -> str:
        if self.message is not None:
            return self.message
        return "exit 1" if self._end(job_id) == "FAILED" else ""

    def _end(self, job_id: str) -> str:
        self._running.discard(job_id)
        fails = ("error" in self._images[job_id] and not self.healed) or job_id in self._fails
        return "FAILED" if fails else "SUCCEEDED"


@dataclass
class Harness:
    runner: ScriptedRunner = field(default_factory=ScriptedRunner)
    settings: Settings = field(default_factory=lambda: Settings(poll_interval=0))
    now: float = 1000.0
    store: SqliteStateStore = field(default_factory=lambda: SqliteStateStore(":memory:"))

    def __post_init__(self) -> None:
        self.bus = ListBus()
        self.events = RecordedEvents()
        self.ports = embedded_ports(self.settings, self.runner, self.store, self.bus, clock=lambda: self.now,
                                    events=self.events)
        self.delivered = 0
        self._waiting: list[tuple[float, int, Message]] = []

    def drain(self, *, twice: bool = False, seed: int | None = None, max_rounds: int = 10_000,
              until: float = float("inf")) -> None:
        """Deliver until nothing is pending (or the clock would pass `until`), each message
        once its delay has passed on the harness clock, which jumps to the next due message
        when none is due. With `twice`, every message is delivered a second time at a random
        later round; with `seed`, each round is shuffled."""
        rng = random.Random(seed)
        waiting = self._waiting  # (due, round it may go out, message); kept when stopped `until`
        for round_no in range(max_rounds):
            for msg, delay in self.bus.take():
                waiting.append((self.now + delay, round_no, msg))
                if twice:
                    waiting.append((self.now + delay, round_no + rng.randint(0, 3), msg))
            if not waiting:
                return
            first = min(due for due, _, _ in waiting)
            if first > until:
                self._waiting = [(due, 0, m) for due, _, m in waiting]
                return
            self.now = max(self.now, first)
            batch = [m for due, r, m in waiting if due <= self.now and r <= round_no]
            waiting[:] = [(due, r, m) for due, r, m in waiting if not (due <= self.now and r <= round_no)]
            if seed is not None:
                rng.shuffle(batch)
            for msg in batch:
                self.now += 0.01
                handle(msg, self.ports)
                self.delivered += 1
        raise AssertionError("messages kept coming")

    def states(self, run_id: str) -> dict[str, tuple[str, str]]:
        return {s.step_id: (s.state.value, s.job_id) for s in self.store.list_steps(run_id)}
