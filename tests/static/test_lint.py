"""The project's own rules that a linter or a grep can check."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _imported_modules(package: Path) -> set[tuple[Path, str]]:
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update((path, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add((path, node.module))
    return found


def test_loadgen_stays_light() -> None:
    heavy = {(p, m) for p, m in _imported_modules(ROOT / "loadgen") if m.split(".")[0] in {"torch", "transformers"}}
    assert not heavy, f"the load generator must not import torch/transformers: {heavy}"


def test_servers_never_import_loadgen() -> None:
    leaks = {(p, m) for p, m in _imported_modules(ROOT / "servers") if m.split(".")[0] == "loadgen"}
    assert not leaks, f"servers share only the wire protocol with the load generator: {leaks}"
