"""DAG-file bytes to a validated `Dag`; every bad input is refused with `DagInvalid`.

The stages run in order and each one refuses before the next runs:

1. bytes: the size limit, emptiness, UTF-8;
2. YAML: parser events are composed into a node graph here, without recursion,
   so that nesting depth, the node count with aliases expanded, recursive
   aliases, duplicate keys and tags are checked before any Python object exists;
3. construction with PyYAML's `SafeConstructor` (plain data only);
4. structure: hand-written checks (rather than a JSON Schema) so that every
   message names its step and key; all problems are collected and reported at once.

libyaml is used for parsing when PyYAML was built with it, the pure-Python
parser otherwise; both accept the same files.
"""

from __future__ import annotations

import datetime
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any, Protocol, cast

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    DocumentEndEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import ReaderError
from yaml.resolver import Resolver

from ..errors import DagInvalid, Problem
from ..model.dag import Args, Dag, Step, Task
from .limits import (
    ID_CHARACTERS,
    MAX_FILE_BYTES,
    MAX_ID_LENGTH,
    MAX_NESTING_DEPTH,
    MAX_REPORTED_CYCLES,
    MAX_REPORTED_PROBLEMS,
    MAX_STEPS,
    MAX_YAML_NODES,
)

TOP_KEYS = ("name", "steps")
STEP_KEYS = ("id", "description", "dependsOn", "task")
TASK_KEYS = ("name", "imageUri", "args", "scaleTier", "masterType", "labels")

_ID_RE = re.compile(f"[{ID_CHARACTERS}]+")
_STEP_WHERE = re.compile(r"steps\[(\d+)\]")
_YAML_ORG = "tag:yaml.org,2002:"
_MERGE_TAG = _YAML_ORG + "merge"


def parse_dag(data: bytes, origin: str) -> Dag:
    """Validate a DAG file's bytes and return the `Dag`.

    Raises `DagInvalid(origin, problems)` listing every problem found; nothing is
    returned unless the whole file is valid.
    """
    document, duplicate_keys = _load_document(data, origin)
    problems = _Problems(duplicate_keys)
    dag = _build_dag(document, problems)
    if problems.items or dag is None:
        raise DagInvalid(origin, problems.reported())
    return dag


def oversize_problem(size: int | None) -> Problem:
    """The problem for a file over `MAX_FILE_BYTES`; `size` is None when only a prefix was read."""
    limit = f"the limit is {MAX_FILE_BYTES:,} bytes (1 MiB)"
    if size is None:
        return Problem("", f"file is larger than {MAX_FILE_BYTES:,} bytes; {limit}")
    return Problem("", f"file is {size:,} bytes; {limit}")


# ---------------------------------------------------------------- bytes and YAML


def _load_document(data: bytes, origin: str) -> tuple[object, list[Problem]]:
    """The file's single YAML document as plain Python data, with its duplicate-key
    problems (which do not stop validation); `DagInvalid` for anything worse."""
    text = _decode(data, origin)
    root, blocking, duplicate_keys = _compose(text)
    if blocking:
        raise DagInvalid(origin, blocking + duplicate_keys)
    if root is None:
        raise DagInvalid(origin, [Problem("", "file is empty: expected a mapping with 'steps'")])
    try:
        return _GuardedConstructor().construct_document(root), duplicate_keys
    except yaml.MarkedYAMLError as exc:
        raise DagInvalid(origin, [_marked_problem(exc, "")]) from exc


