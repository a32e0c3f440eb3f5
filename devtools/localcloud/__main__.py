"""`python -m devtools.localcloud {up,upload,status}`: the cloud runtime on this machine.

- `up` starts the emulators, the mock Task Runner, the six functions and their triggers,
  and the run pages' function (see `devtools.localcloud.stack`), prints where everything is and the `export` lines a
  shell needs, writes them to the state file and runs until Ctrl-C or SIGTERM; then it
  stops everything and removes the state file.
- `upload FILE` uploads a DAG file to the bucket (which starts a run) and prints its run id.
- `status [RUN_ID] [--watch] [--json]` is the command line's `status --cloud RUN_ID` (or
  `runs --cloud`) pointed at the local cloud's emulators.

Exit codes: 0 ok, 1 the run failed or is invalid (status of one run) or `up` lost a
process, 2 usage error, no local cloud, or unknown run, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from workflow import cli, logs
from workflow.cli.options import seconds_arg
from workflow.cli.output import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from workflow.entrypoints import DAG_EXTENSIONS, upload_run_id
from workflow.errors import InputError
from workflow.model.ticks import name_problem
from workflow.settings import DEFAULT_STALE_AFTER_SEC

from . import eventarc, processes, servers, status
from .client import upload_object
from .processes import MissingTool, StartupError
from .scheduler import LocalSchedule
from .stack import LocalCloud
from .wiring import (
    CONTROL_TOPIC,
    DEFAULT_SWEEP_EVERY,
    ENGINE_TOPIC,
    MAX_POLL,
    PAGES_TARGET,
    START_TOPIC,
    TARGETS,
    require_tools,
)

DEFAULT_STATE_FILE = ".localcloud.json"
PROG = "python -m devtools.localcloud"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stop(BaseException):
    """Raised in the main thread by the first stop signal."""


def _schedule(text: str) -> tuple[str, str, float]:
    name, _, rest = text.partition("=")
    obj, _, every = rest.rpartition("@")
    if not (name and obj and every):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=OBJECT@SECONDS, e.g. nightly=dags/x.yaml@60")
    if problem := name_problem(name):
        raise argparse.ArgumentTypeError(problem)
    seconds = seconds_arg(every)
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a schedule's ticks are at least 1 s apart")
    return name, obj, seconds


def _poll(text: str) -> float:
    value = seconds_arg(text)
    if value > MAX_POLL:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_POLL:g} s on the local cloud (the emulator redelivers an early check about once "
            f"a second; a check due much later would run out of delivery attempts), got {text!r}"
        )
    return value


def _positive_seconds(text: str) -> float:
    value = seconds_arg(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be > 0 s, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The cloud runtime on this machine: Firestore, Pub/Sub and GCS emulators, "
        "the six functions of main.py and the run pages under functions-framework, their triggers and a mock "
        "Task Runner.",
        epilog="exit codes: 0 ok, 1 run failed or invalid (status of one run), 2 usage error or unknown run",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{up,upload,status}")

    up = commands.add_parser(
        "up",
        help="start the local cloud and run until Ctrl-C or SIGTERM",
        description="Start everything on free loopback ports, print where it is and the export lines "
        "for a shell, write them to the state file, and run until Ctrl-C or SIGTERM; then stop "
        "everything and remove the state file. Set LOCALCLOUD_KEEP_LOGS=1 to keep the servers' logs.",
    )
    up.add_argument("--bucket", default="dags", help="bucket whose uploads start runs (default: %(default)s)")
    up.add_argument("--prefix", default="dags/",
                    help="only objects under this prefix (and .yaml/.yml/.json) start runs (default: %(default)s)")
    up.add_argument("--poll", type=_poll, default=0.5, metavar="SECONDS",
                    help=f"WORKFLOW_CHECK_STATE_DURATION_SEC of the functions, at most {MAX_POLL:g} "
                         "(default: %(default)s)")
    up.add_argument("--mock-duration", type=seconds_arg, default=2.0, metavar="SECONDS",
                    help="the mock's job duration unless a task's label mock_duration_sec says otherwise "
                         "(default: %(default)s)")
    up.add_argument("--project", default="localcloud", help="project id (default: %(default)s)")
    up.add_argument("--engine-deliveries", type=_positive_int, default=1, metavar="N",
                    help="push subscriptions on the engine topic: each engine message is delivered N times "
                         "(default: %(default)s)")
    up.add_argument("--sweep-every", type=seconds_arg, default=DEFAULT_SWEEP_EVERY, metavar="SECONDS",
                    help="ask the HTTP start function for a sweep this often, as the Cloud Scheduler job "
                         "does; 0: never (default: %(default)s)")
    up.add_argument("--stale-after", type=_positive_seconds, default=DEFAULT_STALE_AFTER_SEC, metavar="SECONDS",
                    help="a sweep reconciles the runs with no progress for this long (WORKFLOW_STALE_AFTER_SEC "
                         "of the functions; default: %(default)s)")
    up.add_argument("--schedule", action="append", default=[], type=_schedule, metavar="NAME=OBJECT@SECONDS",
                    help="run a schedule on a timer, as its Cloud Scheduler job would on its cron: every SECONDS "
                         "(>= 1) POST {dag_path: gs://BUCKET/OBJECT, schedule: NAME} with the tick's time in "
                         "X-CloudScheduler-ScheduleTime (repeatable)")
    up.add_argument("--verbose", "-v", action="store_true", help="log what is started and stopped")
    _state_option(up)

    upload = commands.add_parser(
        "upload",
        help="upload a DAG file to the bucket, which starts a run",
        description="Upload FILE to the local cloud's bucket with google-cloud-storage; the finalize "
        "event starts a run. Prints the object, its generation and the run id.",
    )
    upload.add_argument("file", metavar="FILE", help="the DAG file (YAML or JSON)")
    upload.add_argument("--name", metavar="OBJECT",
                        help="object name (default: the prefix followed by the file's name, e.g. dags/x.yaml)")
    upload.add_argument("--tr-url", metavar="URL",
                        help="Task Runner URL for this run (object metadata tr_url; default: the mock)")
    _state_option(upload)

    show = commands.add_parser(
        "status",
        help="print a run's status and steps, or list the runs",
        description="'python main.py status --cloud RUN_ID' (without RUN_ID: 'runs --cloud') against the "
        "local cloud: the run, its steps and its DAG with states (an INVALID run: its problems); exit 1 if it "
        "failed or is invalid, 2 if there is no such run. Reads where the emulators are from the state file, "
        "else FIRESTORE_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT. The other commands take --cloud too "
        "(cancel, rerun, resume), after the export lines 'up' prints.",
    )
    show.add_argument("run_id", nargs="?", metavar="RUN_ID", help="the run (default: list the runs)")
    show.add_argument("--watch", action="store_true",
                      help="print it again whenever it changes, until the run ends (the list: until Ctrl-C)")
    show.add_argument("--interval", type=seconds_arg, default=1.0, metavar="SECONDS",
                      help="seconds between two reads with --watch (default: %(default)s)")
    show.add_argument("--json", action="store_true", help="JSON for scripts, as the command line prints it")
    _state_option(show)
    return parser


def _state_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-file", default=DEFAULT_STATE_FILE, metavar="PATH", type=Path,
                        help="where 'up' writes where everything is (default: %(default)s)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(logging.INFO if getattr(args, "verbose", False) else logging.WARNING)
    try:
        if args.command == "up":
            return up(args)
        if args.command == "upload":
            return upload(args)
        return show_status(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


# -- up ---------------------------------------------------------------------------------
def up(args: argparse.Namespace) -> int:
    state_file: Path = args.state_file
    _refuse_if_running(state_file)
    try:
        require_tools()
    except MissingTool as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.stale_after < 3 * args.poll:
        raise InputError(f"--stale-after {args.stale_after:g} must be at least 3 x --poll ({args.poll:g} s): "
                         "a run whose jobs are being checked must never look stale")
    cloud = LocalCloud(project=args.project, bucket=args.bucket, prefix=args.prefix, poll=args.poll,
                       mock_duration=args.mock_duration, engine_deliveries=args.engine_deliveries,
                       sweep_every=args.sweep_every, stale_after=args.stale_after, pages=True,
                       schedules={name: LocalSchedule({"dag_path": f"gs://{args.bucket}/{obj}", "schedule": name},
                                                      every) for name, obj, every in args.schedule})
    stopping: list[bool] = []
    wrote = False
    try:
        _install_stop_handlers(stopping)
        print("starting the local cloud ...", flush=True)
        cloud.start()
        _write_state(state_file, {**cloud.describe(), "pid": os.getpid(), "started_at": time.time()})
        wrote = True
        _print_up(cloud, state_file)
        return _serve(cloud)
    except _Stop:
        return EXIT_OK
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        stopping.append(True)  # later signals only wait for this
        print("stopping ...", flush=True)
        cloud.stop()
        processes.stop_all()  # whatever a start interrupted by a signal left behind
        if wrote:
            state_file.unlink(missing_ok=True)
        print("stopped", flush=True)


def _refuse_if_running(state_file: Path) -> None:
    try:
        state = status.read_state(state_file)
    except InputError:
        return  # unreadable: overwritten below
    pid = state.get("pid") if state else None
    if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
        raise InputError(f"a local cloud is already running (pid {pid}, state file {state_file}); "
                         "stop it first, or pass another --state-file")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _install_stop_handlers(stopping: list[bool]) -> None:
    """The first SIGINT/SIGTERM/SIGHUP raises _Stop in the main thread; any signal is ignored
    once `stopping` is non-empty (stopping has begun)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if stopping:
            return
        stopping.append(True)
        raise _Stop(signal.Signals(signum).name)

    for signum in _STOP_SIGNALS:
        signal.signal(signum, handler)


