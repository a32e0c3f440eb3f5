"""The StateStore contract, written once; each adapter's test module subclasses it
and provides a `store` fixture (SQLite in tests/unit, Firestore in tests/cloud)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from workflow.errors import NotFound
from workflow.model.dag import Policy, RunIf, Task
from workflow.model.records import Attempt, Claim, RunRecord, StepOutcome, StepRecord
from workflow.model.states import RunStatus, StepState


def make_run(store: Any, spec: dict[str, list[str]], any_end: frozenset[str] = frozenset()) -> str:
    """A run of `spec` ({step: dependencies}); the steps in `any_end` wait for any end of theirs."""
    run_id = f"run-{uuid.uuid4().hex[:10]}"
    succ: dict[str, list[str]] = {s: [] for s in spec}
    for s, deps in spec.items():
        for d in deps:
            succ[d].append(s)
    steps = [
        StepRecord(run_id, s, Task(s, f"img/{s}", ("--x", "1")), tr_url="http://runner", tr_auth="sealed",
                   depends_on=tuple(deps), successors=tuple(succ[s]), waiting_on=len(deps),
                   policy=Policy(retries=2, run_if=RunIf.ALL_DONE if s in any_end else RunIf.ALL_SUCCEEDED),
                   waits_for_any_end=tuple(x for x in succ[s] if x in any_end), max_parallel=2)
        for s, deps in spec.items()
    ]
    run = RunRecord(run_id, RunStatus.RUNNING, "http://runner", "name", "inline", 1.0, step_count=len(spec))
    assert store.create_run(run, steps) is True
    return run_id


def ok(at: float = 2.0, job: str = "job-1") -> StepOutcome:
    return StepOutcome(StepState.SUCCEEDED, at, job, "", "SUCCEEDED")


class StoreContract:
    def fail_reads(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the store's next reads of a step fail (each adapter's module knows how)."""
        raise NotImplementedError

    def test_create_run_is_idempotent_and_round_trips(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": ["a"]})
        run = store.get_run(run_id)
        assert run.status is RunStatus.RUNNING and run.tr_url == "http://runner" and run.step_count == 2
        steps = store.list_steps(run_id)
        assert [s.step_id for s in steps] == ["a", "b"]
        assert steps[1].depends_on == ("a",) and steps[0].successors == ("b",)
        assert steps[0].task == Task("a", "img/a", ("--x", "1")) and steps[1].waiting_on == 1
        assert store.claim(run_id, "submit:a", 3.0, 60.0) is Claim.WON
        assert store.record_submission(store.get_step(run_id, "a"), "job-a", "QUEUED", 3.0) is True
        again = RunRecord(run_id, RunStatus.RUNNING, "http://other", step_count=2)
        assert store.create_run(again, []) is False
        a = store.get_step(run_id, "a")
        assert a.state is StepState.RUNNING and a.job_id == "job-a" and a.submitted_at == 3.0
        assert a.tr_url == "http://runner" and a.tr_auth == "sealed"
        assert store.get_run(run_id).tr_url == "http://runner"
        assert store.get_run("nope") is None and store.get_step(run_id, "nope") is None
        with pytest.raises(NotFound):
            store.complete_step(run_id, "nope", ok())

    def test_a_submission_record_never_undoes_what_moved_the_step_on(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": [], "c": [], "d": []})
        read = {s.step_id: s for s in store.list_steps(run_id)}
        # the check of a job that ended at once records its end before the dispatch records the job
        assert store.complete_step(run_id, "a", ok(job="job-a")).recorded
        assert store.record_submission(read["a"], "job-a", "QUEUED", 1.5) is False
        assert store.get_step(run_id, "a").state is StepState.SUCCEEDED
        store.cancel_steps(run_id, ["b"], "cancelled", 2.0)
        assert store.record_submission(read["b"], "job-b", "QUEUED", 1.5) is False
        assert store.get_step(run_id, "b").state is StepState.CANCELLED
        assert store.retry_step(run_id, "c", Attempt(1, StepState.FAILED, retried=True), 3.0)
        assert store.record_submission(read["c"], "job-c1", "QUEUED", 3.5) is False  # attempt 1's record
        assert store.get_step(run_id, "c").job_id == ""
        store.queue_steps(run_id, ["d"], 2.0)  # a write that leaves the step PENDING at its attempt
        assert store.record_submission(read["d"], "job-d", "RUNNING", 2.5) is True
        assert store.record_submission(read["d"], "job-d", "RUNNING", 2.5) is False  # recorded already
        d = store.get_step(run_id, "d")
        assert (d.state, d.job_id, d.submitted_at) == (StepState.RUNNING, "job-d", 2.5)

    def test_claim_reading_claims_as_claim_does_and_a_release_lets_the_next_caller_win(self, store: Any) -> None:
        run_id = make_run(store, {"a": []})
        claim, step = store.claim_reading(run_id, "submit:a", "a", 1.0)
        assert claim is Claim.WON and step.step_id == "a" and step.state is StepState.PENDING
        assert store.claim_reading(run_id, "submit:a", "a", 10**9)[0] is Claim.BUSY  # no lease: never taken over
        store.release(run_id, "submit:a")
        assert store.held_since(run_id, "submit:a") is None
        assert store.claim_reading(run_id, "submit:a", "a", 2.0)[0] is Claim.WON
        store.settle(run_id, "submit:a")
        assert store.claim_reading(run_id, "submit:a", "a", 3.0)[0] is Claim.DONE
        assert store.claim_reading(run_id, "submit:nope", "nope", 3.0) == (Claim.WON, None)

    def test_a_claim_whose_read_failed_is_given_back(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        run_id = make_run(store, {"a": []})
        with monkeypatch.context() as patched:
            self.fail_reads(store, patched)
            with pytest.raises(Exception, match="read failed"):
                store.claim_reading(run_id, "submit:a", "a", 1.0)
        assert store.held_since(run_id, "submit:a") is None
        assert store.claim_reading(run_id, "submit:a", "a", 2.0)[0] is Claim.WON

    def test_claim_lifecycle(self, store: Any) -> None:
        run_id = make_run(store, {"a": []})
        assert store.claim(run_id, "submit:a", 10.0, 5.0) is Claim.WON
        assert store.claim(run_id, "submit:a", 12.0, 5.0) is Claim.BUSY
        assert store.claim(run_id, "submit:a", 16.0, 5.0) is Claim.WON
        store.settle(run_id, "submit:a")
        store.settle(run_id, "submit:a")
        assert store.claim(run_id, "submit:a", 100.0, 5.0) is Claim.DONE
        assert store.claim(run_id, "check:a:0", 100.0, 5.0) is Claim.WON

    def test_complete_step_releases_joins_once(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": [], "c": ["a", "b"]})
        first = store.complete_step(run_id, "a", ok())
        assert first.recorded and first.unblocked == () and not first.run_complete
        again = store.complete_step(run_id, "a", ok())
        assert not again.recorded and again.unblocked == ()
        assert store.get_step(run_id, "c").waiting_on == 1
        second = store.complete_step(run_id, "b", ok(job="job-b"))
        assert second.recorded and second.unblocked == ("c",)
        assert store.complete_step(run_id, "b", ok(job="job-b")).unblocked == ("c",)
        b = store.get_step(run_id, "b")
        assert b.state is StepState.SUCCEEDED and b.job_id == "job-b" and b.finished_at == 2.0
        assert b.job_state == "SUCCEEDED"
        done = store.complete_step(run_id, "c", ok())
        assert done.recorded and done.run_complete
        assert store.complete_step(run_id, "c", ok()).run_complete

    def test_skip_counts_each_step_once(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": ["a"], "c": ["b"]})
        failed = StepOutcome(StepState.FAILED, 2.0, "job-a", "exit 1")
        assert not store.complete_step(run_id, "a", failed).run_complete
        skipped = store.skip_steps(run_id, ["b", "c"], "upstream step 'a' failed", 3.0)
        assert skipped.recorded and skipped.run_complete
        again = store.skip_steps(run_id, ["b", "c"], "other", 4.0)
        assert not again.recorded and again.run_complete
        c = store.get_step(run_id, "c")
        assert c.state is StepState.SKIPPED and c.message == "upstream step 'a' failed"
        assert store.get_step(run_id, "a").message == "exit 1"

    def test_finish_run_once(self, store: Any) -> None:
        run_id = make_run(store, {"a": []})
        assert store.finish_run(run_id, RunStatus.FAILED, 9.0) is True
        assert store.finish_run(run_id, RunStatus.SUCCEEDED, 10.0) is False
        run = store.get_run(run_id)
        assert run.status is RunStatus.FAILED and run.finished_at == 9.0

    def test_wide_join_fires_exactly_once_under_concurrency(self, store: Any) -> None:
        width = 200
        spec: dict[str, list[str]] = {f"p{i}": [] for i in range(width)}
        spec["join"] = [f"p{i}" for i in range(width)]
        run_id = make_run(store, spec)
        calls = [f"p{i}" for i in range(width)] * 2  # every predecessor finishes twice
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda s: store.complete_step(run_id, s, ok()), calls))
        assert sum(r.recorded for r in results) == width
        assert sum(1 for r in results if r.recorded and r.unblocked == ("join",)) == 1
        assert store.get_step(run_id, "join").waiting_on == 0
        assert not any(r.run_complete for r in results)

    def test_runs_are_listed_newest_first_with_their_counts(self, store: Any) -> None:
        tag = uuid.uuid4().hex[:6]
        ids = []
        for i, status in enumerate([RunStatus.RUNNING, RunStatus.FAILED, RunStatus.RUNNING]):
            run_id = f"list-{tag}-{i}"
            run = RunRecord(run_id, status, "http://runner", "name", "inline", 10_000_000.0 + i, step_count=2)
            steps = [StepRecord(run_id, s, Task(s, f"img/{s}"), waiting_on=0) for s in ("a", "b")]
            assert store.create_run(run, steps)
            ids.append(run_id)
        store.complete_step(ids[2], "a", ok())
        store.complete_step(ids[2], "b", StepOutcome(StepState.FAILED, 3.0, "j", "exit 1", "FAILED"))
        newest = store.list_runs(2)
        assert [r.run_id for r in newest] == [ids[2], ids[1]]
        assert (newest[0].succeeded, newest[0].failed, newest[0].skipped) == (1, 1, 0)
        running = [r.run_id for r in store.list_runs(100, RunStatus.RUNNING) if r.run_id.startswith(f"list-{tag}")]
        assert running == [ids[2], ids[0]]

    def test_skipped_steps_are_counted_on_the_run(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": ["a"], "c": ["b"]})
        store.skip_steps(run_id, ["b", "c"], "upstream", 3.0)
        store.skip_steps(run_id, ["b", "c"], "upstream", 3.0)
        run = store.get_run(run_id)
        assert run is not None and run.skipped == 2 and run.succeeded == run.failed == 0

    def test_held_since_reports_only_unsettled_claims(self, store: Any) -> None:
        run_id = make_run(store, {"a": []})
        assert store.held_since(run_id, "submit:a") is None
        assert store.claim(run_id, "submit:a", 50.0, lease=10) is Claim.WON
        assert store.held_since(run_id, "submit:a") == 50.0
        store.settle(run_id, "submit:a")
        assert store.held_since(run_id, "submit:a") is None

    def test_a_rerun_reopens_the_run_once_and_each_attempt_ends_once(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": ["a"]})
        store.complete_step(run_id, "a", StepOutcome(StepState.FAILED, 2.0, "job-1", "exit 1", "FAILED"))
        store.skip_steps(run_id, ["b"], "upstream step 'a' failed", 2.0)
        assert store.finish_run(run_id, RunStatus.FAILED, 3.0)
        a, b = store.list_steps(run_id)
        again = [
            replace(s, state=StepState.PENDING, attempt=2, waiting_on=w, job_id="", message="", finished_at=None,
                    history=(Attempt(1, s.state, s.job_id, s.message, s.submitted_at, s.finished_at),))
            for s, w in ((a, 0), (b, 1))
        ]
        assert store.rerun_steps(run_id, 0, again, 4.0) is True
        assert store.rerun_steps(run_id, 0, again, 4.5) is False  # a repeated request
        run = store.get_run(run_id)
        assert run is not None and run.status is RunStatus.RUNNING and run.reruns == (4.0,)
        assert (run.failed, run.skipped) == (0, 0) and run.finished_at is None
        a2 = store.get_step(run_id, "a")
        assert a2 is not None and a2.attempt == 2 and a2.state is StepState.PENDING and a2.job_id == ""
        assert a2.history == (Attempt(1, StepState.FAILED, "job-1", "exit 1", None, 2.0),)
        late = store.complete_step(run_id, "a", StepOutcome(StepState.FAILED, 5.0, "job-1", "late", "FAILED"))
        assert late.recorded is False and store.get_step(run_id, "a").state is StepState.PENDING
        done = store.complete_step(run_id, "a", replace(ok(6.0, "job-2"), attempt=2))
        assert done.recorded and done.unblocked == ("b",)
        last = store.complete_step(run_id, "b", replace(ok(7.0, "job-3"), attempt=2))
        assert last.run_complete
        assert store.finish_run(run_id, RunStatus.SUCCEEDED, 8.0) is True
        run = store.get_run(run_id)
        assert run is not None and run.status is RunStatus.SUCCEEDED and run.succeeded == 2

    def test_an_end_recorded_with_its_successors_given_releases_joins_once(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": ["a"], "c": ["a", "b"]})
        first = store.complete_step(run_id, "a", ok(), successors=("b", "c"))
        again = store.complete_step(run_id, "a", ok(), successors=("b", "c"))
        assert first.recorded and first.unblocked == ("b",)
        assert not again.recorded and again.unblocked == ("b",)
        assert {s.step_id: s.waiting_on for s in store.list_steps(run_id)} == {"a": 0, "b": 0, "c": 1}

    def test_steps_keep_their_policy_and_limit(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": ["a"]}, any_end=frozenset({"b"}))
        a, b = store.list_steps(run_id)
        assert a.policy == Policy(retries=2) and a.waits_for_any_end == ("b",) and a.max_parallel == 2
        assert b.policy.run_if is RunIf.ALL_DONE and b.waits_for_any_end == ()

    def test_a_failure_or_a_skip_releases_only_the_steps_waiting_for_any_end(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": ["a"], "c": ["a"], "d": ["b"], "e": ["b", "c"]},
                          any_end=frozenset({"c", "d", "e"}))
        failed = StepOutcome(StepState.FAILED, 2.0, "job-a", "exit 1", "FAILED")
        done = store.complete_step(run_id, "a", failed)
        assert done.recorded and done.unblocked == ("c",)
        assert store.complete_step(run_id, "a", failed).unblocked == ("c",)  # read back
        skipped = store.skip_steps(run_id, ["b"], "upstream step 'a' failed", 3.0)
        assert skipped.recorded and skipped.unblocked == ("d",) and not skipped.run_complete
        again = store.skip_steps(run_id, ["b"], "upstream step 'a' failed", 3.0)
        assert not again.recorded and again.unblocked == ("d",)  # read back, counted once
        assert store.get_step(run_id, "e").waiting_on == 1
        assert store.get_run(run_id).skipped == 1

    def test_fail_steps_ends_open_steps_once_and_releases_nothing(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": ["a"]}, any_end=frozenset({"b"}))
        assert store.record_submission(store.get_step(run_id, "a"), "job-a", "RUNNING", 2.0)
        done = store.fail_steps(run_id, ["a"], "run timed out", 3.0)
        assert done.recorded and done.unblocked == () and not done.run_complete
        assert not store.fail_steps(run_id, ["a"], "run timed out", 3.0).recorded
        assert store.get_step(run_id, "b").waiting_on == 1 and store.get_run(run_id).failed == 1
        assert store.skip_steps(run_id, ["b"], "run timed out", 3.0).run_complete

    def test_a_retry_starts_the_next_attempt_once_and_excludes_that_attempts_end(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": ["a"]})
        assert store.record_submission(store.get_step(run_id, "a"), "job-1", "RUNNING", 2.0)
        ended = Attempt(1, StepState.FAILED, "job-1", "exit 1", 2.0, 3.0, retried=True)
        assert store.retry_step(run_id, "a", ended, 3.0) is True
        assert store.retry_step(run_id, "a", ended, 3.0) is False
        late = StepOutcome(StepState.SUCCEEDED, 4.0, "job-1", "", "SUCCEEDED", attempt=1)
        assert store.complete_step(run_id, "a", late).recorded is False  # attempt 1 ended already
        a = store.get_step(run_id, "a")
        assert (a.state, a.attempt, a.job_id, a.history) == (StepState.PENDING, 2, "", (ended,))
        assert a.retries_taken == 1 and store.get_run(run_id).failed == 0
        assert store.claim(run_id, "submit:a#2", 5.0, 60.0) is Claim.WON
        assert store.record_submission(store.get_step(run_id, "a"), "job-2", "RUNNING", 5.0)
        done = store.complete_step(run_id, "a", replace(late, at=6.0, job_id="job-2", attempt=2))
        assert done.recorded and done.unblocked == ("b",)
        ok_then = StepOutcome(StepState.FAILED, 7.0, "job-2", "x", "FAILED", attempt=2)
        assert store.retry_step(run_id, "a", Attempt(2, StepState.FAILED, retried=True), 7.0) is False
        assert store.complete_step(run_id, "a", ok_then).recorded is False

    def test_slots_hold_the_limit_and_each_release_wakes_the_longest_waiting(self, store: Any) -> None:
        run_id = make_run(store, {f"s{i}": [] for i in range(5)})
        assert store.take_slot(run_id, "s0", 1, 2, 10.0) and store.take_slot(run_id, "s1", 1, 2, 11.0)
        assert store.take_slot(run_id, "s0", 1, 2, 12.0)  # held already: still one slot
        assert not store.take_slot(run_id, "s2", 1, 2, 13.0)
        assert not store.take_slot(run_id, "s3", 1, 2, 14.0)
        assert not store.take_slot(run_id, "s2", 1, 2, 15.0)  # keeps its place in the queue
        assert store.free_slot(run_id, "s0", 1) == "s2"
        assert store.free_slot(run_id, "s0", 1) == "s2"  # a repeated release names the same step
        assert store.take_slot(run_id, "s2", 1, 2, 16.0)
        assert not store.take_slot(run_id, "s4", 1, 2, 17.0)
        assert store.free_slot(run_id, "s1", 1) == "s3"
        assert store.take_slot(run_id, "s3", 1, 2, 18.0)
        assert store.free_slot(run_id, "s2", 1) == "s4" and store.free_slot(run_id, "s3", 1) is None
        assert store.take_slot(run_id, "s4", 1, 2, 19.0)

    def test_concurrent_takers_never_hold_more_slots_than_the_limit(self, store: Any) -> None:
        run_id = make_run(store, {f"s{i}": [] for i in range(12)})
        with ThreadPoolExecutor(8) as pool:  # every step twice, as two deliveries would
            got = list(pool.map(lambda i: store.take_slot(run_id, f"s{i % 12}", 1, 3, float(i)), range(24)))
        holders = {f"s{i % 12}" for i, won in enumerate(got) if won}
        assert len(holders) == 3

    def test_a_rerun_gives_back_the_slots_its_steps_held(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": []})
        assert store.take_slot(run_id, "a", 1, 1, 1.0) and not store.take_slot(run_id, "b", 1, 1, 2.0)
        store.cancel_steps(run_id, ["a", "b"], "run cancelled", 3.0)  # a's slot is never released
        assert store.finish_run(run_id, RunStatus.CANCELLED, 3.0)
        again = [replace(s, state=StepState.PENDING, attempt=2, history=(Attempt(1, s.state),))
                 for s in store.list_steps(run_id)]
        assert store.rerun_steps(run_id, 0, again, 4.0)
        assert store.take_slot(run_id, "b", 2, 1, 5.0) and not store.take_slot(run_id, "a", 2, 1, 6.0)

    def test_heartbeats_and_step_ends_move_a_runs_progress_and_stale_runs_come_stalest_first(
            self, store: Any) -> None:
        quiet, busy, ended = (make_run(store, {"a": []}) for _ in range(3))
        store.heartbeat(busy, "a", 50.0, 10.0)
        store.heartbeat(busy, "a", 55.0, 10.0)  # the step's, but not the run's: it moved 5 s ago
        store.complete_step(quiet, "a", replace(ok(20.0), state=StepState.FAILED))  # no finish_run yet
        store.complete_step(ended, "a", ok(10.0))
        assert store.finish_run(ended, RunStatus.SUCCEEDED, 11.0)
        assert store.get_step(busy, "a").checked_at == 55.0 and store.get_run(busy).updated_at == 50.0
        mine = {quiet, busy, ended}
        assert [r.run_id for r in store.stale_runs(60.0, 1000) if r.run_id in mine] == [quiet, busy]
        assert [r.run_id for r in store.stale_runs(30.0, 1000) if r.run_id in mine] == [quiet]
        assert len(store.stale_runs(60.0, 1)) == 1

    def test_a_runs_timeout_is_kept(self, store: Any) -> None:
        run_id = f"run-{uuid.uuid4().hex[:10]}"
        run = RunRecord(run_id, RunStatus.RUNNING, "http://runner", created_at=5.0, timeout=3600.0)
        assert store.create_run(run, [])
        assert store.get_run(run_id).timeout == 3600.0
        assert store.get_run(make_run(store, {"a": []})).timeout is None
