"""Browser tests: the run pages served from a SQLite store the engine filled, driven in
Debian's Chromium by Playwright (which cannot download a browser of its own here).
Without a browser they skip, except in CI (CI=true), where they fail."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from browserkit import CHROMIUM_FLAGS, Served, chromium_path
from uikit import filled, running
from werkzeug.serving import make_server

from support import free_port
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.bootstrap.ui import embedded_ui
from workflow.ui import create_app


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        message = "no Chromium (Debian: apt-get install -y chromium; scripts/test installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(10_000)
    yield tab
    context.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The pages on a free loopback port, in a thread of this process."""
    db = tmp_path_factory.mktemp("pages") / "runs.sqlite3"
    filled(str(db), 30)
    store = SqliteStateStore(str(db))
    running(store, "running-2", at=3100.0)
    store.close()
    rt = embedded_ui(str(db))
    port = free_port()
    server = make_server("127.0.0.1", port, create_app(rt.runs, rt.steps, rt.pages, rt.act), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Served(f"http://127.0.0.1:{port}", db)
    server.shutdown()
    thread.join(timeout=10)
    rt.close()
