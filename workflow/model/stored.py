"""The stored layout of a step, written once for every store.

A store keeps these fields of a step by these names (SQLite as columns, Firestore as a
document's fields), with `definition` (what the DAG says of the step: fixed for the run, but
for the task and policy a rerun with a DAG file gives the steps it runs again)
and `history` (earlier attempts) as plain values. Stores add what is their own (a step's
position, slots and waiting marks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .dag import Policy, Task
from .records import Attempt, StepRecord
from .states import StepState


def definition_of(s: StepRecord) -> dict[str, Any]:
    return {"task": s.task.to_dict(), "dependsOn": list(s.depends_on), "successors": list(s.successors),
            "policy": s.policy.to_dict(), "anyEnd": list(s.waits_for_any_end), "maxParallel": s.max_parallel}


def step_fields(s: StepRecord) -> dict[str, Any]:
    """What a store writes when it creates the step."""
    return {"tr_url": s.tr_url, "tr_auth": s.tr_auth, "state": s.state.value, "waiting_on": s.waiting_on,
            "definition": definition_of(s), "job_id": s.job_id, "job_state": s.job_state, "message": s.message,
            "submitted_at": s.submitted_at, "finished_at": s.finished_at, "attempt": s.attempt,
            "history": history_of(s)}


def history_of(s: StepRecord) -> list[dict[str, object]]:
    return [a.to_dict() for a in s.history]


def next_attempt_fields(s: StepRecord) -> dict[str, Any]:
    """What a store writes when a rerun starts the step's next attempt (`s` as it must become)."""
    return {"definition": definition_of(s), "state": s.state.value, "waiting_on": s.waiting_on, "job_id": "",
            "job_state": "", "message": "", "submitted_at": None, "finished_at": None, "attempt": s.attempt,
            "history": history_of(s), "tr_auth": s.tr_auth}


def step_from_fields(run_id: str, step_id: str, d: Mapping[str, Any], version: object = None) -> StepRecord:
    """A step from its stored fields (`definition` and `history` decoded)."""
    definition = d["definition"]
    return StepRecord(
        run_id=run_id, step_id=step_id, task=Task.from_dict(definition["task"]), tr_url=d["tr_url"],
        tr_auth=d.get("tr_auth") or "", depends_on=tuple(definition["dependsOn"]),
        successors=tuple(definition["successors"]), state=StepState(d["state"]), waiting_on=int(d["waiting_on"]),
        job_id=d["job_id"], job_state=d["job_state"], message=d["message"], submitted_at=d.get("submitted_at"),
        finished_at=d.get("finished_at"), attempt=int(d.get("attempt") or 1),
        history=tuple(Attempt.from_dict(a) for a in d.get("history") or ()),
        policy=Policy.from_dict(definition.get("policy") or {}),
        waits_for_any_end=tuple(definition.get("anyEnd") or ()), max_parallel=int(definition.get("maxParallel") or 0),
        checked_at=d.get("checked_at"), version=version,
    )
