"""Reconciliation on the local cloud: runs that lost a message, or whose engine function
crashed, are ended by the sweep (SweepRuns every 2 s, runs quiet for 6 s) and ReconcileRun.

Each scenario runs twice. A crash is a SIGKILL of the engine function's process group; the
function is then started again on the same port. Messages reach the engine function through
the local cloud's push gate, which can lose chosen ones until Pub/Sub dead-letters them. No
run is left RUNNING: every test asserts its run's final state, and that no job was submitted
twice (counted at the mock Task Runner).
"""

from __future__ import annotations

import collections
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from devtools.localcloud import processes, pubsub_wiring
from devtools.localcloud.__main__ import build_parser, up
from devtools.localcloud.client import RunTimeout
from devtools.localcloud.scheduler import SweepTimer
from devtools.localcloud.stack import LocalCloud
from devtools.localcloud.wiring import DEAD_LETTER_TOPIC, ENGINE_TARGET
from polling import wait_until
from workflow.errors import InputError
from workflow.model.records import RunRecord, StepRecord
from workflow.model.states import RunStatus, StepState

pytestmark = pytest.mark.cloud

POLL = 0.2
STALE_AFTER = 6.0
SWEEP_EVERY = 2.0
SUBMIT_LEASE = 5.0
TAG = "reconcile"
RUN_TIMEOUT = 120.0
UNKNOWN = "submission outcome unknown"
SWEPT = "sweep: no progress"
TWICE = [1, 2]


@pytest.fixture(scope="module")
def cloud(require_tool: Callable[[Callable[[], LocalCloud]], LocalCloud]) -> Iterator[LocalCloud]:
    processes.install_signal_handlers()
    stack = require_tool(lambda: LocalCloud(
        project="reconcile", poll=POLL, mock_duration=0.2, sweep_every=SWEEP_EVERY, stale_after=STALE_AFTER,
        engine_gate=True, extra_env={"WORKFLOW_SUBMIT_LEASE_SEC": str(SUBMIT_LEASE)}).start())
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def tag(cloud: LocalCloud) -> str:
    cloud.mock.reset()
    return uuid.uuid4().hex[:12]


@pytest.fixture
def dead_letters(cloud: LocalCloud) -> Callable[[], list[dict[str, str]]]:
    """`dead_letters()`: the attributes of every message dead-lettered since the test began."""
    admin = pubsub_wiring.subscription_admin(cloud.pubsub_host)
    subscription = pubsub_wiring.subscription_path(cloud.project, f"{DEAD_LETTER_TOPIC}-sub")
    seen: list[dict[str, str]] = []

    def pull() -> list[dict[str, str]]:
        got = admin.pull(subscription=subscription, max_messages=500, timeout=5).received_messages
        if got:
            admin.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in got])
        seen.extend(dict(m.message.attributes) for m in got)
        return seen

    pull()  # what earlier tests left there
    seen.clear()
    return pull


# --------------------------------------------------------------------------- helpers


def task(tag: str, duration: float) -> dict[str, Any]:
    return {"imageUri": "gcr.io/reconcile/work:1", "labels": {"mock_duration_sec": str(duration), TAG: tag}}


def start(cloud: LocalCloud, dag: Mapping[str, Any], tag: str) -> str:
    name, generation = cloud.upload(json.dumps(dag).encode(), f"{cloud.prefix}{dag['name']}-{tag}.json")
    return cloud.run_id_for(name, generation)


def finished(cloud: LocalCloud, run_id: str) -> RunRecord:
    try:
        return cloud.wait_run(run_id, RUN_TIMEOUT, interval=0.2)
    except RunTimeout as exc:
        pytest.fail(f"{exc}\n{cloud.log_tails(60)}", pytrace=False)


def posts(cloud: LocalCloud, tag: str) -> collections.Counter[str]:
    """POST /job requests per job name for the test's tasks, whatever their answer."""
    return collections.Counter(
        r["body"]["job_name"] for r in cloud.mock.requests()
        if r["method"] == "POST" and r["path"] == "/job" and ((r["body"] or {}).get("labels") or {}).get(TAG) == tag)


def by_id(steps: list[StepRecord]) -> dict[str, StepRecord]:
    return {s.step_id: s for s in steps}


def crash_and_restart(cloud: LocalCloud, before_restart: Callable[[], None] = lambda: None) -> None:
    """SIGKILL the engine function's process group, run `before_restart`, start it again."""
    killed = cloud.functions[ENGINE_TARGET]
    cloud.kill_function(ENGINE_TARGET)
    assert not processes.group_exists(killed.process.pgid)
    before_restart()
    restarted = cloud.restart_function(ENGINE_TARGET)
    assert restarted.port == killed.port and restarted.process.pgid != killed.process.pgid


