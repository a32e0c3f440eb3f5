"""DAG files: every bad input is refused with a message naming the place; good ones load."""

from __future__ import annotations

import json
import textwrap
import tracemalloc
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.api_core import exceptions as api_exceptions

from workflow.adapters.dag_sources import DagSources
from workflow.adapters.local_dags import LocalDags
from workflow.dagfile import load as yaml_load
from workflow.dagfile import parse_dag, validate
from workflow.dagfile.limits import (
    MAX_EXPANDED_BYTES,
    MAX_FILE_BYTES,
    MAX_ID_LENGTH,
    MAX_NESTING_DEPTH,
    MAX_REPORTED_PROBLEMS,
    MAX_STEPS,
)
from workflow.errors import DagInvalid, DagNotFound, InputError, TransientError
from workflow.model.dag import Dag, Policy, RunIf

REPO = Path(__file__).resolve().parents[2]

SEED = """\
name: fork-join
steps:
  - id: prepare
    description: fetch the data
    task:
      imageUri: gcr.io/project/prepare:1
      args: ["--date", "2020-01-01"]
  - id: train
    dependsOn: [prepare]
    task:
      name: train-model
      imageUri: gcr.io/project/train:1
      scaleTier: BASIC
      labels: {team: ml}
"""


def load(text: str | bytes) -> Dag:
    data = textwrap.dedent(text).encode() if isinstance(text, str) else text
    return parse_dag(data, "test.yaml")


def problems(text: str | bytes) -> list[str]:
    """Every problem reported for a file that must be refused, as `where: message` lines."""
    with pytest.raises(DagInvalid) as info:
        load(text)
    assert info.value.origin == "test.yaml"
    assert info.value.problems, "refused without a problem"
    return [str(p) for p in info.value.problems]


def one_problem(text: str | bytes) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def steps_yaml(*steps: str) -> str:
    """A DAG file with the given step mappings (flow style, one per line)."""
    return "steps:\n" + "".join(f"  - {s}\n" for s in steps)


OK_TASK = "task: {imageUri: gcr.io/p/x:1}"


@pytest.fixture(params=["libyaml", "pure-python"])
def either_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with libyaml's parser (when PyYAML has it) and with the pure-Python one."""
    if request.param == "libyaml":
        if not yaml.__with_libyaml__:
            pytest.skip("PyYAML was built without libyaml")
        monkeypatch.setattr(yaml_load, "LOADER", yaml_load.loader_class(yaml.cyaml.CParser))
    else:
        monkeypatch.setattr(yaml_load, "LOADER", yaml_load.loader_class(yaml.SafeLoader))
    return str(request.param)


# ---------------------------------------------------------------- happy paths


def test_seed_style_yaml_with_list_args() -> None:
    dag = load(SEED)
    assert dag.name == "fork-join"
    assert dag.step_ids == ("prepare", "train")
    prepare, train = dag.steps
    assert prepare.description == "fetch the data"
    assert prepare.depends_on == ()
    assert prepare.task.args == ("--date", "2020-01-01")
    assert train.depends_on == ("prepare",)
    assert train.task.name == "train-model"
    assert train.task.scale_tier == "BASIC"
    assert train.task.labels == {"team": "ml"}
    assert dag.roots() == ("prepare",)
    assert dag.successors("prepare") == ("train",)


def test_to_request_matches_the_seed_job_body() -> None:
    prepare, train = load(SEED).steps
    assert prepare.task.to_request() == {
        "job_name": "prepare",
        "imageUri": "gcr.io/project/prepare:1",
        "args": ["--date", "2020-01-01"],
    }
    assert train.task.to_request() == {
        "job_name": "train-model",
        "imageUri": "gcr.io/project/train:1",
        "scaleTier": "BASIC",
        "labels": {"team": "ml"},
    }


def test_map_args_pass_through_in_written_order() -> None:
    dag = load(steps_yaml("{id: a, task: {imageUri: x, args: {zeta: '1', alpha: two, mid: ''}}}"))
    args = dag.steps[0].task.to_request()["args"]
    assert args == {"zeta": "1", "alpha": "two", "mid": ""}
    assert list(args) == ["zeta", "alpha", "mid"]


def test_list_args_keep_order_and_duplicates() -> None:
    dag = load(steps_yaml("{id: a, task: {imageUri: x, args: ['--b', '1', '--a', '1', '--b', '2']}}"))
    assert dag.steps[0].task.to_request()["args"] == ["--b", "1", "--a", "1", "--b", "2"]


def test_task_name_defaults_to_step_id() -> None:
    dag = load(steps_yaml("{id: only-step, task: {imageUri: x}}"))
    assert dag.steps[0].task.name == "only-step"
    assert dag.steps[0].task.to_request() == {"job_name": "only-step", "imageUri": "x"}


def test_json_is_accepted(either_parser: str) -> None:
    document = {
        "name": "from-json",
        "steps": [
            {"id": "a", "task": {"imageUri": "x", "args": ["1", "true"]}},
            {"id": "b", "dependsOn": ["a"], "task": {"imageUri": "y", "args": {"k": "v"}}},
        ],
    }
    tab = ("\t",) if either_parser == "libyaml" else ()  # PyYAML's own scanner refuses tab indents
    for indent in (None, 2, *tab):
        dag = load(json.dumps(document, indent=indent).encode())
        assert dag.to_dict()["steps"][1]["task"]["args"] == {"k": "v"}
        assert dag.steps[0].task.args == ("1", "true")


def test_anchors_aliases_and_merge_keys(either_parser: str) -> None:
    dag = load(
        """\
        steps:
          - id: a
            task: &defaults
              imageUri: gcr.io/p/base:1
              scaleTier: BASIC
              labels: &labels {team: ml}
          - id: b
            task: *defaults
          - id: c
            dependsOn: [a, b]
            task:
              <<: *defaults
              name: c-job
              labels: *labels
        """
    )
    a, b, c = dag.steps
    assert b.task == replace(a.task, name="b")
    assert c.task.name == "c-job"
    assert c.task.image_uri == "gcr.io/p/base:1"
    assert c.task.scale_tier == "BASIC"
    assert c.task.labels == {"team": "ml"}


