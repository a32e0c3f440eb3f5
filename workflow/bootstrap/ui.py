"""The run pages' runtime on the embedded store (`main.py ui --db`): what they read (the
store's roles and its page reads) and how their actions are done. A cancel is handled here
and now as `main.py cancel` does; a rerun or a resume is executed in this process, in the
background, until the run has nothing left to do. On the cloud runtime: `cloud_pages`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from ..errors import InputError
from ..model.messages import CancelRun, Message, ReconcileRun, RerunRun
from ..model.records import RunRecord
from ..ports import TaskRunner
from ..settings import Settings
from .cloud_pages import UiRuntime
from .embedded import EmbeddedRuntime, embedded

FOLLOW_EVERY = 0.2  # seconds between two looks at a background runtime


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
