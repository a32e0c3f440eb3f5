"""The StepStore: each transition of a step once, and the join counters its end releases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from workflow.model.dag import Policy, RunIf
from workflow.model.records import Attempt, Claim, StepOutcome
from workflow.model.states import StepState

from .builders import make_run, ok


class StepsContract:
    def test_a_submission_record_never_undoes_what_moved_the_step_on(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": [], "c": [], "d": []})
        read = {s.step_id: s for s in store.list_steps(run_id)}
        # the check of a job that ended at once records its end before the dispatch records the job
        assert store.complete_step(run_id, "a", ok(job="job-a")).recorded
        assert store.record_submission(read["a"], "job-a", "QUEUED", 1.5) is False
        assert store.get_step(run_id, "a").state is StepState.SUCCEEDED
        store.end_steps(run_id, ["b"], StepState.CANCELLED, "cancelled", 2.0)
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
        skipped = store.end_steps(run_id, ["b", "c"], StepState.SKIPPED, "upstream step 'a' failed", 3.0)
        assert skipped.recorded and skipped.run_complete
        again = store.end_steps(run_id, ["b", "c"], StepState.SKIPPED, "other", 4.0)
        assert not again.recorded and again.run_complete
        c = store.get_step(run_id, "c")
        assert c.state is StepState.SKIPPED and c.message == "upstream step 'a' failed"
        assert store.get_step(run_id, "a").message == "exit 1"

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
        skipped = store.end_steps(run_id, ["b"], StepState.SKIPPED, "upstream step 'a' failed", 3.0)
        assert skipped.recorded and skipped.unblocked == ("d",) and not skipped.run_complete
        again = store.end_steps(run_id, ["b"], StepState.SKIPPED, "upstream step 'a' failed", 3.0)
        assert not again.recorded and again.unblocked == ("d",)  # read back, counted once
        assert store.get_step(run_id, "e").waiting_on == 1
        assert store.get_run(run_id).skipped == 1

    def test_fail_steps_ends_open_steps_once_and_releases_nothing(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": ["a"]}, any_end=frozenset({"b"}))
        assert store.record_submission(store.get_step(run_id, "a"), "job-a", "RUNNING", 2.0)
        done = store.end_steps(run_id, ["a"], StepState.FAILED, "run timed out", 3.0)
        assert done.recorded and done.unblocked == () and not done.run_complete
        assert not store.end_steps(run_id, ["a"], StepState.FAILED, "run timed out", 3.0).recorded
        assert store.get_step(run_id, "b").waiting_on == 1 and store.get_run(run_id).failed == 1
        assert store.end_steps(run_id, ["b"], StepState.SKIPPED, "run timed out", 3.0).run_complete

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

    def test_record_job_state_notes_a_running_jobs_state_and_never_overwrites_an_end(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": []})
        assert store.record_submission(store.get_step(run_id, "a"), "job-a", "QUEUED", 2.0)
        running = store.get_step(run_id, "a")
        store.record_job_state(running, "RUNNING")
        assert store.get_step(run_id, "a").job_state == "RUNNING"
        late = store.get_step(run_id, "a")  # a check's read, before the job's end is recorded
        assert store.complete_step(run_id, "a", ok(job="job-a")).recorded
        store.record_job_state(late, "PREPARING")
        a = store.get_step(run_id, "a")
        assert (a.state, a.job_state) == (StepState.SUCCEEDED, "SUCCEEDED")
        store.record_job_state(store.get_step(run_id, "b"), "RUNNING")  # not RUNNING: left as it is
        b = store.get_step(run_id, "b")
        assert (b.state, b.job_state) == (StepState.PENDING, "")
