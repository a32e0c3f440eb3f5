"""Run parameters, placeholders and forEach: declarations checked at load, values checked and
substituted once, forEach expanded, at the start (`dagfile.instantiate`)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workflow.dagfile import RunContext, instantiate, parse_dag
from workflow.errors import DagInvalid
from workflow.model.placeholders import PlaceholderError, parse, substitute

RUN = RunContext("run-1", 1_793_491_200.0)  # 2026-11-01T00:00:00Z


def dag(params: dict[str, Any], *steps: dict[str, Any]) -> Any:
    body = {"params": params, "steps": list(steps) or [{"id": "a", "task": {"imageUri": "i", "args": ["x"]}}]}
    return parse_dag(json.dumps(body).encode(), "d.json")


def problems(params: dict[str, Any], given: dict[str, Any], *steps: dict[str, Any]) -> list[str]:
    with pytest.raises(DagInvalid) as caught:
        instantiate(dag(params, *steps), given, RUN, "d.json")
    return [str(p) for p in caught.value.problems]


def load_problems(params: dict[str, Any], *steps: dict[str, Any]) -> list[str]:
    with pytest.raises(DagInvalid) as caught:
        dag(params, *steps)
    return [str(p) for p in caught.value.problems]


def test_substitution_is_one_pass_and_a_literal_brace_is_written_quoted() -> None:
    assert substitute("a{{ params.x }}b", {"params.x": "{{ run.id }}"}) == "a{{ run.id }}b"
    assert substitute('{{ "{{" }} x }}', {}) == "{{ x }}"
    assert substitute("no braces } {", {}) == "no braces } {"
    with pytest.raises(PlaceholderError, match="not closed"):
        parse("{{ params.x")
    with pytest.raises(PlaceholderError, match="unknown placeholder"):
        parse("{{ params.x | shell }}")


def test_run_values_come_from_the_schedule_tick_else_the_start() -> None:
    step = {"id": "a", "task": {"imageUri": "i", "args": ["{{ run.date }}", "{{ run.scheduledTime }}", "{{ run.id }}"]}}
    made, inputs = instantiate(dag({}, step), {}, RunContext("r", 1_793_491_200.0), "d")
    assert made.steps[0].task.args == ("2026-11-01", "2026-11-01T00:00:00Z", "r") and inputs.params == {}
    made, inputs = instantiate(dag({}, step), {}, RunContext("r", 1_793_491_200.0, 1_793_404_800.0, "nightly"), "d")
    assert made.steps[0].task.args[:2] == ("2026-10-31", "2026-10-31T00:00:00Z") and inputs.schedule == "nightly"


@pytest.mark.parametrize(("spec", "value", "problem"), [
    ({"type": "integer"}, "1.5", "must be an integer, got '1.5'"),
    ({"type": "integer", "minimum": 2}, "1", "below its minimum 2"),
    ({"type": "boolean"}, "yes", "must be true or false"),
    ({"type": "string", "enum": ["a", "b"]}, "c", "'c' is not one of: a, b"),
    ({"type": "string", "maxLength": 3}, "abcd", "maxLength 3"),
    ({"type": "string"}, "a\0b", "NUL"),
    ({"type": "list", "maxItems": 2}, ["a", "b", "c"], "maxItems 2"),
    ({"type": "list"}, [["nested"]], "item 0 must be a string, number or boolean"),
    ({"type": "number"}, "nan", "must be a number"),
])
def test_values_outside_their_declaration_are_named(spec: dict[str, Any], value: Any, problem: str) -> None:
    found = problems({"p": spec}, {"p": value})
    assert len(found) == 1 and found[0].startswith("params.p: ") and problem in found[0]


def test_multiline_values_need_their_declaration_and_all_values_together_are_bounded() -> None:
    _, inputs = instantiate(dag({"p": {"type": "string", "multiline": True}}), {"p": "a\nb"}, RUN, "d")
    assert inputs.params == {"p": "a\nb"}
    big = {f"p{i}": {"type": "string", "maxLength": 65_536} for i in range(2)}
    assert problems(big, {"p0": "x" * 40_000, "p1": "y" * 40_000}) == [
        "params: the values are 80,004 bytes together (at most 65,536)"]


def test_declarations_are_checked_at_load() -> None:
    found = load_problems({"db_password": {"type": "string"}, "n": {"type": "float"},
                           "m": {"type": "integer", "default": "x"}, "k": {"type": "string", "pattern": "("}})
    text = "\n".join(found)
    assert "params.db_password: looks like a credential's name" in text and "Secret Manager" in text
    assert "params.n.type: must be one of string, number, integer, boolean, list" in text
    assert "params.m.default: does not fit its declaration: must be an integer" in text
    assert "params.k.pattern: is not a regular expression" in text


def test_placeholders_are_allowed_only_in_args_label_values_and_description() -> None:
    step = {"id": "a", "description": "{{ run.id }}", "timeoutSec": 5, "task": {
        "imageUri": "img", "engine": "{{ params.p }}", "args": {"{{ params.p }}": "v"}, "labels": {"k": "{{ item }}"}}}
    found = load_problems({"p": {"type": "string"}}, step)
    assert found == [
        "steps[0] (id 'a').task.labels.k: {{ item }} is known only in a step with forEach",
        "steps[0] (id 'a').task.engine: a placeholder is not allowed here: placeholders are allowed only in "
        "task.args, task.labels values and description",
        "steps[0] (id 'a').task.args: a placeholder is not allowed here: placeholders are allowed only in "
        "task.args, task.labels values and description",
    ]


def test_for_each_expands_members_and_their_successors_wait_for_all() -> None:
    steps = ({"id": "a", "task": {"imageUri": "i"}},
             {"id": "b", "dependsOn": ["a"], "forEach": ["x", 2, True],
              "task": {"imageUri": "i", "args": ["{{ item }}"]}},
             {"id": "c", "dependsOn": ["b"], "forEach": "{{params.l}}", "task": {"imageUri": "i"}},
             {"id": "d", "dependsOn": ["c"], "runIf": "allDone", "task": {"imageUri": "i"}})
    made, inputs = instantiate(dag({"l": {"type": "list", "default": ["p", "q"]}}, *steps), {}, RUN, "d")
    by_id = {s.id: s for s in made.steps}
    assert [by_id[f"b.{i}"].task.args for i in range(3)] == [("x",), ("2",), ("true",)]
    assert by_id["c.1"].depends_on == ("b.0", "b.1", "b.2") and by_id["d"].depends_on == ("c.0", "c.1")
    assert by_id["b.0"].task.name == "b.0" and by_id["d"].policy.run_if.value == "allDone"
    assert inputs.groups == {"b": ("b.0", "b.1", "b.2"), "c": ("c.0", "c.1")}
    assert made.successors("a") == ("b.0", "b.1", "b.2")


def test_for_each_refusals_name_the_step() -> None:
    each = {"id": "t", "forEach": "{{ params.l }}", "task": {"imageUri": "i"}}
    assert problems({"l": {"type": "list"}}, {"l": []}, each) == [
        "step 't': forEach has an empty list: there is nothing to run"]
    clash = {"id": "t.0", "task": {"imageUri": "i"}}
    assert "a forEach step's member has the id of another step" in problems(
        {"l": {"type": "list"}}, {"l": ["a"]}, each, clash)[0]
    wide = problems({"l": {"type": "list", "maxItems": 5000}}, {"l": ["a"] * 5000}, each, clash)
    assert wide == ["steps: forEach makes 5,001 steps from 2; the limit is 5,000 steps per run"]
    assert "forEach needs a list" in load_problems({"s": {"type": "string"}}, {**each, "forEach": "{{ params.s }}"})[0]


def test_a_label_value_from_a_placeholder_must_be_a_google_cloud_label_value() -> None:
    step = {"id": "a", "task": {"imageUri": "i", "labels": {"day": "{{ params.d }}"}}}
    assert problems({"d": {"type": "string"}}, {"d": "Nov 1"}, step) == [
        "step 'a': task.labels.day: 'Nov 1' is not a Google Cloud label value (at most 63 lowercase letters, "
        "digits, '_' and '-'; it holds ' ', 'N')"]
    made, _ = instantiate(dag({"d": {"type": "string"}}, step), {"d": "2026-11-01"}, RUN, "d")
    assert made.steps[0].task.labels == {"day": "2026-11-01"}


def test_an_undeclared_value_named_like_a_credential_is_refused_saying_so() -> None:
    assert problems({}, {"api_token": "x"}) == [
        "params.api_token: looks like a credential's name, and is not a parameter of this DAG (declared: none)"]


def test_a_pattern_is_matched_without_backtracking_and_lookaround_is_refused_at_load() -> None:
    # `(a+)+$` against "aaa...ab" takes exponential time with backtracking (Python's re would
    # not return here); RE2 answers in time linear in the value.
    found = problems({"p": {"type": "string", "pattern": "(a+)+$", "maxLength": 10_000}}, {"p": "a" * 5000 + "b"})
    assert len(found) == 1 and "does not match its pattern '(a+)+$'" in found[0]
    refused = load_problems({"p": {"type": "string", "pattern": "(?=a)a"}})
    assert refused == ["params.p.pattern: is not a regular expression RE2 takes (invalid perl operator: (?=; "
                       "no lookaround or backreferences)"]


def test_a_long_value_is_shown_cut_and_a_long_list_says_how_many_items() -> None:
    from workflow.model.params import shown

    assert shown(("eu", "us")) == '["eu","us"]' and shown("0.50") == "0.50"
    wide = shown(tuple(f"s{i}" for i in range(1000)))
    assert wide.startswith('1,000 items: ["s0","s1",') and "more characters cut]" in wide and len(wide) < 260
    assert shown("x" * 5000).endswith("... [4800 more characters cut]")
