"""Semantics and idempotency of the handlers, with messages delivered by hand."""

from __future__ import annotations

import collections
from dataclasses import replace

import pytest

from enginekit import Harness, ScriptedRunner, dag
from workflow.adapters.embedded.events import RecordedEvents
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.engine import handle
from workflow.errors import PoisonMessage, TransientError
from workflow.model.messages import CancelRun, CheckJob, DispatchStep, ReconcileRun, RerunRun, StartRun, StepFinished
from workflow.model.records import Claim, StepOutcome, StepRecord
from workflow.model.states import RunStatus, StepState
from workflow.settings import Settings

FORK_JOIN = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
FORK_FAIL = {"a": [], "b": ["a"], "c": ["a"], "d": ["b"], "e": ["c"], "f": ["d", "e"]}
WIDE = {"src": [], **{f"m{i}": ["src"] for i in range(30)}, "sink": [f"m{i}" for i in range(30)]}


def start(h: Harness, spec: dict[str, list[str]], run_id: str = "r1", **kw: object) -> None:
    h.bus.publish([StartRun(run_id, dag(spec, **kw), "http://runner")])  # type: ignore[arg-type]


def test_fork_join_runs_in_dependency_order_and_succeeds() -> None:
    h = Harness()
    start(h, FORK_JOIN)
    h.drain()
    sub = h.runner.submitted
    assert sub[0] == "a" and sub[-1] == "d" and sorted(sub[1:3]) == ["b", "c"]
    assert {s for s, _ in h.states("r1").values()} == {"SUCCEEDED"}
    run = h.store.get_run("r1")
    assert run is not None and run.status is RunStatus.SUCCEEDED and run.finished_at


def test_failed_branch_skips_its_descendants_and_independent_branch_finishes() -> None:
    h = Harness()
    start(h, FORK_FAIL, images={"b": "img/error"})
    h.drain()
    states = h.states("r1")
    assert states["b"][0] == "FAILED" and states["b"][1]
    assert states["d"] == ("SKIPPED", "") and states["f"] == ("SKIPPED", "")
    assert states["c"][0] == states["e"][0] == "SUCCEEDED"
    assert "d" not in h.runner.submitted and "e" in h.runner.submitted
    steps = {s.step_id: s for s in h.store.list_steps("r1")}
    assert steps["d"].message == "upstream step 'b' failed"
    assert steps["b"].message == "exit 1" and steps["b"].job_state == "FAILED"
    assert steps["c"].job_state == "SUCCEEDED"
    run = h.store.get_run("r1")
    assert run is not None and run.status is RunStatus.FAILED


def test_refused_submission_fails_the_step() -> None:
    h = Harness(runner=ScriptedRunner(refuse={"img/b"}))
    start(h, FORK_JOIN)
    h.drain()
    states = h.states("r1")
    assert states["b"] == ("FAILED", "") and states["d"][0] == "SKIPPED" and states["c"][0] == "SUCCEEDED"
    b = h.store.get_step("r1", "b")
    assert b is not None and "HTTP 400: bad image" in b.message


def test_step_times_out() -> None:
    h = Harness(runner=ScriptedRunner(checks=10**9), settings=Settings(poll_interval=0, step_timeout=0.5))
    start(h, {"slow": []})
    h.drain()
    slow = h.store.get_step("r1", "slow")
    assert slow is not None and slow.state.value == "FAILED" and "timed out" in slow.message


def test_unreachable_status_keeps_polling_then_finishes() -> None:
    h = Harness(runner=ScriptedRunner(checks=2, flaky=3))
    start(h, {"a": []})
    h.drain()
    assert h.states("r1")["a"][0] == "SUCCEEDED"


def test_lost_job_fails_the_step() -> None:
    h = Harness(runner=ScriptedRunner(lost=True))
    start(h, {"a": []})
    h.drain()
    a = h.store.get_step("r1", "a")
    assert a is not None and a.state.value == "FAILED" and "unknown job" in a.message


def test_checks_are_delayed_by_the_polling_interval() -> None:
    h = Harness(runner=ScriptedRunner(checks=10), settings=Settings(poll_interval=7.5))
    start(h, {"a": []})
    delays = []
    for _ in range(6):  # StartRun, then DispatchStep, then checks of the running job
        batch, h.bus.pending, h.bus.delays = h.bus.pending, [], []
        for msg in batch:
            handle(msg, h.ports)
        delays += h.bus.delays
    # The dispatch at once; the first check 1 s after submission, then twice as long each time, up to the interval.
    assert [type(m) for m in h.bus.pending] == [CheckJob] and delays == [0.0, 1.0, 2.0, 4.0, 7.5, 7.5]


