"""The cloud runtime end to end on the local cloud: emulators, the six functions, their triggers.

One `LocalCloud` is shared by the module (a second one, delivering every engine message
twice, serves the duplicate-delivery test). Every test tags its tasks with a label unique
to it, so what the shared mock Task Runner received can be told apart per test.
"""

from __future__ import annotations

import collections
import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
import yaml
from google.cloud.firestore_v1.base_query import FieldFilter

from devtools.localcloud import eventarc, processes, pubsub_wiring
from devtools.localcloud.client import RunTimeout
from devtools.localcloud.stack import LocalCloud
from devtools.localcloud.wiring import ENGINE_TARGET, EVENTS_TOPIC, UPLOAD_TARGET
from devtools.mock_runner import fingerprint
from polling import wait_until
from workflow.model import codec
from workflow.model.messages import CheckJob
from workflow.model.records import RunRecord, StepRecord
from workflow.model.states import RunStatus, StepState

pytestmark = pytest.mark.cloud

POLL = 0.1  # seconds between two checks of a job (WORKFLOW_CHECK_STATE_DURATION_SEC)
TAG = "e2e"  # the label holding a test's unique tag
RUN_TIMEOUT = 90.0
OPS = "ops@example.com"  # listed in WORKFLOW_RUN_ADMINS


# --------------------------------------------------------------------------- fixtures


def _start(require_tool: Callable[[Callable[[], LocalCloud]], LocalCloud], **options: Any) -> LocalCloud:
    processes.install_signal_handlers()
    return require_tool(lambda: LocalCloud(poll=POLL, mock_duration=0.2, **options).start())


def _stop(cloud: LocalCloud) -> None:
    groups = {name: s.process.pgid for name, s in cloud.services().items()}
    cloud.stop()
    left = [name for name, pgid in groups.items() if processes.group_exists(pgid)]
    assert not left, f"still running after stop(): {left}"


@pytest.fixture(scope="module")
def cloud(require_tool: Callable[[Callable[[], LocalCloud]], LocalCloud]) -> Iterator[LocalCloud]:
    """The module's local cloud (project `e2e`, poll 0.1 s, jobs of 0.2 s unless labelled;
    OPS may cancel, rerun and resume any run over HTTP)."""
    stack = _start(require_tool, project="e2e", extra_env={"WORKFLOW_RUN_ADMINS": OPS})
    try:
        yield stack
    finally:
        _stop(stack)


BUSY = "workflow.engine.context.Busy: "
"""What a duplicate delivery raises when it finds the other one at work: it is redelivered."""


def unexpected_errors(cloud: LocalCloud, since: int = 0) -> list[str]:
    """The error lines of the functions' logs (from line `since` of that list on), but Busy."""
    return [e for e in cloud.function_errors()[since:] if BUSY not in e]


@pytest.fixture
def expected_errors() -> list[str]:
    """Texts of the error lines a test makes the functions log on purpose (a forged message)."""
    return []


@pytest.fixture(autouse=True)
def no_unexpected_function_errors(request: pytest.FixtureRequest, expected_errors: list[str]) -> Iterator[None]:
    """Fail a test that made a function log an error (but Busy, and the errors it expects),
    quoting the log lines, or that left a run RUNNING."""
    if "cloud" not in request.fixturenames:
        yield
        return
    stack: LocalCloud = request.getfixturevalue("cloud")
    before = len(stack.function_errors())
    yield
    errors = [e for e in unexpected_errors(stack, before) if not any(x in e for x in expected_errors)]
    assert not errors, "the functions logged errors:\n" + "\n".join(errors) + "\n" + stack.log_tails(60)
    left = [r.run_id for r in stack.store().list_runs(1000, RunStatus.RUNNING)]
    assert not left, f"runs left RUNNING: {left}"


@pytest.fixture
def tag() -> str:
    """A tag unique to the test: label value, object name and run id part."""
    return uuid.uuid4().hex[:12]


# --------------------------------------------------------------------------- helpers


def task(image: str, tag: str, duration: str = "0.2", **extra: Any) -> dict[str, Any]:
    return {"imageUri": image, "labels": {"mock_duration_sec": duration, TAG: tag}, **extra}


def fork_join(tag: str, first: str = "0.2") -> dict[str, Any]:
    return {
        "name": "fork-join",
        "steps": [
            {"id": "prepare", "task": task("gcr.io/e2e/prepare:1", tag, first)},
            {"id": "train-a", "dependsOn": ["prepare"], "task": task("gcr.io/e2e/train:1", tag, "0.4")},
            {"id": "train-b", "dependsOn": ["prepare"], "task": task("gcr.io/e2e/train:1", tag, "0.2")},
            {"id": "evaluate", "dependsOn": ["train-a", "train-b"], "task": task("gcr.io/e2e/evaluate:1", tag)},
        ],
    }