def test_null_optional_values_count_as_absent() -> None:
    dag = load(
        """\
        name:
        steps:
          - id: a
            description:
            dependsOn:
            task: {imageUri: x, name: null, args: ~, scaleTier: , labels: null}
        """
    )
    step = dag.steps[0]
    assert (dag.name, step.description, step.depends_on, step.task.name) == ("", "", (), "a")
    assert step.task.to_request() == {"job_name": "a", "imageUri": "x"}


def test_byte_order_mark_is_accepted(either_parser: str) -> None:
    assert load(b"\xef\xbb\xbf" + steps_yaml("{id: a, task: {imageUri: x}}").encode()).step_ids == ("a",)


def test_quoted_scalars_are_strings() -> None:
    dag = load(steps_yaml("{id: '1', task: {imageUri: x, args: ['1', 'true', '2020-01-01'], labels: {v: '1'}}}"))
    assert dag.steps[0].id == "1"
    assert dag.steps[0].task.args == ("1", "true", "2020-01-01")


def test_ids_may_use_dots_underscores_and_dashes_up_to_the_limit() -> None:
    long_id = "a" * MAX_ID_LENGTH
    dag = load(steps_yaml("{id: v1.2_a-b, task: {imageUri: x}}", f"{{id: {long_id}, task: {{imageUri: x}}}}"))
    assert dag.step_ids == ("v1.2_a-b", long_id)


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "dags").glob("*.yaml")))
def test_example_dags_in_the_repository_are_valid(name: str) -> None:
    dag = LocalDags().read(str(REPO / "dags" / name))
    assert dag.steps


def test_seed_engine_fork_join_posts_engine_and_url() -> None:
    dag = LocalDags().read(str(REPO / "dags" / "seed_engine_fork_join.yaml"))
    assert dag.roots() == ("step_1",)
    assert dag.successors("step_1") == ("step_2", "step_3")
    assert [s.depends_on for s in dag.steps[1:]] == [("step_1",), ("step_1",), ("step_2", "step_3")]
    url = "https://hello-abc123-ew.a.run.app"
    assert dag.steps[0].task.to_request() == {"job_name": "step_1", "engine": "edge", "url": url}
    assert dag.steps[2].task.to_request() == {
        "job_name": "step-3-job",
        "engine": "edge",
        "url": url + "/work",
        "args": ["--mode", "fast"],
    }
    assert Dag.from_dict(json.loads(json.dumps(dag.to_dict()))) == dag


def test_seed_unquoted_args_post_the_text_as_written() -> None:
    prepare, train = LocalDags().read(str(REPO / "dags" / "seed_unquoted_args.yaml")).steps
    assert prepare.task.to_request() == {
        "job_name": "prepare",
        "imageUri": "gcr.io/project/prepare:1",
        "args": ["--epochs", "3", "--lr", "0.010", "--debug", "true"],
        "labels": {"version": "2", "nightly": "yes"},
    }
    assert train.task.to_request()["args"] == {"epochs": "3", "lr": "0.010", "steps": "1e3", "debug": "true"}


def test_engine_task_needs_no_image_and_an_image_task_needs_no_engine() -> None:
    dag = load(
        steps_yaml(
            "{id: a, task: {engine: edge}}", "{id: b, task: {imageUri: x, engine: edge, url: 'http://h:8080/p'}}"
        )
    )
    assert dag.steps[0].task.to_request() == {"job_name": "a", "engine": "edge"}
    assert dag.steps[1].task.to_request() == {
        "job_name": "b",
        "imageUri": "x",
        "engine": "edge",
        "url": "http://h:8080/p",
    }


@pytest.mark.parametrize("url", ["hello.a.run.app", "ftp://h/x", "https://", "/relative/path", "''", "'http://[x'"])
def test_url_must_be_an_absolute_http_url(url: str) -> None:
    problem = one_problem(steps_yaml(f"{{id: a, task: {{engine: edge, url: {url}}}}}"))
    assert problem.startswith("steps[0] (id 'a').task.url: must be an absolute http:// or https:// URL, got ")


def test_engine_fields_refuse_typos_and_wrong_types() -> None:
    found = problems(
        steps_yaml(
            "{id: a, task: {engin: edge, url: 5}}", "{id: b, task: {engine: [edge]}}", "{id: c, task: {engine: ''}}"
        )
    )
    assert found == [
        "steps[0] (id 'a').task: unknown key 'engin'; did you mean 'engine'?",
        "steps[0] (id 'a').task.url: must be a string, got integer 5; put it in quotes to keep it as text",
        "steps[0] (id 'a').task: missing required key 'imageUri' (the container image to run)",
        "steps[1] (id 'b').task.engine: must be a string, got a list",
        "steps[1] (id 'b').task: missing required key 'imageUri' (the container image to run)",
        "steps[2] (id 'c').task.engine: must not be empty (or leave it out)",
    ]


# ---------------------------------------------------------------- bytes and YAML


@pytest.mark.parametrize("data", [b"", b"  \n\n\t\n"])
def test_empty_file(data: bytes) -> None:
    assert one_problem(data) == "file is empty: expected a mapping with 'steps'"


def test_file_with_only_comments_is_empty() -> None:
    assert "file is empty" in one_problem(b"# nothing here\n")


def test_non_utf8_bytes_name_the_offset() -> None:
    data = b"steps:\n  - id: caf\xe9\n"
    problem = one_problem(data)
    assert problem.startswith("line 2: file is not valid UTF-8")
    assert "0xe9" in problem
    assert f"offset {len(b'steps:  - id: caf') + 1}" in problem


def test_unparsable_yaml_names_line_and_column(either_parser: str) -> None:
    problem = one_problem("steps:\n  - id: a\n    task: {imageUri: x\n  - id: b\n")
    assert problem.startswith("line ")
    assert ", column " in problem
    assert "YAML syntax error" in problem


def test_bad_indentation_names_its_line(either_parser: str) -> None:
    problem = one_problem("steps:\n  - id: a\n    task:\n      imageUri: x\n     name: y\n")
    assert problem.startswith("line 5, column")