@pytest.mark.parametrize("spec", [FORK_JOIN, FORK_FAIL, WIDE], ids=["fork-join", "fork-fail", "wide"])
@pytest.mark.parametrize("seed", range(5))
def test_every_message_twice_in_shuffled_order_gives_the_same_result(
    spec: dict[str, list[str]], seed: int
) -> None:
    images = {"b": "img/error"} if spec is FORK_FAIL else None
    once = Harness(runner=ScriptedRunner(checks=2))
    start(once, spec, images=images)
    once.drain()
    twice = Harness(runner=ScriptedRunner(checks=2))
    start(twice, spec, images=images)
    twice.drain(twice=True, seed=seed)

    def final(h: Harness) -> dict[str, str]:
        return {k: v[0] for k, v in h.states("r1").items()}

    assert final(twice) == final(once)
    assert sorted(twice.runner.submitted) == sorted(once.runner.submitted)
    assert len(twice.runner.submitted) == len(set(twice.runner.submitted))  # each job once
    r1, r2 = once.store.get_run("r1"), twice.store.get_run("r1")
    assert r1 is not None and r2 is not None and r1.status == r2.status
    assert twice.delivered > once.delivered


def test_claims_are_won_once_busy_while_held_and_retaken_after_the_lease() -> None:
    h = Harness()
    assert h.store.claim("r1", "submit:x", h.now, lease=10) is Claim.WON
    assert h.store.claim("r1", "submit:x", h.now + 5, lease=10) is Claim.BUSY
    assert h.store.claim("r1", "submit:x", h.now + 11, lease=10) is Claim.WON  # holder presumed dead
    h.store.settle("r1", "submit:x")
    assert h.store.claim("r1", "submit:x", h.now + 50, lease=10) is Claim.DONE


def test_a_held_submission_is_looked_at_again_after_its_lease_and_never_resubmitted() -> None:
    h = Harness()
    start(h, {"a": [], "b": ["a"]})
    batch, h.bus.pending = h.bus.pending, []
    handle(batch[0], h.ports)  # StartRun
    h.bus.pending.clear()
    h.bus.delays.clear()
    assert h.store.claim("r1", "submit:a", h.now, lease=300) is Claim.WON  # someone else submitting
    handle(DispatchStep("r1", "a"), h.ports)  # a redelivery: no error, no second submission
    assert h.bus.pending == [DispatchStep("r1", "a")] and h.bus.delays == [600.0]
    assert h.runner.submitted == [] and h.states("r1")["a"][0] == "PENDING"
    h.bus.pending.clear()
    h.now += 601  # the holder died mid-submission: its job may or may not exist
    handle(DispatchStep("r1", "a"), h.ports)
    h.drain()
    a = h.store.get_step("r1", "a")
    assert a is not None and a.state is StepState.FAILED and "submission outcome unknown" in a.message
    assert h.runner.submitted == [] and h.states("r1")["b"][0] == "SKIPPED"


def test_a_late_failure_after_a_recorded_success_skips_nothing() -> None:
    h = Harness()
    start(h, {"a": [], "x": [], "c": ["a", "x"]})
    handle(h.bus.pending.pop(0), h.ports)  # StartRun
    h.bus.pending.clear()
    handle(StepFinished("r1", "a", StepState.SUCCEEDED, h.now, "a-1"), h.ports)
    # a second check chain of `a` reports a timeout after its success was recorded,
    # while `c` still waits for `x`
    handle(StepFinished("r1", "a", StepState.FAILED, h.now, "a-1", "timed out"), h.ports)
    states = h.states("r1")
    assert states["a"][0] == "SUCCEEDED" and states["c"][0] == "PENDING"
    c = h.store.get_step("r1", "c")
    assert c is not None and c.waiting_on == 1


def test_a_step_costs_two_messages_dispatch_and_check() -> None:
    h = Harness(runner=ScriptedRunner(checks=1))
    start(h, FORK_JOIN)
    kinds: list[str] = []
    while h.bus.pending:
        msg = h.bus.pending.pop(0)
        kinds.append(type(msg).__name__)
        handle(msg, h.ports)
    assert kinds.count("DispatchStep") == 4 and kinds.count("CheckJob") == 4
    assert "StepFinished" not in kinds and {s for s, _ in h.states("r1").values()} == {"SUCCEEDED"}


