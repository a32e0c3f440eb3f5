"""Runs for the run pages' tests, recorded by the engine in a SQLite store: a fork-join
with a failure (its message holding markup), a 1 -> 1000 -> 1 fan-out, a run left RUNNING,
and many small runs."""

from __future__ import annotations

from enginekit import Harness, ScriptedRunner, dag
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.model.dag import Dag
from workflow.model.messages import StartRun
from workflow.model.records import RunRecord
from workflow.model.states import RunStatus
from workflow.settings import Settings

MARKUP = '<b id="injected">bold</b><img src=x id="injected-img"><script>window.pwned = 1</script>'
SEALED = "sealed-tr-auth-SECRET"  # a step's credential: never shown
WIDE = 1000


def record(store: SqliteStateStore, run_id: str, the_dag: Dag, runner: ScriptedRunner, *,
           at: float = 1000.0, until: float | None = None, poll: float = 0.0) -> Harness:
    """Run `the_dag` through the engine into `store` (to its end, or until `until` on the harness clock)."""
    h = Harness(runner=runner, store=store, settings=Settings(poll_interval=poll), now=at)
    h.bus.publish([StartRun(run_id, the_dag, "http://runner", source="dags/x.yaml", tr_auth=SEALED)])
    h.drain(until=until if until is not None else float("inf"))
    return h


def fork_join(store: SqliteStateStore, run_id: str = "fork-join-1", at: float = 1000.0,
              message: str | None = MARKUP) -> None:
    """prepare -> (left, right) -> join; right fails with `message` (by default one holding
    markup; None: the Task Runner's usual, "exit 1"), join is skipped."""
    spec = {"prepare": [], "left": ["prepare"], "right": ["prepare"], "join": ["left", "right"]}
    record(store, run_id, dag(spec, name="fork-join", images={"right": "img/error"}),
           ScriptedRunner(message=message), at=at)


def wide(store: SqliteStateStore, run_id: str = "wide-1", at: float = 2000.0) -> None:
    """split -> train-0000..0999 -> merge; train-0007 fails, so merge is skipped."""
    spec: dict[str, list[str]] = {"split": []}
    spec.update({f"train-{i:04d}": ["split"] for i in range(WIDE)})
    spec["merge"] = [f"train-{i:04d}" for i in range(WIDE)]
    images = {f"train-{i:04d}": "img/train" for i in range(WIDE)}
    record(store, run_id, dag(spec, name="wide", images=images), ScriptedRunner(fail_first={"train-0007": 1}), at=at)


def running(store: SqliteStateStore, run_id: str = "running-1", at: float = 3000.0) -> Harness:
    """first -> (a, b) -> last, left with a and b RUNNING (their jobs never end)."""
    spec = {"first": [], "a": ["first"], "b": ["first"], "last": ["a", "b"]}
    runner = ScriptedRunner(checks=1)
    h = record(store, run_id, dag(spec, name="running"), runner, at=at, until=at + 1.5, poll=5.0)  # first ends at +1
    runner.checks = 10**9
    h.drain(until=at + 12.0)
    return h


def filled(path: str, small_runs: int) -> None:
    """A store at `path` with `small_runs` small runs, a fork-join, a wide run and a run left RUNNING."""
    store = SqliteStateStore(path)
    many(store, small_runs)
    fork_join(store)
    wide(store)
    running(store)
    store.close()


def many(store: SqliteStateStore, n: int, at: float = 100.0, steps: int = 3) -> None:
    """`n` ended runs recorded directly (no steps), one second apart, every fifth FAILED."""
    for i in range(n):
        status = RunStatus.FAILED if i % 5 == 0 else RunStatus.SUCCEEDED
        store.create_run(RunRecord(f"run-{i:05d}", status, "http://runner", dag_name=f"dag-{i % 7}",
                                   source="dags/x.yaml", created_at=at + i, finished_at=at + i + 0.5,
                                   step_count=steps), [])
