"""What the pages show, computed from records: counts by state, the graph with fans of like
steps grouped, why steps were skipped, and steps as JSON-ready dicts (never a token)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

from ..model.records import RunRecord, StepRecord
from ..model.states import StepState

GROUP_MIN = 5  # like steps drawn as one node from this many on; fewer are drawn one by one
OPEN = "OPEN"  # pending or running: what a run's record counts without reading its steps
STATES = [s.value for s in StepState]
# The state a group node is coloured by: the first of these its steps are in.
SHOWN_FIRST = ("FAILED", "RUNNING", "PENDING", "CANCELLED", "SKIPPED", "SUCCEEDED")


def run_counts(run: RunRecord) -> dict[str, int]:
    """Steps by state as the run's record counts them (one read): the ended ones, and the open."""
    ended = {"SUCCEEDED": run.succeeded, "FAILED": run.failed, "SKIPPED": run.skipped, "CANCELLED": run.cancelled}
    return {**ended, OPEN: max(run.step_count - sum(ended.values()), 0)}


def step_counts(steps: Iterable[StepRecord]) -> dict[str, int]:
    found = Counter(s.state.value for s in steps)
    return {state: found[state] for state in STATES}


def run_dict(run: RunRecord, now: float) -> dict[str, Any]:
    return {"run_id": run.run_id, "dag_name": run.dag_name, "source": run.source, "status": run.status.value,
            "created_at": run.created_at, "finished_at": run.finished_at,
            "duration": duration(run.created_at, run.finished_at, now), "step_count": run.step_count,
            "counts": run_counts(run), "reruns": list(run.reruns), "problems": list(run.problems),
            "params": {k: v if isinstance(v, str) else list(v) for k, v in run.inputs.params.items()},
            "scheduled_at": run.inputs.scheduled_at, "schedule": run.inputs.schedule,
            "groups": {k: list(v) for k, v in run.inputs.groups.items()}}



def step_dict(s: StepRecord) -> dict[str, Any]:
    """A step as shown: its task as sent to the Task Runner, never its credential."""
    return {"step_id": s.step_id, "state": s.state.value, "attempt": s.attempt, "job_id": s.job_id,
            "job_state": s.job_state, "message": s.message, "submitted_at": s.submitted_at,
            "finished_at": s.finished_at, "depends_on": list(s.depends_on), "task": s.task.to_request(),
            "policy": s.policy.to_dict(), "history": [a.to_dict() for a in s.history]}


def duration(start: float | None, end: float | None, now: float) -> float | None:
    return None if start is None else max((end if end is not None else now) - start, 0.0)


@dataclass(frozen=True)
class Node:
    """A node of the drawn graph: one step, or a group of like steps."""

    id: str
    label: str
    members: tuple[str, ...]

    @property
    def group(self) -> bool:
        return len(self.members) > 1


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]
    node_of: dict[str, str]  # step id -> node id

    def to_dict(self, steps: Sequence[StepRecord]) -> dict[str, Any]:
        state = {s.step_id: s.state.value for s in steps}
        return {"nodes": [{"id": n.id, "label": n.label, "group": n.group, "size": len(n.members),
                           "states": dict(Counter(state[m] for m in n.members))} for n in self.nodes],
                "edges": [list(e) for e in self.edges]}


def graph_of(steps: Sequence[StepRecord], groups: Mapping[str, Sequence[str]] | None = None) -> Graph:
    """Every step, pending ones too; the members of a forEach step (`groups`) as one node
    named after it, and like steps (same dependencies, successors and task image),
    GROUP_MIN or more of them, as one node."""
    like: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for s in steps:
        like[(frozenset(s.depends_on), frozenset(s.successors), s.task.image_uri)].append(s.step_id)
    node_of: dict[str, str] = {}
    nodes: dict[str, Node] = {}
    group_of = {m: group for group, members in (groups or {}).items() for m in members}
    for s in steps:
        if s.step_id in node_of:
            continue
        if s.step_id in group_of:  # a forEach step: its members as one node named after it
            group = group_of[s.step_id]
            members = list((groups or {})[group])
            node = Node(f"group:{group}", f"{group} (forEach x{len(members)})", tuple(members))
            nodes[node.id] = node
            node_of.update((m, node.id) for m in members)
            continue
        members = [m for m in like[(frozenset(s.depends_on), frozenset(s.successors), s.task.image_uri)]
                   if m not in group_of]
        if len(members) < GROUP_MIN:
            members = [s.step_id]
        node = Node(("group:" if len(members) > 1 else "step:") + s.step_id, label_of(members), tuple(members))
        nodes[node.id] = node
        node_of.update((m, node.id) for m in members)
    edges = dict.fromkeys((node_of[d], node_of[s.step_id]) for s in steps for d in s.depends_on if d in node_of)
    return Graph(tuple(nodes.values()), tuple(edges), node_of)


def group_states(steps: Sequence[StepRecord], groups: Mapping[str, Sequence[str]]) -> dict[str, dict[str, int]]:
    """Each forEach group's members counted by state."""
    state = {s.step_id: s.state.value for s in steps}
    return {group: dict(sorted(Counter(state.get(m, "PENDING") for m in members).items()))
            for group, members in groups.items()}


def label_of(members: Sequence[str]) -> str:
    if len(members) == 1:
        return members[0]
    prefix = "".join(c[0] for c in takewhile(lambda chars: len(set(chars)) == 1, zip(*members, strict=False)))
    return f"{prefix}* (x{len(members)})" if prefix else f"{members[0]}, ... (x{len(members)})"


def shown_state(states: Counter[str] | dict[str, int]) -> str:
    return next((s for s in SHOWN_FIRST if states.get(s)), "PENDING")


@dataclass(frozen=True)
class SkipReason:
    reason: str
    count: int
    examples: tuple[str, ...]


def skip_reasons(steps: Sequence[StepRecord], examples: int = 5) -> list[SkipReason]:
    """Skipped steps by why (the message the engine recorded: the upstream step that failed,
    or the runIf not met), the most common first."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for s in steps:
        if s.state is StepState.SKIPPED:
            by_reason[s.message or "skipped"].append(s.step_id)
    ranked = sorted(by_reason.items(), key=lambda kv: -len(kv[1]))
    return [SkipReason(reason, len(ids), tuple(ids[:examples])) for reason, ids in ranked]


def page_of(items: Sequence[Any], page: int, size: int) -> tuple[list[Any], int]:
    """The `page`-th (from 1) slice of `size` items, and the number of pages (at least 1)."""
    pages = max((len(items) + size - 1) // size, 1)
    page = min(max(page, 1), pages)
    return list(items[(page - 1) * size: page * size]), pages
