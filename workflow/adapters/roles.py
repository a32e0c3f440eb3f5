"""What lets one state store adapter play every role of the StateStore port."""

from __future__ import annotations

from typing import Self


class EveryRole:
    """An adapter that is its own RunStore, StepStore, ClaimStore and SlotStore."""

    @property
    def runs(self) -> Self:
        return self

    @property
    def steps(self) -> Self:
        return self

    @property
    def claims(self) -> Self:
        return self

    @property
    def slots(self) -> Self:
        return self
