"""The run pages in a real browser: what they show, that data stays text, the wide run's
size, actions and their guard, and updates while a run runs."""

from __future__ import annotations

import time
from typing import Any

from browserkit import Served
from playwright.sync_api import expect
from uikit import WIDE, record

from enginekit import ScriptedRunner, dag
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.model.states import RunStatus

MAX_ELEMENTS = 3_000


def test_the_runs_list(page: Any, served: Served) -> None:
    page.goto(served.url + "/")
    rows = page.locator("table.runs tbody tr")
    assert rows.count() == 34
    assert rows.first.locator("td").first.inner_text() in ("running-2", "running-1")
    page.select_option("select[name=status]", "FAILED")
    page.click("form.filter button")
    assert page.locator("table.runs tbody tr").count() == 8  # fork-join-1, wide-1 and 6 of the 30 small ones


def test_a_fork_join_with_a_failure(page: Any, served: Served) -> None:
    page.goto(served.url + "/runs/fork-join-1")
    page.wait_for_selector("#graph g[data-node]")
    nodes = page.locator("#graph g[data-node]")
    assert nodes.count() == 4
    assert page.locator('#graph g[data-node="step:right"] rect.box').get_attribute("class") == "box s-FAILED"
    assert page.locator('#graph g[data-node="step:join"] rect.box').get_attribute("class") == "box s-SKIPPED"
    assert page.locator("#graph path.edge").count() == 4
    sections = page.locator("main h2").all_inner_texts()
    assert sections.index("Failed steps") < sections.index("Graph")
    assert "upstream step 'right' failed" in page.locator("section.skipped").inner_text()
    states = page.locator("#steps tbody .c-state").all_inner_texts()
    assert sorted(states) == ["FAILED", "SKIPPED", "SUCCEEDED", "SUCCEEDED"]


def test_markup_in_a_task_runner_message_is_shown_as_text(page: Any, served: Served) -> None:
    page.goto(served.url + "/runs/fork-join-1")
    page.wait_for_selector("#graph g[data-node]")
    assert page.evaluate("window.pwned") is None
    assert page.locator("#injected, #injected-img").count() == 0
    assert '<b id="injected">bold</b>' in page.locator("section.failed pre.message").first.inner_text()
    page.goto(served.url + "/runs/fork-join-1/steps/right")
    assert page.locator("#injected").count() == 0 and page.evaluate("window.pwned") is None


def test_a_wide_run_is_one_group_node_paged_and_small(page: Any, served: Served) -> None:
    page.goto(served.url + "/runs/wide-1")
    page.wait_for_selector("#graph g[data-node]")
    assert page.locator("#graph g[data-node]").count() == 3
    group = page.locator('#graph g[data-node="group:train-0000"]')
    text = group.text_content()
    assert f"train-0* (x{WIDE})" in text and "1 failed" in text
    assert page.evaluate("document.getElementsByTagName('*').length") < MAX_ELEMENTS
    assert page.locator("#steps tbody tr").count() == 50
    page.click("text=next »")
    assert "page 2 of 21" in page.locator("nav.pager").last.inner_text()
    assert page.locator("#steps tbody tr").first.get_attribute("data-step") == "train-0049"


def test_cancel_a_running_run_from_its_page(page: Any, served: Served) -> None:
    page.goto(served.url + "/runs/running-1")
    assert page.locator("#run-status").inner_text() == "RUNNING"
    page.click("#do-cancel")
    page.wait_for_url("**/runs/running-1?acted=cancel")
    assert page.locator("#run-status").inner_text() == "CANCELLED"
    assert page.locator("#count-CANCELLED").inner_text() == "3"


def test_a_cross_site_post_is_refused_and_changes_nothing(page: Any, served: Served) -> None:
    token = page.goto(served.url + "/runs/running-2") and page.locator("input[name=token]").first.input_value()
    other_site = "http://elsewhere.test/"  # another site's page, served by the browser's network layer
    page.route(other_site + "**", lambda route: route.fulfill(body="<html><body></body></html>",
                                                              content_type="text/html"))
    for action in ("cancel", "resume", "rerun"):
        page.goto(other_site)
        with page.expect_navigation() as sent:
            page.evaluate(
                """([url, token]) => { const f = document.createElement('form'); f.method = 'post'; f.action = url;
                   const t = document.createElement('input'); t.name = 'token'; t.value = token; f.appendChild(t);
                   document.body.appendChild(f); f.submit(); }""",
                [f"{served.url}/runs/running-2/{action}", token])
        assert sent.value.status == 403
    store = SqliteStateStore(str(served.db))
    assert store.get_run("running-2").status is RunStatus.RUNNING  # type: ignore[union-attr]
    store.close()


def test_the_page_updates_while_the_run_runs(page: Any, served: Served) -> None:
    store = SqliteStateStore(str(served.db))
    runner = ScriptedRunner(checks=1)
    spec = {"first": [], "a": ["first"], "b": ["first"], "last": ["a", "b"]}
    at = time.time()
    h = record(store, "live-1", dag(spec, name="live"), runner, at=at, until=at + 1.5, poll=5.0)  # first ends at +1
    try:
        page.goto(served.url + "/runs/live-1")
        assert page.locator("#count-RUNNING").inner_text() == "2"
        page.evaluate("window.notReloaded = true")
        h.drain(until=h.now + 1.2)  # a's and b's first checks (1 s after submission) end them; last's comes later
        expect(page.locator("#count-SUCCEEDED")).to_have_text("3")
        assert page.evaluate("window.notReloaded") is True
        assert page.locator('tr[data-step="a"] .c-state').inner_text() == "SUCCEEDED"
        h.drain()
        expect(page.locator("#run-status")).to_have_text("SUCCEEDED")
    finally:
        store.close()