def test_control_character_is_refused(either_parser: str) -> None:
    assert one_problem(b"steps:\n  - id: a\x01\n") == "line 2: character U+0001 is not allowed in a YAML file"


def test_python_object_tag_is_refused_naming_its_line(either_parser: str) -> None:
    found = problems(
        """\
        steps:
          - id: a
            task: !!python/object/apply:os.system ["echo hi"]
          - id: b
            task: {imageUri: !custom x}
        """
    )
    assert found[0].startswith("line 3: tag '!!python/object/apply:os.system' is not allowed")
    assert found[1].startswith("line 5: tag '!custom' is not allowed")


def test_second_document_is_refused() -> None:
    problem = one_problem(steps_yaml("{id: a, task: {imageUri: x}}") + "---\n" + steps_yaml("{id: b}"))
    assert problem.startswith("line 3: a second YAML document")


def test_undefined_alias_is_refused() -> None:
    assert one_problem(steps_yaml("{id: a, task: *nowhere}")) == (
        "line 2: alias '*nowhere' refers to no anchor '&nowhere' defined before it"
    )


def test_recursive_alias_is_refused(either_parser: str) -> None:
    assert "recursive structure" in one_problem("steps: &s [{id: a, task: {imageUri: x, args: *s}}]\n")


def test_duplicate_keys_are_reported_with_other_problems() -> None:
    found = problems(
        """\
        steps:
          - id: a
            task: {imageUri: x, imageUri: y}
          - id: b
            id: c
        """
    )
    assert "line 3, column 25: duplicate key 'imageUri' (first at line 3, column 12)" in found
    assert "line 5, column 5: duplicate key 'id' (first at line 4, column 5)" in found
    assert "steps[1] (id 'c'): missing required key 'task' (the job to run, with at least 'imageUri')" in found


def test_invalid_date_is_refused_naming_its_line() -> None:
    problem = one_problem(steps_yaml("{id: a, task: {imageUri: x, name: 2020-13-45}}"))
    assert problem.startswith("line 2, column ")
    assert "'2020-13-45' cannot be read as !!timestamp; put it in quotes" in problem


# ---------------------------------------------------------------- top level


def test_top_level_not_a_mapping() -> None:
    assert one_problem("- id: a\n") == "the top level must be a mapping with 'steps', got a list"
    assert one_problem("just text\n") == "the top level must be a mapping with 'steps', got string 'just text'"


def test_missing_steps() -> None:
    assert one_problem("name: x\n") == "steps: missing required key 'steps' (the list of steps)"


@pytest.mark.parametrize(
    ("value", "kind"), [("{id: a}", "a mapping"), ("a", "string 'a'"), ("3", "integer 3"), ("", "null")]
)
def test_steps_not_a_list(value: str, kind: str) -> None:
    assert one_problem(f"steps: {value}\n") == f"steps: must be a list of steps, got {kind}"


def test_empty_steps() -> None:
    assert one_problem("steps: []\n") == "steps: must list at least one step"


def test_top_level_name_must_be_a_string() -> None:
    assert one_problem("name: 12\n" + steps_yaml(f"{{id: a, {OK_TASK}}}")) == (
        "name: must be a string, got integer 12; put it in quotes to keep it as text"
    )


def test_unknown_top_level_key_suggests_the_closest() -> None:
    found = problems("name: x\nstep:\n  - id: a\n")
    assert "unknown top-level key 'step'; did you mean 'steps'?" in found


# ---------------------------------------------------------------- steps and ids


def test_step_not_a_mapping() -> None:
    assert one_problem(steps_yaml(f"{{id: a, {OK_TASK}}}", "just-a-string")) == (
        "steps[1]: must be a mapping with 'id' and 'task', got string 'just-a-string'"
    )


def test_missing_id() -> None:
    assert one_problem(steps_yaml(OK_TASK.join("{}"))) == "steps[0]: missing required key 'id'"


def test_empty_id() -> None:
    assert one_problem(steps_yaml(f"{{id: '', {OK_TASK}}}")) == "steps[0].id: must not be empty"


@pytest.mark.parametrize(
    ("value", "kind"),
    [("7", "integer 7; put it in quotes"), ("true", "boolean true; put it"), ("[a]", "a list"), ("~", "null")],
)
def test_non_string_id(value: str, kind: str) -> None:
    assert one_problem(steps_yaml(f"{{id: {value}, {OK_TASK}}}")).startswith(
        f"steps[0].id: must be a string, got {kind}"
    )


def test_duplicate_ids_name_both_positions() -> None:
    problem = one_problem(steps_yaml(f"{{id: a, {OK_TASK}}}", f"{{id: b, {OK_TASK}}}", f"{{id: a, {OK_TASK}}}"))
    assert problem == "steps[2] (id 'a'): duplicate id 'a': steps[0] has the same id"


def test_id_too_long() -> None:
    problem = one_problem(steps_yaml(f"{{id: {'x' * (MAX_ID_LENGTH + 1)}, {OK_TASK}}}"))
    assert problem.startswith(f"steps[0].id: is {MAX_ID_LENGTH + 1} characters long; the limit is {MAX_ID_LENGTH}")
    assert "document ids and job names" in problem


@pytest.mark.parametrize("bad_id", ["with space", "slash/ed", "colon:ed", "ünï"])
def test_id_characters(bad_id: str) -> None:
    problem = one_problem(steps_yaml(f"{{id: '{bad_id}', {OK_TASK}}}"))
    assert problem.startswith(f"steps[0].id: '{bad_id}' contains ")
    assert "only letters, digits, '.', '_' and '-' are allowed (step ids become document ids and job names)" in problem


@pytest.mark.parametrize("reserved", [".", "..", "__x__"])
def test_reserved_ids(reserved: str) -> None:
    assert f"'{reserved}' is reserved" in one_problem(steps_yaml(f"{{id: '{reserved}', {OK_TASK}}}"))


def test_unknown_step_key_suggests_dependsOn() -> None:
    found = problems(steps_yaml(f"{{id: a, {OK_TASK}}}", f"{{id: b, depends_on: [a], {OK_TASK}}}"))
    assert found == ["steps[1] (id 'b'): unknown key 'depends_on'; did you mean 'dependsOn'?"]


