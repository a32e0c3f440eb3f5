"""Static checks of the Terraform deployment (no terraform binary, no cloud access).

The engine's function set, entry points and trigger types are defined once, in
terraform/functions.tf (one for_each resource over local.function_specs); the run pages'
function, with its own identity, in terraform/ui.tf. These tests tie those definitions to
main.py in both directions and enforce the IAM / hardening rules of the deployment.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TF_DIR = REPO_ROOT / "terraform"
TF_FILES = sorted(TF_DIR.glob("*.tf"))

FUNCTION_RESOURCE = "google_cloudfunctions2_function"
FUNCTION_ADDRESS = f"{FUNCTION_RESOURCE}.this"
HTTP_FUNCTIONS = {"on_start_request", "on_control_request"}
UI_FUNCTION = "ui"  # google_cloudfunctions2_function.ui (terraform/ui.tf): the run pages
UI_ENTRY_POINT = "run_pages"
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
# Which topic (by name suffix after name_prefix) each Pub/Sub-triggered entry point listens on.
PUBSUB_TOPIC_SUFFIX = {"on_start_message": "-start", "on_engine_message": "-engine",
                       "on_control_message": "-run-control"}
REQUIRED_ENV = {
    "GOOGLE_CLOUD_PROJECT",
    "WORKFLOW_ENGINE_TOPIC",
    "WORKFLOW_EVENTS_TOPIC",
    "WORKFLOW_MAX_INLINE_WAIT_SEC",
    "WORKFLOW_DAG_PREFIX",
    "WORKFLOW_DAG_BUCKETS",
    "WORKFLOW_TR_URL",
    "WORKFLOW_ALLOWED_TR_ORIGINS",
    "WORKFLOW_CHECK_STATE_DURATION_SEC",
    "WORKFLOW_STEP_TIMEOUT_SEC",
    "WORKFLOW_FIRESTORE_DATABASE",
    "LOG_FORMAT",
}
REQUIRED_APIS = {
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "eventarc.googleapis.com",
    "pubsub.googleapis.com",
    "firestore.googleapis.com",
    "cloudbuild.googleapis.com",
    "artifactregistry.googleapis.com",
    "storage.googleapis.com",
}
PUBLIC_MEMBERS = {"allusers", "allauthenticatedusers"}
PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
FUNCTIONS_SA = "google_service_account.functions"
TRIGGER_SA = "google_service_account.trigger"
UI_SA = "google_service_account.ui"


# ---------------------------------------------------------------------------
# HCL loading helpers
# ---------------------------------------------------------------------------


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def _normalize(value: Any) -> Any:
    """Drop python-hcl2 metadata keys and surrounding quotes (format differs across versions)."""
    if isinstance(value, dict):
        return {
            _unquote(k): _normalize(v)
            for k, v in value.items()
            if not (isinstance(k, str) and k.startswith("__") and k.endswith("__"))
        }
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, str):
        return _unquote(value)
    return value


@cache
def load_tf(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        try:
            options = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False)
            raw = hcl2.load(handle, serialization_options=options)
        except (AttributeError, TypeError):  # older python-hcl2 without options
            handle.seek(0)
            raw = hcl2.load(handle)
    return dict(_normalize(raw))


def _blocks(kind: str) -> Iterator[dict[str, Any]]:
    for path in TF_FILES:
        yield from load_tf(path).get(kind, [])


def resources(rtype: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in _blocks("resource"):
        for name, body in block.get(rtype, {}).items():
            assert name not in found, f"duplicate resource {rtype}.{name}"
            found[name] = body
    return found


def all_resources() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for block in _blocks("resource"):
        for rtype, named in block.items():
            for name, body in named.items():
                yield rtype, name, body


def variables() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for block in _blocks("variable"):
        found.update(block)
    return found


def tf_locals() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for block in _blocks("locals"):
        found.update(block)
    return found


def one(block: Any) -> dict[str, Any]:
    """A nested block is a one-element list of dicts."""
    if isinstance(block, list):
        assert len(block) == 1, block
        block = block[0]
    assert isinstance(block, dict), block
    return block


def refers_to(expr: Any, address: str) -> bool:
    return isinstance(expr, str) and re.search(rf"\b{re.escape(address)}\b", expr) is not None


def function_resource() -> dict[str, Any]:
    """The engine's function resource; its instances are the entries of local.function_specs.
    The only other function resource is the run pages' (`ui_function`)."""
    found = resources(FUNCTION_RESOURCE)
    assert set(found) == {"this", UI_FUNCTION}, f"expected {FUNCTION_ADDRESS} (for_each) and the run pages', " \
                                                f"found {sorted(found)}"
    return found["this"]


def ui_function() -> dict[str, Any]:
    """The run pages' function (terraform/ui.tf)."""
    return resources(FUNCTION_RESOURCE)[UI_FUNCTION]


def functions() -> dict[str, dict[str, Any]]:
    """Deployed functions keyed by entry point: the for_each map of the function resource."""
    assert function_resource()["for_each"] == "${local.function_specs}"
    specs = tf_locals()["function_specs"]
    assert isinstance(specs, dict) and specs, "local.function_specs is empty"
    return specs


def is_http(spec: dict[str, Any]) -> bool:
    return spec["event_type"] is None


def _function_ids() -> list[str]:
    """Parametrize ids; a broken .tf file is reported by test_tf_file_parses, not as a collection error."""
    try:
        return sorted(functions())
    except Exception:
        return []


# ---------------------------------------------------------------------------
# main.py helpers
# ---------------------------------------------------------------------------


def _import_main() -> Any:
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("main")


def decorated_functions(source: str, decorator: str) -> set[str]:
    """Top-level functions in `source` decorated with functions_framework.<decorator>."""
    tree = ast.parse(source)
    module_aliases: set[str] = set()
    decorator_aliases: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            module_aliases |= {a.asname or a.name for a in node.names if a.name == "functions_framework"}
        elif isinstance(node, ast.ImportFrom) and node.module == "functions_framework":
            decorator_aliases |= {a.asname or a.name for a in node.names if a.name == decorator}

    def is_decorator(dec: ast.expr) -> bool:
        if isinstance(dec, ast.Attribute) and dec.attr == decorator:
            return isinstance(dec.value, ast.Name) and dec.value.id in module_aliases
        return isinstance(dec, ast.Name) and dec.id in decorator_aliases

    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(map(is_decorator, node.decorator_list))
    }


@pytest.fixture(scope="module")
def main_module() -> Any:
    return _import_main()


@pytest.fixture(scope="module")
def main_cloud_events(main_module: Any) -> set[str]:
    source = Path(inspect.getfile(main_module)).read_text(encoding="utf-8")
    return decorated_functions(source, "cloud_event")


@pytest.fixture(scope="module")
def main_http_functions(main_module: Any) -> set[str]:
    source = Path(inspect.getfile(main_module)).read_text(encoding="utf-8")
    return decorated_functions(source, "http")


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def test_expected_terraform_files_exist() -> None:
    names = {p.name for p in TF_FILES}
    assert {"versions.tf", "variables.tf", "outputs.tf"} <= names
    assert (TF_DIR / "terraform.tfvars.example").is_file()


@pytest.mark.parametrize("path", TF_FILES, ids=[p.name for p in TF_FILES])
def test_tf_file_parses(path: Path) -> None:
    with path.open(encoding="utf-8") as handle:
        parsed = hcl2.load(handle)
    assert isinstance(parsed, dict) and parsed


def test_tfvars_example_parses_and_uses_declared_variables() -> None:
    with (TF_DIR / "terraform.tfvars.example").open(encoding="utf-8") as handle:
        values = _normalize(hcl2.load(handle))
    declared = variables()
    assert set(values) <= set(declared), set(values) - set(declared)
    required = {name for name, body in declared.items() if "default" not in body}
    assert required <= set(values), required - set(values)


# ---------------------------------------------------------------------------
# Functions <-> main.py
# ---------------------------------------------------------------------------


