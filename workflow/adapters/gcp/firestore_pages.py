"""RunPages on Firestore: a page of `runs/` is one query; a run's head is its document alone
(one read: a running run's counts stay in its counter shards, unread); the steps that moved
since a time are one query, `submitted_at >= t OR finished_at >= t`, each side served by the
automatic single-field index. A refresh of a quiet running run costs 2 document reads: the
run's document, and the query's empty answer."""

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

    def run_head(self, run_id: str) -> RunRecord | None:
        snap = self._get(self._run_ref(run_id))
        return run_of(snap.id, snap.to_dict() or {}) if snap.exists else None

    def steps_changed(self, run_id: str, since: float) -> list[StepRecord]:
        moved = firestore.Or([firestore.FieldFilter("submitted_at", ">=", since),
                              firestore.FieldFilter("finished_at", ">=", since)])
        found = self._query(self._run_ref(run_id).collection("steps").where(filter=moved))
        ordered = sorted(found, key=lambda s: int(s.get("pos") or 0))
        return [step_of(run_id, s.id, s.to_dict() or {}, s.update_time) for s in ordered]