def reconciled(cloud: LocalCloud, run_id: str) -> int:
    """How often the engine function (as restarted) logged that a sweep reconciled the run."""
    text = cloud.functions[ENGINE_TARGET].process.log_path.read_text(encoding="utf-8", errors="replace")
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{") and SWEPT in line]
    return sum(e.get("run_id") == run_id and str(e.get("message", "")).startswith(SWEPT) for e in entries)


# --------------------------------------------------------------------------- the sweep's stand-in


def test_the_local_cloud_sweeps_on_its_timer_with_the_functions_span(cloud: LocalCloud) -> None:
    # the route of terraform/scheduler.tf: a request to the HTTP start function, which publishes
    # SweepRuns of the functions' own settings (the span and the limit come from their environment)
    assert cloud.function_env()["WORKFLOW_STALE_AFTER_SEC"] == str(STALE_AFTER)
    assert cloud.sweeper is not None
    before = cloud.sweeper.sent
    wait_until(lambda: cloud.sweeper is not None and cloud.sweeper.sent >= before + 2, 30, "two sweeps")
    assert cloud.sweeper.failed == 0


def test_a_sweep_timer_keeps_its_schedule_through_a_failed_request() -> None:
    calls: list[float] = []

    def send() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise TimeoutError("no answer from the start function")

    timer = SweepTimer(send, 0.05).start()
    try:
        wait_until(lambda: timer.sent >= 2, 10, "two sweep requests")
    finally:
        timer.stop()
    assert timer.failed == 1 and len(calls) >= 3


@pytest.mark.parametrize("every", [0.0, -1.0])
def test_a_sweep_timer_needs_a_positive_interval(every: float) -> None:
    with pytest.raises(ValueError, match="interval > 0"):
        SweepTimer(lambda: None, every)


def test_up_takes_the_sweep_interval_and_span_and_refuses_a_zero_span(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["up", "--sweep-every", "0", "--stale-after", "6"])
    assert (args.sweep_every, args.stale_after) == (0.0, 6.0)
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["up", "--stale-after", "0"])
    assert exited.value.code == 2 and "--stale-after: must be > 0 s" in capsys.readouterr().err