def fork_with_failure(tag: str) -> dict[str, Any]:
    return {
        "name": "fork-with-failure",
        "steps": [
            {"id": "extract", "task": task("gcr.io/e2e/extract:1", tag)},
            {"id": "transform", "dependsOn": ["extract"], "task": task("gcr.io/e2e/transform-error:1", tag)},
            {"id": "load", "dependsOn": ["transform"], "task": task("gcr.io/e2e/load:1", tag)},
            {"id": "report", "dependsOn": ["extract"], "task": task("gcr.io/e2e/report:1", tag, "0.6")},
        ],
    }


def fan(tag: str, width: int) -> dict[str, Any]:
    workers = [f"w{i:03d}" for i in range(width)]
    return {
        "name": f"fan-1-{width}-1",
        "steps": [
            {"id": "source", "task": task("gcr.io/e2e/source:1", tag, "0")},
            *({"id": w, "dependsOn": ["source"], "task": task("gcr.io/e2e/work:1", tag, "0")} for w in workers),
            {"id": "sink", "dependsOn": workers, "task": task("gcr.io/e2e/sink:1", tag, "0")},
        ],
    }


def as_yaml(dag: dict[str, Any]) -> bytes:
    return yaml.safe_dump(dag, sort_keys=False).encode()


def finished(cloud: LocalCloud, run_id: str, timeout: float = RUN_TIMEOUT) -> RunRecord:
    """The run once terminal; on a timeout, fail quoting the functions' logs."""
    try:
        return cloud.wait_run(run_id, timeout)
    except RunTimeout as exc:
        pytest.fail(f"{exc}\n{cloud.log_tails(60)}", pytrace=False)


def by_id(steps: list[StepRecord]) -> dict[str, StepRecord]:
    return {s.step_id: s for s in steps}


def submissions(cloud: LocalCloud, tag: str) -> list[str]:
    """Job names of the accepted submissions of tasks labelled `tag`, in the order received."""
    return [
        r["body"]["job_name"]
        for r in cloud.mock.requests()
        if r["path"] == "/job" and r["status"] == 200 and (r["body"].get("labels") or {}).get(TAG) == tag
    ]


def job_requests(cloud: LocalCloud, tag: str, job_ids: set[str]) -> list[dict[str, Any]]:
    """Every request about the test's jobs: their submissions and their status requests."""
    out = []
    for r in cloud.mock.requests():
        if r["path"] == "/job" and ((r["body"] or {}).get("labels") or {}).get(TAG) == tag:
            out.append(r)
        elif r["path"] == "/jobstatus" and r["query"].get("job_id") in job_ids:
            out.append(r)
    return out


def status_requests(cloud: LocalCloud, job_ids: set[str]) -> collections.Counter[str]:
    return collections.Counter(
        r["query"]["job_id"]
        for r in cloud.mock.requests()
        if r["path"] == "/jobstatus" and r["query"].get("job_id") in job_ids
    )


def run_documents(cloud: LocalCloud, run_id: str) -> list[dict[str, Any]]:
    """The run's document and every document under it (steps, ends, claims), as stored."""

    def walk(ref: Any) -> Iterator[dict[str, Any]]:
        snap = ref.get()
        if snap.exists:
            yield {"path": ref.path, **(snap.to_dict() or {})}
        for collection in ref.collections():
            for child in collection.list_documents():
                yield from walk(child)

    return list(walk(cloud.firestore_client().collection("runs").document(run_id)))


def runs_from(cloud: LocalCloud, source: str) -> list[str]:
    docs = cloud.firestore_client().collection("runs").where(filter=FieldFilter("source", "==", source)).stream()
    return [d.id for d in docs]



def assert_submitted_once(cloud: LocalCloud, tag: str, steps: dict[str, StepRecord]) -> list[str]:
    sent = submissions(cloud, tag)
    names = [s.task.name or s.step_id for s in steps.values() if s.job_id]
    counts = collections.Counter(sent)
    assert sorted(sent) == sorted(names), f"submissions {counts} vs submitted steps {names}"
    assert all(n == 1 for n in counts.values()), f"a job was submitted twice: {counts}"
    return sent


# --------------------------------------------------------------------------- uploads


