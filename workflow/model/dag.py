"""The DAG as the engine sees it: immutable, validated, seed-compatible."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .params import ParamSpec

Args = tuple[str, ...] | Mapping[str, str]


@dataclass(frozen=True)
class Task:
    """What the Task Runner is asked to run for one step: a container image, or an
    `engine` (with its `url`) that the Task Runner knows; at least one of the two is set."""

    name: str
    image_uri: str | None = None
    args: Args | None = None
    scale_tier: str | None = None
    master_type: str | None = None
    labels: Mapping[str, str] | None = None
    engine: str | None = None
    url: str | None = None

    def to_request(self) -> dict[str, Any]:
        """The seed's `POST /job` body: only the fields that are set."""
        fields = {
            "job_name": self.name,
            "imageUri": self.image_uri,
            "engine": self.engine,
            "url": self.url,
            "args": dict(self.args) if isinstance(self.args, Mapping) else _list_or_none(self.args),
            "scaleTier": self.scale_tier,
            "masterType": self.master_type,
            "labels": None if self.labels is None else dict(self.labels),
        }
        return {key: value for key, value in fields.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        """The DAG-file form of the task (round-trips through `Task.from_dict`)."""
        body = self.to_request()
        body["name"] = body.pop("job_name")
        return body

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        """Build from an already validated DAG-file mapping."""
        args = data.get("args")
        return cls(name=data["name"], image_uri=data.get("imageUri"),
                   args=tuple(args) if isinstance(args, (list, tuple)) else args, scale_tier=data.get("scaleTier"),
                   master_type=data.get("masterType"), labels=data.get("labels"), engine=data.get("engine"),
                   url=data.get("url"))


def _list_or_none(args: tuple[str, ...] | None) -> list[str] | None:
    return None if args is None else list(args)


class RunIf(StrEnum):
    """When a step runs, given how its dependencies ended."""

    ALL_SUCCEEDED = "allSucceeded"  # every dependency SUCCEEDED (the default)
    ALL_DONE = "allDone"  # every dependency ended, however
    ANY_FAILED = "anyFailed"  # every dependency ended and at least one FAILED


RETRY_DELAY = 10.0  # seconds before a step's first retry, unless the DAG says otherwise
RETRY_DELAY_CAP = 3600.0


@dataclass(frozen=True)
class Policy:
    """How a step is run: how often it is retried, for how long, and after what."""

    retries: int = 0  # new jobs after the first attempt FAILED, was refused or timed out
    retry_delay: float = RETRY_DELAY  # before the first retry; doubles each time, capped
    timeout: float | None = None  # the step's timeout; None: the runtime's default
    run_if: RunIf = RunIf.ALL_SUCCEEDED

    def delay_before(self, retry: int, seed: str) -> float:
        """Seconds before retry number `retry` (1 for the first): `retry_delay` doubled each
        time, times a jitter of 0.8 to 1.2 drawn from `seed` (the same on every redelivery),
        capped at RETRY_DELAY_CAP."""
        jitter = 0.8 + 0.4 * (zlib.crc32(seed.encode()) / 0xFFFFFFFF)
        return float(min(RETRY_DELAY_CAP, self.retry_delay * 2 ** min(retry - 1, 20) * jitter))

    def to_dict(self) -> dict[str, Any]:
        """The DAG-file keys that differ from the default."""
        default = Policy()._keys()
        return {key: value for key, value in self._keys().items() if value != default[key]}

    def _keys(self) -> dict[str, Any]:
        return {"retries": self.retries, "retryDelaySec": self.retry_delay, "timeoutSec": self.timeout,
                "runIf": self.run_if.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """Build from validated DAG-file keys (absent keys keep their defaults)."""
        timeout = data.get("timeoutSec")
        return cls(retries=int(data.get("retries", 0)), retry_delay=float(data.get("retryDelaySec", RETRY_DELAY)),
                   timeout=None if timeout is None else float(timeout),
                   run_if=RunIf(data.get("runIf", RunIf.ALL_SUCCEEDED.value)))


@dataclass(frozen=True)
class Step:
    id: str
    task: Task
    depends_on: tuple[str, ...] = ()
    description: str = ""
    policy: Policy = field(default_factory=Policy)
    for_each: str | tuple[str, ...] | None = None  # a list placeholder or a literal list: one step per item

    def to_dict(self) -> dict[str, Any]:
        body = {"id": self.id, "description": self.description, "dependsOn": list(self.depends_on),
                "task": self.task.to_dict(), **self.policy.to_dict()}
        if self.for_each is not None:
            body["forEach"] = self.for_each if isinstance(self.for_each, str) else list(self.for_each)
        return body

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        each = data.get("forEach")
        return cls(id=data["id"], task=Task.from_dict(data["task"]), depends_on=tuple(data.get("dependsOn") or ()),
                   description=data.get("description") or "", policy=Policy.from_dict(data),
                   for_each=tuple(each) if isinstance(each, list) else each)


@dataclass(frozen=True)
class Dag:
    """A validated DAG: ids unique, dependencies known, no cycle."""

    steps: tuple[Step, ...]
    name: str = ""
    max_parallel: int | None = None  # at most this many jobs in flight at once; None: no limit
    timeout: float | None = None  # the run's timeout: steps still open after it are ended
    params: Mapping[str, ParamSpec] = field(default_factory=dict)  # the run parameters it declares
    _successors: Mapping[str, tuple[str, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _by_id: Mapping[str, Step] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        succ: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for s in self.steps:
            for dep in s.depends_on:
                succ[dep].append(s.id)
        object.__setattr__(self, "_successors", {k: tuple(v) for k, v in succ.items()})
        object.__setattr__(self, "_by_id", {s.id: s for s in self.steps})

    @property
    def step_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.steps)

    def roots(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.steps if not s.depends_on)

    def successors(self, step_id: str) -> tuple[str, ...]:
        return self._successors[step_id]

    def waits_for_any_end(self, step_id: str) -> tuple[str, ...]:
        """The successors that wait for this step's end however it ends (their `runIf` is
        not allSucceeded); the others run only if it SUCCEEDED."""
        return tuple(s for s in self._successors[step_id]
                     if self._by_id[s].policy.run_if is not RunIf.ALL_SUCCEEDED)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "steps": [s.to_dict() for s in self.steps]}
        if self.max_parallel is not None:
            body["maxParallel"] = self.max_parallel
        if self.timeout is not None:
            body["timeoutSec"] = self.timeout
        if self.params:
            body["params"] = {name: spec.to_dict() for name, spec in self.params.items()}
        return body

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Dag:
        """Rebuild from `to_dict` output (trusted input: no validation here)."""
        timeout = data.get("timeoutSec")
        return cls(steps=tuple(Step.from_dict(s) for s in data["steps"]), name=data.get("name") or "",
                   max_parallel=data.get("maxParallel"), timeout=None if timeout is None else float(timeout),
                   params={n: ParamSpec.from_dict(p) for n, p in (data.get("params") or {}).items()})


def reachable(successors: Mapping[str, Sequence[str]], start: str) -> set[str]:
    """Every node reachable from `start` along `successors` edges, excluding `start`."""
    seen: set[str] = set()
    todo = list(successors.get(start, ()))
    while todo:
        cur = todo.pop()
        if cur not in seen:
            seen.add(cur)
            todo.extend(successors.get(cur, ()))
    return seen


def digest(task: Task, policy: Policy) -> str:
    """Names a step's definition (its task and policy): the image and a checksum of the rest."""
    return f"{task.image_uri}@{zlib.crc32(repr((task.to_dict(), policy.to_dict())).encode()):08x}"
