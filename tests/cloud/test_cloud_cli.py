"""`python main.py runs|status|cancel|rerun --cloud` in subprocesses, against runs executing
on the local cloud (the functions, the emulators, the mock Task Runner).

The command line reaches the emulators through the variables `up` exports, reads runs from
Firestore and publishes its requests on the control topic, which `on_control_message` hands to
the engine. What the mock received tells which jobs were submitted, and when.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.localcloud import processes
from devtools.localcloud.client import RunTimeout
from devtools.localcloud.stack import LocalCloud
from polling import wait_until
from support import run_main
from workflow.model.records import RunRecord
from workflow.model.states import RunStatus, StepState

pytestmark = pytest.mark.cloud

ROOT = Path(__file__).resolve().parents[2]
TAG = "cli"  # the label holding a test's unique tag


@pytest.fixture(scope="module")
def cloud(require_tool: Callable[[Callable[[], LocalCloud]], LocalCloud]) -> Iterator[LocalCloud]:
    processes.install_signal_handlers()
    stack = require_tool(lambda: LocalCloud(project="cli-test", poll=0.1, mock_duration=0.2).start())
    try:
        yield stack
    finally:
        stack.stop()


def main_py(cloud: LocalCloud, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """`python main.py ARGS --cloud --project P`, with the emulator variables `up` exports."""
    env = {**cloud.env, "WORKFLOW_FIRESTORE_DATABASE": "", "WORKFLOW_CONTROL_TOPIC": ""}
    return run_main(*args, "--cloud", "--project", cloud.project, cwd=ROOT, env=env, timeout=timeout)


def task(image: str, tag: str, duration: str) -> dict[str, Any]:
    return {"imageUri": image, "labels": {"mock_duration_sec": duration, TAG: tag}}


def posted_jobs(cloud: LocalCloud, tag: str) -> list[tuple[str, int]]:
    """(job name, HTTP status) of every POST /job of the test's tasks, in the order received."""
    return [(r["body"]["job_name"], r["status"]) for r in cloud.mock.requests()
            if r["path"] == "/job" and ((r["body"] or {}).get("labels") or {}).get(TAG) == tag]


def finished(cloud: LocalCloud, run_id: str) -> RunRecord:
    try:
        return cloud.wait_run(run_id, 90)
    except RunTimeout as exc:
        pytest.fail(f"{exc}\n{cloud.log_tails(60)}", pytrace=False)


def shown_status(stdout: str, run_id: str) -> list[str]:
    """The run's status each time the output printed the run (`run ID  STATUS  DAG ...`)."""
    return re.findall(rf"^run {re.escape(run_id)}\s+(\S+)\s+DAG", stdout, re.M)


