"""The run's counters and the wide joins' counters on Firestore, spread over shards
(`layout.SHARDS`, chosen by a hash of the ending step's id), so that no document takes a
write per step end.

A step end takes one off its shard of the run's open steps and, for each wide successor it
releases, off its shard of that successor's join. The writer whose write leaves a shard
at zero asks whether any shard is still above zero (one query, billed as one read when
none is); each asks after its own commit, so the last of them always sees none. Two may
see none at once: a wide join is released by whoever creates its marker
(`claims/joined:{step}`, naming the end that did, so a redelivery of that end finds it
again), and finishing a run is idempotent.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from google.cloud import firestore

from ....model.states import StepState
from .documents import FirestoreDocuments, translated
from .layout import ENDED_FIELD, shard_of


class FirestoreCounters(FirestoreDocuments):
    def _counter_ref(self, run_id: str, shard: str) -> Any:
        return self._run_ref(run_id).collection("counters").document(shard)

    def _join_ref(self, run_id: str, step_id: str, shard: str) -> Any:
        return self._step_ref(run_id, step_id).collection("joins").document(shard)

    def _joined_ref(self, run_id: str, step_id: str) -> Any:
        return self._claim_ref(run_id, f"joined:{step_id}")

    def _counters(self, run_id: str) -> list[dict[str, Any]]:
        """The run's counter shards folded into one: its counts by state summed by an
        aggregation query (billed one read per 1,000 shards) and the latest shard's
        `updated_at` (one read), whatever the number of shards."""
        shards = self._run_ref(run_id).collection("counters")
        sums: Any = shards
        for field in ENDED_FIELD.values():
            sums = sums.sum(field, alias=field)
        with translated():
            [results] = sums.get()
        latest = self._query(shards.order_by("updated_at", direction=firestore.Query.DESCENDING).limit(1))
        folded = {r.alias: int(r.value or 0) for r in results}
        return [{**folded, "updated_at": float((latest[0].to_dict() or {}).get("updated_at") or 0) if latest else 0.0}]

    def _all_ended(self, run_id: str) -> bool:
        """No step of the run is open: no counter shard above zero (one query)."""
        above = (self._run_ref(run_id).collection("counters")
                 .where(filter=firestore.FieldFilter("open", ">", 0)).limit(1))
        return not self._query(above)

    def _join_waits(self, run_id: str, step_id: str) -> bool:
        """A shard of the wide join of `step_id` is above zero (one query)."""
        above = (self._step_ref(run_id, step_id).collection("joins")
                 .where(filter=firestore.FieldFilter("waiting", ">", 0)).limit(1))
        return bool(self._query(above))

    def _count_off(self, batch: Any, run_id: str, step_id: str, ended: StepState, at: float) -> None:
        """Take the step off its shard of the run's open steps, onto those ended `ended`, as
        progress at `at`. Transform results come sorted by field path: `open` is the first."""
        batch.update(self._counter_ref(run_id, shard_of(step_id)), {
            "open": firestore.Increment(-1), ENDED_FIELD[ended]: firestore.Increment(1), "updated_at": at})

    def _count_down(self, batch: Any, run_id: str, by: str, successors: Sequence[str], wide: Collection[str]) -> None:
        """Take the end of `by` off each successor's join counter (a wide one's shard of `by`)."""
        for succ in successors:
            if succ in wide:
                batch.update(self._join_ref(run_id, succ, shard_of(by)), {"waiting": firestore.Increment(-1)})
            else:
                batch.update(self._step_ref(run_id, succ), {"waiting_on": firestore.Increment(-1)})

    def _released(self, run_id: str, marker: str, at_zero: Sequence[str], wide: Collection[str]) -> list[str]:
        """Of the successors whose counter (or shard) the end `marker` left at zero, those it
        released: a narrow one at once, a wide one if no shard waits and the end is the one
        that marked it released."""
        return [s for s in at_zero if s not in wide or self._release_wide(run_id, s, marker)]

    def _release_wide(self, run_id: str, step_id: str, by: str) -> bool:
        """Whether the end `by` released the wide join of `step_id`: none of its shards waits,
        and the marker this writes (with the step's `waiting_on` at zero) names that end."""
        marker = self._joined_ref(run_id, step_id)
        released = self._get(marker)  # released already (by this end, redelivered, or another)
        if released.exists:
            return (released.to_dict() or {}).get("by") == by
        if self._join_waits(run_id, step_id):
            return False
        batch = self._creating(marker, {"by": by, "settled": True, "claimed_at": 0.0})
        batch.update(self._step_ref(run_id, step_id), {"waiting_on": 0})
        return self._once(batch) is not None or (self._get(marker).to_dict() or {}).get("by") == by