def test_functions_are_one_for_each_resource_keyed_by_entry_point() -> None:
    body = function_resource()
    assert one(body["build_config"])["entry_point"] == "${each.key}"
    assert body["name"] == '${var.name_prefix}-${replace(each.key, "_", "-")}'
    assert set(functions()) >= {"on_dag_uploaded", "on_start_message", "on_engine_message", "on_start_request"}


def test_old_function_addresses_are_moved_not_recreated() -> None:
    moved = {(block["from"], block["to"]) for block in _blocks("moved")}
    for name in ("on_dag_uploaded", "on_start_message", "on_engine_message"):
        expected = (f"${{{FUNCTION_RESOURCE}.{name}}}", f'${{{FUNCTION_ADDRESS}["{name}"]}}')
        assert expected in moved, f"no moved block for {FUNCTION_RESOURCE}.{name}: {sorted(moved)}"


def test_every_event_function_is_a_cloud_event_function_of_main(main_cloud_events: set[str]) -> None:
    missing = {name for name, spec in functions().items() if not is_http(spec)} - main_cloud_events
    assert not missing, f"entry points not decorated @functions_framework.cloud_event in main.py: {sorted(missing)}"


def test_every_http_function_is_an_http_function_of_main(main_http_functions: set[str]) -> None:
    http = {name for name, spec in functions().items() if is_http(spec)}
    assert http == HTTP_FUNCTIONS, f"HTTP-triggered functions in terraform: {sorted(http)}"
    missing = http - main_http_functions
    assert not missing, f"entry points not decorated @functions_framework.http in main.py: {sorted(missing)}"


def test_every_function_of_main_is_deployed(main_cloud_events: set[str], main_http_functions: set[str]) -> None:
    assert main_cloud_events, "main.py defines no @functions_framework.cloud_event function"
    specs = functions()
    assert one(ui_function()["build_config"])["entry_point"] == UI_ENTRY_POINT
    assert UI_ENTRY_POINT in main_http_functions, f"main.{UI_ENTRY_POINT} is not an HTTP function"
    undeployed = (main_cloud_events | main_http_functions) - set(specs) - {UI_ENTRY_POINT}
    assert not undeployed, f"functions in main.py with no entry in local.function_specs: {sorted(undeployed)}"
    wrong_kind = {name for name in main_http_functions if name in specs and not is_http(specs[name])}
    assert not wrong_kind, f"HTTP functions of main.py deployed with an event trigger: {sorted(wrong_kind)}"


@pytest.mark.parametrize("name", _function_ids())
def test_trigger_event_type_matches_main(name: str, main_module: Any) -> None:
    spec = functions()[name]
    if is_http(spec):
        assert name in HTTP_FUNCTIONS
        return
    handler = getattr(main_module, name, None)
    assert handler is not None, f"main.{name} does not exist"
    declared = getattr(handler, "event_type", None)
    assert isinstance(declared, str), f"main.{name}.event_type is missing (it must survive the decorator)"
    assert spec["event_type"] == declared


@pytest.mark.parametrize("name", _function_ids())
def test_function_trigger_wiring(name: str) -> None:
    spec = functions()[name]
    topics = resources("google_pubsub_topic")
    if is_http(spec):
        assert spec["pubsub_topic"] is None and spec["bucket"] is None
    elif spec["event_type"] == STORAGE_FINALIZED:
        assert refers_to(spec["bucket"], "google_storage_bucket.dags"), spec
        assert spec["pubsub_topic"] is None
    elif spec["event_type"] == PUBSUB_PUBLISHED:
        match = re.fullmatch(r"\$\{google_pubsub_topic\.(\w+)\.id\}", str(spec["pubsub_topic"]))
        assert match, spec["pubsub_topic"]
        topic_name = topics[match.group(1)]["name"]
        suffix = PUBSUB_TOPIC_SUFFIX.get(name)
        assert suffix and topic_name == f"${{var.name_prefix}}{suffix}", (name, topic_name)
        assert spec["bucket"] is None
    else:
        pytest.fail(f"unexpected event type {spec['event_type']!r}")


def test_event_trigger_is_built_from_the_spec() -> None:
    dynamic = one(function_resource()["dynamic"])
    trigger = dynamic["event_trigger"]
    assert trigger["for_each"] == "${each.value.event_type == null ? [] : [each.value]}"
    content = one(trigger["content"])
    assert content["event_type"] == "${event_trigger.value.event_type}"
    assert content["pubsub_topic"] == "${event_trigger.value.pubsub_topic}"
    assert content["retry_policy"] == "RETRY_POLICY_RETRY"
    assert refers_to(content["service_account_email"], TRIGGER_SA)
    filters = one(content["dynamic"])["event_filters"]
    assert filters["for_each"] == "${event_trigger.value.bucket == null ? [] : [event_trigger.value.bucket]}"
    assert one(filters["content"]) == {"attribute": "bucket", "value": "${event_filters.value}"}


def test_function_hardening_and_settings() -> None:
    body = function_resource()
    build = one(body["build_config"])
    service = one(body["service_config"])

    assert build["runtime"] == "python312"
    storage = one(one(build["source"])["storage_source"])
    assert refers_to(storage["bucket"], "google_storage_bucket.function_source")
    assert refers_to(storage["object"], "google_storage_bucket_object.function_source")

    assert refers_to(service["service_account_email"], FUNCTIONS_SA)
    assert service["ingress_settings"] == "${each.value.ingress}"
    assert service["all_traffic_on_latest_revision"] is True
    assert "max_instance_count" in service
    assert "timeout_seconds" in service
    assert service["environment_variables"] == "${local.function_env}"


@pytest.mark.parametrize("name", _function_ids())
def test_function_ingress(name: str) -> None:
    spec = functions()[name]
    # HTTP functions are called by other systems (authenticated); event deliveries are internal.
    assert spec["ingress"] == ("ALLOW_ALL" if is_http(spec) else "ALLOW_INTERNAL_ONLY")


def test_function_environment() -> None:
    env = tf_locals()["function_env"]
    assert set(env) == REQUIRED_ENV
    assert env["LOG_FORMAT"] == "json"
    assert refers_to(env["WORKFLOW_ENGINE_TOPIC"], "google_pubsub_topic.engine.name")
    assert env["WORKFLOW_DAG_PREFIX"] == "${var.dag_prefix}"
    assert env["WORKFLOW_TR_URL"] == "${var.task_runner_url}"
    assert env["WORKFLOW_FIRESTORE_DATABASE"] == "${var.firestore_database}"
    assert env["WORKFLOW_DAG_BUCKETS"] == '${join(",", local.dag_bucket_names)}'
    assert env["WORKFLOW_ALLOWED_TR_ORIGINS"] == '${join(",", local.allowed_tr_origins)}'
    buckets = tf_locals()["dag_bucket_names"]
    assert refers_to(buckets, "google_storage_bucket.dags.name") and refers_to(buckets, "var.extra_dag_buckets")
    origins = tf_locals()["allowed_tr_origins"]
    assert origins.startswith("${distinct(concat([local.task_runner_origin]"), origins
    assert refers_to(origins, "var.allowed_task_runner_origins")
    assert refers_to(tf_locals()["task_runner_origin"], "var.task_runner_url")
    assert refers_to(env["WORKFLOW_EVENTS_TOPIC"], "google_pubsub_topic.events.name")
    assert refers_to(env["WORKFLOW_MAX_INLINE_WAIT_SEC"], "var.max_inline_wait_sec")


def test_run_ended_events_are_published_by_the_functions_and_read_only_by_named_subscribers() -> None:
    assert "events" in resources("google_pubsub_topic")
    publishers = resources("google_pubsub_topic_iam_member")
    grant = publishers["functions_events_publisher"]
    assert refers_to(grant["topic"], "google_pubsub_topic.events.name") and grant["role"] == "roles/pubsub.publisher"
    readers = publishers["event_subscribers"]
    assert readers["role"] == "roles/pubsub.subscriber" and refers_to(readers["for_each"], "var.event_subscribers")
    rule = _validation_rule("event_subscribers")
    assert rule.match("serviceAccount:alerts@p.iam.gserviceaccount.com") and not rule.match("allUsers")


