"""Retries, runIf and maxParallel from the command line, against the bundled mock over HTTP."""

from __future__ import annotations

from pathlib import Path

from test_cli import TOKEN, dag_file, run_cli

from devtools.mock_runner import MockTaskRunner

FLAKY = """
name: flaky
steps:
  - id: train
    retries: 2
    retryDelaySec: 0.1
    task: {imageUri: img/train, labels: {mock_fail_attempts: "2", mock_duration_sec: "0.1"}}
  - id: publish
    dependsOn: [train]
    task: {imageUri: img/publish}
"""

CLEANUP = """
steps:
  - id: train
    task: {imageUri: img/error}
  - id: evaluate
    dependsOn: [train]
    task: {imageUri: img/evaluate}
  - id: cleanup
    dependsOn: [evaluate]
    runIf: allDone
    task: {imageUri: img/cleanup}
  - id: alert
    dependsOn: [train]
    runIf: anyFailed
    task: {imageUri: img/alert}
"""


def fan_out(width: int, limit: int) -> str:
    middle = "".join(f"""
  - id: m{i}
    dependsOn: [src]
    task: {{imageUri: img/m, labels: {{mock_duration_sec: "0.5"}}}}""" for i in range(width))
    return f"""
maxParallel: {limit}
steps:
  - id: src
    task: {{imageUri: img/src}}{middle}
  - id: sink
    dependsOn: [{", ".join(f"m{i}" for i in range(width))}]
    task: {{imageUri: img/sink}}
"""


def run(tmp_path: Path, mock: MockTaskRunner, text: str):  # type: ignore[no-untyped-def]
    return run_cli(tmp_path, "--dag-path", dag_file(tmp_path, text), "--tr-hostname", mock.url,
                   "--tr-auth-jwt", TOKEN)


def test_a_flaky_step_succeeds_on_its_third_attempt(tmp_path: Path, mock: MockTaskRunner) -> None:
    res = run(tmp_path, mock, FLAKY)
    assert res.returncode == 0, res.stderr
    assert mock.submissions() == ["train", "train", "train", "publish"]
    lines, summary, earlier = res.stdout.split("\nSTEP ")[0], *res.stdout.split("earlier attempts:")
    assert "attempt 1: job failed" in lines and "attempt 2: job failed" in lines  # as they happened
    assert any(line.split()[:3] == ["train", "SUCCEEDED", "3"] for line in summary.splitlines())
    assert [line.split()[:4] for line in earlier.splitlines()[2:4]] == [
        ["train", "1", "FAILED", "train-1"], ["train", "2", "FAILED", "train-2"]]
    assert res.stdout.rstrip().endswith("run SUCCEEDED")


def test_a_cleanup_runs_after_a_failure_and_the_run_fails(tmp_path: Path, mock: MockTaskRunner) -> None:
    res = run(tmp_path, mock, CLEANUP)
    assert res.returncode == 1, res.stderr
    assert sorted(mock.submissions()) == ["alert", "cleanup", "train"]
    summary = res.stdout.split("ELAPSED")[1]
    states = {line.split()[0]: line.split()[1] for line in summary.splitlines()[1:5]}
    assert states == {"train": "FAILED", "evaluate": "SKIPPED", "cleanup": "SUCCEEDED", "alert": "SUCCEEDED"}
    assert res.stdout.rstrip().endswith("run FAILED")


def test_max_parallel_limits_the_jobs_in_flight(tmp_path: Path, mock: MockTaskRunner) -> None:
    res = run(tmp_path, mock, fan_out(30, 3))
    assert res.returncode == 0, res.stderr
    assert len(mock.submissions()) == 32 and res.stdout.count(" SUCCEEDED ") >= 32
    assert mock.in_flight()["max"] == 3


def test_a_run_with_a_timeout_ends_when_its_steps_do_not_at_its_deadline(tmp_path: Path, mock: MockTaskRunner) -> None:
    res = run(tmp_path, mock, "timeoutSec: 86400\nsteps:\n  - id: a\n    task: {imageUri: img/a}\n")
    assert res.returncode == 0, res.stderr  # the pending TimeoutRun, due in a day, does not hold the command
    assert res.stdout.rstrip().endswith("run SUCCEEDED")


def test_the_run_timeout_fails_a_running_step_and_the_command_says_so(tmp_path: Path, mock: MockTaskRunner) -> None:
    text = ("timeoutSec: 1\nsteps:\n  - id: slow\n    task: {imageUri: img/slow, labels: {mock_duration_sec: '60'}}\n"
            "  - id: after\n    dependsOn: [slow]\n    task: {imageUri: img/after}\n")
    res = run(tmp_path, mock, text)
    assert res.returncode == 1, res.stderr
    assert "run timed out" in res.stdout and mock.submissions() == ["slow"]
    assert res.stdout.rstrip().endswith("run FAILED")
