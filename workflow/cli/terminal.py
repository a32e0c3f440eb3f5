"""What the command line writes, made safe for a terminal: a run's messages, job ids and
DAG names come from outside, and none of their control characters reaches the screen raw."""

from __future__ import annotations

from typing import Any, TextIO

from ..model.text import printable


class PrintableStream:
    """`stream` with every control and format character but newline and tab written as an
    escape (`model.text.printable`); anything else is the stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text, keep="\n\t"))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
