"""The engine: stateless handlers, one module per phase of a run.

`start` records a run and dispatches its roots; `submit` submits a step's job once;
`poll` follows a job to its end; `finish` records a step's end, dispatches what it
unblocked and ends the run; `retry` schedules a step's next attempt; `skip` skips what a
failure dooms (and runIf); `cancel`, `rerun` and `recover` (reconcile, resume, sweep) act
on a run; `timeout` ends a run past its deadline; `router` maps messages to handlers.

Every handler is safe when its message arrives twice or out of order: state changes go
through the store's idempotent transitions, and the one non-idempotent side effect (a job
submission) happens only under a claim.
"""

from .context import Busy, Ports
from .finish import announce
from .router import handle
from .submit import moved_on

__all__ = ["Busy", "Ports", "announce", "handle", "moved_on"]
