"""Production Firestore sustains about one write per second on one document and aborts
writes past that (contention); the emulator never does. The stand-in here refuses, with
ABORTED, every write to a document written less than a second before. The engine takes
it as transient (its message is redelivered, here after a second, as Pub/Sub would after
its backoff), so a run whose writes are spread over many documents still ends, each job
submitted once."""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from google.api_core import exceptions as gexc
from google.cloud.firestore_v1.batch import WriteBatch
from google.cloud.firestore_v1.document import DocumentReference

from devtools.localcloud.op_counts import _path
from enginekit import ScriptedRunner, dag
from workflow.adapters.gcp.firestore_store import FirestoreStateStore
from workflow.bootstrap.embedded import embedded_ports
from workflow.engine import handle
from workflow.errors import TransientError
from workflow.model.messages import Message, StartRun
from workflow.model.states import RunStatus
from workflow.settings import Settings

pytestmark = pytest.mark.cloud

WINDOW = 1.0  # seconds during which a document written once refuses another write
REDELIVERY = 1.0  # seconds before a message that failed is delivered again
FAR = 60.0  # messages due later than this once nothing else is left are not waited for


@contextmanager
def contended(window: float = WINDOW) -> Iterator[Counter[str]]:
    """Refuse (ABORTED) a commit or delete touching a document written less than `window`
    seconds before; yields the refusals by document path."""
    last: dict[str, float] = {}
    refused: Counter[str] = Counter()
    lock = threading.Lock()
    commit, delete = WriteBatch.commit, DocumentReference.delete

    def written(paths: Sequence[str], write: Callable[[], Any]) -> Any:
        with lock:
            now = time.monotonic()
            hot = [p for p in paths if now - last.get(p, -math.inf) < window]
            if hot:
                refused.update(hot)
                raise gexc.Aborted(f"too much contention on these documents: {hot[0]}")
            before = {p: last.get(p, -math.inf) for p in paths}
            last.update(dict.fromkeys(paths, now))
        try:
            return write()
        except Exception:
            with lock:  # a write that failed (a create that found its document) took no turn
                last.update(before)
            raise

    def contended_commit(batch: WriteBatch, *args: Any, **kwargs: Any) -> Any:
        return written([_path(w) for w in batch._write_pbs], lambda: commit(batch, *args, **kwargs))

    def contended_delete(ref: DocumentReference, *args: Any, **kwargs: Any) -> Any:
        return written([ref.path], lambda: delete(ref, *args, **kwargs))

    with mock.patch.object(WriteBatch, "commit", contended_commit), \
            mock.patch.object(DocumentReference, "delete", contended_delete):
        yield refused


class RedeliveringBus:
    """Messages go out on worker threads once due; one whose handler raises a
    TransientError is delivered again REDELIVERY seconds later."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Message]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self.redelivered: Counter[str] = Counter()  # by message type and error

    def publish(self, messages: Sequence[Message], delay: float = 0.0) -> None:
        with self._lock:
            for msg in messages:
                heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), msg))

    def begin_publish(self, messages: Sequence[Message], delay: float = 0.0) -> Callable[[], None]:
        self.publish(messages, delay)
        return lambda: None

    def deliver(self, ports: Any, workers: int = 16, timeout: float = 300.0) -> None:
        """Deliver until nothing is due within FAR seconds and nothing is being handled."""
        deadline = time.monotonic() + timeout
        busy: set[Future[None]] = set()
        with ThreadPoolExecutor(workers) as pool:
            while time.monotonic() < deadline:
                busy = {f for f in busy if not f.done()}
                with self._lock:
                    now = time.monotonic()
                    due = []
                    while self._due and self._due[0][0] <= now:
                        due.append(heapq.heappop(self._due)[2])
                    idle = not busy and not due and (not self._due or self._due[0][0] > now + FAR)
                if idle:
                    return
                busy |= {pool.submit(self._handle, msg, ports) for msg in due}
                time.sleep(0.01)
        raise AssertionError(f"messages kept coming: {self.redelivered.most_common(5)}")

    def _handle(self, msg: Message, ports: Any) -> None:
        try:
            handle(msg, ports)
        except TransientError as exc:
            with self._lock:
                self.redelivered[f"{type(msg).__name__}: {type(exc).__name__} {str(exc)[:70]}"] += 1
            self.publish([msg], delay=REDELIVERY)


def test_a_wide_fan_in_ends_under_one_write_per_second_per_document(firestore_client: Any) -> None:
    width = 200
    store = FirestoreStateStore(firestore_client, root=f"runs-{uuid.uuid4().hex[:8]}")
    runner, bus = ScriptedRunner(), RedeliveringBus()
    ports = embedded_ports(Settings(poll_interval=0), runner, store, bus)
    spec = {"src": [], **{f"m{i}": ["src"] for i in range(width)}, "sink": [f"m{i}" for i in range(width)]}
    with contended() as refused:
        bus.publish([StartRun("r1", dag(spec), "http://runner")])
        bus.deliver(ports)
    run = store.get_run("r1")
    assert run is not None and run.status is RunStatus.SUCCEEDED and run.succeeded == width + 2
    assert sorted(runner.submitted) == sorted(spec)  # each job submitted once
    assert sum(refused.values()) > 0 and sum(bus.redelivered.values()) > 0  # the stand-in did refuse writes
    print(f"1 -> {width} -> 1 under one write per second per document: {sum(refused.values())} writes "
          f"refused, {bus.redelivered.total()} messages redelivered: {bus.redelivered.most_common(5)}; "
          f"most refused: {refused.most_common(3)}")
