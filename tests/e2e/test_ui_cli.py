"""`python main.py ui --db FILE --port PORT` serves the run pages until stopped."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from uikit import fork_join

from support import ROOT, free_port
from workflow.adapters.embedded.sqlite_store import SqliteStateStore


def test_ui_serves_the_runs_of_the_store_on_loopback(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite3"
    store = SqliteStateStore(str(db))
    fork_join(store)
    store.close()
    port = free_port()
    server = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "ui", "--db", str(db), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == f"run pages at http://127.0.0.1:{port}/ (Ctrl-C stops)"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert "fork-join-1" in page.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs", timeout=10) as api:
            assert json.load(api)["runs"][0]["dag_name"] == "fork-join"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_ui_refuses_a_missing_store(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "ui", "--db", str(tmp_path / "none.sqlite3")],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert done.returncode == 2 and "no run store at" in done.stderr