def test_a_job_that_ends_at_submission_is_recorded_without_polling() -> None:
    h = Harness(runner=ScriptedRunner(checks=0, message="done at once"))
    start(h, {"a": [], "b": ["a"]})
    h.drain()
    a = h.store.get_step("r1", "a")
    assert a is not None and a.state is StepState.SUCCEEDED and a.message == "done at once"
    assert h.runner._polls == {"a-1": 0, "b-2": 0}  # no status request
    run = h.store.get_run("r1")
    assert run is not None and run.status is RunStatus.SUCCEEDED


class OvertakenStore(SqliteStateStore):
    """Hands the check a dispatch published to the handlers before the dispatch's record of
    the submission lands, as a fast check overtakes that write on Pub/Sub."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.harness: Harness | None = None
        self.recorded: list[bool] = []

    def record_submission(self, step: StepRecord, job_id: str, job_state: str, at: float) -> bool:
        assert self.harness is not None
        for msg, _ in self.harness.bus.take():
            assert isinstance(msg, CheckJob)
            handle(msg, self.harness.ports)
        self.recorded.append(super().record_submission(step, job_id, job_state, at))
        return self.recorded[-1]


@pytest.mark.parametrize("checks", [1, 3])
def test_a_check_that_overtakes_the_record_of_its_submission_is_not_lost(checks: int) -> None:
    store = OvertakenStore()
    h = Harness(runner=ScriptedRunner(checks=checks), store=store)
    store.harness = h
    start(h, {"a": [], "b": ["a"]})
    h.drain()
    assert {s for s, _ in h.states("r1").values()} == {"SUCCEEDED"} and h.runner.submitted == ["a", "b"]
    run = h.store.get_run("r1")
    assert run is not None and run.status is RunStatus.SUCCEEDED
    # the check records the end of a job that ended at its first check, or records the
    # submission of a longer one itself (the True, inside the dispatch's record): the
    # dispatch's record then changes nothing
    assert store.recorded == ([False, False] if checks == 1 else [True, False, True, False])
    a = h.store.get_step("r1", "a")
    assert a is not None and a.job_id == "a-1" and a.submitted_at is not None


class RecordFailsOnce(SqliteStateStore):
    """Fails the first record of a submission, as a store outage would, after the dispatch
    has published its first check."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.failed = False

    def record_submission(self, step: StepRecord, job_id: str, job_state: str, at: float) -> bool:
        if not self.failed:
            self.failed = True
            raise TransientError("Firestore: 503 unavailable")
        return super().record_submission(step, job_id, job_state, at)


def test_a_submission_whose_record_failed_is_recorded_by_its_check_and_never_repeated() -> None:
    # the job runs past the submission lease: without its check's record, the redelivered
    # dispatch would find the lease over and fail the step as "submission outcome unknown"
    h = Harness(runner=ScriptedRunner(checks=20), settings=Settings(poll_interval=60), store=RecordFailsOnce())
    start(h, {"a": [], "b": ["a"]})
    handle(h.bus.pending.pop(0), h.ports)  # StartRun
    dispatch = h.bus.pending.pop(0)
    with pytest.raises(TransientError):
        handle(dispatch, h.ports)
    h.bus.pending.append(dispatch)  # redelivered by the bus
    h.drain()
    assert h.runner.submitted == ["a", "b"] and {s for s, _ in h.states("r1").values()} == {"SUCCEEDED"}
    assert h.states("r1")["a"] == ("SUCCEEDED", "a-1") and h.now > 1000 + h.settings.submit_lease


class CountingStore(SqliteStateStore):
    def __init__(self) -> None:
        super().__init__(":memory:")
        self.calls: collections.Counter[str] = collections.Counter()

    def list_steps(self, run_id: str) -> list[StepRecord]:
        self.calls["list_steps"] += 1
        return super().list_steps(run_id)

    def get_step(self, run_id: str, step_id: str) -> StepRecord | None:
        self.calls["get_step"] += 1
        return super().get_step(run_id, step_id)


