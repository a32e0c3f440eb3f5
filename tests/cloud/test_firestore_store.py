"""The StateStore contract on the Firestore emulator, plus what only Firestore can show."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.localcloud.op_counts import counting
from store_contract import StoreContract, make_run, ok
from workflow.adapters.gcp.firestore_store import BATCH, FirestoreStateStore
from workflow.adapters.gcp.firestore_store.layout import WIDE
from workflow.errors import TransientError

pytestmark = pytest.mark.cloud


class TestFirestore(StoreContract):
    @pytest.fixture
    def store(self, firestore_client: Any) -> FirestoreStateStore:
        return FirestoreStateStore(firestore_client)

    def fail_reads(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        def broken(run_id: str, step_id: str) -> None:
            raise TransientError("read failed")

        monkeypatch.setattr(store, "get_step", broken)


def test_a_fan_out_wider_than_one_batch_releases_every_successor_once(firestore_client: Any) -> None:
    store = FirestoreStateStore(firestore_client)
    width = BATCH * 2 + 7
    spec: dict[str, list[str]] = {"src": [], **{f"m{i}": ["src"] for i in range(width)}}
    run_id = make_run(store, spec)
    first = store.complete_step(run_id, "src", ok())
    assert first.recorded and sorted(first.unblocked) == sorted(f"m{i}" for i in range(width))
    again = store.complete_step(run_id, "src", ok())
    assert not again.recorded and len(again.unblocked) == width
    assert {s.waiting_on for s in store.list_steps(run_id) if s.step_id != "src"} == {0}


def test_join_writes_are_constant_per_incoming_edge(firestore_client: Any) -> None:
    store = FirestoreStateStore(firestore_client)
    for width in (10, 100):
        spec: dict[str, list[str]] = {f"p{i}": [] for i in range(width)}
        spec["join"] = [f"p{i}" for i in range(width)]
        run_id = make_run(store, spec)
        with counting() as counts:
            for i in range(width):
                store.complete_step(run_id, f"p{i}", ok())
        wide = width > WIDE  # its join counter is in shards; its release writes 2 more (the marker, the step)
        assert counts.writes == 4 * width + (2 if wide else 0)  # marker, step, run counter shard, join counter (shard)
        assert counts.doc_writes[f"runs/{run_id}/steps/join"] == (1 if wide else width)


def test_reading_a_wide_running_run_costs_three_reads_whatever_its_shards(firestore_client: Any) -> None:
    store = FirestoreStateStore(firestore_client)
    spec: dict[str, list[str]] = {f"p{i}": [] for i in range(300)}  # steps in every counter shard
    run_id = make_run(store, spec)
    for i in range(0, 300, 3):
        store.complete_step(run_id, f"p{i}", ok(at=5.0 + i))
    with counting() as counts:
        run = store.get_run(run_id)
    assert run is not None and (run.succeeded, run.failed) == (100, 0) and run.updated_at == 5.0 + 297
    assert counts.reads == 3  # the run, one aggregation of its counts, its latest counter shard


def test_a_rerun_run_is_listed_without_the_counts_of_its_earlier_end(firestore_client: Any) -> None:
    """An ended run keeps its counts on its document (a page of runs reads one document each);
    a rerun moves them back to its counter shards, so no list shows the earlier end's."""
    from dataclasses import replace

    from workflow.adapters.gcp.firestore_pages import FirestorePages
    from workflow.model.records import Attempt, StepOutcome
    from workflow.model.states import RunStatus, StepState

    store = FirestoreStateStore(firestore_client)
    run_id = make_run(store, {"a": [], "b": []})
    store.complete_step(run_id, "a", ok())
    store.complete_step(run_id, "b", StepOutcome(StepState.FAILED, 2.0, "job-b", "exit 1", "FAILED"))
    assert store.finish_run(run_id, RunStatus.FAILED, 3.0)
    b = store.get_step(run_id, "b")
    assert b is not None
    again = replace(b, state=StepState.PENDING, attempt=2, job_id="", message="", finished_at=None,
                    history=(Attempt(1, b.state, b.job_id, b.message, b.submitted_at, b.finished_at),))
    assert store.rerun_steps(run_id, 0, [again], 4.0)
    listed = next(r for r in FirestorePages(firestore_client).runs_page(500) if r.run_id == run_id)
    assert listed.status is RunStatus.RUNNING and listed.failed == 0  # not the earlier end's 1
    run = store.get_run(run_id)
    assert run is not None and (run.succeeded, run.failed) == (1, 0)  # the shards: a kept, b running again
