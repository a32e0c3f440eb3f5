"""The run pages on the cloud runtime: what they read on the Firestore emulator, counted as
Firestore bills it; and the `run_pages` function of `main.py` on the local cloud, driving a
run there over HTTP (its page, its steps, a cancel with the page's token, one without)."""

from __future__ import annotations

from typing import Any

import pytest
from uikit import firestore_reads

pytestmark = pytest.mark.cloud


def test_a_quiet_running_run_costs_two_reads_a_refresh_and_its_first_load_each_step_once(
    firestore_client: Any, record_property: Any
) -> None:
    reads = firestore_reads(firestore_client)
    for key in ("first_load", "quiet", "moved"):
        record_property(f"run_pages_reads_{key}", reads[key])
    # The page: the run's document, its counter shards' sum and latest shard (3), each step once.
    assert reads["first_load"] == reads["steps"] + 3 == 1_005
    # A refresh while nothing moved: the run's document and the query's empty answer.
    assert reads["quiet"] == 2 and reads["quiet_counts"] is None
    # Once a step ended: the same two (the answer now holds the step), then the run again
    # with its counts (3): reads grow with what moved, never with the run's width.
    assert reads["moved_steps"] == ["split"] and reads["counts"]["SUCCEEDED"] == 1
    assert reads["moved"] == 2 + 3
