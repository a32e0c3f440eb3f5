"""Bounded, secret-free text: what may be stored, logged or printed of outside input."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote

MESSAGE_LIMIT = 2000
"""Characters of a step message (a Task Runner message, an error) kept in the store."""

REDACTED = "<redacted>"


def excerpt(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """`text` if short enough, else its start and how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters cut]"


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret (of 4 characters or more) replaced, as
    given and in the forms an answer may echo it in: JSON-escaped (with or without `\\/`
    for `/`, and every character as `\\uXXXX`) and percent-encoded."""
    for secret in secrets:
        if len(secret) >= 4:
            for form in sorted(_echoed_forms(secret), key=len, reverse=True):
                text = text.replace(form, REDACTED)
    return text


def _echoed_forms(secret: str) -> set[str]:
    escaped = json.dumps(secret)[1:-1]
    return {secret, escaped, escaped.replace("/", "\\/"), quote(secret, safe=""), quote(secret),
            "".join(f"\\u{ord(c):04x}" for c in secret), "".join(f"\\u{ord(c):04X}" for c in secret)}


def printable(text: str, keep: str = "") -> str:
    """`text` safe to write to a terminal or a text log: control and format characters
    (ESC, BEL, CR, LF, bidi overrides, ...) but those in `keep` written as escapes
    (`\\x1b`, `\\u202e`), so nothing from a Task Runner, a DAG or a user moves the cursor
    or hides what follows."""
    if text.isprintable():
        return text
    return "".join(_escaped(c) if c not in keep and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c
                   for c in text)


def _escaped(c: str) -> str:
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
