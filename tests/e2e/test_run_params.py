"""Run parameters and forEach on the embedded runtime, end to end against the mock Task Runner:
what each job receives, counted at the Task Runner, and every refusal before anything runs."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest

from devtools.mock_runner import MockTaskRunner
from support import ROOT, TOKEN, run_cli

PARAMS_DAG = """\
name: p
params:
  lr: {type: number, default: "0.1", maximum: 1}
  note: {type: string, default: none}
  day: {type: string, required: true, pattern: "[0-9]{4}-[0-9]{2}-[0-9]{2}"}
  shards: {type: list, default: [a, b]}
steps:
  - id: prep
    task:
      imageUri: img/prep
      args: ["--lr={{ params.lr }}", "--day={{ params.day }}", "--run={{ run.id }}", "--date={{ run.date }}",
             "--note={{ params.note }}", '{{ "{{" }}kept']
      labels: {day: "d{{ params.day }}", mock_duration_sec: "0"}
  - id: train
    dependsOn: [prep]
    forEach: "{{ params.shards }}"
    task:
      imageUri: img/train
      args: {shard: "{{ item }}", lr: "{{ params.lr }}"}
      labels: {mock_duration_sec: "0.2"}
  - id: merge
    dependsOn: [train]
    task: {imageUri: img/merge, args: ["{{ params.shards }}"], labels: {mock_duration_sec: "0"}}
"""


def dag_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "dag.yaml"
    path.write_text(text)
    return str(path)


def posted(mock: MockTaskRunner) -> dict[str, dict[str, Any]]:
    """Each submitted job's body, by job name."""
    return {r["body"]["job_name"]: r["body"] for r in mock.requests() if r["path"] == "/job"}


def run(tmp_path: Path, mock: MockTaskRunner, *args: str) -> Any:
    return run_cli(tmp_path, "run", dag_file(tmp_path, PARAMS_DAG), "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN,
                   *args)


def test_values_defaults_and_run_placeholders_reach_the_job_as_text(tmp_path: Path, mock: MockTaskRunner) -> None:
    res = run(tmp_path, mock, "--run-id", "nightly-1", "--param", "lr=0.50", "--param", "day=2026-11-01",
              "--param", "note={{ run.id }}")
    assert res.returncode == 0, res.stderr
    today = datetime.datetime.now(datetime.UTC).date()
    prep = posted(mock)["prep"]
    assert prep["args"][:3] == ["--lr=0.50", "--day=2026-11-01", "--run=nightly-1"]  # 0.50 stays as given
    assert prep["args"][3] in (f"--date={today}", f"--date={today + datetime.timedelta(days=1)}")
    assert prep["args"][4:] == ["--note={{ run.id }}", "{{kept"]  # a value is never scanned again
    assert prep["labels"]["day"] == "d2026-11-01"


def test_for_each_makes_one_job_per_item_and_the_join_waits_for_all(tmp_path: Path, mock: MockTaskRunner) -> None:
    res = run(tmp_path, mock, "--param", "day=2026-11-01")
    assert res.returncode == 0, res.stderr
    jobs = posted(mock)
    assert sorted(jobs) == ["merge", "prep", "train.0", "train.1"]
    assert [jobs[f"train.{i}"]["args"] for i in (0, 1)] == [{"shard": "a", "lr": "0.1"}, {"shard": "b", "lr": "0.1"}]
    assert jobs["merge"]["args"] == ['["a","b"]']
    reqs = mock.requests()
    merge_at = next(i for i, r in enumerate(reqs) if r["path"] == "/job" and r["body"]["job_name"] == "merge")
    ends = [i for i, r in enumerate(reqs) if r["path"] == "/jobstatus" and r["query"]["job_id"].startswith("train")]
    assert ends and max(ends) < merge_at  # merge was submitted after the last check of every train job
    assert "train.1" in res.stdout and res.stdout.splitlines()[-1] == "run SUCCEEDED"


def test_a_json_list_changes_the_width(tmp_path: Path, mock: MockTaskRunner) -> None:
    res = run(tmp_path, mock, "--param", "day=2026-11-01", "--param", 'shards=["x","y","z","w","v"]')
    assert res.returncode == 0, res.stderr
    jobs = posted(mock)
    assert [jobs[f"train.{i}"]["args"]["shard"] for i in range(5)] == ["x", "y", "z", "w", "v"]
    assert len(jobs) == 7


@pytest.mark.parametrize(("args", "named"), [
    ((), "params.day: is required"),
    (("--param", "day=2026-11-01", "--param", "epochs=3"), "params.epochs: is not a parameter of this DAG"),
    (("--param", "day=2026-11-01", "--param", "lr=fast"), "params.lr: must be a number, got 'fast'"),
    (("--param", "day=2026-11-01", "--param", "lr=1.5"), "params.lr: is 1.5, above its maximum 1"),
    (("--param", "day=yesterday"), "params.day: 'yesterday' does not match its pattern"),
    (("--param", "day=2026-11-01", "--param", "shards=a"), "params.shards: must be a list"),
    (("--param", "day=2026-11-01", "--param", "note=a\nb"), "params.note: holds a line break"),
    (("--param", "day"), "--param 'day': expected NAME=VALUE"),
])
def test_bad_values_exit_2_naming_the_parameter_and_submit_nothing(tmp_path: Path, mock: MockTaskRunner,
                                                                   args: tuple[str, ...], named: str) -> None:
    res = run(tmp_path, mock, *args)
    assert res.returncode == 2 and named in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and mock.submissions() == []