def _decode(data: bytes, origin: str) -> str:
    """The file as text: within the size limit, not blank, valid UTF-8."""
    if len(data) > MAX_FILE_BYTES:
        raise DagInvalid(origin, [oversize_problem(len(data))])
    if not data.strip():
        raise DagInvalid(origin, [Problem("", "file is empty: expected a mapping with 'steps'")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        message = (
            f"file is not valid UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start} "
            "cannot be decoded (save the file as UTF-8)"
        )
        raise DagInvalid(origin, [Problem(f"line {line}", message)]) from exc


def _compose(text: str) -> tuple[Node | None, list[Problem], list[Problem]]:
    """The document's node graph (None if there is none), the problems that prevent
    building objects from it, and its duplicate keys."""
    try:
        events = _EVENT_SOURCE(text)
    except ReaderError as exc:
        return None, [_reader_problem(exc, text)], []
    composer = _Composer(events)
    try:
        root = composer.compose()
        return root, composer.bad_tags, composer.duplicate_keys
    except _Refused as exc:
        return None, [exc.problem], []
    except ReaderError as exc:
        return None, [_reader_problem(exc, text)], []
    except yaml.MarkedYAMLError as exc:
        return None, [_marked_problem(exc, "YAML syntax error")], []
    except yaml.YAMLError as exc:
        return None, [Problem("", f"YAML error: {exc}")], []
    finally:
        events.dispose()


def _line(mark: Any) -> int:
    """1-based line of a YAML mark (PyYAML's or libyaml's)."""
    return int(getattr(mark, "line", 0)) + 1


def _place(mark: Any) -> str:
    """`line L, column C` (1-based) of a YAML mark."""
    return f"line {_line(mark)}, column {int(getattr(mark, 'column', 0)) + 1}"


def _show_tag(tag: str) -> str:
    """A tag as written in YAML: `!!timestamp` rather than `tag:yaml.org,2002:timestamp`."""
    return "!!" + tag[len(_YAML_ORG) :] if tag.startswith(_YAML_ORG) else tag


def _marked_problem(exc: yaml.MarkedYAMLError, what: str) -> Problem:
    """A problem placed at the error's line and column (1-based)."""
    mark = exc.problem_mark or exc.context_mark
    where = _place(mark) if mark else ""
    detail = exc.problem or exc.context or "unreadable"
    if exc.context and exc.problem:
        detail = f"{exc.problem} ({exc.context})"
    return Problem(where, f"{what}: {detail}" if what else detail)


def _reader_problem(exc: ReaderError, text: str) -> Problem:
    """A problem for a character YAML does not allow (control characters and the like)."""
    character = exc.character if isinstance(exc.character, int) else 0
    index = text.find(chr(character))
    where = f"line {text.count(chr(10), 0, index) + 1}" if index >= 0 else ""
    return Problem(where, f"character U+{character:04X} is not allowed in a YAML file")


class _EventStream(Protocol):
    """What the composer needs from a YAML parser (PyYAML's or libyaml's)."""

    def get_event(self) -> Event: ...

    def peek_event(self) -> Event: ...

    def dispose(self) -> None: ...


class _PureLoader(yaml.SafeLoader):
    """PyYAML's pure-Python parser, also accepting tabs between tokens inside flow
    collections (as YAML 1.2 and libyaml do), so tab-indented JSON parses."""

    def scan_to_next_token(self) -> None:
        """Skip spaces (and tabs in flow context), comments and line breaks."""
        if self.index == 0 and self.peek() == "\ufeff":
            self.forward()
        while True:
            while self.peek() == " " or (self.flow_level and self.peek() == "\t"):
                self.forward()
            if self.peek() == "#":
                while self.peek() not in "\0\r\n\x85\u2028\u2029":
                    self.forward()
            if not cast(Any, self).scan_line_break():
                return
            if not self.flow_level:
                self.allow_simple_key = True


_EVENT_SOURCE: type[Any] = yaml.CSafeLoader if yaml.__with_libyaml__ else _PureLoader


class _Refused(Exception):
    """Composition stopped: the document breaks a limit or cannot form a tree."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass
class _Open:
    """A mapping or list being composed."""

    node: SequenceNode | MappingNode
    anchor: str | None
    size: int = 1
    height: int = 0
    pending_key: Node | None = None


@dataclass(frozen=True)
class _Done:
    """A finished node, with its size and height counted through aliases."""

    node: Node
    size: int
    height: int


@dataclass
class _Composer:
    """Composes one YAML document into nodes without recursion.

    Guarantees: nesting depth never exceeds `MAX_NESTING_DEPTH` and the node count
    with aliases expanded never exceeds `MAX_YAML_NODES` (both through aliases),
    no alias points into its own node, only plain-data tags occur; otherwise
    `_Refused` (limits, aliases), `bad_tags` or `duplicate_keys`.
    """

    events: _EventStream
    bad_tags: list[Problem] = field(default_factory=list)
    duplicate_keys: list[Problem] = field(default_factory=list)
    _resolver: Any = field(default_factory=Resolver)
    _anchors: dict[str, _Open | _Done] = field(default_factory=dict)
    _stack: list[_Open] = field(default_factory=list)
    _total: int = 0
    _aliased: bool = False

    def compose(self) -> Node | None:
        """The document's root node, or None if the stream has no document."""
        self._expect(StreamStartEvent)
        if isinstance(self.events.peek_event(), StreamEndEvent):
            return None
        self._expect(DocumentStartEvent)
        root = self._compose_root()
        self._expect(DocumentEndEvent)
        extra = self.events.get_event()
        if not isinstance(extra, StreamEndEvent):
            raise _Refused(
                Problem(
                    f"line {_line(extra.start_mark)}",
                    "a second YAML document ('---') starts here; a DAG file holds one document",
                )
            )
        return root

    def _expect(self, kind: type[Event]) -> None:
        """Consume the next event, which must be a `kind`."""
        event = self.events.get_event()
        if not isinstance(event, kind):
            raise _Refused(Problem(f"line {_line(event.start_mark)}", "unexpected YAML structure"))

    def _compose_root(self) -> Node:
        """Consume the events of the document's content; return its root node."""
        while True:
            event = self.events.get_event()
            if isinstance(event, CollectionStartEvent):
                self._open(event)
                continue
            if isinstance(event, AliasEvent):
                done = self._alias(event)
            elif isinstance(event, ScalarEvent):
                done = self._scalar(event)
            elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
                done = self._close(event)
            else:
                raise _Refused(Problem(f"line {_line(event.start_mark)}", "unexpected YAML structure"))
            if not self._stack:
                return done.node
            self._attach(done)

    def _count(self, nodes: int, event: Event) -> None:
        """Add `nodes` to the expanded node count; refuse past `MAX_YAML_NODES`."""
        self._total += nodes
        if self._total <= MAX_YAML_NODES:
            return
        if self._aliased:
            message = f"too many nodes after expanding YAML aliases (limit {MAX_YAML_NODES:,}): a YAML alias bomb?"
        else:
            message = f"too many YAML nodes (limit {MAX_YAML_NODES:,})"
        raise _Refused(Problem(f"line {_line(event.start_mark)}", message))

    def _check_depth(self, height: int, event: Event) -> None:
        """Refuse a node of `height` levels placed here if it ends deeper than `MAX_NESTING_DEPTH`."""
        if len(self._stack) + height > MAX_NESTING_DEPTH:
            raise _Refused(
                Problem(
                    f"line {_line(event.start_mark)}",
                    f"lists and mappings are nested more than {MAX_NESTING_DEPTH} levels deep",
                )
            )

    def _tag(self, event: ScalarEvent | CollectionStartEvent, kind: type[Node]) -> str:
        """The node's resolved tag; records a problem for a tag that is not plain data."""
        tag = event.tag
        if tag is None or tag == "!":
            value = event.value if isinstance(event, ScalarEvent) else None
            tag = str(self._resolver.resolve(kind, value, event.implicit))
        if tag not in _ALLOWED_TAGS:
            shown = _show_tag(tag)
            self.bad_tags.append(
                Problem(
                    f"line {_line(event.start_mark)}",
                    f"tag {shown!r} is not allowed: a DAG file holds only plain data "
                    "(strings, numbers, booleans, null, lists and mappings)",
                )
            )
        return tag

    def _scalar(self, event: ScalarEvent) -> _Done:
        """A scalar node (registered under its anchor, if any)."""
        self._count(1, event)
        self._check_depth(1, event)
        start: Any = event.start_mark
        end: Any = event.end_mark
        node = ScalarNode(self._tag(event, ScalarNode), event.value, start, end, style=event.style)
        done = _Done(node, 1, 1)
        if event.anchor is not None:
            self._anchors[event.anchor] = done
        return done

    def _open(self, event: CollectionStartEvent) -> None:
        """Start a list or mapping; its anchor refers to it from now on (aliases to it inside it are refused)."""
        self._count(1, event)
        self._check_depth(1, event)
        start: Any = event.start_mark
        node: SequenceNode | MappingNode
        if isinstance(event, SequenceStartEvent):
            node = SequenceNode(self._tag(event, SequenceNode), [], start, None, event.flow_style)
        else:
            node = MappingNode(self._tag(event, MappingNode), [], start, None, event.flow_style)
        frame = _Open(node, event.anchor)
        if event.anchor is not None:
            self._anchors[event.anchor] = frame
        self._stack.append(frame)

    def _close(self, event: Event) -> _Done:
        """Finish the innermost list or mapping, checking a mapping's keys for duplicates."""
        frame = self._stack.pop()
        end: Any = event.end_mark
        frame.node.end_mark = end
        if isinstance(frame.node, MappingNode):
            self._check_duplicate_keys(frame.node)
        done = _Done(frame.node, frame.size, frame.height + 1)
        if frame.anchor is not None and self._anchors.get(frame.anchor) is frame:
            self._anchors[frame.anchor] = done
        return done

    def _alias(self, event: AliasEvent) -> _Done:
        """The node an alias refers to, counted in full again; refuses unknown and recursive aliases."""
        name = str(event.anchor)
        target = self._anchors.get(name)
        where = f"line {_line(event.start_mark)}"
        if target is None:
            raise _Refused(Problem(where, f"alias '*{name}' refers to no anchor '&{name}' defined before it"))
        if isinstance(target, _Open):
            raise _Refused(Problem(where, f"alias '*{name}' is inside the node it refers to (a recursive structure)"))
        self._aliased = True
        self._count(target.size, event)
        self._check_depth(target.height, event)
        return target

    def _attach(self, done: _Done) -> None:
        """Add a finished node to the innermost open list or mapping (as a key or a value)."""
        frame = self._stack[-1]
        frame.size += done.size
        frame.height = max(frame.height, done.height)
        if isinstance(frame.node, SequenceNode):
            frame.node.value.append(done.node)
        elif frame.pending_key is None:
            frame.pending_key = done.node
        else:
            frame.node.value.append((frame.pending_key, done.node))
            frame.pending_key = None

    def _check_duplicate_keys(self, node: MappingNode) -> None:
        """Record each scalar key written twice in one mapping (merge keys aside)."""
        seen: dict[tuple[str, str], str] = {}
        for key, _value in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
                continue
            ident = (key.tag, key.value)
            place = _place(key.start_mark)
            if ident in seen:
                message = f"duplicate key {_short(key.value)!r} (first at {seen[ident]})"
                self.duplicate_keys.append(Problem(place, message))
            else:
                seen[ident] = place


class _GuardedConstructor(SafeConstructor):
    """`SafeConstructor` that reports a scalar it cannot convert (a date like
    2020-13-45, `!!int x`) as a YAML error at the scalar's line."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, ArithmeticError, AttributeError) as exc:
            value = _short(str(node.value))
            message = f"{value!r} cannot be read as {_show_tag(node.tag)}; put it in quotes to keep it as text"
            raise ConstructorError(None, None, message, node.start_mark) from exc


_ALLOWED_TAGS = frozenset(tag for tag in SafeConstructor.yaml_constructors if isinstance(tag, str)) | {
    _MERGE_TAG,
    _YAML_ORG + "value",
}


# ---------------------------------------------------------------- structure

_MAX_SUGGESTED_IDS = 100
"""Unknown dependencies for which a close step id is searched (each search scans every id)."""


class _Problems:
    """Problems collected while validating; all of them are reported together."""

    def __init__(self, items: Iterable[Problem] = ()) -> None:
        self.items: list[Problem] = list(items)
        self.id_suggestions = 0

    def add(self, where: str, message: str) -> None:
        self.items.append(Problem(where, message))

    def reported(self) -> list[Problem]:
        """The problems grouped by step in file order (file-level ones first), at most
        `MAX_REPORTED_PROBLEMS` of them, then one saying how many were left out."""
        items = sorted(self.items, key=_step_index)
        if len(items) <= MAX_REPORTED_PROBLEMS:
            return items
        rest = len(items) - MAX_REPORTED_PROBLEMS
        return [*items[:MAX_REPORTED_PROBLEMS], Problem("", f"... and {rest:,} more problem(s) not listed")]


def _step_index(problem: Problem) -> int:
    """The index of the step a problem is about; -1 for the file and the top level."""
    match = _STEP_WHERE.match(problem.where)
    return int(match.group(1)) if match else -1


@dataclass
class _StepDraft:
    """One entry of `steps` as far as it could be read."""

    index: int
    label: str
    valid_id: str | None
    any_id: str | None
    """The id if it is a non-empty string, valid or not: other steps may refer to it."""
    depends_on: list[tuple[int, str]]
    """(position in `dependsOn`, step id) for each string entry."""
    step: Step | None
    duplicate: bool = False


def _build_dag(document: object, out: _Problems) -> Dag | None:
    """The `Dag`, or None with every problem recorded in `out`."""
    if not isinstance(document, dict):
        out.add("", f"the top level must be a mapping with 'steps', got {_describe(document)}")
        return None
    _check_keys(document, TOP_KEYS, "", "top-level key", out)
    name = _optional_str(document, "name", "name", out)
    drafts = [_draft_step(i, raw, out) for i, raw in enumerate(_steps_list(document, out))]
    _check_unique_ids(drafts, out)
    _check_dependencies(drafts, out)
    _check_cycles(drafts, out)
    if out.items:
        return None
    return Dag(steps=tuple(d.step for d in drafts if d.step is not None), name=name or "")


def _steps_list(document: Mapping[Any, Any], out: _Problems) -> list[Any]:
    """The `steps` list (empty when it is unusable, with the problem recorded)."""
    if "steps" not in document:
        out.add("steps", "missing required key 'steps' (the list of steps)")
        return []
    steps = document["steps"]
    if not isinstance(steps, list):
        out.add("steps", f"must be a list of steps, got {_describe(steps)}")
        return []
    if not steps:
        out.add("steps", "must list at least one step")
    elif len(steps) > MAX_STEPS:
        out.add("steps", f"{len(steps):,} steps; the limit is {MAX_STEPS:,} steps per DAG")
    return steps


def _draft_step(index: int, raw: object, out: _Problems) -> _StepDraft:
    """Check one step on its own; `step` is set only if it had no problem."""
    if not isinstance(raw, dict):
        out.add(f"steps[{index}]", f"must be a mapping with 'id' and 'task', got {_describe(raw)}")
        return _StepDraft(index, f"steps[{index}]", None, None, [], None)
    before = len(out.items)
    valid_id, any_id = _step_id(index, raw, out)
    label = _label(index, any_id)
    _check_keys(raw, STEP_KEYS, label, "key", out)
    description = _optional_str(raw, "description", f"{label}.description", out)
    depends_on = _depends_on(raw, label, out)
    task = _task(raw, label, valid_id or "", out)
    step = None
    if len(out.items) == before and valid_id is not None and task is not None:
        deps = tuple(dep for _, dep in depends_on)
        step = Step(id=valid_id, task=task, depends_on=deps, description=description or "")
    return _StepDraft(index, label, valid_id, any_id, depends_on, step)


def _label(index: int, any_id: str | None) -> str:
    """How problems name a step: `steps[3] (id 'train')`."""
    if any_id is None:
        return f"steps[{index}]"
    return f"steps[{index}] (id {_short(any_id, 40)!r})"


def _step_id(index: int, raw: Mapping[Any, Any], out: _Problems) -> tuple[str | None, str | None]:
    """(the id if valid, the id if it is any non-empty string)."""
    if "id" not in raw:
        out.add(f"steps[{index}]", "missing required key 'id'")
        return None, None
    value = raw["id"]
    where = f"steps[{index}].id"
    if not isinstance(value, str):
        out.add(where, f"must be a string, got {_describe(value)}{_quote_hint(value)}")
        return None, None
    if not value:
        out.add(where, "must not be empty")
        return None, None
    problem = _id_problem(value)
    if problem is not None:
        out.add(where, problem)
        return None, value
    return value, value


def _id_problem(value: str) -> str | None:
    """Why `value` cannot be a step id, or None if it can."""
    reason = "step ids become document ids and job names"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value):,} characters long; the limit is {MAX_ID_LENGTH} ({reason})"
    if not _ID_RE.fullmatch(value):
        bad = sorted({ch for ch in value if not _ID_RE.fullmatch(ch)})
        shown = ", ".join(repr(ch) for ch in bad[:5])
        return f"{_short(value, 40)!r} contains {shown}: only letters, digits, '.', '_' and '-' are allowed ({reason})"
    if value in (".", "..") or (len(value) >= 4 and value.startswith("__") and value.endswith("__")):
        return f"{value!r} is reserved ({reason}); choose another id"
    return None


def _depends_on(raw: Mapping[Any, Any], label: str, out: _Problems) -> list[tuple[int, str]]:
    """The string entries of `dependsOn` with their positions; other entries are problems."""
    value = raw.get("dependsOn")
    where = f"{label}.dependsOn"
    if value is None:
        return []
    if not isinstance(value, list):
        hint = f"; write [{value}]" if isinstance(value, str) else ""
        out.add(where, f"must be a list of step ids, got {_describe(value)}{hint}")
        return []
    found: list[tuple[int, str]] = []
    seen: set[str] = set()
    for position, dep in enumerate(value):
        if not isinstance(dep, str):
            out.add(f"{where}[{position}]", f"must be a step id (a string), got {_describe(dep)}{_quote_hint(dep)}")
        elif dep in seen:
            out.add(f"{where}[{position}]", f"{_short(dep)!r} is listed more than once")
        else:
            seen.add(dep)
            found.append((position, dep))
    return found


def _task(raw: Mapping[Any, Any], label: str, step_id: str, out: _Problems) -> Task | None:
    """The step's `Task` (name defaulting to the step id), or None with the problems recorded."""
    if "task" not in raw:
        out.add(label, "missing required key 'task' (the job to run, with at least 'imageUri')")
        return None
    value = raw["task"]
    where = f"{label}.task"
    if not isinstance(value, dict):
        out.add(where, f"must be a mapping with at least 'imageUri', got {_describe(value)}")
        return None
    before = len(out.items)
    _check_keys(value, TASK_KEYS, where, "key", out)
    name = _task_name(value, where, out)
    image_uri = _image_uri(value, where, out)
    args = _args(value.get("args"), f"{where}.args", out)
    scale_tier = _optional_str(value, "scaleTier", f"{where}.scaleTier", out)
    master_type = _optional_str(value, "masterType", f"{where}.masterType", out)
    labels = _string_map(value.get("labels"), f"{where}.labels", out)
    if len(out.items) != before or image_uri is None:
        return None
    return Task(
        name=name or step_id,
        image_uri=image_uri,
        args=args,
        scale_tier=scale_tier,
        master_type=master_type,
        labels=labels,
    )


def _task_name(task: Mapping[Any, Any], where: str, out: _Problems) -> str | None:
    """The task's own name, or None to use the step id."""
    name = _optional_str(task, "name", f"{where}.name", out)
    if name is not None and not name.strip():
        out.add(f"{where}.name", "must not be empty (leave it out to use the step id)")
        return None
    return name


def _image_uri(task: Mapping[Any, Any], where: str, out: _Problems) -> str | None:
    """The required, non-empty `imageUri`."""
    if "imageUri" not in task:
        out.add(where, "missing required key 'imageUri' (the container image to run)")
        return None
    value = task["imageUri"]
    if not isinstance(value, str):
        out.add(f"{where}.imageUri", f"must be a string (the container image to run), got {_describe(value)}")
        return None
    if not value.strip():
        out.add(f"{where}.imageUri", "must not be empty (the container image to run)")
        return None
    return value


def _args(value: object, where: str, out: _Problems) -> Args | None:
    """`args` as written: a tuple of strings or a string-to-string mapping, order kept."""
    if value is None:
        return None
    if isinstance(value, list):
        before = len(out.items)
        for position, item in enumerate(value):
            if not isinstance(item, str):
                out.add(f"{where}[{position}]", f"must be a string, got {_describe(item)}{_quote_hint(item)}")
        return tuple(value) if len(out.items) == before else None
    if isinstance(value, dict):
        return _string_map(value, where, out)
    out.add(where, f"must be a list of strings or a mapping of string to string, got {_describe(value)}")
    return None


def _string_map(value: object, where: str, out: _Problems) -> dict[str, str] | None:
    """A string-to-string mapping, order kept; None when absent or invalid."""
    if value is None:
        return None
    if not isinstance(value, dict):
        out.add(where, f"must be a mapping of string to string, got {_describe(value)}")
        return None
    before = len(out.items)
    for key, item in value.items():
        if not isinstance(key, str):
            out.add(where, f"key {_describe(key)} must be a string{_quote_hint(key)}")
        elif not isinstance(item, str):
            out.add(_key_path(where, key), f"must be a string, got {_describe(item)}{_quote_hint(item)}")
    return dict(value) if len(out.items) == before else None


def _optional_str(mapping: Mapping[Any, Any], key: str, where: str, out: _Problems) -> str | None:
    """`mapping[key]` if it is a string; None if absent or null; a problem otherwise."""
    value = mapping.get(key)
    if value is None or isinstance(value, str):
        return value
    out.add(where, f"must be a string, got {_describe(value)}{_quote_hint(value)}")
    return None


def _check_keys(mapping: Mapping[Any, Any], known: Sequence[str], where: str, what: str, out: _Problems) -> None:
    """Record each key of `mapping` not in `known`, suggesting the closest known key."""
    for key in mapping:
        if key not in known:
            shown = repr(_short(key)) if isinstance(key, str) else _describe(key)
            out.add(where, f"unknown {what} {shown}{_suggest_key(key, known)}")


def _suggest_key(key: object, known: Sequence[str]) -> str:
    """'; did you mean ...?' ignoring case, '_' and '-', else by similarity; or the known keys."""
    if isinstance(key, str):
        by_form = {_key_form(k): k for k in known}
        match = by_form.get(_key_form(key))
        if match is None:
            close = difflib.get_close_matches(_key_form(key), list(by_form), n=1, cutoff=0.6)
            match = by_form[close[0]] if close else None
        if match is not None:
            return f"; did you mean {match!r}?"
    return f"; expected one of: {', '.join(known)}"


def _key_form(key: str) -> str:
    """A key compared ignoring case, '_' and '-': `depends_on` and `dependsOn` match."""
    return key.replace("_", "").replace("-", "").lower()


def _key_path(where: str, key: str) -> str:
    """`where.key`, or `where['odd key']` for a key that is not a plain word."""
    return f"{where}.{key}" if re.fullmatch(r"[A-Za-z0-9_-]+", key) else f"{where}[{_short(key)!r}]"


def _check_unique_ids(drafts: Iterable[_StepDraft], out: _Problems) -> None:
    """Record every step whose id an earlier step already uses, naming both positions."""
    first: dict[str, _StepDraft] = {}
    for draft in drafts:
        if draft.any_id is None:
            continue
        earlier = first.setdefault(draft.any_id, draft)
        if earlier is not draft:
            draft.duplicate = True
            out.add(draft.label, f"duplicate id {_short(draft.any_id)!r}: steps[{earlier.index}] has the same id")


def _check_dependencies(drafts: Sequence[_StepDraft], out: _Problems) -> None:
    """Record dependencies on the step itself or on ids no step has."""
    ids = [d.any_id for d in drafts if d.any_id is not None]
    known = set(ids)
    for draft in drafts:
        for position, dep in draft.depends_on:
            where = f"{draft.label}.dependsOn[{position}]"
            if dep == draft.any_id:
                out.add(where, "a step cannot depend on itself")
            elif dep not in known:
                out.add(where, f"unknown step {_short(dep)!r}{_suggest_id(dep, ids, out)}")


def _suggest_id(dep: str, ids: list[str], out: _Problems) -> str:
    """'; did you mean ...?' for a close step id (searched for the first unknown ids only)."""
    out.id_suggestions += 1
    if out.id_suggestions > _MAX_SUGGESTED_IDS:
        return ""
    close = difflib.get_close_matches(dep, ids, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else " (no step has this id)"


def _check_cycles(drafts: Sequence[_StepDraft], out: _Problems) -> None:
    """Record dependency cycles among steps with a valid, unique id (edges to other such steps)."""
    usable = {d.valid_id: d for d in drafts if d.valid_id is not None and not d.duplicate}
    graph = {
        step_id: [dep for _, dep in d.depends_on if dep in usable and dep != step_id] for step_id, d in usable.items()
    }
    cycles = _find_cycles(graph)
    for cycle in cycles[:MAX_REPORTED_CYCLES]:
        start = min(range(len(cycle)), key=lambda k: usable[cycle[k]].index)
        ordered = cycle[start:] + cycle[:start]
        text = " -> ".join([*ordered, ordered[0]])
        out.add(usable[ordered[0]].label, f"dependency cycle: {text} (each step depends on the next)")
    if len(cycles) > MAX_REPORTED_CYCLES:
        out.add("steps", f"more than {MAX_REPORTED_CYCLES} dependency cycles; the others are not listed")


def _find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Disjoint cycles (each as [a, b, c]: a depends on b, b on c, c on a), at most one over the limit."""
    cycles: list[list[str]] = []
    while len(cycles) <= MAX_REPORTED_CYCLES:
        try:
            TopologicalSorter(graph).prepare()
            break
        except CycleError as exc:
            # graphlib lists each node before the nodes that depend on it: reverse it.
            cycle = list(reversed(exc.args[1]))[:-1]
        cycles.append(cycle)
        gone = set(cycle)
        graph = {n: [d for d in deps if d not in gone] for n, deps in graph.items() if n not in gone}
    return cycles


def _describe(value: object) -> str:
    """A value's YAML type, with the value for scalars: `integer 1`, `boolean true`, `a list`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"integer {_short(str(value))}"
    if isinstance(value, float):
        return f"number {value!r}"
    if isinstance(value, datetime.date):
        return f"date {value.isoformat()}"
    if isinstance(value, str):
        return f"string {_short(value)!r}"
    kinds: dict[type, str] = {list: "a list", dict: "a mapping", bytes: "binary data", set: "a set", tuple: "a pair"}
    return kinds.get(type(value), type(value).__name__)


def _quote_hint(value: object) -> str:
    """For a scalar YAML read as a number, boolean or date: how to keep it as text."""
    if isinstance(value, (bool, int, float, datetime.date)):
        return "; put it in quotes to keep it as text"
    return ""


def _short(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters, ending in '...' when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
