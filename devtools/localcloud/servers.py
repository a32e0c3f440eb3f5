"""A server the local cloud started: where it listens, and how it was started on a free port.

Every server listens on a port of 127.0.0.1 that was free when it started; a port taken in
the meantime by someone else is detected from the log and the start is retried on a new
port. Waiting for readiness is bounded (see `ManagedProcess.wait_ready`).
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .processes import ManagedProcess, MissingTool, StartupError

LOG = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_PORT_CLASH_MARKERS = ("Address already in use", "BindException", "address already in use")


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


def launch(
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


def python_module_argv(module: str, console_script: str, hint: str) -> list[str]:
    """Run `module` with this interpreter when importable, else its console script on PATH."""
    if importlib.util.find_spec(module) is not None:
        return [sys.executable, "-m", module]
    script = shutil.which(console_script)
    if script is None:
        raise MissingTool(console_script, hint)
    return [script]
