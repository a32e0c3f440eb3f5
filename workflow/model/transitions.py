"""A step's state transitions, each a named rule with the states it may leave and enter.

Both stores obey these rules: a transition is written only if the step is in one of its
`from_states` (at the attempt the caller names), so two transitions that race for one
attempt exclude each other and a repeated one changes nothing. What an ending releases
(which successors' join counters it takes one off) is `join.released`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .states import StepState

PENDING, RUNNING = StepState.PENDING, StepState.RUNNING
OPEN = frozenset({PENDING, RUNNING})


@dataclass(frozen=True)
class Transition:
    name: str
    from_states: frozenset[StepState]
    to_states: frozenset[StepState]
    releases: bool  # whether it takes one off the join counters of the successors it releases

    def allows(self, current: StepState, to: StepState) -> bool:
        return current in self.from_states and to in self.to_states


SUBMIT = Transition("submit", frozenset({PENDING}), frozenset({RUNNING}), releases=False)
"""The job of the step's attempt was submitted (recorded by the submission's claim holder)."""

END = Transition("end", OPEN, frozenset({StepState.SUCCEEDED, StepState.FAILED}), releases=True)
"""The attempt ended: its job ended, its submission was refused or timed out, or its outcome is unknown."""

SKIP = Transition("skip", frozenset({PENDING}), frozenset({StepState.SKIPPED}), releases=True)
"""The step can no longer run: an upstream step did not succeed, or its runIf was not met."""

STOP = Transition("stop", OPEN, frozenset({StepState.FAILED, StepState.CANCELLED}), releases=False)
"""The run is being stopped (cancelled, or timed out): the step ends and releases nothing."""

RETRY = Transition("retry", OPEN, frozenset({PENDING}), releases=False)
"""The attempt ended in a way that is retried: the step's next attempt starts (excludes END of that attempt)."""

RERUN = Transition("rerun", frozenset({StepState.FAILED, StepState.CANCELLED, StepState.SKIPPED, PENDING}),
                   frozenset({PENDING}), releases=False)
"""An operator reran the ended run: the step's next attempt starts, join counter recounted."""


def ending(state: StepState) -> Transition:
    """The transition that ends steps in `state` outside their job's own end (`end_steps`)."""
    if state is StepState.SKIPPED:
        return SKIP
    if state in STOP.to_states:
        return STOP
    raise ValueError(f"steps are not ended as {state.value} by end_steps")
