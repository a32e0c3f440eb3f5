"""SlotStore: a run's `maxParallel` slots (jobs in flight) and the steps waiting for one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class SlotStore(Protocol):
    def take_slot(self, run_id: str, step_id: str, attempt: int, limit: int, now: float) -> bool:
        """Give the step's attempt one of the run's `limit` slots, or True at once if it
        holds one. When all are held, record the step as waiting (from `now`) before
        looking a last time, and return False: the release of any slot held then wakes a
        waiting step (`free_slot`), so no wake-up is lost."""

    def queue_steps(self, run_id: str, step_ids: Sequence[str], now: float) -> None:
        """Record PENDING steps that hold no slot as waiting for one (from `now`, unless
        they wait already), without trying for a slot: for a wide fan-out under a limit,
        whose first steps are dispatched after this returns."""

    def free_slot(self, run_id: str, step_id: str, attempt: int) -> str | None:
        """Release the slot the step's attempt holds (if any), then take the step that has
        waited longest off the waiting list and return its id, for the caller to dispatch.
        A repeated call returns the step the first one woke, so a caller that crashed
        before dispatching it is repaired by its redelivery."""
