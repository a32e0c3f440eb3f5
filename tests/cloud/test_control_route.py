"""Run control on the local cloud (emulators, the six functions, the mock Task Runner):
cancel, rerun and resume go by the control route; the start route refuses them; over HTTP
the caller is recorded and limited to the run's starter or WORKFLOW_RUN_ADMINS; a rerun
that brings its own token sends that token to the Task Runner, and the starter's no longer.

On Cloud Run the caller's Google ID token is checked before a function sees it; the local
cloud has nothing in front of its functions, so the tests name a caller with an unsigned
token of the same shape (`devtools.localcloud.client.id_token_for`).
"""

from __future__ import annotations

import collections
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.localcloud import processes
from devtools.localcloud.client import RunTimeout
from devtools.localcloud.stack import LocalCloud
from devtools.localcloud.wiring import START_TARGET
from devtools.mock_runner import fingerprint
from polling import wait_until
from workflow.model.records import RunRecord, StepRecord
from workflow.model.states import RunStatus, StepState

pytestmark = pytest.mark.cloud

TAG = "control"  # the label holding a test's unique tag
OPS = "ops@example.com"  # WORKFLOW_RUN_ADMINS
ALICE, MALLORY = "alice@example.com", "mallory@example.com"
BUSY = "workflow.engine.context.Busy: "  # a duplicate delivery finding the other at work: redelivered


@pytest.fixture(scope="module")
def cloud(require_tool: Callable[[Callable[[], LocalCloud]], LocalCloud]) -> Iterator[LocalCloud]:
    processes.install_signal_handlers()
    began = time.monotonic()
    stack = require_tool(lambda: LocalCloud(project="control-test", poll=0.1, mock_duration=0.2, sweep_every=0,
                                            extra_env={"WORKFLOW_RUN_ADMINS": OPS}).start())
    print(f"local cloud up in {time.monotonic() - began:.1f} s")
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def tag(cloud: LocalCloud) -> Iterator[str]:
    """A tag unique to the test; the test fails if a function logged an error meanwhile or
    left a run RUNNING."""
    before = len(cloud.function_errors())
    yield uuid.uuid4().hex[:12]
    errors = [e for e in cloud.function_errors()[before:] if BUSY not in e]
    assert not errors, "the functions logged errors:\n" + "\n".join(errors) + "\n" + cloud.log_tails(60)
    left = [r.run_id for r in cloud.store().list_runs(1000, RunStatus.RUNNING)]
    assert not left, f"runs left RUNNING: {left}"


def long_dag(tag: str, seconds: str = "20") -> dict[str, Any]:
    """A step that runs `seconds` at the mock, then one after it."""
    labels = {"mock_duration_sec": seconds, TAG: tag}
    return {"steps": [{"id": "slow", "task": {"imageUri": "gcr.io/control/slow:1", "labels": labels}},
                      {"id": "after", "dependsOn": ["slow"],
                       "task": {"imageUri": "gcr.io/control/after:1", "labels": {TAG: tag}}}]}


def running(cloud: LocalCloud, run_id: str) -> StepRecord:
    """The run's first step, once its job runs at the mock."""
    [step] = wait_until(lambda: [s for s in cloud.steps(run_id) if s.state is StepState.RUNNING and s.job_id],
                        timeout=60, what=f"run {run_id}'s first job to run")
    return step


def finished(cloud: LocalCloud, run_id: str) -> RunRecord:
    try:
        return cloud.wait_run(run_id, 90)
    except RunTimeout as exc:
        pytest.fail(f"{exc}\n{cloud.log_tails(60)}", pytrace=False)


def start_log(cloud: LocalCloud) -> str:
    return cloud.logs[START_TARGET].read_text(encoding="utf-8", errors="replace")


def test_a_cancel_on_the_control_topic_cancels_a_running_run(cloud: LocalCloud, tag: str) -> None:
    run_id = f"topic-{tag}"
    cloud.publish_start({"run_id": run_id, "dag": long_dag(tag)})
    running(cloud, run_id)
    cloud.publish_control({"action": "cancel", "run_id": run_id})
    assert finished(cloud, run_id).status is RunStatus.CANCELLED
    steps = cloud.steps(run_id)
    assert {s.state for s in steps} == {StepState.CANCELLED}
    assert {s.message for s in steps} == {"cancelled by a publisher on the control topic"}


def test_a_cancel_on_the_start_route_is_refused_and_changes_nothing(cloud: LocalCloud, tag: str) -> None:
    run_id = f"start-route-{tag}"
    cloud.publish_start({"run_id": run_id, "dag": long_dag(tag, "1.5")})
    step = running(cloud, run_id)
    message_id = cloud.publish_start({"action": "cancel", "run_id": run_id})
    wait_until(lambda: f"refused message {message_id} on the start topic (run {run_id})" in start_log(cloud),
               timeout=60, what="the start topic's refusal")
    status, answer = cloud.post_start({"action": "cancel", "run_id": run_id}, caller=OPS)
    assert status == 400 and "on_control_request" in answer["problems"][0], answer
    assert finished(cloud, run_id).status is RunStatus.SUCCEEDED  # the cancels changed nothing
    assert cloud.run(f"start-{message_id}") is None  # and nothing was recorded as a run
    assert cloud.steps(run_id)[0].job_id == step.job_id