def test_failures_in_a_wide_fan_out_read_only_the_steps_they_need() -> None:
    h = Harness(runner=ScriptedRunner(checks=1), store=CountingStore())
    width = 200
    spec = {"src": [], **{f"m{i}": ["src"] for i in range(width)}, "sink": [f"m{i}" for i in range(width)]}
    start(h, spec, images={f"m{i}": "img/error" for i in range(width)})
    h.drain()
    states = h.states("r1")
    assert states["sink"][0] == "SKIPPED" and all(states[f"m{i}"][0] == "FAILED" for i in range(width))
    # each failure reads itself and the sink; the run's end lists the steps once
    assert h.store.calls["list_steps"] <= 3
    assert h.store.calls["get_step"] <= 3 * (width + 2)


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED"])
def test_a_job_ending_without_a_message_says_how_it_ended(state: str) -> None:
    runner = ScriptedRunner(message="")
    runner._end = lambda job_id: state  # type: ignore[method-assign]
    h = Harness(runner=runner)
    start(h, {"a": []})
    h.drain()
    a = h.store.get_step("r1", "a")
    assert a is not None and a.message == f"job {state}"


def test_a_huge_job_message_is_stored_cut_short() -> None:
    h = Harness(runner=ScriptedRunner(message="x" * 2_000_000))
    start(h, {"a": []})
    h.drain()
    a = h.store.get_step("r1", "a")
    assert a is not None and len(a.message) < 2100 and a.message.endswith("more characters cut]")


def test_starting_a_run_id_again_with_another_dag_is_refused() -> None:
    h = Harness()
    start(h, {"a": []})
    h.drain()
    handle(StartRun("r1", dag({"a": []}), "http://runner"), h.ports)  # the same start again: fine
    with pytest.raises(PoisonMessage, match="already exists with another DAG"):
        handle(StartRun("r1", dag({"a": [], "b": ["a"]}), "http://runner"), h.ports)
    assert h.runner.submitted == ["a"] and set(h.states("r1")) == {"a"}


def test_a_refusal_recorded_before_a_crash_is_finished_by_the_redelivered_dispatch() -> None:
    h = Harness(runner=ScriptedRunner(refuse={"img/a"}))
    start(h, {"a": [], "b": ["a"]})
    handle(h.bus.pending.pop(0), h.ports)  # StartRun
    h.bus.pending.clear()
    # the first delivery recorded the refusal and crashed before skipping `b`
    h.store.complete_step("r1", "a", StepOutcome(StepState.FAILED, h.now, message="submission refused"))
    handle(DispatchStep("r1", "a"), h.ports)  # redelivered
    h.drain()
    assert h.states("r1")["b"][0] == "SKIPPED" and h.runner.submitted == []
    run = h.store.get_run("r1")
    assert run is not None and run.status is RunStatus.FAILED


def interrupted(h: Harness, spec: dict[str, list[str]], deliveries: int) -> None:
    """Start a run and deliver only its first `deliveries` messages: the rest are lost."""
    start(h, spec)
    for _ in range(deliveries):
        handle(h.bus.pending.pop(0), h.ports)
    h.bus.pending.clear()


def test_reconcile_continues_an_interrupted_run_without_submitting_anything_twice() -> None:
    h = Harness(runner=ScriptedRunner(checks=2))
    interrupted(h, FORK_JOIN, deliveries=2)  # StartRun, then a's dispatch; a's check was lost
    assert h.states("r1")["a"][0] == "RUNNING"
    handle(ReconcileRun("r1"), h.ports)
    h.drain()
    assert sorted(h.runner.submitted) == ["a", "b", "c", "d"]
    assert len(h.runner.submitted) == 4 and {s for s, _ in h.states("r1").values()} == {"SUCCEEDED"}
    run = h.store.get_run("r1")
    assert run is not None and run.status is RunStatus.SUCCEEDED and run.succeeded == 4


def test_reconcile_fails_a_step_whose_submission_may_have_happened_and_never_resubmits_it() -> None:
    h = Harness()
    interrupted(h, {"a": [], "b": ["a"]}, deliveries=1)  # StartRun only
    assert h.store.claim("r1", "submit:a", h.now, lease=300) is Claim.WON  # a process died holding it
    handle(ReconcileRun("r1"), h.ports)
    h.drain()
    a = h.store.get_step("r1", "a")
    assert a is not None and a.state is StepState.FAILED and "submission outcome unknown" in a.message
    assert h.states("r1")["b"][0] == "SKIPPED" and h.runner.submitted == []
    run = h.store.get_run("r1")
    assert run is not None and run.status is RunStatus.FAILED


def test_reconcile_leaves_a_submission_in_progress_to_its_holder() -> None:
    h = Harness()
    interrupted(h, {"a": []}, deliveries=1)
    assert h.store.claim("r1", "submit:a", h.now, lease=300) is Claim.WON
    handle(ReconcileRun("r1", stale_after=300), h.ports)
    assert h.bus.pending == [] and h.states("r1")["a"][0] == "PENDING"


