"""Shared by the test tiers: a free loopback port, the product's command line in a
subprocess, and the tokens the tests hand out."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SECRET = "tok-SECRET-123"
"""A token that must never show in a log line, an error or a record."""
TOKEN = "test-token"
"""What the command-line tests' mock Task Runner requires (the `mock` fixture of tests/e2e)."""
SLOW_FIRST = """
name: slow-first
steps:
  - id: slow
    task: {imageUri: img/slow, labels: {mock_duration_sec: "2"}}
  - id: after
    dependsOn: [slow]
    task: {imageUri: img/after, labels: {mock_duration_sec: "0.1"}}
"""
"""A DAG whose first job runs 2 s at the mock: long enough to interrupt or cancel a run."""
NIGHTLY = """
name: nightly
steps:
  - id: extract
    task: {imageUri: img/extract, args: ["--day", "{{ run.date }}"]}
  - id: load
    dependsOn: [extract]
    task: {imageUri: img/load}
"""
"""A DAG of two jobs, the first given the run's date (`{{ run.date }}`): a schedule's, or a backfill's."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port of `host` that nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def run_main(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """`python main.py ARGS` from `cwd`, with this environment plus `env`, stdin closed; never raises
    for an exit code."""
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL, check=False,
    )


def run_cli(tmp_path: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The embedded command line on `tmp_path`'s store: `python main.py ARGS --db TMP/runs.sqlite3`
    from `tmp_path`, checking jobs every 0.05 s."""
    return run_main(*args, "--db", str(tmp_path / "runs.sqlite3"), cwd=tmp_path,
                    env={"WORKFLOW_CHECK_STATE_DURATION_SEC": "0.05", **(env or {})})


def interrupted(tmp_path: Path, ready: Callable[[], object], *args: str) -> tuple[int, str]:
    """Start `python main.py ARGS` from `tmp_path` (jobs checked every 0.05 s), press Ctrl-C
    once `ready()` holds, and return its exit code and standard error."""
    from polling import wait_until

    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "WORKFLOW_CHECK_STATE_DURATION_SEC": "0.05"})
    wait_until(ready, 30, "the run to be ready to interrupt")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def function_client(target: str, rt: Any, monkeypatch: Any) -> Any:
    """functions-framework's test client of the HTTP function `target` of main.py, running on
    the runtime `rt` (main.runtime patched to return it)."""
    import functions_framework

    import main

    monkeypatch.setitem(sys.modules, "main", sys.modules["main"])  # the framework loads its own copy
    app = functions_framework.create_app(target, str(Path(main.__file__)))
    monkeypatch.setattr(sys.modules["main"], "runtime", lambda: rt)
    return app.test_client()
