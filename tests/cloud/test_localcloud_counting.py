"""Counting Firestore operations for the benchmark, outside the shipped code: `op_counts`
on the emulator, and `counted_main` served by functions-framework next to `main.py`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.cloud.firestore_v1.batch import WriteBatch
from google.cloud.firestore_v1.document import DocumentReference

from devtools.localcloud import functions
from devtools.localcloud.op_counts import counting
from devtools.localcloud.servers import Service
from devtools.localcloud.stack import LocalCloud
from devtools.localcloud.wiring import COUNTED_SOURCE, FUNCTION_SOURCE
from polling import wait_until
from store_contract import make_run, ok
from workflow.adapters.gcp.firestore_store import FirestoreStateStore
from workflow.adapters.gcp.firestore_store.layout import shard_of
from workflow.model.records import Claim

pytestmark = pytest.mark.cloud


def small_run(store: FirestoreStateStore) -> str:
    """Every kind of operation counted: document reads, a batch read, queries that find
    documents and one that finds none, batched and single writes, a delete."""
    run_id = make_run(store, {"a": [], "b": ["a"]})  # read the run; 2 steps, their 2 counter shards, then the run
    store.claim(run_id, "submit:a", 1.0, 60.0)  # 1 create
    store.complete_step(run_id, "a", ok())  # read a; its marker, a, its counter shard, b's counter;
    # that shard is now at zero: a query finds b's shard above zero (1)
    store.list_steps(run_id)  # 2 documents
    store.stale_runs(before=0.0, limit=5)  # none: 1
    store.release(run_id, "submit:a")  # 1 delete
    store.queue_steps(run_id, ["b"], 3.0)  # read b, no slot held (1); b queued
    return run_id


def test_a_small_run_is_counted_by_document(firestore_client: Any) -> None:
    store = FirestoreStateStore(firestore_client)
    with counting() as counts:
        run_id = small_run(store)
    run = f"runs/{run_id}"
    assert counts.reads == 8
    assert counts.doc_writes == {run: 1, f"{run}/counters/{shard_of('a')}": 2, f"{run}/counters/{shard_of('b')}": 1,
                                 f"{run}/steps/a": 2, f"{run}/steps/b": 3, f"{run}/claims/submit:a": 2,
                                 f"{run}/ends/a": 1}
    assert counts.writes == sum(counts.doc_writes.values()) == 12


def test_a_failed_write_counts_as_sent(firestore_client: Any) -> None:
    store = FirestoreStateStore(firestore_client)
    run_id = make_run(store, {"a": []})
    store.claim(run_id, "k", 1.0, 60.0)
    with counting() as counts:
        assert store.claim(run_id, "k", 2.0, 60.0) is Claim.BUSY  # a create refused, then a read
    assert (counts.reads, counts.writes) == (1, 1)


def test_nothing_is_counted_outside_counting(firestore_client: Any) -> None:
    originals = (WriteBatch.commit, DocumentReference.get, DocumentReference.delete)
    store = FirestoreStateStore(firestore_client)
    with counting() as counts:
        assert WriteBatch.commit is not originals[0]
        small_run(store)
    seen = counts.as_dict()
    small_run(store)
    assert counts.as_dict() == seen
    assert (WriteBatch.commit, DocumentReference.get, DocumentReference.delete) == originals


def test_the_local_cloud_serves_the_counting_functions_only_when_asked() -> None:
    assert LocalCloud().function_source == FUNCTION_SOURCE
    assert LocalCloud(count_ops=True).function_source == COUNTED_SOURCE
    assert functions.function_source(COUNTED_SOURCE).name == "counted_main.py"


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def ops_lines(log: Path) -> list[dict[str, Any]]:
    messages = [json.loads(line).get("message", "") for line in log.read_text(errors="replace").splitlines()
                if line.startswith("{")]
    return [json.loads(m[4:]) for m in messages if m.startswith("ops ")]


def test_counted_functions_log_their_counts_and_main_logs_none(
    start_function: Callable[..., Service], unique_id: Callable[[str], str], tmp_path: Path
) -> None:
    served = {}
    for source in (FUNCTION_SOURCE, COUNTED_SOURCE):
        own = tmp_path / Path(source).stem  # gunicorn's control socket, one per server
        own.mkdir()
        served[source] = start_function(source, "on_control_request", WORKFLOW_TR_AUTH_MODE="none", LOG_FORMAT="json",
                                         XDG_RUNTIME_DIR=str(own))
    cancel = {"action": "cancel", "run_id": unique_id("no-such-run")}
    for function in served.values():
        for _ in range(2):
            status, body = post(function.url, cancel)
            assert status == 400 and "no run" in body["problems"][0]
    log = served[COUNTED_SOURCE].process.log_path
    wait_until(lambda: len(ops_lines(log)) == 2, 10, "an ops line per call")
    counted = [(c["reads"], c["writes"], c["published"], c["doc_writes"]) for c in ops_lines(log)]
    assert counted == [(1, 0, 0, {}), (2, 0, 0, {})]  # cumulative: the run looked up once per call
    assert all(isinstance(c["pid"], int) for c in ops_lines(log))
    assert ops_lines(served[FUNCTION_SOURCE].process.log_path) == []
