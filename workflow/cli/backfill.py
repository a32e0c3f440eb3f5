"""`backfill DAG_PATH --from DATE --to DATE`: one run per tick of a cron schedule in a range
of days, each with the id the schedule's tick gets (`NAME-<tick, compact UTC>`) and the tick
as its `run.scheduledTime`, so that a tick whose run exists is not started again and a
repeated backfill starts nothing. Embedded (`--db`), or with `--cloud` as start requests on
the start topic (backfill_cloud.py)."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import TextIO

from .. import logs
from ..adapters.local_dags import LocalDags
from ..bootstrap.embedded import EmbeddedRuntime, embedded
from ..dagfile import RunContext, instantiate
from ..errors import InputError
from ..model import ticks
from ..model.dag import Dag
from ..model.inputs import RunInputs
from ..model.messages import StartRun
from ..model.records import RunRecord
from ..model.states import RunStatus
from ..ports import TaskRunner
from . import cron
from .options import Parser, add_cloud, add_execution, flags, parsed, positive_int, prog, settings
from .output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from .params import add_params, param_values
from .run import check_task_runner, check_url, resume_command

DAILY = "0 0 * * *"
FOLLOW_EVERY = 0.1  # seconds between two reads of the runs under way


@dataclass(frozen=True)
class Tick:
    """One tick of the range: its time, its run's id, and (embedded) the run's DAG and inputs."""

    at: datetime
    run_id: str
    dag: Dag | None = None
    inputs: RunInputs | None = None

    @property
    def shown(self) -> str:
        return self.at.isoformat()


def build_parser() -> Parser:
    p = Parser("backfill", description=(
        "Start one run per tick of a cron schedule from --from to --to (whole days, in --time-zone), each "
        "named as the schedule's tick would be (NAME-<tick, compact UTC>) and with the tick as its "
        "run.scheduledTime and run.date. A tick whose run exists is not started again, so running the same "
        "backfill again starts nothing. Exit 0 only if every tick's run succeeded."),
        epilog=f"with --cloud: {prog('backfill')} --cloud --schedule NAME --region REGION --from DATE --to DATE "
               "reads the DAG, cron, time zone and parameters from the schedule's Cloud Scheduler job; or give "
               "DAG_PATH (gs://) and --cron, --time-zone, --param yourself. docs/schedules.md")
    p.add_argument("dag_path", nargs="?", metavar="DAG_PATH", help="the DAG file (with --cloud: its gs:// path)")
    p.add_argument("--from", dest="first", required=True, metavar="DATE", help="the first day, YYYY-MM-DD")
    p.add_argument("--to", dest="last", required=True, metavar="DATE", help="the last day (included), YYYY-MM-DD")
    p.add_argument("--cron", metavar="EXPR", help=f"the schedule, five fields (default: {DAILY!r}, daily at 00:00)")
    p.add_argument("--time-zone", metavar="TZ", help="the time zone of the cron and the days (default: UTC)")
    p.add_argument("--schedule", metavar="NAME",
                   help="the schedule whose ticks these are: its runs' ids start with it (default: the DAG's "
                        "name, else the file's name)")
    p.add_argument("--max-parallel-runs", type=positive_int, default=1, metavar="N",
                   help="at most N runs under way at once (default: %(default)s)")
    add_params(p)
    p.add_argument(*flags("--tr-hostname", "--tr-url"), dest="tr_url", metavar="URL",
                   help="the Task Runner's base URL (embedded; required there)")
    add_execution(p)
    add_cloud(p, requests=True)
    g = p.add_argument_group("with --cloud, the schedule's Cloud Scheduler job")
    g.add_argument("--region", default="", metavar="REGION", help="where the job is (Terraform's region)")
    g.add_argument("--name-prefix", default="workflow", metavar="PREFIX",
                   help="Terraform's name_prefix: the job is PREFIX-schedule-NAME (default: %(default)s)")
    return p


def backfill(argv: Sequence[str], out: TextIO, runner: TaskRunner | None = None) -> int:
    args = parsed(build_parser(), argv)
    if args.cloud:
        from .backfill_cloud import backfill_cloud

        return backfill_cloud(args, out)
    return _embedded(args, out, runner)


def _embedded(args: argparse.Namespace, out: TextIO, runner: TaskRunner | None) -> int:
    logs.configure(logging.INFO if args.verbose else logging.WARNING)
    if args.region:
        raise InputError("--region: only with --cloud (where the schedule's Cloud Scheduler job is)")
    if not args.dag_path:
        raise InputError(f"a DAG file is needed: {prog('backfill')} DAG_PATH --from DATE --to DATE --tr-hostname URL")
    if not args.tr_url:
        raise InputError("--tr-hostname URL is needed: the Task Runner the runs submit their jobs to")
    config = settings(args)
    url = check_url(args.tr_url)
    dag = LocalDags().read(args.dag_path)
    name = args.schedule or default_schedule(dag.name, args.dag_path)
    found = planned(args, name)
    values = param_values(args)
    plan = [Tick(t.at, t.run_id, *instantiate(dag, values, context(t, name), args.dag_path)) for t in found]
    if runner is None:
        check_task_runner(url, args.jwt)
    rt = embedded(config, runner, jwt=args.jwt, db_path=args.db)
    try:
        print(header(name, args, plan, f"Task Runner {url}"), file=out, flush=True)
        return _run_all(rt, plan, url, args, out)
    except KeyboardInterrupt:
        under_way = [r.run_id for r in rt.store.list_runs(args.max_parallel_runs + 20, RunStatus.RUNNING)
                     if r.run_id in {t.run_id for t in plan}]
        how = "; ".join(resume_command(run_id, args.db, args.jwt) for run_id in under_way)
        print(f"\ninterrupted: {', '.join(under_way) or 'no run'} stay(s) RUNNING in {args.db}"
              + (f"; continue with: {how}" if how else "")
              + ". The same backfill again starts the ticks not started yet.", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        rt.close()


def planned(args: argparse.Namespace, name: str, cron_expr: str | None = None,
            tz_name: str | None = None) -> list[Tick]:
    """The range's ticks, each with its run id (nothing instantiated yet)."""
    problem = ticks.name_problem(name)
    if problem:
        raise InputError(f"--{problem}")
    tz = cron.zone(tz_name or args.time_zone or "UTC")
    first, last = cron.day(args.first, "--from"), cron.day(args.last, "--to")
    return [Tick(at, ticks.run_id(name, at.timestamp())) for at in cron.ticks(cron_expr or args.cron or DAILY,
                                                                                 tz, first, last)]


