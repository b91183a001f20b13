"""Rules on the load generator's code that a reviewer would otherwise check by hand.

- No function in ``loadgen/``, ``servers/``, ``engines/`` or ``stack/`` is longer than 60 lines: long
  functions were where branches per plug-in kind used to pile up (issue 12), and where the baseline's
  response code grew 21 branches (split into a streaming and a whole-body responder). ``benchmarks/http_parser.py``
  measured that splitting the hot HTTP parser cost nothing, so it gets no exemption.
- Every registered metric is documented in docs/metrics.md (its summary.json name in
  backticks), so a metric cannot ship without its formula.
- No test imports another test module or a conftest: shared code lives in helper modules, and a
  test module is free to change without breaking another.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("package", ["loadgen", "servers", "engines", "stack"])
def test_no_function_is_longer_than_60_lines(package: str) -> None:
    assert long_functions(ROOT / package) == []


def test_the_length_rule_sees_a_long_function(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    (tmp_path / "pkg" / "m.py").write_text(f"def short():\n    pass\n\n\nasync def long():\n{body}\n")
    assert long_functions(tmp_path / "pkg") == [f"pkg/m.py:5 long ({MAX_LINES + 1} lines)"]


def test_every_registered_metric_is_documented() -> None:
    docs = (ROOT / "docs" / "metrics.md").read_text()
    missing = [name for name in metrics.registered_names() if f"`{name}`" not in docs]
    assert missing == [], f"docs/metrics.md does not document {missing}"


def imports_of_test_modules(folder: Path) -> list[str]:
    """Imports of a test module or a conftest from another file under ``folder`` (shared code lives in helper
    modules: tests/integration/mock_runs.py, tests/unit/records.py, ...; fixtures reach tests through pytest)."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                leaf = name.rsplit(".", 1)[-1]
                if name.startswith("tests.") and (leaf.startswith("test_") or leaf == "conftest"):
                    found.append(f"{path.relative_to(folder.parent)}:{node.lineno} imports {name}")
    return found


def test_no_test_imports_another_test_module() -> None:
    assert imports_of_test_modules(ROOT / "tests") == []


def test_the_import_rule_sees_a_test_importing_a_test(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("from tests.unit.test_b import helper\nimport tests.conftest\n"
                                                  "from tests.unit.records import record\n")
    assert imports_of_test_modules(tmp_path / "tests") == ["tests/test_a.py:1 imports tests.unit.test_b",
                                                       "tests/test_a.py:2 imports tests.conftest"]


def private_imports(root: Path, packages: tuple[str, ...] = ("loadgen", "servers", "engines", "stack")) -> list[str]:
    """``from <rig module> import _name`` anywhere in the rig: a module's private names are its own."""
    found = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in packages:
                    found += [f"{path.relative_to(root)}:{node.lineno} imports {node.module}.{a.name}"
                              for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    assert private_imports(ROOT) == []


def test_the_private_name_rule_sees_one(tmp_path: Path) -> None:
    (tmp_path / "loadgen" / "render").mkdir(parents=True)
    (tmp_path / "loadgen" / "render" / "table.py").write_text("from loadgen.summary import Summary, _Metrics\n")
    assert private_imports(tmp_path, ("loadgen",)) == ["loadgen/render/table.py:1 imports loadgen.summary._Metrics"]
