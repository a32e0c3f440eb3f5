"""`main.py`'s functions, counting what they cost, for the benchmark.

The local cloud has functions-framework load this module instead of `main.py` when asked
to count (`LocalCloud(count_ops=True)`). Importing it counts every Firestore operation of
the process from then on (see `op_counts`). After each invocation it logs `ops {json}`: the
process's cumulative `reads`, `writes` and `doc_writes` (the writes by document path), the
messages its engine bus `published`, and its `pid`.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import main
from devtools.localcloud import op_counts

log = logging.getLogger("devtools.localcloud.ops")
COUNTS = op_counts.install()
F = TypeVar("F", bound=Callable[..., Any])


def report() -> None:
    """Log the process's counts so far (`published`: null until the runtime is built)."""
    built = main.runtime.cache_info().currsize > 0
    published = getattr(main.runtime().ports.bus, "published", None) if built else None
    counts = COUNTS.as_dict()
    log.info("ops %s", json.dumps({**counts, "published": published, "pid": os.getpid()}))


def counted(function: F) -> F:
    """`function`, reporting the counts after each call however it ends."""

    @functools.wraps(function)
    def serve(*args: Any) -> Any:
        try:
            return function(*args)
        finally:
            report()

    return serve  # type: ignore[return-value]


on_dag_uploaded = counted(main.on_dag_uploaded)
on_start_message = counted(main.on_start_message)
on_engine_message = counted(main.on_engine_message)
on_start_request = counted(main.on_start_request)
on_control_message = counted(main.on_control_message)
on_control_request = counted(main.on_control_request)
