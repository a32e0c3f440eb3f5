"""What Firestore holds, and how big it may grow.

`runs/{run}` holds the run, its open-step counter and its counts by state;
`runs/{run}/steps/{step}` a step in the stored layout of `model.stored` (its definition
and its join counter `waiting_on`) and its position; `runs/{run}/ends/{step}[@attempt][#chunk]`
marks a recorded end of an attempt; `runs/{run}/claims/{key}` a claim (and the markers of
a run's finish, a rerun and a slot's wake-up); `runs/{run}/slots/{k}` a maxParallel slot.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ....errors import DagInvalid, Problem
from ....model.records import RunRecord, StepRecord
from ....model.states import RunStatus, StepState
from ....model.stored import step_fields, step_from_fields
from ....model.text import MESSAGE_LIMIT

BATCH = 400  # writes per commit: below Firestore's 500 per batch
MAX_DOCUMENT_BYTES = 1_048_576  # Firestore's limit on one document's size
MAX_REQUEST_BYTES = 10_485_760  # Firestore's limit on one commit request
STEP_GROWTH_BYTES = 4 * MESSAGE_LIMIT + 4_096
"""Room kept in a step document for what the engine writes later (message, job fields)."""
BATCH_BYTES = MAX_REQUEST_BYTES - 1_048_576  # a creation batch's estimated size, with room for framing
ENDED_FIELD = {StepState.SUCCEEDED: "steps_succeeded", StepState.FAILED: "steps_failed",
               StepState.SKIPPED: "steps_skipped", StepState.CANCELLED: "steps_cancelled"}


def end_marker(step_id: str, attempt: int) -> str:
    """The end marker of one attempt of a step (the first keeps the plain step id)."""
    return step_id if attempt == 1 else f"{step_id}@{attempt}"


def run_doc(run: RunRecord, open_steps: int) -> dict[str, Any]:
    return {
        "status": run.status.value, "tr_url": run.tr_url, "dag_name": run.dag_name,
        "source": run.source, "created_at": run.created_at, "finished_at": run.finished_at,
        "step_count": run.step_count, "open_steps": open_steps, "problems": list(run.problems),
        "updated_at": run.created_at, "timeout": run.timeout,
    }


def run_of(run_id: str, d: dict[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=run_id, status=RunStatus(d["status"]), tr_url=d["tr_url"], dag_name=d["dag_name"],
        source=d["source"], created_at=d["created_at"], finished_at=d.get("finished_at"),
        step_count=d["step_count"], problems=tuple(d.get("problems") or ()),
        succeeded=int(d.get("steps_succeeded", 0)), failed=int(d.get("steps_failed", 0)),
        skipped=int(d.get("steps_skipped", 0)), cancelled=int(d.get("steps_cancelled", 0)),
        reruns=tuple(d.get("reruns") or ()), updated_at=float(d.get("updated_at") or d["created_at"]),
        timeout=d.get("timeout"),
    )


def step_doc(pos: int, s: StepRecord) -> dict[str, Any]:
    return {"pos": pos, **step_fields(s)}


def step_of(run_id: str, step_id: str, d: dict[str, Any], version: object = None) -> StepRecord:
    return step_from_fields(run_id, step_id, d, version)


def _value_bytes(value: Any) -> int:
    """Storage size of a field value: strings their UTF-8 bytes + 1, numbers 8, maps their
    keys (UTF-8 + 1) and values; None and booleans 1."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) + 1
    if isinstance(value, Mapping):
        return sum(len(str(k).encode()) + 1 + _value_bytes(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_value_bytes(v) for v in value)
    return 1 if value is None or isinstance(value, bool) else 8


SizedDoc = tuple[StepRecord, dict[str, Any], int]


def sized_step_docs(root: str, steps: Sequence[StepRecord]) -> list[SizedDoc]:
    """Each step with its document and that document's storage size (Firestore's rules:
    the name's ids, UTF-8 + 1 each, plus 16; the fields; plus 32)."""
    sized = []
    for pos, step in enumerate(steps):
        doc = step_doc(pos, step)
        name = sum(len(part.encode("utf-8", "surrogatepass")) + 1
                   for part in (root, step.run_id, "steps", step.step_id)) + 16
        sized.append((step, doc, name + _value_bytes(doc) + 32))
    return sized


def check_sizes(run_id: str, sized: Sequence[SizedDoc]) -> None:
    """DagInvalid naming every step whose document, with room to grow, would pass the limit."""
    too_large = [Problem(f"step {step.step_id!r}", f"its stored document would take about {size:,} bytes, over "
                         f"Firestore's {MAX_DOCUMENT_BYTES:,} with room for its results (the Task Runner URL "
                         "is copied into each step)")
                 for step, _, size in sized if size + STEP_GROWTH_BYTES > MAX_DOCUMENT_BYTES]
    if too_large:
        raise DagInvalid(f"run {run_id}", too_large)


def _batches(sized: Sequence[SizedDoc]) -> Iterator[list[SizedDoc]]:
    """Consecutive chunks of at most BATCH documents and BATCH_BYTES estimated bytes."""
    chunk: list[SizedDoc] = []
    total = 0
    for item in sized:
        if chunk and (len(chunk) == BATCH or total + item[2] > BATCH_BYTES):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += item[2]
    if chunk:
        yield chunk