def test_the_run_list_query_has_its_index_and_the_inline_wait_stays_below_the_ack_deadline() -> None:
    index = resources("google_firestore_index")["runs_by_status"]
    assert index["collection"] == "runs"
    assert [(f["field_path"], f["order"]) for f in index["fields"]] == [("status", "ASCENDING"),
                                                                        ("created_at", "DESCENDING")]
    function = resources("google_cloudfunctions2_function")["this"]
    condition = one(one(one(function["lifecycle"])["precondition"]))["condition"] \
        if isinstance(function["lifecycle"], list) else function["lifecycle"]["precondition"]["condition"]
    assert "var.max_inline_wait_sec < var.function_timeout_sec" in condition


def test_local_only_settings_are_never_deployed() -> None:
    for path in TF_FILES:
        assert "WORKFLOW_ALLOW_HTTP_TR" not in path.read_text(encoding="utf-8"), (
            f"{path.name} sets WORKFLOW_ALLOW_HTTP_TR"
        )
    assert "WORKFLOW_ALLOW_HTTP_TR" not in tf_locals()["function_env"]


def _validation_rule(variable: str) -> re.Pattern[str]:
    """The regex in a list variable's validation condition, as Python sees it."""
    condition = one(variables()[variable]["validation"])["condition"]
    pattern = re.search(r'regex\("([^"]+)"', condition)
    assert pattern, condition
    return re.compile(pattern.group(1).replace("\\\\", "\\"))


@pytest.mark.parametrize(
    ("variable", "good", "bad"),
    [
        (
            "allowed_task_runner_origins",
            ["https://tr.example.com", "https://tr.example.com:8443"],
            ["http://tr.example.com", "https://tr.example.com/", "https://tr.example.com/run", "tr.example.com"],
        ),
        (
            "extra_dag_buckets",
            ["shared-dags", "team_dags.example.com"],
            ["gs://shared-dags", "shared-dags/dags", "Shared", "x"],
        ),
        (
            "start_request_invokers",
            ["serviceAccount:caller@p.iam.gserviceaccount.com", "group:ops@example.com"],
            ["allUsers", "allAuthenticatedUsers", "caller@p.iam.gserviceaccount.com"],
        ),
    ],
)
def test_list_variables_validate_each_entry(variable: str, good: list[str], bad: list[str]) -> None:
    rule = _validation_rule(variable)
    for value in good:
        assert rule.search(value), f"{variable} rejects {value!r}"
    for value in bad:
        assert not rule.search(value), f"{variable} accepts {value!r}"


def test_function_timeout_default_fits_event_functions() -> None:
    assert 0 < variables()["function_timeout_sec"]["default"] <= 540


# ---------------------------------------------------------------------------
# Source archive
# ---------------------------------------------------------------------------


def test_source_archive_is_content_addressed() -> None:
    archive = one(_blocks_of("data", "archive_file")["function_source"])
    assert archive["type"] == "zip"
    obj = resources("google_storage_bucket_object")["function_source"]
    assert "data.archive_file.function_source.output_md5" in obj["name"]
    assert refers_to(obj["source"], "data.archive_file.function_source.output_path")


