"""`backfill --cloud --schedule NAME --from DATE --to DATE`: the ticks of a range as start
requests on the start topic, each `{"dag_path", "schedule", "scheduled_time", "concurrency":
"allow", "params"}` (the functions name its run `NAME-<tick>`, as Cloud Scheduler's call would
be), at most --max-parallel-runs under way at once, followed in Firestore.

The schedule (DAG, cron, time zone, parameters) is read from its Cloud Scheduler job,
`projects/P/locations/REGION/jobs/PREFIX-schedule-NAME`, over the Cloud Scheduler REST API
with the user's Application Default Credentials; or given: DAG_PATH, --cron, --time-zone,
--param."""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from ..bootstrap.cloud import PROJECT_ENV
from ..errors import InputError
from ..model import ticks
from ..model.records import RunRecord
from ..model.text import excerpt
from .backfill import DAILY, Tick, existing_note, header, line, outcome, planned, summary
from .cloud_requests import CLOUD_POLL, EXIT_NOT_SEEN, connect
from .output import EXIT_FAILED, EXIT_OK
from .params import param_values

SCHEDULER_API = "https://cloudscheduler.googleapis.com/v1"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"


@dataclass(frozen=True)
class Schedule:
    """What a backfill of a schedule needs: its DAG, cron, time zone and parameter values."""

    dag_path: str
    cron: str
    time_zone: str
    params: dict[str, Any] = field(default_factory=dict)


class Session(Protocol):
    """What is used of google-auth's AuthorizedSession (a requests.Session)."""

    def get(self, url: str, *, timeout: float) -> Any: ...


def backfill_cloud(args: argparse.Namespace, out: TextIO, session: Session | None = None) -> int:
    if not args.schedule:
        raise InputError("--cloud needs --schedule NAME: the schedule whose ticks these are")
    chosen = [o for o, v in (("--cron", args.cron), ("--time-zone", args.time_zone), ("--param", args.param),
                             ("--param-file", args.param_file)) if v]
    if chosen and not args.dag_path:
        raise InputError(f"{', '.join(chosen)}: with --cloud these come from the schedule's job; give DAG_PATH "
                         "(gs://) to set them yourself")
    project = args.project or os.environ.get(PROJECT_ENV, "")
    schedule = given(args) if args.dag_path else from_job(
        read_job(job_name(project, args.region, args.name_prefix, args.schedule), session), args.schedule)
    plan = planned(args, args.schedule, schedule.cron, schedule.time_zone)
    with connect(args, starts=True) as ctl:
        print(header(args.schedule, args, plan, f"DAG {schedule.dag_path}, start requests on the start topic",
                     schedule.cron, schedule.time_zone), file=out, flush=True)
        found: dict[str, RunRecord] = {}
        todo: list[Tick] = []
        for tick in plan:
            existing = ctl.store.runs.get_run(tick.run_id)
            if existing is None:
                todo.append(tick)
            else:
                found[tick.run_id] = existing
                print(line(tick, existing_note(existing)), file=out, flush=True)
        ended: dict[str, RunRecord] = {}
        active: dict[str, float] = {}  # run id: when its request was published
        while todo or active:
            while todo and (args.no_wait or len(active) < args.max_parallel_runs):
                tick = todo.pop(0)
                ctl.request(request_body(schedule, args.schedule, tick))
                active[tick.run_id] = time.monotonic()
                print(line(tick, "requested"), file=out, flush=True)
            if args.no_wait:
                print(summary(plan, {}, found, "requested") + f"; {len(active)} requested, not followed (--no-wait)",
                      file=out)
                return EXIT_OK
            time.sleep(CLOUD_POLL)
            for run_id, since in list(active.items()):
                run = ctl.store.runs.get_run(run_id)
                if run is not None and run.status.terminal:
                    ended[run_id] = run
                    del active[run_id]
                    print(line(next(t for t in plan if t.run_id == run_id), outcome(run)), file=out, flush=True)
                elif time.monotonic() - since > args.wait:
                    print(summary(plan, ended, found), file=out)
                    state = "has not appeared" if run is None else "is still RUNNING"
                    print(f"error: run {run_id} {state} after {args.wait:g} s (--timeout): the backfill stops here; "
                          "the same command later goes on from the ticks not started", file=sys.stderr)
                    return EXIT_NOT_SEEN
        print(summary(plan, ended, found), file=out, flush=True)
    runs = [*ended.values(), *found.values()]
    return EXIT_OK if all(r.status.value == "SUCCEEDED" for r in runs) else EXIT_FAILED


