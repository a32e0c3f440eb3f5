"""Engine settings and the environment variables that set them."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InputError

POLL_ENV = "WORKFLOW_CHECK_STATE_DURATION_SEC"
TIMEOUT_ENV = "WORKFLOW_STEP_TIMEOUT_SEC"
DEFAULT_POLL_SEC = 10.0
DEFAULT_STEP_TIMEOUT_SEC = 10 * 3600.0


@dataclass(frozen=True)
class Settings:
    poll_interval: float = DEFAULT_POLL_SEC  # seconds between two checks of a running job
    step_timeout: float = DEFAULT_STEP_TIMEOUT_SEC  # from submission; then the step FAILS
    submit_lease: float = 300.0  # a submission claimed longer ago, with no job recorded, is taken as lost
    check_lease: float = 60.0  # likewise for scheduling the next check of a job

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment; an invalid value raises InputError naming the variable."""
        env = os.environ if env is None else env
        return cls(
            poll_interval=seconds(env, POLL_ENV, DEFAULT_POLL_SEC, allow_zero=True),
            step_timeout=seconds(env, TIMEOUT_ENV, DEFAULT_STEP_TIMEOUT_SEC, allow_zero=False),
        )


def seconds(env: Mapping[str, str], name: str, default: float, *, allow_zero: bool) -> float:
    raw = env.get(name, "").strip()
    return parse_seconds(raw, name, allow_zero=allow_zero) if raw else default


def parse_seconds(raw: str, name: str, *, allow_zero: bool) -> float:
    """A duration in seconds; InputError naming `name` unless finite and >= 0 (> 0)."""
    shown = f"{name}={raw!r}" if name else repr(raw)
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{shown} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{shown}: must be a finite number of seconds {bound}")
    return value


def seconds_arg(raw: str) -> float:
    """An argparse `type`: a finite number of seconds >= 0."""
    try:
        return parse_seconds(raw, "", allow_zero=True)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
