"""Start and stop the local cloud's servers: the Firestore, Pub/Sub and GCS emulators and functions.

Guarantees, for every server started here:

- it listens on a port of 127.0.0.1 that was free when it started (a port taken in the
  meantime by someone else is detected from the log and the start is retried on a new port);
- it runs in its own process group, and `stop()` signals the whole group (SIGTERM, then
  SIGKILL after a grace period) and waits until no process of the group is left, so the
  JVM behind a launcher script or the workers of gunicorn go with it;
- `stop()` is idempotent and thread-safe; every server still running is also stopped at
  interpreter exit and, once `install_signal_handlers()` was called, on SIGTERM/SIGHUP;
- waiting for readiness is bounded: a timeout or an early exit raises `StartupError`
  whose message ends with the tail of the server's log;
- a missing tool raises `MissingTool`, whose message says how to install it.

Logs go to one temporary directory per Python process, removed at exit unless the
environment variable LOCALCLOUD_KEEP_LOGS is set.

Only processes started here are ever signalled, by their process group id.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from workflow.errors import WorkflowError

LOG = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding the `workflow` package: functions run with it as cwd and on PYTHONPATH."""

GCLOUD_HINT = "install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install"
EMULATORS_HINT = (
    "gcloud components install cloud-firestore-emulator pubsub-emulator beta"
    " (or, when gcloud came from apt: apt-get install"
    " google-cloud-cli-firestore-emulator google-cloud-cli-pubsub-emulator)"
)
JAVA_HINT = "install a Java 17+ runtime (apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
STORAGE_HINT = "pip install gcp-storage-emulator"
FUNCTIONS_HINT = "pip install functions-framework"

FIRESTORE_LAUNCHER = Path("platform", "cloud-firestore-emulator", "cloud_firestore_emulator")
PUBSUB_LAUNCHER = Path("platform", "pubsub-emulator", "bin", "cloud-pubsub-emulator")

_PORT_CLASH_MARKERS = ("Address already in use", "BindException", "address already in use")
KEEP_LOGS_ENV = "LOCALCLOUD_KEEP_LOGS"
_STOP_GRACE_SECONDS = 10.0
_KILL_GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.05


class MissingTool(WorkflowError):
    """A program needed to run the local cloud is not installed; the message says how to get it."""

    def __init__(self, tool: str, how_to_install: str) -> None:
        self.tool = tool
        self.how_to_install = how_to_install
        super().__init__(f"{tool} is not available: {how_to_install}")


class StartupError(WorkflowError):
    """A server exited or did not become ready in time; the message ends with its log tail."""


# --------------------------------------------------------------------------- registry


_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.RLock()
_ATEXIT_DONE = False
_SIGNALS_DONE = False
_LOG_DIR: Path | None = None


def _track(process: ManagedProcess) -> None:
    global _ATEXIT_DONE
    with _LIVE_LOCK:
        _LIVE.add(process)
        if not _ATEXIT_DONE:
            atexit.register(_at_exit)
            _ATEXIT_DONE = True


def _untrack(process: ManagedProcess) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(process)


def live_processes() -> list[ManagedProcess]:
    """The processes started here and not stopped yet."""
    with _LIVE_LOCK:
        return list(_LIVE)


def stop_all() -> None:
    """Stop every process started here that is still running. Safe to call any number of times."""
    for process in live_processes():
        try:
            process.stop()
        except Exception:  # one failure must not keep the others running
            LOG.exception("could not stop %s (pgid %d)", process.name, process.pgid)


def install_signal_handlers(signums: Sequence[int] = (signal.SIGTERM, signal.SIGHUP)) -> None:
    """On the given signals, stop every live process, then let the previous handler act.

    Call from the main thread. Installing twice is a no-op.
    """
    global _SIGNALS_DONE
    if _SIGNALS_DONE or threading.current_thread() is not threading.main_thread():
        return
    for signum in signums:
        _chain_handler(signum, signal.getsignal(signum))
    _SIGNALS_DONE = True


def _chain_handler(signum: int, previous: Any) -> None:
    if previous == signal.SIG_IGN:
        return  # an ignored signal stays ignored

    def handler(received: int, frame: FrameType | None) -> None:
        LOG.warning("signal %d: stopping %d local cloud process(es)", received, len(live_processes()))
        stop_all()
        if callable(previous):
            previous(received, frame)
            return
        signal.signal(received, signal.SIG_DFL)
        os.kill(os.getpid(), received)

    signal.signal(signum, handler)


