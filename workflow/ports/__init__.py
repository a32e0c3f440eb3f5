"""The roles the engine's handlers talk to, one module each. Adapters implement them
(SQLite, Firestore, Pub/Sub, HTTP, ...).

Each method states what it guarantees; the shapes follow what Firestore does cheaply:
single-document create-if-absent, atomic batched writes with server-side increments,
and no read-modify-write transaction on a document many handlers touch at once.
"""

from .bus import Bus, Events
from .claims import ClaimStore
from .pages import RunPages
from .runs import RunStore
from .slots import SlotStore
from .steps import StepStore
from .store import StateStore
from .task_runner import TaskRunner

__all__ = ["Bus", "ClaimStore", "Events", "RunPages", "RunStore", "SlotStore", "StateStore", "StepStore", "TaskRunner"]
