"""ClaimStore on Firestore: `runs/{run}/claims/{key}`, created once (create-if-absent)."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor

from google.cloud import firestore

from ....errors import TransientError
from ....model.records import Claim, StepRecord
from .documents import FirestoreDocuments, translated

READERS = 8  # threads reading while the caller writes (claim_reading)
SETTLE_PAUSES = (0.5, 1.0, 2.0)
"""Seconds between the tries of a settle that met contention (its claim was created a
moment before): a settle left to redelivery would find its claim held until the lease
ends, and its side effect would then be done again."""


class FirestoreClaims(FirestoreDocuments):
    def __init__(self, client: firestore.Client, root: str = "runs") -> None:
        super().__init__(client, root)
        self._reader = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="firestore-read")

    def claim(self, run_id: str, key: str, now: float, lease: float) -> Claim:
        ref = self._claim_ref(run_id, key)
        if self._once(self._creating(ref, {"claimed_at": now, "settled": False})) is not None:
            return Claim.WON
        snap = self._get(ref)
        doc = snap.to_dict() or {}
        if doc.get("settled"):
            return Claim.DONE
        if now - float(doc.get("claimed_at", now)) <= lease:
            return Claim.BUSY
        taken_over = self._update_unless_changed(ref, {"claimed_at": now}, snap.update_time)
        return Claim.WON if taken_over else Claim.BUSY

    def settle(self, run_id: str, key: str) -> None:
        for pause in (*SETTLE_PAUSES, math.inf):
            try:
                with translated():
                    self._claim_ref(run_id, key).set({"settled": True}, merge=True)
                return
            except TransientError:
                if pause == math.inf:
                    raise
                time.sleep(pause)

    def claim_reading(self, run_id: str, key: str, step_id: str, now: float) -> tuple[Claim, StepRecord | None]:
        """The read runs on another thread while this one claims: one round trip, not two.
        A read that fails gives back the claim this call won."""
        step = self._reader.submit(self.get_step, run_id, step_id)
        claim = self.claim(run_id, key, now, math.inf)
        try:
            return claim, step.result()
        except Exception:
            if claim is Claim.WON:
                self.release(run_id, key)
            raise

    def release(self, run_id: str, key: str) -> None:
        self._delete(self._claim_ref(run_id, key))  # only its holder releases it

    def held_since(self, run_id: str, key: str) -> float | None:
        snap = self._get(self._claim_ref(run_id, key))
        doc = (snap.to_dict() or {}) if snap.exists else {}
        if not doc or doc.get("settled"):
            return None
        return float(doc["claimed_at"])
