"""The join rule, written once for every store.

Each step keeps a join counter, `waiting_on`: the dependencies whose end it still waits
for. A step's end takes one off the counters of the successors it releases; a successor
whose counter reaches zero is ready, and exactly one end (the one that brought it to
zero) dispatches it. A success releases every successor; any other end releases only the
successors that run after any end of it (`runIf: allDone | anyFailed`), and the others
are skipped by the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from .dag import Dag
from .records import StepRecord
from .states import StepState


def released(successors: Sequence[str], any_end: Sequence[str], ended: StepState) -> list[str]:
    """The successors whose join counter an end `ended` of the step takes one off."""
    return list(successors if ended is StepState.SUCCEEDED else any_end)


def released_by(definition: Mapping[str, Any], ended: StepState) -> list[str]:
    """`released`, for a step as stored (its definition, `stored.definition_of`)."""
    return released(definition["successors"], definition.get("anyEnd") or (), ended)


def waiting_on(depends_on: Sequence[str], again: Collection[str], succeeded: Callable[[str], bool]) -> int:
    """A step's join counter when the steps `again` are run again: the dependencies that
    run again or have not succeeded."""
    return sum(1 for d in depends_on if d in again or not succeeded(d))


def shape_differences(steps: list[StepRecord], dag: Dag) -> list[str]:
    """How `dag` departs from the run's shape (step ids, each one's dependencies and runIf, which
    the join counters stand on); [] when a rerun may take its definitions."""
    had = {s.step_id: (sorted(s.depends_on), s.policy.run_if.value) for s in steps}
    has = {s.id: (sorted(s.depends_on), s.policy.run_if.value) for s in dag.steps}
    found = [f"step {i} not in the {'file' if i in had else 'run'}" for i in sorted(had.keys() ^ has.keys())]
    return found + [f"{i}: dependsOn {has[i][0]}, runIf {has[i][1]}; in the run {had[i][0]}, {had[i][1]}"
                    for i in had if i in has and had[i] != has[i]]