def _write_state(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a reader sees the whole file or none."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _print_up(cloud: LocalCloud, state_file: Path) -> None:
    rows = [
        ("firestore emulator", cloud.firestore_host),
        ("pubsub emulator", cloud.pubsub_host),
        ("storage emulator", cloud.storage_url),
        ("mock Task Runner", f"{cloud.mock_url} (jobs last {cloud.mock_duration:g} s by default)"),
        (TARGETS[0], f"{cloud.function_url(TARGETS[0])} <- uploads to gs://{cloud.bucket}/{cloud.prefix}*"
                     f" ({'/'.join(DAG_EXTENSIONS)})"),
        (TARGETS[1], f"{cloud.function_url(TARGETS[1])} <- topic {START_TOPIC}"),
        (TARGETS[2], f"{cloud.function_url(TARGETS[2])} <- topic {ENGINE_TOPIC}"
                     f" (x{cloud.engine_deliveries})"),
        (TARGETS[3], f"{cloud.start_url} <- POST a start request (JSON)"),
        (TARGETS[4], f"{cloud.function_url(TARGETS[4])} <- topic {CONTROL_TOPIC}"),
        (TARGETS[5], f"{cloud.control_url} <- POST a cancel, rerun or resume request (JSON)"),
        (PAGES_TARGET, f"{cloud.function_url(PAGES_TARGET)}/ <- the run pages, in a browser"),
        ("dead letters", "topic workflow-dead-letter, pull subscription workflow-dead-letter-sub"),
        ("polling interval", f"{cloud.poll:g} s"),
        ("sweep", f"every {cloud.sweep_every:g} s, runs quiet for {cloud.stale_after:g} s" if cloud.sweep_every
                  else "off"),
        *((f"schedule {name}", f"every {s.every:g} s: POST {json.dumps(dict(s.body))}")
          for name, s in cloud.schedules.items()),
        ("logs", str(next(iter(cloud.logs.values())).parent)),
        ("state file", str(state_file)),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"local cloud up in {cloud.startup_seconds:.1f} s, project {cloud.project}")
    for name, where in rows:
        print(f"  {name:<{width}}  {where}")
    print("\nfor a shell (clients, gcloud, the CLI):")
    for key, value in {**cloud.env, **_gcloud_env(cloud)}.items():
        print(f"export {key}={shlex.quote(value)}")
    print(f"\ntry:\n  {PROG} upload dags/fork_join.yaml\n  {PROG} status RUN_ID --watch\n"
          f"  {PROG} status\nCtrl-C stops everything.", flush=True)


def _gcloud_env(cloud: LocalCloud) -> dict[str, str]:
    """What gcloud needs to talk to the Pub/Sub emulator: its endpoint, the project, and a
    token (any will do; without one gcloud asks for an active account)."""
    token = next(iter(cloud.logs.values())).parent / "gcloud-token"
    token.write_text("localcloud-emulators-take-any-token\n")
    return {"CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB": f"http://{cloud.pubsub_host}/",
            "CLOUDSDK_CORE_PROJECT": cloud.project, "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": str(token)}


def _serve(cloud: LocalCloud) -> int:
    """Wait for a stop signal; return 1 if a server process dies meanwhile."""
    while True:
        time.sleep(1.0)
        for name, service in cloud.services().items():
            code = service.process.returncode
            if code is not None:
                print(f"error: {name} exited with code {code}; its log:\n{service.process.log_tail()}",
                      file=sys.stderr, flush=True)
                return EXIT_FAILED


# -- upload -----------------------------------------------------------------------------
def upload(args: argparse.Namespace) -> int:
    state = status.read_state(args.state_file)
    if state is None:
        raise InputError(f"no state file {args.state_file}: start the local cloud with '{PROG} up' "
                         "(or pass its --state-file)")
    source = Path(args.file)
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    env = {str(k): str(v) for k, v in state["env"].items()}
    bucket, prefix = str(state.get("bucket", "dags")), str(state.get("prefix", "dags/"))
    storage_url = env.get("STORAGE_EMULATOR_HOST", "")
    if not servers.http_responds(storage_url + "/", any_status=True, timeout=3.0):
        raise InputError(f"the storage emulator at {storage_url!r} (from {args.state_file}) does not answer: "
                         f"is '{PROG} up' still running?")
    name = args.name or f"{prefix}{source.name}"
    metadata = {"tr_url": args.tr_url} if args.tr_url else None
    client = eventarc.storage_client(storage_url, env.get("GOOGLE_CLOUD_PROJECT", "localcloud"))
    name, generation = upload_object(client, bucket, source, name, metadata)
    run_id = upload_run_id(bucket, name, generation)
    print(f"uploaded   gs://{bucket}/{name}")
    print(f"generation {generation}")
    if not name.startswith(prefix) or not name.lower().endswith(DAG_EXTENSIONS):
        print(f"note: not a .yaml/.yml/.json object under {prefix!r}: this upload starts no run")
    else:
        print(f"run id     {run_id}")
        print(f"follow it: {PROG} status {run_id} --watch", flush=True)
    return EXIT_OK


# -- status -----------------------------------------------------------------------------
def show_status(args: argparse.Namespace) -> int:
    """The command line's own `status --cloud` / `runs --cloud`, this process pointed at the emulators."""
    target = status.locate(args.state_file, os.environ)
    status.check_answers(target)
    os.environ.update(target.emulators)
    return cli.main(status.cli_arguments(args.run_id, watch=args.watch, interval=args.interval,
                                         json_out=args.json, target=target))


if __name__ == "__main__":
    sys.exit(main())
