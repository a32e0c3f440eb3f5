"""Wire Pub/Sub topics to functions on the Pub/Sub emulator, the way an Eventarc trigger does.

An Eventarc Pub/Sub trigger is a push subscription on the topic whose endpoint is the
function; the function receives a `google.cloud.pubsub.topic.v1.messagePublished`
CloudEvent. Locally the emulator pushes the standard wrapped JSON body
(`{"message": {...}, "subscription": ...}`) and functions-framework converts it into that
CloudEvent. functions-framework takes the event's `source` from the request path, so the
push endpoint is `FUNCTION_URL/projects/P/topics/T`: the function then sees
`source = //pubsub.googleapis.com/projects/P/topics/T` as in production.

Guarantees: every `ensure_*` call is idempotent (an existing resource is kept; an existing
push subscription whose endpoint differs is re-pointed). Nothing reads or sets process-wide
environment: the emulator's `HOST:PORT` is passed in (default: PUBSUB_EMULATOR_HOST).
"""

from __future__ import annotations

import datetime
import logging
import os
import re
from dataclasses import dataclass
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.api_core import exceptions as gexc
from google.pubsub_v1 import PublisherClient as TopicAdmin
from google.pubsub_v1 import SubscriberClient as SubscriptionAdmin
from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport
from google.pubsub_v1.types import (
    DeadLetterPolicy,
    PushConfig,
    RetryPolicy,
    Subscription,
    Topic,
)

LOG = logging.getLogger(__name__)

EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"
DEFAULT_ACK_DEADLINE_SECONDS = 10
DEFAULT_MAX_DELIVERY_ATTEMPTS = 5
_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$")


@dataclass(frozen=True)
class PushTrigger:
    """What `wire_push_trigger` created: full resource paths and the push endpoint."""

    topic: str
    subscription: str
    push_endpoint: str
    dead_letter_topic: str | None = None
    dead_letter_subscription: str | None = None


def emulator_host(host: str | None = None) -> str:
    """`host`, else PUBSUB_EMULATOR_HOST; refuses to fall through to the real service."""
    value = host or os.environ.get(EMULATOR_ENV)
    if not value:
        raise ValueError(f"no Pub/Sub emulator given and {EMULATOR_ENV} is not set")
    return value


def check_id(resource_id: str) -> str:
    """A topic or subscription id as Pub/Sub accepts it: 3 to 255 characters, a letter first."""
    if not _ID_RE.match(resource_id) or resource_id.lower().startswith("goog"):
        raise ValueError(
            f"invalid Pub/Sub id {resource_id!r}: 3-255 characters of [A-Za-z0-9-_.~+%],"
            " starting with a letter, not with 'goog'"
        )
    return resource_id


def topic_path(project: str, topic_id: str) -> str:
    """`projects/P/topics/T`."""
    return f"projects/{project}/topics/{check_id(topic_id)}"


def subscription_path(project: str, subscription_id: str) -> str:
    """`projects/P/subscriptions/S`."""
    return f"projects/{project}/subscriptions/{check_id(subscription_id)}"


def topic_admin(host: str | None = None) -> TopicAdmin:
    """A Publisher API client talking plain gRPC to the emulator."""
    channel = grpc.insecure_channel(emulator_host(host))
    return TopicAdmin(transport=PublisherGrpcTransport(channel=channel))


def subscription_admin(host: str | None = None) -> SubscriptionAdmin:
    """A Subscriber API client talking plain gRPC to the emulator."""
    channel = grpc.insecure_channel(emulator_host(host))
    return SubscriptionAdmin(transport=SubscriberGrpcTransport(channel=channel))


