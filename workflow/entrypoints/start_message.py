"""A message on the start topic: a start request, or a request (`"action"`) about a run."""

from typing import Any

from ..admission.run_requests import run_request
from ..admission.schedules import start_tick, tick_request
from ..admission.start_requests import checked_start, json_object
from ..bootstrap.cloud import CloudRuntime
from .events import pubsub_message


def start_message(event: Any, rt: CloudRuntime) -> None:
    data, _, message_id = pubsub_message(event)
    body, _ = json_object(data)
    if body is not None and body.get("action", "start") != "start":
        run_request(body, rt)
        return
    checked = checked_start(data, f"start-{message_id}", rt.edge, {})
    start_tick(tick_request(checked, None, None), rt)  # a tick on the topic names its time (scheduled_time)
