"""The docs' snippets marked `<!-- runnable: localcloud -->` (docs/local-cloud.md) run as written against
the local cloud, from a directory outside the repository, with the environment `localcloud up` prints."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.localcloud import processes
from devtools.localcloud.stack import LocalCloud

pytestmark = pytest.mark.cloud

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- runnable: (\w+) -->\n```(\w+)\n(.*?)```", re.S)


def snippets(tier: str) -> list[str]:
    return [code for found, _, code in BLOCK.findall((ROOT / "docs" / "local-cloud.md").read_text()) if found == tier]


def test_readme_marks_its_local_cloud_snippet() -> None:
    assert len(snippets("localcloud")) >= 1


@pytest.fixture(scope="module")
def cloud(require_tool: Callable[[Callable[[], LocalCloud]], LocalCloud]) -> Iterator[LocalCloud]:
    processes.install_signal_handlers()
    stack = require_tool(lambda: LocalCloud(project="localcloud", poll=0.1, mock_duration=0.1).start())
    try:
        yield stack
    finally:
        stack.stop()


@pytest.mark.parametrize("code", snippets("localcloud"))
def test_snippet_runs_as_written(code: str, cloud: LocalCloud, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(code)
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env={**cloud.env, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^hello-\w{16} SUCCEEDED$", done.stdout, re.M), done.stdout
    assert re.search(r"^hello SUCCEEDED \S+", done.stdout, re.M), done.stdout
