"""StepStore on Firestore: `runs/{run}/steps/{step}`. Each end of an attempt is an atomic
batch under that attempt's end marker (`runs/{run}/ends/...`): the step's fields, the
run's counts, and the join counters it releases (`model.join`), the first BATCH of them
in the same commit and the rest in chunks under markers of their own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from ....errors import NotFound, TransientError
from ....model.join import released_by
from ....model.records import Attempt, Completion, StepOutcome, StepRecord
from ....model.states import StepState
from ....model.transitions import ending
from .documents import after, at_zero, count_off
from .layout import BATCH, end_marker, step_of
from .slots import FirestoreSlots

MAX_REREADS = 5  # conditional writes tried before a document that keeps changing is a TransientError


class FirestoreSteps(FirestoreSlots):
    """A step's end frees its slot, so steps come with the slots."""

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
        snap = None
        if successors is None or outcome.state is not StepState.SUCCEEDED:
            snap = self._get(ref)
            if not snap.exists:
                raise NotFound(f"run {run_id!r} has no step {step_id!r}")
            if int((snap.to_dict() or {}).get("attempt", 1)) != outcome.attempt:
                return Completion(False, (), self._open_steps(run_id) == 0)  # a late result of an earlier attempt
            release = released_by(snap.get("definition"), outcome.state)
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
            results = self._once(self._ending(run_id, step_id, marker, fields, outcome.at, release))
        except gexc.NotFound as exc:
            raise NotFound(f"run {run_id!r} has no step {step_id!r}") from exc
        if results is None:  # a redelivery: read the facts back
            snap = snap or self._get(ref)
            recorded = StepState(snap.get("state")) if snap.exists else StepState.PENDING
            release = released_by(snap.get("definition"), recorded) if recorded.terminal else []
            return Completion(False, self._read_back(run_id, marker, release), self._open_steps(run_id) == 0)
        unblocked = self._unblocked_now(run_id, marker, release, results)
        return Completion(True, tuple(unblocked), after(results[2]) == 0)

    def end_steps(self, run_id: str, step_ids: Sequence[str], state: StepState, reason: str,
                  at: float) -> Completion:
        """Each step under its attempt's end marker, so it races a recorded end safely."""
        rule = ending(state)
        recorded, left, unblocked = False, None, []
        fields = {"state": state.value, "message": reason, "finished_at": at}
        for snap in self._snaps(run_id, step_ids):
            doc = snap.to_dict() or {}
            current = StepState(doc["state"])
            release = released_by(doc["definition"], state) if rule.releases else []
            marker = end_marker(snap.id, int(doc.get("attempt", 1)))
            results = None
            if current in rule.from_states:
                results = self._once(self._ending(run_id, snap.id, marker, fields, at, release))
            if results is not None:
                recorded, left = True, after(results[2])
                unblocked += self._unblocked_now(run_id, marker, release, results)
            elif release and (current in rule.from_states or current is state):  # ended so before: read back
                unblocked += self._read_back(run_id, marker, release)
        if left is None:
            left = self._open_steps(run_id)
        return Completion(recorded, tuple(dict.fromkeys(unblocked)), left == 0)

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
                release: Sequence[str] = ()) -> Any:
        """A step's end under its end marker: the step's `fields` (with its `state`), the run's
        counters (write result 2), the join counters of the first BATCH of `release` (3 on)."""
        batch = self._creating(self._end_ref(run_id, marker), {"at": at})
        batch.update(self._step_ref(run_id, step_id), fields)
        batch.update(self._run_ref(run_id), count_off(1, StepState(fields["state"]), at))
        self._count_down(batch, run_id, release[:BATCH])
        return batch

    def _count_down(self, batch: Any, run_id: str, successors: Sequence[str]) -> None:
        for succ in successors:
            batch.update(self._step_ref(run_id, succ), {"waiting_on": firestore.Increment(-1)})

    def _unblocked_now(self, run_id: str, marker: str, release: list[str], results: list[Any]) -> list[str]:
        """The successors an end just committed (`results`, of `_ending`) brought to zero,
        with those of the chunks past the first batch."""
        return at_zero(release[:BATCH], results[3:]) + self._release_rest(run_id, marker, release)

    def _read_back(self, run_id: str, marker: str, release: list[str]) -> tuple[str, ...]:
        """For an end committed before: finish any chunk left out, then read which successors
        wait on nothing."""
        self._release_rest(run_id, marker, release)
        if not release:
            return ()
        snaps = self._get_all(run_id, release)
        return tuple(s for s in release if snaps[s].exists and snaps[s].get("waiting_on") == 0)

    def _release_rest(self, run_id: str, marker: str, release: list[str]) -> list[str]:
        """Join counters past the first batch, each chunk once (its own marker)."""
        unblocked: list[str] = []
        for n, start in enumerate(range(BATCH, len(release), BATCH), start=1):
            chunk = release[start:start + BATCH]
            batch = self._creating(self._end_ref(run_id, f"{marker}#{n}"), {})
            self._count_down(batch, run_id, chunk)
            results = self._once(batch)
            if results is not None:
                unblocked += at_zero(chunk, results[1:])
        return unblocked