def test_unknown_key_without_a_close_match_lists_the_known_keys() -> None:
    assert one_problem(steps_yaml(f"{{id: a, xyzzy: 1, {OK_TASK}}}")) == (
        "steps[0] (id 'a'): unknown key 'xyzzy'; expected one of: id, description, dependsOn, task, forEach, retries, "
        "retryDelaySec, timeoutSec, runIf"
    )


def test_description_must_be_a_string() -> None:
    assert one_problem(steps_yaml(f"{{id: a, description: [x], {OK_TASK}}}")) == (
        "steps[0] (id 'a').description: must be a string, got a list"
    )


# ---------------------------------------------------------------- dependencies


def test_depends_on_not_a_list() -> None:
    problem = one_problem(steps_yaml(f"{{id: a, {OK_TASK}}}", f"{{id: b, dependsOn: a, {OK_TASK}}}"))
    assert problem == "steps[1] (id 'b').dependsOn: must be a list of step ids, got string 'a'; write [a]"


def test_depends_on_with_non_strings() -> None:
    found = problems(steps_yaml(f"{{id: '1', {OK_TASK}}}", f"{{id: b, dependsOn: ['1', 1, {{x: y}}], {OK_TASK}}}"))
    assert found == [
        "steps[1] (id 'b').dependsOn[1]: must be a step id (a string), got integer 1; put it in quotes to keep it "
        "as text",
        "steps[1] (id 'b').dependsOn[2]: must be a step id (a string), got a mapping",
    ]


def test_depends_on_listing_a_step_twice() -> None:
    problem = one_problem(steps_yaml(f"{{id: a, {OK_TASK}}}", f"{{id: b, dependsOn: [a, a], {OK_TASK}}}"))
    assert problem == "steps[1] (id 'b').dependsOn[1]: 'a' is listed more than once"


def test_unknown_dependency_suggests_a_close_id() -> None:
    found = problems(steps_yaml(f"{{id: prepare, {OK_TASK}}}", f"{{id: train, dependsOn: [prepar, zzz], {OK_TASK}}}"))
    assert found == [
        "steps[1] (id 'train').dependsOn[0]: unknown step 'prepar'; did you mean 'prepare'?",
        "steps[1] (id 'train').dependsOn[1]: unknown step 'zzz' (no step has this id)",
    ]


def test_self_dependency() -> None:
    assert one_problem(steps_yaml(f"{{id: a, dependsOn: [a], {OK_TASK}}}")) == (
        "steps[0] (id 'a').dependsOn[0]: a step cannot depend on itself"
    )


def test_cycle_is_printed_as_a_path() -> None:
    problem = one_problem(
        steps_yaml(
            f"{{id: a, dependsOn: [c], {OK_TASK}}}",
            f"{{id: b, dependsOn: [a], {OK_TASK}}}",
            f"{{id: c, dependsOn: [b], {OK_TASK}}}",
            f"{{id: d, dependsOn: [c], {OK_TASK}}}",
        )
    )
    assert problem == "steps[0] (id 'a'): dependency cycle: a -> c -> b -> a (each step depends on the next)"


def test_every_disjoint_cycle_is_reported() -> None:
    found = problems(
        steps_yaml(
            f"{{id: x, {OK_TASK}}}",
            f"{{id: a, dependsOn: [x, b], {OK_TASK}}}",
            f"{{id: b, dependsOn: [a], {OK_TASK}}}",
            f"{{id: c, dependsOn: [d], {OK_TASK}}}",
            f"{{id: d, dependsOn: [c], {OK_TASK}}}",
        )
    )
    assert found == [
        "steps[1] (id 'a'): dependency cycle: a -> b -> a (each step depends on the next)",
        "steps[3] (id 'c'): dependency cycle: c -> d -> c (each step depends on the next)",
    ]


def test_a_bad_step_does_not_hide_a_cycle_elsewhere() -> None:
    found = problems(
        steps_yaml(
            "{id: bad, dependsOn: [nowhere, 3]}",
            f"{{id: a, dependsOn: [b], {OK_TASK}}}",
            f"{{id: b, dependsOn: [a], {OK_TASK}}}",
        )
    )
    assert len(found) == 4, found
    assert found[-1] == "steps[1] (id 'a'): dependency cycle: a -> b -> a (each step depends on the next)"


# ---------------------------------------------------------------- tasks


def test_missing_task() -> None:
    assert one_problem(steps_yaml("{id: a}")) == (
        "steps[0] (id 'a'): missing required key 'task' (the job to run, with at least 'imageUri')"
    )


@pytest.mark.parametrize(("value", "kind"), [("~", "null"), ("x", "string 'x'"), ("[x]", "a list")])
def test_task_not_a_mapping(value: str, kind: str) -> None:
    assert one_problem(steps_yaml(f"{{id: a, task: {value}}}")) == (
        f"steps[0] (id 'a').task: must be a mapping with at least 'imageUri', got {kind}"
    )


def test_missing_image_uri() -> None:
    assert one_problem(steps_yaml("{id: a, task: {name: n}}")) == (
        "steps[0] (id 'a').task: missing required key 'imageUri' (the container image to run)"
    )


@pytest.mark.parametrize("value", ["''", "'   '"])
def test_empty_image_uri(value: str) -> None:
    assert one_problem(steps_yaml(f"{{id: a, task: {{imageUri: {value}}}}}")) == (
        "steps[0] (id 'a').task.imageUri: must not be empty (the container image to run)"
    )


def test_image_uri_of_wrong_type() -> None:
    assert one_problem(steps_yaml("{id: a, task: {imageUri: ~}}")) == (
        "steps[0] (id 'a').task.imageUri: must be a string (the container image to run), got null"
    )


@pytest.mark.parametrize(
    ("key", "suggestion"),
    [
        ("image_uri", "imageUri"),
        ("imageURI", "imageUri"),
        ("scale_tier", "scaleTier"),
        ("master-type", "masterType"),
        ("lables", "labels"),
        ("Args", "args"),
    ],
)
def test_unknown_task_key_suggests_the_closest(key: str, suggestion: str) -> None:
    found = problems(steps_yaml(f"{{id: a, task: {{imageUri: x, {key}: v}}}}"))
    assert found == [f"steps[0] (id 'a').task: unknown key '{key}'; did you mean '{suggestion}'?"]


