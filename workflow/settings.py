"""Engine settings and the environment variables that set them."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import InputError
from .model.text import excerpt
from .model.urls import origin_of

POLL_ENV = "WORKFLOW_CHECK_STATE_DURATION_SEC"
TIMEOUT_ENV = "WORKFLOW_STEP_TIMEOUT_SEC"
STALE_AFTER_ENV = "WORKFLOW_STALE_AFTER_SEC"
DEFAULT_STALE_AFTER_SEC = 900.0
SUBMIT_LEASE_ENV = "WORKFLOW_SUBMIT_LEASE_SEC"
DEFAULT_SUBMIT_LEASE_SEC = 600.0
DEFAULT_POLL_SEC = 10.0
MAX_INLINE_WAIT_ENV = "WORKFLOW_MAX_INLINE_WAIT_SEC"
DEFAULT_MAX_INLINE_WAIT_SEC = 8.0  # below the 10 s ack deadline Eventarc gives a new subscription
DEFAULT_STEP_TIMEOUT_SEC = 10 * 3600.0
SWEEP_LIMIT_ENV = "WORKFLOW_SWEEP_LIMIT"
DEFAULT_SWEEP_LIMIT = 100
MAX_SWEEP_LIMIT = 1_000


@dataclass(frozen=True)
class Settings:
    poll_interval: float = DEFAULT_POLL_SEC  # seconds between two checks of a running job
    step_timeout: float = DEFAULT_STEP_TIMEOUT_SEC  # from submission; then the step FAILS
    # A submission claimed longer ago, with no job recorded, is taken as lost: above the
    # HTTP client's worst case for one submission (6 tries of 35 s and 5 waits of 30 s).
    submit_lease: float = DEFAULT_SUBMIT_LEASE_SEC
    check_lease: float = 60.0  # likewise for scheduling the next check of a job
    # A run with no sign of progress for this long is reconciled by the sweep; running
    # jobs' checks show they are alive about three times in that span.
    stale_after: float = DEFAULT_STALE_AFTER_SEC
    sweep_limit: int = DEFAULT_SWEEP_LIMIT  # runs one sweep reconciles at most

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment; an invalid value raises InputError naming the variable."""
        env = os.environ if env is None else env
        return cls(
            poll_interval=seconds(env, POLL_ENV, DEFAULT_POLL_SEC, allow_zero=True),
            step_timeout=seconds(env, TIMEOUT_ENV, DEFAULT_STEP_TIMEOUT_SEC, allow_zero=False),
            stale_after=seconds(env, STALE_AFTER_ENV, DEFAULT_STALE_AFTER_SEC, allow_zero=False),
            submit_lease=seconds(env, SUBMIT_LEASE_ENV, DEFAULT_SUBMIT_LEASE_SEC, allow_zero=False),
            sweep_limit=_count(env, SWEEP_LIMIT_ENV, DEFAULT_SWEEP_LIMIT, MAX_SWEEP_LIMIT),
        )