def test_uploaded_fork_join_succeeds_and_joins_after_both_branches(
    cloud: LocalCloud, tag: str, record_property: Callable[[str, object], None]
) -> None:
    name = f"{cloud.prefix}fork-join-{tag}.yaml"
    began = time.monotonic()
    name, generation = cloud.upload(as_yaml(fork_join(tag)), name)
    run_id = cloud.run_id_for(name, generation)
    run = finished(cloud, run_id)
    took = time.monotonic() - began
    record_property("fork_join_upload_to_succeeded_s", round(took, 2))
    print(f"fork-join: upload to SUCCEEDED in {took:.2f} s")

    assert run.status is RunStatus.SUCCEEDED
    assert (run.source, run.dag_name, run.step_count) == (f"gs://{cloud.bucket}/{name}#{generation}", "fork-join", 4)
    assert run.tr_url == cloud.mock_url
    steps = by_id(cloud.steps(run_id))
    assert list(steps) == ["prepare", "train-a", "train-b", "evaluate"]
    for step in steps.values():
        assert step.state is StepState.SUCCEEDED, step
        assert step.job_id.startswith(f"{step.step_id}-"), step
        assert step.waiting_on == 0
    assert len({s.job_id for s in steps.values()}) == 4

    sent = assert_submitted_once(cloud, tag, steps)
    assert sent[0] == "prepare" and sent[-1] == "evaluate"
    assert sorted(sent[1:3]) == ["train-a", "train-b"]
    evaluate = steps["evaluate"]
    assert evaluate.submitted_at is not None
    for branch in ("train-a", "train-b"):
        ended = steps[branch].finished_at
        assert ended is not None and ended <= evaluate.submitted_at, f"evaluate started before {branch} ended"

    seen = job_requests(cloud, tag, {s.job_id for s in steps.values()})
    assert {r["query"].get("job_id") for r in seen if r["path"] == "/jobstatus"} == {s.job_id for s in steps.values()}
    assert {r["auth"] for r in seen} == {"Bearer " + fingerprint("none")}  # WORKFLOW_TR_AUTH_MODE=none


def test_uploaded_fork_with_failure_skips_only_the_doomed_branch(cloud: LocalCloud, tag: str) -> None:
    name, generation = cloud.upload(json.dumps(fork_with_failure(tag)).encode(), f"{cloud.prefix}fwf-{tag}.json")
    run_id = cloud.run_id_for(name, generation)
    run = finished(cloud, run_id)

    assert run.status is RunStatus.FAILED
    steps = by_id(cloud.steps(run_id))
    assert {k: s.state for k, s in steps.items()} == {
        "extract": StepState.SUCCEEDED,
        "transform": StepState.FAILED,
        "load": StepState.SKIPPED,
        "report": StepState.SUCCEEDED,
    }
    for step_id in ("extract", "transform", "report"):
        assert steps[step_id].job_id.startswith(f"{step_id}-")
    assert steps["load"].job_id == "" and steps["load"].submitted_at is None
    assert "transform" in steps["load"].message and "failed" in steps["load"].message
    assert steps["load"].message == "upstream step 'transform' failed"
    assert "transform-error" in steps["transform"].message

    sent = assert_submitted_once(cloud, tag, steps)
    assert sent[0] == "extract"
    assert "load" not in sent
    assert set(sent[1:]) == {"transform", "report"}
    assert run.finished_at is not None and steps["report"].finished_at is not None
    assert run.finished_at >= steps["report"].finished_at  # the run ended after its independent branch


# --------------------------------------------------------------------------- start messages


def test_start_messages_with_an_inline_dag_and_a_dag_path_both_succeed(cloud: LocalCloud, tag: str) -> None:
    inline_id = f"inline-{tag}"
    cloud.publish_start({"dag": fork_join(tag), "run_id": inline_id})

    path_tag = f"{tag}-path"
    object_name, _ = cloud.upload(as_yaml(fork_join(path_tag)), f"requests/{tag}.yaml")  # outside the prefix
    dag_path = f"gs://{cloud.bucket}/{object_name}"
    message_id = cloud.publish_start({"dag_path": dag_path})
    path_id = f"start-{message_id}"  # no run_id given: derived from the Pub/Sub message id

    for run_id, source, run_tag in ((inline_id, "inline", tag), (path_id, dag_path, path_tag)):
        run = finished(cloud, run_id)
        assert run.status is RunStatus.SUCCEEDED, run
        assert run.source == source
        steps = by_id(cloud.steps(run_id))
        assert all(s.state is StepState.SUCCEEDED and s.job_id for s in steps.values()), steps
        sent = assert_submitted_once(cloud, run_tag, steps)
        assert (sent[0], sent[-1]) == ("prepare", "evaluate")
    assert runs_from(cloud, f"gs://{cloud.bucket}/{object_name}#{_generation(cloud, object_name)}") == []


