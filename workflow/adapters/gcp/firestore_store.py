"""StateStore on Firestore (native mode), free of hot-document transactions.

Data model (see README): `runs/{run}` holds the run and its open-step counter;
`runs/{run}/steps/{step}` a step, its definition and its join counter `waiting_on`;
`runs/{run}/ends/{step}[#chunk]` marks a recorded step end; `runs/{run}/claims/{key}`
a claim. Every write that must happen once is an atomic batch whose first write is a
create of a marker: a repeated batch fails with AlreadyExists and changes nothing.
Counters move with server-side increments, and the commit's transform results say who
brought one to zero, so a wide join never serialises on a lock.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import firestore

from ...errors import DagInvalid, NotFound, Problem, TransientError
from ...model.dag import Policy, Task
from ...model.records import Attempt, Claim, Completion, RunRecord, StepOutcome, StepRecord
from ...model.states import RunStatus, StepState
from ...model.text import MESSAGE_LIMIT

log = logging.getLogger("workflow.firestore")
BATCH = 400  # writes per commit: below Firestore's 500 per batch
READERS = 8  # threads reading while the caller writes (claim_reading)
MAX_REREADS = 5  # conditional writes tried before a document that keeps changing is a TransientError
MAX_DOCUMENT_BYTES = 1_048_576  # Firestore's limit on one document's size
MAX_REQUEST_BYTES = 10_485_760  # Firestore's limit on one commit request
STEP_GROWTH_BYTES = 4 * MESSAGE_LIMIT + 4_096
"""Room kept in a step document for what the engine writes later (message, job fields)."""
BATCH_BYTES = MAX_REQUEST_BYTES - 1_048_576  # a creation batch's estimated size, with room for framing
T = TypeVar("T")
_ENDED_FIELD = {StepState.SUCCEEDED: "steps_succeeded", StepState.FAILED: "steps_failed",
                StepState.SKIPPED: "steps_skipped", StepState.CANCELLED: "steps_cancelled"}


@contextmanager
def _translated() -> Iterator[None]:
    """Firestore errors as the project's own: contention and outages are transient."""
    try:
        yield
    except (gexc.Aborted, gexc.DeadlineExceeded, gexc.ServiceUnavailable, gexc.InternalServerError,
            gexc.TooManyRequests, gexc.ResourceExhausted) as exc:
        raise TransientError(f"Firestore: {exc}") from exc


