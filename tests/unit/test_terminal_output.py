"""What a Task Runner or a DAG says reaches the terminal as text: no raw control character
(ESC, BEL, a bidi override) in the run's lines, `status` or `runs`."""

from __future__ import annotations

import io
import json
from pathlib import Path

from enginekit import ScriptedRunner
from workflow.cli import main

HOSTILE = "\x1b[2J\x1b]0;owned\x07 \u202eexe.gnp"


def test_a_task_runners_control_characters_reach_no_output_raw(tmp_path: Path) -> None:
    dag = tmp_path / "hostile.json"
    dag.write_text(json.dumps({"name": "hostile", "steps": [{"id": "a", "task": {"imageUri": "img/a-error"}}]}))
    db = str(tmp_path / "runs.sqlite3")
    outputs = []
    for argv in (["run", str(dag), "--tr-hostname", "http://runner.example", "--tr-auth-jwt", "none", "--db", db],
                 ["runs", "--db", db]):
        out = io.StringIO()
        main(argv, out=out, runner=ScriptedRunner(message=HOSTILE))
        outputs.append(out.getvalue())
    run_id = outputs[1].splitlines()[1].split()[0]
    out = io.StringIO()
    main(["status", run_id, "--db", db], out=out)
    outputs.append(out.getvalue())
    for text in outputs:
        assert not any(c in text for c in "\x1b\x07\u202e"), text
    assert "\\x1b[2J\\x1b]0;owned\\x07 \\u202eexe.gnp" in outputs[0] + outputs[2]