def test_over_http_a_stranger_is_refused_and_the_starters_cancel_names_the_starter(
    cloud: LocalCloud, tag: str
) -> None:
    run_id = f"http-{tag}"
    status, _ = cloud.post_start({"run_id": run_id, "dag": long_dag(tag)}, caller=ALICE)
    assert status == 202
    step = running(cloud, run_id)
    assert cloud.run(run_id).inputs.started_by == ALICE  # type: ignore[union-attr]
    before = cloud.steps(run_id)
    for caller in (MALLORY, ""):
        status, answer = cloud.post_control({"action": "cancel", "run_id": run_id}, caller=caller)
        assert status == 403 and "may not cancel" in answer["error"], answer
    status, answer = cloud.post_control({"action": "rerun", "run_id": run_id, "reruns": 0}, caller=MALLORY)
    assert status == 403, answer
    run = cloud.run(run_id)
    assert run is not None and run.status is RunStatus.RUNNING and run.reruns == ()
    assert [(s.state, s.job_id, s.message) for s in cloud.steps(run_id)] == [
        (s.state, s.job_id, s.message) for s in before]

    status, answer = cloud.post_control({"action": "cancel", "run_id": run_id}, caller=ALICE)
    assert (status, answer) == (202, {"run_id": run_id, "action": "cancel"})
    assert finished(cloud, run_id).status is RunStatus.CANCELLED
    steps = {s.step_id: s for s in cloud.steps(run_id)}
    assert steps["slow"].message == f"cancelled by {ALICE} over HTTP" and steps["slow"].job_id == step.job_id


def test_a_rerun_with_its_own_token_sends_it_and_no_longer_the_starters(
    cloud: LocalCloud, tag: str, record_property: Callable[[str, object], None]
) -> None:
    run_id = f"token-{tag}"
    starters, own = f"eyJ.start-{uuid.uuid4().hex}", f"eyJ.rerun-{uuid.uuid4().hex}"
    labels = {"mock_duration_sec": "0.3", "mock_fail_attempts": "1", TAG: tag}  # the first job fails
    dag = {"steps": [{"id": "work", "task": {"name": f"work-{tag}", "imageUri": "gcr.io/control/work:1",
                                              "labels": labels}}]}
    status, _ = cloud.post_start({"run_id": run_id, "dag": dag, "tr_auth_jwt": starters}, caller=ALICE)
    assert status == 202
    assert finished(cloud, run_id).status is RunStatus.FAILED
    first = job_auths(cloud, tag)
    rerun = {"action": "rerun", "run_id": run_id, "reruns": 0, "tr_auth_jwt": own}
    status, answer = cloud.post_control(rerun, caller=ALICE)
    assert status == 202, answer
    run = wait_until(lambda: (r := cloud.run(run_id)) is not None and r.reruns and r.status.terminal and r,
                     timeout=90, what="the rerun's end")
    assert run.status is RunStatus.SUCCEEDED
    every = job_auths(cloud, tag)
    record_property("authorization_headers", dict(every))
    started_with, rerun_with = f"Bearer {fingerprint(starters)}", f"Bearer {fingerprint(own)}"
    assert set(first) == {started_with} and first[started_with] >= 2  # its submission and status requests
    assert every[started_with] == first[started_with]  # not one more request with the starter's token
    assert every[rerun_with] >= 2 and set(every) == {started_with, rerun_with}
    step = cloud.steps(run_id)[0]
    assert step.attempt == 2 and step.tr_auth.startswith("fernet:") and own not in step.tr_auth


def job_auths(cloud: LocalCloud, tag: str) -> collections.Counter[str]:
    """How many of the test's job requests (submissions and status requests) came with each
    Authorization header (scheme and token fingerprint, as the mock records them)."""
    jobs = {r["body"]["job_name"]: None for r in cloud.mock.requests()
            if r["path"] == "/job" and ((r["body"] or {}).get("labels") or {}).get(TAG) == tag}
    ids = {s.job_id for run in cloud.store().list_runs(1000) if tag in run.run_id
           for step in cloud.steps(run.run_id) for s in (step, *step.history) if s.job_id}
    return collections.Counter(str(r["auth"]) for r in cloud.mock.requests()
                               if (r["path"] == "/job" and (r["body"] or {}).get("job_name") in jobs)
                               or (r["path"] == "/jobstatus" and r["query"].get("job_id") in ids))
