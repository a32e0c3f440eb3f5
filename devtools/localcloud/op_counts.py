"""Firestore document reads and writes, counted as Firestore bills them, for the benchmark.

`counting()` patches the google-cloud-firestore classes the state store uses for the
length of a block; `install()` for the rest of the process. Counted:

- reads: one per `DocumentReference.get`, one per reference given to `Client.get_all`,
  and for a query (`Query.stream`, which a collection's `stream` also goes through) one
  per document it yields, at least 1; one per aggregation query (`AggregationQuery.get`,
  billed a read per 1,000 index entries);
- writes: one per document in a `WriteBatch.commit` (`create`, `set` and `update` of a
  document go through one too) and one per `DocumentReference.delete`, counted by
  document path in `doc_writes`, whether the write then succeeds or not.

`doc_writes` grows with every document written: nothing shipped counts anything.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from google.cloud.firestore_v1.aggregation import AggregationQuery
from google.cloud.firestore_v1.batch import WriteBatch
from google.cloud.firestore_v1.client import Client
from google.cloud.firestore_v1.document import DocumentReference
from google.cloud.firestore_v1.query import Query


class OpCounts:
    """Reads, writes and writes by document path so far; safe to update from any thread."""

    def __init__(self) -> None:
        self.reads = 0
        self.writes = 0
        self.doc_writes: Counter[str] = Counter()
        self._lock = threading.Lock()

    def read(self, documents: int) -> None:
        with self._lock:
            self.reads += documents

    def wrote(self, paths: list[str]) -> None:
        with self._lock:
            self.writes += len(paths)
            self.doc_writes.update(paths)

    def as_dict(self) -> dict[str, Any]:
        """`reads`, `writes` and `doc_writes`, taken together."""
        with self._lock:
            return {"reads": self.reads, "writes": self.writes, "doc_writes": dict(self.doc_writes)}


@contextmanager
def counting() -> Iterator[OpCounts]:
    """Count every Firestore operation of this process while the block runs."""
    counts = OpCounts()
    with ExitStack() as patched:
        for patcher in _patchers(counts):
            patched.enter_context(patcher)
        yield counts


def install() -> OpCounts:
    """Count every Firestore operation of this process from now on."""
    counts = OpCounts()
    for patcher in _patchers(counts):
        patcher.start()
    return counts


def _patchers(counts: OpCounts) -> list[Any]:
    get, get_all, stream, aggregate = DocumentReference.get, Client.get_all, Query.stream, AggregationQuery.get
    commit, delete = WriteBatch.commit, DocumentReference.delete

    def counted_get(ref: DocumentReference, *args: Any, **kwargs: Any) -> Any:
        counts.read(1)
        return get(ref, *args, **kwargs)

    def counted_get_all(client: Client, references: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        references = list(references)
        counts.read(len(references))
        return get_all(client, references, *args, **kwargs)

    def counted_stream(query: Query, *args: Any, **kwargs: Any) -> Iterator[Any]:
        counts.read(1)  # a query costs a read even when it finds nothing
        return _past_the_first(stream(query, *args, **kwargs), lambda: counts.read(1))

    def counted_aggregate(query: AggregationQuery, *args: Any, **kwargs: Any) -> Any:
        counts.read(1)  # billed one read per 1,000 index entries it reads: the runs' counters are fewer
        return aggregate(query, *args, **kwargs)

    def counted_commit(batch: WriteBatch, *args: Any, **kwargs: Any) -> Any:
        counts.wrote([_path(write) for write in batch._write_pbs])
        return commit(batch, *args, **kwargs)

    def counted_delete(ref: DocumentReference, *args: Any, **kwargs: Any) -> Any:
        counts.wrote([ref.path])
        return delete(ref, *args, **kwargs)

    return [
        mock.patch.object(DocumentReference, "get", counted_get),
        mock.patch.object(Client, "get_all", counted_get_all),
        mock.patch.object(Query, "stream", counted_stream),
        mock.patch.object(AggregationQuery, "get", counted_aggregate),
        mock.patch.object(WriteBatch, "commit", counted_commit),
        mock.patch.object(DocumentReference, "delete", counted_delete),
    ]


def _past_the_first(items: Iterable[Any], each: Callable[[], None]) -> Iterator[Any]:
    """`items`, calling `each` for every item after the first."""
    for n, item in enumerate(items):
        if n:
            each()
        yield item


def _path(write: Any) -> str:
    """The path of the document a batch's write protobuf changes, below `.../documents/`."""
    name = write.update.name if write._pb.WhichOneof("operation") == "update" else write.delete
    return str(name).split("/documents/", 1)[-1]
