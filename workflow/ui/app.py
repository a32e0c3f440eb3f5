"""The run pages as a Flask app: `create_app` takes the store roles it reads and the
actions callable, so the same app serves the embedded store (`main.py ui --db`) and the
cloud runtime's Firestore (`--cloud`, or deployed beside the functions)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask

from ..model.params import shown
from ..ports import RunPages, RunStore, StepStore
from . import api, routes
from .actions import Actions
from .security import Guard, secure_headers

SECRET_ENV = "WORKFLOW_UI_SECRET"  # signs the pages' action tokens; random per process when unset
ORIGINS_ENV = "WORKFLOW_UI_ORIGINS"  # comma-separated other origins a POST may come from (a proxy's)
ASSETS = "/assets"  # where static/ is served: functions-framework's own app keeps /static/ from a function


@dataclass(frozen=True)
class Reads:
    """What the pages read: runs, steps, and the cheap page reads."""

    runs: RunStore
    steps: StepStore
    pages: RunPages


@dataclass(frozen=True)
class Ui:
    reads: Reads
    actions: Actions
    guard: Guard
    where: str  # the command-line options naming the same store, for the commands shown
    clock: Callable[[], float]


def create_app(runs: RunStore, steps: StepStore, pages: RunPages, actions: Actions, *, where: str = "",
               secret: bytes | None = None, origins: Collection[str] | None = None,
               clock: Callable[[], float] = time.time) -> Flask:
    """The app. `secret` signs action tokens (default: WORKFLOW_UI_SECRET, else random);
    `origins` are other origins a POST may come from (default: WORKFLOW_UI_ORIGINS)."""
    app = Flask(__name__, static_url_path=ASSETS)
    secret = secret or os.environ.get(SECRET_ENV, "").encode() or os.urandom(32)
    if origins is None:
        origins = [o.strip() for o in os.environ.get(ORIGINS_ENV, "").split(",") if o.strip()]
    ui = Ui(Reads(runs, steps, pages), actions, Guard(secret, origins, clock), where, clock)
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["took"] = took
    app.jinja_env.filters["param"] = shown
    app.after_request(secure_headers)
    routes.register(app, ui)
    api.register(app, ui)
    return app


def when(t: float | None) -> str:
    return "" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def took(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    return f"{minutes} min {s} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
