"""`backfill` end to end: the command line in a subprocess against the mock Task Runner,
one run per day of the range, and the same command again submitting nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.mock_runner import MockTaskRunner
from support import NIGHTLY as DAG
from support import run_main

DAYS = ("2026-11-01", "2026-11-02", "2026-11-03")


@pytest.fixture
def open_mock() -> Iterator[MockTaskRunner]:
    """The mock Task Runner without a token of its own (the command is given `--tr-auth-jwt none`)."""
    with MockTaskRunner(duration=0.1) as m:
        yield m


def backfill(tmp_path: Path, mock: MockTaskRunner) -> tuple[int, str, str]:
    done = run_main("backfill", str(tmp_path / "nightly.yaml"), "--from", DAYS[0], "--to", DAYS[-1],
                    "--tr-hostname", mock.url, "--tr-auth-jwt", "none", "--db", str(tmp_path / "runs.sqlite3"),
                    cwd=tmp_path, env={"WORKFLOW_CHECK_STATE_DURATION_SEC": "0.05"})
    return done.returncode, done.stdout, done.stderr


def test_a_backfill_starts_a_run_per_day_and_again_starts_nothing(tmp_path: Path, open_mock: MockTaskRunner) -> None:
    (tmp_path / "nightly.yaml").write_text(DAG)
    code, out, err = backfill(tmp_path, open_mock)
    assert code == 0, out + err
    assert open_mock.submissions() == ["extract", "load"] * 3
    ids = [f"nightly-{day.replace('-', '')}T000000Z" for day in DAYS]
    assert [out.count(f"run {run_id}  started") for run_id in ids] == [1, 1, 1]
    assert out.rstrip().endswith("summary: 3 tick(s): 3 started (3 SUCCEEDED); 0 already there")
    listed = run_main("runs", "--json", "--db", str(tmp_path / "runs.sqlite3"), cwd=tmp_path)
    assert sorted(r["run_id"] for r in json.loads(listed.stdout)) == ids

    code, out, err = backfill(tmp_path, open_mock)
    assert code == 0, out + err
    assert len(open_mock.submissions()) == 6  # nothing submitted the second time
    assert [out.count(f"run {run_id}  already exists (SUCCEEDED): not started again") for run_id in ids] == [1, 1, 1]
    assert "summary: 3 tick(s): nothing started; 3 already there (3 SUCCEEDED)" in out


def test_each_backfilled_job_gets_the_date_of_its_day(tmp_path: Path, open_mock: MockTaskRunner) -> None:
    (tmp_path / "nightly.yaml").write_text(DAG)
    code, out, err = backfill(tmp_path, open_mock)
    assert code == 0, out + err
    sent = [r["body"]["args"] for r in open_mock.requests() if r["method"] == "POST" and
            r["body"]["job_name"] == "extract"]
    assert sorted(sent) == [["--day", day] for day in DAYS]


def test_a_bad_range_is_refused_before_anything_is_submitted(tmp_path: Path, open_mock: MockTaskRunner) -> None:
    (tmp_path / "nightly.yaml").write_text(DAG)
    done = run_main("backfill", str(tmp_path / "nightly.yaml"), "--from", "2026-11-03", "--to", "2026-11-01",
                    "--tr-hostname", open_mock.url, "--tr-auth-jwt", "none", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "error: --to 2026-11-01 is before --from 2026-11-03" in done.stderr
    assert open_mock.submissions() == [] and not (tmp_path / "workflow-runs.sqlite3").exists()
