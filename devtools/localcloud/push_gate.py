"""A gate between a push subscription and its function, to lose chosen messages (tests).

`PushGate` is a threaded HTTP server on a free loopback port that forwards every push
(`POST`, the path and JSON body the Pub/Sub emulator sends) to `target_url` and answers
with the function's status and body (502 when the function cannot be reached, as a push to
a dead endpoint fails). `drop(match, messages)` makes it refuse (503, without forwarding)
every delivery of the next `messages` distinct messages whose attributes satisfy `match`,
so Pub/Sub redelivers each until its dead-letter policy moves it away: a message lost for
good, chosen by its content.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import urllib3
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from .servers import LOOPBACK, free_port

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

LOG = logging.getLogger(__name__)

Match = Callable[[Mapping[str, str]], bool]


class PushGate:
    """Forward pushes to `target_url`; lose the messages `drop` chooses."""

    def __init__(self, target_url: str, timeout: float = 60.0) -> None:
        self.target_url = target_url.rstrip("/")
        self.dropped: dict[str, int] = {}  # message id -> deliveries refused
        self._timeout = timeout
        self._rules: list[list[Any]] = []  # [match, messages left]
        self._lock = threading.Lock()
        self._pool = urllib3.PoolManager(maxsize=64)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the push gate is not started")
        return f"http://{LOOPBACK}:{self._server.server_port}"

    def start(self) -> PushGate:
        self._server = make_server(LOOPBACK, free_port(), self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="push-gate", daemon=True)
        self._thread.start()
        LOG.info("push gate %s -> %s", self.url, self.target_url)
        return self

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        self._pool.clear()

    def drop(self, match: Match, messages: int = 1) -> None:
        """Refuse every delivery of the next `messages` messages whose attributes `match`."""
        with self._lock:
            self._rules.append([match, messages])

    def _refused(self, body: bytes) -> str | None:
        """The message id if this delivery is to be refused, else None."""
        try:
            message = json.loads(body).get("message") or {}
        except (ValueError, AttributeError):
            return None
        message_id = str(message.get("messageId") or message.get("message_id") or "")
        attributes = message.get("attributes") or {}
        with self._lock:
            if message_id in self.dropped:
                self.dropped[message_id] += 1
                return message_id
            for rule in self._rules:
                if rule[1] > 0 and rule[0](attributes):
                    rule[1] -= 1
                    self.dropped[message_id] = 1
                    return message_id
        return None

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = Request(environ)
        body = request.get_data()
        refused = self._refused(body)
        if refused is not None:
            LOG.info("push gate: refused message %s", refused)
            response = Response("dropped by the push gate", status=503)
        else:
            response = self._forward(request, body)
        return response(environ, start_response)

    def _forward(self, request: Request, body: bytes) -> Response:
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        try:
            answer = self._pool.request(request.method, self.target_url + request.full_path.rstrip("?"), body=body,
                                        headers=headers, timeout=self._timeout, retries=False)
        except urllib3.exceptions.HTTPError as exc:
            return Response(f"the function did not answer: {exc}", status=502)
        return Response(answer.data, status=answer.status, content_type=answer.headers.get("Content-Type"))