def test_scalars_in_args_and_labels_keep_the_text_as_written() -> None:
    dag = load(
        steps_yaml(
            "{id: a, task: {imageUri: x, args: [1, true, 0.010, 1e3, 2020-01-01, on, yes, 0x1F, 'q'],"
            " labels: {version: 2, debug: false, 3: three, lr: .5}}}",
            "{id: b, task: {imageUri: x, args: {epochs: 3, 1: one, ok: fine, when: 2020-13-45}}}",
        )
    )
    a, b = dag.steps
    assert a.task.args == ("1", "true", "0.010", "1e3", "2020-01-01", "on", "yes", "0x1F", "q")
    assert a.task.labels == {"version": "2", "debug": "false", "3": "three", "lr": ".5"}
    assert b.task.to_request()["args"] == {"epochs": "3", "1": "one", "ok": "fine", "when": "2020-13-45"}


def test_null_lists_and_mappings_in_args_are_refused() -> None:
    found = problems(
        steps_yaml(
            "{id: a, task: {imageUri: x, args: [--a, null, [1], {k: v}]}}",
            "{id: b, task: {imageUri: x, args: {epochs: [3], n: ~, ~: x}}}",
        )
    )
    assert found == [
        "steps[0] (id 'a').task.args[1]: must be a string, got null",
        "steps[0] (id 'a').task.args[2]: must be a string, got a list",
        "steps[0] (id 'a').task.args[3]: must be a string, got a mapping",
        "steps[1] (id 'b').task.args.epochs: must be a string, got a list",
        "steps[1] (id 'b').task.args.n: must be a string, got null",
        "steps[1] (id 'b').task.args: key null must be a string",
    ]


def test_args_of_the_wrong_kind() -> None:
    assert one_problem(steps_yaml("{id: a, task: {imageUri: x, args: '--a b'}}")) == (
        "steps[0] (id 'a').task.args: must be a list of strings or a mapping of string to string, got string '--a b'"
    )


def test_labels_must_map_strings_to_strings() -> None:
    found = problems(
        steps_yaml("{id: a, task: {imageUri: x, labels: {version: [2]}}}", "{id: b, task: {imageUri: x, labels: [a]}}")
    )
    assert found == [
        "steps[0] (id 'a').task.labels.version: must be a string, got a list",
        "steps[1] (id 'b').task.labels: must be a mapping of string to string, got a list",
    ]


def test_other_task_fields_must_be_strings() -> None:
    found = problems(steps_yaml("{id: a, task: {imageUri: x, name: 5, scaleTier: [BASIC], masterType: 1.5}}"))
    assert found == [
        "steps[0] (id 'a').task.name: must be a string, got integer 5; put it in quotes to keep it as text",
        "steps[0] (id 'a').task.scaleTier: must be a string, got a list",
        "steps[0] (id 'a').task.masterType: must be a string, got number 1.5; put it in quotes to keep it as text",
    ]


def test_empty_task_name() -> None:
    assert one_problem(steps_yaml("{id: a, task: {imageUri: x, name: ''}}")) == (
        "steps[0] (id 'a').task.name: must not be empty (leave it out to use the step id)"
    )


# ---------------------------------------------------------------- retries, timeouts, runIf, maxParallel

EVERY_KEY = """\
name: nightly
maxParallel: 4
timeoutSec: 86400
defaults:
  retries: 1
steps:
  - id: train
    retries: 2
    retryDelaySec: 60
    timeoutSec: 7200
    task: {imageUri: x}
  - id: cleanup
    dependsOn: [train]
    runIf: allDone
    task: {imageUri: y}
"""


def test_each_key_is_parsed_into_the_model() -> None:
    dag = load(EVERY_KEY)
    assert (dag.max_parallel, dag.timeout) == (4, 86400.0)
    assert isinstance(dag.timeout, float)
    train, cleanup = dag.steps
    assert train.policy == Policy(retries=2, retry_delay=60.0, timeout=7200.0, run_if=RunIf.ALL_SUCCEEDED)
    assert cleanup.policy == Policy(retries=1, run_if=RunIf.ALL_DONE)
    assert dag.waits_for_any_end("train") == ("cleanup",)


def test_a_dag_using_every_key_round_trips_through_to_dict() -> None:
    dag = load(EVERY_KEY)
    assert Dag.from_dict(json.loads(json.dumps(dag.to_dict()))) == dag


def test_without_the_keys_a_dag_parses_as_before() -> None:
    dag = load(SEED)
    assert (dag.max_parallel, dag.timeout) == (None, None)
    assert [s.policy for s in dag.steps] == [Policy(), Policy()]
    assert "maxParallel" not in dag.to_dict() and "timeoutSec" not in dag.to_dict()
    assert dag.steps[0].to_dict() == {
        "id": "prepare",
        "description": "fetch the data",
        "dependsOn": [],
        "task": {"name": "prepare", "imageUri": "gcr.io/project/prepare:1", "args": ["--date", "2020-01-01"]},
    }


def test_defaults_apply_to_every_step_and_a_steps_own_key_wins() -> None:
    dag = load(
        "defaults: {retries: 3, retryDelaySec: 5, timeoutSec: 60, runIf: anyFailed}\n"
        + steps_yaml(
            f"{{id: a, {OK_TASK}}}",
            f"{{id: b, retries: 0, retryDelaySec: 0.5, timeoutSec: 1.5, runIf: allSucceeded, {OK_TASK}}}",
            f"{{id: c, retries: null, {OK_TASK}}}",
        )
    )
    a, b, c = (s.policy for s in dag.steps)
    assert a == Policy(retries=3, retry_delay=5.0, timeout=60.0, run_if=RunIf.ANY_FAILED)
    assert b == Policy(retries=0, retry_delay=0.5, timeout=1.5, run_if=RunIf.ALL_SUCCEEDED)
    assert c == a  # a null key is absent: the default applies


