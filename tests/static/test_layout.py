"""The house stays as it was arranged: small modules, small ports, the product package
holding the product only, the engine a module per phase."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400
MAX_PORT_METHODS = 10
SOURCES = ("main.py", "workflow", "devtools", "bench", "scripts")


def _python_files() -> list[Path]:
    found: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        found += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return found


def test_no_module_outside_tests_is_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _python_files()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_port_has_more_than_10_methods() -> None:
    sizes = {}
    for path in sorted((ROOT / "workflow" / "ports").glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "") == "Protocol" for b in node.bases):
                sizes[node.name] = sum(isinstance(n, ast.FunctionDef) for n in node.body)
    assert sizes and max(sizes.values()) <= MAX_PORT_METHODS, sizes


def test_the_product_package_holds_no_developer_tools() -> None:
    assert not (ROOT / "workflow" / "localcloud").exists()
    assert not (ROOT / "workflow" / "mock_runner").exists()
    assert (ROOT / "devtools" / "localcloud").is_dir() and (ROOT / "devtools" / "mock_runner").is_dir()


def test_the_engine_is_a_module_per_phase() -> None:
    phases = {p.stem for p in (ROOT / "workflow" / "engine").glob("*.py")} - {"__init__"}
    assert {"start", "submit", "poll", "finish", "retry", "skip", "cancel", "rerun", "recover"} <= phases


def test_no_two_test_modules_share_a_file_name() -> None:
    """pytest imports test modules by their file name (its `rootdir`-relative packages are not
    used here), so a second tests/*/test_x.py stops the whole run at collection."""
    seen: dict[str, Path] = {}
    twice = [f"{p.relative_to(ROOT)} and {seen[p.name].relative_to(ROOT)}" for p in sorted((ROOT / "tests").rglob(
        "test_*.py")) if seen.setdefault(p.name, p) != p]
    assert not twice, f"test modules with one file name: {twice}"
