"""The RunStore: a run created once, listed, counted, finished once, rerun once, found stale."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest

from workflow.errors import NotFound
from workflow.model.dag import Task
from workflow.model.inputs import RunInputs
from workflow.model.records import Attempt, Claim, RunRecord, StepOutcome, StepRecord
from workflow.model.states import RunStatus, StepState

from .builders import make_run, ok


class RunsContract:
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

    def test_a_runs_inputs_round_trip(self, store: Any) -> None:
        run_id = f"inputs-{uuid.uuid4().hex[:8]}"
        inputs = RunInputs({"lr": "0.50", "shards": ("a", "b")}, 1_790_000_000.0, "nightly", "ops@example.com",
                           {"train": ("train.0", "train.1")})
        run = RunRecord(run_id, RunStatus.RUNNING, "http://runner", step_count=2, inputs=inputs)
        steps = [StepRecord(run_id, s, Task(s, "img")) for s in ("train.0", "train.1")]
        assert store.create_run(run, steps) is True
        assert store.get_run(run_id).inputs == inputs
        plain = make_run(store, {"a": []})
        assert store.get_run(plain).inputs == RunInputs()

    def test_finish_run_once(self, store: Any) -> None:
        run_id = make_run(store, {"a": []})
        assert store.finish_run(run_id, RunStatus.FAILED, 9.0) is True
        assert store.finish_run(run_id, RunStatus.SUCCEEDED, 10.0) is False
        run = store.get_run(run_id)
        assert run.status is RunStatus.FAILED and run.finished_at == 9.0

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
        store.end_steps(run_id, ["b", "c"], StepState.SKIPPED, "upstream", 3.0)
        store.end_steps(run_id, ["b", "c"], StepState.SKIPPED, "upstream", 3.0)
        run = store.get_run(run_id)
        assert run is not None and run.skipped == 2 and run.succeeded == run.failed == 0

    def test_a_rerun_reopens_the_run_once_and_each_attempt_ends_once(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": ["a"]})
        store.complete_step(run_id, "a", StepOutcome(StepState.FAILED, 2.0, "job-1", "exit 1", "FAILED"))
        store.end_steps(run_id, ["b"], StepState.SKIPPED, "upstream step 'a' failed", 2.0)
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

    def test_a_rerun_may_give_the_steps_it_runs_again_a_new_definition(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": []})
        for step_id, state in (("a", StepState.FAILED), ("b", StepState.SUCCEEDED)):
            store.complete_step(run_id, step_id, StepOutcome(state, 2.0, f"job-{step_id}", "", state.value))
        assert store.finish_run(run_id, RunStatus.FAILED, 3.0)
        a = store.get_step(run_id, "a")
        fixed, policy = Task("a", "img/a:fixed", ("--x", "2")), replace(a.policy, retries=3, timeout=60.0)
        earlier = Attempt(1, a.state, a.job_id, a.message, a.submitted_at, a.finished_at, definition="img/a@01234567")
        new = replace(a, state=StepState.PENDING, attempt=2, job_id="", finished_at=None, history=(earlier,),
                      task=fixed, policy=policy)
        assert store.rerun_steps(run_id, 0, [new], 4.0) is True
        a2, b2 = store.list_steps(run_id)
        assert a2.task == fixed and a2.policy == policy and a2.history == (earlier,) and a2.attempt == 2
        assert b2.task == Task("b", "img/b", ("--x", "1")) and b2.state is StepState.SUCCEEDED

    def test_a_rerun_may_give_the_steps_it_runs_again_their_own_token(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": []})  # each step holds the start's sealed token, "sealed"
        for step_id in ("a", "b"):
            store.complete_step(run_id, step_id, StepOutcome(StepState.FAILED, 2.0, f"job-{step_id}", "", "FAILED"))
        assert store.finish_run(run_id, RunStatus.FAILED, 3.0)
        a = store.get_step(run_id, "a")
        earlier = Attempt(1, a.state, a.job_id, a.message, a.submitted_at, a.finished_at)
        again = replace(a, state=StepState.PENDING, attempt=2, job_id="", finished_at=None, history=(earlier,),
                        tr_auth="sealed-for-the-rerun")
        assert store.rerun_steps(run_id, 0, [again], 4.0) is True
        a2, b2 = store.list_steps(run_id)
        assert (a2.tr_auth, a2.attempt) == ("sealed-for-the-rerun", 2)
        assert (b2.tr_auth, b2.attempt) == ("sealed", 1)  # not run again: untouched

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

    def test_the_running_runs_of_a_schedule_are_found_by_its_name(self, store: Any) -> None:
        tag = uuid.uuid4().hex[:8]
        mine, other = f"nightly-{tag}", f"hourly-{tag}"

        def make(run_id: str, schedule: str, at: float, status: RunStatus = RunStatus.RUNNING) -> str:
            run = RunRecord(run_id, status, "http://runner", created_at=at, step_count=1,
                            inputs=RunInputs(scheduled_at=at, schedule=schedule))
            assert store.create_run(run, [StepRecord(run_id, "a", Task("a", "img"))])
            return run_id

        later = make(f"{mine}-2", mine, 20.0)
        earlier = make(f"{mine}-1", mine, 10.0)
        make(f"{mine}-0", mine, 5.0, RunStatus.SKIPPED)  # a skipped tick never runs
        make(f"{other}-1", other, 10.0)
        make_run(store, {"a": []})  # no schedule
        assert [r.run_id for r in store.running_of_schedule(mine, 10)] == [earlier, later]
        assert len(store.running_of_schedule(mine, 1)) == 1
        assert store.running_of_schedule(f"none-{tag}", 10) == []
        assert store.finish_run(earlier, RunStatus.SUCCEEDED, 30.0)
        found = store.running_of_schedule(mine, 10)
        assert [r.run_id for r in found] == [later] and found[0].inputs.schedule == mine
