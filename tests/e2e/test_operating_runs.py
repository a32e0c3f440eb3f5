"""`runs`, `status` and `resume` end to end: the CLI in subprocesses against the mock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.mock_runner import MockTaskRunner
from polling import wait_until
from support import ROOT, SLOW_FIRST, TOKEN, interrupted, run_main
from support import run_cli as cli


def test_an_interrupted_run_is_resumed_without_resubmitting_its_running_job(
    tmp_path: Path, mock: MockTaskRunner
) -> None:
    dag = tmp_path / "slow.yaml"
    dag.write_text(SLOW_FIRST)
    returncode, err = interrupted(tmp_path, lambda: mock.submissions() == ["slow"], "--dag-path", str(dag),
                                  "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN,
                                  "--db", str(tmp_path / "runs.sqlite3"), "--run-id", "r-int")
    assert returncode == 130, err
    assert "python main.py resume r-int" in err and "Traceback" not in err

    listed = cli(tmp_path, "runs", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["status"] == "RUNNING"
    again = cli(tmp_path, "--dag-path", str(dag), "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN)
    assert again.returncode == 0 and "run r-int of this DAG did not finish" in again.stderr
    before = mock.submissions().count("slow")  # the second run submitted its own

    resumed = cli(tmp_path, "resume", "r-int", "--tr-auth-jwt", TOKEN)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[-1] == "run SUCCEEDED"
    assert mock.submissions().count("slow") == before  # the running job was checked, not resubmitted
    status = cli(tmp_path, "status", "r-int")
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout
    assert "[SUCCEEDED] slow" in status.stdout and "    [SUCCEEDED] after  <- slow" in status.stdout


def test_runs_and_status_list_and_describe_what_ran(tmp_path: Path, mock: MockTaskRunner) -> None:
    dag = tmp_path / "fail.yaml"
    dag.write_text("steps:\n- {id: bad, task: {imageUri: img/error}}\n- {id: next, dependsOn: [bad], "
                   "task: {imageUri: img/next}}\n")
    ran = cli(tmp_path, "--dag-path", str(dag), "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN, "--run-id", "r-f")
    assert ran.returncode == 1
    table = cli(tmp_path, "runs")
    assert table.returncode == 0 and table.stdout.split("\n")[0].split()[:2] == ["RUN", "ID"]
    assert "r-f" in table.stdout and "0/1/1 of 2" in table.stdout
    assert "no runs" in cli(tmp_path, "runs", "--status", "succeeded").stdout
    shown = cli(tmp_path, "status", "r-f", "--json")
    data = json.loads(shown.stdout)
    assert shown.returncode == 1 and data["run"]["status"] == "FAILED"
    assert [s["state"] for s in data["steps"]] == ["FAILED", "SKIPPED"] and "tr_auth" not in data["steps"][0]
    ended = cli(tmp_path, "resume", "r-f", "--tr-auth-jwt", TOKEN)
    assert ended.returncode == 1 and "already ended FAILED: nothing to resume" in ended.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["status", "nope"], "no run 'nope'"),
        (["resume", "nope", "--tr-auth-jwt", TOKEN], "no run 'nope'"),
        (["runs", "--limit", "0"], "--limit"),
        (["runs", "--status", "DONE"], "expected one of"),
        (["status"], "RUN_ID"),
    ],
)
def test_operating_commands_refuse_bad_input_with_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    (tmp_path / "runs.sqlite3").touch()
    done = cli(tmp_path, *args)
    assert done.returncode == 2 and expected in done.stderr and "Traceback" not in done.stderr


def test_without_a_store_the_commands_say_where_runs_are_recorded(tmp_path: Path) -> None:
    done = cli(tmp_path, "runs")
    assert done.returncode == 2 and "no run store at" in done.stderr


def test_cancel_from_a_second_process_stops_the_run(tmp_path: Path, mock: MockTaskRunner) -> None:
    dag = tmp_path / "slow.yaml"
    dag.write_text(SLOW_FIRST.replace('"2"', '"600"'))
    args = [sys.executable, str(ROOT / "main.py"), "--dag-path", str(dag), "--tr-hostname", mock.url,
            "--tr-auth-jwt", TOKEN, "--db", str(tmp_path / "runs.sqlite3"), "--run-id", "r-c"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "WORKFLOW_CHECK_STATE_DURATION_SEC": "0.05"})
    try:
        wait_until(lambda: mock.submissions() == ["slow"], 30, "the slow job to be submitted")
        cancelled = cli(tmp_path, "cancel", "r-c")
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert cancelled.returncode == 0 and "run r-c CANCELLED" in cancelled.stdout  # a cancel done exits 0
    assert "job slow-1 of step slow keeps running at the Task Runner" in cancelled.stdout
    assert proc.returncode == 1, err
    assert out.splitlines()[-1] == "run CANCELLED" and mock.submissions() == ["slow"]
    status = json.loads(cli(tmp_path, "status", "r-c", "--json").stdout)
    assert [s["state"] for s in status["steps"]] == ["CANCELLED", "CANCELLED"]
    assert status["steps"][0]["job_id"] == "slow-1"


def test_rerun_submits_only_the_failed_step_and_its_skipped_descendants(tmp_path: Path, mock: MockTaskRunner) -> None:
    dag = tmp_path / "flaky.yaml"
    dag.write_text("steps:\n- {id: ok, task: {imageUri: img/ok}}\n- {id: flaky, dependsOn: [ok], task: {imageUri: "
                   "img/flaky}}\n- {id: last, dependsOn: [flaky], task: {imageUri: img/last}}\n")
    mock.inject_fault("/job", 400, count=1, body="quota exceeded")  # the first submission (ok) is refused
    ran = cli(tmp_path, "--dag-path", str(dag), "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN, "--run-id", "r-r")
    assert ran.returncode == 1
    failed = json.loads(cli(tmp_path, "status", "r-r", "--json").stdout)
    assert [s["state"] for s in failed["steps"]] == ["FAILED", "SKIPPED", "SKIPPED"]
    before = mock.submissions()
    again = cli(tmp_path, "rerun", "r-r", "--tr-auth-jwt", TOKEN)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "run SUCCEEDED"
    assert mock.submissions()[len(before):] == ["ok", "flaky", "last"]
    shown = json.loads(cli(tmp_path, "status", "r-r", "--json").stdout)
    assert shown["run"]["reruns"] and shown["steps"][0]["attempt"] == 2
    assert shown["steps"][0]["history"][0]["state"] == "FAILED"
    from_flaky = cli(tmp_path, "rerun", "r-r", "--from", "flaky", "--tr-auth-jwt", TOKEN)
    assert from_flaky.returncode == 0 and mock.submissions()[len(before) + 3:] == ["flaky", "last"]
    assert cli(tmp_path, "rerun", "r-r", "--from", "nope").returncode == 2


def test_rerun_without_a_usable_credential_says_how_to_get_one_before_anything_runs(
    tmp_path: Path, mock: MockTaskRunner
) -> None:
    dag = tmp_path / "one.yaml"
    dag.write_text("steps:\n- {id: bad, task: {imageUri: img/error}}\n")
    assert cli(tmp_path, "--dag-path", str(dag), "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN,
               "--run-id", "r-n").returncode == 1
    before = len(mock.submissions())
    done = run_main("rerun", "r-n", "--db", str(tmp_path / "runs.sqlite3"), cwd=tmp_path,
                    env={"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-such-key.json")})
    assert done.returncode == 2 and "--tr-auth-jwt" in done.stderr and "Traceback" not in done.stderr
    assert len(mock.submissions()) == before