class FirestoreStateStore:
    def __init__(self, client: firestore.Client, root: str = "runs") -> None:
        self._db = client
        self._root = root
        self._reader = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="firestore-read")

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
        with _translated():
            return ref.get()

    def _get_all(self, run_id: str, step_ids: Sequence[str]) -> dict[str, Any]:
        """The snapshots of the steps `step_ids` (existing or not), by id, in one request."""
        with _translated():
            return {s.id: s for s in self._db.get_all([self._step_ref(run_id, s) for s in step_ids])}

    def _query(self, query: Any) -> list[Any]:
        with _translated():
            return list(query.stream())

    def _update(self, ref: Any, fields: dict[str, Any]) -> None:
        with _translated():
            ref.update(fields)

    def _update_unless_changed(self, ref: Any, fields: dict[str, Any], version: Any) -> bool:
        """Update `ref` if its last write is still the one at `version`; False if not."""
        try:
            with _translated():
                ref.update(fields, option=self._db.write_option(last_update_time=version))
        except gexc.FailedPrecondition:
            return False
        return True

    def _delete(self, ref: Any) -> None:
        with _translated():
            ref.delete()

    def _commit(self, batch: Any) -> list[Any]:
        with _translated():
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

    # -- runs -----------------------------------------------------------------------------
    def create_run(self, run: RunRecord, steps: Sequence[StepRecord]) -> bool:
        """As StateStore.create_run; DagInvalid, before any write, naming each step too large to store."""
        sized = sized_step_docs(self._root, steps)
        check_sizes(run.run_id, sized)
        if self._get(self._run_ref(run.run_id)).exists:
            return False
        for chunk in _batches(sized):  # steps first: the run document commits
            self._create_all([(self._step_ref(s.run_id, s.step_id), doc) for s, doc, _ in chunk])
        doc = _run_doc(run, open_steps=len(steps))
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
        return _run(run_id, snap.to_dict()) if snap.exists else None

    def list_runs(self, limit: int, status: RunStatus | None = None) -> list[RunRecord]:
        query: Any = self._db.collection(self._root)
        if status is not None:
            query = query.where(filter=firestore.FieldFilter("status", "==", status.value))
        query = query.order_by("created_at", direction=firestore.Query.DESCENDING).limit(limit)
        return [_run(s.id, s.to_dict() or {}) for s in self._query(query)]

    def get_step(self, run_id: str, step_id: str) -> StepRecord | None:
        snap = self._get(self._step_ref(run_id, step_id))
        return _step(run_id, step_id, snap.to_dict(), snap.update_time) if snap.exists else None

    def list_steps(self, run_id: str) -> list[StepRecord]:
        snaps = self._query(self._run_ref(run_id).collection("steps").order_by("pos"))
        return [_step(run_id, s.id, s.to_dict(), s.update_time) for s in snaps]

    # -- claims ---------------------------------------------------------------------------
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
        with _translated():
            self._claim_ref(run_id, key).set({"settled": True}, merge=True)

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

    # -- steps ----------------------------------------------------------------------------
    def record_submission(self, step: StepRecord, job_id: str, job_state: str, at: float) -> bool:
        """One write, on condition that the step document is as `step` was read (its update
        time); a document changed since is read again and written only if still PENDING at
        the same attempt, so the end of a job that ended at once is never overwritten."""
        fields = {"state": StepState.RUNNING.value, "job_id": job_id, "job_state": job_state, "submitted_at": at}
        ref, version = self._step_ref(step.run_id, step.step_id), step.version
        for _ in range(MAX_REREADS):
            if version is None:
                snap = self._get(ref)
                doc = (snap.to_dict() or {}) if snap.exists else {}
                if doc.get("state") != StepState.PENDING.value or int(doc.get("attempt", 1)) != step.attempt:
                    return False
                version = snap.update_time
            if self._update_unless_changed(ref, fields, version):
                return True
            version = None
        raise TransientError(f"step {step.step_id!r} of run {step.run_id!r} kept changing while recording its job")

    def record_job_state(self, run_id: str, step_id: str, job_state: str) -> None:
        self._update(self._step_ref(run_id, step_id), {"job_state": job_state})

    def complete_step(
        self, run_id: str, step_id: str, outcome: StepOutcome, successors: Sequence[str] | None = None,
        free_slot: bool = False,
    ) -> Completion:
        done = self._complete(run_id, step_id, outcome, successors)
        return replace(done, woke=self.free_slot(run_id, step_id, outcome.attempt)) if free_slot else done

    def _complete(
        self, run_id: str, step_id: str, outcome: StepOutcome, successors: Sequence[str] | None
    ) -> Completion:
        ref = self._step_ref(run_id, step_id)
        snap = None
        if successors is None or outcome.state is not StepState.SUCCEEDED:
            snap = self._get(ref)
            if not snap.exists:
                raise NotFound(f"run {run_id!r} has no step {step_id!r}")
            if int((snap.to_dict() or {}).get("attempt", 1)) != outcome.attempt:
                return Completion(False, (), self._open_steps(run_id) == 0)  # a late result of an earlier attempt
            release = _released(snap.get("definition"), outcome.state)
        else:
            release = list(successors)
        fields: dict[str, Any] = {"state": outcome.state.value, "message": outcome.message,
                                  "finished_at": outcome.at, "job_state": outcome.job_state}
        if outcome.job_id:
            fields["job_id"] = outcome.job_id
        if outcome.submitted_at is not None:  # the same time the dispatch records, which it may not have yet
            fields["submitted_at"] = outcome.submitted_at
        # One marker per attempt: an earlier attempt's late result finds its marker and records nothing.
        marker = _end_marker(step_id, outcome.attempt)
        try:
            results = self._once(self._ending(run_id, step_id, marker, fields, outcome.at, release))
        except gexc.NotFound as exc:
            raise NotFound(f"run {run_id!r} has no step {step_id!r}") from exc
        if results is None:  # a redelivery: read the facts back
            snap = snap or self._get(ref)
            recorded = StepState(snap.get("state")) if snap.exists else StepState.PENDING
            release = _released(snap.get("definition"), recorded) if recorded.terminal else []
            return Completion(False, self._read_back(run_id, marker, release), self._open_steps(run_id) == 0)
        unblocked = self._unblocked_now(run_id, marker, release, results)
        return Completion(True, tuple(unblocked), _after(results[2]) == 0)

    def _ending(self, run_id: str, step_id: str, marker: str, fields: dict[str, Any], at: float,
                release: Sequence[str] = ()) -> Any:
        """A step's end under its end marker: the step's `fields` (with its `state`), the run's
        counters (write result 2), the join counters of the first BATCH of `release` (3 on)."""
        batch = self._creating(self._end_ref(run_id, marker), {"at": at})
        batch.update(self._step_ref(run_id, step_id), fields)
        batch.update(self._run_ref(run_id), _count_off(1, StepState(fields["state"]), at))
        self._count_down(batch, run_id, release[:BATCH])
        return batch

    def _count_down(self, batch: Any, run_id: str, successors: Sequence[str]) -> None:
        for succ in successors:
            batch.update(self._step_ref(run_id, succ), {"waiting_on": firestore.Increment(-1)})

    def _unblocked_now(self, run_id: str, marker: str, release: list[str], results: list[Any]) -> list[str]:
        """The successors an end just committed (`results`, of `_ending`) brought to zero,
        with those of the chunks past the first batch."""
        return _at_zero(release[:BATCH], results[3:]) + self._release_rest(run_id, marker, release)

    def _read_back(self, run_id: str, marker: str, release: list[str]) -> tuple[str, ...]:
        """For an end committed before: finish any chunk left out, then read which successors
        wait on nothing."""
        self._release_rest(run_id, marker, release)
        return self._unblocked(run_id, release)

    def _release_rest(self, run_id: str, marker: str, release: list[str]) -> list[str]:
        """Join counters past the first batch, each chunk once (its own marker)."""
        unblocked: list[str] = []
        for n, start in enumerate(range(BATCH, len(release), BATCH), start=1):
            chunk = release[start:start + BATCH]
            batch = self._creating(self._end_ref(run_id, f"{marker}#{n}"), {})
            self._count_down(batch, run_id, chunk)
            results = self._once(batch)
            if results is not None:
                unblocked += _at_zero(chunk, results[1:])
        return unblocked

    def skip_steps(self, run_id: str, step_ids: Sequence[str], reason: str, at: float) -> Completion:
        """Each step under its end marker, with the join counters it releases."""
        recorded, left, unblocked = False, None, []
        fields = {"state": StepState.SKIPPED.value, "message": reason, "finished_at": at}
        for snap in self._snaps(run_id, step_ids):
            doc = snap.to_dict() or {}
            release = _released(doc["definition"], StepState.SKIPPED)
            marker = _end_marker(snap.id, int(doc.get("attempt", 1)))
            results = None
            if doc["state"] == StepState.PENDING.value:
                results = self._once(self._ending(run_id, snap.id, marker, fields, at, release))
            if results is not None:
                recorded, left = True, _after(results[2])
                unblocked += self._unblocked_now(run_id, marker, release, results)
            elif doc["state"] in (StepState.PENDING.value, StepState.SKIPPED.value):  # skipped before
                unblocked += self._read_back(run_id, marker, release)
        if left is None:
            left = self._open_steps(run_id)
        return Completion(recorded, tuple(dict.fromkeys(unblocked)), left == 0)

    def fail_steps(self, run_id: str, step_ids: Sequence[str], reason: str, at: float) -> Completion:
        return self._end_steps(run_id, step_ids, StepState.FAILED, reason, at)

    def retry_step(self, run_id: str, step_id: str, ended: Attempt, at: float) -> bool:
        """Under the attempt's end marker, so it excludes any other end of that attempt."""
        batch = self._creating(self._end_ref(run_id, _end_marker(step_id, ended.attempt)), {"at": at, "retried": True})
        batch.update(self._step_ref(run_id, step_id), {
            "state": StepState.PENDING.value, "attempt": ended.attempt + 1,
            "history": firestore.ArrayUnion([ended.to_dict()]), "job_id": "", "job_state": "", "message": "",
            "submitted_at": None, "finished_at": None})
        try:
            return self._once(batch) is not None
        except gexc.NotFound as exc:
            raise NotFound(f"run {run_id!r} has no step {step_id!r}") from exc

    # -- slots: runs/{run}/slots/{0..limit-1}, each held by one "step#attempt" ---------------
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

    def _held_slots(self, run_id: str) -> dict[str, str]:
        slots = self._query(self._run_ref(run_id).collection("slots"))
        return {s.id: str(s.get("holder")) for s in slots}

    def cancel_steps(self, run_id: str, step_ids: Sequence[str], reason: str, at: float) -> Completion:
        return self._end_steps(run_id, step_ids, StepState.CANCELLED, reason, at)

    def _end_steps(self, run_id: str, step_ids: Sequence[str], state: StepState, reason: str,
                   at: float) -> Completion:
        """Each step's end under its own end marker, so it races a recorded end safely."""
        recorded = False
        left = None
        fields = {"state": state.value, "message": reason, "finished_at": at}
        for step_id, attempt in self._attempts(run_id, step_ids):
            results = self._once(self._ending(run_id, step_id, _end_marker(step_id, attempt), fields, at))
            if results is not None:
                recorded, left = True, _after(results[2])
        if left is None:
            left = self._open_steps(run_id)
        return Completion(recorded, (), left == 0)

    def rerun_steps(self, run_id: str, reruns: int, steps: Sequence[StepRecord], at: float) -> bool:
        snap = self._get(self._run_ref(run_id))
        if not snap.exists or len((snap.to_dict() or {}).get("reruns") or []) != reruns:
            return False
        for start in range(0, len(steps), BATCH):  # steps first, set to fixed values: safe to repeat
            batch = self._db.batch()
            for s in steps[start:start + BATCH]:
                batch.update(self._step_ref(run_id, s.step_id), _attempt_fields(s))
            self._commit(batch)
        again = {s.step_id for s in steps}
        for slot, holder in self._held_slots(run_id).items():  # held by an attempt that never ended well
            if holder.rsplit("#", 1)[0] in again:
                self._delete(self._slot_ref(run_id, slot))
        moved = Counter(_ENDED_FIELD[s.history[-1].state] for s in steps)
        batch = self._creating(self._claim_ref(run_id, f"rerun#{reruns + 1}"), {"settled": True, "claimed_at": at})
        batch.update(self._run_ref(run_id), {
            "status": RunStatus.RUNNING.value, "finished_at": None, "reruns": firestore.ArrayUnion([at]),
            "updated_at": at,
            "open_steps": firestore.Increment(len(steps)),
            **{field: firestore.Increment(-n) for field, n in moved.items()},
        })
        return self._once(batch) is not None

    def heartbeat(self, run_id: str, step_id: str, at: float, spacing: float) -> None:
        self._update(self._step_ref(run_id, step_id), {"checked_at": at})
        run = self._get(self._run_ref(run_id))  # a read, to spare a wide run's document a write per job
        if run.exists and float((run.to_dict() or {}).get("updated_at") or 0) < at - spacing:
            self._update(run.reference, {"updated_at": at})

    def stale_runs(self, before: float, limit: int) -> list[RunRecord]:
        query = (self._db.collection(self._root)
                 .where(filter=firestore.FieldFilter("status", "==", RunStatus.RUNNING.value))
                 .where(filter=firestore.FieldFilter("updated_at", "<", before))
                 .order_by("updated_at").limit(limit))
        return [_run(s.id, s.to_dict() or {}) for s in self._query(query)]

    def finish_run(self, run_id: str, status: RunStatus, at: float) -> bool:
        snap = self._get(self._run_ref(run_id))
        if not snap.exists or snap.get("status") != RunStatus.RUNNING.value:
            return False
        reruns = len((snap.to_dict() or {}).get("reruns") or [])
        marker = "finish" if reruns == 0 else f"finish#{reruns}"
        batch = self._creating(self._claim_ref(run_id, marker), {"settled": True, "claimed_at": at})
        batch.update(self._run_ref(run_id), {"status": status.value, "finished_at": at})
        return self._once(batch) is not None

    def _attempts(self, run_id: str, step_ids: Sequence[str]) -> list[tuple[str, int]]:
        """Each existing step with its current attempt."""
        return [(s.id, int((s.to_dict() or {}).get("attempt", 1))) for s in self._snaps(run_id, step_ids)]

    def _snaps(self, run_id: str, step_ids: Sequence[str]) -> list[Any]:
        """The existing steps among `step_ids`, in that order."""
        if not step_ids:
            return []
        snaps = self._get_all(run_id, step_ids)
        return [snaps[s] for s in step_ids if snaps[s].exists]

    def _unblocked(self, run_id: str, release: list[str]) -> tuple[str, ...]:
        if not release:
            return ()
        snaps = self._get_all(run_id, release)
        return tuple(s for s in release if snaps[s].exists and snaps[s].get("waiting_on") == 0)

    def _open_steps(self, run_id: str) -> int:
        snap = self._get(self._run_ref(run_id))
        return int(snap.get("open_steps")) if snap.exists else -1


