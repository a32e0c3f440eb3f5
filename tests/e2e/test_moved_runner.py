"""`resume` and `rerun` after the Task Runner moved (`--tr-hostname`), and `rerun --dag-path`
with a fixed DAG file: subprocesses against the mock over real HTTP."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devtools.mock_runner import MockTaskRunner
from support import ROOT, SLOW_FIRST, TOKEN, interrupted
from support import run_cli as cli


@contextmanager
def forwarder(port: int) -> Iterator[str]:
    """A Task Runner URL that forwards to `port` until the block ends: the old address of one that moved."""

    class Pipe(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with socket.create_connection(("127.0.0.1", port)) as upstream:
                def pump(src: socket.socket, dst: socket.socket) -> None:
                    while data := src.recv(65536):
                        dst.sendall(data)
                    dst.shutdown(socket.SHUT_WR)
                back = threading.Thread(target=pump, args=(upstream, self.request), daemon=True)
                back.start()
                pump(self.request, upstream)
                back.join(10)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Pipe)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_interrupted_run_is_resumed_at_the_task_runners_new_address(tmp_path: Path, mock: MockTaskRunner) -> None:
    dag = tmp_path / "slow.yaml"
    dag.write_text(SLOW_FIRST)
    port = int(mock.url.rsplit(":", 1)[1])
    with forwarder(port) as old_url:
        returncode, err = interrupted(tmp_path, lambda: mock.submissions() == ["slow"], "run", str(dag),
                                      "--tr-hostname", old_url, "--tr-auth-jwt", TOKEN,
                                      "--db", str(tmp_path / "runs.sqlite3"), "--run-id", "r-m")
    assert returncode == 130, err
    printed = err.split("Continue it with: ", 1)[1].split(" (with the token in WORKFLOW_TR_AUTH_JWT)")[0]
    assert printed.startswith("python main.py resume r-m --db ") and TOKEN not in err
    assert printed.endswith('--tr-auth-jwt "$WORKFLOW_TR_AUTH_JWT"')

    gone = cli(tmp_path, "resume", "r-m", "--tr-auth-jwt", TOKEN)  # the old address answers no more
    assert gone.returncode == 2 and "does not answer" in gone.stderr
    pasted = printed.replace("python main.py", f"{sys.executable} {ROOT / 'main.py'}", 1)
    env = {**os.environ, "WORKFLOW_TR_AUTH_JWT": TOKEN, "WORKFLOW_CHECK_STATE_DURATION_SEC": "0.05"}
    moved = subprocess.run(["bash", "-c", f"{pasted} --tr-hostname {mock.url}"], capture_output=True, text=True,
                           timeout=60, cwd=tmp_path, check=False, env=env)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.splitlines()[-1] == "run SUCCEEDED" and mock.submissions() == ["slow", "after"]
    shown = json.loads(cli(tmp_path, "status", "r-m", "--json").stdout)
    assert shown["run"]["tr_url"] == mock.url and {s["tr_url"] for s in shown["steps"]} == {mock.url}


BROKEN = """
name: broken-image
steps:
  - id: ok
    task: {imageUri: img/ok}
  - id: train
    dependsOn: [ok]
    task: {imageUri: img/error-tag}
  - id: last
    dependsOn: [train]
    task: {imageUri: img/last}
"""


def test_a_rerun_with_a_fixed_dag_file_runs_the_fix_where_the_task_runner_now_is(
    tmp_path: Path, mock: MockTaskRunner
) -> None:
    broken, fixed, reshaped = tmp_path / "broken.yaml", tmp_path / "fixed.yaml", tmp_path / "reshaped.yaml"
    broken.write_text(BROKEN)
    fixed.write_text(BROKEN.replace("img/error-tag", "img/train:2"))
    reshaped.write_text(BROKEN.replace("dependsOn: [train]", "dependsOn: [ok]"))
    with forwarder(int(mock.url.rsplit(":", 1)[1])) as old_url:
        ran = cli(tmp_path, "run", str(broken), "--tr-hostname", old_url, "--tr-auth-jwt", TOKEN, "--run-id", "r-b")
    assert ran.returncode == 1 and mock.submissions() == ["ok", "train"]

    refused = cli(tmp_path, "rerun", "r-b", "--dag-path", str(reshaped), "--tr-hostname", mock.url,
                  "--tr-auth-jwt", TOKEN)
    assert refused.returncode == 2
    assert "last: dependsOn ['ok'], runIf allSucceeded; in the run ['train']" in refused.stderr
    assert "Start a new run instead" in refused.stderr and mock.submissions() == ["ok", "train"]

    again = cli(tmp_path, "rerun", "r-b", "--dag-path", str(fixed), "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN)
    assert again.returncode == 0, again.stderr
    assert mock.submissions() == ["ok", "train", "train", "last"]  # what succeeded is not submitted again
    images = [r["body"]["imageUri"] for r in mock.requests() if r["path"] == "/job"]
    assert images[2:] == ["img/train:2", "img/last"]
    shown = json.loads(cli(tmp_path, "status", "r-b", "--json").stdout)
    train = shown["steps"][1]
    assert train["task"]["image_uri"] == "img/train:2" and train["attempt"] == 2
    assert train["history"][0]["definition"].startswith("img/error-tag@") and train["history"][0]["state"] == "FAILED"
