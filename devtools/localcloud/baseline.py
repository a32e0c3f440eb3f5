"""Throughput baseline: a Pub/Sub-triggered function that writes one Firestore document per message.

Deploy or serve `write_one` with `--signature-type cloudevent` behind a push subscription.
The document id is the Pub/Sub message id and the write is a `set`, so a redelivered
message rewrites the same document: the number of documents equals the number of distinct
messages handled. The collection is `BASELINE_COLLECTION` (default `baseline`).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import threading
from typing import Any

import functions_framework
from cloudevents.http import CloudEvent
from google.cloud import firestore

LOG = logging.getLogger(__name__)

COLLECTION_ENV = "BASELINE_COLLECTION"
DEFAULT_COLLECTION = "baseline"

_client: firestore.Client | None = None
_client_lock = threading.Lock()


def _firestore() -> firestore.Client:
    """The process's Firestore client, created on first use and then reused."""
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = firestore.Client()
    return _client


def _message(cloud_event: CloudEvent) -> dict[str, Any]:
    data = cloud_event.data
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise ValueError(f"event {cloud_event['id']} carries no Pub/Sub message")
    message: dict[str, Any] = data["message"]
    return message


def _text(message: dict[str, Any]) -> str:
    try:
        return base64.b64decode(message.get("data") or "").decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


@functions_framework.cloud_event
def write_one(cloud_event: CloudEvent) -> None:
    """Write `{collection}/{messageId}` with the decoded message; raising makes the push retry."""
    message = _message(cloud_event)
    message_id = str(message.get("messageId") or cloud_event["id"])
    collection = os.environ.get(COLLECTION_ENV, DEFAULT_COLLECTION)
    _firestore().collection(collection).document(message_id).set(
        {
            "data": _text(message),
            "attributes": dict(message.get("attributes") or {}),
            "publishTime": message.get("publishTime"),
            "ceId": cloud_event["id"],
            "ceSource": cloud_event["source"],
            "ceType": cloud_event["type"],
            "writtenAt": firestore.SERVER_TIMESTAMP,
        }
    )
    LOG.debug("wrote %s/%s", collection, message_id)
