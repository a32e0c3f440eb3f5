"""The SlotStore: maxParallel slots held up to the limit, each release waking the longest waiting."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from workflow.model.records import Attempt
from workflow.model.states import RunStatus, StepState

from .builders import make_run


class SlotsContract:
    def test_slots_hold_the_limit_and_each_release_wakes_the_longest_waiting(self, store: Any) -> None:
        run_id = make_run(store, {f"s{i}": [] for i in range(5)})
        assert store.take_slot(run_id, "s0", 1, 2, 10.0) and store.take_slot(run_id, "s1", 1, 2, 11.0)
        assert store.take_slot(run_id, "s0", 1, 2, 12.0)  # held already: still one slot
        assert not store.take_slot(run_id, "s2", 1, 2, 13.0)
        assert not store.take_slot(run_id, "s3", 1, 2, 14.0)
        assert not store.take_slot(run_id, "s2", 1, 2, 15.0)  # keeps its place in the queue
        assert store.free_slot(run_id, "s0", 1) == "s2"
        assert store.free_slot(run_id, "s0", 1) == "s2"  # a repeated release names the same step
        assert store.take_slot(run_id, "s2", 1, 2, 16.0)
        assert not store.take_slot(run_id, "s4", 1, 2, 17.0)
        assert store.free_slot(run_id, "s1", 1) == "s3"
        assert store.take_slot(run_id, "s3", 1, 2, 18.0)
        assert store.free_slot(run_id, "s2", 1) == "s4" and store.free_slot(run_id, "s3", 1) is None
        assert store.take_slot(run_id, "s4", 1, 2, 19.0)

    def test_concurrent_takers_never_hold_more_slots_than_the_limit(self, store: Any) -> None:
        run_id = make_run(store, {f"s{i}": [] for i in range(12)})
        with ThreadPoolExecutor(8) as pool:  # every step twice, as two deliveries would
            got = list(pool.map(lambda i: store.take_slot(run_id, f"s{i % 12}", 1, 3, float(i)), range(24)))
        holders = {f"s{i % 12}" for i, won in enumerate(got) if won}
        assert len(holders) == 3

    def test_a_rerun_gives_back_the_slots_its_steps_held(self, store: Any) -> None:
        run_id = make_run(store, {"a": [], "b": []})
        assert store.take_slot(run_id, "a", 1, 1, 1.0) and not store.take_slot(run_id, "b", 1, 1, 2.0)
        store.end_steps(run_id, ["a", "b"], StepState.CANCELLED, "run cancelled", 3.0)  # a's slot is never released
        assert store.finish_run(run_id, RunStatus.CANCELLED, 3.0)
        again = [replace(s, state=StepState.PENDING, attempt=2, history=(Attempt(1, s.state),))
                 for s in store.list_steps(run_id)]
        assert store.rerun_steps(run_id, 0, again, 4.0)
        assert store.take_slot(run_id, "b", 2, 1, 5.0) and not store.take_slot(run_id, "a", 2, 1, 6.0)
