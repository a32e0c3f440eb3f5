"""The engine's handlers on the Firestore emulator, messages delivered by hand: what depends
on how Firestore keeps state (slots are documents there, not a column)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from enginekit import Harness, dag
from workflow.adapters.gcp.firestore_store import FirestoreStateStore
from workflow.engine import handle
from workflow.model.messages import ReconcileRun, StartRun
from workflow.model.records import Claim
from workflow.model.states import RunStatus

pytestmark = pytest.mark.cloud


def test_a_reconcile_that_fails_an_unknown_submission_gives_its_slot_to_the_next_step(firestore_client: Any) -> None:
    store = FirestoreStateStore(firestore_client, root=f"runs-{uuid.uuid4().hex[:8]}")
    h = Harness(store=store)  # type: ignore[arg-type]
    handle(StartRun("r1", dag({"a": [], "b": []}, max_parallel=1), "http://runner"), h.ports)
    h.bus.pending.clear()  # the dispatches are lost
    assert store.take_slot("r1", "a", 1, 1, h.now)
    assert store.claim("r1", "submit:a", h.now, lease=300) is Claim.WON  # a process died holding both
    h.now += 1000
    handle(ReconcileRun("r1"), h.ports)
    h.drain()
    assert h.states("r1")["a"][0] == "FAILED" and h.states("r1")["b"] == ("SUCCEEDED", "b-1")
    run = store.get_run("r1")
    assert run is not None and run.status is RunStatus.FAILED