def _generation(cloud: LocalCloud, name: str) -> str:
    blob = cloud.storage_client().bucket(cloud.bucket).get_blob(name)
    return str(blob.generation)


def test_a_start_token_is_sealed_at_rest_and_sent_to_the_task_runner(cloud: LocalCloud, tag: str) -> None:
    token = f"eyJ.secret-{uuid.uuid4().hex}"
    run_id = f"token-{tag}"
    cloud.publish_start({"dag": fork_join(tag), "run_id": run_id, "tr_auth_jwt": token})
    run = finished(cloud, run_id)
    assert run.status is RunStatus.SUCCEEDED

    documents = run_documents(cloud, run_id)
    step_docs = [d for d in documents if "/steps/" in d["path"]]
    assert len(step_docs) == 4
    assert token not in json.dumps(documents, default=str), "the token is stored in clear text"
    for doc in step_docs:
        assert doc["tr_auth"].startswith("fernet:") and len(doc["tr_auth"]) > 40, doc["path"]

    steps = by_id(cloud.steps(run_id))
    seen = job_requests(cloud, tag, {s.job_id for s in steps.values()})
    assert len([r for r in seen if r["path"] == "/job"]) == 4
    assert len([r for r in seen if r["path"] == "/jobstatus"]) >= 4
    assert {r["auth"] for r in seen} == {"Bearer " + fingerprint(token)}


def params_dag() -> dict[str, Any]:
    """A DAG with a required parameter, a list fanned out with forEach and the run's own values;
    each job is labelled with the `tag` parameter, so each start path's jobs can be told apart."""
    labels = {"mock_duration_sec": "0", TAG: "{{ params.tag }}"}
    return {
        "name": "params",
        "params": {"tag": {"type": "string", "required": True}, "day": {"type": "string", "required": True},
                   "lr": {"type": "number", "default": "0.1"}, "shards": {"type": "list", "default": ["a"]}},
        "steps": [
            {"id": "prep", "task": {"imageUri": "gcr.io/e2e/prep:1", "labels": labels,
                                    "args": ["--day={{ params.day }}", "--lr={{ params.lr }}"]}},
            {"id": "train", "dependsOn": ["prep"], "forEach": "{{ params.shards }}",
             "task": {"imageUri": "gcr.io/e2e/train:1", "labels": labels, "args": {"shard": "{{ item }}"}}},
            {"id": "merge", "dependsOn": ["train"], "task": {"imageUri": "gcr.io/e2e/merge:1", "labels": labels}},
        ],
    }


def test_params_from_a_start_message_an_http_start_and_upload_metadata_send_the_same_args(
        cloud: LocalCloud, tag: str) -> None:
    object_name, _ = cloud.upload(as_yaml(params_dag()), f"requests/params-{tag}.yaml")
    dag_path = f"gs://{cloud.bucket}/{object_name}"
    values = {"day": "2026-11-01", "lr": "0.50", "shards": ["eu", "us", "asia"]}
    cloud.publish_start({"dag_path": dag_path, "run_id": f"params-m-{tag}", "params": {**values, "tag": f"m{tag}"}})
    status, answer = cloud.post_start({"dag_path": dag_path, "run_id": f"params-h-{tag}",
                                       "params": {**values, "tag": f"h{tag}"}})
    assert status == 202, answer
    metadata = {"param-day": "2026-11-01", "param-lr": "0.50", "param-shards": '["eu","us","asia"]',
                "param-tag": f"u{tag}"}
    name, generation = cloud.upload(as_yaml(params_dag()), f"{cloud.prefix}params-{tag}.yaml", metadata)
    runs = {"m": f"params-m-{tag}", "h": f"params-h-{tag}", "u": cloud.run_id_for(name, generation)}
    sent = {}
    for key, run_id in runs.items():
        run = finished(cloud, run_id)
        assert run.status is RunStatus.SUCCEEDED, run
        assert run.inputs.groups == {"train": ("train.0", "train.1", "train.2")}
        assert run.inputs.params == {"day": "2026-11-01", "lr": "0.50", "shards": ("eu", "us", "asia"),
                                     "tag": f"{key}{tag}"}
        sent[key] = sorted((r["body"]["job_name"], json.dumps(r["body"].get("args")))
                           for r in tagged_requests(cloud, f"{key}{tag}") if r["path"] == "/job")
    assert sent["m"] == sent["h"] == sent["u"] == [
        ("merge", "null"), ("prep", '["--day=2026-11-01", "--lr=0.50"]'), ("train.0", '{"shard": "eu"}'),
        ("train.1", '{"shard": "us"}'), ("train.2", '{"shard": "asia"}')]