def test_bounds_are_accepted() -> None:
    dag = load(
        f"maxParallel: {MAX_STEPS}\ntimeoutSec: {30 * 86_400}\n"
        + steps_yaml(f"{{id: a, retries: 20, retryDelaySec: 3600, timeoutSec: 0.001, {OK_TASK}}}")
    )
    assert (dag.max_parallel, dag.timeout) == (MAX_STEPS, 30 * 86_400.0)
    assert dag.steps[0].policy == Policy(retries=20, retry_delay=3600.0, timeout=0.001)


INTEGERS_0_TO_20 = "must be an integer from 0 to 20, got"
DELAYS = "must be a number over 0 and at most 3,600, got"
TIMEOUTS = "must be a number over 0 and at most 2,592,000, got"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("retries", "-1", f"{INTEGERS_0_TO_20} integer -1"),
        ("retries", "21", f"{INTEGERS_0_TO_20} integer 21"),
        ("retries", "true", f"{INTEGERS_0_TO_20} boolean true"),
        ("retries", "2.0", f"{INTEGERS_0_TO_20} number 2.0"),
        ("retries", "'2'", f"{INTEGERS_0_TO_20} string '2'"),
        ("retryDelaySec", "0", f"{DELAYS} integer 0"),
        ("retryDelaySec", "-5", f"{DELAYS} integer -5"),
        ("retryDelaySec", "3600.5", f"{DELAYS} number 3600.5"),
        ("retryDelaySec", ".nan", f"{DELAYS} number nan"),
        ("retryDelaySec", "false", f"{DELAYS} boolean false"),
        ("timeoutSec", "0", f"{TIMEOUTS} integer 0"),
        ("timeoutSec", "-0.5", f"{TIMEOUTS} number -0.5"),
        ("timeoutSec", ".inf", f"{TIMEOUTS} number inf"),
        ("timeoutSec", "2592001", f"{TIMEOUTS} integer 2592001"),
        ("timeoutSec", "[60]", f"{TIMEOUTS} a list"),
        ("runIf", "alldone", "unknown value 'alldone'; did you mean 'allDone'?"),
        ("runIf", "any_failed", "unknown value 'any_failed'; did you mean 'anyFailed'?"),
        ("runIf", "always", "unknown value 'always'; expected one of: allSucceeded, allDone, anyFailed"),
        ("runIf", "true", "unknown value boolean true; expected one of: allSucceeded, allDone, anyFailed"),
        ("runIf", "[allDone]", "unknown value a list; expected one of: allSucceeded, allDone, anyFailed"),
    ],
)
def test_invalid_step_keys_name_the_step_and_key(key: str, value: str, message: str) -> None:
    assert one_problem(steps_yaml(f"{{id: a, {OK_TASK}}}", f"{{id: b, {key}: {value}, {OK_TASK}}}")) == (
        f"steps[1] (id 'b').{key}: {message}"
    )
    assert one_problem(f"defaults: {{{key}: {value}}}\n" + steps_yaml(f"{{id: a, {OK_TASK}}}")) == (
        f"defaults.{key}: {message}"
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("maxParallel", "0", f"must be an integer from 1 to {MAX_STEPS:,}, got integer 0"),
        ("maxParallel", str(MAX_STEPS + 1), f"must be an integer from 1 to {MAX_STEPS:,}, got integer {MAX_STEPS + 1}"),
        ("maxParallel", "1.5", f"must be an integer from 1 to {MAX_STEPS:,}, got number 1.5"),
        ("maxParallel", "yes", f"must be an integer from 1 to {MAX_STEPS:,}, got boolean true"),
        ("timeoutSec", "0", f"{TIMEOUTS} integer 0"),
        ("timeoutSec", ".nan", f"{TIMEOUTS} number nan"),
        ("timeoutSec", "'1h'", f"{TIMEOUTS} string '1h'"),
    ],
)
def test_invalid_run_keys_are_named(key: str, value: str, message: str) -> None:
    assert one_problem(f"{key}: {value}\n" + steps_yaml(f"{{id: a, {OK_TASK}}}")) == f"{key}: {message}"


@pytest.mark.parametrize(("value", "kind"), [("[retries]", "a list"), ("3", "integer 3"), ("all", "string 'all'")])
def test_defaults_must_be_a_mapping(value: str, kind: str) -> None:
    assert one_problem(f"defaults: {value}\n" + steps_yaml(f"{{id: a, {OK_TASK}}}")) == (
        f"defaults: must be a mapping of step keys (retries, retryDelaySec, timeoutSec, runIf), got {kind}"
    )


def test_defaults_hold_only_the_policy_keys() -> None:
    found = problems("defaults: {retry: 1, task: {imageUri: x}, zzz: 1}\n" + steps_yaml(f"{{id: a, {OK_TASK}}}"))
    assert found == [
        "defaults: unknown key 'retry'; did you mean 'retries'?",
        "defaults: unknown key 'task'; expected one of: retries, retryDelaySec, timeoutSec, runIf",
        "defaults: unknown key 'zzz'; expected one of: retries, retryDelaySec, timeoutSec, runIf",
    ]


def test_misspelt_policy_keys_get_a_suggestion() -> None:
    found = problems(
        "max_parallel: 2\ntimeout: 5\n" + steps_yaml(f"{{id: a, retry_delay_sec: 1, run_if: x, {OK_TASK}}}")
    )
    assert found == [
        "unknown top-level key 'max_parallel'; did you mean 'maxParallel'?",
        "unknown top-level key 'timeout'; did you mean 'timeoutSec'?",
        "steps[0] (id 'a'): unknown key 'retry_delay_sec'; did you mean 'retryDelaySec'?",
        "steps[0] (id 'a'): unknown key 'run_if'; did you mean 'runIf'?",
    ]


def test_every_policy_problem_is_reported_at_once() -> None:
    found = problems(
        "maxParallel: 0\ndefaults: {retries: 99}\n"
        + steps_yaml(f"{{id: a, runIf: alldone, {OK_TASK}}}", f"{{id: b, timeoutSec: 0, retryDelaySec: 0, {OK_TASK}}}")
    )
    assert found == [
        f"maxParallel: must be an integer from 1 to {MAX_STEPS:,}, got integer 0",
        f"defaults.retries: {INTEGERS_0_TO_20} integer 99",
        "steps[0] (id 'a').runIf: unknown value 'alldone'; did you mean 'allDone'?",
        f"steps[1] (id 'b').retryDelaySec: {DELAYS} integer 0",
        f"steps[1] (id 'b').timeoutSec: {TIMEOUTS} integer 0",
    ]


