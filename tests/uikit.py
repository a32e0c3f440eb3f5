"""Runs for the run pages' tests, recorded by the engine in a SQLite store: a fork-join
with a failure (its message holding markup), a 1 -> 1000 -> 1 fan-out, a run left RUNNING,
and many small runs; and what the pages read on Firestore, counted (`firestore_reads`)."""

from __future__ import annotations

from typing import Any

from enginekit import Harness, ScriptedRunner, dag
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.model.dag import Dag
from workflow.model.inputs import RunInputs
from workflow.model.messages import StartRun
from workflow.model.records import RunRecord
from workflow.model.states import RunStatus
from workflow.settings import Settings

MARKUP = '<b id="injected">bold</b><img src=x id="injected-img"><script>window.pwned = 1</script>'
SEALED = "sealed-tr-auth-SECRET"  # a step's credential: never shown
WIDE = 1000


def record(store: SqliteStateStore, run_id: str, the_dag: Dag, runner: ScriptedRunner, *,
           at: float = 1000.0, until: float | None = None, poll: float = 0.0,
           inputs: RunInputs | None = None) -> Harness:
    """Run `the_dag` through the engine into `store` (to its end, or until `until` on the harness clock)."""
    h = Harness(runner=runner, store=store, settings=Settings(poll_interval=poll), now=at)
    h.bus.publish([StartRun(run_id, the_dag, "http://runner", source="dags/x.yaml", tr_auth=SEALED,
                            inputs=inputs or RunInputs())])
    h.drain(until=until if until is not None else float("inf"))
    return h


def fork_join(store: SqliteStateStore, run_id: str = "fork-join-1", at: float = 1000.0,
              message: str | None = MARKUP) -> None:
    """prepare -> (left, right) -> join; right fails with `message` (by default one holding
    markup; None: the Task Runner's usual, "exit 1"), join is skipped."""
    spec = {"prepare": [], "left": ["prepare"], "right": ["prepare"], "join": ["left", "right"]}
    record(store, run_id, dag(spec, name="fork-join", images={"right": "img/error"}),
           ScriptedRunner(message=message), at=at)


def fan(width: int = WIDE) -> dict[str, list[str]]:
    """split -> train-0000.. -> merge, as {step: its dependencies}."""
    trains = [f"train-{i:04d}" for i in range(width)]
    return {"split": [], **{t: ["split"] for t in trains}, "merge": trains}


def wide(store: SqliteStateStore, run_id: str = "wide-1", at: float = 2000.0) -> None:
    """split -> train-0000..0999 -> merge; train-0007 fails, so merge is skipped."""
    spec = fan()
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


def firestore_reads(client: Any) -> dict[str, Any]:
    """The document reads of the run pages on Firestore (`client`: the emulator's), counted
    as Firestore bills them (`devtools.localcloud.op_counts`), for a RUNNING 1 -> 1000 -> 1
    run recorded directly: its page's first load (`first_load`), a refresh while nothing
    moved (`quiet`), and one after its first step ended (`moved`, with `moved_steps`, the
    step ids the refresh sent, and `counts`, the run's counts it read)."""
    from devtools.localcloud.op_counts import counting
    from store_contract import make_run, ok
    from workflow.adapters.gcp.firestore_pages import FirestorePages
    from workflow.adapters.gcp.firestore_store import FirestoreStateStore
    from workflow.ui import create_app

    store = FirestoreStateStore(client)
    run_id = make_run(store, fan())  # created at 1.0, every step PENDING

    def refused(*_: Any) -> str:
        raise AssertionError("no action is taken here")

    pages = create_app(store, store, FirestorePages(client), refused, secret=b"k").test_client()
    with counting() as first:
        assert pages.get(f"/runs/{run_id}").status_code == 200
    with counting() as quiet:
        still = pages.get(f"/api/runs/{run_id}/changes?since=10").get_json()
    assert still["steps"] == [], still["steps"]
    store.complete_step(run_id, "split", ok(at=20.0))
    with counting() as moved:
        after = pages.get(f"/api/runs/{run_id}/changes?since=10").get_json()
    return {"run_id": run_id, "steps": len(fan()), "first_load": first.reads, "quiet": quiet.reads,
            "moved": moved.reads, "moved_steps": [s["step_id"] for s in after["steps"]],
            "counts": after["run"]["counts"], "quiet_counts": still["run"]["counts"]}
