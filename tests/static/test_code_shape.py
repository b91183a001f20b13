"""Rules on the load generator's code that a reviewer would otherwise check by hand.

- No function in ``loadgen/`` is longer than 60 lines: long functions there were where
  branches per plug-in kind used to pile up (issue 12). ``benchmarks/http_parser.py``
  measured that splitting the hot HTTP parser cost nothing, so it gets no exemption.
- Every registered metric is documented in docs/metrics.md (its summary.json name in
  backticks), so a metric cannot ship without its formula.
"""

from __future__ import annotations

import ast
from pathlib import Path

from loadgen import metrics

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60


def long_functions(folder: Path, limit: int = MAX_LINES) -> list[str]:
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(folder.parent)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_no_function_in_loadgen_is_longer_than_60_lines() -> None:
    assert long_functions(ROOT / "loadgen") == []


def test_the_length_rule_sees_a_long_function(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "pkg" / "m.py").write_text(f"def short():\n    pass\n\n\nasync def long():\n{body}\n")
    assert long_functions(tmp_path / "pkg") == [f"pkg/m.py:5 long ({MAX_LINES + 1} lines)"]


def test_every_registered_metric_is_documented() -> None:
    docs = (ROOT / "docs" / "metrics.md").read_text()
    missing = [name for name in metrics.registered_names() if f"`{name}`" not in docs]
    assert missing == [], f"docs/metrics.md does not document {missing}"