def _blocks_of(kind: str, btype: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for block in _blocks(kind):
        found.update(block.get(btype, {}))
    return found


# Developer tooling that must stay out of the function archive: outside the package it is built from.
TOOLING_PACKAGES = ("devtools",)
# Python lines of the archive: 6,701 when it shipped the tooling too, 3,737 once it did not
# (55.8 %); retries, concurrency limits, timeouts and run control then added about 650 lines
# of product (4,435), and moving what only the command line and the benchmarks use out of it
# (local DAG files, user credentials, the embedded bus's hook, operation counters) took it to
# about 4,130. Splitting the product into a module per phase, role and kind of entry (33
# files to 68) then added a header and imports to each: 4,640 lines for 2,308 statements
# against 2,260 before (imports and docstrings left out). Checking the Task Runner origin on
# every call, capping its answers and keeping INVALID final added about 90 (4,733); bounding
# engine messages, escaping logs and the sweep's own route about 95 more (4,828); the sharded
# counters of the Firestore store (a run's open steps and counts, wide joins) about 190 more;
# polling backoff, a rerun's new definitions and a Task Runner that moved about 125 more (5,145).
# Run parameters with forEach (their declarations, placeholders and expansion run in the start
# function) and schedules (a tick's run id, its concurrency) are budgeted at about 700 more.
# The run pages ship too, for the run_pages function (terraform/ui.tf): workflow/ui (pages,
# JSON API, actions and their guard), their runtime on the cloud with the start-topic control
# their actions publish through, and the page reads on Firestore, about 810 more (6,642).
# Schedules then shipped their part: a tick's run id and time (model/ticks.py), its
# concurrency and the SKIPPED record (admission/schedules.py), the store's query of a
# schedule's running runs, about 215 more (6,859).
# Run control by a route of its own (its entry points, the verified caller and its limit, a
# rerun's own token) added about 230 (6,859 to 7,090), budgeted at 250 more.
# The budget makes the next growth a decision, not a drift.
ARCHIVE_LINE_BUDGET = 7_200
# The expression of local.function_source_files, with its fileset() patterns as the only variables.
ARCHIVE_EXPRESSION = re.compile(
    r"\$\{sort\(concat\(\[(?P<literal>[^\]]*)\], tolist\(setsubtract\("
    r'fileset\(local\.repo_root, "(?P<pattern>.+)"\), '
    r"flatten\(\[for pattern in local\.function_source_excluded : tolist\(fileset\(local\.repo_root, pattern\)\)\]\)"
    r"\)\)\)\)\}"
)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Terraform fileset() pattern (doublestar syntax: **, *, ?, {a,b}) as a regex over relative paths."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "{":
            close = pattern.index("}", i)
            out.append("(?:" + "|".join(map(re.escape, pattern[i + 1 : close].split(","))) + ")")
            i = close + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def fileset(pattern: str) -> set[str]:
    """Files under REPO_ROOT matching `pattern`, as Terraform's fileset(path, pattern) lists them."""
    rule = _glob_regex(pattern)
    base = REPO_ROOT / re.split(r"[*?{]", pattern, maxsplit=1)[0].rpartition("/")[0]
    return {rel for p in base.rglob("*") if p.is_file() and rule.fullmatch(rel := p.relative_to(REPO_ROOT).as_posix())}


@cache
def archive_files() -> tuple[str, ...]:
    """The archive's file list, evaluated from local.function_source_files as Terraform would."""
    spec = tf_locals()
    match = ARCHIVE_EXPRESSION.fullmatch(spec["function_source_files"])
    assert match, f"local.function_source_files changed shape; update archive_files(): {spec['function_source_files']}"
    literal = re.findall(r'"([^"]+)"', match.group("literal"))
    included = fileset(
        match.group("pattern").replace(
            '${join(",", local.function_source_extensions)}', ",".join(spec["function_source_extensions"])
        )
    )
    excluded = {path for pattern in spec["function_source_excluded"] for path in fileset(pattern)}
    return tuple(sorted({*literal, *(included - excluded)}))


def _module_path(module: str) -> str | None:
    """Repository path of a first-party module (package __init__ or module file), if it is one."""
    base = module.replace(".", "/")
    for candidate in (f"{base}/__init__.py", f"{base}.py"):
        if (REPO_ROOT / candidate).is_file():
            return candidate
    return None


def _runs_as_script_only(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in ("__name__ == '__main__'", '__name__ == "__main__"')


def _imported_modules(path: str) -> set[str]:
    """Absolute names of the modules `path` imports (relative imports resolved)."""
    package = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    if not path.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    names: set[str] = set()
    tree = ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"))
    for script in [n for n in tree.body if _runs_as_script_only(n)]:
        tree.body.remove(script)  # `if __name__ == "__main__":` never runs in a function
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            prefix = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            base = ".".join(filter(None, [prefix, node.module or ""]))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
    return names


def test_fileset_mirror_matches_terraform_semantics() -> None:
    assert "workflow/model/text.py" in fileset("workflow/**/*.{py,json}")
    assert "workflow/__init__.py" in fileset("workflow/**/*.py")
    assert "main.py" not in fileset("workflow/**/*.py")
    assert fileset("devtools/mock_runner/**") >= {"devtools/mock_runner/server.py", "devtools/mock_runner/__init__.py"}
    assert not fileset("workflow/no_such_dir/**")


def test_source_archive_allow_list_covers_the_runtime_code() -> None:
    files = archive_files()
    assert {"main.py", "requirements.txt", "workflow/__init__.py", "workflow/entrypoints/__init__.py"} <= set(files)
    for excluded in ("tests/", ".venv", "terraform/", "bench/", "scripts/"):
        assert not [f for f in files if f.startswith(excluded)], f"{excluded} in the function archive"
    extensions = set(tf_locals()["function_source_extensions"])
    excluded = {path for pattern in tf_locals()["function_source_excluded"] for path in fileset(pattern)}
    skipped = [
        rel
        for p in (REPO_ROOT / "workflow").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix.lstrip(".") not in extensions
        and (rel := p.relative_to(REPO_ROOT).as_posix()) not in excluded
    ]
    assert not skipped, f"files in workflow/ that the function archive would leave out: {skipped}"


def test_source_archive_ships_no_tooling() -> None:
    assert {f for f in archive_files() if not f.startswith("workflow/")} == {"main.py", "requirements.txt"}
    tooling = [f for f in archive_files() if f.startswith(tuple(f"{pkg}/" for pkg in TOOLING_PACKAGES))]
    assert not tooling, f"developer tooling in the function archive: {tooling}"


def test_shipped_code_imports_only_shipped_code() -> None:
    shipped = set(archive_files())
    problems = [
        f"{path} imports {module} ({target}), which is not in the archive"
        for path in sorted(f for f in shipped if f.endswith(".py"))
        for module in sorted(_imported_modules(path))
        if (target := _module_path(module)) is not None and target not in shipped
    ]
    assert not problems, "\n".join(problems)


def test_shipped_python_stays_small() -> None:
    lines = sum(
        len((REPO_ROOT / f).read_text(encoding="utf-8").splitlines()) for f in archive_files() if f.endswith(".py")
    )
    print(
        f"function archive: {lines} Python lines "
        f"(budget {ARCHIVE_LINE_BUDGET})"
    )
    assert lines < ARCHIVE_LINE_BUDGET, f"function archive has {lines} Python lines, budget {ARCHIVE_LINE_BUDGET}"


def test_main_only_imports_local_code_shipped_in_the_archive(main_module: Any) -> None:
    source = Path(inspect.getfile(main_module)).read_text(encoding="utf-8")
    top_level: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            top_level |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top_level.add(node.module.split(".")[0])
    local = {name for name in top_level if (REPO_ROOT / f"{name}.py").exists() or (REPO_ROOT / name).is_dir()}
    assert local <= {"workflow"}, f"main.py imports repo code outside the archive: {sorted(local - {'workflow'})}"


# ---------------------------------------------------------------------------
# Storage, Pub/Sub, Firestore, APIs
# ---------------------------------------------------------------------------


def test_buckets_are_hardened() -> None:
    buckets = resources("google_storage_bucket")
    assert {"dags", "function_source"} <= set(buckets)
    for name, body in buckets.items():
        assert body["uniform_bucket_level_access"] is True, name
        assert body["public_access_prevention"] == "enforced", name
        assert one(body["versioning"])["enabled"] is True, name
    assert buckets["dags"]["name"] == "${var.dag_bucket_name}"


def test_topic_names_derive_from_name_prefix() -> None:
    topics = {body["name"] for body in resources("google_pubsub_topic").values()}
    assert topics == {f"${{var.name_prefix}}-{s}" for s in ("start", "run-control", "engine", "events", "dead-letter")}
    assert variables()["name_prefix"]["default"] == "workflow"


def test_dead_letter_topic_has_a_subscription() -> None:
    subs = resources("google_pubsub_subscription")
    assert any(refers_to(s["topic"], "google_pubsub_topic.dead_letter") for s in subs.values())


def test_firestore_database_is_optional_native() -> None:
    db = resources("google_firestore_database")
    assert len(db) == 1
    body = next(iter(db.values()))
    assert body["count"] == "${var.create_firestore_database ? 1 : 0}"
    assert body["type"] == "FIRESTORE_NATIVE"
    assert variables()["create_firestore_database"]["type"].strip("${}") == "bool"


def test_required_apis_enabled_without_disable_on_destroy() -> None:
    services = resources("google_project_service")
    assert len(services) == 1
    body = next(iter(services.values()))
    assert body["disable_on_destroy"] is False
    apis = set(re.findall(r"[a-z]+\.googleapis\.com", str(tf_locals()["required_apis"])))
    assert REQUIRED_APIS <= apis, REQUIRED_APIS - apis


# ---------------------------------------------------------------------------
# Versions / variables
# ---------------------------------------------------------------------------


def test_versions_and_backend() -> None:
    terraform = one(load_tf(TF_DIR / "versions.tf")["terraform"])
    assert re.fullmatch(r">=\s*1\.([5-9]|\d\d)(\.\d+)?", terraform["required_version"])
    providers = one(terraform["required_providers"])
    google = providers["google"]
    assert google["source"] == "hashicorp/google"
    match = re.fullmatch(r"~>\s*(\d+)\.\d+(\.\d+)?", google["version"])
    assert match and int(match.group(1)) >= 5, google["version"]
    assert providers["archive"]["source"] == "hashicorp/archive"
    backend = one(terraform["backend"])
    assert set(backend) == {"gcs"} and not backend["gcs"], 'backend must be the partial `backend "gcs" {}`'


def test_variables_are_described_and_validated() -> None:
    declared = variables()
    for name, body in declared.items():
        assert body.get("description"), f"variable {name} has no description"
        assert body.get("type"), f"variable {name} has no type"
    must_validate = {
        "project",
        "region",
        "dag_bucket_name",
        "dag_prefix",
        "task_runner_url",
        "task_runner_service",
        "task_runner_region",
        "check_state_duration_sec",
        "step_timeout_sec",
        "name_prefix",
        "allowed_task_runner_origins",
        "extra_dag_buckets",
        "start_request_invokers",
        "deployer_service_account",
    }
    assert must_validate <= set(declared), must_validate - set(declared)
    for name in sorted(must_validate):
        assert declared[name].get("validation"), f"variable {name} has no validation block"
    url_rule = one(declared["task_runner_url"]["validation"])["condition"]
    assert "https://" in url_rule


def test_outputs() -> None:
    outputs: dict[str, Any] = {}
    for block in _blocks("output"):
        outputs.update(block)
    expected = {
        "dag_bucket_name",
        "start_topic_id",
        "engine_topic_id",
        "dead_letter_topic_id",
        "function_names",
        "eventarc_triggers",
        "functions_service_account_email",
        "trigger_service_account_email",
        "pubsub_service_agent_email",
        "dead_letter_max_delivery_attempts",
        "start_request_url",
    }
    assert expected <= set(outputs), expected - set(outputs)


# ---------------------------------------------------------------------------
# IAM
# ---------------------------------------------------------------------------


def _iam_members(body: dict[str, Any]) -> list[str]:
    members = body.get("members", [])
    if "member" in body:
        members = [*members, body["member"]]
    return [str(m) for m in members]


def test_no_public_members_or_primitive_roles() -> None:
    problems = []
    for rtype, name, body in all_resources():
        if "_iam_" not in rtype:
            continue
        assert not rtype.endswith("_iam_policy"), f"{rtype}.{name}: authoritative IAM policies are not allowed"
        role = str(body.get("role", ""))
        if role in PRIMITIVE_ROLES:
            problems.append(f"{rtype}.{name}: primitive role {role}")
        for member in _iam_members(body):
            if any(p in member.lower() for p in PUBLIC_MEMBERS):
                problems.append(f"{rtype}.{name}: public member {member}")
    assert not problems, problems
    for name in ("start_publishers", "dag_bucket_writers", "start_request_invokers", "run_viewers", "ui_viewers"):
        assert variables()[name].get("validation"), f"{name} must validate its members"


def _grants_to(sa_address: str) -> set[tuple[str, str]]:
    return {
        (rtype, str(body["role"]))
        for rtype, _, body in all_resources()
        if "_iam_" in rtype and any(refers_to(m, sa_address) for m in _iam_members(body))
    }


def test_functions_service_account_is_least_privilege() -> None:
    assert _grants_to(FUNCTIONS_SA) == {
        ("google_project_iam_member", "roles/datastore.user"),
        ("google_pubsub_topic_iam_member", "roles/pubsub.publisher"),
        ("google_storage_bucket_iam_member", "roles/storage.objectViewer"),
        ("google_cloud_run_v2_service_iam_member", "roles/run.invoker"),
        # only with var.token_key_secret set, and only on that one secret
        ("google_secret_manager_secret_iam_member", "roles/secretmanager.secretAccessor"),
    }
    publisher = [
        b for b in resources("google_pubsub_topic_iam_member").values() if refers_to(b["member"], FUNCTIONS_SA)
    ]
    topics = sorted(b["topic"] for b in publisher)  # its own messages and the run-ended events, nothing else
    assert len(topics) == 2 and refers_to(topics[0], "google_pubsub_topic.engine")
    assert refers_to(topics[1], "google_pubsub_topic.events")
    readers = {
        name: b["bucket"]
        for name, b in resources("google_storage_bucket_iam_member").items()
        if refers_to(b["member"], FUNCTIONS_SA)
    }
    assert readers == {
        "functions_dag_reader": "${google_storage_bucket.dags.name}",
        "functions_extra_dag_reader": "${each.value}",
    }
    assert resources("google_storage_bucket_iam_member")["functions_extra_dag_reader"]["for_each"] == (
        "${toset(var.extra_dag_buckets)}"
    )
    invoker = [
        b for b in resources("google_cloud_run_v2_service_iam_member").values() if refers_to(b["member"], FUNCTIONS_SA)
    ]
    assert [b["name"] for b in invoker] == ["${var.task_runner_service}"]


def test_trigger_service_account_roles() -> None:
    assert _grants_to(TRIGGER_SA) == {
        ("google_project_iam_member", "roles/eventarc.eventReceiver"),
        ("google_cloud_run_v2_service_iam_member", "roles/run.invoker"),
    }
    invokers = [
        b for b in resources("google_cloud_run_v2_service_iam_member").values() if refers_to(b["member"], TRIGGER_SA)
    ]
    assert len(invokers) == 1
    # one binding per event-driven function, on the function's own Cloud Run service
    assert invokers[0]["for_each"] == "${local.event_functions}"
    assert invokers[0]["name"] == "${each.value.service_config[0].service}"
    assert tf_locals()["functions"] == f"${{{FUNCTION_ADDRESS}}}"
    event_functions = tf_locals()["event_functions"]
    assert "if spec.event_type != null" in event_functions, event_functions


def test_http_start_function_is_invocable_only_by_the_configured_members() -> None:
    invokers = resources("google_cloud_run_v2_service_iam_member")
    callers = invokers["start_request_invokers"]
    assert callers["for_each"] == "${toset(var.start_request_invokers)}"
    assert callers["member"] == "${each.value}" and callers["role"] == "roles/run.invoker"
    assert callers["name"] == '${local.functions["on_start_request"].service_config[0].service}'
    others = [
        name
        for name, body in invokers.items()
        if refers_to(body.get("name"), "local.functions")
        and name not in ("start_request_invokers", "scheduler_invokes_start", "control_request_invokers")
    ]
    assert not others, f"other invoker bindings on the functions: {others}"
    scheduler = invokers["scheduler_invokes_start"]  # the sweep's route (The sweep, below)
    assert scheduler["name"] == callers["name"] and scheduler["role"] == "roles/run.invoker"
    assert scheduler["member"] == f"serviceAccount:${{{SCHEDULER_SA}.email}}"
    condition = one(variables()["start_request_invokers"]["validation"])["condition"]
    assert condition == one(variables()["start_publishers"]["validation"])["condition"].replace(
        "start_publishers", "start_request_invokers"
    )
    outputs: dict[str, Any] = {}
    for block in _blocks("output"):
        outputs.update(block)
    assert outputs["start_request_url"]["value"] == '${local.functions["on_start_request"].url}'


def test_deployer_acts_only_as_the_runtime_accounts() -> None:
    acts_as = resources("google_service_account_iam_member")["deployer_acts_as"]
    assert acts_as["role"] == "roles/iam.serviceAccountUser"
    assert acts_as["member"] == "serviceAccount:${local.deployer_email}"
    assert acts_as["for_each"] == {
        "functions": f"${{{FUNCTIONS_SA}.name}}",
        "trigger": f"${{{TRIGGER_SA}.name}}",
        "scheduler": "${google_service_account.scheduler.name}",
    }
    ui = resources("google_service_account_iam_member")["deployer_acts_as_ui"]  # the run pages', once deployed
    assert (ui["role"], ui["member"], ui["count"]) == (acts_as["role"], acts_as["member"], "${local.ui_count}")
    assert ui["service_account_id"] == f"${{{UI_SA}[0].name}}"
    users = [name for rtype, name, body in all_resources()
             if rtype.endswith("_iam_member") and body.get("role") == "roles/iam.serviceAccountUser"]
    assert sorted(users) == ["deployer_acts_as", "deployer_acts_as_ui"], users
    assert "workflow-deployer@${var.project}.iam.gserviceaccount.com" in tf_locals()["deployer_email"]
    project_roles = {body["role"] for body in resources("google_project_iam_member").values()}
    assert not project_roles & {"roles/iam.serviceAccountUser", "roles/iam.serviceAccountAdmin"}, project_roles


def test_service_agents() -> None:
    assert _blocks_of("data", "google_storage_project_service_account")
    project_grants = {(b["role"], b["member"]) for b in resources("google_project_iam_member").values()}
    assert ("roles/pubsub.publisher", "serviceAccount:${local.gcs_service_agent}") in project_grants
    dlq = [
        b
        for b in resources("google_pubsub_topic_iam_member").values()
        if b["member"] == "serviceAccount:${local.pubsub_service_agent}"
    ]
    assert [(refers_to(b["topic"], "google_pubsub_topic.dead_letter"), b["role"]) for b in dlq] == [
        (True, "roles/pubsub.publisher")
    ]


# ---------------------------------------------------------------------------
# checkov
# ---------------------------------------------------------------------------

CHECKOV_HELP = (
    "checkov not found at {path}. Install it in its own virtualenv: "
    "python3.11 -m venv .venv-checkov && .venv-checkov/bin/pip install -r requirements-checkov.txt "
    "(or point CHECKOV_BIN at a checkov executable)."
)


def _checkov_bin() -> Path:
    configured = os.environ.get("CHECKOV_BIN")
    path = Path(configured) if configured else REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
    return path if path.is_absolute() else REPO_ROOT / path


def test_checkov_reports_no_failed_check() -> None:
    binary = _checkov_bin()
    if not binary.exists():
        message = CHECKOV_HELP.format(path=binary)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    proc = subprocess.run(
        [
            str(binary),
            "-d",
            "terraform",
            "--framework",
            "terraform",
            "-o",
            "json",
            "--quiet",
            "--skip-download",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov produced no JSON (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r.get("results", {}).get("failed_checks", [])]
    summary = [r.get("summary", {}) for r in reports]
    details = "\n".join(
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']}): {c['check_name']}" for c in failed
    )
    assert not failed, f"checkov failed checks:\n{details}"
    assert all(s.get("failed", 0) == 0 and s.get("parsing_errors", 0) == 0 for s in summary), summary
    assert any(s.get("resource_count", 0) > 0 for s in summary), f"checkov scanned nothing: {summary}"


# ---------------------------------------------------------------------------
# The sweep (Cloud Scheduler -> engine topic)
# ---------------------------------------------------------------------------

REQUIRED_ENV.add("WORKFLOW_STALE_AFTER_SEC")  # the sweep's span, read by the functions' settings
REQUIRED_ENV.add("WORKFLOW_SWEEP_LIMIT")  # the most runs one sweep reconciles
SCHEDULER_SA = "google_service_account.scheduler"


def _resolved(value: Any) -> Any:
    """A literal, or `${var.NAME}` replaced by that variable's default (a plan with the defaults)."""
    match = re.fullmatch(r"\$\{var\.([a-z_]+)\}", value) if isinstance(value, str) else None
    return variables()[match.group(1)]["default"] if match else value


def sweep_job() -> dict[str, Any]:
    jobs = resources("google_cloud_scheduler_job")
    assert set(jobs) == {"sweep", "schedules"}, sorted(jobs)  # the schedules: below
    return jobs["sweep"]


def test_the_sweep_job_calls_the_http_start_function_as_the_scheduler_account() -> None:
    target = one(sweep_job()["http_target"])
    assert target["uri"] == "${local.start_request_uri}" and target["http_method"] == "POST"
    assert tf_locals()["start_request_uri"] == '${local.functions["on_start_request"].service_config[0].uri}'
    assert target["headers"] == {"Content-Type": "application/json"}
    assert target["body"] == '${base64encode(jsonencode({action = "sweep"}))}'  # what sweep_requested takes
    oidc = one(target["oidc_token"])
    assert oidc == {"service_account_email": f"${{{SCHEDULER_SA}.email}}", "audience": "${local.start_request_uri}"}
    assert "pubsub_target" not in sweep_job()
    assert "${google_cloud_run_v2_service_iam_member.scheduler_invokes_start}" in sweep_job()["depends_on"]


def test_the_sweep_runs_on_its_schedule_in_utc() -> None:
    job = sweep_job()
    assert job["schedule"] == "${var.sweep_schedule}" and job["time_zone"] == "Etc/UTC"
    assert job["region"] == "${var.region}" and job["name"] == "${var.name_prefix}-sweep"
    schedule = variables()["sweep_schedule"]
    assert schedule["default"] == "*/5 * * * *"
    assert "length(split(" in one(schedule["validation"])["condition"]


def test_stale_after_sets_the_sweep_and_the_functions_and_stays_above_three_polls() -> None:
    stale = variables()["stale_after_sec"]
    assert stale["default"] == 900 and stale["type"] == "number"
    assert tf_locals()["function_env"]["WORKFLOW_STALE_AFTER_SEC"] == "${tostring(var.stale_after_sec)}"
    job = sweep_job()
    lifecycle = one(job["lifecycle"])
    condition = one(lifecycle["precondition"])["condition"]
    assert condition == "${var.stale_after_sec >= 3 * var.check_state_duration_sec}"
    assert stale["default"] >= 3 * variables()["check_state_duration_sec"]["default"]
    engine = functions()["on_engine_message"]
    assert engine["pubsub_topic"] == "${google_pubsub_topic.engine.id}"
    assert "local.function_env" in str(one(function_resource()["service_config"])["environment_variables"])


def test_only_the_functions_may_publish_on_the_engine_topic_and_the_scheduler_only_invokes_the_start() -> None:
    assert "cloudscheduler.googleapis.com" in str(tf_locals()["required_apis"])
    engine = [body for rtype, _, body in all_resources() if rtype == "google_pubsub_topic_iam_member"
              and body["topic"] == "${google_pubsub_topic.engine.name}"]
    functions_sa = f"serviceAccount:${{{FUNCTIONS_SA}.email}}"
    assert [(b["role"], b["member"]) for b in engine] == [("roles/pubsub.publisher", functions_sa)]
    grants = [(rtype, name) for rtype, name, body in all_resources()
              if "_iam_" in rtype and any(SCHEDULER_SA in m for m in _iam_members(body))]
    assert grants == [("google_cloud_run_v2_service_iam_member", "scheduler_invokes_start")]


def test_the_deployer_may_manage_scheduler_jobs() -> None:
    readme = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    bootstrap = readme[readme.index("for role in roles/serviceusage"):]
    assert "roles/cloudscheduler.admin" in bootstrap[: bootstrap.index("done")]
    assert re.search(r"^\| \| `roles/cloudscheduler\.admin` \(project\) \|", readme, re.M)


def test_the_functions_read_a_pinned_version_of_the_token_key() -> None:
    for name, fn in {"this": function_resource()}.items():  # the run pages need no token key
        config = fn["service_config"][0] if isinstance(fn["service_config"], list) else fn["service_config"]
        secrets = [d["secret_environment_variables"] for d in config.get("dynamic", [])
                   if "secret_environment_variables" in d]
        assert secrets, f"{name}: no secret environment variable block"
        for block in secrets:
            assert block["content"][0]["version"] == "${var.token_key_version}", name
    version = variables()["token_key_version"]
    assert version["default"] == "1"
    pattern = re.search(r'regex\("(.+?)", var\.token_key_version\)', version["validation"][0]["condition"])
    assert pattern and re.fullmatch(pattern.group(1).replace("\\\\", "\\"), "7")
    assert not re.fullmatch(pattern.group(1).replace("\\\\", "\\"), "latest")


def test_each_team_writes_dags_only_under_its_own_folder() -> None:
    grant = resources("google_storage_bucket_iam_member")["dag_team_writers"]
    assert grant["role"] == "roles/storage.objectUser" and grant["member"] == "${each.value.member}"
    assert grant["bucket"] == "${google_storage_bucket.dags.name}"
    condition = one(grant["condition"])
    assert condition["expression"] == (
        'resource.name.startsWith(\\"projects/_/buckets/${google_storage_bucket.dags.name}/objects/'
        '${var.dag_prefix}${each.value.team}/\\")')
    team_writers = variables()["dag_team_writers"]
    assert team_writers["default"] == {} and "allUsers" in one(team_writers["validation"])["error_message"]
    members = one(team_writers["validation"])["condition"]
    assert "(user|group|serviceAccount|domain|principal|principalSet)" in members
    dags = resources("google_storage_bucket")["dags"]
    assert dags["uniform_bucket_level_access"] is True  # IAM conditions need it


# ---------------------------------------------------------------------------
# The run pages (terraform/ui.tf)
# ---------------------------------------------------------------------------


def test_the_run_pages_are_the_run_pages_function_of_main_deployed_from_the_same_archive(main_module: Any) -> None:
    fn = ui_function()
    build = one(fn["build_config"])
    assert (build["entry_point"], build["runtime"]) == (UI_ENTRY_POINT, "python312")
    assert callable(getattr(main_module, UI_ENTRY_POINT, None))
    storage = one(one(build["source"])["storage_source"])
    assert refers_to(storage["object"], "google_storage_bucket_object.function_source")
    assert fn["count"] == "${local.ui_count}" and tf_locals()["ui_count"] == "${local.ui_enabled ? 1 : 0}"
    assert tf_locals()["ui_enabled"] == '${var.ui_secret != ""}'  # deployed once its secret is named
    service = one(fn["service_config"])
    assert service["service_account_email"] == f"${{{UI_SA}[0].email}}"
    assert service["environment_variables"] == "${local.ui_env}"
    assert service["ingress_settings"] == "${var.ui_ingress}" and service["all_traffic_on_latest_revision"] is True
    shipped = set(archive_files())  # the pages' own files go in the archive too
    assert {"workflow/ui/app.py", "workflow/ui/templates/run.html", "workflow/ui/static/run.js",
            "workflow/ui/static/vendor/dagre-0.8.5.min.js", "workflow/ui/static/vendor/dagre-LICENSE.txt",
            "workflow/bootstrap/cloud_pages.py", "workflow/adapters/gcp/firestore_pages.py"} <= shipped
    assert "workflow/bootstrap/ui.py" not in shipped  # the pages over SQLite stay the command line's


def test_the_run_pages_are_never_public_their_invokers_are_ui_viewers() -> None:
    invokers = [(name, body) for name, body in resources("google_cloud_run_v2_service_iam_member").items()
                if refers_to(body.get("name"), f"{FUNCTION_RESOURCE}.{UI_FUNCTION}")]
    assert [name for name, _ in invokers] == ["ui_viewers"], invokers
    viewers = invokers[0][1]
    assert viewers["for_each"] == "${local.ui_enabled ? toset(var.ui_viewers) : toset([])}"
    assert (viewers["role"], viewers["member"]) == ("roles/run.invoker", "${each.value}")
    assert viewers["name"] == f"${{{FUNCTION_RESOURCE}.{UI_FUNCTION}[0].service_config[0].service}}"
    variable = variables()["ui_viewers"]
    assert variable["default"] == [] and variable["type"] == "${list(string)}"
    rule = _validation_rule("ui_viewers")
    assert rule.match("group:ops@example.com") and rule.match("serviceAccount:x@p.iam.gserviceaccount.com")
    assert not any(rule.match(m) for m in ("allUsers", "allAuthenticatedUsers", "ops@example.com"))
    text = (TF_DIR / "ui.tf").read_text(encoding="utf-8").lower()
    assert not any(member in text for member in PUBLIC_MEMBERS)
    assert variables()["ui_ingress"]["default"] == "ALLOW_ALL"  # IAM decides: run.invoker on every request
    assert "ALLOW_INTERNAL_AND_GCLB" in one(variables()["ui_ingress"]["validation"])["condition"]


def test_the_run_pages_read_as_datastore_viewer_and_publish_only_on_the_control_topic() -> None:
    assert _grants_to(UI_SA) == {
        ("google_project_iam_member", "roles/datastore.viewer"),
        ("google_pubsub_topic_iam_member", "roles/pubsub.publisher"),
        ("google_secret_manager_secret_iam_member", "roles/secretmanager.secretAccessor"),
    }
    publishers = [b for b in resources("google_pubsub_topic_iam_member").values() if refers_to(b["member"], UI_SA)]
    assert [b["topic"] for b in publishers] == ["${local.ui_action_topic.name}"]
    # One place names the topic (the one the command line's --cloud cancel, rerun and resume use).
    assert tf_locals()["ui_action_topic"] == "${google_pubsub_topic.control}"
    assert tf_locals()["ui_env"]["WORKFLOW_CONTROL_TOPIC"] == "${local.ui_action_topic.name}"
    ui_text = (TF_DIR / "ui.tf").read_text(encoding="utf-8")
    assert ui_text.count("google_pubsub_topic.") == 1, "name the pages' topic through local.ui_action_topic only"
    accessor = resources("google_secret_manager_secret_iam_member")["ui_secret_accessor"]
    assert accessor["secret_id"] == "${var.ui_secret}"
    viewer = resources("google_project_iam_member")["ui_datastore_viewer"]
    assert viewer["role"] == "roles/datastore.viewer" and refers_to(viewer["member"], UI_SA)
    sa = resources("google_service_account")["ui"]
    assert sa["account_id"] == "${var.name_prefix}-ui"


def test_the_run_pages_key_their_action_tokens_with_a_pinned_secret_never_a_literal() -> None:
    service = one(ui_function()["service_config"])
    secret = one(service["secret_environment_variables"])
    assert secret == {"key": "WORKFLOW_UI_SECRET", "project_id": "${var.project}", "secret": "${var.ui_secret}",
                      "version": "${var.ui_secret_version}"}
    env = tf_locals()["ui_env"]
    assert "WORKFLOW_UI_SECRET" not in env and "WORKFLOW_TOKEN_KEY" not in env
    assert set(env) == {"GOOGLE_CLOUD_PROJECT", "WORKFLOW_FIRESTORE_DATABASE", "WORKFLOW_CONTROL_TOPIC",
                        "WORKFLOW_UI_ORIGINS", "LOG_FORMAT"}
    version = variables()["ui_secret_version"]
    assert version["default"] == "1"
    pattern = re.search(r'regex\("(.+?)", var\.ui_secret_version\)', one(version["validation"])["condition"])
    assert pattern and re.fullmatch(pattern.group(1).replace("\\\\", "\\"), "3")
    assert not re.fullmatch(pattern.group(1).replace("\\\\", "\\"), "latest")
    assert variables()["ui_secret"]["default"] == ""
    origins = _validation_rule("ui_origins")
    assert variables()["ui_origins"]["default"] == ["http://localhost:8080"]  # `gcloud run services proxy`
    assert origins.match("https://pages.example.com") and not origins.match("https://pages.example.com/x")


def test_the_run_pages_outputs_say_where_they_are() -> None:
    outputs: dict[str, Any] = {}
    for block in _blocks("output"):
        outputs.update(block)
    assert outputs["run_pages_url"]["value"] == f"${{one({FUNCTION_RESOURCE}.{UI_FUNCTION}[*].service_config[0].uri)}}"
    assert outputs["run_pages_service"]["value"] == (
        f"${{one({FUNCTION_RESOURCE}.{UI_FUNCTION}[*].service_config[0].service)}}")


# ---------------------------------------------------------------------------
# Schedules (var.schedules -> one Cloud Scheduler job each -> the HTTP start function)
# ---------------------------------------------------------------------------


def schedule_job() -> dict[str, Any]:
    return resources("google_cloud_scheduler_job")["schedules"]


def _rules(variable: str) -> list[str]:
    return [str(one(v)["condition"]) if isinstance(v, list) else str(v["condition"])
            for v in variables()[variable]["validation"]]


def _regex_of(condition: str) -> re.Pattern[str]:
    pattern = re.search(r'regex\("(.+?)", ', condition)
    assert pattern, condition
    return re.compile(pattern.group(1).replace("\\\\", "\\"))


def test_a_schedules_variable_of_named_schedules_with_their_defaults_and_checks() -> None:
    schedules = variables()["schedules"]
    assert schedules["default"] == {}
    kind = schedules["type"]
    for field in ("dag = string", "cron = string", 'time_zone = optional(string, "UTC")',
                  "params = optional(map(string), {})", 'concurrency = optional(string, "forbid")',
                  "paused = optional(bool, false)"):
        assert field in kind, (field, kind)
    names, dags, crons, concurrency, zones = _rules("schedules")
    from workflow.model.ticks import NAME  # what the start function takes as a schedule's name
    for good in ("nightly", "train_hourly", "0-ingest"):
        assert _regex_of(names).search(good) and NAME.match(good)
    for bad in ("Nightly", "-x", "night ly", "n" * 64, ""):
        assert not _regex_of(names).search(bad)
    assert _regex_of(dags).search("gs://my-dags/dags/vision/train.yaml")
    for bad in ("dags/x.yaml", "gs://my-dags/x.env", "gs://b/x.yaml"):
        assert not _regex_of(dags).search(bad), bad
    assert _regex_of(crons).search("0 0 * * *") and _regex_of(crons).search("*/5  1-3 * JAN MON")
    for bad in ("0 0 * *", "0 0 * * * *", "@daily"):
        assert not _regex_of(crons).search(bad), bad
    assert 'contains(["forbid", "allow", "replace"], s.concurrency)' in concurrency
    from workflow.model.ticks import CONCURRENCY
    assert CONCURRENCY == ("forbid", "allow", "replace")
    assert _regex_of(zones).search("America/New_York") and not _regex_of(zones).search("New York")


def test_each_schedule_is_a_scheduler_job_calling_the_http_start_as_the_scheduler_account() -> None:
    job = schedule_job()
    assert job["for_each"] == "${var.schedules}" and job["region"] == "${var.region}"
    assert job["name"] == "${var.name_prefix}-schedule-${each.key}"
    assert (job["schedule"], job["time_zone"], job["paused"]) == (
        "${each.value.cron}", "${each.value.time_zone}", "${each.value.paused}")
    target = one(job["http_target"])
    assert target["uri"] == "${local.start_request_uri}" and target["http_method"] == "POST"
    assert target["headers"] == {"Content-Type": "application/json"}
    assert target["body"] == "${base64encode(jsonencode(local.schedule_bodies[each.key]))}"
    assert one(target["oidc_token"]) == {"service_account_email": f"${{{SCHEDULER_SA}.email}}",
                                         "audience": "${local.start_request_uri}"}
    assert "oauth_token" not in target and "pubsub_target" not in job and "app_engine_http_target" not in job
    assert "${google_cloud_run_v2_service_iam_member.scheduler_invokes_start}" in job["depends_on"]
    assert not [n for n in resources("google_service_account") if "schedule" in n and n != "scheduler"]  # no new one


def test_a_schedules_body_is_a_start_request_naming_its_schedule() -> None:
    from workflow.admission.start_requests import START_KEYS

    body = tf_locals()["schedule_bodies"]
    assert "{dag_path = s.dag, schedule = name, concurrency = s.concurrency}" in body
    assert 'for key in (length(s.params) > 0 ? ["params"] : []) : key =>' in body  # no key without parameters
    assert {"dag_path", "schedule", "concurrency"} <= START_KEYS


REQUIRED_ENV.add("WORKFLOW_REPLACING_SCHEDULES")  # the schedules whose tick may cancel their running run


def test_only_the_schedules_declared_replace_may_cancel_their_running_run() -> None:
    from workflow.settings import REPLACING_SCHEDULES_ENV

    assert tf_locals()["function_env"][REPLACING_SCHEDULES_ENV] == (
        '${join(",", sort([for name, s in var.schedules : name if s.concurrency == "replace"]))}')


def test_a_schedule_is_retried_for_at_least_once_delivery_within_the_functions_time() -> None:
    job = schedule_job()
    retry = one(job["retry_config"])
    assert 3 <= retry["retry_count"] <= 5  # Cloud Scheduler takes at most 5
    assert retry["min_backoff_duration"] == "10s" and retry["max_doublings"] >= 1
    assert job["attempt_deadline"] == "${max(15, var.function_timeout_sec)}s"  # a call may take a function's time


def test_the_scheduler_account_still_invokes_only_the_start_function_and_nothing_is_public() -> None:
    grants = [(rtype, name, body.get("role")) for rtype, name, body in all_resources()
              if "_iam_" in rtype and any(SCHEDULER_SA in m for m in _iam_members(body))]
    assert grants == [("google_cloud_run_v2_service_iam_member", "scheduler_invokes_start", "roles/run.invoker")]
    invoker = resources("google_cloud_run_v2_service_iam_member")["scheduler_invokes_start"]
    assert invoker["name"] == '${local.functions["on_start_request"].service_config[0].service}'
    for rtype, name, body in all_resources():
        for member in _iam_members(body):
            assert not any(p in member.lower() for p in PUBLIC_MEMBERS), f"{rtype}.{name}: {member}"
    outputs: dict[str, Any] = {}
    for block in _blocks("output"):
        outputs.update(block)
    assert "google_cloud_scheduler_job.schedules" in outputs["schedule_jobs"]["value"]


# ---------------------------------------------------------------------------
# The control route (cancel, rerun, resume): its own topic, function and IAM
# ---------------------------------------------------------------------------

REQUIRED_ENV.add("WORKFLOW_RUN_ADMINS")  # who may act on any run over HTTP
CONTROL_FUNCTION = '${local.functions["on_control_request"].service_config[0].service}'


CONTROL_TOPIC_NAMES = ("${google_pubsub_topic.control.name}", "${local.ui_action_topic.name}")  # the pages' is it


def test_the_control_topic_is_published_on_by_the_run_operators_and_the_run_pages_only() -> None:
    assert tf_locals()["ui_action_topic"] == "${google_pubsub_topic.control}"
    grants = dict((name, body) for name, body in resources("google_pubsub_topic_iam_member").items()
                  if body["topic"] in CONTROL_TOPIC_NAMES)
    assert sorted(grants) == ["run_operators_publish_control", "ui_action_publisher"]
    assert refers_to(grants["ui_action_publisher"]["member"], UI_SA)
    grant = grants["run_operators_publish_control"]
    assert (grant["for_each"], grant["member"], grant["role"]) == (
        "${toset(var.run_operators)}", "${each.value}", "roles/pubsub.publisher")
    start = resources("google_pubsub_topic_iam_member")["start_publishers"]  # start publishers: the start topic
    assert start["topic"] == "${google_pubsub_topic.start.name}"
    assert functions()["on_control_message"]["pubsub_topic"] == "${google_pubsub_topic.control.id}"
    assert resources("google_pubsub_topic")["control"]["name"] == "${var.name_prefix}-run-control"


def test_the_control_function_is_invoked_by_the_run_operators_and_control_invokers_only() -> None:
    invokers = {name: body for name, body in resources("google_cloud_run_v2_service_iam_member").items()
                if body.get("name") == CONTROL_FUNCTION}
    assert list(invokers) == ["control_request_invokers"]
    grant = invokers["control_request_invokers"]
    assert (grant["for_each"], grant["member"], grant["role"]) == (
        "${toset(concat(var.run_operators, var.run_control_invokers))}", "${each.value}", "roles/run.invoker")
    start = resources("google_cloud_run_v2_service_iam_member")["start_request_invokers"]
    assert start["name"] == '${local.functions["on_start_request"].service_config[0].service}'
    assert not [b for b in resources("google_pubsub_topic_iam_member").values()  # HTTP only: not on the topic
                if "run_control_invokers" in str(b.get("for_each"))]
    assert functions()["on_control_request"]["ingress"] == "ALLOW_ALL" and is_http(functions()["on_control_request"])
    outputs: dict[str, Any] = {}
    for block in _blocks("output"):
        outputs.update(block)
    assert outputs["control_request_url"]["value"] == '${local.functions["on_control_request"].url}'
    assert outputs["control_topic_id"]["value"] == "${google_pubsub_topic.control.id}"


def test_run_operators_are_iam_members_never_public_and_run_admins_are_emails() -> None:
    for variable in ("run_operators", "run_control_invokers"):
        members = _validation_rule(variable)
        for good in ("group:ops@example.com", "serviceAccount:ui@p.iam.gserviceaccount.com", "user:a@example.com"):
            assert members.search(good), (variable, good)
        for bad in ("allUsers", "allAuthenticatedUsers", "ops@example.com"):
            assert not members.search(bad), (variable, bad)
        assert variables()[variable]["default"] == []
    assert variables()["run_admins"]["default"] == []
    admins = _validation_rule("run_admins")
    assert admins.search("oncall@example.com") and admins.search("ci@p.iam.gserviceaccount.com")
    for bad in ("user:oncall@example.com", "a@b.com,c@d.com", "oncall", "allUsers"):
        assert not admins.search(bad), bad
    assert tf_locals()["function_env"]["WORKFLOW_RUN_ADMINS"] == '${join(",", var.run_admins)}'
    grants = [(n, b) for n, b in _grants_on_the_control_route() if n != "ui_action_publisher"]  # the pages' own
    assert grants and all(body["member"] == "${each.value}" for _, body in grants)  # members from the variables
    assert not [name for name, body in grants
                if any(p in m.lower() for m in _iam_members(body) for p in PUBLIC_MEMBERS)]


def test_the_security_page_says_who_may_use_the_control_route_as_terraform_grants_it() -> None:
    page = (REPO_ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    said = page[page.index("**Who can cancel, rerun and resume runs.**"):page.index("**What a publisher chooses")]
    for grant in ("`run_operators` may publish on `workflow-run-control`", "and call `on_control_request`",
                  "`run_control_invokers` may call `on_control_request` only", "neither `start_publishers` nor",
                  "`start_request_invokers` get anything", "nothing is public", "`WORKFLOW_RUN_ADMINS` (Terraform: "
                  "`run_admins`"):
        assert grant in " ".join(said.split()), grant
    granted = {name for name, _ in _grants_on_the_control_route()}
    assert granted == {"run_operators_publish_control", "control_request_invokers", "ui_action_publisher"}
    assert "the run pages' own service account may publish on `workflow-run-control`" in " ".join(said.split())
    deploy = " ".join((REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8").split())
    assert "`run_operators` get `roles/pubsub.publisher` on `workflow-run-control`" in deploy
    assert "`run_control_invokers` get `roles/run.invoker` on `on_control_request`" in deploy


def _grants_on_the_control_route() -> list[tuple[str, dict[str, Any]]]:
    """Every IAM grant on the control topic or the control function's Cloud Run service."""
    return [(name, body) for rtype, name, body in all_resources() if "_iam_" in rtype
            and (body.get("topic") in CONTROL_TOPIC_NAMES or body.get("name") == CONTROL_FUNCTION)]