def tagged_requests(cloud: LocalCloud, tag: str) -> list[dict[str, Any]]:
    """Every request the mock received for a task labelled `tag`."""
    return [r for r in cloud.mock.requests() if ((r["body"] or {}).get("labels") or {}).get(TAG) == tag]


def test_a_start_message_naming_a_task_runner_not_allowed_is_invalid_and_sends_nothing(
    cloud: LocalCloud, tag: str
) -> None:
    other_origin = cloud.mock_url.replace("127.0.0.1", "localhost")  # the same mock, an origin not allowed
    run_id = f"origin-{tag}"
    cloud.publish_start({"dag": fork_join(tag), "run_id": run_id, "tr_hostname": other_origin})
    run = finished(cloud, run_id)
    assert run.status is RunStatus.INVALID, run
    assert any("is not allowed" in p and "WORKFLOW_ALLOWED_TR_ORIGINS" in p for p in run.problems), run.problems
    assert cloud.steps(run_id) == [] and tagged_requests(cloud, tag) == []


def test_a_forged_check_on_the_engine_topic_sends_nothing_to_the_host_it_names(
    cloud: LocalCloud, tag: str, expected_errors: list[str]
) -> None:
    run_id = f"forged-{tag}"
    cloud.publish_start({"dag": {"steps": [{"id": "long", "task": task("gcr.io/e2e/long:1", tag, "3")}]},
                         "run_id": run_id})
    [step] = wait_until(lambda: [s for s in cloud.steps(run_id) if s.state is StepState.RUNNING and s.job_id],
                        timeout=RUN_TIMEOUT, what="the step to run")
    forged_job = f"forged-{tag}"
    elsewhere = cloud.mock_url.replace("127.0.0.1", "localhost")  # the same mock, an origin not allowed
    forged = CheckJob(run_id, "long", forged_job, 1, elsewhere, "", step.submitted_at or 0.0, "RUNNING")
    expected_errors.append("not its step's")
    cloud.publish_engine(codec.encode(forged), {})
    wait_until(lambda: any("not its step's" in e for e in cloud.function_errors()), timeout=RUN_TIMEOUT,
               what="the forged check to be dropped")
    assert [r for r in cloud.mock.requests() if r["query"].get("job_id") == forged_job] == []
    run = finished(cloud, run_id)
    assert run.status is RunStatus.SUCCEEDED and by_id(cloud.steps(run_id))["long"].job_id == step.job_id


def test_an_invalid_run_stays_invalid_after_rerun_and_resume_requests(cloud: LocalCloud, tag: str) -> None:
    run_id = f"invalid-{tag}"
    status, _ = cloud.post_start({"dag": {"steps": []}, "run_id": run_id})
    assert status == 400
    for request in ({"action": "rerun", "run_id": run_id, "reruns": 0}, {"action": "resume", "run_id": run_id}):
        status, answer = cloud.post_control(request, caller=OPS)
        assert status == 400 and "INVALID" in answer["problems"][0], answer
    run = cloud.run(run_id)
    assert run is not None and run.status is RunStatus.INVALID and run.reruns == ()


def test_resume_requests_for_a_run_whose_jobs_run_keep_its_polling_rate(cloud: LocalCloud, tag: str) -> None:
    run_id = f"resumes-{tag}"
    steps = [{"id": s, "task": task("gcr.io/e2e/long:1", tag, "10")} for s in ("a", "b", "c")]
    cloud.publish_start({"dag": {"steps": steps}, "run_id": run_id})
    running = wait_until(lambda: [s for s in cloud.steps(run_id) if s.state is StepState.RUNNING and s.job_id]
                         if len([s for s in cloud.steps(run_id) if s.job_id]) == 3 else [],
                         timeout=RUN_TIMEOUT, what="three running jobs")
    jobs = {s.job_id for s in running}

    def statuses() -> int:
        return sum(r["path"] == "/jobstatus" and r["query"].get("job_id") in jobs for r in cloud.mock.requests())

    def rate(count: int) -> float:
        """Status requests per second over the next `count` of them."""
        start, first = time.monotonic(), statuses()
        wait_until(lambda: statuses() >= first + count, timeout=RUN_TIMEOUT, what=f"{count} status requests")
        return (statuses() - first) / (time.monotonic() - start)

    before = rate(12)
    for _ in range(10):
        status, answer = cloud.post_control({"action": "resume", "run_id": run_id}, caller=OPS)
        assert status == 202, answer
    after = rate(24)
    assert after <= 2 * before, f"{after:.1f} status requests/s after 10 resumes, {before:.1f} before"
    run = finished(cloud, run_id)
    assert run.status is RunStatus.SUCCEEDED
    assert_submitted_once(cloud, tag, by_id(cloud.steps(run_id)))