def test_runs_status_and_cancel_of_a_run_executing_on_the_cloud(
    cloud: LocalCloud, tag: str, record_property: Callable[[str, object], None]
) -> None:
    run_id = f"cancel-{tag}"
    cloud.publish_start({"run_id": run_id, "dag": {"name": "slow-first", "steps": [
        {"id": "slow", "task": task("gcr.io/cli/slow:1", tag, "20")},
        {"id": "after", "dependsOn": ["slow"], "task": task("gcr.io/cli/after:1", tag, "0.2")},
    ]}})
    wait_until(lambda: posted_jobs(cloud, tag) == [("slow", 200)], 60, "the slow job's submission")

    listed = main_py(cloud, "runs")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^{run_id}\s+RUNNING\s+inline\s", listed.stdout, re.M), listed.stdout
    shown = main_py(cloud, "status", run_id)
    assert shown.returncode == 0 and shown_status(shown.stdout, run_id) == ["RUNNING"], shown
    assert re.search(r"^slow\s+RUNNING\s+1\s+slow-", shown.stdout, re.M) and "[PENDING] after  <- slow" in shown.stdout
    as_json = main_py(cloud, "status", run_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["run"]["status"] == "RUNNING" and "tr_auth" not in document["steps"][0]
    slow_job = document["steps"][0]["job_id"]

    began = time.monotonic()
    cancelled = main_py(cloud, "cancel", run_id)
    record_property("cli_cancel_command_s", round(time.monotonic() - began, 2))
    assert cancelled.returncode == 0, cancelled  # as on the embedded runtime: the cancel is done
    assert cancelled.stdout.startswith(f'requested: {{"action": "cancel", "run_id": "{run_id}"}} on the control topic')
    assert shown_status(cancelled.stdout, run_id) == ["CANCELLED"], cancelled.stdout
    assert f"job {slow_job} of step slow keeps running at the Task Runner" in cancelled.stdout
    steps = {s.step_id: s for s in cloud.steps(run_id)}
    assert {k: s.state for k, s in steps.items()} == {"slow": StepState.CANCELLED, "after": StepState.CANCELLED}

    # The slow job ends at the mock; had the cancel not stopped the run, `after` would follow it.
    status_url = f"{cloud.mock_url}/jobstatus"
    wait_until(lambda: requests.get(status_url, params={"job_id": slow_job}, headers={"Authorization": "Bearer none"},
                                    timeout=10).json()["job"]["state"] == "SUCCEEDED", 40, "the slow job's end")
    later = f"later-{tag}"  # a run through the same functions, handled after anything the cancelled run had left
    cloud.publish_start({"run_id": later, "dag": {"steps": [{"id": "one", "task": task("gcr.io/cli/one:1", tag,
                                                                                        "0.2")}]}})
    assert finished(cloud, later).status is RunStatus.SUCCEEDED
    assert posted_jobs(cloud, tag) == [("slow", 200), ("one", 200)]
    run = cloud.run(run_id)
    assert run is not None and run.status is RunStatus.CANCELLED

    again = main_py(cloud, "cancel", run_id)
    assert (again.returncode, again.stdout.strip()) == (1, f"run {run_id} already ended CANCELLED: nothing to cancel")


def test_rerun_of_a_failed_run_resubmits_only_the_failed_step(
    cloud: LocalCloud, tag: str, record_property: Callable[[str, object], None]
) -> None:
    run_id = f"rerun-{tag}"
    cloud.publish_start({"run_id": run_id, "dag": {"name": "two", "steps": [
        {"id": "first", "task": task("gcr.io/cli/first:1", tag, "3")},
        {"id": "second", "dependsOn": ["first"], "task": task("gcr.io/cli/second:1", tag, "0.2")},
    ]}})
    wait_until(lambda: posted_jobs(cloud, tag) == [("first", 200)], 60, "the first job's submission")
    cloud.mock.inject_fault("/job", 400)  # the next submission, `second`'s, is refused once
    assert finished(cloud, run_id).status is RunStatus.FAILED
    assert posted_jobs(cloud, tag) == [("first", 200), ("second", 400)]

    wrong = main_py(cloud, "rerun", run_id, "--from", "nope")
    assert wrong.returncode == 2 and f"run {run_id} has no step 'nope'" in wrong.stderr, wrong
    began = time.monotonic()
    rerun = main_py(cloud, "rerun", run_id)
    record_property("cli_rerun_command_s", round(time.monotonic() - began, 2))
    assert rerun.returncode == 0, rerun
    assert rerun.stdout.startswith(
        f'requested: {{"action": "rerun", "run_id": "{run_id}", "reruns": 0}} on the control topic'), rerun.stdout
    assert shown_status(rerun.stdout, run_id) == ["SUCCEEDED"], rerun.stdout
    assert posted_jobs(cloud, tag) == [("first", 200), ("second", 400), ("second", 200)]
    steps = {s.step_id: s for s in cloud.steps(run_id)}
    assert (steps["first"].attempt, steps["second"].attempt) == (1, 2)
    assert [a.state for a in steps["second"].history] == [StepState.FAILED]
    run = cloud.run(run_id)
    assert run is not None and run.status is RunStatus.SUCCEEDED and len(run.reruns) == 1


def test_unknown_runs_and_options_of_the_other_runtime_are_refused(cloud: LocalCloud, tag: str) -> None:
    missing = main_py(cloud, "status", f"nope-{tag}")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"no run 'nope-{tag}' in Firestore of project {cloud.project}" in missing.stderr
    assert "'python main.py runs --cloud' lists them" in missing.stderr
    assert main_py(cloud, "cancel", f"nope-{tag}").returncode == 2
    mixed = main_py(cloud, "resume", f"nope-{tag}", "--tr-auth-jwt", "t")
    assert mixed.returncode == 2 and "--tr-auth-jwt: for the embedded runtime, not with --cloud" in mixed.stderr


def test_resume_of_a_running_run_on_the_cloud_resubmits_nothing(cloud: LocalCloud, tag: str) -> None:
    run_id = f"resume-{tag}"
    cloud.publish_start({"run_id": run_id, "dag": {"steps": [
        {"id": "slow", "task": task("gcr.io/cli/slow:1", tag, "3")},
        {"id": "after", "dependsOn": ["slow"], "task": task("gcr.io/cli/after:1", tag, "0.2")},
    ]}})
    wait_until(lambda: posted_jobs(cloud, tag) == [("slow", 200)], 60, "the slow job's submission")
    resumed = main_py(cloud, "resume", run_id)  # its checks are re-issued while the old ones live
    assert resumed.returncode == 0, resumed
    assert resumed.stdout.startswith(f'requested: {{"action": "resume", "run_id": "{run_id}"}}'), resumed.stdout
    assert finished(cloud, run_id).status is RunStatus.SUCCEEDED
    assert posted_jobs(cloud, tag) == [("slow", 200), ("after", 200)]  # each job once


@pytest.fixture(autouse=True)
def no_run_left_running(cloud: LocalCloud) -> Iterator[None]:
    yield
    left = [r.run_id for r in cloud.store().list_runs(1000, RunStatus.RUNNING)]
    assert not left, f"runs left RUNNING: {left}"
