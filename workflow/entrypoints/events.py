"""CloudEvent decoding shared by the functions: the type an entry point takes, the Pub/Sub
message envelope, and the run an event is about (for log lines)."""

import base64
import binascii
import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from ..admission.start_requests import json_object
from ..model import codec
from .upload import upload_run_id

log = logging.getLogger("workflow.entrypoints")

GCS_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
F = TypeVar("F", bound=Callable[..., Any])


def accepts(event_type: str) -> Callable[[F], F]:
    """Mark an entry point with the CloudEvent type it decodes (deploy checks read it)."""

    def mark(fn: F) -> F:
        @functools.wraps(fn)
        def checked(event: Any) -> None:
            if event["type"] != event_type:
                log.warning("ignored a %s event: %s takes %s", event["type"], fn.__name__, event_type)
                return
            fn(event)

        checked.event_type = event_type  # type: ignore[attr-defined]
        return checked  # type: ignore[return-value]

    return mark


def event_ids(event: Any) -> dict[str, str]:
    """The run (and step) an event is about, for log lines; empty when it cannot be told."""
    if event["type"] == GCS_FINALIZED:
        obj = event.data or {}
        return {"run_id": upload_run_id(str(obj.get("bucket", "")), str(obj.get("name", "")),
                                        str(obj.get("generation", "")))}
    data, attributes, message_id = pubsub_message(event)
    if attributes.get("run_id"):
        return {"run_id": attributes["run_id"], "step_id": attributes.get("step_id", "")}
    body, _ = json_object(data)
    given = (body or {}).get("run_id")
    return {"run_id": str(given) if codec.id_problem(given, "run_id") is None else f"start-{message_id}"}


def published_at(event: Any, default: float) -> float:
    """When Pub/Sub accepted a messagePublished event's message (its `publishTime`), in Unix
    seconds: the same on every delivery of it; `default` when it is missing or unreadable."""
    raw = str(((event.data or {}).get("message") or {}).get("publishTime") or "")
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return default


def pubsub_message(event: Any) -> tuple[bytes, dict[str, str], str]:
    """(data, attributes, message id) of a messagePublished CloudEvent."""
    message = (event.data or {}).get("message") or {}
    try:
        data = base64.b64decode(message.get("data") or "")
    except (ValueError, binascii.Error):
        data = b""
    return data, dict(message.get("attributes") or {}), str(message.get("messageId") or message.get("message_id") or "")
