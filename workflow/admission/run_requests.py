"""Requests about a run (cancel, rerun, resume), and the scheduler's sweep request: checked,
then handed to the engine's bus."""

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..bootstrap.cloud import CloudRuntime
from ..dagfile import parse_dag
from ..errors import InputError
from ..model import codec
from ..model.join import shape_differences
from ..model.messages import CancelRun, ReconcileRun, RerunRun, SweepRuns
from ..model.states import RunStatus, why_final
from ..model.text import excerpt

log = logging.getLogger("workflow.entrypoints")  # the functions' log lines keep one logger name

RUN_ACTIONS = {"cancel": ("action", "run_id"), "rerun": ("action", "run_id", "reruns", "from", "dag"),
               "resume": ("action", "run_id")}  # each with the keys it takes
ACTIONS = ("start", *RUN_ACTIONS)
RunControl = CancelRun | RerunRun | ReconcileRun


@dataclass(frozen=True)
class RunRequest:
    """A cancel, rerun or resume request: the engine message it asks for, or why it is not
    handed over (`problems`: the request is wrong; `ignored`: nothing to do for this run)."""

    action: str
    run_id: str
    message: RunControl | None = None
    problems: tuple[str, ...] = ()
    ignored: str = ""


def parse_run_request(body: Mapping[str, Any], stale_after: float) -> RunRequest:
    """Check a request's shape (nothing is read): its engine message, or every problem.
    `stale_after` goes into a resume's ReconcileRun."""
    action, run_id = body.get("action"), body.get("run_id")
    shown_id = excerpt(run_id, 130) if isinstance(run_id, str) else ""  # an id is at most 128
    if not isinstance(action, str) or action not in RUN_ACTIONS:
        return RunRequest(excerpt(str(action), 40), shown_id, problems=(
            f"unknown action {excerpt(repr(action), 40)} (known: {', '.join(ACTIONS)})",))
    problems = _run_request_problems(action, body)
    raw = body.get("dag") if action == "rerun" else None  # the steps a rerun runs again take its definitions
    try:
        dag = parse_dag(json.dumps(raw).encode(), "the rerun's 'dag'") if raw is not None else None
    except (InputError, RecursionError) as exc:
        problems.append(str(exc) if isinstance(exc, InputError) else "the rerun's 'dag' is nested too deeply")
    if problems:
        return RunRequest(action, shown_id, problems=tuple(problems))
    message: RunControl
    if action == "cancel":
        message = CancelRun(shown_id, "cancelled by a request on the start topic")
    elif action == "resume":
        message = ReconcileRun(shown_id, stale_after)
    else:
        message = RerunRun(shown_id, int(body["reruns"]), str(body.get("from", "")), dag)
    return RunRequest(action, shown_id, message)


def _run_request_problems(action: str, body: Mapping[str, Any]) -> list[str]:
    problems = [codec.id_problem(body["run_id"], "run_id") if "run_id" in body else "run_id is missing"]
    unknown = sorted(set(body) - set(RUN_ACTIONS[action]))
    if unknown:
        problems.append(f"unknown key(s) {excerpt(', '.join(unknown), 300)} (a {action} request takes: "
                        f"{', '.join(RUN_ACTIONS[action])})")
    if action == "rerun":
        reruns = body.get("reruns")
        if type(reruns) is not int or reruns < 0:
            problems.append("reruns must be a whole number >= 0 (the run's count of reruns so far), "
                            f"not {excerpt(repr(reruns), 40)}")
        if "from" in body:
            problems.append(codec.id_problem(body["from"], "from"))
    return [p for p in problems if p]


def run_request(body: Mapping[str, Any], rt: CloudRuntime) -> RunRequest:
    """Check the request against its run and hand its engine message to the engine's bus;
    log (and return) why not. A repeated request changes nothing the engine did."""
    request = parse_run_request(body, rt.ports.settings.submit_lease)
    if isinstance(request.message, ReconcileRun):
        # On the cloud a job's checks live on in Pub/Sub: a resume re-checks only the jobs
        # whose checks showed no sign of life for stale_after, as the sweep does, so that
        # N resume requests start what one does (the chains it starts count as alive).
        alive_since = rt.ports.clock() - rt.ports.settings.stale_after
        request = dataclasses.replace(request, message=dataclasses.replace(request.message, quiet_since=alive_since))
    if request.message is not None:
        ignored, problems = _against_run(request.message, rt)
        request = dataclasses.replace(request, ignored=ignored, problems=problems,
                                      message=None if ignored or problems else request.message)
    ids = {"run_id": request.run_id}
    if request.problems:
        log.warning("INVALID %s request for run %r: %s", request.action, request.run_id,
                    "; ".join(request.problems), extra=ids)
    elif request.ignored:
        log.info("ignored %s request for run %s: %s", request.action, request.run_id, request.ignored, extra=ids)
    elif request.message is not None:
        rt.ports.bus.publish([request.message])
        log.info("%s requested", request.action, extra=ids)
    return request


def _against_run(message: RunControl, rt: CloudRuntime) -> tuple[str, tuple[str, ...]]:
    """(why there is nothing to do, what is wrong) for `message` given its run's state."""
    run = rt.ports.store.runs.get_run(message.run_id)
    if run is None:
        return "", (f"no run {message.run_id!r}",)
    if run.status in (RunStatus.INVALID, RunStatus.SKIPPED) and not isinstance(message, CancelRun):
        return "", (f"run {run.run_id}: {why_final(run.status)}",)
    if not isinstance(message, RerunRun):
        return (f"it already ended {run.status.value}", ()) if run.status.terminal else ("", ())
    done = len(run.reruns)
    if message.reruns > done:
        return "", (f"reruns is {message.reruns}, but the run has had {done} rerun(s)",)
    if message.reruns < done:
        return f"rerun number {message.reruns + 1} was already done (the run has had {done})", ()
    if not run.status.terminal:
        return "it is still RUNNING: cancel it first, or resume it", ()
    if message.from_step and rt.ports.store.steps.get_step(run.run_id, message.from_step) is None:
        return "", (f"run {run.run_id} has no step {message.from_step!r}",)
    changed = shape_differences(rt.ports.store.steps.list_steps(run.run_id), message.dag) if message.dag else []
    if changed:
        return "", (f"the DAG changes the run's shape ({'; '.join(changed)}): start a new run",)
    return "", ()


def sweep_requested(body: Mapping[str, Any], rt: CloudRuntime) -> list[str]:
    """The scheduler's `{"action": "sweep"}` (over HTTP, as its own identity): publish a
    SweepRuns of the deployment's settings (WORKFLOW_STALE_AFTER_SEC, WORKFLOW_SWEEP_LIMIT),
    nothing taken from the request. The problems with a request that is not exactly that."""
    if set(body) != {"action"}:
        return [f"a sweep request is exactly {{\"action\": \"sweep\"}}, not keys "
                f"{excerpt(', '.join(sorted(map(str, body))), 200)}"]
    settings = rt.ports.settings
    rt.ports.bus.publish([SweepRuns(settings.stale_after, settings.sweep_limit)])
    log.info("sweep requested")
    return []