def _at_exit() -> None:
    """Stop what is left, then remove the log directory unless LOCALCLOUD_KEEP_LOGS is set."""
    stop_all()
    if _LOG_DIR is not None and not os.environ.get(KEEP_LOGS_ENV):
        shutil.rmtree(_LOG_DIR, ignore_errors=True)


def _log_dir() -> Path:
    global _LOG_DIR
    with _LIVE_LOCK:
        if _LOG_DIR is None:
            _LOG_DIR = Path(tempfile.mkdtemp(prefix="localcloud-"))
            LOG.debug("local cloud logs in %s", _LOG_DIR)
        return _LOG_DIR


# --------------------------------------------------------------------------- process


class ManagedProcess:
    """One server process in its own process group, its output going to a log file.

    The process is started by the constructor. `stop()` ends the whole group and may be
    called any number of times, from any thread.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        directory = log_dir if log_dir is not None else _log_dir()
        handle, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=directory)
        self.log_path = Path(path)
        self._lock = threading.RLock()
        self._stopped = False
        with os.fdopen(handle, "wb") as log:
            self._popen = subprocess.Popen(
                self.argv,
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid: int = self._popen.pid
        self.pgid: int = self._popen.pid  # a new session makes the child its group's leader
        _track(self)
        LOG.info("started %s: pid %d, log %s", name, self.pid, self.log_path)

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, stopped={self._stopped})"

    @property
    def returncode(self) -> int | None:
        """The leader's exit code, or None while it runs."""
        return self._popen.poll()

    @property
    def stopped(self) -> bool:
        """True once `stop()` ran (the group is then gone or was SIGKILLed)."""
        return self._stopped

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the process's log (stdout and stderr)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - 16384))
                text = log.read().decode("utf-8", errors="replace")
        except OSError as err:
            return f"<log unreadable: {err}>"
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> float:
        """Poll `predicate` until it returns True; return the seconds waited.

        Raises StartupError (with the log tail) when the process exits first or when
        `timeout` seconds pass. An exception from `predicate` counts as "not ready".
        """
        start = time.monotonic()
        while True:
            code = self._popen.poll()
            if code is not None:
                raise StartupError(self._describe(f"exited with code {code} before it was ready"))
            if _safe(predicate):
                return time.monotonic() - start
            if time.monotonic() - start >= timeout:
                raise StartupError(self._describe(f"was not ready after {timeout:.0f} s"))
            time.sleep(interval)

    def stop(self, grace: float = _STOP_GRACE_SECONDS) -> None:
        """SIGTERM the group, wait up to `grace` s for all of it to go, then SIGKILL it.

        Returns once no process of the group is left (or after the SIGKILL grace, logged).
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            try:
                _end_group(self._popen, self.pgid, self.name, grace)
            finally:
                _untrack(self)

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash, not a shutdown); return once it is gone.

        Idempotent, like `stop()`; the process counts as stopped afterwards."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            try:
                _signal_group(self.pgid, signal.SIGKILL)
                if not _wait_group(self._popen, self.pgid, _KILL_GRACE_SECONDS):
                    LOG.error("%s (pgid %d) still has processes after SIGKILL", self.name, self.pgid)
            finally:
                _untrack(self)
        LOG.info("killed %s (pgid %d)", self.name, self.pgid)

    def _describe(self, what: str) -> str:
        return f"{self.name} (pid {self.pid}) {what}; log {self.log_path}:\n{self.log_tail()}"


def _safe(predicate: Callable[[], bool]) -> bool:
    try:
        return bool(predicate())
    except Exception:  # a failing probe means "not ready yet"
        return False


def group_exists(pgid: int) -> bool:
    """True while some process of group `pgid` exists (signal 0 probes without signalling)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _wait_group(popen: subprocess.Popen[bytes], pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        leader_done = popen.poll() is not None
        if leader_done and not group_exists(pgid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)


def _end_group(popen: subprocess.Popen[bytes], pgid: int, name: str, grace: float) -> None:
    started = time.monotonic()
    _signal_group(pgid, signal.SIGTERM)
    if _wait_group(popen, pgid, grace):
        LOG.info("stopped %s (pgid %d) in %.2f s", name, pgid, time.monotonic() - started)
        return
    LOG.warning("%s (pgid %d) ignored SIGTERM for %.0f s: SIGKILL", name, pgid, grace)
    _signal_group(pgid, signal.SIGKILL)
    if not _wait_group(popen, pgid, _KILL_GRACE_SECONDS):
        LOG.error("%s (pgid %d) still has processes after SIGKILL", name, pgid)


# --------------------------------------------------------------------------- services


@dataclass
class Service:
    """A running server: where it listens, how long it took to start, how to stop it.

    `env` holds, for an emulator, the variables its clients need; for a function, the
    extra variables it was started with.
    """

    name: str
    host: str
    port: int
    process: ManagedProcess
    startup_seconds: float
    env: dict[str, str] = field(default_factory=dict)
    project: str | None = None

    @property
    def host_port(self) -> str:
        """`HOST:PORT`, the form of FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """`http://HOST:PORT`, no trailing slash."""
        return f"http://{self.host_port}"

    def stop(self) -> None:
        """Stop the server's process group (idempotent)."""
        self.process.stop()

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def free_port(host: str = LOOPBACK) -> int:
    """A port of `host` that nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when a server could bind `host:port` now (SO_REUSEADDR, as servers do).

    Connections lingering in TIME_WAIT do not count: nothing listens on the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def http_responds(url: str, *, any_status: bool = False, timeout: float = 1.0) -> bool:
    """True when GET `url` answers 2xx (or any HTTP status when `any_status`)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except urllib.error.HTTPError:
        return any_status
    except (urllib.error.URLError, OSError):
        return False


def _launch(
    name: str,
    argv_for_port: Callable[[int], list[str]],
    probe_path: str,
    *,
    timeout: float,
    any_status: bool = False,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    attempts: int = 3,
    port: int | None = None,
) -> tuple[ManagedProcess, int, float]:
    """Start `name` on a free port (or on `port`, once) and wait for GET `probe_path` to answer."""
    attempts = 1 if port is not None else attempts
    for attempt in range(1, attempts + 1):
        bound = port or free_port()
        process = ManagedProcess(name, argv_for_port(bound), cwd=cwd, env=env)
        probe = _http_probe(f"http://{LOOPBACK}:{bound}{probe_path}", any_status)
        try:
            seconds = process.wait_ready(probe, timeout)
        except StartupError:
            process.stop()
            if attempt == attempts or not _port_clash(process):
                raise
            LOG.warning("%s lost port %d to another process; retrying", name, bound)
            continue
        LOG.info("%s ready on port %d after %.2f s", name, bound, seconds)
        return process, bound, seconds
    raise AssertionError("unreachable")  # pragma: no cover


def _http_probe(url: str, any_status: bool) -> Callable[[], bool]:
    return lambda: http_responds(url, any_status=any_status)


def _port_clash(process: ManagedProcess) -> bool:
    tail = process.log_tail(200)
    return any(marker in tail for marker in _PORT_CLASH_MARKERS)


# --------------------------------------------------------------------------- tools


@lru_cache(maxsize=1)
def sdk_root() -> Path:
    """The Google Cloud SDK's root directory, found from `gcloud` on PATH."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise MissingTool("gcloud", f"{GCLOUD_HINT}; then {EMULATORS_HINT}")
    root = Path(gcloud).resolve().parent.parent
    if (root / "platform").is_dir():
        return root
    return _ask_gcloud_for_root(gcloud) or root


def _ask_gcloud_for_root(gcloud: str) -> Path | None:
    try:
        done = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as err:
        LOG.warning("gcloud info failed: %s", err)
        return None
    text = done.stdout.strip()
    return Path(text) if text else None


def emulator_launcher(component: str, relative: Path) -> Path:
    """The launcher script of an installed gcloud emulator component; MissingTool otherwise."""
    launcher = sdk_root() / relative
    if not launcher.is_file():
        raise MissingTool(component, EMULATORS_HINT)
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise MissingTool("java", JAVA_HINT)
    return launcher


def _python_module_argv(module: str, console_script: str, hint: str) -> list[str]:
    """Run `module` with this interpreter when importable, else its console script on PATH."""
    if importlib.util.find_spec(module) is not None:
        return [sys.executable, "-m", module]
    script = shutil.which(console_script)
    if script is None:
        raise MissingTool(console_script, hint)
    return [script]


# --------------------------------------------------------------------------- starters


def start_firestore_emulator(project: str, *, timeout: float = 60.0) -> Service:
    """Start the Firestore emulator (native mode) on a free loopback port.

    Clients reach it through FIRESTORE_EMULATOR_HOST (in `Service.env`).
    """
    launcher = emulator_launcher("cloud-firestore-emulator", FIRESTORE_LAUNCHER)

    def argv(port: int) -> list[str]:
        return [str(launcher), "start", f"--host={LOOPBACK}", f"--port={port}"]

    process, port, seconds = _launch("firestore-emulator", argv, "/", timeout=timeout)
    env = {"FIRESTORE_EMULATOR_HOST": f"{LOOPBACK}:{port}", "GOOGLE_CLOUD_PROJECT": project}
    return Service("firestore-emulator", LOOPBACK, port, process, seconds, env, project)


def start_pubsub_emulator(project: str, *, timeout: float = 60.0) -> Service:
    """Start the Pub/Sub emulator on a free loopback port; every project id is accepted.

    Clients reach it through PUBSUB_EMULATOR_HOST (in `Service.env`).
    """
    launcher = emulator_launcher("pubsub-emulator", PUBSUB_LAUNCHER)

    def argv(port: int) -> list[str]:
        return [str(launcher), f"--host={LOOPBACK}", f"--port={port}"]

    process, port, seconds = _launch("pubsub-emulator", argv, "/", timeout=timeout)
    env = {"PUBSUB_EMULATOR_HOST": f"{LOOPBACK}:{port}", "GOOGLE_CLOUD_PROJECT": project}
    return Service("pubsub-emulator", LOOPBACK, port, process, seconds, env, project)


def start_storage_emulator(*, timeout: float = 30.0) -> Service:
    """Start gcp-storage-emulator, in memory, on a free loopback port.

    Clients reach it through STORAGE_EMULATOR_HOST=http://HOST:PORT (in `Service.env`).
    """
    base = _python_module_argv("gcp_storage_emulator", "gcp-storage-emulator", STORAGE_HINT)

    def argv(port: int) -> list[str]:
        return [*base, "start", f"--host={LOOPBACK}", f"--port={port}", "--in-memory"]

    process, port, seconds = _launch("storage-emulator", argv, "/", timeout=timeout)
    env = {"STORAGE_EMULATOR_HOST": f"http://{LOOPBACK}:{port}"}
    return Service("storage-emulator", LOOPBACK, port, process, seconds, env)


def function_source(source: str | Path, root: Path = REPO_ROOT) -> Path:
    """The file functions-framework loads: `source` itself, or `source/main.py` for a directory.

    A relative `source` is taken from `root`.
    """
    path = Path(source)
    if not path.is_absolute():
        path = root / path
    if path.is_dir():
        path = path / "main.py"
    if not path.is_file():
        raise FileNotFoundError(f"function source {path} does not exist")
    return path


def start_function(
    source: str | Path,
    target: str,
    env: Mapping[str, str] | None = None,
    *,
    signature_type: str = "cloudevent",
    cwd: Path = REPO_ROOT,
    timeout: float = 30.0,
    port: int | None = None,
) -> Service:
    """Serve `target` of `source` with functions-framework on a free loopback port (or on
    `port`: a restart where the triggers already point).

    It runs with `cwd` (the repository root by default) as working directory and on
    PYTHONPATH, with the current environment plus `env` (which wins). Ready means the
    module was imported and the server answers HTTP.
    """
    path = function_source(source, cwd)
    base = _python_module_argv("functions_framework", "functions-framework", FUNCTIONS_HINT)
    merged = _function_env(env or {}, cwd)

    def argv(port: int) -> list[str]:
        return [
            *base,
            f"--source={path}",
            f"--target={target}",
            f"--signature-type={signature_type}",
            f"--host={LOOPBACK}",
            f"--port={port}",
        ]

    name = f"function-{target}"
    process, bound, seconds = _launch(name, argv, "/robots.txt", timeout=timeout, any_status=True, cwd=cwd,
                                      env=merged, port=port)
    return Service(name, LOOPBACK, bound, process, seconds, dict(env or {}), merged.get("GOOGLE_CLOUD_PROJECT"))


def _function_env(extra: Mapping[str, str], root: Path) -> dict[str, str]:
    merged = dict(os.environ)
    merged.update(extra)
    paths = [str(root), *filter(None, merged.get("PYTHONPATH", "").split(os.pathsep))]
    merged["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    merged.setdefault("PYTHONUNBUFFERED", "1")
    return merged


def reset_firestore(host_port: str, project: str, timeout: float = 10.0) -> None:
    """Delete every document of `project`'s default database on the Firestore emulator."""
    url = f"http://{host_port}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=timeout):  # a non-2xx status raises HTTPError
        pass
