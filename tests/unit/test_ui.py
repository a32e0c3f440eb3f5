"""The run pages with Flask's test client, over a SQLite store the engine filled."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from uikit import MARKUP, SEALED, WIDE, filled, record, running

from enginekit import ScriptedRunner
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.bootstrap.ui import embedded_ui
from workflow.dagfile import RunContext, instantiate, parse_dag
from workflow.model.states import RunStatus
from workflow.ui import create_app

RUN_PAGE_BUDGET = 300_000  # bytes of a run page or its API answer


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("ui") / "runs.sqlite3"
    filled(str(path), 60)
    yield path


@pytest.fixture()
def client(db: Path) -> Iterator[FlaskClient]:
    rt = embedded_ui(str(db))
    app = create_app(rt.runs, rt.steps, rt.pages, rt.act, where=f"--db {db}", secret=b"k")
    yield app.test_client()
    rt.close()


def token_of(html: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_the_runs_list_names_the_runs_newest_first_and_pages(client: FlaskClient) -> None:
    page = client.get("/").get_data(as_text=True)
    assert page.index("running-1") < page.index("wide-1") < page.index("fork-join-1") < page.index("run-00059")
    assert page.count('<tr>') == 1 + 50  # header and one page
    older = re.search(r'href="(/\?before=[^"]+)">older', page)
    assert older
    second = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "run-00005" in second and "run-00059" not in second


def test_the_runs_list_filters_by_state(client: FlaskClient) -> None:
    page = client.get("/?status=FAILED").get_data(as_text=True)
    assert "run-00055" in page and "run-00056" not in page and "running-1" not in page
    assert client.get("/?status=NOPE").status_code == 400


def test_a_fork_join_page_shows_each_step_the_failure_first_and_why_join_was_skipped(client: FlaskClient) -> None:
    response = client.get("/runs/fork-join-1")
    page = response.get_data(as_text=True)
    for step in ("prepare", "left", "right", "join"):
        assert f'data-step="{step}"' in page
    for state in ("SUCCEEDED", "FAILED", "SKIPPED"):
        assert f'class="state s-{state}">{state}<' in page
    assert page.index('class="failed"') < page.index('id="graph"') < page.index('id="steps"')
    assert "upstream step &#39;right&#39; failed" in page
    assert '<svg id="graph"' in page
    assert '<b id="injected"' not in page and "&lt;b id=&#34;injected&#34;&gt;bold&lt;/b&gt;" in page
    data = json.loads(re.search(r'id="run-data">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert [n["id"] for n in data["graph"]["nodes"]] == ["step:prepare", "step:left", "step:right", "step:join"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_a_wide_run_draws_its_fan_out_as_one_group_and_pages_its_steps(client: FlaskClient) -> None:
    response = client.get("/runs/wide-1")
    page = response.get_data(as_text=True)
    assert len(response.data) < RUN_PAGE_BUDGET
    data = json.loads(re.search(r'id="run-data">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    nodes = data["graph"]["nodes"]
    assert [(n["label"], n["size"]) for n in nodes] == [("split", 1), (f"train-0* (x{WIDE})", WIDE), ("merge", 1)]
    assert nodes[1]["states"] == {"SUCCEEDED": WIDE - 1, "FAILED": 1}
    assert data["graph"]["edges"] == [["step:split", "group:train-0000"], ["group:train-0000", "step:merge"]]
    assert page.count("<tr data-step=") == 50 and "page 1 of 21" in page
    assert page.count('class="trow"') == 3  # one timeline bar for the whole fan-out
    failed = client.get("/runs/wide-1?state=FAILED").get_data(as_text=True)
    assert failed.count("<tr data-step=") == 1 and 'data-step="train-0007"' in failed


def test_the_api_answers_json_with_steps_paged_and_never_a_token(client: FlaskClient) -> None:
    runs = client.get("/api/runs?limit=5").get_json()
    assert [r["run_id"] for r in runs["runs"]][:3] == ["running-1", "wide-1", "fork-join-1"]
    assert runs["next_before"] is not None
    run = client.get("/api/runs/wide-1?offset=100&limit=20")
    body = run.get_json()
    assert len(run.data) < RUN_PAGE_BUDGET
    assert body["total"] == WIDE + 2 and next(s["step_id"] for s in body["steps"]) == "train-0099"
    assert body["counts"]["SUCCEEDED"] == WIDE and body["run"]["status"] == "FAILED"
    failed = client.get("/api/runs/wide-1?state=failed").get_json()
    assert [s["step_id"] for s in failed["steps"]] == ["train-0007"]
    assert SEALED not in run.get_data(as_text=True) and "tr_auth" not in run.get_data(as_text=True)
    assert client.get("/api/runs/nope").status_code == 404


def test_a_step_page_shows_the_task_as_sent_and_never_its_credential(client: FlaskClient) -> None:
    page = client.get("/runs/fork-join-1/steps/right").get_data(as_text=True)
    assert "img/error" in page and "&lt;b id=" in page and '<b id="injected"' not in page
    assert SEALED not in page
    assert "python main.py rerun fork-join-1 --from right" in page


def test_a_refresh_reads_only_what_moved(client: FlaskClient) -> None:
    quiet = client.get("/api/runs/wide-1/changes?since=999999").get_json()
    assert quiet["steps"] == [] and quiet["run"]["status"] == "FAILED"
    assert quiet["run"]["counts"]["FAILED"] == 1  # an ended run's record holds its counts
    moved = client.get("/api/runs/wide-1/changes?since=2020").get_json()["steps"]
    assert 0 < len(moved) < WIDE
    assert all(s["finished_at"] >= 2020 or (s["submitted_at"] or 0) >= 2020 for s in moved)
    assert client.get("/api/runs/nope/changes?since=0").status_code == 404


def test_a_refresh_of_a_quiet_running_run_leaves_its_counts_unread(client: FlaskClient) -> None:
    quiet = client.get("/api/runs/running-1/changes?since=999999").get_json()
    assert (quiet["steps"], quiet["run"]["status"], quiet["run"]["counts"]) == ([], "RUNNING", None)
    moved = client.get("/api/runs/running-1/changes?since=0").get_json()
    assert {s["step_id"] for s in moved["steps"]} == {"first", "a", "b"}  # submitted; `last` never was
    assert moved["run"]["counts"]["SUCCEEDED"] == 1 and moved["run"]["counts"]["OPEN"] == 3


def test_an_action_without_the_page_token_or_from_another_site_is_refused(client: FlaskClient, db: Path) -> None:
    token = token_of(client.get("/runs/running-1").get_data(as_text=True))
    for action in ("cancel", "rerun", "resume"):
        assert client.post(f"/runs/running-1/{action}").status_code == 400
        assert client.post(f"/runs/running-1/{action}", data={"token": "1.forged"}).status_code == 400
        cross = client.post(f"/runs/running-1/{action}", data={"token": token},
                            headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403
        other = token_of(client.get("/runs/fork-join-1").get_data(as_text=True))  # another run's page
        assert client.post(f"/runs/running-1/{action}", data={"token": other}).status_code == 400
    store = SqliteStateStore(str(db))
    assert store.get_run("running-1").status is RunStatus.RUNNING  # type: ignore[union-attr]
    store.close()


def test_cancel_from_the_page_cancels_the_run(tmp_path: Path) -> None:
    store = SqliteStateStore(str(tmp_path / "runs.sqlite3"))
    running(store)
    rt = embedded_ui(str(tmp_path / "runs.sqlite3"))
    client = create_app(rt.runs, rt.steps, rt.pages, rt.act).test_client()
    try:
        token = token_of(client.get("/runs/running-1").get_data(as_text=True))
        done = client.post("/runs/running-1/cancel", data={"token": token},
                           headers={"Origin": "http://localhost"})
        assert done.status_code == 303 and done.headers["Location"].endswith("/runs/running-1?acted=cancel")
        assert store.get_run("running-1").status is RunStatus.CANCELLED  # type: ignore[union-attr]
        late = client.post("/runs/running-1/cancel", data={"token": token})  # clicked after the run moved on
        assert late.status_code == 303 and late.headers["Location"].endswith("/runs/running-1?refused=cancel")
        shown = client.get("/runs/running-1?refused=cancel").get_data(as_text=True)
        assert "cancel not done: the run is CANCELLED now" in shown
        assert "not done" not in client.get("/runs/running-1?refused=%3Cb%3Ecall%20us").get_data(as_text=True)
        page = client.get("/runs/running-1?acted=cancel").get_data(as_text=True)
        assert "cancel requested" in page and 'id="do-rerun"' in page
    finally:
        rt.close()
        store.close()


def test_the_vendored_layout_library_is_pinned_with_its_licence() -> None:
    import hashlib

    vendor = Path(__file__).resolve().parents[2] / "workflow/ui/static/vendor"
    digest = hashlib.sha256((vendor / "dagre-0.8.5.min.js").read_bytes()).hexdigest()
    assert digest == "62eb9787ccfdbdf4148d4d99d31dbf9ee4770eafee81e637d759b52aac22cd51"
    assert "Permission is hereby granted" in (vendor / "dagre-LICENSE.txt").read_text(encoding="utf-8")


def test_a_run_page_shows_the_runs_parameters_as_text_and_a_for_each_as_one_node(tmp_path: Path) -> None:
    path = str(tmp_path / "params.sqlite3")
    store = SqliteStateStore(path)
    text = ('{"params": {"note": {"type": "string"}, "shards": {"type": "list", "default": ["a", "b", "c"]}},'
            ' "steps": [{"id": "prep", "task": {"imageUri": "i"}},'
            ' {"id": "train", "dependsOn": ["prep"], "forEach": "{{ params.shards }}", "task": {"imageUri": "i"}},'
            ' {"id": "merge", "dependsOn": ["train"], "task": {"imageUri": "i"}}]}')
    made, inputs = instantiate(parse_dag(text.encode(), "p.json"), {"note": MARKUP}, RunContext("p-1", 1000.0), "p")
    record(store, "p-1", made, ScriptedRunner(), inputs=inputs)
    store.close()
    rt = embedded_ui(path)
    client = create_app(rt.runs, rt.steps, rt.pages, rt.act, where=f"--db {path}", secret=b"k").test_client()
    page = client.get("/runs/p-1").get_data(as_text=True)
    body = client.get("/api/runs/p-1").get_json()
    rt.close()
    assert "<h2>Parameters</h2>" in page and "&lt;b id=&#34;injected&#34;&gt;" in page
    assert '<b id="injected"' not in page
    assert "<code>[&#34;a&#34;,&#34;b&#34;,&#34;c&#34;]</code>" in page
    assert "<b>train</b>: 3 steps (train.0 .. train.2)" in page and "3 SUCCEEDED" in page
    data = json.loads(re.search(r'id="run-data">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    assert [(n["label"], n["size"]) for n in data["graph"]["nodes"]] == [
        ("prep", 1), ("train (forEach x3)", 3), ("merge", 1)]
    assert data["graph"]["edges"] == [["step:prep", "group:train"], ["group:train", "step:merge"]]
    assert body["run"]["params"] == {"note": MARKUP, "shards": ["a", "b", "c"]}
    assert body["run"]["groups"] == {"train": ["train.0", "train.1", "train.2"]}
