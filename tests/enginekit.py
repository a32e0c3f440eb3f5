"""Test doubles for the engine's ports, and a driver that delivers messages by hand."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from workflow.adapters.embedded.events import RecordedEvents
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.engine import Ports, handle
from workflow.errors import StatusRefused, SubmissionRefused, TaskRunnerUnavailable
from workflow.model.dag import Dag, Step, Task
from workflow.model.messages import Message
from workflow.model.records import Job
from workflow.settings import Settings


def dag(spec: dict[str, Sequence[str]], name: str = "test", images: dict[str, str] | None = None) -> Dag:
    """A DAG from {step: [dependencies]}; images default to `img/<step>`."""
    images = images or {}
    return Dag(
        tuple(Step(s, Task(s, images.get(s, f"img/{s}")), tuple(deps)) for s, deps in spec.items()),
        name=name,
    )


class ListBus:
    """Collects published messages; the test decides when each is delivered."""

    def __init__(self) -> None:
        self.pending: list[Message] = []
        self.delays: list[float] = []

    def publish(self, messages: Sequence[Message], delay: float = 0.0) -> None:
        self.pending.extend(messages)
        self.delays.extend([delay] * len(messages))


@dataclass
class ScriptedRunner:
    """A Task Runner in memory. A job runs for `checks` status calls, then ends:
    FAILED if its image contains 'error', else SUCCEEDED. `refuse` images fail submission;
    `flaky` makes the next N status calls unavailable; `lost` answers 4xx to status."""

    checks: int = 1
    refuse: set[str] = field(default_factory=set)
    flaky: int = 0
    lost: bool = False
    message: str | None = None  # the message of ended jobs (default: "exit 1" for failures)
    healed: bool = False  # set it, and 'error' images stop failing
    submitted: list[str] = field(default_factory=list)
    _polls: dict[str, int] = field(default_factory=dict)
    _images: dict[str, str] = field(default_factory=dict)

    def submit(self, url: str, task: Task, auth: str = "", run_id: str = "") -> Job:
        if task.image_uri in self.refuse:
            raise SubmissionRefused("HTTP 400: bad image", 400, "bad image")
        job_id = f"{task.name}-{len(self.submitted) + 1}"
        self.submitted.append(task.name)
        self._images[job_id] = task.image_uri
        self._polls[job_id] = 0
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
        if self._polls[job_id] >= self.checks:
            return Job(job_id, self._end(job_id), self._message(job_id))
        return Job(job_id, "RUNNING")

    def _message(self, job_id: str) -> str:
        if self.message is not None:
            return self.message
        return "exit 1" if self._end(job_id) == "FAILED" else ""

    def _end(self, job_id: str) -> str:
        return "FAILED" if "error" in self._images[job_id] and not self.healed else "SUCCEEDED"


@dataclass
class Harness:
    runner: ScriptedRunner = field(default_factory=ScriptedRunner)
    settings: Settings = field(default_factory=lambda: Settings(poll_interval=0))
    now: float = 1000.0
    store: SqliteStateStore = field(default_factory=lambda: SqliteStateStore(":memory:"))

    def __post_init__(self) -> None:
        self.bus = ListBus()
        self.events = RecordedEvents()
        self.ports = Ports(self.store, self.bus, self.runner, self.settings, clock=lambda: self.now,
                           events=self.events)
        self.delivered = 0

    def drain(self, *, twice: bool = False, seed: int | None = None, max_rounds: int = 10_000) -> None:
        """Deliver until nothing is pending. With `twice`, every message is delivered a
        second time at a random later round; with `seed`, each round is shuffled."""
        rng = random.Random(seed)
        late: list[tuple[int, Message]] = []
        for round_no in range(max_rounds):
            batch, self.bus.pending, self.bus.delays = self.bus.pending, [], []
            due = [m for r, m in late if r <= round_no]
            late = [(r, m) for r, m in late if r > round_no]
            if twice:
                late.extend((round_no + rng.randint(0, 3), m) for m in batch)
            batch = batch + due
            if not batch and not late:
                return
            if seed is not None:
                rng.shuffle(batch)
            for msg in batch:
                self.now += 0.01
                handle(msg, self.ports)
                self.delivered += 1
        raise AssertionError("messages kept coming")

    def states(self, run_id: str) -> dict[str, tuple[str, str]]:
        return {s.step_id: (s.state.value, s.job_id) for s in self.store.list_steps(run_id)}
