"""`resume`, `rerun` and `cancel`: act on a run, on the embedded runtime (`--db`), or with
`--cloud` by a request published on the control topic, which the functions handle."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from .. import logs
from ..adapters.local_dags import LocalDags
from ..bootstrap.embedded import embedded
from ..dagfile import as_the_runs
from ..errors import InputError
from ..model.dag import Dag
from ..model.join import shape_differences
from ..model.messages import CancelRun, Message, ReconcileRun, RerunRun
from ..model.records import RunRecord, StepRecord
from ..model.states import StepState
from ..ports import TaskRunner
from ..settings import Settings
from .cloud_requests import request
from .options import Parser, add_cloud, add_db, add_execution, cloud_jwt, flags, parsed, prog, settings
from .output import EXIT_OK, Seen, changes, exit_code, nothing_to, print_kept_jobs
from .run import check_task_runner, check_url, interrupted, watch
from .stores import existing, open_store


def resume(argv: Sequence[str], out: TextIO, runner: TaskRunner | None = None) -> int:
    p = Parser("resume",
               description="Continue an interrupted run: check its running jobs and dispatch what is ready. "
                           "A job already submitted is never submitted again. With --cloud, a resume request "
                           "is published instead: the functions reconcile the run as after a lost message (a "
                           "submission claimed over 10 minutes ago with no job recorded fails its step), and "
                           "the run is followed to its end.")
    p.add_argument("run_id", metavar="RUN_ID")
    add_execution(p, moved=True)
    add_cloud(p, requests=True)
    args = parsed(p, argv)
    if args.cloud:
        return request(args, out, "resume", lambda run, _: {} if not run.status.terminal else None,
                       lambda before, now: True)
    return _execute(args, out, runner,
                    lambda run, _: ReconcileRun(run.run_id) if not run.status.terminal else None, "resume")


def rerun(argv: Sequence[str], out: TextIO, runner: TaskRunner | None = None) -> int:
    p = Parser("rerun",
               description="Run an ended run's failed, cancelled and skipped steps again (with --from, that "
                           "step and its descendants too), keeping its successes and every earlier attempt. "
                           "With --dag-path, the steps run again take the file's definitions (task, retries, "
                           "timeouts), as when a fix is deployed; the file must keep the run's shape. With "
                           "--cloud, --tr-auth-jwt (only as an option) is the token the steps run again "
                           "send to the Task Runner instead of the one the run was started with (the functions "
                           "keep it sealed; it is never printed).")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--from", dest="from_step", default="", metavar="STEP",
                   help="also run STEP and every step after it again")
    p.add_argument(*flags("--dag-path", "--workflow-path"), dest="dag_path", metavar="FILE",
                   help="the DAG file whose definitions the steps run again take: the same step ids, "
                        "dependencies and runIf as the run (its status --json history notes which ran)")
    add_execution(p, moved=True)
    add_cloud(p, requests=True)
    args = parsed(p, argv, cloud_token=True)
    dag = LocalDags().read(args.dag_path) if args.dag_path else None
    if args.cloud:
        jwt = cloud_jwt(args)
        return request(args, out, "rerun", lambda run, steps: _rerun_request(run, steps, dag, jwt),
                       lambda before, now: len(now.reruns) > len(before.reruns))

    def message(run: RunRecord, steps: list[StepRecord]) -> RerunRun | None:
        if not run.status.rerunnable:
            return None
        _check_shape(run, steps, dag)
        return RerunRun(run.run_id, len(run.reruns), args.from_step, dag)

    return _execute(args, out, runner, message, "rerun")


def _rerun_request(run: RunRecord, steps: list[StepRecord], dag: Dag | None,
                   jwt: str | None) -> dict[str, Any] | None:
    if not run.status.rerunnable:
        return None
    _check_shape(run, steps, dag)
    return ({"reruns": len(run.reruns)} | ({"dag": dag.to_dict()} if dag else {})
            | ({"tr_auth_jwt": jwt} if jwt is not None else {}))


def _check_shape(run: RunRecord, steps: list[StepRecord], dag: Dag | None) -> None:
    """InputError naming how `dag` differs from the run's shape, if it does."""
    changed = shape_differences(steps, as_the_runs(dag, run, "--dag-path")) if dag is not None else []
    if changed:
        raise InputError(f"the DAG file does not keep the shape of run {run.run_id} ({'; '.join(changed)}): a rerun "
                         f"keeps the steps that succeeded, so it needs the same steps, dependencies and runIf. "
                         f"Start a new run instead: {prog('run')} FILE --tr-hostname URL")


def _execute(args: argparse.Namespace, out: TextIO, runner: TaskRunner | None,
             message_for: Callable[[RunRecord, list[StepRecord]], Message | None], verb: str) -> int:
    """Execute `message_for` the run on the embedded runtime and follow the run to its end."""
    logs.configure(logging.INFO if args.verbose else logging.WARNING)
    config = settings(args)
    url = check_url(args.tr_url) if args.tr_url else ""
    with open_store(args.db) as store:
        run, steps = existing(store, args, args.db)
    message = message_for(run, steps)
    if message is not None and runner is None:
        check_task_runner(url or run.tr_url, args.jwt)  # fail now, with a way out, not at the first check
    if message is None:
        return nothing_to(verb, run, out)
    rt = embedded(config, runner, jwt=args.jwt, db_path=args.db)
    try:
        if url and url != run.tr_url:
            rt.store.move_task_runner(run.run_id, url)
            print(f"{verb}: Task Runner {url} (was {run.tr_url}), recorded on the run", file=out, flush=True)
        seen: Seen = {}
        for step in steps:
            changes(step, seen)  # what happened before is not news
        print(f"{verb}: run {run.run_id}; times are UTC", file=out, flush=True)
        rt.bus.publish([message])
        return exit_code(watch(rt, run.run_id, out, seen=seen))
    except KeyboardInterrupt:
        return interrupted(run.run_id, args.db, args.jwt)
    finally:
        rt.close()


def cancel(argv: Sequence[str], out: TextIO) -> int:
    p = Parser("cancel",
               description="Cancel a run, also while another process executes it: nothing more is submitted, "
                           "its open steps end CANCELLED. Jobs already submitted keep running at the Task "
                           "Runner (its protocol has no cancel request); their ids are listed.")
    p.add_argument("run_id", metavar="RUN_ID")
    add_db(p)
    add_cloud(p, requests=True)
    args = parsed(p, argv)
    if args.cloud:
        return request(args, out, "cancel", lambda run, _: None if run.status.terminal else {},
                       lambda before, now: now.status.terminal)
    with open_store(args.db) as store:
        run, _ = existing(store, args, args.db)
    if run.status.terminal:
        return nothing_to("cancel", run, out)
    rt = embedded(Settings(), jwt="none", db_path=args.db, workers=1)  # never calls the Task Runner
    try:
        running = [s for s in rt.store.list_steps(run.run_id) if s.state is StepState.RUNNING]
        rt.bus.publish([CancelRun(run.run_id, "run cancelled from the command line")])
        while not rt.bus.idle():
            time.sleep(0.05)
        ended = rt.store.get_run(run.run_id)
    finally:
        rt.close()
    print(f"run {run.run_id} {ended.status.value if ended else 'CANCELLED'}", file=out)
    print_kept_jobs(running, out)  # a warning, not a failure: the cancel is done
    return EXIT_OK
