"""Benchmark of the run pages: with 10,000 runs and one 1 -> 1000 -> 1 run in a SQLite
file, the server time (p50 and p95 of in-process requests through Flask's test client) and
the bytes of `/`, `/api/runs`, `/runs/<id>` and `/api/runs/<id>`; the store reads of a
refresh of a quiet run; in Chromium (when present) the time from navigation to the graph
drawn for the wide run; and on the Firestore emulator (when present) the document reads of
a RUNNING 1 -> 1000 -> 1 run's first load and of its refreshes, counted as Firestore bills
them. The runs are recorded by the tests' own helpers.
Usage: .venv/bin/python bench/ui_bench.py [--runs N] [--repeat N]"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from werkzeug.serving import make_server  # noqa: E402

from workflow.adapters.embedded.sqlite_store import SqliteStateStore  # noqa: E402
from workflow.bootstrap.ui import embedded_ui  # noqa: E402
from workflow.ui import create_app  # noqa: E402


def timed(client: Any, url: str, repeat: int) -> tuple[float, float, int]:
    """p50 and p95 milliseconds of `repeat` GETs of `url`, and its size in bytes."""
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        size = len(response.data)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], size


def browser_ms(app: Any, repeat: int) -> list[float] | None:
    kit = importlib.import_module("browserkit")
    path = kit.chromium_path()
    if path is None:
        return None
    from playwright.sync_api import sync_playwright

    support = importlib.import_module("support")
    port = support.free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    found = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=path, args=kit.CHROMIUM_FLAGS)
            page = browser.new_page()
            for _ in range(repeat):
                start = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/runs/wide-1")
                page.wait_for_selector("#graph g[data-node]")
                found.append((time.perf_counter() - start) * 1000)
            browser.close()
    finally:
        server.shutdown()
    return found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args()
    uikit = importlib.import_module("uikit")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "runs.sqlite3")
        store = SqliteStateStore(db)
        uikit.many(store, args.runs - 1, at=0.0)
        uikit.wide(store, at=float(args.runs))
        store.close()
        rt = embedded_ui(db)
        app = create_app(rt.runs, rt.steps, rt.pages, rt.act)
        client = app.test_client()
        print(f"run pages, SQLite file, {args.runs} runs and one 1-1000-1 run, commit {commit}, "
              f"{args.repeat} requests each")
        print(f"{'page':32} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>9}")
        for url in ("/", "/?status=FAILED", "/api/runs", "/runs/wide-1", "/api/runs/wide-1",
                    "/runs/wide-1?state=SUCCEEDED&page=10"):
            p50, p95, size = timed(client, url, args.repeat)
            print(f"{url:32} {p50:8.1f} {p95:8.1f} {size:9,}")
        before = rt.runs.ops  # type: ignore[attr-defined]
        quiet = client.get(f"/api/runs/wide-1/changes?since={time.time()}").get_json()
        print(f"refresh of a quiet run: {rt.runs.ops - before} store reads "  # type: ignore[attr-defined]
              f"(the run, one query of the steps moved since), {len(quiet['steps'])} steps sent")
        drawn = browser_ms(app, 5)
        if drawn is None:
            print("Chromium: not found, navigation not measured")
        else:
            print(f"Chromium, /runs/wide-1 navigation to graph drawn: p50 {statistics.median(drawn):.0f} ms "
                  f"(of {len(drawn)}: {', '.join(f'{d:.0f}' for d in drawn)})")
        rt.close()
    firestore_figures()


def firestore_figures() -> None:
    """The document reads of the pages on the Firestore emulator (`uikit.firestore_reads`)."""
    from google.cloud import firestore

    from devtools.localcloud import emulators
    from devtools.localcloud.processes import MissingTool

    try:
        emulator = emulators.start_firestore_emulator("ui-bench")
    except MissingTool as exc:
        print(f"Firestore emulator: not found ({exc}), reads not measured")
        return
    try:
        with mock.patch.dict(os.environ, {"FIRESTORE_EMULATOR_HOST": emulator.host_port}):
            client = firestore.Client(project="ui-bench")
        reads = importlib.import_module("uikit").firestore_reads(client)
        client.close()  # type: ignore[no-untyped-call]
    finally:
        emulator.stop()
    print(f"Firestore emulator, a RUNNING run of {reads['steps']} steps: first load {reads['first_load']} document "
          f"reads; refresh of the quiet run {reads['quiet']}; refresh after a step ended {reads['moved']} "
          f"({len(reads['moved_steps'])} step sent)")


if __name__ == "__main__":
    main()
