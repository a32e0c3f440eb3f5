"""The DAG as the engine sees it: immutable, validated, seed-compatible."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
        return cls(
            name=data["name"],
            image_uri=data.get("imageUri"),
            args=tuple(args) if isinstance(args, (list, tuple)) else args,
            scale_tier=data.get("scaleTier"),
            master_type=data.get("masterType"),
            labels=data.get("labels"),
            engine=data.get("engine"),
            url=data.get("url"),
        )


def _list_or_none(args: tuple[str, ...] | None) -> list[str] | None:
    return None if args is None else list(args)


@dataclass(frozen=True)
class Step:
    id: str
    task: Task
    depends_on: tuple[str, ...] = ()
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "description": self.description,
            "dependsOn": list(self.depends_on),
            "task": self.task.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Step:
        return cls(
            id=data["id"],
            task=Task.from_dict(data["task"]),
            depends_on=tuple(data.get("dependsOn") or ()),
            description=data.get("description") or "",
        )


@dataclass(frozen=True)
class Dag:
    """A validated DAG: ids unique, dependencies known, no cycle."""

    steps: tuple[Step, ...]
    name: str = ""
    _successors: Mapping[str, tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        succ: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for s in self.steps:
            for dep in s.depends_on:
                succ[dep].append(s.id)
        object.__setattr__(self, "_successors", {k: tuple(v) for k, v in succ.items()})

    @property
    def step_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.steps)

    def roots(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.steps if not s.depends_on)

    def successors(self, step_id: str) -> tuple[str, ...]:
        return self._successors[step_id]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": [s.to_dict() for s in self.steps]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Dag:
        """Rebuild from `to_dict` output (trusted input: no validation here)."""
        return cls(
            steps=tuple(Step.from_dict(s) for s in data["steps"]),
            name=data.get("name") or "",
        )


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
