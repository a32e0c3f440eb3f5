"""How the local cloud's pieces connect, as a deployment connects them: topics, triggers,
the functions' configuration, and starting servers all together or not at all."""

from __future__ import annotations

import importlib.util
import logging
import shutil
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from . import emulators, functions, pubsub_wiring
from .processes import MissingTool
from .servers import Service

LOG = logging.getLogger(__name__)

DEFAULT_PROJECT = "localcloud"
START_TOPIC = "workflow-start"
CONTROL_TOPIC = "workflow-run-control"  # cancel, rerun and resume requests (the control route)
ENGINE_TOPIC = "workflow-engine"
DEAD_LETTER_TOPIC = "workflow-dead-letter"
EVENTS_TOPIC = "workflow-events"  # run-ended events, for subscribers outside the executor
MAX_DELIVERY_ATTEMPTS = 10
DEFAULT_SWEEP_EVERY = 30.0
MAX_POLL = 15.0
"""Above this a check, refused while early and redelivered every ~1 s, runs out of delivery attempts."""
FUNCTION_SOURCE = "main.py"
COUNTED_SOURCE = "devtools/localcloud/counted_main.py"
"""`main.py`'s functions, counting their Firestore operations and messages (`count_ops`)."""
UPLOAD_TARGET = "on_dag_uploaded"
START_TARGET = "on_start_message"
ENGINE_TARGET = "on_engine_message"
HTTP_START_TARGET = "on_start_request"
CONTROL_TARGET = "on_control_message"
HTTP_CONTROL_TARGET = "on_control_request"
TARGETS = (UPLOAD_TARGET, START_TARGET, ENGINE_TARGET, HTTP_START_TARGET, CONTROL_TARGET, HTTP_CONTROL_TARGET)
PAGES_TARGET = "run_pages"
"""The run pages (terraform/ui.tf's function), served beside TARGETS when asked (`pages`)."""
SIGNATURE_TYPES = {HTTP_START_TARGET: "http", HTTP_CONTROL_TARGET: "http", PAGES_TARGET: "http"}  # others: CloudEvents


def require_tools() -> None:
    """Raise MissingTool (saying how to install it) for the first tool the stack lacks."""
    emulators.emulator_launcher("cloud-firestore-emulator", emulators.FIRESTORE_LAUNCHER)
    emulators.emulator_launcher("pubsub-emulator", emulators.PUBSUB_LAUNCHER)
    for module, script, hint in (
        ("gcp_storage_emulator", "gcp-storage-emulator", emulators.STORAGE_HINT),
        ("functions_framework", "functions-framework", functions.FUNCTIONS_HINT),
    ):
        if importlib.util.find_spec(module) is None and shutil.which(script) is None:
            raise MissingTool(script, hint)


def pages_env(env: Mapping[str, str], secret: str) -> dict[str, str]:
    """The run pages' environment, as terraform/ui.tf configures them: the emulators (`env`),
    the topic their actions publish on, and the key of their action tokens."""
    return {**env, "WORKFLOW_CONTROL_TOPIC": CONTROL_TOPIC, "WORKFLOW_UI_SECRET": secret, "LOG_FORMAT": "json",
            "WORKFLOW_FIRESTORE_DATABASE": "", "WORKFLOW_UI_ORIGINS": ""}  # blank what this process may set


def generate_token_key() -> str:
    """A fresh WORKFLOW_TOKEN_KEY (a Fernet key) for the functions."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def wire_topics(
    project: str,
    host: str,
    start_url: str,
    engine_url: str,
    engine_deliveries: int,
    retry_backoff: tuple[float, float] | None,
    control_url: str,
) -> list[pubsub_wiring.PushTrigger]:
    """Create the events topic and push triggers as Eventarc would: the start topic to
    `start_url`, the control topic to `control_url`, the engine topic to `engine_url`
    through `engine_deliveries` subscriptions, each dead-lettering after MAX_DELIVERY_ATTEMPTS."""
    common: dict[str, Any] = {
        "host": host,
        "dead_letter_topic_id": DEAD_LETTER_TOPIC,
        "max_delivery_attempts": MAX_DELIVERY_ATTEMPTS,
        "retry_backoff": retry_backoff,
    }
    pubsub_wiring.ensure_topic(pubsub_wiring.topic_admin(host), project, EVENTS_TOPIC)
    triggers = [pubsub_wiring.wire_push_trigger(project, START_TOPIC, start_url, **common),
                pubsub_wiring.wire_push_trigger(project, CONTROL_TOPIC, control_url, **common)]
    for n in range(1, engine_deliveries + 1):
        subscription = f"{ENGINE_TOPIC}-push" if n == 1 else f"{ENGINE_TOPIC}-push-{n}"
        triggers.append(
            pubsub_wiring.wire_push_trigger(project, ENGINE_TOPIC, engine_url, subscription_id=subscription, **common)
        )
    return triggers


def all_or_nothing(starters: list[Callable[[], Service]]) -> list[Service]:
    """Run the starters concurrently; if one fails (or this thread is interrupted), stop every
    server that started, also one whose start completes later, and raise."""
    pool = ThreadPoolExecutor(len(starters), thread_name_prefix="localcloud-start")
    futures: list[Future[Service]] = [pool.submit(start) for start in starters]
    try:
        wait(futures)
        failed = [e for e in (f.exception() for f in futures) if e is not None]
        if failed:
            raise failed[0]
        return [f.result() for f in futures]
    except BaseException:
        for future in futures:
            future.add_done_callback(_stop_started)
        raise
    finally:
        pool.shutdown(wait=False)


def _stop_started(future: Future[Service]) -> None:
    if not future.cancelled() and future.exception() is None:
        quietly("a started server", future.result().stop)


def quietly(what: str, action: Callable[[], object]) -> None:
    """Run `action` (stopping `what`), logging instead of raising an exception."""
    try:
        action()
    except Exception:  # stopping one piece must not keep the others running
        LOG.exception("could not stop %s", what)
