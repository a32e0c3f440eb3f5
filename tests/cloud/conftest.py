"""Fixtures for tests against the local cloud: emulators, functions, per-test unique names.

The emulators are started once per session on free loopback ports and stopped at the end
(also at interpreter exit and on SIGTERM/SIGHUP). Nothing is set in this process's
environment: `cloud_env` is the mapping to hand to functions and clients. A missing tool
skips the test with the install hint, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import pytest

from devtools.localcloud import emulators, functions, processes
from devtools.localcloud.processes import MissingTool
from devtools.localcloud.servers import Service

PROJECT = "localcloud-test"

T = TypeVar("T")


def in_ci() -> bool:
    """True when the CI environment variable says so (GitHub Actions, GitLab, ... set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require(start: Callable[[], T]) -> T:
    """Run `start`; on MissingTool skip the test, or fail it in CI."""
    try:
        return start()
    except MissingTool as err:
        message = str(err)
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _serve(start: Callable[[], Service]) -> Iterator[Service]:
    processes.install_signal_handlers()
    service = require(start)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def require_tool() -> Callable[[Callable[[], T]], T]:
    """`require_tool(start)`: run `start`, skipping (or failing in CI) on MissingTool."""
    return require


@pytest.fixture(scope="session")
def project() -> str:
    """The project id every emulator-backed test uses."""
    return PROJECT


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[Service]:
    """The session's Firestore emulator."""
    yield from _serve(lambda: emulators.start_firestore_emulator(PROJECT))


@pytest.fixture(scope="session")
def pubsub_emulator() -> Iterator[Service]:
    """The session's Pub/Sub emulator."""
    yield from _serve(lambda: emulators.start_pubsub_emulator(PROJECT))


@pytest.fixture(scope="session")
def storage_emulator() -> Iterator[Service]:
    """The session's GCS emulator (in memory)."""
    yield from _serve(emulators.start_storage_emulator)


@pytest.fixture(scope="session")
def cloud_env(firestore_emulator: Service, pubsub_emulator: Service, storage_emulator: Service) -> dict[str, str]:
    """The environment a function or client needs to use the three emulators."""
    return {
        "FIRESTORE_EMULATOR_HOST": firestore_emulator.host_port,
        "PUBSUB_EMULATOR_HOST": pubsub_emulator.host_port,
        "STORAGE_EMULATOR_HOST": storage_emulator.url,
        "GOOGLE_CLOUD_PROJECT": PROJECT,
    }


@pytest.fixture
def unique_id() -> Callable[[str], str]:
    """`unique_id(prefix)`: a fresh id, valid as a topic, subscription, collection or bucket."""

    def make(prefix: str = "t") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make


BUSY = "workflow.engine.context.Busy: "
"""What a duplicate delivery raises when it finds the other one at work: it is redelivered."""


@pytest.fixture
def tag(cloud: Any) -> Iterator[str]:
    """A tag unique to the test, for a module whose `cloud` fixture is a LocalCloud; the test
    fails if a function logged an error meanwhile (but Busy)."""
    before = len(cloud.function_errors())
    yield uuid.uuid4().hex[:12]
    errors = [e for e in cloud.function_errors()[before:] if BUSY not in e]
    assert not errors, "the functions logged errors:\n" + "\n".join(errors) + "\n" + cloud.log_tails(60)


@pytest.fixture
def start_function(cloud_env: dict[str, str]) -> Iterator[Callable[..., Service]]:
    """`start_function(source, target, **env)`: serve a function with `cloud_env` plus `env`.

    Every function started by a test is stopped when the test ends.
    """
    started: list[Service] = []

    def start(source: str | Path, target: str, **env: str) -> Service:
        merged = {**cloud_env, **env}
        service = require(lambda: functions.start_function(source, target, merged))
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="session")
def firestore_client(firestore_emulator: Service) -> Any:
    """A Firestore client bound to the emulator (the env var is only seen while it is built)."""
    from google.cloud import firestore

    with mock.patch.dict(os.environ, {"FIRESTORE_EMULATOR_HOST": firestore_emulator.host_port}):
        return firestore.Client(project=PROJECT)


@pytest.fixture(scope="session")
def storage_client(storage_emulator: Service) -> Any:
    """A google-cloud-storage client bound to the GCS emulator, anonymous."""
    from devtools.localcloud.eventarc import storage_client as make

    return make(storage_emulator.url, PROJECT)
