"""Engine messages checked where they act, and INVALID as a final state: a forged check
sends nothing and changes nothing; an INVALID run is never rerun or resumed, whoever asks."""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from enginekit import Harness, ScriptedRunner, dag
from workflow.adapters.embedded.sqlite_store import SqliteStateStore
from workflow.cli import main as cli_main
from workflow.engine import handle
from workflow.errors import OriginRefused, PoisonMessage
from workflow.model.dag import Task
from workflow.model.messages import CheckJob, StartRun
from workflow.model.records import Job, RunRecord
from workflow.model.states import RunStatus, StepState
from workflow.model.text import redact

ALLOWED = "http://runner"


@dataclass
class OriginCheckingRunner(ScriptedRunner):
    """ScriptedRunner that, as HttpTaskRunner given edge settings, refuses other origins."""

    refused: list[str] = field(default_factory=list)

    def status(self, url: str, job_id: str, auth: str = "", run_id: str = "") -> Job:
        if not url.startswith(ALLOWED):
            self.refused.append(url)
            raise OriginRefused(f"the Task Runner URL: Task Runner origin {url} is not allowed")
        return super().status(url, job_id, auth, run_id)


def test_a_forged_check_sends_nothing_and_changes_nothing() -> None:
    runner = OriginCheckingRunner(checks=50)
    h = Harness(runner=runner)
    handle(StartRun("r1", dag({"a": []}), ALLOWED), h.ports)
    [dispatch] = [m for m, _ in h.bus.take()]
    handle(dispatch, h.ports)
    [(check, _)] = h.bus.take()
    assert isinstance(check, CheckJob) and h.store.get_step("r1", "a").state is StepState.RUNNING
    forged = replace(check, tr_url="http://elsewhere.example", seq=7)
    with pytest.raises(PoisonMessage, match="not its step's"):
        handle(forged, h.ports)
    assert runner.refused == ["http://elsewhere.example"]  # refused before sending: no token left
    step = h.store.get_step("r1", "a")
    assert step is not None and step.state is StepState.RUNNING and h.bus.take() == []


def test_a_check_of_a_step_whose_own_url_is_no_longer_allowed_fails_that_step() -> None:
    runner = OriginCheckingRunner(checks=50)
    h = Harness(runner=runner)
    handle(StartRun("r1", dag({"a": []}), "http://moved.example"), h.ports)
    [dispatch] = [m for m, _ in h.bus.take()]
    handle(dispatch, h.ports)  # submitted (the scripted runner takes any URL for submissions)
    [(check, _)] = h.bus.take()
    handle(check, h.ports)
    step = h.store.get_step("r1", "a")
    assert step is not None and step.state is StepState.FAILED and "is not allowed" in step.message


@pytest.mark.parametrize("verb", ["rerun", "resume"])
def test_the_cli_refuses_to_rerun_or_resume_an_invalid_run(tmp_path: Any, verb: str) -> None:
    db = str(tmp_path / "runs.sqlite3")
    store = SqliteStateStore(db)
    store.create_run(RunRecord("bad", RunStatus.INVALID, "", problems=("steps: empty",)), [])
    store.close()
    out = io.StringIO()
    code = cli_main([verb, "bad", "--db", db, "--tr-auth-jwt", "none"], out=out)
    assert code == 2 and "INVALID" in out.getvalue() and "start a new run" in out.getvalue()
    again = SqliteStateStore(db)
    run = again.get_run("bad")
    assert run is not None and run.status is RunStatus.INVALID and run.reruns == ()


def test_redaction_covers_the_escaped_forms_of_a_token() -> None:
    token = 'ab/cd+ef="gh'
    for echoed in ('ab/cd+ef=\\"gh', 'ab\\/cd+ef=\\"gh', "ab%2Fcd%2Bef%3D%22gh",
                   "".join(f"\\u{ord(c):04x}" for c in token)):
        assert redact(f"x {echoed} y", [token]) == "x <redacted> y"
    assert redact("Task", [Task("t", "i").name]) == "Task"  # shorter than 4 characters: kept
