"""The mock Task Runner's life cycle: a threaded Werkzeug server on a daemon thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import wsgi_app
from .jobs import JsonObject
from .state import Clock, RunnerState


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silenced: the app logs one line per request."""


class MockTaskRunner:
    """An in-process mock Task Runner serving on a daemon thread.

    State (jobs, records, faults) lives in the object, not the thread: the test hooks work
    before :meth:`start` and after :meth:`stop`. Use as a context manager to start and stop.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        duration: float = 3.0,
        token: str | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        """`clock`: seconds, never going back, from which job states and intervals are derived.

        Raises :class:`ValueError` for a negative or non-finite duration or an empty token.
        """
        self.host = host
        self._requested_port = port
        self._state = RunnerState(duration, token, clock)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.url if self._server else "stopped"
        return f"MockTaskRunner({where})"

    @property
    def port(self) -> int:
        """The bound port; :class:`RuntimeError` until started."""
        if self._server is None:
            raise RuntimeError("mock Task Runner is not started")
        return int(self._server.port)

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server; :class:`RuntimeError` until started."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> MockTaskRunner:
        """Bind (port 0 picks a free port) and serve on a daemon thread; returns self.

        The server accepts connections as soon as this returns. Raises :class:`RuntimeError`
        if already started and :class:`OSError` if the address cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError("mock Task Runner is already started")
        self._state.stopping.clear()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.create_server((self.host, self._requested_port), family=family) as listening:
            server = make_server(self.host, listening.getsockname()[1], wsgi_app(self._state), threaded=True,
                                 request_handler=_QuietHandler, fd=listening.fileno())
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="mock-task-runner", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; does nothing if not started."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is None:
            return
        self._state.stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def requests(self) -> list[JsonObject]:
        """Copies of the records of every ``/job`` and ``/jobstatus`` request, oldest first.

        Each record has ``method``, ``path``, ``query`` (first value per key), ``body``
        (decoded JSON of a POST, else ``None``), ``auth`` (the header's scheme and the
        token's :func:`fingerprint`, or ``None``), ``time`` (epoch seconds of arrival) and
        ``status`` (``None`` until answered).
        """
        return self._state.records()

    def submissions(self) -> list[str]:
        """The ``job_name`` of every accepted (200) submission, in the order received."""
        return self._state.submissions()

    def in_flight(self) -> dict[str, int]:
        """``{"now": n, "max": m}``: jobs in flight now, and the most in flight at any instant
        since the last reset. A job is in flight from its submission until its state is
        terminal; one ending exactly when another starts does not overlap it, and one that
        ends at once (``mock_final_state`` or a zero duration) is never in flight."""
        return self._state.in_flight()

    def inject_fault(
        self,
        path: str,
        status: int,
        count: int = 1,
        body: str = "",
        *,
        delay: float | None = 0.0,
        accept: bool = False,
        retry_after: str = "",
        echo_headers: bool = False,
    ) -> None:
        """The next `count` requests to `path` answer `status` with `body`, before auth.

        An empty `body` answers a JSON error instead (a garbled 200: `status` 200 and a
        `body` that is not the protocol's JSON). The answer waits `delay` seconds (None:
        until the mock stops: a hang). `accept`: the request is handled as usual (a job is
        accepted) and only the answer is late; `status` and `body` are not used.
        `retry_after`: the value of a ``Retry-After`` header. `echo_headers`: the body is
        JSON echoing the request's headers, ``Authorization`` included, like a careless
        server. Raises :class:`ValueError` for a path other than ``/job`` or
        ``/jobstatus``, a status outside 200..599, a count < 1 or a negative delay,
        :class:`TypeError` for a body that is not a string.
        """
        self._state.inject_fault(path, status, count, body, delay=delay, accept=accept, retry_after=retry_after,
                                 echo_headers=echo_headers)

    def reset(self) -> None:
        """Forget every job, record, submission, counted attempt and fault."""
        self._state.reset()
