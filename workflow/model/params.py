"""A DAG's run parameters: each declared with a type and bounds (`ParamSpec`), and a run's
values checked against their declarations (`checked_value`). A value is kept as the text it
was given in: numbers are checked, never re-formatted."""

from __future__ import annotations

import datetime
import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import re2

from .inputs import ParamValue
from .text import excerpt

TYPES = ("string", "number", "integer", "boolean", "list")
MAX_LENGTH = 1_024  # a string value's characters, unless its declaration says otherwise
MAX_ITEMS = 1_000  # a list's items, unless its declaration says otherwise ...
MAX_ITEMS_CAP = 5_000  # ... and at most this many (a DAG's most steps)
MAX_VALUES_BYTES = 65_536  # all of a run's values together
MAX_PATTERN = 256  # characters of a declared `pattern`
CREDENTIAL_WORDS = frozenset({"token", "password", "passwd", "secret", "key", "apikey", "credential", "credentials"})
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_LINES = ("\r", "\n")
_QUIET = re2.Options()
_QUIET.log_errors = False  # a bad pattern is reported as a problem of the file, not logged to stderr


@dataclass(frozen=True)
class ParamSpec:
    type: str = "string"
    default: ParamValue | None = None
    required: bool = False
    description: str = ""
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int = MAX_LENGTH
    max_items: int = MAX_ITEMS
    multiline: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The DAG-file form: the keys that differ from the default."""
        keys = {"type": self.type, "default": list(self.default) if isinstance(self.default, tuple) else self.default,
                "required": self.required, "description": self.description,
                "enum": None if self.enum is None else list(self.enum), "pattern": self.pattern,
                "minimum": self.minimum, "maximum": self.maximum, "maxLength": self.max_length,
                "maxItems": self.max_items, "multiline": self.multiline}
        plain = ParamSpec()
        defaults = {"type": plain.type, "default": None, "required": False, "description": "", "enum": None,
                    "pattern": None, "minimum": None, "maximum": None, "maxLength": MAX_LENGTH,
                    "maxItems": MAX_ITEMS, "multiline": False}
        return {k: v for k, v in keys.items() if v != defaults[k]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ParamSpec:
        """Build from `to_dict` output (trusted: no checks)."""
        default, enum = d.get("default"), d.get("enum")
        return cls(d.get("type", "string"), tuple(default) if isinstance(default, list) else default,
                   bool(d.get("required")), d.get("description") or "", None if enum is None else tuple(enum),
                   d.get("pattern"), d.get("minimum"), d.get("maximum"), int(d.get("maxLength", MAX_LENGTH)),
                   int(d.get("maxItems", MAX_ITEMS)), bool(d.get("multiline")))


def looks_like_credential(name: str) -> bool:
    """Whether a parameter name reads as a credential's (api_token, dbPassword, SECRET_KEY, ...)."""
    words = {w.lower() for w in _WORDS.findall(name)}
    return bool(words & CREDENTIAL_WORDS) or name.lower().endswith(("token", "password", "secret", "apikey"))


