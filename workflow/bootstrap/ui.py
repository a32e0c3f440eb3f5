"""The run pages' runtime: what they read (the store's roles and its page reads) and how
their actions are done, on the embedded store (`--db`) or on the cloud runtime (`--cloud`).

Embedded, a cancel is handled here and now as `main.py cancel` does; a rerun or a resume
is executed in this process, in the background, until the run has nothing left to do.
On the cloud, every action is a request published on the control topic
(WORKFLOW_CONTROL_TOPIC), as the commands with `--cloud` publish it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from ..model.messages import CancelRun, Message, ReconcileRun, RerunRun
from ..model.records import RunRecord
from ..ports import RunPages, RunStore, StepStore, TaskRunner
from ..settings import Settings
from .cloud import DATABASE_ENV, PROJECT_ENV, database_of, project_of
from .control import control
from .embedded import EmbeddedRuntime, embedded

FOLLOW_EVERY = 0.2  # seconds between two looks at a background runtime


@dataclass
class UiRuntime:
    runs: RunStore
    steps: StepStore
    pages: RunPages
    act: Callable[[str, RunRecord, str], str]
    close: Callable[[], None] = lambda: None


def embedded_ui(db_path: str, runner: TaskRunner | None = None) -> UiRuntime:
    from ..adapters.embedded.sqlite_store import SqliteStateStore

    if db_path != ":memory:" and not os.path.exists(db_path):
        raise InputError(f"no run store at {db_path} (runs are recorded there by 'python main.py --dag-path ...')")
    store = SqliteStateStore(db_path)
    actions = EmbeddedActions(db_path, runner)

    def close() -> None:
        actions.close()
        store.close()

    return UiRuntime(store, store, store, actions, close)


@dataclass
class EmbeddedActions:
    db_path: str
    runner: TaskRunner | None = None
    running: list[EmbeddedRuntime] = field(default_factory=list)

    def __call__(self, action: str, run: RunRecord, from_step: str) -> str:
        if action == "cancel":
            rt = embedded(Settings(), jwt="none", db_path=self.db_path, workers=1)  # never calls the Task Runner
            try:
                rt.bus.publish([CancelRun(run.run_id, "run cancelled from the run page")])
                while not rt.bus.idle():
                    time.sleep(0.05)
            finally:
                rt.close()
            return "cancelled"
        message: Message = (RerunRun(run.run_id, len(run.reruns), from_step) if action == "rerun"
                            else ReconcileRun(run.run_id))
        rt = embedded(Settings.from_env(), self.runner, db_path=self.db_path)
        self.running.append(rt)
        rt.bus.publish([message])
        threading.Thread(target=self._follow, args=(rt, run.run_id), daemon=True).start()
        return f"{action} started"

    def _follow(self, rt: EmbeddedRuntime, run_id: str) -> None:
        """Close the runtime once the run has nothing left to do (or it was closed)."""
        while rt in self.running:
            time.sleep(FOLLOW_EVERY)
            run = rt.store.get_run(run_id)
            if rt.bus.idle() or (rt.bus.quiet() and run is not None and run.status.terminal):
                break
        if rt in self.running:
            self.running.remove(rt)
            rt.close()

    def close(self) -> None:
        while self.running:
            self.running.pop().close()


def cloud_ui(project: str = "", database: str = "") -> UiRuntime:
    """Firestore read with Application Default Credentials (or the emulator), requests
    published on the control topic; one Firestore client for the store and the page reads."""
    from google.auth import exceptions as auth_errors
    from google.cloud import firestore

    from ..adapters.gcp.firestore_pages import FirestorePages
    from ..adapters.gcp.firestore_store import FirestoreStateStore

    env = dict(os.environ)
    env.update({name: value for name, value in ((PROJECT_ENV, project), (DATABASE_ENV, database)) if value})
    try:
        client = firestore.Client(project=project_of(env), database=database_of(env))
    except auth_errors.DefaultCredentialsError:
        raise InputError("no Google credentials: run 'gcloud auth application-default login', or set "
                         "FIRESTORE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST for the emulators") from None
    store = FirestoreStateStore(client)
    ctl = control(env, store=store)

    def act(action: str, run: RunRecord, from_step: str) -> str:
        body: dict[str, Any] = {"action": action, "run_id": run.run_id}
        if action == "rerun":
            body["reruns"] = len(run.reruns)
            if from_step:
                body["from"] = from_step
        ctl.request(body)
        return f"{action} requested"

    return UiRuntime(store, store, FirestorePages(client), act, client.close)
