"""StateStore on Firestore (native mode), free of hot-document transactions. One module
per role; what Firestore holds is in `layout.py`."""

from __future__ import annotations

from ...roles import EveryRole
from .claims import FirestoreClaims
from .layout import (
    BATCH,
    BATCH_BYTES,
    MAX_DOCUMENT_BYTES,
    STEP_GROWTH_BYTES,
    _batches,
    check_sizes,
    sized_step_docs,
)
from .runs import FirestoreRuns
from .steps import FirestoreSteps


class FirestoreStateStore(FirestoreRuns, FirestoreSteps, FirestoreClaims, EveryRole):
    """Plays every role of the StateStore port: runs, steps (with their slots) and claims."""


__all__ = ["BATCH", "BATCH_BYTES", "MAX_DOCUMENT_BYTES", "STEP_GROWTH_BYTES", "FirestoreStateStore", "_batches",
           "check_sizes", "sized_step_docs"]
