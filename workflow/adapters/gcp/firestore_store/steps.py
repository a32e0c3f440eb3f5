"""StepStore on Firestore: `runs/{run}/steps/{step}`. Each end of an attempt is an atomic
batch under that attempt's end marker (`runs/{run}/ends/...`): the step's fields, its shard
of the run's counters, and the join counters it releases (`model.join`; a wide join's
shard, `counters`), the first BATCH of them in the same commit and the rest in chunks
under markers of their own."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from ....errors import NotFound, TransientError
from ....model.join import released_by
from ....model.records import Attempt, Completion, StepOutcome, StepRecord
from ....model.states import StepState
from ....model.transitions import ending
from .counters import FirestoreCounters
from .documents import after, at_zero
from .layout import BATCH, end_marker, step_of
from .slots import FirestoreSlots

MAX_REREADS = 5  # conditional writes tried before a document that keeps changing is a TransientError


class FirestoreSteps(FirestoreSlots, FirestoreCounters):
    """A step's end frees its slot, so steps come with the slots, and moves the counters."""

    def list_steps(self, run_id: str) -> list[StepRecord]:
        snaps = self._query(self._run_ref(run_id).collection("steps").order_by("pos"))
        return [step_of(run_id, s.id, s.to_dict(), s.update_time) for s in snaps]

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

    def record_job_state(self, step: StepRecord, job_state: str) -> None:
        """On condition that the step document is as `step` was read (its update time)."""
        if step.state is StepState.RUNNING and step.version is not None:
            self._update_unless_changed(self._step_ref(step.run_id, step.step_id), {"job_state": job_state},
                                        step.version)

    def complete_step(self, run_id: str, step_id: str, outcome: StepOutcome, successors: Sequence[str] | None = None,
                      free_slot: bool = False) -> Completion:
        done = self._complete(run_id, step_id, outcome, successors)
        return replace(done, woke=self.free_slot(run_id, step_id, outcome.attempt)) if free_slot else done

    def _complete(self, run_id: str, step_id: str, outcome: StepOutcome,
                  successors: Sequence[str] | None) -> Completion:
        ref = self._step_ref(run_id, step_id)
        snap = self._get(ref)  # its `wide` says which successors' joins are in shards
        if not snap.exists:
            raise NotFound(f"run {run_id!r} has no step {step_id!r}")
        doc = snap.to_dict() or {}
        if int(doc.get("attempt", 1)) != outcome.attempt:
            return Completion(False, (), self._all_ended(run_id))  # a late result of an earlier attempt
        wide = set(doc.get("wide") or ())
        if successors is None or outcome.state is not StepState.SUCCEEDED:
            release = released_by(doc["definition"], outcome.state)
        else:
            release = list(successors)
        fields: dict[str, Any] = {"state": outcome.state.value, "message": outcome.message,
                                  "finished_at": outcome.at, "job_state": outcome.job_state}
        if outcome.job_id:
            fields["job_id"] = outcome.job_id
        if outcome.submitted_at is not None:  # the same time the dispatch records, which it may not have yet
            fields["submitted_at"] = outcome.submitted_at
        # One marker per attempt: an earlier attempt's late result finds its marker and records nothing.
        marker = end_marker(step_id, outcome.attempt)
        try:
            results = self._once(self._ending(run_id, step_id, marker, fields, outcome.at, release, wide))
        except gexc.NotFound as exc:
            raise NotFound(f"run {run_id!r} has no step {step_id!r}") from exc
        if results is None:  # a redelivery: read the facts back
            snap = self._get(ref)
            recorded = StepState(snap.get("state")) if snap.exists else StepState.PENDING
            release = released_by(snap.get("definition"), recorded) if recorded.terminal else []
            return Completion(False, self._read_back(run_id, step_id, marker, release, wide),
                              self._all_ended(run_id))
        unblocked = self._unblocked_now(run_id, step_id, marker, release, wide, results)
        return Completion(True, tuple(unblocked), after(results[2]) == 0 and self._all_ended(run_id))

    def end_steps(self, run_id: str, step_ids: Sequence[str], state: StepState, reason: str,
                  at: float) -> Completion:
        """Each step under its attempt's end marker, so it races a recorded end safely."""
        rule = ending(state)
        recorded, zero, unblocked = False, False, []
        fields = {"state": state.value, "message": reason, "finished_at": at}
        for snap in self._snaps(run_id, step_ids):
            doc = snap.to_dict() or {}
            current, wide = StepState(doc["state"]), set(doc.get("wide") or ())
            release = released_by(doc["definition"], state) if rule.releases else []
            marker = end_marker(snap.id, int(doc.get("attempt", 1)))
            results = None
            if current in rule.from_states:
                results = self._once(self._ending(run_id, snap.id, marker, fields, at, release, wide))
            if results is not None:
                recorded, zero = True, zero or after(results[2]) == 0
                unblocked += self._unblocked_now(run_id, snap.id, marker, release, wide, results)
            elif release and (current in rule.from_states or current is state):  # ended so before: read back
                unblocked += self._read_back(run_id, snap.id, marker, release, wide)
        complete = (zero or not recorded) and self._all_ended(run_id)  # only a shard left at zero can end the run
        return Completion(recorded, tuple(dict.fromkeys(unblocked)), complete)

    def retry_step(self, run_id: str, step_id: str, ended: Attempt, at: float) -> bool:
        """Under the attempt's end marker, so it excludes any other end of that attempt."""
        batch = self._creating(self._end_ref(run_id, end_marker(step_id, ended.attempt)), {"at": at, "retried": True})
        batch.update(self._step_ref(run_id, step_id), {
            "state": StepState.PENDING.value, "attempt": ended.attempt + 1,
            "history": firestore.ArrayUnion([ended.to_dict()]), "job_id": "", "job_state": "", "message": "",
            "submitted_at": None, "finished_at": None})
        try:
            return self._once(batch) is not None
        except gexc.NotFound as exc:
            raise NotFound(f"run {run_id!r} has no step {step_id!r}") from exc

    def heartbeat(self, run_id: str, step_id: str, at: float, spacing: float) -> None:
        self._update(self._step_ref(run_id, step_id), {"checked_at": at})
        run = self._get(self._run_ref(run_id))  # a read, to spare a wide run's document a write per job
        if run.exists and float((run.to_dict() or {}).get("updated_at") or 0) < at - spacing:
            self._update(run.reference, {"updated_at": at})

    # -- an end's batch and the join counters it releases -------------------------------------
    def _ending(self, run_id: str, step_id: str, marker: str, fields: dict[str, Any], at: float,
                release: Sequence[str], wide: Collection[str]) -> Any:
        """A step's end under its end marker: the step's `fields` (with its `state`), its shard
        of the run's counters (write result 2), the join counters of the first BATCH of
        `release` (3 on; a `wide` one's shard)."""
        batch = self._creating(self._end_ref(run_id, marker), {"at": at})
        batch.update(self._step_ref(run_id, step_id), fields)
        self._count_off(batch, run_id, step_id, StepState(fields["state"]), at)
        self._count_down(batch, run_id, step_id, release[:BATCH], wide)
        return batch

    def _unblocked_now(self, run_id: str, step_id: str, marker: str, release: list[str], wide: Collection[str],
                       results: list[Any]) -> list[str]:
        """The successors an end just committed (`results`, of `_ending`) released, with
        those of the chunks past the first batch."""
        return (self._released(run_id, marker, at_zero(release[:BATCH], results[3:]), wide)
                + self._release_rest(run_id, step_id, marker, release, wide))

    def _read_back(self, run_id: str, step_id: str, marker: str, release: list[str],
                   wide: Collection[str]) -> tuple[str, ...]:
        """For an end committed before: finish any chunk left out, then read which successors
        it released that still wait for their dispatch (PENDING): a narrow one waiting on
        nothing, a wide one whose release names this end. A redelivered end thus dispatches
        again only what its own write released, and only until it is dispatched."""
        self._release_rest(run_id, step_id, marker, release, wide)
        if not release:
            return ()
        snaps = self._get_all(run_id, release)
        due = [s for s in release if snaps[s].exists and snaps[s].get("state") == StepState.PENDING.value]
        return tuple(s for s in due if (self._release_wide(run_id, s, marker) if s in wide
                                        else snaps[s].get("waiting_on") == 0))

    def _release_rest(self, run_id: str, step_id: str, marker: str, release: list[str],
                      wide: Collection[str]) -> list[str]:
        """Join counters past the first batch, each chunk once (its own marker)."""
        unblocked: list[str] = []
        for n, start in enumerate(range(BATCH, len(release), BATCH), start=1):
            chunk = release[start:start + BATCH]
            batch = self._creating(self._end_ref(run_id, f"{marker}#{n}"), {})
            self._count_down(batch, run_id, step_id, chunk, wide)
            results = self._once(batch)
            if results is not None:
                unblocked += self._released(run_id, marker, at_zero(chunk, results[1:]), wide)
        return unblocked
