"""Bus in one process: a worker pool over a time-ordered queue.

Handlers take turns on the CPU (one at a time, as on an event loop: more would only
contend for the GIL and the store's lock); a handler waiting on the network inside
`waiting()` lets another one run, so Task Runner calls overlap.

Delivery is at least once: a handler that raises TransientError (or any unexpected
error) gets its message again after a capped exponential backoff; after
`max_attempts` the message is dead-lettered (kept in `dead_letters` and logged).
PoisonMessage is logged and dropped at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from ...errors import PoisonMessage, TransientError
from ...model.messages import Message

log = logging.getLogger("workflow.bus")
Handler = Callable[[Message], None]


@dataclass(order=True)
class _Item:
    due: float
    seq: int
    msg: Message = field(compare=False)
    attempt: int = field(compare=False, default=1)


class InProcessBus:
    def __init__(
        self,
        workers: int = 8,
        max_attempts: int = 8,
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._workers = workers
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._clock = clock
        self._queue: list[_Item] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._busy = 0
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._handler: Handler | None = None
        self._local = _WorkerFlag()
        self._cpu = threading.Lock()
        self.published = 0
        self.dead_letters: list[tuple[Message, str]] = []

    def start(self, handler: Handler) -> InProcessBus:
        """Deliver every message to `handler` from `workers` threads until close()."""
        self._handler = handler
        for i in range(self._workers):
            t = threading.Thread(target=self._work, name=f"bus-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def publish(self, messages: Sequence[Message], delay: float = 0.0) -> None:
        due = self._clock() + max(delay, 0.0)
        with self._cv:
            for msg in messages:
                heapq.heappush(self._queue, _Item(due, next(self._seq), msg))
                self.published += 1
            # A worker publishing from its handler takes the next message itself when the
            # handler returns, or wakes a worker when it starts waiting on the network
            # (see `waiting`): handlers take turns, so waking one now would only add a hand-off.
            if not self._local.worker:
                self._cv.notify(len(messages))

    def begin_publish(self, messages: Sequence[Message], delay: float = 0.0) -> Callable[[], None]:
        """Queued at once: nothing is left to confirm."""
        self.publish(messages, delay)
        return _confirmed

    def idle(self) -> bool:
        """No message queued or being handled."""
        with self._cv:
            return not self._queue and self._busy == 0

    def quiet(self) -> bool:
        """No message being handled or due now; only later ones (a delayed check, a retry, a
        run's timeout) may be queued."""
        with self._cv:
            return self._busy == 0 and not (self._queue and self._queue[0].due <= self._clock())

    def close(self) -> None:
        """Stop the workers; queued messages are dropped."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=5)

    def _work(self) -> None:
        self._local.worker = True
        while True:
            item = self._next()
            if item is None:
                return
            try:
                self._deliver(item)
            finally:
                with self._cv:
                    self._busy -= 1

    def _next(self) -> _Item | None:
        with self._cv:
            while not self._closed:
                now = self._clock()
                if self._queue and self._queue[0].due <= now:
                    self._busy += 1
                    return heapq.heappop(self._queue)
                wait = self._queue[0].due - now if self._queue else None
                self._cv.wait(wait)
            return None

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a network wait inside a handler: other handlers may run meanwhile."""
        if not self._local.worker:
            yield
            return
        with self._cv:
            if self._queue:
                self._cv.notify()
        self._cpu.release()
        try:
            yield
        finally:
            self._cpu.acquire()

    def _deliver(self, item: _Item) -> None:
        assert self._handler is not None
        try:
            with self._cpu:
                self._handler(item.msg)
        except PoisonMessage as exc:
            log.error("dropped malformed message %r: %s", item.msg, exc, extra=_ids(item.msg))
        except TransientError as exc:
            self._retry(item, str(exc))
        except Exception as exc:
            log.exception("handler failed on %r", item.msg, extra=_ids(item.msg))
            self._retry(item, f"{type(exc).__name__}: {exc}")

    def _retry(self, item: _Item, reason: str) -> None:
        if item.attempt >= self._max_attempts:
            log.error("dead-lettered after %d attempts: %s", item.attempt, reason,
                      extra=_ids(item.msg))
            self.dead_letters.append((item.msg, reason))
            return
        pause = min(self._backoff * 2 ** (item.attempt - 1), self._max_backoff)
        with self._cv:
            heapq.heappush(
                self._queue,
                _Item(self._clock() + pause, next(self._seq), item.msg, item.attempt + 1),
            )
            self._cv.notify()


class _WorkerFlag(threading.local):
    worker = False


def _ids(msg: Message) -> dict[str, str]:
    return {"run_id": getattr(msg, "run_id", ""), "step_id": getattr(msg, "step_id", "")}


def _confirmed() -> None:
    """What `begin_publish` returns: the messages were queued before it returned."""
