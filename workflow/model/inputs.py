"""What a run was started with besides its DAG: parameter values, the schedule tick it
belongs to, who asked for it, and the forEach groups its steps were expanded into."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ParamValue = str | tuple[str, ...]  # a value as given (text: numbers are never re-formatted), or a list of them


@dataclass(frozen=True)
class RunInputs:
    params: Mapping[str, ParamValue] = field(default_factory=dict)  # every declared parameter's value
    scheduled_at: float | None = None  # the schedule's tick (epoch seconds), for `run.date` and `run.scheduledTime`
    schedule: str = ""  # the schedule that started the run, if one did
    started_by: str = ""  # the verified caller who asked for the run ("" when not known)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # forEach step id -> its members' ids

    # A forEach step's members are always `STEP.0` ... `STEP.<n-1>`: stored as their count.

    def to_dict(self) -> dict[str, Any]:
        """The stored form: only what is set."""
        body: dict[str, Any] = {
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
            "scheduled_at": self.scheduled_at, "schedule": self.schedule, "started_by": self.started_by,
            "groups": {k: len(v) for k, v in self.groups.items()},
        }
        return {k: v for k, v in body.items() if v not in (None, "", {})}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> RunInputs:
        d = d or {}
        params = {k: tuple(v) if isinstance(v, list) else str(v) for k, v in (d.get("params") or {}).items()}
        at = d.get("scheduled_at")
        return cls(params, None if at is None else float(at), d.get("schedule") or "", d.get("started_by") or "",
                   {k: _members(k, n) for k, n in (d.get("groups") or {}).items()})

    def group_of(self) -> dict[str, str]:
        """Each forEach member's group (step id -> forEach step id)."""
        return {member: group for group, members in self.groups.items() for member in members}


def _members(group: str, stored: int | list[str]) -> tuple[str, ...]:
    """A group's members from their count (or their list, as a store may hold it)."""
    return tuple(stored) if isinstance(stored, list) else tuple(f"{group}.{i}" for i in range(int(stored)))
