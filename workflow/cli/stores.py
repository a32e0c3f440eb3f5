"""The runs a command reads or acts on: the SQLite store at --db, and a run by its id."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

from ..adapters.embedded.sqlite_store import SqliteStateStore
from ..errors import InputError
from ..model.records import RunRecord, StepRecord
from ..ports import StateStore
from .options import prog


@contextmanager
def open_store(path: str) -> Iterator[SqliteStateStore]:
    """The SQLite store at `path`, which must exist; closed after use."""
    if path != ":memory:" and not os.path.exists(path):
        raise InputError(f"no run store at {path} (runs are recorded there by '{prog('run')} DAG_PATH ...')")
    store = SqliteStateStore(path)
    try:
        yield store
    finally:
        store.close()


def existing(store: StateStore, args: argparse.Namespace, where: str) -> tuple[RunRecord, list[StepRecord]]:
    """The run and its steps; InputError if there is no such run, or no such --from step."""
    run = store.runs.get_run(args.run_id)
    if run is None:
        raise no_run(args, where)
    steps = store.steps.list_steps(args.run_id)
    if getattr(args, "from_step", "") and args.from_step not in {s.step_id for s in steps}:
        raise InputError(f"run {run.run_id} has no step {args.from_step!r}")
    return run, steps


def no_run(args: argparse.Namespace, where: str) -> InputError:
    lister = prog("runs --cloud") if args.cloud else prog("runs")
    return InputError(f"no run {args.run_id!r} in {where} ('{lister}' lists them)")