# ---------------------------------------------------------------- all problems at once


def test_four_separate_problems_are_all_reported() -> None:
    found = problems(
        """\
        name: four-problems
        steps:
          - id: prepare
            task: {image_uri: gcr.io/p/prepare:1}
          - id: train
            dependsOn: [prepare, evaluate]
            task: {imageUri: gcr.io/p/train:1, args: [--epochs, [3]]}
          - id: evaluate
            dependsOn: [train]
            task: {imageUri: gcr.io/p/evaluate:1}
        """
    )
    assert found == [
        "steps[0] (id 'prepare').task: unknown key 'image_uri'; did you mean 'imageUri'?",
        "steps[0] (id 'prepare').task: missing required key 'imageUri' (the container image to run)",
        "steps[1] (id 'train').task.args[1]: must be a string, got a list",
        "steps[1] (id 'train'): dependency cycle: train -> evaluate -> train (each step depends on the next)",
    ]


def test_problems_are_grouped_by_step_in_file_order() -> None:
    found = problems(
        steps_yaml(
            "{id: a, dependsOn: [nope]}",
            f"{{id: b, {OK_TASK}}}",
            f"{{id: a, {OK_TASK}}}",
        )
    )
    assert [p.split(":")[0] for p in found] == [
        "steps[0] (id 'a')",
        "steps[0] (id 'a').dependsOn[0]",
        "steps[2] (id 'a')",
    ]


def test_the_message_lists_every_problem_with_the_origin() -> None:
    with pytest.raises(DagInvalid) as info:
        parse_dag(steps_yaml("{id: a}", "{id: b}").encode(), "dags/x.yaml")
    text = str(info.value)
    assert text.startswith("dags/x.yaml: invalid DAG (2 problem(s)):")
    assert "steps[0] (id 'a')" in text and "steps[1] (id 'b')" in text
    assert isinstance(info.value, InputError)


def test_a_flood_of_problems_is_capped() -> None:
    found = problems(steps_yaml(*["{id: a}"] * (MAX_REPORTED_PROBLEMS + 10)))
    assert len(found) == MAX_REPORTED_PROBLEMS + 1
    assert found[-1].startswith("... and ")


# ---------------------------------------------------------------- limits


def test_file_over_the_size_limit_is_refused_before_parsing() -> None:
    data = b"\xff" * (MAX_FILE_BYTES + 1)  # not even UTF-8: the size is checked first
    assert one_problem(data) == f"file is {MAX_FILE_BYTES + 1:,} bytes; the limit is {MAX_FILE_BYTES:,} bytes (1 MiB)"


def test_file_at_the_size_limit_is_accepted() -> None:
    body = steps_yaml(f"{{id: a, {OK_TASK}}}").encode()
    data = body + b"#" + b"x" * (MAX_FILE_BYTES - len(body) - 2) + b"\n"
    assert len(data) == MAX_FILE_BYTES
    assert load(data).step_ids == ("a",)


def test_step_count_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validate, "MAX_STEPS", 3)
    assert len(load(steps_yaml(*[f"{{id: s{i}, {OK_TASK}}}" for i in range(3)])).steps) == 3
    problem = one_problem(steps_yaml(*[f"{{id: s{i}, {OK_TASK}}}" for i in range(4)]))
    assert problem == "steps: 4 steps; the limit is 3 steps per DAG"


def test_default_step_count_limit_is_5000() -> None:
    found = problems(steps_yaml(*[f"{{id: s{i}, {OK_TASK}}}" for i in range(5001)]))
    assert found == ["steps: 5,001 steps; the limit is 5,000 steps per DAG"]


def billion_laughs(levels: int) -> bytes:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]")
    return ("\n".join(lines) + "\n").encode()


def test_alias_bomb_is_refused_before_anything_is_built(either_parser: str) -> None:
    tracemalloc.start()
    try:
        problem = one_problem(billion_laughs(9))  # 10**9 strings once expanded
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20  # bounded before expansion: a built result would take gigabytes
    assert "too many nodes after expanding YAML aliases (limit 200,000): a YAML alias bomb?" in problem


def test_alias_bomb_inside_a_valid_looking_dag_is_refused() -> None:
    bomb = textwrap.indent(billion_laughs(6).decode(), " " * 8)
    text = f"steps:\n  - id: a\n    task:\n      imageUri: x\n      labels:\n{bomb}"
    assert "a YAML alias bomb?" in one_problem(text.encode())


def test_alias_to_a_long_string_is_refused_in_little_memory() -> None:
    text = 's: &s "' + "x" * 100_000 + '"\nl: [' + ", ".join(["*s"] * 1_500) + "]\n"
    assert 100_000 < len(text) < 110_000  # 150 MB of text once the aliases are expanded
    tracemalloc.start()
    try:
        problem = one_problem(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert problem == (
        f"line 2: the text is over {MAX_EXPANDED_BYTES:,} bytes with YAML aliases expanded: a YAML alias bomb?"
    )
    assert peak < 10 * 1_048_576


def test_text_within_the_expanded_limit_is_accepted() -> None:
    copies = MAX_EXPANDED_BYTES // 100_000 - 2
    args = ", ".join(["*s"] * copies)
    text = 'name: &s "' + "x" * 100_000 + '"\n' + steps_yaml(f"{{id: a, task: {{imageUri: x, args: [{args}]}}}}")
    assert load(text).steps[0].task.args == ("x" * 100_000,) * copies


def test_too_many_plain_nodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_load, "MAX_YAML_NODES", 100)
    problem = one_problem(steps_yaml(f"{{id: a, task: {{imageUri: x, args: [{', '.join(['a'] * 100)}]}}}}"))
    assert problem == "line 2: too many YAML nodes (limit 100)"