def context(tick: Tick, schedule: str) -> RunContext:
    return RunContext(tick.run_id, time.time(), tick.at.timestamp(), schedule)


def default_schedule(dag_name: str, path: str) -> str:
    """A schedule name from the DAG's name, else the file's stem, in the characters a name takes."""
    raw = dag_name or PurePosixPath(path).stem
    return re.sub(r"[^A-Za-z0-9_-]+", "-", raw).strip("-_")[:63] or "backfill"


def header(name: str, args: argparse.Namespace, plan: Sequence[Tick], where: str, cron_expr: str = "",
           tz: str = "") -> str:
    shown = cron_expr or args.cron or DAILY
    return (f"backfill of schedule {name}: {shown!r} in {tz or args.time_zone or 'UTC'} from {args.first} to "
            f"{args.last}: {len(plan)} tick(s), at most {args.max_parallel_runs} run(s) at a time; {where}")


def _run_all(rt: EmbeddedRuntime, plan: list[Tick], url: str, args: argparse.Namespace, out: TextIO) -> int:
    found: dict[str, RunRecord] = {}
    todo: list[Tick] = []
    for tick in plan:
        existing = rt.store.get_run(tick.run_id)
        if existing is None:
            todo.append(tick)
        else:
            found[tick.run_id] = existing
            print(line(tick, existing_note(existing, args.db)), file=out, flush=True)
    ended: dict[str, RunRecord] = {}
    active: dict[str, Tick] = {}
    while todo or active:
        while todo and len(active) < args.max_parallel_runs:
            tick = todo.pop(0)
            assert tick.dag is not None and tick.inputs is not None
            rt.bus.publish([StartRun(tick.run_id, tick.dag, url, source=args.dag_path, inputs=tick.inputs)])
            active[tick.run_id] = tick
            print(line(tick, "started"), file=out, flush=True)
        for run in _ended(rt, active):
            ended[run.run_id] = run
            print(line(active.pop(run.run_id), outcome(run)), file=out, flush=True)
    while not rt.bus.quiet():  # what is still being handled (a last check) finishes before the store closes
        time.sleep(FOLLOW_EVERY)
    print(summary(plan, ended, found), file=out, flush=True)
    return EXIT_OK if all(r.status is RunStatus.SUCCEEDED for r in [*ended.values(), *found.values()]) \
        else EXIT_FAILED


def _ended(rt: EmbeddedRuntime, active: dict[str, Tick]) -> list[RunRecord]:
    """The active runs that ended, once at least one did (or was found stuck)."""
    while True:
        idle = rt.bus.idle()  # read before the runs: nothing left to handle, and still RUNNING, is stuck
        runs = [rt.store.get_run(run_id) for run_id in active]
        done = [r for r in runs if r is not None and r.status.terminal]
        if done:
            return done
        if idle:
            reasons = "; ".join(f"{type(m).__name__}: {why}" for m, why in rt.bus.dead_letters) or "nothing to do"
            print(f"error: run(s) {', '.join(active)} stuck ({reasons})", file=sys.stderr)
            return [RunRecord(run_id, RunStatus.FAILED, "") for run_id in active]
        time.sleep(FOLLOW_EVERY)


def line(tick: Tick, what: str) -> str:
    return f"tick {tick.shown}  run {tick.run_id}  {what}"


def existing_note(run: RunRecord, db: str = "") -> str:
    more = f"; '{resume_command(run.run_id, db, None)}' continues it" if db and not run.status.terminal else ""
    return f"already exists ({run.status.value}): not started again{more}"


def outcome(run: RunRecord) -> str:
    took = f"; {run.finished_at - run.created_at:.1f} s" if run.finished_at and run.created_at else ""
    counts = f" ({run.succeeded} of {run.step_count} step(s) succeeded, {run.failed} failed, {run.skipped} skipped" \
             f"{took})" if run.step_count else ""
    return f"{run.status.value}{counts}"


def summary(plan: Sequence[Tick], ended: dict[str, RunRecord], found: dict[str, RunRecord],
            verb: str = "started") -> str:
    def by_status(runs: dict[str, RunRecord]) -> str:
        counts = Counter(r.status.value for r in runs.values())
        return f" ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))})" if counts else ""

    started = f"{len(ended)} {verb}{by_status(ended)}" if ended else f"nothing {verb}"
    return f"summary: {len(plan)} tick(s): {started}; {len(found)} already there{by_status(found)}"
