"""DAG-file bytes to plain data: PyYAML's loader, hooked to enforce `limits` while composing, refuse
object-building tags and recursive aliases, note duplicate keys and keep `args` and `labels` as written."""

from collections.abc import Callable
from typing import Any, NoReturn

import yaml
from yaml import AliasEvent, MappingNode, Node, ScalarEvent, ScalarNode, SequenceNode, StreamEndEvent
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import Resolver

from ..errors import DagInvalid, Problem
from ..model.text import excerpt
from .limits import MAX_EXPANDED_BYTES, MAX_FILE_BYTES, MAX_NESTING_DEPTH, MAX_YAML_NODES

_ORG = "tag:yaml.org,2002:"
_MERGE, _NULL = _ORG + "merge", _ORG + "null"
_ALLOWED_TAGS = {t for t in SafeConstructor.yaml_constructors if isinstance(t, str)} | {_MERGE, _ORG + "value"}
_EMPTY = "file is empty: expected a mapping with 'steps'"


class _Limited(Composer, SafeConstructor):
    get_event: Callable[[], Any]
    peek_event: Callable[[], Any]

    def _start(self, origin: str) -> None:
        self.origin, self.problems, self.sizes = origin, list[Problem](), dict[int, tuple[int, int, int]]()
        self.depth = self.deepest = self.nodes = self.bytes = self.aliases = 0

    def _refuse(self, mark: Any, message: str) -> NoReturn:
        raise DagInvalid(self.origin, [Problem(f"line {mark.line + 1}", message)])

    def single_document(self) -> Node | None:
        self.get_event()
        root = None if isinstance(self.peek_event(), StreamEndEvent) else self.compose_document()
        if not isinstance(self.peek_event(), StreamEndEvent):
            second = "a second YAML document ('---') starts here; a DAG file holds one document"
            self._refuse(self.peek_event().start_mark, second)
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
            message = f"tag {_shown(node.tag)!r} is not allowed: a DAG file holds only plain data"
            kinds = "(strings, numbers, booleans, null, lists and mappings)"
            self.problems.append(Problem(f"line {node.start_mark.line + 1}", f"{message} {kinds}"))
        return node

    def _alias(self, event: AliasEvent) -> Node:
        name, node = event.anchor, self.anchors.get(event.anchor)
        if node is None:
            self._refuse(event.start_mark, f"alias '*{name}' refers to no anchor '&{name}' defined before it")
        if id(node) not in self.sizes:
            self._refuse(event.start_mark, f"alias '*{name}' is inside the node it refers to (a recursive structure)")
        self.get_event()
        self.aliases += 1
        nodes, size, height = self.sizes[id(node)]
        self._count(event, nodes, size, self.depth + height)
        return node

    def _count(self, event: Any, nodes: int, size: int, reached: int) -> None:
        self.nodes, self.bytes, self.deepest = self.nodes + nodes, self.bytes + size, max(self.deepest, reached)
        if self.deepest > MAX_NESTING_DEPTH:
            self._refuse(event.start_mark, f"lists and mappings are nested more than {MAX_NESTING_DEPTH} levels deep")
        if self.nodes > MAX_YAML_NODES:
            many = f"too many nodes after expanding YAML aliases (limit {MAX_YAML_NODES:,}): a YAML alias bomb?"
            self._refuse(event.start_mark, many if self.aliases else f"too many YAML nodes (limit {MAX_YAML_NODES:,})")
        if self.bytes > MAX_EXPANDED_BYTES:
            text = f"the text is over {MAX_EXPANDED_BYTES:,} bytes with YAML aliases expanded: a YAML alias bomb?"
            self._refuse(event.start_mark, text)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], Any] = {}
        for key in (k for k, _ in node.value if isinstance(k, ScalarNode) and k.tag != _MERGE):
            first = seen.setdefault((key.tag, key.value), key.start_mark)
            if first is not key.start_mark:
                message = f"duplicate key {excerpt(key.value, 60)!r} (first at {_place(first)})"
                self.problems.append(Problem(_place(key.start_mark), message))
        self.flatten_mapping(node)
        for key, value in node.value:
            if key.value in ("args", "labels") and isinstance(value, (SequenceNode, MappingNode)):
                items = value.value if isinstance(value, SequenceNode) else [n for pair in value.value for n in pair]
                for item in items:
                    if isinstance(item, ScalarNode) and item.tag not in (_NULL, _MERGE):
                        item.tag = _ORG + "str"
        return super().construct_mapping(node, deep)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, ArithmeticError, AttributeError) as exc:
            text = f"{excerpt(str(node.value), 60)!r} cannot be read as {_shown(node.tag)}"
            raise ConstructorError(None, None, f"{text}; put it in quotes to keep it as text", node.start_mark) from exc


def loader_class(parser: Any) -> Callable[[str, str], _Limited]:
    """The loader on libyaml's `CParser` (faster, reads tab-indented JSON) or PyYAML's own `SafeLoader`."""

    class Loader(_Limited, parser, Resolver):  # type: ignore[misc]
        def __init__(self, text: str, origin: str) -> None:
            parser.__init__(self, text)
            for layer in (Composer, SafeConstructor, Resolver):
                layer.__init__(self)
            self._start(origin)

    return Loader


LOADER = loader_class(yaml.cyaml.CParser if yaml.__with_libyaml__ else yaml.SafeLoader)  # type: ignore[attr-defined]


def load_yaml(data: bytes, origin: str) -> tuple[object, list[Problem]]:
    """The file's one YAML document as plain data, with its duplicate keys; `DagInvalid` if it cannot be read."""
    if len(data) > MAX_FILE_BYTES:
        raise DagInvalid(origin, [oversize_problem(len(data))])
    if not data.strip():
        raise DagInvalid(origin, [Problem("", _EMPTY)])
    try:
        loader = LOADER(text := data.decode("utf-8"), origin)
        root = loader.single_document()
        if root is None or loader.problems:
            raise DagInvalid(origin, loader.problems or [Problem("", _EMPTY)])
        return loader.construct_document(root), loader.problems
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = f"byte 0x{data[exc.start]:02x} at offset {exc.start} cannot be decoded (save the file as UTF-8)"
        raise DagInvalid(origin, [Problem(f"line {line}", f"file is not valid UTF-8: {byte}")]) from exc
    except yaml.reader.ReaderError as exc:
        line, message = text.count("\n", 0, exc.position) + 1, f"character U+{exc.character:04X} is not allowed"
        raise DagInvalid(origin, [Problem(f"line {line}", f"{message} in a YAML file")]) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = f"{exc.problem} ({exc.context})" if exc.context and exc.problem else exc.problem or exc.context
        syntax = "" if isinstance(exc, ConstructorError) else "YAML syntax error: "
        raise DagInvalid(origin, [Problem(_place(mark) if mark else "", f"{syntax}{detail}")]) from exc


def oversize_problem(size: int | None) -> Problem:
    """The problem for a file over `MAX_FILE_BYTES`; `size` is None when only a prefix was read."""
    found = f"is larger than {MAX_FILE_BYTES:,}" if size is None else f"is {size:,}"
    return Problem("", f"file {found} bytes; the limit is {MAX_FILE_BYTES:,} bytes (1 MiB)")


def _place(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _shown(tag: str) -> str:  # as written in YAML: `!!timestamp`
    return "!!" + tag[len(_ORG) :] if tag.startswith(_ORG) else tag
