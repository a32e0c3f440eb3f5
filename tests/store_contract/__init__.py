"""The StateStore contract, written once per role; each adapter's test module subclasses
`StoreContract` and provides a `store` fixture (SQLite in tests/unit, Firestore in tests/cloud)."""

from .builders import make_run, ok
from .claims import ClaimsContract
from .runs import RunsContract
from .slots import SlotsContract
from .steps import StepsContract


class StoreContract(RunsContract, StepsContract, ClaimsContract, SlotsContract):
    """Every role's contract, for an adapter that plays them all."""


__all__ = ["ClaimsContract", "RunsContract", "SlotsContract", "StepsContract", "StoreContract", "make_run", "ok"]
