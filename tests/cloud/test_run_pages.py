"""The run pages on the cloud runtime: what they read on the Firestore emulator, counted as
Firestore bills it; and the `run_pages` function of `main.py` on the local cloud, driving a
run there over HTTP (its page, its steps, a cancel with the page's token, one without)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from uikit import firestore_reads

from devtools.localcloud import processes, pubsub_wiring
from devtools.localcloud.client import RunTimeout
from devtools.localcloud.stack import LocalCloud
from devtools.localcloud.wiring import CONTROL_TOPIC, PAGES_TARGET
from polling import wait_until
from workflow.model.states import RunStatus, StepState

pytestmark = pytest.mark.cloud
TAG = "pages"  # the label holding a test's unique tag


@pytest.fixture(scope="module")
def cloud(require_tool: Callable[[Callable[[], LocalCloud]], LocalCloud]) -> Iterator[LocalCloud]:
    processes.install_signal_handlers()
    stack = require_tool(lambda: LocalCloud(project="pages-test", poll=0.1, mock_duration=0.2, pages=True).start())
    try:
        yield stack
    finally:
        stack.stop()


def token_of(html: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def submitted(cloud: LocalCloud, tag: str) -> list[str]:
    """The job names the mock was asked to start for the test's tasks."""
    return [r["body"]["job_name"] for r in cloud.mock.requests()
            if r["path"] == "/job" and ((r["body"] or {}).get("labels") or {}).get(TAG) == tag]


def test_a_quiet_running_run_costs_two_reads_a_refresh_and_its_first_load_each_step_once(
    firestore_client: Any, record_property: Any
) -> None:
    reads = firestore_reads(firestore_client)
    for key in ("first_load", "quiet", "moved"):
        record_property(f"run_pages_reads_{key}", reads[key])
    # The page: the run's document, its counter shards' sum and latest shard (3), each step once.
    assert reads["first_load"] == reads["steps"] + 3 == 1_005
    # A refresh while nothing moved: the run's document and the query's empty answer.
    assert reads["quiet"] == 2 and reads["quiet_counts"] is None
    # Once a step ended: the same two (the answer now holds the step), then the run again
    # with its counts (3): reads grow with what moved, never with the run's width.
    assert reads["moved_steps"] == ["split"] and reads["counts"]["SUCCEEDED"] == 1
    assert reads["moved"] == 2 + 3


def test_the_run_pages_function_shows_a_run_on_the_local_cloud_and_cancels_it_with_the_pages_token(
    cloud: LocalCloud,
) -> None:
    pages = cloud.function_url(PAGES_TARGET)
    tag = uuid.uuid4().hex[:12]
    run_id = f"pages-{tag}"
    labels = {"mock_duration_sec": "30", TAG: tag}
    cloud.publish_start({"run_id": run_id, "dag": {"name": "slow-first", "steps": [
        {"id": "slow", "task": {"imageUri": "gcr.io/pages/slow:1", "labels": labels}},
        {"id": "after", "dependsOn": ["slow"], "task": {"imageUri": "gcr.io/pages/after:1", "labels": labels}},
    ]}})
    wait_until(lambda: submitted(cloud, tag) == ["slow"], 60, "the slow job's submission")
    requested = Requests(cloud, tag)  # what is published on the control topic from now on

    listed = requests.get(f"{pages}/", timeout=30)
    assert listed.status_code == 200 and run_id in listed.text
    page = requests.get(f"{pages}/runs/{run_id}", timeout=30)
    assert page.status_code == 200, page.text[:2000]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for step in ("slow", "after"):
        assert f'data-step="{step}"' in page.text
    assert 'class="state s-RUNNING">RUNNING<' in page.text and '<svg id="graph"' in page.text
    assert f"python main.py cancel {run_id} --cloud --project {cloud.project}" in page.text
    for asset in re.findall(r'(?:src|href)="(/assets/[^"]+)"', page.text):  # static files, through WSGI too
        assert requests.get(f"{pages}{asset}", timeout=30).status_code == 200, asset
    assert "/assets/vendor/dagre-0.8.5.min.js" in page.text
    api = requests.get(f"{pages}/api/runs/{run_id}", timeout=30).json()
    assert {s["step_id"]: s["state"] for s in api["steps"]} == {"slow": "RUNNING", "after": "PENDING"}

    # Without the page's token, or from another site: refused, and nothing is published.
    refused = requests.post(f"{pages}/runs/{run_id}/cancel", allow_redirects=False, timeout=30)
    assert refused.status_code == 400, refused.text
    cross = requests.post(f"{pages}/runs/{run_id}/cancel", data={"token": token_of(page.text)},
                          headers={"Origin": "https://evil.example"}, allow_redirects=False, timeout=30)
    assert cross.status_code == 403, cross.text
    assert cloud.run(run_id).status is RunStatus.RUNNING  # type: ignore[union-attr]

    # With it, as the page's form posts it: a cancel request on the control topic, handled by the engine.
    done = requests.post(f"{pages}/runs/{run_id}/cancel", data={"token": token_of(page.text)},
                         headers={"Origin": pages}, allow_redirects=False, timeout=30)
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/runs/{run_id}?acted=cancel"), done.text
    try:
        ended = cloud.wait_run(run_id, 60)
    except RunTimeout as exc:
        pytest.fail(f"{exc}\n{cloud.log_tails(60)}", pytrace=False)
    assert ended.status is RunStatus.CANCELLED
    assert {s.step_id: s.state for s in cloud.steps(run_id)} == {"slow": StepState.CANCELLED,
                                                               "after": StepState.CANCELLED}
    after = requests.get(f"{pages}/runs/{run_id}", timeout=30)
    assert 'class="state s-CANCELLED">CANCELLED<' in after.text
    # On the control topic: the one cancel the page asked for, as `cancel --cloud` publishes it.
    wait_until(lambda: requested.pull(run_id), 30, "the cancel request on the control topic")
    requested.pull(run_id)  # a refused POST's request would have come before it
    assert requested.seen == [({"action": "cancel", "run_id": run_id}, {"action": "cancel", "run_id": run_id})]
    assert not cloud.function_errors(), cloud.function_errors()


class Requests:
    """A pull subscription on the control topic, made now: the requests published from now on."""

    def __init__(self, cloud: LocalCloud, tag: str) -> None:
        self.admin = pubsub_wiring.subscription_admin(cloud.pubsub_host)
        self.path = pubsub_wiring.ensure_pull_subscription(self.admin, cloud.project, f"pages-{tag}", CONTROL_TOPIC)
        self.seen: list[tuple[dict[str, Any], dict[str, str]]] = []

    def pull(self, run_id: str) -> bool:
        """Take what arrived; True once a request for `run_id` was seen."""
        got = self.admin.pull(request={"subscription": self.path, "max_messages": 50}, timeout=5)
        if got.received_messages:
            self.admin.acknowledge(request={"subscription": self.path,
                                            "ack_ids": [r.ack_id for r in got.received_messages]})
        self.seen += [(json.loads(r.message.data), dict(r.message.attributes)) for r in got.received_messages
                      if r.message.attributes.get("run_id") == run_id]
        return bool(self.seen)
