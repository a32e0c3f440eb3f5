"""SlotStore on Firestore: `runs/{run}/slots/{0..limit-1}`, each held by one
"step#attempt" (create to take, delete to free), never one counter; a step waiting for
one carries `queued_at`; a release's wake-up is remembered under a `woke:` claim marker."""

from __future__ import annotations

from collections.abc import Sequence

from google.api_core import exceptions as gexc
from google.cloud import firestore

from ....model.states import StepState
from .documents import FirestoreDocuments
from .layout import BATCH


class FirestoreSlots(FirestoreDocuments):
    def take_slot(self, run_id: str, step_id: str, attempt: int, limit: int, now: float) -> bool:
        me, step_ref = f"{step_id}#{attempt}", self._step_ref(run_id, step_id)
        queued = False
        for _ in range(limit + 2):
            held = self._held_slots(run_id)
            if me in held.values():
                return True
            free = [str(k) for k in range(limit) if str(k) not in held]
            if free:
                batch = self._creating(self._slot_ref(run_id, free[0]), {"holder": me, "at": now})
                batch.update(step_ref, {"queued_at": None})
                if self._once(batch) is not None:
                    return True
                continue  # taken meanwhile, perhaps by another delivery of this step: look again
            if queued:
                return False
            if (self._get(step_ref).to_dict() or {}).get("queued_at") is None:  # wait from the first time it had to
                self._update(step_ref, {"queued_at": now})
            queued = True  # look once more: a slot freed before this was written woke no one
        return False

    def queue_steps(self, run_id: str, step_ids: Sequence[str], now: float) -> None:
        snaps = self._snaps(run_id, step_ids)
        held = set(self._held_slots(run_id).values())
        waiting = [s for s in snaps if s.get("state") == StepState.PENDING.value
                   and (s.to_dict() or {}).get("queued_at") is None and f"{s.id}#{s.get('attempt')}" not in held]
        for start in range(0, len(waiting), BATCH):
            batch = self._db.batch()
            for snap in waiting[start:start + BATCH]:
                batch.update(snap.reference, {"queued_at": now})
            self._commit(batch)

    def free_slot(self, run_id: str, step_id: str, attempt: int) -> str | None:
        me = f"{step_id}#{attempt}"
        marker = self._claim_ref(run_id, f"woke:{me}")
        snap = self._get(marker)
        if snap.exists:
            return str(snap.get("step")) or None
        for slot, holder in self._held_slots(run_id).items():
            if holder == me:
                self._delete(self._slot_ref(run_id, slot))
        query = self._run_ref(run_id).collection("steps").where(
            filter=firestore.FieldFilter("queued_at", ">", 0)).order_by("queued_at").limit(3)
        for candidate in self._query(query):
            if candidate.get("state") != StepState.PENDING.value:
                continue
            batch = self._creating(marker, {"step": candidate.id})
            batch.update(candidate.reference, {"queued_at": None},
                         option=self._db.write_option(last_update_time=candidate.update_time))
            try:
                if self._once(batch) is None:  # another delivery of this release woke one
                    return str(self._get(marker).get("step")) or None
            except gexc.FailedPrecondition:
                continue  # woken by another release meanwhile
            return str(candidate.id)
        return None
