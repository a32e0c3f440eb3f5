"""`--cloud`: the cloud runtime's store, and requests about a run published on the control
topic (the functions handle them), awaited until the run shows them."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from ..bootstrap.cloud import PROJECT_ENV
from ..bootstrap.control import CloudControl, control
from ..errors import InputError
from ..model.records import RunRecord, StepRecord
from ..model.states import StepState
from ..model.text import excerpt
from .options import prog
from .output import EXIT_OK, exit_code, nothing_to, print_kept_jobs, print_run
from .stores import existing

EXIT_NOT_SEEN = 3  # a request was published, but the run did not show it within --timeout
CLOUD_POLL = 0.5  # seconds between two reads of the run while waiting for a request's effect


@contextmanager
def connect(args: argparse.Namespace, *, starts: bool = False) -> Iterator[CloudControl]:
    """The cloud runtime's store and control topic (with `starts`, the start topic, for start
    requests); the cloud's refusals become InputError."""
    if not (args.project or os.environ.get(PROJECT_ENV)):
        raise InputError(f"--cloud needs a project: --project ID, or {PROJECT_ENV}")
    ctl = control(project=args.project, database=args.database, starts=starts)
    try:
        yield ctl
    except ctl.refusals as exc:
        raise InputError(f"{ctl.where}: {excerpt(str(exc), 300)}") from None


def request(args: argparse.Namespace, out: TextIO, action: str,
            fields: Callable[[RunRecord, list[StepRecord]], dict[str, Any] | None],
            seen: Callable[[RunRecord, RunRecord], bool]) -> int:
    """Publish the `action` request for the run on the control topic (its other `fields` given
    the run and its steps, or None: nothing to do), then wait, unless --no-wait, until `seen(before, now)` and the
    run ended, or --timeout; print the run as `status` does. A token in the request is never printed."""
    with connect(args) as ctl:
        run, steps = existing(ctl.store, args, ctl.where)
        extra = fields(run, steps)
        if extra is None:
            return nothing_to(action, run, out)
        body = {"action": action, "run_id": run.run_id, **extra}
        if getattr(args, "from_step", ""):
            body["from"] = args.from_step
        ctl.request(body)
        shown = body | ({"tr_auth_jwt": "<redacted>"} if "tr_auth_jwt" in body else {})
        print(f"requested: {json.dumps(shown)} on the control topic", file=out, flush=True)
        if args.no_wait:
            return EXIT_OK
        running = [s for s in steps if s.state is StepState.RUNNING]
        return _await(ctl, run, seen, args, out, action, running)


def _await(ctl: CloudControl, before: RunRecord, seen: Callable[[RunRecord, RunRecord], bool],
           args: argparse.Namespace, out: TextIO, action: str, running: list[StepRecord]) -> int:
    deadline = time.monotonic() + args.wait
    now, shown = before, False
    while not (shown and now.status.terminal) and time.monotonic() < deadline:
        time.sleep(CLOUD_POLL)
        now = ctl.store.runs.get_run(before.run_id) or now
        shown = seen(before, now)
    print_run(now, ctl.store.steps.list_steps(now.run_id), out)
    follow = f"'{prog('status --cloud')} {now.run_id} --watch' follows it"
    if not shown:
        print(f"error: run {now.run_id} does not show the {action} request after {args.wait:g} s: are the "
              f"functions deployed, and is the control topic delivered to on_control_message? {follow}",
              file=sys.stderr)
        return EXIT_NOT_SEEN
    if action == "cancel":  # done: a job that keeps running is a warning, not a failure
        print_kept_jobs(running, out)
        return EXIT_OK
    if not now.status.terminal:
        print(f"note: run {now.run_id} is still RUNNING after {args.wait:g} s; {follow}", file=sys.stderr)
    return exit_code(now.status)
