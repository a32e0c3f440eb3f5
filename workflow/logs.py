"""Logging set-up: text for the CLI, one JSON object per line (with severity) on Cloud Functions."""

from __future__ import annotations

import json
import logging
import os
import sys

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
    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(f"{k}={getattr(record, k)}" for k in _IDS if getattr(record, k, ""))
        base = f"{record.levelname.lower()}: {record.getMessage()}"
        text = f"{base} [{ids}]" if ids else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(level: int = logging.WARNING, json_format: bool | None = None) -> None:
    """Idempotent; JSON when `LOG_FORMAT=json` unless told otherwise."""
    if json_format is None:
        json_format = os.environ.get("LOG_FORMAT", "").lower() == "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
