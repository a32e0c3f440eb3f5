"""The package's layers, as pyproject.toml's import-linter contract states them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_imports_point_down_only() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def test_only_bootstrap_wires_ports() -> None:
    """Tests and tools build their runtimes through workflow.bootstrap, as the entry points do."""
    wiring = [
        f"{path.relative_to(ROOT)}:{n}"
        for folder in ("workflow", "devtools", "tests", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "bootstrap" not in path.parts and path.name != "test_layers.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if "Ports(" in line and "class Ports" not in line
    ]
    assert not wiring, f"Ports built outside workflow/bootstrap: {wiring}"