def test_reconcile_skips_what_a_failure_doomed_and_ends_the_run() -> None:
    h = Harness()
    interrupted(h, {"a": [], "b": ["a"]}, deliveries=1)
    # a's failure was recorded, then the process died before skipping b
    h.store.complete_step("r1", "a", StepOutcome(StepState.FAILED, h.now, "a-1", "exit 1", "FAILED"))
    handle(ReconcileRun("r1"), h.ports)
    h.drain()
    assert h.states("r1")["b"][0] == "SKIPPED" and h.runner.submitted == []
    run = h.store.get_run("r1")
    assert run is not None and run.status is RunStatus.FAILED


def test_reconcile_of_an_ended_run_does_nothing() -> None:
    h = Harness()
    start(h, {"a": []})
    h.drain()
    handle(ReconcileRun("r1"), h.ports)
    assert h.bus.pending == [] and h.runner.submitted == ["a"]


def test_cancel_ends_open_steps_stops_polling_and_submits_nothing_more() -> None:
    h = Harness(runner=ScriptedRunner(checks=10**6))
    interrupted(h, {"a": [], "b": ["a"], "c": []}, deliveries=3)  # StartRun, a and c dispatched
    checks = [CheckJob("r1", s, f"{s}-{i}", 0, "http://runner", "", h.now, "QUEUED") for i, s in ((1, "a"), (2, "c"))]
    handle(CancelRun("r1"), h.ports)
    handle(CancelRun("r1"), h.ports)  # twice: changes nothing more
    for check in checks:  # the polling chains reach their next turn
        handle(check, h.ports)
    assert h.bus.pending == []  # nothing scheduled, nothing dispatched
    assert {k: v[0] for k, v in h.states("r1").items()} == {"a": "CANCELLED", "b": "CANCELLED", "c": "CANCELLED"}
    assert h.states("r1")["a"][1] == "a-1" and sorted(h.runner.submitted) == ["a", "c"]
    run = h.store.get_run("r1")
    assert run is not None and run.status is RunStatus.CANCELLED and run.cancelled == 3
    handle(DispatchStep("r1", "b"), h.ports)  # a late dispatch submits nothing
    assert sorted(h.runner.submitted) == ["a", "c"]


def test_a_dispatch_that_claims_while_it_reads_gives_back_a_claim_it_cannot_use() -> None:
    h = Harness(runner=ScriptedRunner(checks=10**6))
    interrupted(h, {"a": [], "b": ["a"], "c": []}, deliveries=2)  # a dispatched; c's dispatch lost
    handle(CancelRun("r1"), h.ports)
    for step in ("b", "c"):  # late dispatches, each knowing attempt 1: cancelled steps
        handle(DispatchStep("r1", step, 1), h.ports)
        assert h.store.held_since("r1", f"submit:{step}") is None  # given back, not left held
    assert h.runner.submitted == ["a"]
    h2 = Harness(runner=ScriptedRunner(checks=10**6))
    start(h2, {"a": [], "b": []}, max_parallel=1)
    h2.drain(until=h2.now + 0.1)  # both dispatched: one runs, the other waits for the slot
    held = [s for s in ("a", "b") if h2.store.get_step("r1", s).state is StepState.RUNNING]  # type: ignore[union-attr]
    assert len(held) == 1
    other = ({"a", "b"} - set(held)).pop()
    handle(DispatchStep("r1", other, 1), h2.ports)  # an attempt under a limit: the slot comes first
    assert h2.runner.submitted == held and h2.store.held_since("r1", f"submit:{other}") is None


def test_a_dispatch_knowing_an_earlier_attempt_submits_the_current_one_once() -> None:
    h = Harness()
    start(h, FORK_FAIL, images={"b": "img/error"})
    h.drain()
    h.runner.healed = True
    handle(RerunRun("r1", 0), h.ports)
    h.drain()  # d and f were skipped at attempt 1: their dispatches say 1, the steps are at 2
    for step in ("d", "f"):
        assert h.store.held_since("r1", f"submit:{step}") is None  # attempt 1's claim given back
        assert h.store.claim("r1", f"submit:{step}#2", h.now, float("inf")) is Claim.BUSY  # held: submitted
    handle(DispatchStep("r1", "d", 1), h.ports)
    handle(DispatchStep("r1", "d", 2), h.ports)
    assert h.runner.submitted.count("d") == 1 and h.runner.submitted.count("b") == 2


