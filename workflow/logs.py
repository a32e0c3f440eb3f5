"""Logging set-up: text for the CLI, one JSON object per line (with severity) on Cloud Functions."""

from __future__ import annotations

import json
import logging
import os
import sys

from .model.text import printable

_IDS = ("run_id", "step_id")


class JsonFormatter(logging.Formatter):
    """Cloud Logging's structured form: `severity`, `message` and the run and step ids."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"severity": record.levelname, "message": record.getMessage(), "logger": record.name}
        for key in _IDS:
            value = getattr(record, key, "")
            if value:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    """One line per record for a terminal: what came from outside (a Task Runner's message,
    a DAG's names) has its control characters escaped (`text.printable`)."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={printable(str(getattr(record, k)))}" for k in _IDS if getattr(record, k, ""))
        base = f"{record.levelname.lower()}: {printable(record.getMessage())}"
        text = f"{base} [{ids}]" if ids else base
        if record.exc_info:
            text += "\n" + "\n".join(printable(line) for line in self.formatException(record.exc_info).splitlines())
        return text


_URLLIB3_RETRY_MARK = "__urllib3-retry-warning"


def _not_a_library_retry(record: logging.LogRecord) -> bool:
    return not hasattr(record, _URLLIB3_RETRY_MARK)


def quiet_library_retries() -> None:
    """Drop urllib3's own "Retrying (Retry(total=..." (the Task Runner client logs its waits)
    and no other urllib3 warning. Idempotent."""
    logger = logging.getLogger("urllib3.connectionpool")
    if _not_a_library_retry not in logger.filters:
        logger.addFilter(_not_a_library_retry)


def configure(level: int = logging.WARNING, json_format: bool | None = None) -> None:
    """Idempotent; JSON when `LOG_FORMAT=json` unless told otherwise."""
    if json_format is None:
        json_format = os.environ.get("LOG_FORMAT", "").lower() == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
