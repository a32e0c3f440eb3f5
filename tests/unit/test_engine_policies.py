"""The engine's handling of retries, step and run timeouts, runIf and maxParallel."""

from __future__ import annotations

import pytest

from enginekit import Harness, ScriptedRunner, dag
from workflow.engine import handle
from workflow.model.dag import Policy, RunIf
from workflow.model.messages import CheckJob, DispatchStep, ReconcileRun, StartRun, SweepRuns, TimeoutRun
from workflow.model.states import RunStatus, StepState
from workflow.settings import Settings

ALL_DONE, ANY_FAILED = Policy(run_if=RunIf.ALL_DONE), Policy(run_if=RunIf.ANY_FAILED)


def start(h: Harness, **kwargs: object) -> None:
    spec = kwargs.pop("spec")
    handle(StartRun("r1", dag(spec, **kwargs), "http://tr"), h.ports)  # type: ignore[arg-type]


def run_status(h: Harness) -> RunStatus:
    run = h.store.get_run("r1")
    assert run is not None
    return run.status


def step(h: Harness, step_id: str):  # type: ignore[no-untyped-def]
    found = h.store.get_step("r1", step_id)
    assert found is not None
    return found


# -- retries ------------------------------------------------------------------------------

def test_a_flaky_step_succeeds_on_its_third_attempt_with_each_attempt_recorded() -> None:
    h = Harness(runner=ScriptedRunner(checks=2, fail_first={"a": 2}))
    start(h, spec={"a": [], "b": ["a"]}, policies={"a": Policy(retries=2, retry_delay=60)})
    h.drain()
    assert h.runner.submitted == ["a", "a", "a", "b"]
    a = step(h, "a")
    assert (a.state, a.attempt, a.job_id) == (StepState.SUCCEEDED, 3, "a-3")
    assert [(x.attempt, x.state, x.job_id, x.retried) for x in a.history] == [
        (1, StepState.FAILED, "a-1", True), (2, StepState.FAILED, "a-2", True)]
    assert all(x.submitted_at and x.finished_at and x.message for x in a.history)
    assert run_status(h) is RunStatus.SUCCEEDED


def test_retry_delays_double_with_jitter_and_are_capped() -> None:
    policy = Policy(retries=20, retry_delay=100)
    first, second = policy.delay_before(1, "s/1"), policy.delay_before(2, "s/2")
    assert 80 <= first <= 120 and 160 <= second <= 240
    assert policy.delay_before(1, "s/1") == first  # the same on every redelivery
    assert policy.delay_before(12, "s/12") == 3600


def test_the_retry_waits_its_delay_on_the_bus() -> None:
    h = Harness(runner=ScriptedRunner(checks=1, fail_first={"a": 1}))
    start(h, spec={"a": []}, policies={"a": Policy(retries=1, retry_delay=60)})
    h.drain(until=h.now + 30)
    assert h.runner.submitted == ["a"] and step(h, "a").state is StepState.PENDING and step(h, "a").attempt == 2
    h.drain()
    assert h.runner.submitted == ["a", "a"] and run_status(h) is RunStatus.SUCCEEDED


def test_retries_used_up_fail_the_step_and_skip_its_descendants() -> None:
    h = Harness()
    start(h, spec={"a": [], "b": ["a"]}, images={"a": "img/error"}, policies={"a": Policy(retries=2)})
    h.drain()
    assert h.runner.submitted == ["a", "a", "a"]
    assert h.states("r1") == {"a": ("FAILED", "a-3"), "b": ("SKIPPED", "")}
    assert len(step(h, "a").history) == 2 and run_status(h) is RunStatus.FAILED


def test_a_refused_submission_and_a_timeout_are_retried() -> None:
    h = Harness(runner=ScriptedRunner(checks=10**6, refuse={"img/a"}), settings=Settings(poll_interval=10))
    start(h, spec={"a": [], "b": []}, policies={"a": Policy(retries=1), "b": Policy(retries=1, timeout=50)})
    h.drain()
    assert h.runner.submitted == ["b", "b"]  # a refused twice, b submitted twice
    a, b = step(h, "a"), step(h, "b")
    assert a.state is StepState.FAILED and a.attempt == 2 and "refused" in a.history[0].message
    assert b.state is StepState.FAILED and "timed out" in b.message and "limit 50 s" in b.history[0].message


