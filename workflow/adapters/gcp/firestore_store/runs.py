"""RunStore on Firestore: `runs/{run}` (the run; its counts by state, once it ended) and
`runs/{run}/counters/{k}` (while it runs, its open steps and counts by state, in shards
read and summed here: one read per shard, `layout.SHARDS` at most)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from google.cloud import firestore

from ....model.records import RunRecord, StepRecord
from ....model.states import RunStatus
from ....model.stored import next_attempt_fields
from .counters import FirestoreCounters
from .documents import translated
from .layout import (
    BATCH,
    ENDED_FIELD,
    _batches,
    check_sizes,
    counter_doc,
    folded,
    is_wide,
    run_doc,
    run_of,
    shard_counts,
    shard_of,
    sized_step_docs,
)


class FirestoreRuns(FirestoreCounters):
    def create_run(self, run: RunRecord, steps: Sequence[StepRecord]) -> bool:
        """As RunStore.create_run; DagInvalid, before any write, naming each step too large to store."""
        sized = sized_step_docs(self._root, steps)
        check_sizes(run.run_id, sized)
        if self._get(self._run_ref(run.run_id)).exists:
            return False
        for chunk in _batches(sized):  # steps and counters first: the run document commits
            self._create_all([(self._step_ref(s.run_id, s.step_id), doc) for s, doc, _ in chunk])
        counters = list(self._counter_docs(run, steps))
        for start in range(0, len(counters), BATCH):
            self._create_all(counters[start:start + BATCH])
        return self._once(self._creating(self._run_ref(run.run_id), run_doc(run))) is not None

    def _counter_docs(self, run: RunRecord, steps: Sequence[StepRecord]) -> Iterator[tuple[Any, dict[str, Any]]]:
        """The run's counter shards, and the join shards of its wide steps (none left empty)."""
        for shard, n in shard_counts(s.step_id for s in steps).items():
            yield self._counter_ref(run.run_id, shard), counter_doc(n, run.created_at)
        for s in steps:
            if is_wide(s):
                for shard, n in shard_counts(s.depends_on).items():
                    yield self._join_ref(run.run_id, s.step_id, shard), {"waiting": n}

    def _create_all(self, docs: list[tuple[Any, dict[str, Any]]]) -> None:
        """Create every document that does not exist yet; never overwrite one."""
        batch = self._db.batch()
        for ref, doc in docs:
            batch.create(ref, doc)
        if self._once(batch) is None:  # a crashed earlier attempt wrote some: go one by one
            for ref, doc in docs:
                self._once(self._creating(ref, doc))

    def get_run(self, run_id: str) -> RunRecord | None:
        snap = self._get(self._run_ref(run_id))
        return self._record(snap) if snap.exists else None

    def _record(self, snap: Any) -> RunRecord:
        """A run as stored; a running one with its counter shards summed in (two reads)."""
        doc = snap.to_dict() or {}
        if doc.get("status") == RunStatus.RUNNING.value:
            doc = folded(doc, self._counters(snap.id))
        return run_of(snap.id, doc)

    def list_runs(self, limit: int, status: RunStatus | None = None) -> list[RunRecord]:
        query: Any = self._db.collection(self._root)
        if status is not None:
            query = query.where(filter=firestore.FieldFilter("status", "==", status.value))
        query = query.order_by("created_at", direction=firestore.Query.DESCENDING).limit(limit)
        return [self._record(s) for s in self._query(query)]

    def stale_runs(self, before: float, limit: int) -> list[RunRecord]:
        """Step ends move their counter shard's `updated_at`, not the run's: a run the query
        finds has its shards read, and one they show moving since `before` is left out, its
        `updated_at` moved forward (a write per run per sweep at most)."""
        query = (self._db.collection(self._root)
                 .where(filter=firestore.FieldFilter("status", "==", RunStatus.RUNNING.value))
                 .where(filter=firestore.FieldFilter("updated_at", "<", before))
                 .order_by("updated_at"))
        stale: list[RunRecord] = []
        with translated():
            for snap in query.stream():
                run = self._record(snap)
                if run.updated_at >= before:
                    snap.reference.update({"updated_at": run.updated_at})
                    continue
                stale.append(run)
                if len(stale) == limit:
                    break
        return sorted(stale, key=lambda r: r.updated_at)

    def running_of_schedule(self, schedule: str, limit: int) -> list[RunRecord]:
        """Two equality filters: Firestore merges its single-field indexes for them (no
        composite index); sorted here, not by the query, which would need one."""
        query = (self._db.collection(self._root)
                 .where(filter=firestore.FieldFilter("status", "==", RunStatus.RUNNING.value))
                 .where(filter=firestore.FieldFilter("inputs.schedule", "==", schedule)).limit(limit))
        return sorted((self._record(s) for s in self._query(query)), key=lambda r: r.created_at)

    def finish_run(self, run_id: str, status: RunStatus, at: float) -> bool:
        snap = self._get(self._run_ref(run_id))
        if not snap.exists or snap.get("status") != RunStatus.RUNNING.value:
            return False
        doc = snap.to_dict() or {}
        reruns = len(doc.get("reruns") or [])
        marker = "finish" if reruns == 0 else f"finish#{reruns}"
        batch = self._creating(self._claim_ref(run_id, marker), {"settled": True, "claimed_at": at})
        counts = folded(doc, self._counters(run_id))  # kept on the run from now: listing it reads one document
        batch.update(self._run_ref(run_id), {"status": status.value, "finished_at": at,
                                             **{field: counts[field] for field in ENDED_FIELD.values()}})
        return self._once(batch) is not None

    def rerun_steps(self, run_id: str, reruns: int, steps: Sequence[StepRecord], at: float) -> bool:
        snap = self._get(self._run_ref(run_id))
        if not snap.exists or len((snap.to_dict() or {}).get("reruns") or []) != reruns:
            return False
        for start in range(0, len(steps), BATCH):  # steps first, set to fixed values: safe to repeat
            batch = self._db.batch()
            for s in steps[start:start + BATCH]:
                batch.update(self._step_ref(run_id, s.step_id), {**next_attempt_fields(s), "queued_at": None})
            self._commit(batch)
        again = {s.step_id for s in steps}
        for s in steps:  # a wide join counts again the dependencies that run again, and is released anew
            if is_wide(s):
                self._reset_join(run_id, s, again)
        for slot, holder in self._held_slots(run_id).items():  # held by an attempt that never ended well
            if holder.rsplit("#", 1)[0] in again:
                self._delete(self._slot_ref(run_id, slot))
        batch = self._creating(self._claim_ref(run_id, f"rerun#{reruns + 1}"), {"settled": True, "claimed_at": at})
        batch.update(self._run_ref(run_id), {  # its counts live in its counter shards again, until it ends
            "status": RunStatus.RUNNING.value, "finished_at": None, "reruns": firestore.ArrayUnion([at]),
            "updated_at": at, **dict.fromkeys(ENDED_FIELD.values(), firestore.DELETE_FIELD)})
        moved: dict[str, Counter[str]] = {}
        for s in steps:
            moved.setdefault(shard_of(s.step_id), Counter())[ENDED_FIELD[s.history[-1].state]] += 1
        for shard, fields in moved.items():
            batch.update(self._counter_ref(run_id, shard), {
                "open": firestore.Increment(fields.total()), "updated_at": at,
                **{field: firestore.Increment(-n) for field, n in fields.items()}})
        return self._once(batch) is not None

    def _reset_join(self, run_id: str, step: StepRecord, again: set[str]) -> None:
        """Set the shards of a wide step's join to its dependencies that run again (those not
        rerun succeeded: every other ended step is rerun), and forget who released it.
        Fixed values: safe to repeat."""
        waiting = shard_counts(d for d in step.depends_on if d in again)
        batch = self._db.batch()
        for shard in shard_counts(step.depends_on):
            batch.update(self._join_ref(run_id, step.step_id, shard), {"waiting": waiting.get(shard, 0)})
        batch.delete(self._joined_ref(run_id, step.step_id))
        self._commit(batch)
