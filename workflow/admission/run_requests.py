"""Requests about a run (cancel, rerun, resume), which arrive by the control route (the
control topic, or the HTTP control function with its verified caller), and the scheduler's
sweep request: checked, then handed to the engine's bus."""

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..adapters.http.auth import check_token
from ..bootstrap.cloud import CloudRuntime
from ..dagfile import as_the_runs, parse_dag
from ..errors import AuthError, DagInvalid, InputError
from ..model import codec
from ..model.join import shape_differences
from ..model.messages import CancelRun, ReconcileRun, RerunRun, SweepRuns
from ..model.records import RunRecord
from ..model.states import RunStatus, why_final
from ..model.text import excerpt
from ..settings import RUN_ADMINS_ENV

log = logging.getLogger("workflow.entrypoints")  # the functions' log lines keep one logger name

RUN_ACTIONS = {"cancel": ("action", "run_id"), "rerun": ("action", "run_id", "reruns", "from", "dag", "tr_auth_jwt"),
               "resume": ("action", "run_id")}  # each with the keys it takes
CONTROL_ROUTE = ("the control route: the control topic (<prefix>-run-control, WORKFLOW_CONTROL_TOPIC) or the "
                 "HTTP function on_control_request")
ON_THE_TOPIC = "a publisher on the control topic"  # who asked, when the topic's IAM is all that limits it
RunControl = CancelRun | RerunRun | ReconcileRun


@dataclass(frozen=True)
class RunRequest:
    """A cancel, rerun or resume request: the engine message it asks for, or why it is not
    handed over (`problems`: the request is wrong; `forbidden`: not this caller's to ask;
    `ignored`: nothing to do for this run)."""

    action: str
    run_id: str
    message: RunControl | None = None
    problems: tuple[str, ...] = ()
    ignored: str = ""
    forbidden: str = ""


def start_route_refusal(body: Mapping[str, Any]) -> str:
    """Why a request with an `action` other than start has no place on the start route
    ("" for a start request): cancel, rerun and resume go by the control route."""
    action = body.get("action", "start")
    if action == "start":
        return ""
    if isinstance(action, str) and action in RUN_ACTIONS:
        return f"a {action} request is not taken on the start route: send it by {CONTROL_ROUTE}"
    return (f"unknown action {excerpt(repr(action), 40)}: a start request's action is 'start' (cancel, rerun "
            f"and resume go by {CONTROL_ROUTE})")


def parse_run_request(body: Mapping[str, Any], stale_after: float, by: str = ON_THE_TOPIC) -> RunRequest:
    """Check a request's shape (nothing is read): its engine message, or every problem.
    `stale_after` goes into a resume's ReconcileRun, `by` (who asked) into a cancel's reason."""
    action, run_id = body.get("action"), body.get("run_id")
    shown_id = excerpt(run_id, 130) if isinstance(run_id, str) else ""  # an id is at most 128
    if not isinstance(action, str) or action not in RUN_ACTIONS:
        return RunRequest(excerpt(str(action), 40), shown_id, problems=(
            f"unknown action {excerpt(repr(action), 40)} (known: {', '.join(RUN_ACTIONS)})",))
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
        message = CancelRun(shown_id, f"cancelled by {by}")
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
        problems.append(_token_problem(body))
    return [p for p in problems if p]


def _token_problem(body: Mapping[str, Any]) -> str | None:
    """What is wrong with a rerun's own Task Runner token, if it brings one (never the token)."""
    if "tr_auth_jwt" not in body:
        return None
    jwt = body["tr_auth_jwt"]
    if not isinstance(jwt, str):
        return f"tr_auth_jwt must be a string, not {type(jwt).__name__}"
    try:
        check_token(jwt, "tr_auth_jwt")
    except AuthError as exc:
        return str(exc)
    return None