def as_text(value: object) -> str | None:
    """A scalar from YAML or JSON as the text a placeholder gets (None for a list, mapping or null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return json.dumps(value)
    return None


def checked_value(spec: ParamSpec, value: object) -> tuple[ParamValue | None, str]:
    """(the value as stored, "") or (None, why it does not fit `spec`)."""
    if spec.type == "list":
        if isinstance(value, str) and value.lstrip().startswith("["):  # as a command line or metadata gives it
            given = value
            try:
                value = json.loads(given)
            except (ValueError, RecursionError):
                return None, f"must be a list: {excerpt(given, 60)!r} is not a JSON list"
        if not isinstance(value, (list, tuple)):
            return None, f"must be a list (on the command line as JSON: '[\"a\",\"b\"]'), got {_kind(value)}"
        if len(value) > spec.max_items:
            return None, f"has {len(value):,} items (maxItems {spec.max_items:,})"
        items = []
        for position, item in enumerate(value):
            text = as_text(item)
            problem = f"item {position} must be a string, number or boolean, got {_kind(item)}" if text is None \
                else _text_problem(spec, text, f"item {position} ")
            if problem:
                return None, problem
            items.append(text or "")
        return tuple(items), ""
    text = as_text(value)
    if text is None or (isinstance(value, bool) and spec.type != "boolean"):
        quote = " (put it in quotes to keep it as text)" if isinstance(value, datetime.date) else ""
        return None, f"must be {_a(spec.type)}, got {_kind(value)}{quote}"
    if spec.type == "string" and not isinstance(value, str):
        return None, f"must be a string, got {_kind(value)} (put it in quotes to keep it as text)"
    problem = _typed_problem(spec, text) or _text_problem(spec, text, "")
    return (None, problem) if problem else (text, "")


def _typed_problem(spec: ParamSpec, text: str) -> str:
    if spec.type == "boolean" and text not in ("true", "false"):
        return f"must be true or false, got {excerpt(text, 60)!r}"
    if spec.type in ("number", "integer"):
        if not (_INTEGER if spec.type == "integer" else _NUMBER).fullmatch(text):
            return f"must be {_a(spec.type)}, got {excerpt(text, 60)!r}"
        number = float(text)
        if spec.minimum is not None and number < spec.minimum:
            return f"is {text}, below its minimum {spec.minimum:g}"
        if spec.maximum is not None and number > spec.maximum:
            return f"is {text}, above its maximum {spec.maximum:g}"
    return ""


def _text_problem(spec: ParamSpec, text: str, what: str) -> str:
    if "\0" in text or (not spec.multiline and any(c in text for c in _LINES)):
        allowed = "" if "\0" in text else " (declare it multiline: true to allow line breaks)"
        return f"{what}holds a {'NUL' if chr(0) in text else 'line break'} character{allowed}"
    if len(text) > spec.max_length:
        return f"{what}is {len(text):,} characters long (maxLength {spec.max_length:,})"
    if spec.enum is not None and text not in spec.enum:
        return f"{what}{excerpt(text, 60)!r} is not one of: {', '.join(excerpt(e, 40) for e in spec.enum[:20])}"
    if spec.pattern is not None and not compiled_pattern(spec.pattern).fullmatch(text):
        return f"{what}{excerpt(text, 60)!r} does not match its pattern {spec.pattern!r}"
    return ""


@functools.lru_cache(maxsize=256)
def compiled_pattern(pattern: str) -> Any:
    """A parameter's `pattern` compiled by RE2, which matches in time linear in the text
    whatever the pattern (no backtracking); `re2.error` if RE2 cannot take it."""
    return re2.compile(pattern, _QUIET)


def shown(value: ParamValue, limit: int = 200) -> str:
    """A value as `status` and the run pages show it: its text, a list as its compact JSON;
    cut after `limit` characters (a long list also says how many items it has). `--json`
    and the JSON API give it whole."""
    if isinstance(value, str):
        return excerpt(value, limit)
    text = json.dumps(list(value), separators=(",", ":"))
    return text if len(text) <= limit else f"{len(value):,} items: {excerpt(text, limit)}"


def values_size(values: Mapping[str, ParamValue]) -> int:
    """Bytes of all values together, as stored."""
    return sum(len(k.encode()) + sum(len(t.encode()) for t in (v if isinstance(v, tuple) else (v,)))
               for k, v in values.items())


def _a(kind: str) -> str:
    return {"integer": "an integer", "list": "a list"}.get(kind, f"a {kind}")


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {excerpt(value, 60)!r}"
    if isinstance(value, datetime.date):
        return f"date {value.isoformat()}"
    forms = {int: "integer", float: "number", list: "a list", tuple: "a list", dict: "a mapping", type(None): "null"}
    form = forms.get(type(value), type(value).__name__)
    return f"{form} {value}" if isinstance(value, (int, float)) else form
