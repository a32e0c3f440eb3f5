"""The command line's front as a new user meets it: verbs, unknown words named, `--version`,
output cut short by a reader that went away, the `run` verb beside the Go tool's form."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools.mock_runner import MockTaskRunner
from polling import wait_until
from store_contract import make_run, ok
from support import ROOT, TOKEN, run_cli, run_main
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.cli import main
from workflow.cli.output import polled
from workflow.model.states import RunStatus

ONE_STEP = "steps:\n- {id: solo, task: {imageUri: img/solo}}\n"


@pytest.mark.parametrize(
    ("args", "named", "hint"),
    [
        (["logs"], "unknown command 'logs'", "'python main.py status'"),
        (["list"], "unknown command 'list'", "'python main.py runs'"),
        (["submit", "x.yaml"], "unknown command 'submit'", "'python main.py run'"),
        (["--dag-file", "x.yaml"], "unknown option --dag-file", "--dag-path"),
        (["--dag", "x.yaml", "--tr-hostname", "http://127.0.0.1:9"], "unknown option --dag", "--dag-path"),
        (["status", "r", "--jsn"], "unknown option --jsn", "--json"),
        (["run", "x.yaml", "--tr-host", "http://127.0.0.1:9"], "unknown option --tr-host", "--tr-hostname"),
    ],
    ids=["logs", "list", "submit", "dag-file", "abbreviated", "status-typo", "run-abbreviated"],
)
def test_an_unknown_word_is_named_with_the_closest_known_one(
    tmp_path: Path, args: list[str], named: str, hint: str
) -> None:
    done = run_main(*args, cwd=tmp_path, timeout=30)
    assert done.returncode == 2 and named in done.stderr and hint in done.stderr, done.stderr
    assert "arguments are required" not in done.stderr and "Traceback" not in done.stderr
    if not args[0].startswith("-") and args[0] not in ("status", "run"):
        assert "commands: run, runs, status, resume, rerun, cancel" in done.stderr


def test_version_and_the_bare_command(tmp_path: Path) -> None:
    version = run_main("--version", cwd=tmp_path, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("python main.py 0.")
    bare = run_main(cwd=tmp_path, timeout=30)
    assert bare.returncode == 2 and "commands: run, runs" in bare.stderr


def test_the_run_verb_takes_the_dag_file_first_and_the_go_form_still_works(
    tmp_path: Path, mock: MockTaskRunner
) -> None:
    dag = tmp_path / "one.yaml"
    dag.write_text(ONE_STEP)
    verb = run_cli(tmp_path, "run", str(dag), "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN)
    assert verb.returncode == 0, verb.stderr
    env_token = run_cli(tmp_path, "--dag-path", str(dag), "--tr-hostname", mock.url,
                        env={"WORKFLOW_TR_AUTH_JWT": TOKEN})
    assert env_token.returncode == 0, env_token.stderr
    assert mock.submissions() == ["solo", "solo"]
    missing = run_cli(tmp_path, "run", "--tr-hostname", mock.url)
    assert missing.returncode == 2 and "a DAG file is needed" in missing.stderr


def test_output_cut_short_by_its_reader_ends_quietly(tmp_path: Path, mock: MockTaskRunner) -> None:
    dag = tmp_path / "one.yaml"
    dag.write_text(ONE_STEP)
    assert run_cli(tmp_path, "run", str(dag), "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN,
                   "--run-id", "r-1").returncode == 0
    for args in (["status", "r-1"], ["runs"], ["status", "r-1", "--json"]):
        proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *args, "--db", str(tmp_path / "runs.sqlite3")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # as `| head -1` does once it has its line: every write now fails
        err = proc.stderr.read()
        assert proc.wait(timeout=30) == 141 and err == "", err


def test_the_installed_name_is_the_one_shown(tmp_path: Path) -> None:
    link = tmp_path / "dag-workflow"
    link.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                    "from workflow.cli import main\nsys.exit(main())\n")
    link.chmod(0o755)
    done = subprocess.run([str(link), "status", "--help"], capture_output=True, text=True, timeout=30,
                          env={**os.environ}, check=False)
    assert done.returncode == 0 and done.stdout.startswith("usage: dag-workflow status"), done.stdout


def test_short_jobs_are_seen_ending_soon_with_the_default_polling(tmp_path: Path, mock: MockTaskRunner) -> None:
    dag = tmp_path / "chain.yaml"
    dag.write_text("steps:\n- {id: a, task: {imageUri: img/a, labels: {mock_duration_sec: '0.9'}}}\n"
                   "- {id: b, dependsOn: [a], task: {imageUri: img/b, labels: {mock_duration_sec: '0.9'}}}\n")
    began = time.monotonic()
    done = run_cli(tmp_path, "run", str(dag), "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN,
                   env={"WORKFLOW_CHECK_STATE_DURATION_SEC": "10"})  # the default
    took = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    assert took < 8, f"a chain of two 0.9 s jobs took {took:.1f} s"
    summary = done.stdout[done.stdout.index("\nSTEP "):]
    assert re.search(r"^a +SUCCEEDED +1 +a-1 +0\.0-1\.\ds ", summary, re.M), summary  # bounded by the checks


@pytest.mark.parametrize(("spent", "poll", "shown"), [
    (0.01, 10, "0.0s"), (1.06, 10, "0.0-1.1s"), (3.05, 10, "1.0-3.0s"), (25.1, 10, "15.0-25.1s"),
    (35.1, 10, "25.0-35.1s"), (0.62, 0.05, "0.55-0.62s"), (5.0, 0, "5.0s")])
def test_a_summary_says_between_which_checks_a_job_ended(spent: float, poll: float, shown: str) -> None:
    assert polled(100.0, 100.0 + spent, poll) == shown


def test_status_watch_redraws_only_when_what_it_shows_changed(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.sqlite3")
    store = SqliteStateStore(db)
    run_id = make_run(store, {"a": []})
    out = io.StringIO()
    watching = threading.Thread(target=main, args=(["status", run_id, "--watch", "--interval", "0.05", "--db", db],
                                                   out))
    watching.start()
    try:
        wait_until(lambda: "[PENDING] a" in out.getvalue(), 10, "the first screen")
        for at in range(3, 8):  # heartbeats of a running job's checks: nothing shown changes
            store.heartbeat(run_id, "a", float(at), 0.0)
            time.sleep(0.1)
        store.complete_step(run_id, "a", ok(9.0))
        store.finish_run(run_id, RunStatus.SUCCEEDED, 9.5)
        watching.join(10)
    finally:
        store.close()
    assert out.getvalue().count(f"run {run_id}  ") == 2, out.getvalue()  # the first screen and the end


def test_the_cloud_runtime_refuses_a_moved_task_runner(tmp_path: Path) -> None:
    done = run_main("resume", "r-1", "--cloud", "--tr-hostname", "http://127.0.0.1:9", cwd=tmp_path, timeout=30)
    assert done.returncode == 2 and "--tr-hostname: for the embedded runtime" in done.stderr
