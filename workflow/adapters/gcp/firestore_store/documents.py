"""The Firestore documents behind FirestoreStateStore: references, reads and writes with
Firestore's errors translated to the project's own, and the write shapes every role uses.

Every write that must happen once is an atomic batch whose first write is a create of a
marker: a repeated batch fails with AlreadyExists and changes nothing. Counters move with
server-side increments, and the commit's transform results say who brought one to zero,
so a wide join never serialises on a lock.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from ....errors import TransientError
from ....model.records import StepRecord
from .layout import step_of


@contextmanager
def translated() -> Iterator[None]:
    """Firestore errors as the project's own: contention and outages are transient."""
    try:
        yield
    except (gexc.Aborted, gexc.DeadlineExceeded, gexc.ServiceUnavailable, gexc.InternalServerError,
            gexc.TooManyRequests, gexc.ResourceExhausted) as exc:
        raise TransientError(f"Firestore: {exc}") from exc


class FirestoreDocuments:
    def __init__(self, client: firestore.Client, root: str = "runs") -> None:
        self._db = client
        self._root = root

    # -- references ---------------------------------------------------------------------
    def _run_ref(self, run_id: str) -> Any:
        return self._db.collection(self._root).document(run_id)

    def _step_ref(self, run_id: str, step_id: str) -> Any:
        return self._run_ref(run_id).collection("steps").document(step_id)

    def _end_ref(self, run_id: str, name: str) -> Any:
        return self._run_ref(run_id).collection("ends").document(name)

    def _claim_ref(self, run_id: str, key: str) -> Any:
        return self._run_ref(run_id).collection("claims").document(key)

    def _slot_ref(self, run_id: str, slot: str) -> Any:
        return self._run_ref(run_id).collection("slots").document(slot)

    # -- reads and writes, with Firestore's errors translated ------------------------------
    def _get(self, ref: Any) -> Any:
        with translated():
            return ref.get()

    def _get_all(self, run_id: str, step_ids: Sequence[str]) -> dict[str, Any]:
        """The snapshots of the steps `step_ids` (existing or not), by id, in one request."""
        with translated():
            return {s.id: s for s in self._db.get_all([self._step_ref(run_id, s) for s in step_ids])}

    def _snaps(self, run_id: str, step_ids: Sequence[str]) -> list[Any]:
        """The existing steps among `step_ids`, in that order."""
        if not step_ids:
            return []
        snaps = self._get_all(run_id, step_ids)
        return [snaps[s] for s in step_ids if snaps[s].exists]

    def _query(self, query: Any) -> list[Any]:
        with translated():
            return list(query.stream())

    def _update(self, ref: Any, fields: dict[str, Any]) -> None:
        with translated():
            ref.update(fields)

    def _update_unless_changed(self, ref: Any, fields: dict[str, Any], version: Any) -> bool:
        """Update `ref` if its last write is still the one at `version`; False if not."""
        try:
            with translated():
                ref.update(fields, option=self._db.write_option(last_update_time=version))
        except gexc.FailedPrecondition:
            return False
        return True

    def _delete(self, ref: Any) -> None:
        with translated():
            ref.delete()

    def _commit(self, batch: Any) -> list[Any]:
        with translated():
            results: list[Any] = batch.commit()
        return results

    def _creating(self, marker: Any, doc: dict[str, Any]) -> Any:
        """A batch whose first write creates `marker`: `_once` commits it at most once."""
        batch = self._db.batch()
        batch.create(marker, doc)
        return batch

    def _once(self, batch: Any) -> list[Any] | None:
        """The batch's write results; None, with nothing written, when a document it creates
        (its marker) exists."""
        try:
            return self._commit(batch)
        except gexc.AlreadyExists:
            return None

    # -- what several roles read ------------------------------------------------------------
    def get_step(self, run_id: str, step_id: str) -> StepRecord | None:
        """As StepStore.get_step (claims read a step too)."""
        snap = self._get(self._step_ref(run_id, step_id))
        return step_of(run_id, step_id, snap.to_dict(), snap.update_time) if snap.exists else None

    def _held_slots(self, run_id: str) -> dict[str, str]:
        """The run's held slots: slot number → holder (`step#attempt`)."""
        slots = self._query(self._run_ref(run_id).collection("slots"))
        return {s.id: str(s.get("holder")) for s in slots}


def after(result: Any) -> int:
    """The value the first increment of a write left, from the commit's write result."""
    return int(result.transform_results[0].integer_value)


def at_zero(step_ids: Sequence[str], results: Sequence[Any]) -> list[str]:
    """The steps whose join counter the matching write result left at zero."""
    return [s for s, r in zip(step_ids, results, strict=True) if after(r) == 0]
