"""The DAG as the engine sees it: immutable, validated, seed-compatible."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Args = tuple[str, ...] | Mapping[str, str]


@dataclass(frozen=True)
class Task:
    """What the Task Runner is asked to run for one step."""

    name: str
    image_uri: str
    args: Args | None = None
    scale_tier: str | None = None
    master_type: str | None = None
    labels: Mapping[str, str] | None = None

    def to_request(self) -> dict[str, Any]:
        """The seed's `POST /job` body: only the fields that are set."""
        body: dict[str, Any] = {"job_name": self.name, "imageUri": self.image_uri}
        if self.args is not None:
            body["args"] = dict(self.args) if isinstance(self.args, Mapping) else list(self.args)
        if self.scale_tier is not None:
            body["scaleTier"] = self.scale_tier
        if self.master_type is not None:
            body["masterType"] = self.master_type
        if self.labels is not None:
            body["labels"] = dict(self.labels)
        return body

    def to_dict(self) -> dict[str, Any]:
        """The DAG-file form of the task (round-trips through `Task.from_dict`)."""
        body = self.to_request()
        body["name"] = body.pop("job_name")
        return body

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        """Build from an already validated DAG-file mapping."""
        args = data.get("args")
        if isinstance(args, list):
            args = tuple(args)
        return cls(
            name=data["name"],
            image_uri=data["imageUri"],
            args=args,
            scale_tier=data.get("scaleTier"),
            master_type=data.get("masterType"),
            labels=data.get("labels"),
        )


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

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def roots(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.steps if not s.depends_on)

    def successors(self, step_id: str) -> tuple[str, ...]:
        return self._successors[step_id]

    def descendants(self, step_id: str) -> tuple[str, ...]:
        """Every step reachable from `step_id`, in DAG-file order, excluding itself."""
        seen = reachable(self._successors, step_id)
        return tuple(s.id for s in self.steps if s.id in seen)

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