# --------------------------------------------------------------------------- the HTTP start function


def test_a_post_in_the_go_tools_form_starts_a_run_that_succeeds(cloud: LocalCloud, tag: str) -> None:
    object_name, _ = cloud.upload(as_yaml(fork_join(tag)), f"requests/http-{tag}.yaml")
    status, answer = cloud.post_start({"workflow-path": f"gs://{cloud.bucket}/{object_name}",
                                       "tr-url": cloud.mock_url})
    assert status == 202, answer
    run = finished(cloud, answer["run_id"])
    assert run.status is RunStatus.SUCCEEDED and run.source == f"gs://{cloud.bucket}/{object_name}", run
    assert_submitted_once(cloud, tag, by_id(cloud.steps(answer["run_id"])))
    assert cloud.post_start({"dag": fork_join(tag), "run_id": answer["run_id"]}) == (202, answer)  # idempotent


def test_an_invalid_post_gets_400_with_the_report_and_is_recorded(cloud: LocalCloud, tag: str) -> None:
    run_id = f"http-bad-{tag}"
    status, answer = cloud.post_start({"workflow-path": "/etc/passwd", "run_id": run_id})
    assert status == 400 and answer["run_id"] == run_id, answer
    assert "WORKFLOW_DAG_BUCKETS" in answer["problems"][0]
    run = cloud.run(run_id)
    assert run is not None and run.status is RunStatus.INVALID and list(run.problems) == answer["problems"]
    assert cloud.steps(run_id) == []


# --------------------------------------------------------------------------- duplicates