def _count(env: Mapping[str, str], name: str, default: int, most: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise InputError(f"{name}={excerpt(raw, 40)!r}: must be a whole number from 1 to {most:,}")
    return int(raw)


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


TR_URL_ENV = "WORKFLOW_TR_URL"
ALLOWED_ORIGINS_ENV = "WORKFLOW_ALLOWED_TR_ORIGINS"
ALLOW_HTTP_ENV = "WORKFLOW_ALLOW_HTTP_TR"
DAG_BUCKETS_ENV = "WORKFLOW_DAG_BUCKETS"
DAG_PREFIX_ENV = "WORKFLOW_DAG_PREFIX"
RUN_ADMINS_ENV = "WORKFLOW_RUN_ADMINS"
REPLACING_SCHEDULES_ENV = "WORKFLOW_REPLACING_SCHEDULES"  # the schedules whose tick cancels their running run
MAX_TR_URL = 2_048
DAG_EXTENSIONS = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class EdgeSettings:
    """What the cloud functions accept from outside (docs/security.md): the Task Runner
    origins (default: the origin of `default_tr_url`), the buckets of a `dag_path`, and
    who may cancel, rerun or resume any run over HTTP (`run_admins`, emails in lower case;
    any other caller only the runs it started)."""

    default_tr_url: str = ""
    allowed_tr_origins: frozenset[str] = frozenset()
    allow_http_tr: bool = False
    dag_buckets: frozenset[str] = frozenset()
    dag_prefix: str = "dags/"
    max_inline_wait: float = DEFAULT_MAX_INLINE_WAIT_SEC  # a delayed message due later is handed back
    run_admins: frozenset[str] = frozenset()
    replacing_schedules: frozenset[str] = frozenset()  # `concurrency: replace` in the deployment's schedules

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EdgeSettings:
        """Read the environment; a malformed origin raises InputError naming the variable."""
        env = os.environ if env is None else env
        default = env.get(TR_URL_ENV, "").strip()
        listed = _listed(env.get(ALLOWED_ORIGINS_ENV, ""))
        origins = [_origin(o, ALLOWED_ORIGINS_ENV) for o in listed] if listed else (
            [_origin(default, TR_URL_ENV, strict=False)] if default else [])
        return cls(
            default_tr_url=default,
            allowed_tr_origins=frozenset(origins),
            allow_http_tr=env.get(ALLOW_HTTP_ENV, "").strip() == "1",
            dag_buckets=frozenset(_listed(env.get(DAG_BUCKETS_ENV, ""))),
            dag_prefix=env.get(DAG_PREFIX_ENV, "dags/"),
            max_inline_wait=seconds(env, MAX_INLINE_WAIT_ENV, DEFAULT_MAX_INLINE_WAIT_SEC, allow_zero=True),
            run_admins=frozenset(_email(e, RUN_ADMINS_ENV) for e in _listed(env.get(RUN_ADMINS_ENV, ""))),
            replacing_schedules=frozenset(_listed(env.get(REPLACING_SCHEDULES_ENV, ""))),
        )

    def tr_url_problems(self, url: Any, where: str) -> list[str]:
        """Why the functions must not send requests (with their identity's token) to `url`."""
        if not isinstance(url, str):
            return [f"{where} must be a string, not {type(url).__name__}"]
        if len(url) > MAX_TR_URL:
            return [f"{where} is {len(url):,} characters long (at most {MAX_TR_URL:,})"]
        try:
            parts = urlsplit(url)
            _ = parts.port
        except ValueError:
            parts = None
        if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return [f"no usable Task Runner URL in {where} ({excerpt(url, 100)!r}): set {TR_URL_ENV}, or "
                    "tr_hostname in the start message, or the object's metadata tr_url"]
        if "@" in parts.netloc:
            return [f"{where}: a Task Runner URL with userinfo (user@host) is refused"]
        origin = excerpt(origin_of(url), 300)
        problems = []
        if origin_of(url) not in self.allowed_tr_origins:
            allowed = ", ".join(sorted(self.allowed_tr_origins)) or "none"
            problems.append(f"{where}: Task Runner origin {origin} is not allowed ({ALLOWED_ORIGINS_ENV}: {allowed})")
        if parts.scheme.lower() == "http" and not self.allow_http_tr:
            problems.append(f"{where}: Task Runner origin {origin} is plain http, refused ({ALLOW_HTTP_ENV}=1 "
                            "allows it, for local use only)")
        return problems


def _listed(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


def _email(value: str, name: str) -> str:
    """`value` in lower case if it is an email address; InputError naming `name` otherwise."""
    local, at, domain = value.partition("@")
    if not (local and at and domain) or "@" in domain or ":" in local or any(c.isspace() for c in value):
        raise InputError(f"{name}: {excerpt(value, 100)!r} is not an email address (list emails, "
                         "without user: or serviceAccount:, separated by commas)")
    return value.lower()


def _origin(url: str, name: str, *, strict: bool = True) -> str:
    """`scheme://host[:port]` of `url`, lower-cased; InputError naming `name` if it is not one."""
    try:
        parts = urlsplit(url)
        origin = origin_of(url)
    except ValueError:
        raise InputError(f"{name}: {url!r} is not a URL") from None
    extra = parts.username is not None or (strict and parts.path not in ("", "/")) or parts.query or parts.fragment
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or extra:
        shape = "scheme://host[:port]" if strict else "an http(s) URL without userinfo"
        raise InputError(f"{name}: {url!r} is not {shape}")
    return origin