def test_rerun_runs_failed_and_skipped_steps_again_keeping_successes_and_history() -> None:
    h = Harness()
    start(h, FORK_FAIL, images={"b": "img/error"})
    h.drain()
    first = list(h.runner.submitted)
    h.runner.healed = True  # the cause of the failure is fixed
    handle(RerunRun("r1", 0), h.ports)
    handle(RerunRun("r1", 0), h.ports)  # delivered twice: one rerun
    h.drain()
    assert sorted(h.runner.submitted[len(first):]) == ["b", "d", "f"]
    assert {s for s, _ in h.states("r1").values()} == {"SUCCEEDED"}
    b = h.store.get_step("r1", "b")
    assert b is not None and b.attempt == 2 and [(a.attempt, a.state) for a in b.history] == [(1, StepState.FAILED)]
    assert b.history[0].message == "exit 1" and b.history[0].job_id == "b-2"
    run = h.store.get_run("r1")
    assert run is not None and run.status is RunStatus.SUCCEEDED and len(run.reruns) == 1
    assert (run.succeeded, run.failed, run.skipped) == (6, 0, 0)


def test_rerun_from_a_step_takes_its_descendants_too() -> None:
    h = Harness()
    start(h, FORK_JOIN)
    h.drain()
    handle(RerunRun("r1", 0, from_step="b"), h.ports)
    h.drain()
    assert sorted(h.runner.submitted) == ["a", "b", "b", "c", "d", "d"]
    run = h.store.get_run("r1")
    assert run is not None and run.status is RunStatus.SUCCEEDED


def test_a_late_result_of_an_earlier_attempt_does_not_end_the_next_one() -> None:
    h = Harness(runner=ScriptedRunner(checks=3))
    start(h, {"a": []}, images={"a": "img/error"})
    h.drain()
    old_check = CheckJob("r1", "a", "a-1", 7, "http://runner", "", h.now, "RUNNING", attempt=1)
    handle(RerunRun("r1", 0), h.ports)
    handle(h.bus.pending.pop(0), h.ports)  # the dispatch of attempt 2
    a = h.store.get_step("r1", "a")
    assert a is not None and a.attempt == 2 and a.state is StepState.RUNNING
    h.runner._polls["a-1"] = 10**6  # attempt 1's job reports FAILED again
    handle(old_check, h.ports)
    a = h.store.get_step("r1", "a")
    assert a is not None and a.state is StepState.RUNNING and a.job_id == "a-2"


def test_rerun_of_a_running_run_is_refused() -> None:
    h = Harness()
    interrupted(h, {"a": []}, deliveries=1)
    with pytest.raises(PoisonMessage, match="still running"):
        handle(RerunRun("r1", 0), h.ports)


@pytest.mark.parametrize("seed", range(3))
def test_a_run_end_is_announced_once_with_what_subscribers_need(seed: int) -> None:
    h = Harness(runner=ScriptedRunner(checks=2))
    start(h, FORK_FAIL, images={"b": "img/error"})
    h.drain(twice=True, seed=seed)
    assert len(h.events.published) == 1
    event = h.events.published[0]
    assert event["schema_version"] == 1 and event["type"] == "run.ended" and event["status"] == "FAILED"
    assert event["run_id"] == "r1" and event["dag_name"] == "test" and event["reruns"] == 0
    assert event["counts"] == {"steps": 6, "succeeded": 3, "failed": 1, "skipped": 2, "cancelled": 0}
    assert event["failed_steps"] == [{"step_id": "b", "message": "exit 1"}]
    h.runner.healed = True
    handle(RerunRun("r1", 0), h.ports)
    h.drain()
    assert [e["status"] for e in h.events.published] == ["FAILED", "SUCCEEDED"]
    assert h.events.published[1]["reruns"] == 1


def test_an_announcement_that_fails_is_made_by_the_redelivery() -> None:
    h = Harness()
    start(h, {"a": []})
    broken = RecordedEvents()
    broken.run_ended = lambda event: (_ for _ in ()).throw(TransientError("topic unavailable"))  # type: ignore[method-assign]
    h.ports = replace(h.ports, events=broken)
    with pytest.raises(TransientError):
        h.drain()
    h.ports = replace(h.ports, events=h.events, clock=lambda: h.now + 3600)  # the claim's lease has passed
    handle(CheckJob("r1", "a", "a-1", 0, "http://runner", "", h.now, "RUNNING"), h.ports)  # the redelivery
    assert [e["status"] for e in h.events.published] == ["SUCCEEDED"]
