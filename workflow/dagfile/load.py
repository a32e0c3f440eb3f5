"""DAG-file bytes to plain Python data, within the limits of `limits.py`.

PyYAML parses (libyaml's parser when PyYAML has it) and composes; the loader below
hooks into composition to bound nesting depth, node count and size with aliases
expanded, refuse recursive aliases and object-building tags, all before any Python
object is built, then notes duplicate keys while constructing. Scalars inside
`args` and `labels` are kept as the text written in the file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, ScalarEvent, StreamEndEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.resolver import Resolver

from ..errors import DagInvalid, Problem
from .limits import MAX_EXPANDED_BYTES, MAX_FILE_BYTES, MAX_NESTING_DEPTH, MAX_YAML_NODES

_ORG = "tag:yaml.org,2002:"
_MERGE, _NULL, _STR = _ORG + "merge", _ORG + "null", _ORG + "str"
_ALLOWED_TAGS = {t for t in SafeConstructor.yaml_constructors if isinstance(t, str)} | {_MERGE, _ORG + "value"}
_AS_WRITTEN = ("args", "labels")
_EMPTY = "file is empty: expected a mapping with 'steps'"


class _Refused(Exception):
    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(f"line {mark.line + 1}", message)


class _Limited(Composer, SafeConstructor):
    """Composer and constructor hooks: limits, aliases, tags, duplicate keys, text as written."""

    get_event: Callable[[], Any]
    peek_event: Callable[[], Any]
    check_event: Callable[..., bool]

    def _start(self) -> None:
        self.problems: list[Problem] = []
        self.depth = self.deepest = self.nodes = self.bytes = 0
        self.sizes: dict[int, tuple[int, int, int]] = {}
        self.aliased = False

    def single_document(self) -> Node | None:
        self.get_event()
        root = None if self.check_event(StreamEndEvent) else self.compose_document()
        if not self.check_event(StreamEndEvent):
            second = "a second YAML document ('---') starts here; a DAG file holds one document"
            raise _Refused(self.peek_event().start_mark, second)
        return root

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            return self._alias(event)
        self.depth += 1
        outer, self.deepest, nodes, size = self.deepest, self.depth, self.nodes, self.bytes
        self._count(event, 1, len(event.value) if isinstance(event, ScalarEvent) else 0, self.depth)
        node: Node = super().compose_node(parent, index)  # type: ignore[assignment]
        self.sizes[id(node)] = (self.nodes - nodes, self.bytes - size, self.deepest - self.depth + 1)
        self.depth, self.deepest = self.depth - 1, max(outer, self.deepest)
        if node.tag not in _ALLOWED_TAGS:
            shown = "!!" + node.tag[len(_ORG) :] if node.tag.startswith(_ORG) else node.tag
            message = f"tag {shown!r} is not allowed: a DAG file holds only plain data "
            self.problems.append(Problem(f"line {node.start_mark.line + 1}", message + _PLAIN))
        return node

    def _alias(self, event: AliasEvent) -> Node:
        name = event.anchor
        if name not in self.anchors:
            raise _Refused(event.start_mark, f"alias '*{name}' refers to no anchor '&{name}' defined before it")
        node = self.anchors[name]
        if id(node) not in self.sizes:
            raise _Refused(event.start_mark, f"alias '*{name}' is inside the node it refers to (a recursive structure)")
        self.get_event()
        self.aliased = True
        nodes, size, height = self.sizes[id(node)]
        self._count(event, nodes, size, self.depth + height)
        return node

    def _count(self, event: Any, nodes: int, size: int, reached: int) -> None:
        self.nodes, self.bytes, self.deepest = self.nodes + nodes, self.bytes + size, max(self.deepest, reached)
        if self.deepest > MAX_NESTING_DEPTH:
            raise _Refused(event.start_mark, f"lists and mappings are nested more than {MAX_NESTING_DEPTH} levels deep")
        if self.nodes > MAX_YAML_NODES and self.aliased:
            message = f"too many nodes after expanding YAML aliases (limit {MAX_YAML_NODES:,}): a YAML alias bomb?"
            raise _Refused(event.start_mark, message)
        if self.nodes > MAX_YAML_NODES:
            raise _Refused(event.start_mark, f"too many YAML nodes (limit {MAX_YAML_NODES:,})")
        if self.bytes > MAX_EXPANDED_BYTES:
            message = f"the text is over {MAX_EXPANDED_BYTES:,} bytes with YAML aliases expanded: a YAML alias bomb?"
            raise _Refused(event.start_mark, message)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], Any] = {}
        for key, _ in node.value:
            if isinstance(key, ScalarNode) and key.tag != _MERGE:
                first = seen.setdefault((key.tag, key.value), key.start_mark)
                if first is not key.start_mark:
                    where, was = _place(key.start_mark), _place(first)
                    self.problems.append(Problem(where, f"duplicate key {short(key.value)!r} (first at {was})"))
        self.flatten_mapping(node)
        for key, value in node.value:
            if key.value in _AS_WRITTEN and isinstance(value, (SequenceNode, MappingNode)):
                _as_text(value)
        return super().construct_mapping(node, deep)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, ArithmeticError, AttributeError) as exc:
            shown = "!!" + node.tag[len(_ORG) :]
            message = f"{short(str(node.value))!r} cannot be read as {shown}; put it in quotes to keep it as text"
            raise ConstructorError(None, None, message, node.start_mark) from exc


_PLAIN = "(strings, numbers, booleans, null, lists and mappings)"


def _as_text(node: SequenceNode | MappingNode) -> None:
    """Mark the scalars directly in `node` (not null ones) as strings: their text as written."""
    children = node.value if isinstance(node, SequenceNode) else [n for pair in node.value for n in pair]
    for child in children:
        if isinstance(child, ScalarNode) and child.tag not in (_NULL, _MERGE):
            child.tag = _STR


class _PureLoader(_Limited, yaml.SafeLoader):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._start()


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _CLoader(_Limited, CParser, Resolver):
        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._start()

    LOADER: Callable[[str], _Limited] = _CLoader
else:
    LOADER = _PureLoader


def load_yaml(data: bytes, origin: str) -> tuple[object, list[Problem]]:
    """The file's one YAML document as plain data, with duplicate-key problems (which do not
    stop validation); `DagInvalid` for anything that prevents reading it."""
    text = _decode(data, origin)
    try:
        loader = LOADER(text)
        root = loader.single_document()
        if root is None:
            raise DagInvalid(origin, [Problem("", _EMPTY)])
        if loader.problems:
            raise DagInvalid(origin, loader.problems)
        return loader.construct_document(root), loader.problems
    except _Refused as exc:
        raise DagInvalid(origin, [exc.problem]) from exc
    except ReaderError as exc:
        char = exc.character if isinstance(exc.character, int) else 0
        line = text.count("\n", 0, max(text.find(chr(char)), 0)) + 1
        message = f"character U+{char:04X} is not allowed in a YAML file"
        raise DagInvalid(origin, [Problem(f"line {line}", message)]) from exc
    except yaml.MarkedYAMLError as exc:
        raise DagInvalid(origin, [_marked(exc)]) from exc


def _decode(data: bytes, origin: str) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise DagInvalid(origin, [oversize_problem(len(data))])
    if not data.strip():
        raise DagInvalid(origin, [Problem("", _EMPTY)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = f"file is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} cannot be decoded"
        raise DagInvalid(origin, [Problem(f"line {line}", message + " (save the file as UTF-8)")]) from exc


def oversize_problem(size: int | None) -> Problem:
    """The problem for a file over `MAX_FILE_BYTES`; `size` is None when only a prefix was read."""
    limit = f"the limit is {MAX_FILE_BYTES:,} bytes (1 MiB)"
    if size is None:
        return Problem("", f"file is larger than {MAX_FILE_BYTES:,} bytes; {limit}")
    return Problem("", f"file is {size:,} bytes; {limit}")


def _marked(exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    detail = f"{exc.problem} ({exc.context})" if exc.context and exc.problem else exc.problem or exc.context
    if isinstance(exc, ConstructorError):
        return Problem(_place(mark), str(detail))
    return Problem(_place(mark) if mark else "", f"YAML syntax error: {detail or 'unreadable'}")


def _place(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def short(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters, ending in '...' when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
