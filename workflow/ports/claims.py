"""ClaimStore: the right to perform a side effect once (a job submission, a publish)."""

from __future__ import annotations

from typing import Protocol

from ..model.records import Claim, StepRecord


class ClaimStore(Protocol):
    def claim(self, run_id: str, key: str, now: float, lease: float) -> Claim:
        """Ask for the right to perform the side effect named `key` once: WON for the first
        caller, and for a caller arriving more than `lease` seconds after an unsettled claim
        (its holder is presumed dead); DONE once settled; BUSY while another caller holds an
        unexpired claim."""

    def settle(self, run_id: str, key: str) -> None:
        """Mark the claimed side effect as done. Idempotent."""

    def claim_reading(self, run_id: str, key: str, step_id: str, now: float) -> tuple[Claim, StepRecord | None]:
        """`claim(key)` with no lease (never taken over) and `get_step(step_id)`, which a
        store may run at the same time: a dispatch that knows its attempt need not wait
        for the read to claim. If the read fails, a claim won by this call is given back."""

    def release(self, run_id: str, key: str) -> None:
        """Give back a claim its caller won and did not use (its side effect was not
        performed), so that a later caller can win it."""

    def held_since(self, run_id: str, key: str) -> float | None:
        """When the unsettled claim `key` was taken; None if never claimed or settled. Reads only."""