def _count_off(n: int, ended: StepState, at: float) -> dict[str, Any]:
    """Take `n` off the run's open steps, onto those ended `ended`, as progress at `at`.
    Transform results come sorted by field path, so `open_steps` stays the first (read by `_after`)."""
    return {"open_steps": firestore.Increment(-n), _ENDED_FIELD[ended]: firestore.Increment(n), "updated_at": at}


def _end_marker(step_id: str, attempt: int) -> str:
    """The end marker of one attempt of a step (the first keeps the plain step id)."""
    return step_id if attempt == 1 else f"{step_id}@{attempt}"


def _released(definition: Mapping[str, Any], ended: StepState) -> list[str]:
    """The successors whose join counter an end `ended` of the step takes one off."""
    return list(definition["successors"] if ended is StepState.SUCCEEDED else definition.get("anyEnd") or [])


def _attempt_fields(s: StepRecord) -> dict[str, Any]:
    return {"state": s.state.value, "waiting_on": s.waiting_on, "job_id": "", "job_state": "", "message": "",
            "submitted_at": None, "finished_at": None, "attempt": s.attempt, "queued_at": None,
            "history": [a.to_dict() for a in s.history]}


def _value_bytes(value: Any) -> int:
    """Storage size of a field value: strings their UTF-8 bytes + 1, numbers 8, maps their
    keys (UTF-8 + 1) and values; None and booleans 1."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 1
    if isinstance(value, Mapping):
        return sum(len(str(k).encode()) + 1 + _value_bytes(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_value_bytes(v) for v in value)
    return 1 if value is None or isinstance(value, bool) else 8


SizedDoc = tuple[StepRecord, dict[str, Any], int]


def sized_step_docs(root: str, steps: Sequence[StepRecord]) -> list[SizedDoc]:
    """Each step with its document and that document's storage size (Firestore's rules:
    the name's ids, UTF-8 + 1 each, plus 16; the fields; plus 32)."""
    sized = []
    for pos, step in enumerate(steps):
        doc = _step_doc(pos, step)
        name = sum(len(part.encode("utf-8", "surrogatepass")) + 1
                   for part in (root, step.run_id, "steps", step.step_id)) + 16
        sized.append((step, doc, name + _value_bytes(doc) + 32))
    return sized