def test_deep_nesting_is_refused_naming_its_line(either_parser: str) -> None:
    depth = MAX_NESTING_DEPTH + 10
    problem = one_problem(b"steps:\n  - " + b"[" * depth + b"]" * depth + b"\n")
    assert problem == f"line 2: lists and mappings are nested more than {MAX_NESTING_DEPTH} levels deep"


def test_very_deep_nesting_is_refused_without_recursion_errors(either_parser: str) -> None:
    depth = 100_000  # far beyond Python's recursion limit; libyaml stops at its own limit
    problem = one_problem(b"steps:\n  - " + b"[" * depth + b"]" * depth + b"\n")
    assert problem.startswith("line 2")
    assert "nested more than" in problem or "nesting depth" in problem


def test_nesting_through_aliases_counts_too() -> None:
    half = MAX_NESTING_DEPTH // 2 + 1
    text = f"a: &a {'[' * half}x{']' * half}\nb: {'[' * half}*a{']' * half}\n"
    assert "nested more than" in one_problem(text)


def test_ordinary_nesting_is_fine() -> None:
    dag = load(steps_yaml("{id: a, task: {imageUri: x, labels: {k: v}, args: {k: v}}}"))
    assert dag.steps[0].task.labels == {"k": "v"}


# ---------------------------------------------------------------- GCS source, with a fake client


def api_error(kind: Any, message: str) -> Exception:
    """An instance of a google.api_core exception class (their constructors are untyped)."""
    error: Exception = kind(message)
    return error


class FakeBlob:
    def __init__(self, bucket: FakeBucket, name: str) -> None:
        self._bucket, self._name = bucket, name
        self.size: int | None = None
        self.generation: int | None = None
        self.downloads = 0

    def reload(self, timeout: float) -> None:
        if self._bucket.error is not None:
            raise self._bucket.error
        if self._name not in self._bucket.objects:
            raise api_error(api_exceptions.NotFound, f"No such object: {self._bucket.name}/{self._name}")
        self.size, self.generation = len(self._bucket.objects[self._name]), 7

    def download_as_bytes(self, if_generation_match: int, timeout: float) -> bytes:
        assert if_generation_match == self.generation
        self.downloads += 1
        return self._bucket.objects[self._name]


class FakeBucket:
    def __init__(self, name: str, objects: dict[str, bytes], error: Exception | None) -> None:
        self.name, self.objects, self.error = name, objects, error
        self.blobs: list[FakeBlob] = []

    def blob(self, name: str) -> FakeBlob:
        self.blobs.append(FakeBlob(self, name))
        return self.blobs[-1]


class FakeClient:
    def __init__(self, objects: dict[str, bytes], error: Exception | None = None) -> None:
        self.objects, self.error = objects, error
        self.buckets: list[FakeBucket] = []

    def bucket(self, bucket_name: str) -> FakeBucket:
        self.buckets.append(FakeBucket(bucket_name, self.objects, self.error))
        return self.buckets[-1]


@pytest.fixture
def fake_gcs() -> Iterator[tuple[DagSources, FakeClient, list[int]]]:
    client = FakeClient({"dags/seed.yaml": SEED.encode()})
    made: list[int] = []

    def make() -> FakeClient:
        made.append(1)
        return client

    yield DagSources(make), client, made


def test_gcs_source_reads_and_reuses_one_client(fake_gcs: tuple[DagSources, FakeClient, list[int]]) -> None:
    sources, client, made = fake_gcs
    assert made == []  # nothing is made before the first gs:// read
    assert sources.read("gs://bkt/dags/seed.yaml").step_ids == ("prepare", "train")
    assert sources.read("gs://bkt/dags/seed.yaml").name == "fork-join"
    assert made == [1]
    assert client.buckets[0].name == "bkt"


def test_gcs_missing_object(fake_gcs: tuple[DagSources, FakeClient, list[int]]) -> None:
    sources, _, _ = fake_gcs
    with pytest.raises(DagNotFound, match=r"gs://bkt/nope.yaml: not found") as info:
        sources.read("gs://bkt/nope.yaml")
    assert isinstance(info.value.__cause__, api_exceptions.NotFound)


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (
            api_error(api_exceptions.NotFound, "The specified bucket does not exist."),
            DagNotFound,
            "bucket does not exist",
        ),
        (
            api_error(api_exceptions.Forbidden, "caller does not have storage.objects.get"),
            DagNotFound,
            "permission denied",
        ),
        (api_error(api_exceptions.Unauthorized, "Invalid Credentials"), DagNotFound, "permission denied"),
        (api_error(api_exceptions.ServiceUnavailable, "backend error"), TransientError, "unavailable"),
        (api_error(api_exceptions.BadRequest, "Invalid bucket name"), DagNotFound, "cannot be read"),
        (ConnectionError("connection refused"), TransientError, "cannot reach Cloud Storage"),
    ],
)
def test_gcs_errors_are_translated(error: Exception, expected: type[Exception], text: str) -> None:
    sources = DagSources(lambda: FakeClient({}, error))
    with pytest.raises(expected, match=text) as info:
        sources.read("gs://bkt/dag.yaml")
    assert "gs://bkt/dag.yaml" in str(info.value)
    assert info.value.__cause__ is error


def test_gcs_object_over_the_limit_is_not_downloaded() -> None:
    client = FakeClient({"big.yaml": b"#" * (MAX_FILE_BYTES + 1)})
    sources = DagSources(lambda: client)
    with pytest.raises(DagInvalid, match="the limit is 1,048,576 bytes"):
        sources.read("gs://bkt/big.yaml")
    assert client.buckets[0].blobs[0].downloads == 0


def test_the_functions_source_reads_gs_objects_only() -> None:
    for path in ("/dags/x.yaml", "file:///dags/x.yaml", "gs://bucket-only", "gs:///object"):
        with pytest.raises(DagNotFound, match="expected gs://BUCKET/OBJECT"):
            DagSources(lambda: FakeClient({})).read(path)


def test_importing_the_adapter_does_not_load_the_storage_library() -> None:
    import subprocess
    import sys

    code = "import sys, workflow.adapters.dag_sources; print('google.cloud.storage' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "False"
