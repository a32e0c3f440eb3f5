"""The command line end to end: a subprocess against the bundled mock over real HTTP."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devtools.mock_runner import MockTaskRunner, fingerprint
from support import TOKEN, run_cli, run_main

ROOT = Path(__file__).resolve().parents[2]

FORK_JOIN = """
name: fork-join
steps:
  - id: prepare
    task: {imageUri: img/prepare, labels: {mock_duration_sec: "0.2"}}
  - id: left
    dependsOn: [prepare]
    task: {imageUri: img/left, args: ["--side", "left"], labels: {mock_duration_sec: "0.6"}}
  - id: right
    dependsOn: [prepare]
    task: {imageUri: img/right, args: {side: right}, labels: {mock_duration_sec: "0.6"}}
  - id: join
    dependsOn: [left, right]
    task: {imageUri: img/join, labels: {mock_duration_sec: "0.1"}}
"""

FORK_FAIL = """
steps:
  - id: a
    task: {imageUri: img/a, labels: {mock_duration_sec: "0.1"}}
  - id: bad
    dependsOn: [a]
    task: {imageUri: img/error, labels: {mock_duration_sec: "0.1"}}
  - id: after-bad
    dependsOn: [bad]
    task: {imageUri: img/never}
  - id: other
    dependsOn: [a]
    task: {imageUri: img/other, labels: {mock_duration_sec: "0.5"}}
"""

CYCLE = """
steps:
  - id: a
    dependsOn: [c]
    task: {imageUri: img/a}
  - id: b
    dependsOn: [a]
    task: {imageUri: img/b}
  - id: c
    dependsOn: [b]
    task: {imageUri: img/c}
