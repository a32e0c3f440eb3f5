"""A message on the start topic: a start request. A request about a run (`"action"`:
cancel, rerun, resume) is refused here, logged and acknowledged: it goes by the control route."""

import dataclasses
import logging
from typing import Any

from ..admission.run_requests import start_route_refusal
from ..admission.schedules import start_tick, tick_request
from ..admission.start_requests import checked_start, json_object
from ..bootstrap.cloud import CloudRuntime
from ..model.text import excerpt
from .events import published_at, pubsub_message

log = logging.getLogger("workflow.entrypoints")


def start_message(event: Any, rt: CloudRuntime) -> None:
    data, _, message_id = pubsub_message(event)
    body, _ = json_object(data)
    refusal = start_route_refusal(body) if body is not None else ""
    if refusal:  # never recorded as a run
        run_id = body.get("run_id") if body is not None else None
        shown = excerpt(run_id, 130) if isinstance(run_id, str) else "?"
        log.warning("refused message %s on the start topic (run %s): %s", message_id, shown, refusal)
        return
    checked = checked_start(data, f"start-{message_id}", rt.edge, {})
    # its publish time dates the run (`run.date`): the same run whichever delivery starts it
    checked = dataclasses.replace(checked, requested_at=published_at(event, rt.ports.clock()))
    start_tick(tick_request(checked, None, None), rt)  # a tick on the topic names its time (scheduled_time)
