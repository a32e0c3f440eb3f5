"""Where the local cloud's emulators are, for `python -m devtools.localcloud status`, which
runs the command line's `runs --cloud` and `status --cloud` against them.

Where they are comes from the state file written by `up` (its `env`), else from the
environment (FIRESTORE_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT, as the `export` lines of
`up` set them). Only an emulator is ever read: without an emulator host this refuses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workflow.errors import InputError

from . import servers

EMULATOR_HOSTS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST")


@dataclass(frozen=True)
class Target:
    """Where the local cloud's Firestore is, and where that was learnt; `emulators` are the
    emulator variables a client needs (FIRESTORE_EMULATOR_HOST and, if known, PUBSUB_EMULATOR_HOST)."""

    host_port: str
    project: str
    origin: str
    emulators: dict[str, str] = field(default_factory=dict)


def read_state(path: Path) -> dict[str, Any] | None:
    """The state file written by `up`, or None when there is none; InputError if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot read the state file {path}: {exc.strerror or exc}") from exc
    try:
        state = json.loads(text)
    except ValueError as exc:
        raise InputError(f"the state file {path} is not JSON: {exc}") from exc
    if not isinstance(state, dict) or not isinstance(state.get("env"), dict):
        raise InputError(f"the state file {path} has no 'env' object: not written by 'up'")
    return state


def locate(state_file: Path, environ: Mapping[str, str]) -> Target:
    """The Firestore emulator of the state file, else of the environment; InputError if neither."""
    state = read_state(state_file)
    if state is not None:
        env = {str(k): str(v) for k, v in state["env"].items()}
        origin = f"state file {state_file}"
    else:
        env = dict(environ)
        origin = "environment"
    host = env.get("FIRESTORE_EMULATOR_HOST", "")
    project = env.get("GOOGLE_CLOUD_PROJECT", "")
    if not host or not project:
        raise InputError(
            f"no local cloud found: no state file {state_file}, and FIRESTORE_EMULATOR_HOST and "
            "GOOGLE_CLOUD_PROJECT are not both set; start one with 'python -m devtools.localcloud up'"
        )
    return Target(host, project, origin, {k: env[k] for k in EMULATOR_HOSTS if env.get(k)})


def check_answers(target: Target, timeout: float = 3.0) -> None:
    """InputError when the Firestore emulator does not answer."""
    if not servers.http_responds(f"http://{target.host_port}/", any_status=True, timeout=timeout):
        raise InputError(
            f"the Firestore emulator at {target.host_port} (from the {target.origin}) does not answer: "
            "is 'python -m devtools.localcloud up' still running?"
        )


def cli_arguments(run_id: str | None, *, watch: bool, interval: float, json_out: bool, target: Target) -> list[str]:
    """The command line's `status --cloud RUN_ID` (or `runs --cloud`) for the local cloud."""
    args = ["status", run_id] if run_id else ["runs"]
    args += ["--cloud", "--project", target.project]
    if watch:
        args += ["--watch", "--interval", f"{interval:g}"]
    return [*args, "--json"] if json_out else args
