"""The functions of the local cloud: `main.py`'s targets, each under its own functions-framework."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from .servers import LOOPBACK, Service, launch, python_module_argv

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding the `workflow` package: functions run with it as cwd and on PYTHONPATH."""
FUNCTIONS_HINT = "pip install functions-framework"


def function_source(source: str | Path, root: Path = REPO_ROOT) -> Path:
    """The file functions-framework loads: `source` itself, or `source/main.py` for a directory.

    A relative `source` is taken from `root`.
    """
    path = Path(source)
    if not path.is_absolute():
        path = root / path
    if path.is_dir():
        path = path / "main.py"
    if not path.is_file():
        raise FileNotFoundError(f"function source {path} does not exist")
    return path


def start_function(
    source: str | Path,
    target: str,
    env: Mapping[str, str] | None = None,
    *,
    signature_type: str = "cloudevent",
    cwd: Path = REPO_ROOT,
    timeout: float = 30.0,
    port: int | None = None,
) -> Service:
    """Serve `target` of `source` with functions-framework on a free loopback port (or on
    `port`: a restart where the triggers already point).

    It runs with `cwd` (the repository root by default) as working directory and on
    PYTHONPATH, with the current environment plus `env` (which wins). Ready means the
    module was imported and the server answers HTTP.
    """
    path = function_source(source, cwd)
    base = python_module_argv("functions_framework", "functions-framework", FUNCTIONS_HINT)
    merged = _function_env(env or {}, cwd)

    def argv(port: int) -> list[str]:
        return [
            *base,
            f"--source={path}",
            f"--target={target}",
            f"--signature-type={signature_type}",
            f"--host={LOOPBACK}",
            f"--port={port}",
        ]

    name = f"function-{target}"
    process, bound, seconds = launch(name, argv, "/robots.txt", timeout=timeout, any_status=True, cwd=cwd,
                                      env=merged, port=port)
    return Service(name, LOOPBACK, bound, process, seconds, dict(env or {}), merged.get("GOOGLE_CLOUD_PROJECT"))


def _function_env(extra: Mapping[str, str], root: Path) -> dict[str, str]:
    merged = dict(os.environ)
    merged.update(extra)
    paths = [str(root), *filter(None, merged.get("PYTHONPATH", "").split(os.pathsep))]
    merged["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    merged.setdefault("PYTHONUNBUFFERED", "1")
    return merged


def error_summary(line: str) -> str | None:
    """For a function's log line at ERROR or above (or a traceback's start): its message and the
    exception raised (the last line of the traceback); None for any other line."""
    if line.startswith("Traceback"):
        return line
    if not line.startswith("{"):
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("severity") not in ("ERROR", "CRITICAL"):
        return None
    summary = str(entry.get("message", ""))
    trace = str(entry.get("exception") or "").strip()
    if trace:
        summary += " | " + trace.splitlines()[-1]
    return summary


def logged_errors(served: Mapping[str, Service]) -> list[str]:
    """The lines of the served functions' logs (by target) at ERROR or above, or with a
    traceback, each as `target: summary`."""
    found: list[str] = []
    for target, service in served.items():
        try:
            text = service.process.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            found.append(f"{target}: log unreadable: {err}")
            continue
        found += [f"{target}: {summary}" for line in text.splitlines() if (summary := error_summary(line))]
    return found
