"""A schedule's tick at the start routes: a start request with `schedule` gets the run id
`NAME-<tick, compact UTC>` (so a tick delivered twice starts one run), its time from Cloud
Scheduler's `X-CloudScheduler-ScheduleTime` header, else `scheduled_time`, else the
request's own time (over HTTP only); then its `concurrency` decides what it does while the
schedule's previous run is RUNNING: `forbid` (the default) records the tick SKIPPED,
`allow` starts anyway, `replace` cancels that run and starts (only for the schedules the
deployment names: cancelling is run control, which a start request does not get)."""

import dataclasses
import logging

from ..bootstrap.cloud import CloudRuntime
from ..engine import announce
from ..model import ticks
from ..model.events import RunEnded
from ..model.inputs import RunInputs
from ..model.messages import CancelRun
from ..model.records import RunRecord
from ..model.states import RunStatus
from ..settings import REPLACING_SCHEDULES_ENV
from .start_requests import Started, StartRequest, start_requested

log = logging.getLogger("workflow.entrypoints")  # the functions' log lines keep one logger name

TICK_ONLY = ("scheduled_time", "concurrency")
MAX_RUNNING = 20  # the schedule's RUNNING runs a tick reads (and, with `replace`, cancels)


def tick_request(request: StartRequest, header: str | None, now: float | None) -> StartRequest:
    """`request` as a schedule's tick if it names a `schedule`: its run id and time, with
    every problem of the tick's keys added. `header`: the X-CloudScheduler-ScheduleTime
    header; `now`: the request's time, used without either (None: there is none to use)."""
    body = request.body
    if "schedule" not in body:
        given = [k for k in TICK_ONLY if k in body]
        more = [f"{', '.join(given)}: only with 'schedule' (a schedule's tick)"] if given else []
        return dataclasses.replace(request, problems=[*request.problems, *more])
    problems = [p for p in (ticks.name_problem(body["schedule"]),) if p]
    if "run_id" in body:
        problems.append("give 'run_id' or 'schedule', not both: a schedule's tick is named by its schedule and time")
    concurrency = body.get("concurrency", "forbid")
    if concurrency not in ticks.CONCURRENCY:
        problems.append(f"concurrency must be one of {', '.join(ticks.CONCURRENCY)}, not {str(concurrency)[:40]!r}")
    at, problem = _tick_time(body, header, now)
    problems += [problem] if problem else []
    if at is None or ticks.name_problem(body["schedule"]):
        return dataclasses.replace(request, problems=[*request.problems, *problems])
    return dataclasses.replace(request, run_id=ticks.run_id(body["schedule"], at), schedule=body["schedule"],
                               scheduled_at=at, problems=[*request.problems, *problems])


def _tick_time(body: dict[str, object], header: str | None, now: float | None) -> tuple[float | None, str | None]:
    if header is not None and "scheduled_time" in body:
        return None, f"give the {ticks.SCHEDULE_TIME_HEADER} header or scheduled_time, not both"
    if header is not None:
        return ticks.parse_time(header, f"the {ticks.SCHEDULE_TIME_HEADER} header")
    if "scheduled_time" in body:
        return ticks.parse_time(body["scheduled_time"], "scheduled_time")
    if now is None:
        return None, ("a start message with 'schedule' needs 'scheduled_time' (RFC 3339): a message delivered "
                      "again must name the same tick")
    return float(int(now)), None


def start_tick(request: StartRequest, rt: CloudRuntime) -> Started:
    """Start the run a start request asks for (`start_requested`); a schedule's tick first
    obeys its concurrency. A tick delivered again answers as the first delivery did."""
    if not request.schedule or request.problems:
        return start_requested(request, rt)
    runs = rt.ports.store.runs
    existing = runs.get_run(request.run_id)
    if existing is not None and existing.status is RunStatus.SKIPPED:
        return Started(request.run_id, skipped="; ".join(existing.problems))
    concurrency = request.body.get("concurrency", "forbid")
    if existing is None and concurrency == "replace" and request.schedule not in rt.edge.replacing_schedules:
        why = (f"concurrency replace cancels the running runs of schedule {request.schedule!r}, so only the "
               f"deployment sets it, per schedule (Terraform's schedules; {REPLACING_SCHEDULES_ENV}); a request "
               "may ask for forbid or allow")
        log.warning("tick %s refused: %s", request.run_id, why, extra={"run_id": request.run_id})
        return Started(request.run_id, problems=(why,))  # nothing recorded: the tick's id stays free
    if existing is None and concurrency != "allow":
        running = [r for r in runs.running_of_schedule(request.schedule, MAX_RUNNING) if r.run_id != request.run_id]
        if running and concurrency == "forbid":
            return _skip(rt, request, running[0])
        if running:
            rt.ports.bus.publish([CancelRun(r.run_id, f"replaced by {request.run_id} (schedule {request.schedule}, "
                                                      "concurrency replace)") for r in running])
            log.info("tick %s cancels %s (concurrency replace)", request.run_id,
                     ", ".join(r.run_id for r in running), extra={"run_id": request.run_id})
    return start_requested(request, rt)


def _skip(rt: CloudRuntime, request: StartRequest, running: RunRecord) -> Started:
    """Record the tick SKIPPED (it ran nothing, and it is a run id a redelivery finds) and
    announce its end, once."""
    why = (f"the schedule's run {running.run_id} was still RUNNING (concurrency forbid): this tick started "
           "nothing")
    now = rt.ports.clock()
    shown_url = request.tr_url if isinstance(request.tr_url, str) else ""
    run = RunRecord(request.run_id, RunStatus.SKIPPED, shown_url, source=request.source, created_at=now,
                    finished_at=now, problems=(why,),
                    inputs=RunInputs(scheduled_at=request.scheduled_at, schedule=request.schedule))
    if not rt.ports.store.runs.create_run(run, []):  # another delivery recorded the tick first
        return start_tick(request, rt)
    announce(rt.ports, RunEnded.of(run, []))  # once: a claim guards it
    log.info("tick %s skipped: %s", request.run_id, why, extra={"run_id": request.run_id})
    return Started(request.run_id, skipped=why)