@pytest.mark.parametrize(("change", "named"), [
    (("{{ params.lr }}\"", "{{ params.rate }}\""), "unknown parameter {{ params.rate }}"),
    (("imageUri: img/prep", "imageUri: img/{{ params.day }}"), "task.imageUri: a placeholder is not allowed here"),
    (("id: merge", "id: merge-{{ run.id }}"), ".id: a placeholder is not allowed here"),
    (("\"--lr={{ params.lr }}\"", "\"--lr={{ params.lr \""), "is not closed by '}}'"),
    (("{shard: \"{{ item }}\"", "{shard: \"{{ os.environ }}\""), "unknown placeholder {{ os.environ }}"),
    (("  shards:", "  api_token: {type: string}\n  shards:"), "params.api_token: looks like a credential's name"),
    (("forEach: \"{{ params.shards }}\"", "forEach: \"{{ params.lr }}\""), "forEach needs a list"),
])
def test_bad_files_exit_2_naming_the_key(tmp_path: Path, mock: MockTaskRunner, change: tuple[str, str],
                                        named: str) -> None:
    text = PARAMS_DAG.replace(*change, 1)
    assert text != PARAMS_DAG
    res = run_cli(tmp_path, "run", dag_file(tmp_path, text), "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN,
                  "--param", "day=2026-11-01")
    assert res.returncode == 2 and named in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and mock.submissions() == []


def test_a_dag_without_params_sends_what_it_always_sent(tmp_path: Path, mock: MockTaskRunner) -> None:
    res = run_cli(tmp_path, "run", str(ROOT / "dags" / "seed_unquoted_args.yaml"), "--tr-hostname", mock.url,
                  "--tr-auth-jwt", TOKEN)
    assert res.returncode == 0, res.stderr
    assert posted(mock) == {
        "prepare": {"job_name": "prepare", "imageUri": "gcr.io/project/prepare:1",
                    "args": ["--epochs", "3", "--lr", "0.010", "--debug", "true"],
                    "labels": {"version": "2", "nightly": "yes"}},
        "train": {"job_name": "train", "imageUri": "gcr.io/project/train:1",
                  "args": {"epochs": "3", "lr": "0.010", "steps": "1e3", "debug": "true"}, "labels": {"version": "2"}},
    }


def test_the_example_runs_with_its_defaults_and_status_shows_values_and_groups(tmp_path: Path,
                                                                                mock: MockTaskRunner) -> None:
    res = run_cli(tmp_path, "run", str(ROOT / "dags" / "params_foreach.yaml"), "--tr-hostname", mock.url,
                  "--tr-auth-jwt", TOKEN, "--run-id", "example-1")
    assert res.returncode == 0, res.stderr
    assert sorted(posted(mock)) == ["merge", "prepare", "train.0", "train.1", "train.2"]
    shown = run_cli(tmp_path, "status", "example-1")
    assert shown.returncode == 0, shown.stderr
    assert "lr=0.1" in shown.stdout and 'shards=["eu","us","asia"]' in shown.stdout
    assert "train: forEach of 3 (train.0 .. train.2): 3 SUCCEEDED" in shown.stdout
    assert "[3 SUCCEEDED] train (forEach)  <- prepare" in shown.stdout and "<- train\n" in shown.stdout
    assert "train: forEach of 3 (train.0 .. train.2): 3 SUCCEEDED" in res.stdout


def test_a_rerun_keeps_the_runs_values_with_or_without_a_new_file(tmp_path: Path, mock: MockTaskRunner) -> None:
    failing = PARAMS_DAG.replace('labels: {mock_duration_sec: "0.2"}', 'labels: {mock_fail_attempts: "1"}')
    path = dag_file(tmp_path, failing)
    res = run_cli(tmp_path, "run", path, "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN, "--run-id", "r",
                  "--param", "day=2026-11-01", "--param", 'shards=["p","q","s"]', "--param", "lr=0.25")
    assert res.returncode == 1, res.stderr
    again = run_cli(tmp_path, "rerun", "r", "--dag-path", path, "--tr-hostname", mock.url, "--tr-auth-jwt", TOKEN)
    assert again.returncode == 0, again.stderr + again.stdout
    trains = [r["body"] for r in mock.requests() if r["path"] == "/job" and r["body"]["job_name"].startswith("train")]
    assert len(trains) == 6  # each member failed once, then ran again
    assert {t["args"]["shard"] for t in trains} == {"p", "q", "s"} and {t["args"]["lr"] for t in trains} == {"0.25"}
    assert posted(mock)["merge"]["args"] == ['["p","q","s"]']


def test_a_param_file_gives_values_and_a_param_overrides_it(tmp_path: Path, mock: MockTaskRunner) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("day: 2026-11-02\nlr: 0.25\nshards: [k, l]\n")  # a date and a number, as YAML reads them
    res = run(tmp_path, mock, "--param-file", str(values), "--param", "lr=0.75")
    assert res.returncode == 2 and mock.submissions() == []  # a YAML date is not text: quote it
    assert "params.day: must be a string, got date 2026-11-02 (put it in quotes to keep it as text)" in res.stderr
    values.write_text("day: '2026-11-02'\nlr: 0.25\nshards: [k, l]\n")
    res = run(tmp_path, mock, "--param-file", str(values), "--param", "lr=0.75")
    assert res.returncode == 0, res.stderr
    jobs = posted(mock)
    assert jobs["prep"]["args"][:2] == ["--lr=0.75", "--day=2026-11-02"]
    assert [jobs[f"train.{i}"]["args"]["shard"] for i in (0, 1)] == ["k", "l"]
    missing = run(tmp_path, mock, "--param-file", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "--param-file" in missing.stderr and "Traceback" not in missing.stderr