def test_up_refuses_a_span_shorter_than_three_polls(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    args = build_parser().parse_args(["up", "--poll", "5", "--stale-after", "14", "--state-file", str(state)])
    with pytest.raises(InputError, match=r"--stale-after 14 must be at least 3 x --poll \(5 s\)"):
        up(args)
    assert not state.exists()
    with pytest.raises(ValueError, match="at least 3 x poll"):
        LocalCloud(poll=5.0, stale_after=14.0)


# --------------------------------------------------------------------------- a. crash mid-submission


@pytest.mark.parametrize("dispatch", ["redelivered", "dead-lettered"])
@pytest.mark.parametrize("repeat", TWICE)
def test_a_crash_while_the_task_runner_accepts_a_job_fails_the_step_without_a_second_post(
    cloud: LocalCloud, tag: str, dispatch: str, repeat: int, dead_letters: Callable[[], list[dict[str, str]]]
) -> None:
    first, second = f"a-{tag}", f"b-{tag}"
    dag = {"name": "crash-submit", "steps": [
        {"id": first, "task": task(tag, 0.2)},
        {"id": second, "dependsOn": [first], "task": task(tag, 0.2)},
    ]}
    cloud.mock.inject_fault("/job", 200, delay=30.0, accept=True)  # the job exists; the answer is late
    run_id = start(cloud, dag, tag)
    wait_until(lambda: posts(cloud, tag)[first] == 1, 60, f"the POST of {first} at the mock")

    def lose_the_dispatch() -> None:
        if dispatch == "dead-lettered":  # its redeliveries ran out while the function was down
            assert cloud.gate is not None
            cloud.gate.drop(lambda a: a.get("type") == "DispatchStep" and a.get("step_id") == first)

    crash_and_restart(cloud, lose_the_dispatch)
    run = finished(cloud, run_id)

    steps = by_id(cloud.steps(run_id))
    assert run.status is RunStatus.FAILED, steps
    assert steps[first].state is StepState.FAILED and UNKNOWN in steps[first].message, steps[first]
    assert steps[second].state is StepState.SKIPPED, steps[second]
    assert posts(cloud, tag) == {first: 1}
    if dispatch == "dead-lettered":
        assert reconciled(cloud, run_id), cloud.log_tails(60)
        wait_until(lambda: any(a.get("type") == "DispatchStep" and a.get("step_id") == first
                               for a in dead_letters()), 60, "the lost DispatchStep in the dead letters")


# --------------------------------------------------------------------------- b. an outage


def fan(tag: str, width: int, seconds: float) -> dict[str, Any]:
    workers = [f"w{i:02d}-{tag}" for i in range(width)]
    return {"name": f"outage-1-{width}", "steps": [
        {"id": f"source-{tag}", "task": task(tag, 0)},
        *({"id": w, "dependsOn": [f"source-{tag}"], "task": task(tag, seconds)} for w in workers),
    ]}


@pytest.mark.parametrize("repeat", TWICE)
def test_an_engine_outage_while_50_jobs_run_is_swept_and_the_run_succeeds(
    cloud: LocalCloud, tag: str, repeat: int, dead_letters: Callable[[], list[dict[str, str]]],
    record_property: Callable[[str, object], None],
) -> None:
    run_id = start(cloud, fan(tag, 50, seconds=8.0), tag)

    def all_running() -> bool:
        steps = cloud.steps(run_id)
        return sum(s.state is StepState.RUNNING for s in steps) == 50

    wait_until(all_running, 60, "50 steps RUNNING", interval=0.2)

    def checks_lost() -> set[str]:
        lost = {a["step_id"] for a in dead_letters() if a.get("type") == "CheckJob" and a.get("run_id") == run_id}
        return lost if len(lost) == 50 else set()

    outage: list[float] = []

    def wait_for_dead_letters() -> None:
        began = time.monotonic()
        wait_until(checks_lost, 120, "the 50 pending checks dead-lettered", interval=0.5)
        outage.append(time.monotonic() - began)

    crash_and_restart(cloud, wait_for_dead_letters)
    restarted, since = time.monotonic(), time.time()
    run = finished(cloud, run_id)
    ended = time.monotonic() - restarted
    steps = by_id(cloud.steps(run_id))
    jobs = {s.job_id for s in steps.values()}
    asked = collections.Counter(r["query"]["job_id"] for r in cloud.mock.requests()
                                if r["path"] == "/jobstatus" and r["time"] >= since and r["query"]["job_id"] in jobs)
    record_property("checks_dead_lettered_after_s", round(outage[0], 1))
    record_property("restart_to_run_end_s", round(ended, 1))
    print(f"outage: 50 checks dead-lettered {outage[0]:.1f} s after the kill; run ended {ended:.1f} s after restart; "
          f"{reconciled(cloud, run_id)} reconciles; status requests per job after it: max {max(asked.values())}, "
          f"{sum(asked.values())} in all")

    assert run.status is RunStatus.SUCCEEDED, [s for s in steps.values() if s.state is not StepState.SUCCEEDED]
    assert len(steps) == 51 and all(s.state is StepState.SUCCEEDED for s in steps.values())
    sent = posts(cloud, tag)
    assert len(sent) == 51 and set(sent.values()) == {1}, sent
    assert reconciled(cloud, run_id), cloud.log_tails(60)


# --------------------------------------------------------------------------- c. one lost check


@pytest.mark.parametrize("repeat", TWICE)
def test_a_check_lost_to_the_dead_letters_is_reissued_by_the_sweep(
    cloud: LocalCloud, tag: str, repeat: int, dead_letters: Callable[[], list[dict[str, str]]]
) -> None:
    first, lost, last = f"a-{tag}", f"b-{tag}", f"c-{tag}"
    dag = {"name": "lost-check", "steps": [
        {"id": first, "task": task(tag, 0.2)},
        {"id": lost, "dependsOn": [first], "task": task(tag, 1.0)},
        {"id": last, "dependsOn": [lost], "task": task(tag, 0.2)},
    ]}
    assert cloud.gate is not None
    cloud.gate.drop(lambda a: a.get("type") == "CheckJob" and a.get("step_id") == lost)
    run_id = start(cloud, dag, tag)
    run = finished(cloud, run_id)

    steps = by_id(cloud.steps(run_id))
    assert run.status is RunStatus.SUCCEEDED, steps
    assert all(s.state is StepState.SUCCEEDED for s in steps.values()), steps
    assert posts(cloud, tag) == {first: 1, lost: 1, last: 1}
    assert reconciled(cloud, run_id), cloud.log_tails(60)
    wait_until(lambda: any(a.get("type") == "CheckJob" and a.get("step_id") == lost for a in dead_letters()),
               60, "the lost check in the dead letters")