def run_request(body: Mapping[str, Any], rt: CloudRuntime, caller: str | None = None) -> RunRequest:
    """Check the request against its run (and, over HTTP, its verified `caller`: the run's
    starter, or one of WORKFLOW_RUN_ADMINS; "" when the request named none) and hand its
    engine message to the engine's bus; log (and return) why not. `caller` None: the
    control topic, whose publishers its IAM limits. A repeated request changes nothing the
    engine did."""
    by = ON_THE_TOPIC if caller is None else f"{caller or 'a caller without an email'} over HTTP"
    request = parse_run_request(body, rt.ports.settings.submit_lease, by)
    if isinstance(request.message, ReconcileRun):
        # On the cloud a job's checks live on in Pub/Sub: a resume re-checks only the jobs
        # whose checks showed no sign of life for stale_after, as the sweep does, so that
        # N resume requests start what one does (the chains it starts count as alive).
        alive_since = rt.ports.clock() - rt.ports.settings.stale_after
        request = dataclasses.replace(request, message=dataclasses.replace(request.message, quiet_since=alive_since))
    if request.message is not None:
        request = _checked(request, request.message, body, rt, caller)
    ids = {"run_id": request.run_id}
    if request.problems:
        log.warning("INVALID %s request for run %r by %s: %s", request.action, request.run_id, by,
                    "; ".join(request.problems), extra=ids)
    elif request.forbidden:
        log.warning("refused %s request for run %s by %s: %s", request.action, request.run_id, by,
                    request.forbidden, extra=ids)
    elif request.ignored:
        log.info("ignored %s request for run %s by %s: %s", request.action, request.run_id, by, request.ignored,
                 extra=ids)
    elif request.message is not None:
        rt.ports.bus.publish([request.message])
        log.info("%s requested by %s", request.action, by, extra=ids)
    return request


def _checked(request: RunRequest, message: RunControl, body: Mapping[str, Any], rt: CloudRuntime,
             caller: str | None) -> RunRequest:
    """`request` with what its run and caller say of it; a rerun's own token sealed onto it."""
    run = rt.ports.store.runs.get_run(message.run_id)
    if run is None:
        return dataclasses.replace(request, message=None, problems=(f"no run {message.run_id!r}",))
    forbidden = _not_theirs(run, request.action, caller, rt) if caller is not None else ""
    if forbidden:
        return dataclasses.replace(request, message=None, forbidden=forbidden)
    ignored, problems = _against_run(message, run, rt)
    if not ignored and not problems and isinstance(message, RerunRun) and isinstance(body.get("tr_auth_jwt"), str):
        try:  # sealed as a start's token is: bound to the run and its Task Runner's origin
            message = dataclasses.replace(message, tr_auth=rt.tokens.seal(body["tr_auth_jwt"], run_id=run.run_id,
                                                                          origin=run.tr_url))
        except AuthError as exc:
            problems = (str(exc),)
    if ignored or problems:
        return dataclasses.replace(request, message=None, ignored=ignored, problems=problems)
    return dataclasses.replace(request, message=message)


def _not_theirs(run: RunRecord, action: str, caller: str, rt: CloudRuntime) -> str:
    """Why `caller` may not act on `run` over HTTP ("" if it may): only its starter and the
    deployment's run admins may."""
    if caller and (caller == run.inputs.started_by.lower() or caller in rt.edge.run_admins):
        return ""
    who = caller or "a caller whose ID token names no email"
    return (f"{who} may not {action} run {run.run_id}: only the caller who started it over HTTP, or one "
            f"listed in {RUN_ADMINS_ENV}, may")


def _against_run(message: RunControl, run: RunRecord, rt: CloudRuntime) -> tuple[str, tuple[str, ...]]:
    """(why there is nothing to do, what is wrong) for `message` given its run's state."""
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
    try:  # the new DAG as the run's own: its recorded parameter values and forEach lists applied
        dag = as_the_runs(message.dag, run, "the rerun's 'dag'") if message.dag else None
    except DagInvalid as exc:
        return "", tuple(str(p) for p in exc.problems)
    changed = shape_differences(rt.ports.store.steps.list_steps(run.run_id), dag) if dag else []
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