def test_a_finalize_event_delivered_again_starts_one_run(cloud: LocalCloud, tag: str) -> None:
    name = f"{cloud.prefix}twice-{tag}.yaml"
    blob = cloud.storage_client().bucket(cloud.bucket).blob(name)
    blob.upload_from_string(as_yaml(fork_join(tag)), content_type="application/yaml")
    headers, body = eventarc.finalize_event(cloud.bucket, blob)
    url = cloud.function_url(UPLOAD_TARGET)

    def deliver(_: int) -> int:
        return requests.post(url, data=body, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(2) as pool:  # racing the forwarder's own delivery
        assert list(pool.map(deliver, range(2))) == [200, 200]
    run_id = cloud.run_id_for(name, str(blob.generation))
    run = finished(cloud, run_id)
    forwarder = cloud.forwarder
    assert forwarder is not None
    wait_until(lambda: headers["ce-id"] in {e["ce-id"] for e in forwarder.stats.events}, 10, "the forwarder's delivery")
    assert deliver(3) == 200  # once more, after the run ended

    assert run.status is RunStatus.SUCCEEDED
    assert runs_from(cloud, f"gs://{cloud.bucket}/{name}#{blob.generation}") == [run_id]
    again = cloud.run(run_id)
    assert again is not None and (again.created_at, again.finished_at) == (run.created_at, run.finished_at)
    steps = by_id(cloud.steps(run_id))
    sent = assert_submitted_once(cloud, tag, steps)
    assert len(sent) == 4


def test_engine_messages_delivered_twice_submit_each_job_once(
    require_tool: Callable[[Callable[[], LocalCloud]], LocalCloud], tag: str
) -> None:
    twice = _start(require_tool, project="e2e-twice", engine_deliveries=2)
    try:
        engine = [t for t in twice.triggers if t.topic == twice.engine_topic]
        assert len(engine) == 2 and len({t.subscription for t in engine}) == 2
        assert {t.push_endpoint for t in engine} == {f"{twice.function_url(ENGINE_TARGET)}/{twice.engine_topic}"}

        name, generation = twice.upload(as_yaml(fork_join(tag, first="0")), f"{twice.prefix}twice-{tag}.yaml")
        run_id = twice.run_id_for(name, generation)
        run = finished(twice, run_id)

        assert run.status is RunStatus.SUCCEEDED
        steps = by_id(twice.steps(run_id))
        assert all(s.state is StepState.SUCCEEDED and s.job_id for s in steps.values()), steps
        sent = assert_submitted_once(twice, tag, steps)
        assert (sent[0], sent[-1], sent.count("evaluate")) == ("prepare", "evaluate", 1)
        # The instant `prepare` job is over at its first check: asked twice, the check was delivered twice.
        asked = status_requests(twice, {s.job_id for s in steps.values()})
        assert asked[steps["prepare"].job_id] >= 2, asked
        # A duplicate finding the other delivery at work raises Busy to be redelivered: nothing else.
        assert unexpected_errors(twice) == [], twice.log_tails(60)
        print(f"engine messages delivered twice: {len(twice.function_errors())} Busy redeliveries")
    finally:
        _stop(twice)


# --------------------------------------------------------------------------- scale


def test_a_1_200_1_fan_out_fan_in_joins_exactly_once(
    cloud: LocalCloud, tag: str, record_property: Callable[[str, object], None]
) -> None:
    began = time.monotonic()
    name, generation = cloud.upload(json.dumps(fan(tag, 200)).encode(), f"{cloud.prefix}fan-{tag}.json")
    run_id = cloud.run_id_for(name, generation)
    run = finished(cloud, run_id, timeout=180)
    took = time.monotonic() - began
    record_property("fan_1_200_1_upload_to_succeeded_s", round(took, 2))
    print(f"1 -> 200 -> 1: upload to SUCCEEDED in {took:.2f} s")

    assert run.status is RunStatus.SUCCEEDED
    assert run.step_count == 202
    steps = by_id(cloud.steps(run_id))
    assert len(steps) == 202 and all(s.state is StepState.SUCCEEDED for s in steps.values())
    sink = steps["sink"]
    assert sink.waiting_on == 0 and sink.job_id
    sent = assert_submitted_once(cloud, tag, steps)
    assert len(sent) == 202
    assert sent[0] == "source" and sent[-1] == "sink" and sent.count("sink") == 1
    last_worker_end = max(s.finished_at or 0.0 for k, s in steps.items() if k.startswith("w"))
    assert sink.submitted_at is not None and sink.submitted_at >= last_worker_end


# --------------------------------------------------------------------------- refused and ignored


def test_an_invalid_dag_upload_records_an_invalid_run_and_submits_nothing(cloud: LocalCloud, tag: str) -> None:
    cycle = {"steps": [
        {"id": "a", "dependsOn": ["c"], "task": task("img/a", tag)},
        {"id": "b", "dependsOn": ["a"], "task": task("img/b", tag)},
        {"id": "c", "dependsOn": ["b"], "task": task("img/c", tag)},
    ]}
    misspelt = {"steps": [
        {"id": "a", "task": task("img/a", tag)},
        {"id": "b", "depends_on": ["a"], "task": task("img/b", tag)},
    ]}
    expected = {
        "cycle": "dependency cycle: a -> c -> b -> a",
        "misspelt": "unknown key 'depends_on'; did you mean 'dependsOn'?",
    }
    for label, dag in (("cycle", cycle), ("misspelt", misspelt)):
        name, generation = cloud.upload(as_yaml(dag), f"{cloud.prefix}{label}-{tag}.yaml")
        run_id = cloud.run_id_for(name, generation)
        run = finished(cloud, run_id)
        assert run.status is RunStatus.INVALID, run
        assert run.problems, run
        assert any(expected[label] in p for p in run.problems), run.problems
        assert run.source == f"gs://{cloud.bucket}/{name}#{generation}"
        assert cloud.steps(run_id) == []
    assert submissions(cloud, tag) == []
    assert tagged_requests(cloud, tag) == []


def test_objects_outside_the_prefix_or_not_dag_files_start_nothing(cloud: LocalCloud, tag: str) -> None:
    forwarder = cloud.forwarder
    assert forwarder is not None
    dag = as_yaml(fork_join(tag))
    names = [f"elsewhere/{tag}.yaml", f"{cloud.prefix}{tag}.txt", f"{cloud.prefix}{tag}", f"x{cloud.prefix}{tag}.yml"]
    uploaded = [cloud.upload(dag, name) for name in names]
    subjects = {f"objects/{name}" for name in names}

    # The forwarder counts a delivery once the function answered 200: it has decided by then.
    wait_until(lambda: subjects <= {e["ce-subject"] for e in forwarder.stats.events}, 20, "the four finalize events")
    for name, generation in uploaded:
        assert cloud.run(cloud.run_id_for(name, generation)) is None, name
    assert submissions(cloud, tag) == []


# --------------------------------------------------------------------------- run-ended events


def test_a_run_end_is_published_once_on_the_events_topic(cloud: LocalCloud, tag: str) -> None:
    host = cloud.pubsub_host
    subscriber = pubsub_wiring.subscription_admin(host)
    sub = f"events-{tag}"
    pubsub_wiring.ensure_pull_subscription(subscriber, cloud.project, sub, EVENTS_TOPIC)
    path = pubsub_wiring.subscription_path(cloud.project, sub)
    name, generation = cloud.upload(json.dumps(fork_with_failure(tag)).encode(), f"{cloud.prefix}ev-{tag}.json")
    run_id = cloud.run_id_for(name, generation)
    run = finished(cloud, run_id)
    mine: list[dict[str, Any]] = []

    def pulled() -> bool:
        resp = subscriber.pull(request={"subscription": path, "max_messages": 50}, timeout=5)
        if resp.received_messages:
            subscriber.acknowledge(request={"subscription": path,
                                            "ack_ids": [r.ack_id for r in resp.received_messages]})
        mine.extend(json.loads(r.message.data) for r in resp.received_messages
                    if r.message.attributes.get("run_id") == run_id)
        return bool(mine)

    wait_until(pulled, 30, "the run-ended event")
    event = mine[0]
    assert event["schema_version"] == 1 and event["type"] == "run.ended" and event["status"] == run.status.value
    assert event["counts"] == {"steps": 4, "succeeded": 2, "failed": 1, "skipped": 1, "cancelled": 0}
    assert [s["step_id"] for s in event["failed_steps"]] == ["transform"]
    pulled()  # anything more for this run would have arrived with or just after it
    assert len(mine) == 1


# --------------------------------------------------------------------------- retries, runIf, maxParallel


def test_a_flaky_step_succeeds_on_its_third_attempt(cloud: LocalCloud, tag: str) -> None:
    flaky = task("gcr.io/e2e/train:1", tag, "0.1")
    flaky["labels"]["mock_fail_attempts"] = "2"
    dag = {"name": "flaky", "steps": [
        {"id": "train", "retries": 2, "retryDelaySec": 0.2, "task": flaky},
        {"id": "publish", "dependsOn": ["train"], "task": task("gcr.io/e2e/publish:1", tag)},
    ]}
    run_id = f"flaky-{tag}"
    cloud.publish_start({"dag": dag, "run_id": run_id})
    assert finished(cloud, run_id).status is RunStatus.SUCCEEDED
    train = by_id(cloud.steps(run_id))["train"]
    assert submissions(cloud, tag) == ["train", "train", "train", "publish"]
    assert train.attempt == 3 and [(a.attempt, a.state, a.retried) for a in train.history] == [
        (1, StepState.FAILED, True), (2, StepState.FAILED, True)]
    assert len({train.job_id, *(a.job_id for a in train.history)}) == 3


def test_a_cleanup_runs_after_a_failure_and_the_run_fails(cloud: LocalCloud, tag: str) -> None:
    dag = {"steps": [
        {"id": "train", "task": task("gcr.io/e2e/train-error:1", tag)},
        {"id": "evaluate", "dependsOn": ["train"], "task": task("gcr.io/e2e/evaluate:1", tag)},
        {"id": "cleanup", "dependsOn": ["evaluate"], "runIf": "allDone", "task": task("gcr.io/e2e/cleanup:1", tag)},
        {"id": "alert", "dependsOn": ["train"], "runIf": "anyFailed", "task": task("gcr.io/e2e/alert:1", tag)},
    ]}
    run_id = f"cleanup-{tag}"
    cloud.publish_start({"dag": dag, "run_id": run_id})
    assert finished(cloud, run_id).status is RunStatus.FAILED
    steps = by_id(cloud.steps(run_id))
    assert {k: s.state for k, s in steps.items()} == {
        "train": StepState.FAILED, "evaluate": StepState.SKIPPED, "cleanup": StepState.SUCCEEDED,
        "alert": StepState.SUCCEEDED}
    assert sorted(submissions(cloud, tag)) == ["alert", "cleanup", "train"]


def test_max_parallel_limits_the_jobs_in_flight(cloud: LocalCloud, tag: str) -> None:
    workers = [f"m{i:02d}" for i in range(30)]
    dag = {"maxParallel": 3, "steps": [
        {"id": "src", "task": task("gcr.io/e2e/src:1", tag, "0")},
        *({"id": w, "dependsOn": ["src"], "task": task("gcr.io/e2e/m:1", tag, "0.5")} for w in workers),
        {"id": "sink", "dependsOn": workers, "task": task("gcr.io/e2e/sink:1", tag, "0")},
    ]}
    cloud.mock.reset()  # count jobs in flight from here (the module's other runs have ended)
    run_id = f"limited-{tag}"
    cloud.publish_start({"dag": dag, "run_id": run_id})
    assert finished(cloud, run_id).status is RunStatus.SUCCEEDED
    assert_submitted_once(cloud, tag, by_id(cloud.steps(run_id)))
    assert len(submissions(cloud, tag)) == 32 and cloud.mock.in_flight()["max"] == 3