def test_a_cancelled_job_a_lost_job_and_an_unknown_submission_are_not_retried() -> None:
    h = Harness(runner=ScriptedRunner(cancelled={"a"}))
    start(h, spec={"a": []}, policies={"a": Policy(retries=3)})
    h.drain()
    assert h.runner.submitted == ["a"] and step(h, "a").history == ()

    h = Harness(runner=ScriptedRunner(lost=True))
    start(h, spec={"a": []}, policies={"a": Policy(retries=3)})
    h.drain()
    assert h.runner.submitted == ["a"] and step(h, "a").state is StepState.FAILED


def test_a_late_result_of_a_retried_attempt_neither_ends_nor_skips_anything() -> None:
    h = Harness(runner=ScriptedRunner(checks=3, fail_first={"a": 1}))
    start(h, spec={"a": [], "b": ["a"]}, policies={"a": Policy(retries=1)})
    checks: list[CheckJob] = []
    while run_status(h) is RunStatus.RUNNING:
        for msg, _ in h.bus.take():
            if isinstance(msg, CheckJob) and msg.attempt == 1:
                checks.append(msg)
            h.now += 100
            handle(msg, h.ports)
    for late in checks:  # every check of attempt 1, delivered again after the run ended
        handle(late, h.ports)
    h.drain()
    assert h.states("r1") == {"a": ("SUCCEEDED", "a-2"), "b": ("SUCCEEDED", "b-3")}
    assert h.runner.submitted == ["a", "a", "b"] and run_status(h) is RunStatus.SUCCEEDED


def test_a_redelivered_failure_retries_once_and_still_dispatches_the_retry() -> None:
    h = Harness(runner=ScriptedRunner(checks=0, fail_first={"a": 1}))
    start(h, spec={"a": []}, policies={"a": Policy(retries=1)})
    handle(h.bus.take()[0][0], h.ports)  # dispatch: submitted, ended at once
    [(check, _)] = h.bus.take()
    handle(check, h.ports)  # retried: a delayed dispatch of attempt 2
    lost = h.bus.take()
    assert [type(m) for m, _ in lost] == [DispatchStep]
    handle(check, h.ports)  # the same end again: no second retry, but the dispatch again
    again = h.bus.take()
    assert [m for m, _ in again] == [m for m, _ in lost] and step(h, "a").attempt == 2
    h.bus.publish([m for m, _ in again])
    h.drain()
    assert h.runner.submitted == ["a", "a"] and step(h, "a").attempt == 2


# -- runIf --------------------------------------------------------------------------------

def test_an_all_done_cleanup_runs_after_a_failure_and_the_run_still_fails() -> None:
    h = Harness()
    start(h, spec={"a": [], "b": ["a"], "cleanup": ["b"], "report": ["a"]},
          images={"a": "img/error"}, policies={"cleanup": ALL_DONE, "report": ANY_FAILED})
    h.drain()
    assert sorted(h.runner.submitted) == ["a", "cleanup", "report"]
    assert {s: st for s, (st, _) in h.states("r1").items()} == {
        "a": "FAILED", "b": "SKIPPED", "cleanup": "SUCCEEDED", "report": "SUCCEEDED"}
    assert run_status(h) is RunStatus.FAILED


def test_an_any_failed_step_is_skipped_when_nothing_failed_and_the_run_succeeds() -> None:
    h = Harness()
    start(h, spec={"a": [], "alert": ["a"], "after": ["alert"], "always": ["alert"]},
          policies={"alert": ANY_FAILED, "always": ALL_DONE})
    h.drain()
    states = {s: st for s, (st, _) in h.states("r1").items()}
    assert states == {"a": "SUCCEEDED", "alert": "SKIPPED", "after": "SKIPPED", "always": "SUCCEEDED"}
    assert "no dependency failed" in step(h, "alert").message
    assert step(h, "after").message == "upstream step 'alert' skipped"
    assert sorted(h.runner.submitted) == ["a", "always"] and run_status(h) is RunStatus.SUCCEEDED


def test_an_all_done_join_waits_for_every_dependency_however_it_ends() -> None:
    h = Harness(runner=ScriptedRunner(checks=5))
    start(h, spec={"bad": [], "slow": [], "join": ["bad", "slow"]},
          images={"bad": "img/error"}, policies={"join": ALL_DONE})
    h.drain()
    join = step(h, "join")
    assert join.state is StepState.SUCCEEDED and join.submitted_at is not None
    assert join.submitted_at >= (step(h, "slow").finished_at or 0)


