"""Process supervision for the local cloud: each server in its own process group, with a log.

Guarantees, for every process started here:

- it runs in its own process group, and `stop()` signals the whole group (SIGTERM, then
  SIGKILL after a grace period) and waits until no process of the group is left, so the
  JVM behind a launcher script or the workers of gunicorn go with it;
- `stop()` is idempotent and thread-safe; every process still running is also stopped at
  interpreter exit and, once `install_signal_handlers()` was called, on SIGTERM/SIGHUP;
- waiting for readiness is bounded: a timeout or an early exit raises `StartupError`
  whose message ends with the tail of the process's log;
- a missing tool raises `MissingTool`, whose message says how to install it.

Logs go to one temporary directory per Python process, removed at exit unless the
environment variable LOCALCLOUD_KEEP_LOGS is set.

Only processes started here are ever signalled, by their process group id. Where the
servers listen is in `servers`; what they are in `emulators` and `functions`.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from workflow.errors import WorkflowError

LOG = logging.getLogger(__name__)

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
