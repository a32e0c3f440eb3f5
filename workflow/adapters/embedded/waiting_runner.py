"""The HTTP Task Runner client as the embedded runtime uses it."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from ..http.auth import TokenSource
from ..http.task_runner import Answer, HttpTaskRunner


class WaitingTaskRunner(HttpTaskRunner):
    """`HttpTaskRunner` that enters `waiting` around each network exchange, so that the
    in-process bus lets other handlers run meanwhile."""

    def __init__(self, tokens: TokenSource, waiting: Callable[[], AbstractContextManager[None]],
                 **options: Any) -> None:
        super().__init__(tokens, **options)
        self._waiting = waiting

    def _send(self, *args: Any, **kwargs: Any) -> Answer:
        with self._waiting():
            return super()._send(*args, **kwargs)
