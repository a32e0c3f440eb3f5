"""The whole cloud runtime on one machine: emulators, the four functions, their triggers, a mock.

`LocalCloud` starts, each on a free loopback port and (for a server process) in its own
process group through `devtools.localcloud.processes`:

- the Firestore, Pub/Sub and GCS emulators;
- the bundled mock Task Runner, in this process (`mock`: read its `submissions()`);
- `on_dag_uploaded`, `on_start_message`, `on_engine_message` and the HTTP function
  `on_start_request` of `main.py` (its URL: `start_url`), each in its own
  functions-framework process, configured as a deployment is (see `function_env`; the
  only Task Runner origin allowed is the mock's, over plain http, and the only DAG
  bucket is `bucket`),
  with a private XDG_RUNTIME_DIR so their gunicorn control sockets do not collide;
- what Eventarc would add: push subscriptions from `workflow-start` and `workflow-engine`
  to their functions (dead letters to `workflow-dead-letter` after 10 attempts) and a
  `FinalizeForwarder` turning uploads to the bucket into finalize events for
  `on_dag_uploaded`.

With `engine_deliveries=N` the engine topic gets N push subscriptions to the same
function, so every engine message is delivered N times, concurrently.

What Cloud Scheduler would add: with `sweep_every` > 0, a `SweepTimer` publishing
`SweepRuns(stale_after)` on the engine topic every `sweep_every` seconds; the functions get
WORKFLOW_STALE_AFTER_SEC = `stale_after`. With `engine_gate`, engine messages reach their
function through a `PushGate` (`gate`), which can lose chosen messages for tests.
`kill_function` and `restart_function` crash a function's process group and bring it back
on the same port.

`stop()` stops everything that was started (idempotent; also run when `start()` fails).
Nothing here reads or changes this process's environment, except for the moment a
Firestore client is built (the client only learns of the emulator from it).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import mimetypes
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from devtools.mock_runner import MockTaskRunner
from workflow.adapters.gcp.firestore_store import FirestoreStateStore
from workflow.entrypoints import upload_run_id
from workflow.model.messages import SweepRuns
from workflow.model.records import RunRecord, StepRecord
from workflow.settings import DEFAULT_MAX_INLINE_WAIT_SEC, DEFAULT_STALE_AFTER_SEC

from . import eventarc, processes, pubsub_wiring
from .processes import Service
from .push_gate import PushGate
from .scheduler import SweepTimer

LOG = logging.getLogger(__name__)

DEFAULT_PROJECT = "localcloud"
START_TOPIC = "workflow-start"
ENGINE_TOPIC = "workflow-engine"
DEAD_LETTER_TOPIC = "workflow-dead-letter"
EVENTS_TOPIC = "workflow-events"  # run-ended events, for subscribers outside the executor
MAX_DELIVERY_ATTEMPTS = 10
DEFAULT_SWEEP_EVERY = 30.0
MAX_POLL = 15.0
"""Above this a check, refused while early and redelivered every ~1 s, runs out of delivery attempts."""
FUNCTION_SOURCE = "main.py"
COUNTED_SOURCE = "devtools/localcloud/counted_main.py"
"""`main.py`'s functions, counting their Firestore operations and messages (`count_ops`)."""
UPLOAD_TARGET = "on_dag_uploaded"
START_TARGET = "on_start_message"
ENGINE_TARGET = "on_engine_message"
HTTP_START_TARGET = "on_start_request"
TARGETS = (UPLOAD_TARGET, START_TARGET, ENGINE_TARGET, HTTP_START_TARGET)
SIGNATURE_TYPES = {HTTP_START_TARGET: "http"}  # the others take CloudEvents
_ENV_LOCK = threading.Lock()


