"""StateStore: where runs and steps are kept, reached by role.

An adapter (`SqliteStateStore`, `FirestoreStateStore`) plays the four roles; the engine
reaches each through its role (`ports.store.steps.complete_step(...)`), so a handler's
code shows which part of the store it uses and each role's contract stays small.
"""

from __future__ import annotations

from typing import Protocol

from .claims import ClaimStore
from .runs import RunStore
from .slots import SlotStore
from .steps import StepStore


class StateStore(Protocol):
    @property
    def runs(self) -> RunStore: ...

    @property
    def steps(self) -> StepStore: ...

    @property
    def claims(self) -> ClaimStore: ...

    @property
    def slots(self) -> SlotStore: ...