"""


def dag_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "dag.yaml"
    path.write_text(text)
    return str(path)


def test_fork_join_succeeds_in_order_with_parallel_branches(tmp_path: Path, mock: MockTaskRunner) -> None:
    res = run_cli(tmp_path, "--dag-path", dag_file(tmp_path, FORK_JOIN), "--tr-hostname", mock.url,
                  "--tr-auth-jwt", TOKEN)
    assert res.returncode == 0, res.stderr
    subs = mock.submissions()
    assert subs[0] == "prepare" and subs[-1] == "join" and sorted(subs[1:3]) == ["left", "right"]
    reqs = mock.requests()
    post_right = next(i for i, r in enumerate(reqs) if r["path"] == "/job" and r["body"]["job_name"] == "right")
    last_left_check = max(i for i, r in enumerate(reqs)
                          if r["path"] == "/jobstatus" and r["query"]["job_id"].startswith("left-"))
    assert post_right < last_left_check  # both branches ran at once: right started before left ended
    assert all(r["auth"] == "Bearer " + fingerprint(TOKEN) for r in mock.requests())  # never the token itself
    lines = res.stdout.splitlines()
    assert any("prepare" in ln and "SUCCEEDED" in ln for ln in lines)
    assert any("left" in ln and "RUNNING" in ln and "job=" in ln for ln in lines)
    assert lines[-1] == "run SUCCEEDED"
    summary = lines[next(i for i, ln in enumerate(lines) if ln.startswith("STEP ")) :]
    assert summary[0].split()[:6] == ["STEP", "STATE", "ATTEMPT", "JOB", "ID", "ELAPSED"]
    assert lines[0].endswith("4 steps, Task Runner " + mock.url + "; times are UTC")
    stamps = [ln.split()[0] for ln in lines[1:] if ln[:2].isdigit()]
    assert stamps == sorted(stamps) and all(s.endswith("Z") for s in stamps)  # in time order, zone shown
    assert [row.split()[0] for row in summary[1:5]] == ["prepare", "left", "right", "join"]
    assert "Traceback" not in res.stderr


def test_failed_branch_exits_1_with_descendant_skipped(tmp_path: Path, mock: MockTaskRunner) -> None:
    res = run_cli(tmp_path, "--workflow-path", dag_file(tmp_path, FORK_FAIL), "--tr-url", mock.url,
                  "--tr-auth-jwt", TOKEN)
    assert res.returncode == 1, res.stderr
    assert "after-bad" not in mock.submissions() and "other" in mock.submissions()
    table = {ln.split()[0]: ln.split()[1] for ln in res.stdout.splitlines()[-8:] if len(ln.split()) > 1}
    assert table["bad"] == "FAILED" and table["after-bad"] == "SKIPPED" and table["other"] == "SUCCEEDED"
    assert "upstream step 'bad' failed" in res.stdout
    assert res.stdout.splitlines()[-1] == "run FAILED"


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--dag-path", "{cycle}", "--tr-hostname", "{url}", "--tr-auth-jwt", TOKEN], {}, "a -> c -> b -> a"),
        (["--dag-path", "missing.yaml", "--tr-hostname", "{url}", "--tr-auth-jwt", TOKEN], {}, "missing.yaml"),
        (["--dag-path", "{good}", "--tr-hostname", "runner.example.com", "--tr-auth-jwt", TOKEN], {},
         "--tr-hostname"),
        (["--dag-path", "{good}", "--tr-hostname", "{url}", "--tr-auth-jwt", TOKEN],
         {"WORKFLOW_CHECK_STATE_DURATION_SEC": "ten"}, "WORKFLOW_CHECK_STATE_DURATION_SEC"),
        (["--dag-path", "{good}", "--tr-hostname", "{url}", "--tr-auth-jwt", TOKEN, "--step-timeout-sec", "0"],
         {}, "--step-timeout-sec"),
        (["--tr-hostname", "{url}"], {}, "--dag-path"),
        (["--dag-path", "{good}", "--tr-hostname", "{url}", "--tr-auth-jwt="], {}, "--tr-auth-jwt is empty"),
        (["--dag-path", "{good}", "--tr-hostname", "{url}", "--tr-auth-jwt", "tok-SECRET-123\r\nX-Evil: 1"], {},
         "--tr-auth-jwt contains whitespace or control characters"),
    ],
    ids=["cycle", "missing-file", "bad-url", "bad-interval", "bad-timeout", "missing-flag", "empty-token",
         "token-with-newline"],
)
def test_invalid_input_exits_2_without_traceback_or_submission(
    tmp_path: Path, mock: MockTaskRunner, args: list[str], env: dict[str, str], expected: str
) -> None:
    paths = {"cycle": dag_file(tmp_path, CYCLE), "url": mock.url}
    good = tmp_path / "good.yaml"
    good.write_text(FORK_JOIN)
    paths["good"] = str(good)
    res = run_cli(tmp_path, *[a.format(**paths) for a in args], env=env)
    assert res.returncode == 2
    assert expected in res.stderr and "Traceback" not in res.stderr and "SECRET" not in res.stderr + res.stdout
    assert mock.requests() == []


def test_a_run_id_in_use_is_refused_before_anything_is_submitted(tmp_path: Path, mock: MockTaskRunner) -> None:
    good = dag_file(tmp_path, FORK_JOIN)
    first = run_cli(tmp_path, "--dag-path", good, "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN, "--run-id", "r-1")
    assert first.returncode == 0, first.stderr
    submitted = len(mock.submissions())
    other = tmp_path / "other.yaml"
    other.write_text("steps:\n- {id: solo, task: {imageUri: img/solo}}\n")
    again = run_cli(tmp_path, "--dag-path", str(other), "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN,
                    "--run-id", "r-1")
    assert again.returncode == 2 and "run r-1 already exists" in again.stderr and "another --run-id" in again.stderr
    assert "Traceback" not in again.stderr and len(mock.submissions()) == submitted


@pytest.mark.parametrize("style", ["--flag=value", "-flag=value", "-flag value"])
def test_the_go_tools_command_lines_work(tmp_path: Path, mock: MockTaskRunner, style: str) -> None:
    values = {"dag-path": dag_file(tmp_path, "steps:\n- {id: solo, task: {imageUri: img/solo}}\n"),
              "tr-hostname": mock.url, "tr-auth-jwt": TOKEN}
    dash = "--" if style.startswith("--") else "-"
    args = [part for k, v in values.items()
            for part in ([f"{dash}{k}={v}"] if "=" in style else [f"{dash}{k}", v])]
    res = run_cli(tmp_path, *args)
    assert res.returncode == 0, res.stderr
    assert mock.submissions() == ["solo"] and "1 step," in res.stdout


def test_a_task_runner_that_does_not_answer_is_named_before_the_run_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    res = run_cli(tmp_path, "--dag-path", dag_file(tmp_path, FORK_JOIN), "--tr-hostname",
                  f"http://127.0.0.1:{port}", "--tr-auth-jwt", TOKEN)
    assert res.returncode == 2 and f"the Task Runner at http://127.0.0.1:{port} does not answer" in res.stderr
    assert "Traceback" not in res.stderr and "urllib3" not in res.stderr
    assert not (tmp_path / "runs.sqlite3").exists() and res.stdout == ""  # no run was created


def test_help_documents_options_and_environment(tmp_path: Path) -> None:
    res = run_main("--help", cwd=tmp_path, timeout=30)
    assert res.returncode == 0
    for word in ("--dag-path", "--workflow-path", "--tr-hostname", "--tr-url", "--tr-auth-jwt", "--db",
                 "WORKFLOW_CHECK_STATE_DURATION_SEC", "WORKFLOW_STEP_TIMEOUT_SEC", "exit codes"):
        assert word in res.stdout


BAD_DAGS = {
    "empty file": (b"", "empty"),
    "not UTF-8": (b"steps:\n  - id: \xff\xfe\n", "UTF-8"),
    "unparsable YAML": (b"steps: [\n  - id: a\n", "line"),
    "steps missing": (b"name: x\n", "steps"),
    "steps empty": (b"steps: []\n", "steps"),
    "steps not a list": (b"steps: {a: 1}\n", "steps"),
    "step not a mapping": (b"steps: [hello]\n", "steps[0]"),
    "duplicate ids": (b"steps:\n- {id: a, task: {imageUri: i}}\n- {id: a, task: {imageUri: i}}\n", "'a'"),
    "unknown dependency": (b"steps:\n- {id: a, dependsOn: [zz], task: {imageUri: i}}\n", "zz"),
    "self dependency": (b"steps:\n- {id: a, dependsOn: [a], task: {imageUri: i}}\n", "itself"),
    "missing imageUri": (b"steps:\n- {id: a, task: {name: x}}\n", "imageUri"),
    "wrong type": (b"steps:\n- {id: a, task: {imageUri: i, args: [[1], null]}}\n", "args"),
    "unknown key": (b"steps:\n- {id: a, depends_on: [], task: {imageUri: i}}\n", "did you mean 'dependsOn'"),
    "object tag": (b"steps: !!python/object:os.system {}\n", "line 1"),
    "alias bomb": (b"a: &a [x,x,x,x,x,x,x,x,x]\n" + b"".join(
        f"{c}: &{c} [{','.join(['*' + p] * 9)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi", strict=True))
        + b"steps: *i\n", "alias"),
}


class CountingRunner:
    def __init__(self) -> None:
        self.calls = 0

    def submit(self, url: str, task: object, auth: str = "", run_id: str = "") -> object:
        self.calls += 1
        raise AssertionError("nothing may be submitted")

    def status(self, url: str, job_id: str, auth: str = "", run_id: str = "") -> object:
        self.calls += 1
        raise AssertionError("nothing may be polled")


@pytest.mark.parametrize("case", list(BAD_DAGS))
def test_every_invalid_dag_exits_2_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    from workflow.cli import main

    data, expected = BAD_DAGS[case]
    path = tmp_path / "bad.yaml"
    path.write_bytes(data)
    runner = CountingRunner()
    code = main(["--dag-path", str(path), "--tr-hostname", "http://127.0.0.1:9", "--db", ":memory:"],
                runner=runner)  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert runner.calls == 0


def test_a_run_whose_messages_all_fail_is_reported_stuck_not_awaited(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from workflow.cli import main
    from workflow.model.records import Job

    class Broken(CountingRunner):
        def submit(self, url: str, task: object, auth: str = "", run_id: str = "") -> object:
            return Job("job-1", "QUEUED")

        def status(self, url: str, job_id: str, auth: str = "", run_id: str = "") -> object:
            raise RuntimeError("bug in the runner client")

    path = tmp_path / "one.yaml"
    path.write_text("steps:\n- {id: a, task: {imageUri: i}}\n")
    code = main(["--dag-path", str(path), "--tr-hostname", "http://127.0.0.1:9", "--db", ":memory:"],
                runner=Broken())  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert code == 1 and "is stuck" in err and "bug in the runner client" in err


def test_a_submission_that_raises_unexpectedly_fails_its_step_as_unknown_without_a_retry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from workflow.cli import main

    class Broken(CountingRunner):
        def submit(self, url: str, task: object, auth: str = "", run_id: str = "") -> object:
            self.calls += 1
            raise RuntimeError("bug in the runner client")

    path = tmp_path / "one.yaml"
    path.write_text("steps:\n- {id: a, task: {imageUri: i}}\n- {id: b, dependsOn: [a], task: {imageUri: i}}\n")
    runner = Broken()
    code = main(["--dag-path", str(path), "--tr-hostname", "http://127.0.0.1:9", "--db", ":memory:"],
                runner=runner)  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert code == 1 and runner.calls == 1
    assert "submission outcome unknown" in out and "RuntimeError: bug in the runner client" in out
    assert out.splitlines()[-1] == "run FAILED"


def test_the_local_cloud_script_installs_what_is_missing_then_runs_the_command(tmp_path: Path) -> None:
    """On a clone set up by the quick start (runtime only), the script installs the dev set first."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "localcloud").write_text((ROOT / "scripts" / "localcloud").read_text())
    (tmp_path / "scripts" / "localcloud").chmod(0o755)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.log"
    fake = tmp_path / ".venv" / "bin" / "python"  # records each call; the first import check fails
    fake.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