# -- maxParallel --------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_max_parallel_holds_exactly_and_every_step_runs(seed: int | None) -> None:
    h = Harness(runner=ScriptedRunner(checks=3))
    spec = {"src": [], **{f"m{i}": ["src"] for i in range(30)}, "sink": [f"m{i}" for i in range(30)]}
    start(h, spec=spec, max_parallel=3)
    h.drain(twice=seed is not None, seed=seed)
    assert h.runner.max_in_flight == 3
    assert sorted(h.runner.submitted) == sorted(spec) and run_status(h) is RunStatus.SUCCEEDED


def test_a_lost_wake_up_is_repaired_by_the_redelivered_end() -> None:
    h = Harness(runner=ScriptedRunner(checks=1))
    start(h, spec={"a": [], "b": []}, max_parallel=1)
    for msg, _ in h.bus.take():
        handle(msg, h.ports)  # a takes the slot, b waits for it
    [(check, _)] = h.bus.take()
    handle(check, h.ports)  # a ends: its slot wakes b...
    assert [m for m, _ in h.bus.take()] == [DispatchStep("r1", "b")]  # ...and that dispatch is lost
    handle(check, h.ports)  # the redelivered check wakes b again
    h.drain()
    assert h.runner.submitted == ["a", "b"] and run_status(h) is RunStatus.SUCCEEDED


def test_a_retry_gives_its_slot_back_while_it_waits() -> None:
    h = Harness(runner=ScriptedRunner(checks=1, fail_first={"a": 1}))
    start(h, spec={"a": [], "b": []}, max_parallel=1, policies={"a": Policy(retries=1, retry_delay=3600)})
    h.drain(until=h.now + 100)
    assert sorted(h.runner.submitted) == ["a", "b"] and step(h, "b").state is StepState.SUCCEEDED
    h.drain()
    assert h.runner.submitted.count("a") == 2 and h.runner.max_in_flight == 1


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_every_message_twice_and_shuffled_with_retries_run_if_and_a_limit(seed: int) -> None:
    def once() -> tuple[dict[str, str], list[str], int]:
        h = Harness(runner=ScriptedRunner(checks=2, fail_first={"m1": 1, "m2": 2}))
        spec = {"src": [], **{f"m{i}": ["src"] for i in range(8)}, "cleanup": [f"m{i}" for i in range(8)],
                "alert": ["cleanup"]}
        policies = {f"m{i}": Policy(retries=1, retry_delay=5) for i in range(8)}
        start(h, spec=spec, max_parallel=2, policies={**policies, "cleanup": ALL_DONE, "alert": ANY_FAILED})
        h.drain(twice=True, seed=seed)
        return ({s: st for s, (st, _) in h.states("r1").items()}, sorted(h.runner.submitted),
                h.runner.max_in_flight)

    states, submitted, most = once()
    assert states["m1"] == "SUCCEEDED" and states["m2"] == "FAILED" and states["cleanup"] == "SUCCEEDED"
    assert states["alert"] == "SKIPPED"  # its one dependency, cleanup, did not fail
    assert submitted.count("m1") == 2 and submitted.count("m2") == 2 and submitted.count("m3") == 1
    assert most <= 2


# -- timeouts -----------------------------------------------------------------------------

def test_a_step_timeout_overrides_the_runtime_default() -> None:
    h = Harness(runner=ScriptedRunner(checks=10**6), settings=Settings(poll_interval=10, step_timeout=10**6))
    start(h, spec={"a": []}, policies={"a": Policy(timeout=35)})
    h.drain()
    assert "limit 35 s" in step(h, "a").message and run_status(h) is RunStatus.FAILED


def test_the_run_timeout_fails_open_steps_skips_the_rest_and_ends_the_run_once() -> None:
    h = Harness(runner=ScriptedRunner(checks=10**6), settings=Settings(poll_interval=10, step_timeout=10**6))
    start(h, spec={"a": [], "b": ["a"], "cleanup": ["a"]}, policies={"cleanup": ALL_DONE}, timeout=100)
    h.drain(twice=True, seed=7)
    states = {s: (st, msg) for s, st, msg in ((x.step_id, x.state.value, x.message) for x in h.store.list_steps("r1"))}
    assert states["a"][0] == "FAILED" and "run timed out" in states["a"][1]
    assert states["b"][0] == "SKIPPED" and states["cleanup"][0] == "SKIPPED"
    assert h.runner.submitted == ["a"] and run_status(h) is RunStatus.FAILED
    assert len(h.events.published) == 1