def check_sizes(run_id: str, sized: Sequence[SizedDoc]) -> None:
    """DagInvalid naming every step whose document, with room to grow, would pass the limit."""
    too_large = [Problem(f"step {step.step_id!r}", f"its stored document would take about {size:,} bytes, over "
                         f"Firestore's {MAX_DOCUMENT_BYTES:,} with room for its results (the Task Runner URL "
                         "is copied into each step)")
                 for step, _, size in sized if size + STEP_GROWTH_BYTES > MAX_DOCUMENT_BYTES]
    if too_large:
        raise DagInvalid(f"run {run_id}", too_large)


def _batches(sized: Sequence[SizedDoc]) -> Iterator[list[SizedDoc]]:
    """Consecutive chunks of at most BATCH documents and BATCH_BYTES estimated bytes."""
    chunk: list[SizedDoc] = []
    total = 0
    for item in sized:
        if chunk and (len(chunk) == BATCH or total + item[2] > BATCH_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += item[2]
    if chunk:
        yield chunk


def _after(result: Any) -> int:
    """The value the first increment of a write left, from the commit's write result."""
    return int(result.transform_results[0].integer_value)


def _at_zero(step_ids: Sequence[str], results: Sequence[Any]) -> list[str]:
    """The steps whose join counter the matching write result left at zero."""
    return [s for s, r in zip(step_ids, results, strict=True) if _after(r) == 0]


def _run_doc(run: RunRecord, open_steps: int) -> dict[str, Any]:
    return {
        "status": run.status.value, "tr_url": run.tr_url, "dag_name": run.dag_name,
        "source": run.source, "created_at": run.created_at, "finished_at": run.finished_at,
        "step_count": run.step_count, "open_steps": open_steps, "problems": list(run.problems),
        "updated_at": run.created_at, "timeout": run.timeout,
    }


def _run(run_id: str, d: dict[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=run_id, status=RunStatus(d["status"]), tr_url=d["tr_url"], dag_name=d["dag_name"],
        source=d["source"], created_at=d["created_at"], finished_at=d.get("finished_at"),
        step_count=d["step_count"], problems=tuple(d.get("problems") or ()),
        succeeded=int(d.get("steps_succeeded", 0)), failed=int(d.get("steps_failed", 0)),
        skipped=int(d.get("steps_skipped", 0)), cancelled=int(d.get("steps_cancelled", 0)),
        reruns=tuple(d.get("reruns") or ()), updated_at=float(d.get("updated_at") or d["created_at"]),
        timeout=d.get("timeout"),
    )


def _step_doc(pos: int, s: StepRecord) -> dict[str, Any]:
    return {
        "pos": pos, "tr_url": s.tr_url, "tr_auth": s.tr_auth, "state": s.state.value, "waiting_on": s.waiting_on,
        "definition": {"task": s.task.to_dict(), "dependsOn": list(s.depends_on),
                       "successors": list(s.successors), "policy": s.policy.to_dict(),
                       "anyEnd": list(s.waits_for_any_end), "maxParallel": s.max_parallel},
        "job_id": s.job_id, "job_state": s.job_state, "message": s.message,
        "submitted_at": s.submitted_at, "finished_at": s.finished_at, "attempt": s.attempt,
        "history": [a.to_dict() for a in s.history],
    }


def _step(run_id: str, step_id: str, d: dict[str, Any], version: object = None) -> StepRecord:
    definition = d["definition"]
    return StepRecord(
        run_id=run_id, step_id=step_id, task=Task.from_dict(definition["task"]), tr_url=d["tr_url"],
        tr_auth=d.get("tr_auth", ""),
        depends_on=tuple(definition["dependsOn"]), successors=tuple(definition["successors"]),
        state=StepState(d["state"]), waiting_on=int(d["waiting_on"]), job_id=d["job_id"],
        job_state=d["job_state"], message=d["message"], submitted_at=d.get("submitted_at"),
        finished_at=d.get("finished_at"), attempt=int(d.get("attempt", 1)),
        history=tuple(Attempt.from_dict(a) for a in d.get("history") or ()),
        policy=Policy.from_dict(definition.get("policy") or {}),
        waits_for_any_end=tuple(definition.get("anyEnd") or ()), max_parallel=int(definition.get("maxParallel", 0)),
        checked_at=d.get("checked_at"), version=version,
    )
