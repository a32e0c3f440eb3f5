"""Static checks tying cloudbuild.yaml to the Terraform configuration.

cloudbuild.yaml may only deploy through terraform/ (the single definition of
the functions); every variable it passes must exist there, every required
variable must be passed, and every substitution must be declared.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CLOUDBUILD = REPO_ROOT / "cloudbuild.yaml"
TF_DIR = REPO_ROOT / "terraform"

# https://cloud.google.com/build/docs/configuring-builds/substitute-variable-values
BUILTIN_SUBSTITUTIONS = {
    "PROJECT_ID",
    "PROJECT_NUMBER",
    "BUILD_ID",
    "LOCATION",
    "TRIGGER_NAME",
    "COMMIT_SHA",
    "SHORT_SHA",
    "REVISION_ID",
    "BRANCH_NAME",
    "TAG_NAME",
    "REF_NAME",
    "REPO_NAME",
    "REPO_FULL_NAME",
    "TRIGGER_BUILD_CONFIG_PATH",
    "SERVICE_ACCOUNT_EMAIL",
    "SERVICE_ACCOUNT",
}
SUBSTITUTION_REF = re.compile(r"\$(?:\{(?P<braced>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|(?P<other>.?))")
# Ways of deploying code that would bypass Terraform's definition of the functions.
DEPLOYER = "projects/$PROJECT_ID/serviceAccounts/workflow-deployer@$PROJECT_ID.iam.gserviceaccount.com"
FORBIDDEN_DEPLOY = ("functions deploy", "run deploy", "--entry-point", "--trigger-topic", "--trigger-event", "--source")


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == '"' and text[-1] == '"' else text


def _normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {_unquote(k): _normalize(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return _unquote(value) if isinstance(value, str) else value


def _load_hcl(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return dict(_normalize(hcl2.load(handle)))


@pytest.fixture(scope="module")
def build() -> dict[str, Any]:
    data = yaml.safe_load(CLOUDBUILD.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("steps"), list) and data["steps"]
    return data


@pytest.fixture(scope="module")
def tf_variables() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(TF_DIR.glob("*.tf")):
        for block in _load_hcl(path).get("variable", []):
            found.update(block)
    assert found
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _step_text(step: dict[str, Any]) -> str:
    return "\n".join(_strings(step))


def _terraform_steps(build: dict[str, Any], command: str) -> list[dict[str, Any]]:
    return [
        s
        for s in build["steps"]
        if str(s.get("name", "")).startswith("hashicorp/terraform") and s.get("args", [None])[0] == command
    ]


def _apply_step(build: dict[str, Any]) -> dict[str, Any]:
    steps = _terraform_steps(build, "apply")
    assert len(steps) == 1, "expected exactly one `terraform apply` step"
    return steps[0]


def _passed_vars(step: dict[str, Any]) -> dict[str, str]:
    args = [str(a) for a in step["args"]]
    passed: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg == "-var":
            assignment = args[i + 1]
        elif arg.startswith("-var="):
            assignment = arg.removeprefix("-var=")
        else:
            continue
        name, sep, value = assignment.partition("=")
        assert sep, f"malformed -var {assignment!r}"
        assert name not in passed, f"-var {name} passed twice"
        passed[name] = value
    return passed


# ---------------------------------------------------------------------------


def test_apply_passes_only_declared_variables(build: dict[str, Any], tf_variables: dict[str, Any]) -> None:
    unknown = set(_passed_vars(_apply_step(build))) - set(tf_variables)
    assert not unknown, f"cloudbuild passes variables not declared in terraform/variables.tf: {sorted(unknown)}"


def test_apply_passes_every_required_variable(build: dict[str, Any], tf_variables: dict[str, Any]) -> None:
    required = {name for name, body in tf_variables.items() if "default" not in body}
    missing = required - set(_passed_vars(_apply_step(build)))
    assert not missing, f"variables without default not passed by cloudbuild: {sorted(missing)}"


def test_apply_is_non_interactive_in_terraform_dir(build: dict[str, Any]) -> None:
    step = _apply_step(build)
    assert "-auto-approve" in step["args"] and "-input=false" in step["args"]
    for tf_step in [s for s in build["steps"] if str(s.get("name", "")).startswith("hashicorp/terraform")]:
        assert tf_step.get("dir") == "terraform", tf_step
        assert re.fullmatch(r"hashicorp/terraform:\d+\.\d+\.\d+", tf_step["name"]), "pin the terraform image"
    assert (REPO_ROOT / step["dir"] / "versions.tf").is_file()


def test_init_uses_state_bucket_substitution(build: dict[str, Any]) -> None:
    (init,) = _terraform_steps(build, "init")
    assert "-backend-config=bucket=${_TF_STATE_BUCKET}" in init["args"]
    order = [s.get("id") for s in build["steps"]]
    assert order.index(init.get("id")) < order.index(_apply_step(build).get("id"))


def test_substitutions_are_declared_and_used(build: dict[str, Any]) -> None:
    declared = set(build.get("substitutions", {}))
    assert all(name.startswith("_") for name in declared), declared
    used: set[str] = set()
    problems: list[str] = []
    for text in _strings(build["steps"]):
        for match in SUBSTITUTION_REF.finditer(text.replace("$$", "")):
            name = match.group("braced") or match.group("bare")
            if not name or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name):
                problems.append(f"unescaped $ in {match.group(0)!r} (write $$ for shell variables)")
            elif name.startswith("_"):
                used.add(name)
                if name not in declared:
                    problems.append(f"undeclared substitution {name}")
            elif name not in BUILTIN_SUBSTITUTIONS:
                problems.append(f"unknown built-in substitution {name}")
    assert not problems, problems
    assert declared <= used, f"declared but unused substitutions: {sorted(declared - used)}"
    for name in ("_REGION", "_DAG_BUCKET", "_DAG_PREFIX", "_TR_URL", "_TR_SERVICE", "_TF_STATE_BUCKET"):
        assert name in declared, name


def test_substitutions_documented_in_header() -> None:
    lines = CLOUDBUILD.read_text(encoding="utf-8").splitlines()
    header = "\n".join(line for line in lines[: next(i for i, ln in enumerate(lines) if ln.startswith("steps:"))])
    declared = yaml.safe_load(CLOUDBUILD.read_text(encoding="utf-8"))["substitutions"]
    for name in declared:
        assert re.search(rf"^#\s+{name}\s+\S", header, re.MULTILINE), f"{name} not documented in the header comment"


def test_never_allows_unauthenticated() -> None:
    assert "allow-unauthenticated" not in CLOUDBUILD.read_text(encoding="utf-8")


def test_deploys_only_through_terraform(build: dict[str, Any]) -> None:
    for step in build["steps"]:
        text = _step_text(step)
        for needle in FORBIDDEN_DEPLOY:
            assert needle not in text, f"step {step.get('id')} deploys outside terraform ({needle!r})"


def test_tests_run_before_deploy(build: dict[str, Any]) -> None:
    ids = [s.get("id") for s in build["steps"]]
    tests = [s for s in build["steps"] if "pytest" in _step_text(s)]
    assert len(tests) == 1
    test_step = tests[0]
    assert str(test_step["name"]).startswith("python:3.11")
    text = _step_text(test_step)
    for lock in ("requirements-dev.txt", "requirements-checkov.txt"):
        installs = [line for line in text.splitlines() if "pip install" in line and lock in line]
        assert installs, f"the test step does not install {lock}"
        for line in installs:
            assert "--require-hashes" in line and "--only-binary=:all:" in line, f"unhashed or sdist install: {line}"
    assert "python -m pytest tests/unit tests/static" in text
    assert "CI=true" in test_step.get("env", []), "static tests must fail (not skip) when checkov is missing"
    assert ids.index(test_step.get("id")) < ids.index(_apply_step(build).get("id"))
    for step in build["steps"]:
        assert "waitFor" not in step, "steps must run sequentially so tests gate the deploy"


def test_build_runs_as_the_dedicated_deployer(build: dict[str, Any]) -> None:
    assert build.get("serviceAccount") == DEPLOYER, build.get("serviceAccount")
    logging = build.get("options", {}).get("logging")
    # Cloud Build rejects a user-specified service account with the default logging mode.
    assert logging in {"CLOUD_LOGGING_ONLY", "GCS_ONLY", "NONE"}, logging
    if logging == "GCS_ONLY":
        assert build.get("logsBucket"), "GCS_ONLY logging needs logsBucket"


def test_test_step_keeps_client_libraries_away_from_build_credentials(build: dict[str, Any]) -> None:
    (test_step,) = [s for s in build["steps"] if "pytest" in _step_text(s)]
    env = dict(item.split("=", 1) for item in test_step.get("env", []))
    assert env.get("GCE_METADATA_HOST", "").endswith(".invalid"), env
    assert env.get("NO_GCE_CHECK") == "True", env
    assert "CLOUDSDK_CONFIG" in env, env


def test_dead_letter_step_reads_existing_outputs(build: dict[str, Any]) -> None:
    outputs: set[str] = set()
    for block in _load_hcl(TF_DIR / "outputs.tf").get("output", []):
        outputs |= set(block)
    scripts = [t for s in build["steps"] for t in _strings(s) if 'outputs["' in t]
    assert scripts, "no step consumes the terraform outputs"
    read = {name for script in scripts for name in re.findall(r'outputs\["(\w+)"\]', script)}
    assert read and read <= outputs, read - outputs
    text = "\n".join(scripts)
    assert "--dead-letter-topic" in text and "roles/pubsub.subscriber" in text
    assert '"--ack-deadline", ack_deadline' in text and 'outputs["event_ack_deadline_seconds"]' in text