def test_a_run_timeout_delivered_early_waits_and_one_after_the_end_does_nothing() -> None:
    h = Harness()
    start(h, spec={"a": []}, timeout=1000)
    timeouts = [m for m, d in h.bus.take() if isinstance(m, TimeoutRun)]
    assert len(timeouts) == 1 and timeouts[0].deadline == pytest.approx(h.now + 1000)
    handle(timeouts[0], h.ports)
    assert [(type(m), d) for m, d in h.bus.take()] == [(TimeoutRun, pytest.approx(1000))]
    handle(StartRun("r1", dag({"a": []}, timeout=1000), "http://tr"), h.ports)
    h.drain()
    assert run_status(h) is RunStatus.SUCCEEDED
    h.now += 5000
    handle(timeouts[0], h.ports)
    assert run_status(h) is RunStatus.SUCCEEDED and h.bus.take() == []


# -- the sweep ----------------------------------------------------------------------------

def test_the_sweep_repairs_a_run_whose_checks_were_all_lost_and_nothing_runs_twice() -> None:
    settings = Settings(poll_interval=10, step_timeout=10**6, stale_after=300)
    h = Harness(runner=ScriptedRunner(checks=3), settings=settings)
    start(h, spec={"a": [], "b": [], "c": ["a", "b"]})
    for msg, _ in h.bus.take():
        handle(msg, h.ports)  # a and b submitted; their first checks are lost (dead-lettered)
    assert [type(m) for m, _ in h.bus.take()] == [CheckJob, CheckJob]
    h.now += 100
    handle(SweepRuns(stale_after=300), h.ports)
    assert h.bus.take() == []  # quiet for 100 s only: not stale yet
    h.now += 250
    handle(SweepRuns(stale_after=300), h.ports)
    h.drain()
    assert sorted(h.runner.submitted) == ["a", "b", "c"] and run_status(h) is RunStatus.SUCCEEDED


def test_the_sweep_leaves_a_long_job_whose_checks_are_alive_alone() -> None:
    settings = Settings(poll_interval=10, step_timeout=10**6, stale_after=60)
    h = Harness(runner=ScriptedRunner(checks=10**6), settings=settings)
    start(h, spec={"a": []})
    h.drain(until=h.now + 1000)  # a long job, polled every 10 s, its heartbeat every 2 checks
    handle(SweepRuns(stale_after=60), h.ports)
    assert [m for m, _ in h.bus.take()] == []
    a = step(h, "a")
    assert a.state is StepState.RUNNING and a.checked_at is not None and h.now - a.checked_at <= 30


def test_reconciles_that_follow_one_another_start_one_check_chain_per_running_job() -> None:
    settings = Settings(poll_interval=10, step_timeout=10**6, stale_after=300)
    h = Harness(runner=ScriptedRunner(checks=10**6), settings=settings)
    start(h, spec={"a": []})
    for msg, _ in h.bus.take():
        handle(msg, h.ports)
    h.bus.take()  # the first check is lost
    h.now += 1000
    for _ in range(3):  # three sweeps, held back by an outage, delivered together
        handle(SweepRuns(stale_after=300), h.ports)
    reconciles = [m for m, _ in h.bus.take()]
    assert len(reconciles) == 3
    for msg in reconciles:
        handle(msg, h.ports)
    assert [type(m) for m, _ in h.bus.take()] == [CheckJob]


def test_a_reconcile_arms_a_run_timeout_whose_message_was_lost() -> None:
    h = Harness(runner=ScriptedRunner(checks=10**6), settings=Settings(poll_interval=10, step_timeout=10**6))
    start(h, spec={"a": []}, timeout=100)
    lost = [m for m, _ in h.bus.take() if isinstance(m, TimeoutRun)]
    h.bus.publish([DispatchStep("r1", "a")])
    assert len(lost) == 1 and step(h, "a").state is StepState.PENDING
    h.drain(until=h.now + 50)
    assert run_status(h) is RunStatus.RUNNING
    handle(ReconcileRun("r1"), h.ports)  # resume, or the sweep
    h.drain(until=h.now + 200)
    assert run_status(h) is RunStatus.FAILED and "run timed out" in step(h, "a").message
    assert h.store.get_run("r1").timeout == 100  # type: ignore[union-attr]
