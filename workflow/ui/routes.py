"""The HTML pages: `/` (runs, newest first), `/runs/<id>` (a run), `/runs/<id>/steps/<step>`
(a step), and the actions POSTed from a run page (`/runs/<id>/cancel|rerun|resume`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from flask import Flask, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from ..errors import InputError
from ..model.states import RunStatus, StepState
from .actions import ACTIONS, allowed, twin
from .api import RUNS_PAGE, SKEW, known, number, run_status, step_state
from .timeline import timeline
from .views import (
    STATES,
    graph_of,
    group_states,
    page_of,
    run_counts,
    run_dict,
    skip_reasons,
    step_counts,
    step_dict,
)

if TYPE_CHECKING:
    from .app import Ui

TABLE_PAGE = 50  # rows of a run page's step table
FAILED_SHOWN = 20  # failed steps listed above the graph


def register(app: Flask, ui: Ui) -> None:
    reads = ui.reads

    @app.get("/")
    def runs_page() -> ResponseReturnValue:
        status, before = run_status(request.args.get("status", "")), number(request.args.get("before"))
        found = reads.pages.runs_page(RUNS_PAGE + 1, status, before)
        shown = found[:RUNS_PAGE]
        older = shown[-1].created_at if len(found) > RUNS_PAGE else None
        return render_template("runs.html", runs=shown, counts=[run_counts(r) for r in shown], now=ui.clock(),
                               status=status.value if status else "", statuses=[s.value for s in RunStatus],
                               older=older, paged=before is not None, where=ui.where)

    @app.get("/runs/<run_id>")
    def run_page(run_id: str) -> ResponseReturnValue:
        started = ui.clock()
        run = known(reads.runs.get_run(run_id))
        steps = reads.steps.list_steps(run_id)
        graph = graph_of(steps, run.inputs.groups)
        state = step_state(request.args.get("state", ""))
        chosen = [s for s in steps if state is None or s.state is state]
        rows, pages = page_of(chosen, int(number(request.args.get("page")) or 1), TABLE_PAGE)
        page = min(max(int(number(request.args.get("page")) or 1), 1), pages)
        failed = [s for s in steps if s.state is StepState.FAILED]
        data = {"run_id": run.run_id, "status": run.status.value, "since": started - SKEW,
                "graph": graph.to_dict(steps), "node_of": graph.node_of,
                "states": {s.step_id: s.state.value for s in steps}}
        commands = {a: twin(a, run.run_id, ui.where) for a in ACTIONS}
        return render_template(
            "run.html", run=run, info=run_dict(run, started), counts=step_counts(steps), states=STATES,
            failed=failed[:FAILED_SHOWN], failed_more=max(len(failed) - FAILED_SHOWN, 0),
            skips=skip_reasons(steps), timeline=timeline(run, steps, graph, started), rows=rows, page=page,
            pages=pages, state=state.value if state else "", total=len(chosen), data=data,
            token=ui.guard.token(run.run_id), commands=commands,
            allowed={a: allowed(a, run) for a in ACTIONS}, acted=request.args.get("acted", ""),
            refused=request.args.get("refused", "") if request.args.get("refused") in ACTIONS else "",
            step_ids=[s.step_id for s in steps] if len(steps) <= 200 else [],
            group_states=group_states(steps, run.inputs.groups))

    @app.get("/runs/<run_id>/steps/<step_id>")
    def step_page(run_id: str, step_id: str) -> ResponseReturnValue:
        run = known(reads.runs.get_run(run_id))
        step = reads.steps.get_step(run_id, step_id)
        if step is None:
            abort(404)
        shown = step_dict(step)
        return render_template("step.html", run=run, step=shown, rerun_from=twin("rerun", run_id, ui.where, step_id),
                               task_json=json.dumps(shown["task"], indent=2, ensure_ascii=False),
                               policy_json=json.dumps(shown["policy"]))

    @app.post("/runs/<run_id>/<action>")
    def act(run_id: str, action: str) -> ResponseReturnValue:
        if action not in ACTIONS:
            abort(404)
        if not ui.guard.same_origin(request):
            abort(403, "cross-site request refused")
        if not ui.guard.valid(run_id, request.form.get("token", "")):
            abort(400, "missing or stale page token: reload the run page")
        run = known(reads.runs.get_run(run_id))
        from_step = request.form.get("from", "").strip() if action == "rerun" else ""
        if not allowed(action, run):  # the run moved on since its page was drawn: show it as it is now
            return redirect(url_for("run_page", run_id=run_id, refused=action), code=303)
        if from_step and reads.steps.get_step(run_id, from_step) is None:
            abort(400, f"run {run_id} has no step {from_step!r}")
        try:
            ui.actions(action, run, from_step)
        except InputError as exc:
            abort(409, str(exc))
        return redirect(url_for("run_page", run_id=run_id, acted=action), code=303)