class RunTimeout(TimeoutError):
    """A run did not reach a terminal status in time; the message lists its steps."""


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set `values` in os.environ for the block (serialised), then restore what was there."""
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def firestore_client(host_port: str, project: str) -> Any:
    """A Firestore client bound to the emulator at `host_port` (anonymous)."""
    from google.cloud import firestore

    with _environment({"FIRESTORE_EMULATOR_HOST": host_port}):
        return firestore.Client(project=project)


def require_tools() -> None:
    """Raise MissingTool (saying how to install it) for the first tool the stack lacks."""
    processes.emulator_launcher("cloud-firestore-emulator", processes.FIRESTORE_LAUNCHER)
    processes.emulator_launcher("pubsub-emulator", processes.PUBSUB_LAUNCHER)
    for module, script, hint in (
        ("gcp_storage_emulator", "gcp-storage-emulator", processes.STORAGE_HINT),
        ("functions_framework", "functions-framework", processes.FUNCTIONS_HINT),
    ):
        if importlib.util.find_spec(module) is None and shutil.which(script) is None:
            raise processes.MissingTool(script, hint)


def _generate_token_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


class LocalCloud:
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
    ) -> None:
        """`poll`: WORKFLOW_CHECK_STATE_DURATION_SEC of the functions; `mock_duration`: the
        mock's default job duration (a task's label `mock_duration_sec` overrides it);
        `retry_backoff`: (min, max) seconds of the push subscriptions' redelivery backoff
        (None: the emulator's default); `extra_env`: more variables for the functions;
        `sweep_every`: seconds between two sweeps (0: none); `stale_after`: how long a run
        shows no progress before a sweep reconciles it (WORKFLOW_STALE_AFTER_SEC); `count_ops`:
        serve the functions from `COUNTED_SOURCE`, which logs what they cost after each call."""
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
        self.project = project
        self.bucket = bucket
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
        self.gate: PushGate | None = None
        self._engine_gate = engine_gate
        self.function_source = COUNTED_SOURCE if count_ops else FUNCTION_SOURCE
        self.mock = MockTaskRunner(duration=mock_duration)
        self.token_key = _generate_token_key()
        self.firestore: Service | None = None
        self.pubsub: Service | None = None
        self.storage: Service | None = None
        self.functions: dict[str, Service] = {}
        self.triggers: list[pubsub_wiring.PushTrigger] = []
        self.forwarder: eventarc.FinalizeForwarder | None = None
        self.startup_seconds = 0.0
        self._lock = threading.RLock()
        self._started = False
        self._stopped = False
        self._clients: dict[str, Any] = {}
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
        self.firestore, self.pubsub, self.storage = _all_or_nothing(
            [
                lambda: processes.start_firestore_emulator(self.project, timeout=self.startup_timeout),
                lambda: processes.start_pubsub_emulator(self.project, timeout=self.startup_timeout),
                lambda: processes.start_storage_emulator(timeout=self.startup_timeout),
            ]
        )
        started = _all_or_nothing(
            [
                functools.partial(
                    processes.start_function, self.function_source, target, self._own_env(target),
                    signature_type=SIGNATURE_TYPES.get(target, "cloudevent"), timeout=self.startup_timeout,
                )
                for target in TARGETS
            ]
        )
        self.functions = dict(zip(TARGETS, started, strict=True))
        if self._engine_gate:
            self.gate = PushGate(self.function_url(ENGINE_TARGET)).start()
        self._wire_topics()
        self.storage_client().create_bucket(self.bucket)
        self.forwarder = eventarc.FinalizeForwarder(
            self.storage_client(),
            self.bucket,
            self.function_url(UPLOAD_TARGET),
            interval=self.forward_interval,
        ).start()
        if self.sweep_every > 0:
            self.sweeper = SweepTimer(self._publish_engine, self.sweep_every, SweepRuns(self.stale_after)).start()

    def _publish_engine(self, data: bytes, attributes: dict[str, str]) -> None:
        self.publisher().publish(self.engine_topic, data, **attributes).result(timeout=30.0)

    def _wire_topics(self) -> None:
        host = self.pubsub_host
        common: dict[str, Any] = {
            "host": host,
            "dead_letter_topic_id": DEAD_LETTER_TOPIC,
            "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS,
            "retry_backoff": self.retry_backoff,
        }
        pubsub_wiring.ensure_topic(pubsub_wiring.topic_admin(host), self.project, EVENTS_TOPIC)
        self.triggers.append(
            pubsub_wiring.wire_push_trigger(self.project, START_TOPIC, self.function_url(START_TARGET), **common)
        )
        engine_url = self.gate.url if self.gate is not None else self.function_url(ENGINE_TARGET)
        for n in range(1, self.engine_deliveries + 1):
            subscription = f"{ENGINE_TOPIC}-push" if n == 1 else f"{ENGINE_TOPIC}-push-{n}"
            self.triggers.append(
                pubsub_wiring.wire_push_trigger(
                    self.project, ENGINE_TOPIC, engine_url, subscription_id=subscription, **common,
                )
            )

    def stop(self) -> None:
        """Stop the forwarder, the functions, the emulators and the mock. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self.sweeper is not None:
            _quietly("the sweep timer", self.sweeper.stop)
        if self.forwarder is not None:
            _quietly("the finalize forwarder", lambda: self.forwarder.stop() if self.forwarder else None)
        for name, client in self._clients.items():
            closer = getattr(client, "stop", None) if name == "publisher" else getattr(client, "close", None)
            if callable(closer):
                _quietly(f"the {name} client", closer)
        if self.gate is not None:
            _quietly("the push gate", self.gate.stop)
        services = [*self.functions.values(), self.firestore, self.pubsub, self.storage]
        for service in services:
            if service is not None:
                _quietly(service.name, service.stop)
        _quietly("the mock Task Runner", self.mock.stop)
        if self._runtime_dir is not None:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
        LOG.info("local cloud stopped")

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
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
            self.functions[target] = processes.start_function(
                self.function_source, target, self._own_env(target),
                signature_type=SIGNATURE_TYPES.get(target, "cloudevent"), timeout=self.startup_timeout, port=old.port,
            )
            return self.functions[target]

    def _function(self, target: str) -> Service:
        if target not in self.functions:
            raise KeyError(f"no function {target!r} (known: {', '.join(self.functions) or 'none'})")
        return self.functions[target]

    def _own_env(self, target: str) -> dict[str, str]:
        """`function_env()` plus a private XDG_RUNTIME_DIR: gunicorn (>= 25.1) opens a control
        socket there, by default one per user in $HOME, which the servers would share."""
        if self._runtime_dir is None:
            self._runtime_dir = Path(tempfile.mkdtemp(prefix="localcloud-run-"))
        own = self._runtime_dir / target
        own.mkdir(mode=0o700, exist_ok=True)
        return {**self.function_env(), "XDG_RUNTIME_DIR": str(own)}

    @property
    def start_topic(self) -> str:
        """`projects/P/topics/workflow-start`."""
        return pubsub_wiring.topic_path(self.project, START_TOPIC)

    @property
    def engine_topic(self) -> str:
        """`projects/P/topics/workflow-engine`."""
        return pubsub_wiring.topic_path(self.project, ENGINE_TOPIC)

    def describe(self) -> dict[str, Any]:
        """Where everything is, JSON-serialisable (the `up` command's state file)."""
        return {
            "project": self.project,
            "bucket": self.bucket,
            "prefix": self.prefix,
            "env": self.env,
            "mock_task_runner": self.mock_url,
            "functions": {target: service.url for target, service in self.functions.items()},
            "topics": {"start": START_TOPIC, "engine": ENGINE_TOPIC, "dead_letter": DEAD_LETTER_TOPIC,
                       "events": EVENTS_TOPIC},
            "subscriptions": [t.subscription for t in self.triggers],
            "sweep": {"every": self.sweep_every, "stale_after": self.stale_after},
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
        wanted = names or tuple(f"function-{t}" for t in TARGETS)
        parts = [f"--- {s.name} ({s.process.log_path})\n{s.process.log_tail(lines)}"
                 for s in self._services() if s.name in wanted]
        return "\n".join(parts)

    def function_errors(self) -> list[str]:
        """Lines of the functions' logs at ERROR or above, or with a traceback."""
        found: list[str] = []
        for target, service in self.functions.items():
            try:
                text = service.process.log_path.read_text(encoding="utf-8", errors="replace")
            except OSError as err:
                found.append(f"{target}: log unreadable: {err}")
                continue
            found += [f"{target}: {summary}" for line in text.splitlines() if (summary := _error_summary(line))]
        return found

    # -- clients --------------------------------------------------------------------------
    def _client(self, name: str, make: Callable[[], Any]) -> Any:
        with self._lock:
            if name not in self._clients:
                self._clients[name] = make()
            return self._clients[name]

    def firestore_client(self) -> Any:
        """A Firestore client bound to the emulator (shared; made on first use)."""
        return self._client("firestore", lambda: firestore_client(self.firestore_host, self.project))

    def storage_client(self) -> Any:
        """A google-cloud-storage client bound to the GCS emulator, anonymous (shared)."""
        return self._client("storage", lambda: eventarc.storage_client(self.storage_url, self.project))

    def publisher(self) -> Any:
        """A google-cloud-pubsub PublisherClient bound to the Pub/Sub emulator (shared)."""
        return self._client("publisher", lambda: pubsub_wiring.publisher(self.pubsub_host))

    def store(self) -> FirestoreStateStore:
        """The engine's state store over `firestore_client()`."""
        return FirestoreStateStore(self.firestore_client())

    # -- doing things ---------------------------------------------------------------------
    def upload(
        self,
        source: str | Path | bytes,
        name: str,
        metadata: Mapping[str, str] | None = None,
        *,
        bucket: str | None = None,
    ) -> tuple[str, str]:
        """Upload a file (path) or bytes as object `name`; return (name, generation)."""
        return upload_object(self.storage_client(), bucket or self.bucket, source, name, metadata)

    def run_id_for(self, name: str, generation: str | int) -> str:
        """The id of the run an upload of `name` at `generation` to the bucket starts."""
        return upload_run_id(self.bucket, name, str(generation))

    def publish_start(self, request: Mapping[str, Any], timeout: float = 30.0) -> str:
        """Publish a start request (JSON) on the start topic; return the message id."""
        data = json.dumps(request).encode()
        message_id: str = self.publisher().publish(self.start_topic, data).result(timeout=timeout)
        return message_id

    def post_start(self, request: Mapping[str, Any], timeout: float = 30.0) -> tuple[int, dict[str, Any]]:
        """POST a start request to the HTTP start function: (HTTP status, JSON answer)."""
        post = urllib.request.Request(self.start_url, data=json.dumps(request).encode(), method="POST",
                                      headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(post, timeout=timeout) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            with refused:
                return refused.code, json.loads(refused.read())

    def run(self, run_id: str) -> RunRecord | None:
        """The run's record, or None."""
        return self.store().get_run(run_id)

    def steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps, in DAG order."""
        return self.store().list_steps(run_id)

    def wait_run(self, run_id: str, timeout: float = 60.0, interval: float = 0.1) -> RunRecord:
        """Poll Firestore until the run's status is terminal; return its record.

        Raises RunTimeout (naming the run's status and each step's state) after `timeout` s.
        """
        store = self.store()
        deadline = time.monotonic() + timeout
        while True:
            run = store.get_run(run_id)
            if run is not None and run.status.terminal:
                return run
            if time.monotonic() >= deadline:
                steps = store.list_steps(run_id)
                states = ", ".join(f"{s.step_id}={s.state.value}" for s in steps[:50]) or "no steps"
                status = run.status.value if run is not None else "no run record"
                raise RunTimeout(f"run {run_id} not finished after {timeout:g} s: {status}; {states}")
            time.sleep(interval)


# ---------------------------------------------------------------------------------------


def upload_object(
    client: Any, bucket: str, source: str | Path | bytes, name: str, metadata: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """Upload a file (path) or bytes to gs://bucket/name with `client`; return (name, generation)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    blob = client.bucket(bucket).blob(name)
    if metadata:
        blob.metadata = dict(metadata)
    blob.upload_from_string(data, content_type=_content_type(name))
    return name, str(blob.generation)


def _all_or_nothing(starters: list[Callable[[], Service]]) -> list[Service]:
    """Run the starters concurrently; if one fails (or this thread is interrupted), stop every
    server that started, also one whose start completes later, and raise."""
    pool = ThreadPoolExecutor(len(starters), thread_name_prefix="localcloud-start")
    futures: list[Future[Service]] = [pool.submit(start) for start in starters]
    try:
        wait(futures)
        failed = [e for e in (f.exception() for f in futures) if e is not None]
        if failed:
            raise failed[0]
        return [f.result() for f in futures]
    except BaseException:
        for future in futures:
            future.add_done_callback(_stop_started)
        raise
    finally:
        pool.shutdown(wait=False)


def _stop_started(future: Future[Service]) -> None:
    if not future.cancelled() and future.exception() is None:
        _quietly("a started server", future.result().stop)


def _need(service: Service | None, what: str) -> Service:
    if service is None:
        raise RuntimeError(f"the {what} is not running")
    return service


def _quietly(what: str, action: Callable[[], object]) -> None:
    try:
        action()
    except Exception:  # stopping one piece must not keep the others running
        LOG.exception("could not stop %s", what)


def _error_summary(line: str) -> str | None:
    """For a log line at ERROR or above (or a traceback's start): its message and the exception
    raised (the last line of the traceback); None for any other line."""
    if line.startswith("Traceback"):
        return line
    if not line.startswith("{"):
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("severity") not in ("ERROR", "CRITICAL"):
        return None
    summary = str(entry.get("message", ""))
    trace = str(entry.get("exception") or "").strip()
    if trace:
        summary += " | " + trace.splitlines()[-1]
    return summary


def _content_type(name: str) -> str:
    lowered = name.lower()
    if lowered.endswith((".yaml", ".yml")):
        return "application/yaml"
    guessed, _ = mimetypes.guess_type(lowered)
    return guessed or "application/octet-stream"
