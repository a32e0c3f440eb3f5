"""Bounded, secret-free text: what may be stored, logged or printed of outside input."""

from __future__ import annotations

from collections.abc import Iterable

MESSAGE_LIMIT = 2000
"""Characters of a step message (a Task Runner message, an error) kept in the store."""

REDACTED = "<redacted>"


def excerpt(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` if short enough, else its start and how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters cut]"


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret (of 4 characters or more) replaced."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    return text
