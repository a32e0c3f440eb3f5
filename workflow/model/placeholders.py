"""Placeholders in a DAG's text: `{{ params.NAME }}`, `{{ run.id }}`, `{{ run.date }}`,
`{{ run.scheduledTime }}`, `{{ item }}` (in a forEach step) and `{{ "{{" }}` for a literal
`{{`. No template engine: a placeholder names a value and nothing else, and substitution is
one pass (substituted text is never scanned again)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .text import excerpt

RUN_NAMES = ("run.id", "run.date", "run.scheduledTime")
ITEM = "item"
_BRACES = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NAME = re.compile(r"params\.[A-Za-z_][A-Za-z0-9_]*|item|run\.(?:id|date|scheduledTime)")
_LITERAL = '"{{"'
KNOWN = "params.NAME, run.id, run.date, run.scheduledTime, item (in a forEach step), or \"{{\" for a literal {{"


class PlaceholderError(ValueError):
    """Text that is not a valid template: an unclosed `{{` or an unknown form inside braces."""


def has_placeholder(text: str) -> bool:
    return "{{" in text


def parse(text: str) -> list[str | tuple[str]]:
    """`text` as literal pieces and names (1-tuples); PlaceholderError naming the first problem."""
    parts: list[str | tuple[str]] = []
    end = 0
    for match in _BRACES.finditer(text):
        _literal(text[end:match.start()], end, parts)
        inner = match.group(1).strip()
        if inner == _LITERAL:
            parts.append("{{")
        elif _NAME.fullmatch(inner):
            parts.append((inner,))
        else:
            raise PlaceholderError(f"unknown placeholder {{{{ {excerpt(inner, 60)} }}}}: write {KNOWN}")
        end = match.end()
    _literal(text[end:], end, parts)
    return parts


def _literal(piece: str, offset: int, parts: list[str | tuple[str]]) -> None:
    if "{{" in piece:
        at = offset + piece.index("{{")
        raise PlaceholderError(f"'{{{{' at character {at + 1} is not closed by '}}}}' (a literal '{{{{' is "
                               f'written {{{{ "{{{{" }}}})')
    if piece:
        parts.append(piece)


def names(text: str) -> list[str]:
    """The names `text` refers to, in order (PlaceholderError if it is not a valid template)."""
    return [p[0] for p in parse(text) if isinstance(p, tuple)] if has_placeholder(text) else []


def substitute(text: str, values: Mapping[str, str]) -> str:
    """`text` with each placeholder replaced by its value, in one pass; text without `{{` is returned as is."""
    if not has_placeholder(text):
        return text
    return "".join(values[p[0]] if isinstance(p, tuple) else p for p in parse(text))
