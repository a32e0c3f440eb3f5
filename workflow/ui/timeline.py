"""The timeline: one bar per node of the graph (a group is one bar), each attempt of a
step a segment, its queued time (ready, not yet submitted) apart from its running time.
Geometry is computed here and drawn by the template as SVG, without script."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..model.records import RunRecord, StepRecord
from .views import Graph, shown_state

WIDTH = 760  # px of the time axis
ROW = 18  # px per row
MAX_ROWS = 200  # rows drawn; a run with more ungrouped steps shows the first ones


@dataclass(frozen=True)
class Span:
    kind: str  # "queued", or the state the attempt ended in (RUNNING while it runs)
    start: float
    end: float
    title: str


@dataclass(frozen=True)
class Bar:
    kind: str
    x: float
    width: float
    title: str


@dataclass(frozen=True)
class Row:
    label: str
    y: int
    bars: tuple[Bar, ...]


@dataclass(frozen=True)
class Timeline:
    rows: tuple[Row, ...]
    height: int
    width: int
    hidden: int  # rows not drawn
    span: float  # seconds the axis covers


def spans_of(step: StepRecord, ready: float | None, now: float) -> list[Span]:
    """A step's attempts (earlier ones from its history) and the queued time before its current one."""
    spans = [Span(a.state.value, a.submitted_at, a.finished_at or a.submitted_at, f"attempt {a.attempt}")
             for a in step.history if a.submitted_at is not None]
    queued_from = step.history[-1].finished_at if step.history else ready
    current = f"attempt {step.attempt}"
    if queued_from is not None and (step.submitted_at is not None or not step.state.terminal):
        spans.append(Span("queued", queued_from, step.submitted_at or now, f"{current} queued"))
    if step.submitted_at is not None:
        spans.append(Span(step.state.value, step.submitted_at, step.finished_at or now, current))
    return spans


def ready_times(run: RunRecord, steps: Sequence[StepRecord]) -> dict[str, float | None]:
    """When each step's dependencies had all ended (the run's start for a first step)."""
    ended = {s.step_id: s.finished_at for s in steps}
    ready: dict[str, float | None] = {}
    for s in steps:
        times = [ended.get(d) for d in s.depends_on]
        ready[s.step_id] = run.created_at if not times else (None if None in times else max(t for t in times if t))
    return ready


def timeline(run: RunRecord, steps: Sequence[StepRecord], graph: Graph, now: float) -> Timeline:
    by_id = {s.step_id: s for s in steps}
    ready = ready_times(run, steps)
    end = run.finished_at or now
    rows: list[tuple[str, list[Span]]] = []
    for node in graph.nodes[:MAX_ROWS]:
        member_spans = [spans_of(by_id[m], ready[m], now) for m in node.members]
        if not node.group:
            rows.append((node.label, member_spans[0]))
            continue
        states: dict[str, int] = {}
        for m in node.members:
            states[by_id[m].state.value] = states.get(by_id[m].state.value, 0) + 1
        flat = [sp for spans in member_spans for sp in spans]
        queued = [sp for sp in flat if sp.kind == "queued"]
        ran = [sp for sp in flat if sp.kind != "queued"]
        merged = []
        if queued:
            merged.append(Span("queued", min(q.start for q in queued), min(q.end for q in queued), "queued"))
        if ran:
            merged.append(Span(shown_state(states), min(r.start for r in ran), max(r.end for r in ran),
                               f"{len(node.members)} steps"))
        rows.append((node.label, merged))
    last = max([end, *(sp.end for _, spans in rows for sp in spans)])
    span = max(last - run.created_at, 1e-3)
    scale = WIDTH / span

    def bar(sp: Span) -> Bar:
        x = (sp.start - run.created_at) * scale
        return Bar(sp.kind, round(x, 1), round(max((sp.end - sp.start) * scale, 1.0), 1),
                   f"{sp.title}: {sp.kind.lower()} {sp.end - sp.start:.1f} s")

    drawn = tuple(Row(label, i * ROW, tuple(bar(sp) for sp in spans)) for i, (label, spans) in enumerate(rows))
    return Timeline(drawn, len(drawn) * ROW, WIDTH, max(len(graph.nodes) - MAX_ROWS, 0), span)
