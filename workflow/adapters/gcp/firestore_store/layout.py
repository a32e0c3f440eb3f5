"""What Firestore holds, and how big it may grow.

`runs/{run}` holds the run (its counts by state are folded in when it ends);
`runs/{run}/counters/{k}` (k < SHARDS) the run's open-step count and counts by state,
spread by a hash of the step id so that no document takes a write per step end;
`runs/{run}/steps/{step}` a step in the stored layout of `model.stored` (its definition
and its join counter `waiting_on`), its position and `wide` (its successors whose join is
sharded); `runs/{run}/steps/{step}/joins/{k}` the shards of the join counter of a step
with more than WIDE dependencies; `runs/{run}/ends/{step}[@attempt][#chunk]` marks a
recorded end of an attempt; `runs/{run}/claims/{key}` a claim (and the markers of a run's
finish, a rerun, a slot's wake-up and a sharded join's release); `runs/{run}/slots/{k}` a
maxParallel slot.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ....errors import DagInvalid, Problem
from ....model.inputs import RunInputs
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
SHARDS = 32
"""Counter shards of a run, and of a wide join: a step end writes one, chosen by its step id."""
WIDE = 16
"""A step with more dependencies than this keeps its join counter in shards."""
ENDED_FIELD = {StepState.SUCCEEDED: "steps_succeeded", StepState.FAILED: "steps_failed",
               StepState.SKIPPED: "steps_skipped", StepState.CANCELLED: "steps_cancelled"}


def end_marker(step_id: str, attempt: int) -> str:
    """The end marker of one attempt of a step (the first keeps the plain step id)."""
    return step_id if attempt == 1 else f"{step_id}@{attempt}"


def shard_of(step_id: str) -> str:
    """The counter shard a step's end writes (of its run, and of each wide join it releases)."""
    return str(zlib.crc32(step_id.encode("utf-8", "surrogatepass")) % SHARDS)


def shard_counts(step_ids: Iterable[str]) -> dict[str, int]:
    """How many of `step_ids` fall in each shard (shards with none left out)."""
    counts: dict[str, int] = {}
    for s in step_ids:
        counts[shard_of(s)] = counts.get(shard_of(s), 0) + 1
    return counts


def is_wide(step: StepRecord) -> bool:
    """Whether the step's join counter is kept in shards."""
    return len(step.depends_on) > WIDE


def run_doc(run: RunRecord) -> dict[str, Any]:
    return {
        "status": run.status.value, "tr_url": run.tr_url, "dag_name": run.dag_name,
        "source": run.source, "created_at": run.created_at, "finished_at": run.finished_at,
        "step_count": run.step_count, "problems": list(run.problems),
        "updated_at": run.created_at, "timeout": run.timeout, "inputs": run.inputs.to_dict(),
    }


def counter_doc(open_steps: int, at: float) -> dict[str, Any]:
    return {"open": open_steps, **dict.fromkeys(ENDED_FIELD.values(), 0), "updated_at": at}


def folded(d: dict[str, Any], counters: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The run document `d` with its counters' counts by state summed in, and its latest progress."""
    sums = {field: sum(int(c.get(field) or 0) for c in counters) for field in ENDED_FIELD.values()}
    latest = max([float(d.get("updated_at") or d["created_at"])] + [float(c.get("updated_at") or 0) for c in counters])
    return {**d, **sums, "updated_at": latest}


def run_of(run_id: str, d: dict[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=run_id, status=RunStatus(d["status"]), tr_url=d["tr_url"], dag_name=d["dag_name"],
        source=d["source"], created_at=d["created_at"], finished_at=d.get("finished_at"),
        step_count=d["step_count"], problems=tuple(d.get("problems") or ()),
        succeeded=int(d.get("steps_succeeded", 0)), failed=int(d.get("steps_failed", 0)),
        skipped=int(d.get("steps_skipped", 0)), cancelled=int(d.get("steps_cancelled", 0)),
        reruns=tuple(d.get("reruns") or ()), updated_at=float(d.get("updated_at") or d["created_at"]),
        timeout=d.get("timeout"), inputs=RunInputs.from_dict(d.get("inputs")),
    )


def step_doc(pos: int, s: StepRecord, wide: Sequence[str] = ()) -> dict[str, Any]:
    return {"pos": pos, **step_fields(s), "wide": list(wide)}


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
    wide = {s.step_id for s in steps if is_wide(s)}
    for pos, step in enumerate(steps):
        doc = step_doc(pos, step, [succ for succ in step.successors if succ in wide])
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
