"""The whole cloud runtime on one machine: emulators, the six functions, their triggers, a mock.

`LocalCloud` starts, each on a free loopback port and (for a server process) in its own
process group through `devtools.localcloud.processes`:

- the Firestore, Pub/Sub and GCS emulators;
- the bundled mock Task Runner, in this process (`mock`: read its `submissions()`);
- `on_dag_uploaded`, `on_start_message`, `on_control_message`, `on_engine_message` and
  the HTTP functions `on_start_request` and `on_control_request` of `main.py` (their URLs:
  `start_url`, `control_url`), each in its own functions-framework process, configured as
  a deployment is (see `function_env`; the only Task Runner origin allowed is the mock's,
  over plain http, and the only DAG bucket is `bucket`), and with `pages` the run pages'
  function `run_pages` too (`wiring.pages_env`), each with a private XDG_RUNTIME_DIR for
  gunicorn's control socket;
- what Eventarc would add: push subscriptions from `workflow-start`, `workflow-run-control`
  and `workflow-engine` to their functions (dead letters to `workflow-dead-letter` after
  10 attempts) and a `FinalizeForwarder` turning uploads to the bucket into finalize
  events for `on_dag_uploaded`.

With `engine_deliveries=N` the engine topic gets N push subscriptions to the same
function, so every engine message is delivered N times, concurrently.

What Cloud Scheduler would add: with `sweep_every` > 0, a `SweepTimer` posting
`{"action": "sweep"}` to the HTTP start function every `sweep_every` seconds, which
publishes the SweepRuns; the functions get WORKFLOW_STALE_AFTER_SEC = `stale_after`; and
a `ScheduleTimer` for each of `schedules` (a schedule's job, on a timer).
With `engine_gate`, engine messages reach their function through a `PushGate` (`gate`),
which can lose chosen messages for tests.
`kill_function` and `restart_function` crash a function's process group and bring it back
on the same port. `stop()` stops everything that was started (idempotent; also run when `start()` fails).
What a test does with it once started (upload, publish, wait for a run) is `CloudClient`'s
(`client`); how the pieces connect is in `wiring`.
"""

from __future__ import annotations

import functools
import logging
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from devtools.mock_runner import MockTaskRunner
from workflow.settings import DEFAULT_MAX_INLINE_WAIT_SEC, DEFAULT_STALE_AFTER_SEC

from . import emulators, eventarc, functions, pubsub_wiring
from .client import CloudClient
from .push_gate import PushGate
from .scheduler import SWEEP_REQUEST, LocalSchedule, ScheduleTimer, SweepTimer, replacing
from .servers import Service
from .wiring import (
    CONTROL_TARGET,
    CONTROL_TOPIC,
    COUNTED_SOURCE,
    DEAD_LETTER_TOPIC,
    DEFAULT_PROJECT,
    DEFAULT_SWEEP_EVERY,
    ENGINE_TARGET,
    ENGINE_TOPIC,
    EVENTS_TOPIC,
    FUNCTION_SOURCE,
    HTTP_CONTROL_TARGET,
    HTTP_START_TARGET,
    MAX_DELIVERY_ATTEMPTS,
    MAX_POLL,
    PAGES_TARGET,
    SIGNATURE_TYPES,
    START_TARGET,
    START_TOPIC,
    TARGETS,
    UPLOAD_TARGET,
    all_or_nothing,
    generate_token_key,
    pages_env,
    quietly,
    wire_topics,
)

LOG = logging.getLogger(__name__)


