"""The engine messages' JSON form refuses wrong types and ids; Firestore size estimates
and creation batches stay within Firestore's limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workflow.adapters.gcp import firestore_store
from workflow.adapters.gcp.firestore_store import (
    BATCH,
    BATCH_BYTES,
    MAX_DOCUMENT_BYTES,
    check_sizes,
    sized_step_docs,
)
from workflow.errors import DagInvalid, PoisonMessage
from workflow.model import codec
from workflow.model.dag import Task
from workflow.model.messages import CheckJob, DispatchStep, SweepRuns
from workflow.model.records import StepRecord


def check_job(**fields: Any) -> bytes:
    body = {"v": 1, "type": "CheckJob", "run_id": "r", "step_id": "s", "job_id": "j", **fields}
    return json.dumps(body).encode()


@pytest.mark.parametrize(("data", "problem"), [
    (check_job(seq="x"), "field 'seq' must be int, not str"),
    (check_job(seq=1.5), "field 'seq' must be int, not float"),
    (check_job(seq=True), "field 'seq' must be int, not bool"),
    (check_job(submitted_at="soon"), "field 'submitted_at' must be float"),
    (check_job(tr_url=["https://x"]), "field 'tr_url' must be str, not list"),
    (check_job(job_id=None), "field 'job_id' must be str, not NoneType"),
    (check_job(run_id=5), "field 'run_id' must be str, not int"),
    (check_job(extra=1), "unexpected keyword argument 'extra'"),
    (json.dumps({"v": 1, "type": "CheckJob", "run_id": "r"}).encode(), "missing"),
    (check_job(run_id="__x__"), "run_id '__x__' is not"),
    (check_job(run_id="."), "run_id '.' is not"),
    (check_job(step_id=".."), "step_id '..' is not"),
    (check_job(run_id="a/b"), "run_id 'a/b' is not"),
    (json.dumps({"v": 1, "type": "StepFinished", "run_id": "r", "step_id": "s", "state": "tok-SECRET-123",
                 "at": 1}).encode(), "field 'state' is not one of"),
    (b"[" * 100_000, "not JSON"),
    (b"\xff", "not JSON"),
])
def test_a_malformed_message_is_poison_naming_the_problem(data: bytes, problem: str) -> None:
    with pytest.raises(PoisonMessage) as caught:
        codec.decode(data)
    assert problem in str(caught.value) and "tok-SECRET-123" not in str(caught.value)


def test_numbers_are_accepted_where_a_float_is_expected() -> None:
    assert codec.decode(check_job(seq=2, submitted_at=7)) == CheckJob("r", "s", "j", seq=2, submitted_at=7.0)
    assert codec.decode(codec.encode(DispatchStep("__init", "s._-"))) == DispatchStep("__init", "s._-")


def step(step_id: str, *, args: tuple[str, ...] = (), tr_url: str = "https://tr.example") -> StepRecord:
    return StepRecord("run-1", step_id, Task(step_id, "img", args=args), tr_url=tr_url)


def test_size_estimates_follow_firestore_rules_and_cover_the_document() -> None:
    (_, doc, size), = sized_step_docs("runs", [step("a")])
    assert size > len(json.dumps(doc).encode()) - 200  # at least the fields' text, minus JSON punctuation
    (_, _, wider), = sized_step_docs("runs", [step("a", tr_url="https://tr.example/" + "é" * 1000)])
    assert wider - size == 1 + 2000  # "/" and UTF-8 bytes, not characters


def test_a_step_over_the_document_limit_is_named() -> None:
    near = MAX_DOCUMENT_BYTES - firestore_store.STEP_GROWTH_BYTES
    steps = [step("ok", args=("x" * (near - 2_000),)), step("big", args=("x" * near,)), step("small")]
    with pytest.raises(DagInvalid) as caught:
        check_sizes("run-1", sized_step_docs("runs", steps))
    assert [p.where for p in caught.value.problems] == ["step 'big'"]
    check_sizes("run-1", sized_step_docs("runs", steps[:1] + steps[2:]))


def test_creation_batches_stay_under_the_request_limit_and_the_write_limit() -> None:
    large = [step(f"l{i}", args=("x" * 900_000,)) for i in range(25)]
    small = [step(f"s{i}") for i in range(BATCH + 3)]
    for steps in (large, small, large + small):
        batches = list(firestore_store._batches(sized_step_docs("runs", steps)))
        assert [s for batch in batches for s, _, _ in batch] == steps  # every step once, in order
        assert all(len(b) <= BATCH and sum(n for _, _, n in b) <= BATCH_BYTES for b in batches)
    assert len(list(firestore_store._batches(sized_step_docs("runs", large)))) == 3


def sweep(**fields: Any) -> bytes:
    return json.dumps({"v": 1, "type": "SweepRuns", **fields}).encode()


@pytest.mark.parametrize(("data", "problem"), [
    (check_job(job_id="j" * 1_025), "field 'job_id' is 1,025 characters long (at most 1,024)"),
    (check_job(tr_url="https://x/" + "p" * 3_000), "field 'tr_url' is 3,010 characters long (at most 2,048)"),
    (check_job(job_message="m" * 5_000), "field 'job_message' is 5,000 characters long"),
    (check_job(seq=-1), "field 'seq' is -1, outside 0"),
    (check_job(retries=21), "field 'retries' is 21, outside 0 to 20"),
    (check_job(submitted_at=-5.0), "field 'submitted_at' is -5.0"),
    (check_job(successors=["a", "../b"]), "successors '../b' is not"),
    (check_job(successors=[f"s{i}" for i in range(5_001)]), "lists 5,001 steps"),
    (sweep(stale_after=-900.0), "field 'stale_after' is -900.0, outside 0"),
    (sweep(stale_after=0.0), "'stale_after' must be more than 0 seconds"),
    (sweep(limit=0), "field 'limit' is 0, outside 1 to 1000"),
    (sweep(limit=10**9), "field 'limit' is 1000000000"),
    (json.dumps({"v": 1, "type": "RerunRun", "run_id": "r", "reruns": 0, "from_step": "a/b"}).encode(),
     "from_step 'a/b' is not"),
])
def test_an_engine_message_out_of_its_bounds_is_poison(data: bytes, problem: str) -> None:
    with pytest.raises(PoisonMessage) as caught:
        codec.decode(data)
    assert problem in str(caught.value) and len(str(caught.value)) < 500


def test_messages_the_engine_publishes_stay_within_their_bounds() -> None:
    check = CheckJob("r", "s", "j" * 1_024, seq=2**40, tr_url="https://" + "h" * 2_000, tr_auth="f" * 30_000,
                     submitted_at=1e9, job_state="RUNNING", successors=tuple(f"s{i}" for i in range(5_000)),
                     timeout=30 * 86_400.0, retries=20, max_parallel=5_000)
    assert codec.decode(codec.encode(check)) == check
    assert codec.decode(sweep(stale_after=6.0, limit=1_000)) == SweepRuns(6.0, 1_000)
