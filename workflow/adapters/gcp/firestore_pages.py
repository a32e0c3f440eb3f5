"""RunPages on Firestore: a page of `runs/` is one query; the steps that moved since a time
are one query per time field (`submitted_at`, `finished_at`, each with its automatic
single-field index), so a refresh of a quiet run reads the run and one empty answer."""

from __future__ import annotations

from typing import Any

from google.cloud import firestore

from ...model.records import RunRecord, StepRecord
from ...model.states import RunStatus
from .firestore_store.documents import FirestoreDocuments
from .firestore_store.layout import run_of, step_of


class FirestorePages(FirestoreDocuments):
    """Reads the documents FirestoreStateStore writes (same client, same root collection)."""

    def runs_page(self, limit: int, status: RunStatus | None = None, before: float | None = None) -> list[RunRecord]:
        query: Any = self._db.collection(self._root)
        if status is not None:
            query = query.where(filter=firestore.FieldFilter("status", "==", status.value))
        if before is not None:
            query = query.where(filter=firestore.FieldFilter("created_at", "<", before))
        query = query.order_by("created_at", direction=firestore.Query.DESCENDING).limit(limit)
        return [run_of(s.id, s.to_dict() or {}) for s in self._query(query)]

    def steps_since(self, run_id: str, since: float, ended: bool) -> list[StepRecord]:
        steps = self._run_ref(run_id).collection("steps")
        found = {}
        for field in ("submitted_at", "finished_at") if ended else ("submitted_at",):
            for snap in self._query(steps.where(filter=firestore.FieldFilter(field, ">=", since))):
                found[snap.id] = snap
        ordered = sorted(found.values(), key=lambda s: int(s.get("pos") or 0))
        return [step_of(run_id, s.id, s.to_dict() or {}, s.update_time) for s in ordered]
