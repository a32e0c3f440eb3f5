"""The JSON API the pages use, for other tools too: `/api/runs` (a page of runs),
`/api/runs/<id>` (the run and a page of its steps) and `/api/runs/<id>/changes` (what moved
since the last refresh: the run's head and the steps submitted or ended since)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from flask import Flask, abort, jsonify, request
from flask.typing import ResponseReturnValue

from ..model.records import RunRecord
from ..model.states import RunStatus, StepState
from .views import run_dict, step_counts, step_dict

if TYPE_CHECKING:
    from .app import Ui

E = TypeVar("E", bound=StrEnum)
RUNS_PAGE = 50
STEPS_PAGE = 100
MAX_PAGE = 500
SKEW = 2.0  # seconds a refresh reaches back before the previous one (clocks and commit latency)


def register(app: Flask, ui: Ui) -> None:
    reads = ui.reads

    @app.get("/api/runs")
    def api_runs() -> ResponseReturnValue:
        status, before = run_status(request.args.get("status", "")), number(request.args.get("before"))
        limit = min(int(number(request.args.get("limit")) or RUNS_PAGE), MAX_PAGE)
        found = reads.pages.runs_page(limit + 1, status, before)
        now = ui.clock()
        return jsonify({"runs": [run_dict(r, now) for r in found[:limit]],
                        "next_before": found[limit - 1].created_at if len(found) > limit else None})

    @app.get("/api/runs/<run_id>")
    def api_run(run_id: str) -> ResponseReturnValue:
        run = known(reads.runs.get_run(run_id))
        steps = reads.steps.list_steps(run_id)
        state = step_state(request.args.get("state", ""))
        chosen = [s for s in steps if state is None or s.state is state]
        offset = max(int(number(request.args.get("offset")) or 0), 0)
        limit = min(max(int(number(request.args.get("limit")) or STEPS_PAGE), 1), MAX_PAGE)
        return jsonify({"run": run_dict(run, ui.clock()), "counts": step_counts(steps), "total": len(chosen),
                        "offset": offset, "limit": limit,
                        "steps": [step_dict(s) for s in chosen[offset:offset + limit]]})

    @app.get("/api/runs/<run_id>/changes")
    def api_changes(run_id: str) -> ResponseReturnValue:
        """The run's head (one read) and its steps submitted or ended since `since` (one
        query). A running run's counts by state are read only when a step moved; when none
        did they are null: nothing changed since the last answer."""
        started = ui.clock()
        run = known(reads.pages.run_head(run_id))
        moved = reads.pages.steps_changed(run_id, number(request.args.get("since")) or 0.0)
        live = run.status is RunStatus.RUNNING
        if live and moved:
            run = known(reads.runs.get_run(run_id))
        shown = run_dict(run, started)
        if live and not moved:
            shown["counts"] = None
        return jsonify({"run": shown, "since": started - SKEW, "steps": [step_dict(s) for s in moved]})


def known(run: RunRecord | None) -> RunRecord:
    if run is None:
        abort(404)
    return run


def number(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        abort(400)


def run_status(raw: str) -> RunStatus | None:
    return _enum(RunStatus, raw)


def step_state(raw: str) -> StepState | None:
    return _enum(StepState, raw)


def _enum(kind: type[E], raw: str) -> E | None:
    """The member named `raw` (any case), None for "", or a 400."""
    if not raw:
        return None
    try:
        return kind(raw.upper())
    except ValueError:
        abort(400)