def publisher(host: str | None = None, **options: Any) -> Any:
    """The batching `google.cloud.pubsub_v1.PublisherClient` against the emulator."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined, unused-ignore]

    channel = grpc.insecure_channel(emulator_host(host))
    return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel), **options)


def eventarc_push_endpoint(function_url: str, project: str, topic_id: str) -> str:
    """The push endpoint for a function: its URL plus the topic path (see module doc)."""
    return f"{function_url.rstrip('/')}/{topic_path(project, topic_id)}"


def ensure_topic(admin: TopicAdmin, project: str, topic_id: str) -> str:
    """Create the topic unless it exists; return its path."""
    path = topic_path(project, topic_id)
    try:
        admin.create_topic(request=Topic(name=path))
        LOG.info("created topic %s", path)
    except gexc.AlreadyExists:
        LOG.debug("topic %s exists", path)
    return path


def ensure_pull_subscription(admin: SubscriptionAdmin, project: str, subscription_id: str, topic_id: str) -> str:
    """Create a pull subscription unless it exists; return its path."""
    path = subscription_path(project, subscription_id)
    try:
        admin.create_subscription(request=Subscription(name=path, topic=topic_path(project, topic_id)))
        LOG.info("created pull subscription %s", path)
    except gexc.AlreadyExists:
        LOG.debug("subscription %s exists", path)
    return path


def ensure_push_subscription(
    admin: SubscriptionAdmin,
    project: str,
    subscription_id: str,
    topic_id: str,
    push_endpoint: str,
    *,
    ack_deadline_seconds: int = DEFAULT_ACK_DEADLINE_SECONDS,
    dead_letter_topic: str | None = None,
    max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS,
    retry_backoff: tuple[float, float] | None = None,
) -> str:
    """Create a push subscription unless it exists; re-point an existing one if needed.

    `dead_letter_topic` is a full topic path; `retry_backoff` is (minimum, maximum) seconds
    of the subscription's exponential redelivery backoff (Eventarc uses (10, 600)).
    """
    path = subscription_path(project, subscription_id)
    request = Subscription(
        name=path,
        topic=topic_path(project, topic_id),
        push_config=PushConfig(push_endpoint=push_endpoint),
        ack_deadline_seconds=ack_deadline_seconds,
    )
    if dead_letter_topic is not None:
        request.dead_letter_policy = DeadLetterPolicy(
            dead_letter_topic=dead_letter_topic, max_delivery_attempts=max_delivery_attempts
        )
    if retry_backoff is not None:
        request.retry_policy = _retry_policy(*retry_backoff)
    try:
        admin.create_subscription(request=request)
        LOG.info("created push subscription %s -> %s", path, push_endpoint)
    except gexc.AlreadyExists:
        _repoint(admin, path, push_endpoint)
    return path


def _retry_policy(minimum: float, maximum: float) -> RetryPolicy:
    return RetryPolicy(
        minimum_backoff=datetime.timedelta(seconds=minimum),
        maximum_backoff=datetime.timedelta(seconds=maximum),
    )


def _repoint(admin: SubscriptionAdmin, path: str, push_endpoint: str) -> None:
    current = admin.get_subscription(subscription=path)
    if current.push_config.push_endpoint == push_endpoint:
        LOG.debug("push subscription %s exists", path)
        return
    admin.modify_push_config(subscription=path, push_config=PushConfig(push_endpoint=push_endpoint))
    LOG.info("re-pointed push subscription %s -> %s", path, push_endpoint)


def wire_push_trigger(
    project: str,
    topic_id: str,
    function_url: str,
    *,
    host: str | None = None,
    subscription_id: str | None = None,
    dead_letter_topic_id: str | None = None,
    max_delivery_attempts: int = DEFAULT_MAX_DELIVERY_ATTEMPTS,
    ack_deadline_seconds: int = DEFAULT_ACK_DEADLINE_SECONDS,
    retry_backoff: tuple[float, float] | None = None,
) -> PushTrigger:
    """Create what an Eventarc Pub/Sub trigger on `topic_id` to `function_url` amounts to.

    The topic, a push subscription to the function (id default `{topic_id}-push`) and,
    with `dead_letter_topic_id`, a dead-letter topic with a pull subscription
    `{dead_letter_topic_id}-sub` that keeps what lands there. Idempotent; an existing
    subscription keeps its dead-letter and retry settings (only its endpoint is updated).
    """
    with topic_admin(host) as topics, subscription_admin(host) as subscriptions:
        topic = ensure_topic(topics, project, topic_id)
        dead_topic = dead_sub = None
        if dead_letter_topic_id is not None:
            dead_topic = ensure_topic(topics, project, dead_letter_topic_id)
            dead_sub = ensure_pull_subscription(
                subscriptions, project, f"{dead_letter_topic_id}-sub", dead_letter_topic_id
            )
        endpoint = eventarc_push_endpoint(function_url, project, topic_id)
        subscription = ensure_push_subscription(
            subscriptions,
            project,
            subscription_id or f"{topic_id}-push",
            topic_id,
            endpoint,
            ack_deadline_seconds=ack_deadline_seconds,
            dead_letter_topic=dead_topic,
            max_delivery_attempts=max_delivery_attempts,
            retry_backoff=retry_backoff,
        )
    return PushTrigger(topic, subscription, endpoint, dead_topic, dead_sub)
