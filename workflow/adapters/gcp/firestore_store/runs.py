"""RunStore on Firestore: `runs/{run}` (the run, its open-step count, its counts by state)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from google.cloud import firestore

from ....model.records import RunRecord, StepRecord
from ....model.states import RunStatus
from ....model.stored import next_attempt_fields
from .documents import FirestoreDocuments
from .layout import BATCH, ENDED_FIELD, _batches, check_sizes, run_doc, run_of, sized_step_docs


class FirestoreRuns(FirestoreDocuments):
    def create_run(self, run: RunRecord, steps: Sequence[StepRecord]) -> bool:
        """As RunStore.create_run; DagInvalid, before any write, naming each step too large to store."""
        sized = sized_step_docs(self._root, steps)
        check_sizes(run.run_id, sized)
        if self._get(self._run_ref(run.run_id)).exists:
            return False
        for chunk in _batches(sized):  # steps first: the run document commits
            self._create_all([(self._step_ref(s.run_id, s.step_id), doc) for s, doc, _ in chunk])
        doc = run_doc(run, open_steps=len(steps))
        return self._once(self._creating(self._run_ref(run.run_id), doc)) is not None

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
        return run_of(run_id, snap.to_dict()) if snap.exists else None

    def list_runs(self, limit: int, status: RunStatus | None = None) -> list[RunRecord]:
        query: Any = self._db.collection(self._root)
        if status is not None:
            query = query.where(filter=firestore.FieldFilter("status", "==", status.value))
        query = query.order_by("created_at", direction=firestore.Query.DESCENDING).limit(limit)
        return [run_of(s.id, s.to_dict() or {}) for s in self._query(query)]

    def stale_runs(self, before: float, limit: int) -> list[RunRecord]:
        query = (self._db.collection(self._root)
                 .where(filter=firestore.FieldFilter("status", "==", RunStatus.RUNNING.value))
                 .where(filter=firestore.FieldFilter("updated_at", "<", before))
                 .order_by("updated_at").limit(limit))
        return [run_of(s.id, s.to_dict() or {}) for s in self._query(query)]

    def finish_run(self, run_id: str, status: RunStatus, at: float) -> bool:
        snap = self._get(self._run_ref(run_id))
        if not snap.exists or snap.get("status") != RunStatus.RUNNING.value:
            return False
        reruns = len((snap.to_dict() or {}).get("reruns") or [])
        marker = "finish" if reruns == 0 else f"finish#{reruns}"
        batch = self._creating(self._claim_ref(run_id, marker), {"settled": True, "claimed_at": at})
        batch.update(self._run_ref(run_id), {"status": status.value, "finished_at": at})
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
        for slot, holder in self._held_slots(run_id).items():  # held by an attempt that never ended well
            if holder.rsplit("#", 1)[0] in again:
                self._delete(self._slot_ref(run_id, slot))
        moved = Counter(ENDED_FIELD[s.history[-1].state] for s in steps)
        batch = self._creating(self._claim_ref(run_id, f"rerun#{reruns + 1}"), {"settled": True, "claimed_at": at})
        batch.update(self._run_ref(run_id), {
            "status": RunStatus.RUNNING.value, "finished_at": None, "reruns": firestore.ArrayUnion([at]),
            "updated_at": at,
            "open_steps": firestore.Increment(len(steps)),
            **{field: firestore.Increment(-n) for field, n in moved.items()},
        })
        return self._once(batch) is not None