def request_body(schedule: Schedule, name: str, tick: Tick) -> dict[str, Any]:
    """The start request of one tick: `allow`, as the backfill paces the runs itself."""
    body: dict[str, Any] = {"dag_path": schedule.dag_path, "schedule": name,
                            "scheduled_time": ticks.rfc3339(tick.at.timestamp()), "concurrency": "allow"}
    return body | ({"params": schedule.params} if schedule.params else {})


def given(args: argparse.Namespace) -> Schedule:
    if not args.dag_path.startswith("gs://"):
        raise InputError(f"with --cloud, DAG_PATH is the gs:// path the functions read, not {args.dag_path!r}")
    return Schedule(args.dag_path, args.cron or DAILY, args.time_zone or "UTC", param_values(args))


def job_name(project: str, region: str, prefix: str, schedule: str) -> str:
    if not region:
        raise InputError("--cloud --schedule NAME reads the schedule's Cloud Scheduler job: --region REGION is "
                         "needed (or give DAG_PATH, and --cron, --time-zone, --param, to backfill without it)")
    if not project:
        raise InputError(f"--cloud needs a project: --project ID, or {PROJECT_ENV}")
    return f"projects/{project}/locations/{region}/jobs/{prefix}-schedule-{schedule}"


def read_job(name: str, session: Session | None = None) -> dict[str, Any]:
    """The Cloud Scheduler job `name` (its REST form); InputError saying what to do if it
    cannot be read."""
    if session is None:
        session = _session()
    answer = session.get(f"{SCHEDULER_API}/{name}", timeout=30)
    status = int(answer.status_code)
    if status == 404:
        raise InputError(f"no Cloud Scheduler job {name}: is the schedule in Terraform's schedules, and are "
                         "--region and --name-prefix those of the deployment?")
    if status in (401, 403):
        raise InputError(f"not allowed to read {name} ({status}): reading a job needs "
                         "roles/cloudscheduler.viewer on the project")
    if status != 200:
        raise InputError(f"Cloud Scheduler answered {status} for {name}: {excerpt(str(answer.text), 300)}")
    job = answer.json()
    if not isinstance(job, dict):
        raise InputError(f"Cloud Scheduler's answer for {name} is not a job")
    return job


def from_job(job: dict[str, Any], name: str) -> Schedule:
    """The schedule a job made by terraform/schedules.tf runs; InputError if it is not one."""
    target = job.get("httpTarget") or {}
    try:
        body = json.loads(base64.b64decode(target.get("body") or ""))
    except (ValueError, binascii.Error):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("dag_path"), str) or body.get("schedule") != name:
        raise InputError(f"the job {job.get('name', '?')} is not schedule {name!r} of terraform/schedules.tf "
                         "(its body names no dag_path, or another schedule)")
    params = body.get("params") or {}
    return Schedule(body["dag_path"], str(job.get("schedule", "")), str(job.get("timeZone") or "UTC"),
                    params if isinstance(params, dict) else {})


def _session() -> Session:
    import google.auth
    from google.auth import exceptions as auth_errors
    from google.auth.transport.requests import AuthorizedSession

    try:
        credentials, _ = google.auth.default(scopes=[SCOPE])
    except auth_errors.DefaultCredentialsError:
        raise InputError("no Google credentials to read the schedule's job: run 'gcloud auth application-default "
                         "login' (or give DAG_PATH, --cron and --time-zone)") from None
    session: Session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    return session
