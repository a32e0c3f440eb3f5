"""One of the engine's own messages, decoded and handed to the engine when due (a message
not yet due waits inline, or goes back to Pub/Sub, or is published afresh)."""

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ..bootstrap.cloud import CloudRuntime
from ..engine import Busy, handle, moved_on
from ..errors import PoisonMessage, TransientError
from ..model import codec
from ..model.messages import DispatchStep
from ..model.text import excerpt
from .events import published_at, pubsub_message

log = logging.getLogger("workflow.entrypoints")

REPUBLISH_AFTER = 60.0
"""Seconds a message not yet due bounces (4 deliveries, fewer than the 5 a dead-letter
policy allows at least) before it is published again, still due when it was."""


BUSY_PAUSES = (0.25, 0.5, 1.0, 2.0)
"""Pauses before a message whose side effect another delivery is doing (Busy) is handled
again, within the inline wait: a duplicate then finds that work done and is acknowledged,
instead of spending the redeliveries that end in the dead-letter topic."""


class NotYet(TransientError):
    """A delayed message arrived early: hand it back so Pub/Sub redelivers it later."""


def engine_message(event: Any, rt: CloudRuntime, clock: Callable[[], float] = time.time,
                   sleep: Callable[[float], None] = time.sleep) -> None:
    data, attributes, message_id = pubsub_message(event)
    ids = {"run_id": attributes.get("run_id", ""), "step_id": attributes.get("step_id", "")}
    try:
        msg = codec.decode(data)
        due = _not_before(attributes.get("not_before"))
    except PoisonMessage as exc:
        log.error("dropped malformed message %s: %s", message_id, exc, extra=ids)
        return
    wait = due - clock()
    if wait > rt.edge.max_inline_wait and isinstance(msg, DispatchStep) and moved_on(msg, rt.ports):
        log.info("acknowledged message %s before it is due: its step moved on", message_id, extra=ids)
        return  # rather than bounced until due, or into the dead-letter topic
    if wait > rt.edge.max_inline_wait:
        if clock() - published_at(event, clock()) > REPUBLISH_AFTER:
            # before its redeliveries run out (dead letter), publish it afresh, still due at `due`
            rt.ports.bus.publish([msg], delay=wait)
            return
        raise NotYet(f"message {message_id} is due in {wait:.1f} s")
    if wait > 0:
        sleep(wait)
    budget = rt.edge.max_inline_wait - max(wait, 0.0)
    for pause in (*BUSY_PAUSES, math.inf):
        try:
            handle(msg, rt.ports)
            return
        except PoisonMessage as exc:
            log.error("dropped message %s: %s", message_id, exc, extra=ids)
            return
        except Busy:
            if pause > budget:
                raise  # redelivered later by Pub/Sub
            budget -= pause
            sleep(pause)


def _not_before(raw: str | None) -> float:
    """The `not_before` attribute in Unix seconds (0 when absent); PoisonMessage if malformed."""
    try:
        value = float(raw or 0)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise PoisonMessage(f"attribute not_before={excerpt(str(raw), 40)!r} is not a Unix time")
    return value