class LocalCloud(CloudClient):
    """The cloud runtime on emulators; a context manager (`with LocalCloud() as cloud:`)."""

    def __init__(
        self,
        *,
        project: str = DEFAULT_PROJECT,
        bucket: str = "dags",
        prefix: str = "dags/",
        poll: float = 0.5,
        mock_duration: float = 2.0,
        engine_deliveries: int = 1,
        forward_interval: float = 0.2,
        retry_backoff: tuple[float, float] | None = None,
        step_timeout: float | None = None,
        extra_env: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        sweep_every: float = DEFAULT_SWEEP_EVERY,
        stale_after: float = DEFAULT_STALE_AFTER_SEC,
        engine_gate: bool = False,
        count_ops: bool = False,
        pages: bool = False,
        schedules: Mapping[str, LocalSchedule] | None = None,
    ) -> None:
        """`poll`: WORKFLOW_CHECK_STATE_DURATION_SEC of the functions; `mock_duration`: the
        mock's default job duration (a task's label `mock_duration_sec` overrides it);
        `retry_backoff`: (min, max) seconds of the push subscriptions' redelivery backoff
        (None: the emulator's default); `extra_env`: more variables for the functions;
        `sweep_every`: seconds between two sweeps (0: none); `stale_after`: how long a run
        shows no progress before a sweep reconciles it (WORKFLOW_STALE_AFTER_SEC); `count_ops`:
        serve the functions from `COUNTED_SOURCE`, which logs what they cost after each call;
        `pages`: serve the run pages too (`function_url(PAGES_TARGET)`)."""
        if engine_deliveries < 1:
            raise ValueError(f"engine_deliveries must be >= 1, got {engine_deliveries}")
        if not (sweep_every >= 0 and stale_after > 0):
            raise ValueError(f"sweep_every must be >= 0 and stale_after > 0 s, got {sweep_every:g} and "
                             f"{stale_after:g}")
        if stale_after < 3 * poll:
            raise ValueError(f"stale_after ({stale_after:g} s) must be at least 3 x poll ({poll:g} s): a run whose "
                             "jobs are being checked must never look stale")
        if not 0 <= poll <= MAX_POLL:
            raise ValueError(
                f"poll must be between 0 and {MAX_POLL:g} s, got {poll:g}: the Pub/Sub emulator redelivers a "
                "refused push about once a second, so a check due much more than "
                f"{DEFAULT_MAX_INLINE_WAIT_SEC:g} s ahead would use up its {MAX_DELIVERY_ATTEMPTS} delivery attempts, "
                "be dead-lettered, and leave its run RUNNING for ever"
            )
        if poll > DEFAULT_MAX_INLINE_WAIT_SEC:
            LOG.warning("poll %.3g s > %.3g s: every check arrives early and is refused (logged as an error) "
                        "until it is due", poll, DEFAULT_MAX_INLINE_WAIT_SEC)
        super().__init__(project, bucket)
        self.prefix = prefix
        self.poll = poll
        self.engine_deliveries = engine_deliveries
        self.forward_interval = forward_interval
        self.retry_backoff = retry_backoff
        self.step_timeout = step_timeout
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout
        self.mock_duration = mock_duration
        self.sweep_every = sweep_every
        self.stale_after = stale_after
        self.sweeper: SweepTimer | None = None
        self.schedules = dict(schedules or {})
        self.schedule_timers = [ScheduleTimer(self.post_start, name, s) for name, s in self.schedules.items()]
        self.gate: PushGate | None = None
        self._engine_gate = engine_gate
        self.function_source = COUNTED_SOURCE if count_ops else FUNCTION_SOURCE
        self.mock = MockTaskRunner(duration=mock_duration)
        self.token_key = generate_token_key()
        self.targets = (*TARGETS, PAGES_TARGET) if pages else TARGETS
        self.pages_secret = secrets.token_hex(32)  # keys the pages' action tokens
        self.firestore: Service | None = None
        self.pubsub: Service | None = None
        self.storage: Service | None = None
        self.functions: dict[str, Service] = {}
        self.triggers: list[pubsub_wiring.PushTrigger] = []
        self.forwarder: eventarc.FinalizeForwarder | None = None
        self.startup_seconds = 0.0
        self._started = False
        self._stopped = False
        self._runtime_dir: Path | None = None

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> LocalCloud:
        """Start everything; on any failure stop what was started and re-raise."""
        with self._lock:
            if self._started:
                raise RuntimeError("this LocalCloud was already started")
            self._started = True
        began = time.monotonic()
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        LOG.info("local cloud up in %.1f s", self.startup_seconds)
        return self

    def _start_all(self) -> None:
        self.mock.start()
        self.firestore, self.pubsub, self.storage = all_or_nothing([
            lambda: emulators.start_firestore_emulator(self.project, timeout=self.startup_timeout),
            lambda: emulators.start_pubsub_emulator(self.project, timeout=self.startup_timeout),
            lambda: emulators.start_storage_emulator(timeout=self.startup_timeout),
        ])
        started = all_or_nothing([
            functools.partial(functions.start_function, self.function_source, target, self._own_env(target),
                              signature_type=SIGNATURE_TYPES.get(target, "cloudevent"), timeout=self.startup_timeout)
            for target in self.targets
        ])
        self.functions = dict(zip(self.targets, started, strict=True))
        if self._engine_gate:
            self.gate = PushGate(self.function_url(ENGINE_TARGET)).start()
        engine_url = self.gate.url if self.gate is not None else self.function_url(ENGINE_TARGET)
        self.triggers = wire_topics(self.project, self.pubsub_host, self.function_url(START_TARGET), engine_url,
                                    self.engine_deliveries, self.retry_backoff, self.function_url(CONTROL_TARGET))
        self.storage_client().create_bucket(self.bucket)
        self.forwarder = eventarc.FinalizeForwarder(
            self.storage_client(),
            self.bucket,
            self.function_url(UPLOAD_TARGET),
            interval=self.forward_interval,
        ).start()
        if self.sweep_every > 0:
            self.sweeper = SweepTimer(self._request_sweep, self.sweep_every).start()
        for timer in self.schedule_timers:
            timer.start()

    def _request_sweep(self) -> None:
        status, answer = self.post_start(SWEEP_REQUEST)
        if status != 202:
            raise RuntimeError(f"the sweep request was answered {status}: {answer}")

    def stop(self) -> None:
        """Stop the forwarder, the functions, the emulators and the mock. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        for timer in [*([self.sweeper] if self.sweeper else []), *(t.timer for t in self.schedule_timers)]:
            quietly(f"the {timer.name} timer", timer.stop)
        if self.forwarder is not None:
            quietly("the finalize forwarder", lambda: self.forwarder.stop() if self.forwarder else None)
        self.close_clients(quietly)
        if self.gate is not None:
            quietly("the push gate", self.gate.stop)
        services = [*self.functions.values(), self.firestore, self.pubsub, self.storage]
        for service in services:
            if service is not None:
                quietly(service.name, service.stop)
        quietly("the mock Task Runner", self.mock.stop)
        if self._runtime_dir is not None:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
        LOG.info("local cloud stopped")

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- where things are -----------------------------------------------------------------
    @property
    def firestore_host(self) -> str:
        """FIRESTORE_EMULATOR_HOST (`HOST:PORT`)."""
        return _need(self.firestore, "firestore emulator").host_port

    @property
    def pubsub_host(self) -> str:
        """PUBSUB_EMULATOR_HOST (`HOST:PORT`)."""
        return _need(self.pubsub, "pubsub emulator").host_port

    @property
    def storage_url(self) -> str:
        """STORAGE_EMULATOR_HOST (`http://HOST:PORT`)."""
        return _need(self.storage, "storage emulator").url

    @property
    def mock_url(self) -> str:
        """The mock Task Runner's base URL (WORKFLOW_TR_URL of the functions)."""
        return self.mock.url

    def function_url(self, target: str) -> str:
        """`http://HOST:PORT` of the functions-framework serving `target`."""
        return self._function(target).url

    @property
    def start_url(self) -> str:
        """The URL of the HTTP start function (POST a start request as JSON)."""
        return self.function_url(HTTP_START_TARGET)

    @property
    def control_url(self) -> str:
        """The URL of the HTTP control function (POST a cancel, rerun or resume request as JSON)."""
        return self.function_url(HTTP_CONTROL_TARGET)

    @property
    def env(self) -> dict[str, str]:
        """What a client (or a user's shell) needs to reach the emulators."""
        return {
            "STORAGE_EMULATOR_HOST": self.storage_url,
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "GOOGLE_CLOUD_PROJECT": self.project,
        }

    def function_env(self) -> dict[str, str]:
        """The environment of the functions (the deployment's configuration)."""
        env = {
            **self.env,
            "WORKFLOW_ENGINE_TOPIC": ENGINE_TOPIC,
            "WORKFLOW_EVENTS_TOPIC": EVENTS_TOPIC,
            "WORKFLOW_DAG_PREFIX": self.prefix,
            "WORKFLOW_TR_URL": self.mock_url,
            "WORKFLOW_ALLOWED_TR_ORIGINS": self.mock_url,
            "WORKFLOW_ALLOW_HTTP_TR": "1",  # the mock serves plain http on loopback
            "WORKFLOW_DAG_BUCKETS": self.bucket,
            "WORKFLOW_TR_AUTH_MODE": "none",
            "WORKFLOW_CHECK_STATE_DURATION_SEC": str(float(self.poll)),
            "WORKFLOW_STALE_AFTER_SEC": str(float(self.stale_after)),
            "WORKFLOW_TOKEN_KEY": self.token_key,
            "WORKFLOW_REPLACING_SCHEDULES": replacing(self.schedules),
            "LOG_FORMAT": "json",
            # The functions also inherit this process's environment: blank what would redirect them.
            "WORKFLOW_FIRESTORE_DATABASE": "",
            "WORKFLOW_STEP_TIMEOUT_SEC": "" if self.step_timeout is None else str(float(self.step_timeout)),
        }
        env.update(self.extra_env)
        return env

    def kill_function(self, target: str) -> None:
        """SIGKILL the process group serving `target` (a crash); return once it is gone."""
        with self._lock:
            self._function(target).process.kill()

    def restart_function(self, target: str) -> Service:
        """Serve `target` again, on the port its triggers push to; it must have been
        killed or stopped first."""
        with self._lock:
            old = self._function(target)
            if old.process.returncode is None and not old.process.stopped:
                raise RuntimeError(f"{target} is still running: kill it first")
            self.functions[target] = functions.start_function(
                self.function_source, target, self._own_env(target),
                signature_type=SIGNATURE_TYPES.get(target, "cloudevent"), timeout=self.startup_timeout, port=old.port,
            )
            return self.functions[target]

    def _function(self, target: str) -> Service:
        if target not in self.functions:
            raise KeyError(f"no function {target!r} (known: {', '.join(self.functions) or 'none'})")
        return self.functions[target]

    def _own_env(self, target: str) -> dict[str, str]:
        """`function_env()` (the pages': `pages_env`) plus a private XDG_RUNTIME_DIR: gunicorn
        (>= 25.1) opens a control socket there, by default one per user in $HOME, which the
        servers would share."""
        if self._runtime_dir is None:
            self._runtime_dir = Path(tempfile.mkdtemp(prefix="localcloud-run-"))
        own = self._runtime_dir / target
        own.mkdir(mode=0o700, exist_ok=True)
        env = pages_env(self.env, self.pages_secret) if target == PAGES_TARGET else self.function_env()
        return {**env, "XDG_RUNTIME_DIR": str(own)}

    def describe(self) -> dict[str, Any]:
        """Where everything is, JSON-serialisable (the `up` command's state file)."""
        return {
            "project": self.project,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "env": self.env,
            "mock_task_runner": self.mock_url,
            "functions": {target: service.url for target, service in self.functions.items()},
            "topics": {"start": START_TOPIC, "control": CONTROL_TOPIC, "engine": ENGINE_TOPIC,
                       "dead_letter": DEAD_LETTER_TOPIC, "events": EVENTS_TOPIC},
            "subscriptions": [t.subscription for t in self.triggers],
            "sweep": {"every": self.sweep_every, "stale_after": self.stale_after},
            "schedules": {name: s.every for name, s in self.schedules.items()},
            "process_groups": {s.name: s.process.pgid for s in self._services()},
        }

    def services(self) -> dict[str, Service]:
        """Every server process started, by name."""
        return {s.name: s for s in self._services()}

    def _services(self) -> list[Service]:
        return [s for s in (self.firestore, self.pubsub, self.storage, *self.functions.values()) if s is not None]

    # -- logs -----------------------------------------------------------------------------
    @property
    def logs(self) -> dict[str, Path]:
        """The log file of every server process: a function's by its target (the keys of
        `functions`), an emulator's by its name (`firestore-emulator`, ...)."""
        named = {s.name: s.process.log_path for s in (self.firestore, self.pubsub, self.storage) if s is not None}
        return {**named, **{target: s.process.log_path for target, s in self.functions.items()}}

    def log_tails(self, lines: int = 40, names: tuple[str, ...] | None = None) -> str:
        """The last `lines` lines of each log (functions only unless `names` says otherwise)."""
        wanted = names or tuple(f"function-{t}" for t in self.targets)
        parts = [f"--- {s.name} ({s.process.log_path})\n{s.process.log_tail(lines)}"
                 for s in self._services() if s.name in wanted]
        return "\n".join(parts)

    def function_errors(self) -> list[str]:
        """Lines of the functions' logs at ERROR or above, or with a traceback."""
        return functions.logged_errors(self.functions)

def _need(service: Service | None, what: str) -> Service:
    if service is None:
        raise RuntimeError(f"the {what} is not running")
    return service