case "$*" in
  -c*) grep -q "pip install" {calls} ;;
  *) exit 0 ;;
esac
""")
    fake.chmod(0o755)
    done = subprocess.run([str(tmp_path / "scripts" / "localcloud"), "up", "--poll", "1"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    assert "-m pip install" in lines[1] and "-r requirements-dev.txt" in lines[1]
    assert lines[-1] == "-m devtools.localcloud up --poll 1" and "installing what the local cloud needs" in done.stderr


def test_the_local_cloud_script_runs_the_local_cloud_command() -> None:
    done = subprocess.run([str(ROOT / "scripts" / "localcloud"), "--help"], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, done.stderr
    assert "up" in done.stdout and "upload" in done.stdout and "status" in done.stdout


def test_the_quick_start_runs_the_example_to_success() -> None:
    done = subprocess.run([str(ROOT / "scripts" / "quickstart")], capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "run SUCCEEDED" and "Traceback" not in done.stderr
    installed = subprocess.run([str(ROOT / ".venv" / "bin" / "dag-workflow"), "--help"], capture_output=True,
                               text=True, timeout=60, check=False)
    assert installed.returncode == 0 and "--dag-path" in installed.stdout  # the installed command


def test_the_seed_dags_run_against_the_mock_as_the_go_tool_sent_them(tmp_path: Path, mock: MockTaskRunner) -> None:
    dag = tmp_path / "seed.yaml"
    dag.write_text((ROOT / "dags" / "seed_engine_fork_join.yaml").read_text().replace(
        "task:", "task:\n      labels: {mock_final_state: SUCCEEDED}", 1))
    res = run_cli(tmp_path, "-dag-path", str(dag), "-tr-hostname", mock.url, "-tr-auth-jwt", TOKEN)
    assert res.returncode == 0, res.stderr
    posts = [r for r in mock.requests() if r["path"] == "/job"]
    assert posts and all("engine" in r["body"] and "url" in r["body"] and "imageUri" not in r["body"] for r in posts)
    first = posts[0]["body"]["job_name"]
    statuses = [r for r in mock.requests() if r["path"] == "/jobstatus" and r["query"]["job_id"].startswith(first)]
    assert statuses == []  # it ended in the submission's answer: not polled, as the Go tool did
    unquoted = run_cli(tmp_path, "--dag-path", str(ROOT / "dags" / "seed_unquoted_args.yaml"), "--tr-hostname",
                       mock.url, "--tr-auth-jwt", TOKEN)
    assert unquoted.returncode == 0, unquoted.stderr
    sent = [r["body"] for r in mock.requests() if r["path"] == "/job"][len(posts):]
    assert sent and all(isinstance(v, str) for b in sent for v in (b.get("labels") or {}).values())
