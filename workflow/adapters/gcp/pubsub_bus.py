"""Bus on Pub/Sub: one topic for the engine's messages, in the form docs/cloud-runtime.md (Messages) gives.
`publish` returns only when Pub/Sub has accepted every message."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from google.api_core import exceptions as gexc

from ...errors import TransientError
from ...model import codec
from ...model.messages import Message

PUBLISH_TIMEOUT = 60.0


class PubSubBus:
    def __init__(
        self,
        project: str,
        topic: str,
        publisher: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._project = project
        self._topic = topic
        self._make_publisher = publisher or _default_publisher
        self._publisher: Any = None
        self._lock = threading.Lock()
        self._clock = clock
        self.published = 0

    def publish(self, messages: Sequence[Message], delay: float = 0.0) -> None:
        self.begin_publish(messages, delay)()

    def begin_publish(self, messages: Sequence[Message], delay: float = 0.0) -> Callable[[], None]:
        extra = {"not_before": f"{self._clock() + delay:.3f}"} if delay > 0 else {}
        return self._begin([(codec.encode(m), {**attributes(m), **extra}) for m in messages])

    def publish_raw(self, data: bytes, attributes: dict[str, str]) -> None:
        """Publish one message as given, confirmed as `publish` is."""
        self._begin([(data, attributes)])()

    def _begin(self, items: list[tuple[bytes, dict[str, str]]]) -> Callable[[], None]:
        client = self._client()
        path = client.topic_path(self._project, self._topic)
        with self._failures():
            futures = [client.publish(path, data, **attrs) for data, attrs in items]

        def confirmed() -> None:
            with self._failures():
                for f in futures:
                    f.result(timeout=PUBLISH_TIMEOUT)
            with self._lock:
                self.published += len(items)

        return confirmed

    @contextmanager
    def _failures(self) -> Iterator[None]:
        try:
            yield
        except (gexc.GoogleAPICallError, gexc.RetryError, TimeoutError) as exc:
            raise TransientError(f"Pub/Sub publish to {self._topic} failed: {exc}") from exc

    def _client(self) -> Any:
        with self._lock:
            if self._publisher is None:
                self._publisher = self._make_publisher()
            return self._publisher


def attributes(msg: Message) -> dict[str, str]:
    """Routing and log attributes: never any content of the message."""
    return {"type": type(msg).__name__, "run_id": getattr(msg, "run_id", ""), "step_id": getattr(msg, "step_id", "")}


def _default_publisher() -> Any:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]

    # Every publish is awaited at once, so waiting 10 ms (the default) to fill a batch
    # would only add latency to each hop of a run.
    return pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.001))
