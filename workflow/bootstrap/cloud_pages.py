"""The run pages' runtime on the cloud: what they read (Firestore: the store's roles and the
page reads, one client) and how their actions are done (a request published on the control
topic, as the command line's `--cloud` commands publish it). Served by `main.py ui --cloud`
with the user's credentials, and by the `run_pages` function of `main.py` with its own."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..model.records import RunRecord
from ..ports import RunPages, RunStore, StepStore
from .cloud import DATABASE_ENV, PROJECT_ENV, database_of, project_of
from .control import control


@dataclass
class UiRuntime:
    runs: RunStore
    steps: StepStore
    pages: RunPages
    act: Callable[[str, RunRecord, str], str]
    close: Callable[[], None] = lambda: None
    where: str = ""  # the command-line options naming the same store, for the commands shown


def cloud_ui(project: str = "", database: str = "", env: Mapping[str, str] | None = None) -> UiRuntime:
    """Firestore read with Application Default Credentials (or the emulator), requests
    published on the control topic (WORKFLOW_CONTROL_TOPIC, as `control` names it). `project`
    and `database` override GOOGLE_CLOUD_PROJECT and WORKFLOW_FIRESTORE_DATABASE of `env`
    (default: this process's environment)."""
    from google.auth import exceptions as auth_errors
    from google.cloud import firestore

    from ..adapters.gcp.firestore_pages import FirestorePages
    from ..adapters.gcp.firestore_store import FirestoreStateStore

    env = dict(os.environ if env is None else env)
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

    where = " ".join(["--cloud", "--project", project_of(env),
                      *(["--database", database_of(env)] if database_of(env) != "(default)" else [])])
    return UiRuntime(store, store, FirestorePages(client), act, client.close, where)
