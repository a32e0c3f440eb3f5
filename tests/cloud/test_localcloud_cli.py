"""`python -m devtools.localcloud up | upload | status` in subprocesses, against the repository's example DAGs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.localcloud import processes
from devtools.localcloud.wiring import require_tools

pytestmark = pytest.mark.cloud

ROOT = Path(__file__).resolve().parents[2]
UP_TIMEOUT = 120.0


def cli(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devtools.localcloud", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )


def wait_for_state(state: Path, up: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + UP_TIMEOUT
    while not state.exists():
        if up.poll() is not None:
            pytest.fail(f"'up' exited with {up.returncode} before it was ready:\n{log.read_text()}", pytrace=False)
        if time.monotonic() >= deadline:
            pytest.fail(f"no state file after {UP_TIMEOUT:.0f} s:\n{log.read_text()}", pytrace=False)
        time.sleep(0.1)
    info: dict[str, Any] = json.loads(state.read_text())
    return info


def status_until(run_id: str, state: Path, final: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`status RUN_ID` until it prints the run as FINAL; every answer before is 0 (running) or 2 (not there yet)."""
    deadline = time.monotonic() + timeout
    while True:
        done = cli("status", run_id, "--state-file", str(state))
        if re.search(rf"^run {re.escape(run_id)}\s+{final}\s", done.stdout, re.M):
            return done
        assert done.returncode in (0, 2), done
        assert done.returncode == 0 or f"no run '{run_id}'" in done.stderr, done
        if time.monotonic() >= deadline:
            pytest.fail(f"run {run_id} not {final} after {timeout:.0f} s; last:\n{done.stdout}{done.stderr}")
        time.sleep(0.3)


def uploaded_run_id(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done
    match = re.search(r"^run id\s+(\S+)$", done.stdout, re.M)
    assert match, done.stdout
    return match.group(1)


def test_up_upload_status_then_sigterm_stops_everything(
    tmp_path: Path,
    require_tool: Callable[[Callable[[], None]], None],
    record_property: Callable[[str, object], None],
) -> None:
    require_tool(require_tools)
    state = tmp_path / "localcloud.json"
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "devtools.localcloud", "up", "--state-file", str(state), "--poll", "0.2"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    groups: dict[str, int] = {}
    try:
        info = wait_for_state(state, up, log)
        groups = {str(k): int(v) for k, v in info["process_groups"].items()}
        assert len(groups) == 10 and all(processes.group_exists(g) for g in groups.values())  # 3 emulators, 7 functions
        printed = log.read_text()
        assert f"{info['functions']['on_start_request']} <- POST a start request" in printed
        assert f"{info['functions']['on_control_request']} <- POST a cancel, rerun or resume request" in printed
        assert f"{info['functions']['on_control_message']} <- topic workflow-run-control" in printed
        assert f"{info['functions']['run_pages']}/ <- the run pages, in a browser" in printed
        for key, value in info["env"].items():
            assert f"export {key}={value}" in printed
        assert set(info["env"]) == {"STORAGE_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST",
                                    "GOOGLE_CLOUD_PROJECT"}

        listed = cli("status", "--state-file", str(state))
        assert (listed.returncode, listed.stdout.strip()) == (0, "no runs"), listed
        unknown = cli("status", "no-such-run", "--state-file", str(state))
        assert unknown.returncode == 2 and "no run 'no-such-run'" in unknown.stderr

        began = time.monotonic()
        ok_id = uploaded_run_id(cli("upload", "dags/fork_join.yaml", "--state-file", str(state)))
        bad_upload = cli("upload", "dags/fork_with_failure.yaml", "--name", "dags/failing.yaml",
                         "--state-file", str(state))
        bad_id = uploaded_run_id(bad_upload)
        assert "gs://dags/dags/failing.yaml" in bad_upload.stdout

        done = status_until(ok_id, state, "SUCCEEDED")
        took = time.monotonic() - began
        record_property("cli_fork_join_upload_to_succeeded_s", round(took, 2))
        assert done.returncode == 0, done
        for step in ("prepare", "train-small", "train-large", "evaluate"):
            assert re.search(rf"^{step}\s+SUCCEEDED\s+1\s+{step}", done.stdout, re.M), done.stdout

        watched = cli("status", bad_id, "--watch", "--interval", "0.2", "--state-file", str(state))
        assert watched.returncode == 1, watched
        shown = re.findall(r"^run \S+\s+(\S+)\s+DAG", watched.stdout, re.M)  # the run, each time it changed
        assert shown and shown[-1] == "FAILED", watched.stdout
        assert re.search(r"^load\s+SKIPPED\s+1\s+-\s+-\s+\S+ \S+\s+upstream step 'transform' failed$", watched.stdout,
                         re.M), watched.stdout
        assert watched.stdout.rstrip().endswith("[SKIPPED] load  <- transform"), watched.stdout

        listed = cli("status", "--state-file", str(state))
        assert listed.returncode == 0
        rows = {line.split()[0]: line.split()[1] for line in listed.stdout.splitlines()[1:]}
        assert rows == {ok_id: "SUCCEEDED", bad_id: "FAILED"}, listed.stdout
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGTERM)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait(timeout=10)
            pytest.fail(f"'up' ignored SIGTERM for 60 s:\n{log.read_text()}")
    assert up.returncode == 0, log.read_text()
    assert not processes.group_exists(up.pid)
    assert [name for name, pgid in groups.items() if processes.group_exists(pgid)] == []
    assert not state.exists()
    assert log.read_text().rstrip().endswith("stopped")
