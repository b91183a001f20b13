"""The dependency rules between the rig's packages, checked statically (nothing is imported).

Every ``import`` and ``from ... import`` is read from the source with ``ast`` at any depth (a
function-level import counts: it runs when the function does), relative imports are resolved, and
``from pkg import name`` counts as an import of ``pkg.name`` when that is a module of the rig.
Imports under ``if TYPE_CHECKING:`` never run, so they are left out. A literal
``importlib.import_module("x")`` / ``__import__("x")`` counts like ``import x``.

The rules (docs/architecture.md, "The rules, and where they are enforced"):
- ``loadgen`` is light and talks to servers and engines only over the wire: no torch, no
  transformers, nothing from ``servers`` or ``engines``; from ``stack`` only ``stack.process``;
- ``stack.process`` is the neutral module ``loadgen`` shares with ``stack``: stdlib and third-party
  packages only (and ``stack/__init__.py``, which ``import stack.process`` runs, likewise);
- ``servers`` import none of ``loadgen``, ``engines``, ``stack``;
- no import cycle between the rig's modules (tests left out), and none between the load generator's packages
  and top-level modules taken as units (``loadgen.api``, ``loadgen.render``, ...);
- the load generator's layers: ``cli`` on top (nothing imports it), then ``answers`` (built on finished runs:
  the run core never imports them), then ``api`` and the run core, with ``render``, ``scaling`` and
  ``verdicts`` under ``api`` and ``verdicts`` under ``summary``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("loadgen", "servers", "engines", "stack", "grafana", "benchmarks")


@dataclass(frozen=True)
class Import:
    """One import statement's effect: ``importer`` (file ``path``, ``line``) imports module ``target``."""

    importer: str
    path: str
    line: int
    target: str


@dataclass(frozen=True)
class Rule:
    """Modules within ``scope`` (the module itself with ``exact``, else it and everything under it, but for what
    lies within ``exempt``) may not import anything within ``forbids``, except what lies within ``allows``."""

    scope: str
    forbids: tuple[str, ...]
    why: str
    allows: tuple[str, ...] = ()
    exact: bool = False
    exempt: tuple[str, ...] = ()

    def applies_to(self, module: str) -> bool:
        if any(within(module, e) for e in self.exempt):
            return False
        return module == self.scope if self.exact else within(module, self.scope)

    def breaks(self, target: str) -> bool:
        return (any(within(target, f) for f in self.forbids)
                and not any(within(target, a) for a in self.allows))


RULES = (
    Rule("loadgen", ("torch", "transformers", "servers", "engines", "stack"), allows=("stack.process",),
         why="the load generator stays light and shares only the wire protocol with servers and engines"),
    Rule("servers", ("loadgen", "engines", "stack"),
         why="servers answer requests; they share only the wire protocol with the load generator"),
    Rule("stack.process", FIRST_PARTY, allows=("stack.process",),
         why="stack.process is the neutral module loadgen shares: stdlib and third-party packages only"),
    Rule("stack", FIRST_PARTY, exact=True,
         why="`import stack.process` runs stack/__init__.py, so it must stay as neutral as stack.process"),
    # The load generator's layers, top to bottom (docs/architecture.md): cli → answers → api → the run core.
    Rule("loadgen", ("loadgen.cli",), exempt=("loadgen.cli",),
         why="the command line is the top layer: it imports everything and nothing imports it"),
    Rule("loadgen", ("loadgen.answers",), exempt=("loadgen.answers", "loadgen.cli"),
         why="answers are built on finished runs: the run core never imports them"),
    Rule("loadgen.verdicts", ("loadgen.api", "loadgen.runner", "loadgen.summary", "loadgen.render", "loadgen.scaling"),
         why="a run's verdicts sit under its summary: they read records, metrics and CPU samples only"),
    Rule("loadgen.render", ("loadgen.api", "loadgen.scaling"),
         why="the run's renderers sit under api, which writes a run's files with them"),
    Rule("loadgen.scaling", ("loadgen.api", "loadgen.render"),
         why="the coordinator of --workers sits under api, which starts it"),
)


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


# -- reading the source ------------------------------------------------------------------------------


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node`` except the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs)."""
    for child in ast.iter_child_nodes(node):
        yield child
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for branch in child.orelse:
                yield branch
                yield from _runtime_nodes(branch)
        else:
            yield from _runtime_nodes(child)


def _dynamic_import(node: ast.AST) -> str | None:
    """``importlib.import_module("x")`` or ``__import__("x")`` with a literal name."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return node.args[0].value if name in ("import_module", "__import__") else None


def _targets(node: ast.AST, importer: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            package = importer.split(".") if is_package else importer.split(".")[:-1]
            if node.level - 1 > len(package) - 1:
                raise ValueError(f"{importer}: relative import beyond the top-level package")
            base = ".".join(package[: len(package) - (node.level - 1)] + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names]
    dynamic = _dynamic_import(node)
    return [dynamic] if dynamic else []


def scan(root: Path, packages: Iterable[str]) -> dict[str, list[Import]]:
    """Every module under ``root/<package>`` (for each package) and its runtime imports."""
    files = {module_name(root, path): path
             for package in packages if (root / package).is_dir()
             for path in sorted((root / package).rglob("*.py")) if "__pycache__" not in path.parts}
    known = set(files)
    found: dict[str, list[Import]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        found[module] = [Import(module, str(path.relative_to(root)), getattr(node, "lineno", 0), target)
                         for node in _runtime_nodes(tree)
                         for target in _targets(node, module, path.name == "__init__.py", known)]
    return found


# -- the rules ---------------------------------------------------------------------------------------


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _path_back(graph: Mapping[str, set[str]], members: Sequence[str]) -> list[str]:
    """One shortest cycle through the component's first module: [a, b, ..., a]."""
    start, inside = members[0], set(members)
    came_from = {start: start}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & inside):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError("a strongly connected component always has a cycle")


def check(modules: Mapping[str, Sequence[Import]], rules: Sequence[Rule], first_party: Sequence[str]) -> list[str]:
    """Every broken rule, import of a missing rig module and import cycle among ``modules``, one message each.

    ``modules`` maps each first-party module to its imports (what ``scan`` returns)."""
    imports = [i for found in modules.values() for i in found]
    problems = [f"{i.path}:{i.line}: {i.importer} imports {i.target}: {rule.why}"
                for i in imports for rule in rules if rule.applies_to(i.importer) and rule.breaks(i.target)]
    problems += [f"{i.path}:{i.line}: {i.importer} imports {i.target}, which is no module of the rig"
                 for i in imports if any(within(i.target, p) for p in first_party) and i.target not in modules]
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for i in imports:
        if i.target != i.importer and any(within(i.target, p) for p in first_party):
            graph.setdefault(i.importer, set()).add(i.target)
            graph.setdefault(i.target, set())
            where.setdefault((i.importer, i.target), f"{i.path}:{i.line}")
    for members in _cycles(graph):
        path = _path_back(graph, members)
        edges = "; ".join(f"{where[a, b]} imports {b}" for a, b in pairwise(path))
        problems.append(f"import cycle among {', '.join(members)}: {' → '.join(path)} ({edges})")
    return sorted(set(problems))


# -- the rig -----------------------------------------------------------------------------------------


def unit_cycles(modules: Mapping[str, Sequence[Import]], package: str = "loadgen") -> list[str]:
    """Import cycles between the units of ``package`` (each subpackage or top-level module taken as one), e.g.
    ``loadgen.api`` → ``loadgen.render`` → ``loadgen.api`` even when no two modules import each other."""

    def unit(module: str) -> str:
        return ".".join(module.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for module, found in modules.items():
        if not within(module, package):
            continue
        graph.setdefault(unit(module), set())
        for i in found:
            if within(i.target, package) and i.target in modules and unit(i.target) != unit(module):
                graph[unit(module)].add(unit(i.target))
                graph.setdefault(unit(i.target), set())
    return [" → ".join(_path_back(graph, members)) for members in _cycles(graph)]


def test_no_loop_between_the_load_generators_packages() -> None:
    assert unit_cycles(scan(ROOT, FIRST_PARTY)) == []


def test_the_unit_check_sees_a_loop_between_packages(tmp_path: Path) -> None:
    (tmp_path / "loadgen" / "render").mkdir(parents=True)
    for path, text in {"__init__.py": "", "api.py": "from loadgen.render import table\n",
                       "render/__init__.py": "", "render/table.py": "",
                       "render/progress.py": "from loadgen.api import run\n"}.items():
        (tmp_path / "loadgen" / path).write_text(text)
    assert unit_cycles(scan(tmp_path, ("loadgen",))) == ["loadgen.api → loadgen.render → loadgen.api"]


def test_the_rig_keeps_its_dependency_rules() -> None:
    problems = check(scan(ROOT, FIRST_PARTY), RULES, FIRST_PARTY)
    assert not problems, "\n".join(["dependency rules broken:", *problems])


def test_the_scan_sees_the_rig() -> None:
    """Guards the test above against passing because it read nothing."""
    modules = scan(ROOT, FIRST_PARTY)
    assert {"loadgen", "loadgen.cli", "servers.hf.app"} <= modules.keys()
    assert any(i.target == "servers.hf.naive" for i in modules["servers.hf.app"])


# -- the checker catches what it should (a planted package) --------------------------------------------


def _plant(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


PLANTED_RULES = (
    Rule("light", ("torch", "heavy"), allows=("heavy.neutral",), why="light stays light"),
)


def test_checker_catches_a_cycle_through_relative_and_function_level_imports(tmp_path: Path) -> None:
    _plant(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "def f():\n    from pkg.b import g\n    return g\n",
        "pkg/b.py": "from . import c\n",
        "pkg/c.py": "import pkg.a as a\n",
        "pkg/d.py": "from pkg import a\n",  # into the cycle, not part of it
    })
    problems = check(scan(tmp_path, ["pkg"]), PLANTED_RULES, ["pkg"])
    assert len(problems) == 1, problems
    assert problems[0].startswith("import cycle among pkg.a, pkg.b, pkg.c: pkg.a → pkg.b → pkg.c → pkg.a")
    assert "pkg/a.py:2 imports pkg.b" in problems[0] and "pkg/c.py:1 imports pkg.a" in problems[0]


def test_checker_resolves_from_package_import_submodule(tmp_path: Path) -> None:
    _plant(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from .. import x\n",  # pkg.x: a module, so an edge pkg.sub → pkg.x
        "pkg/x.py": "from pkg import sub\n",
    })
    problems = check(scan(tmp_path, ["pkg"]), (), ["pkg"])
    assert [p.split(":")[0] for p in problems] == ["import cycle among pkg.sub, pkg.x"], problems


def test_checker_catches_a_forbidden_import_at_any_depth(tmp_path: Path) -> None:
    _plant(tmp_path, {
        "light/__init__.py": "",
        "light/ok.py": "from typing import TYPE_CHECKING\nimport heavy.neutral\nif TYPE_CHECKING:\n"
                       "    import torch\nelse:\n    import json\n",
        "light/bad.py": "import json\n\n\nclass C:\n    def m(self):\n        import torch.nn\n",
        "light/worse.py": "import importlib\nfrom heavy import engine\nimportlib.import_module('heavy.engine')\n",
        "heavy/__init__.py": "",
        "heavy/neutral.py": "",
        "heavy/engine.py": "",
    })
    problems = check(scan(tmp_path, ["light", "heavy"]), PLANTED_RULES, ["light", "heavy"])
    assert problems == [
        "light/bad.py:6: light.bad imports torch.nn: light stays light",
        "light/worse.py:2: light.worse imports heavy.engine: light stays light",
        "light/worse.py:3: light.worse imports heavy.engine: light stays light",
    ]


def test_checker_catches_an_import_of_a_missing_module(tmp_path: Path) -> None:
    _plant(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from pkg.gone import f\nfrom pkg import __version__\n"})
    problems = check(scan(tmp_path, ["pkg"]), (), ["pkg"])
    assert problems == ["pkg/a.py:1: pkg.a imports pkg.gone, which is no module of the rig"]


@pytest.mark.parametrize(("module", "target", "broken"), [
    ("loadgen.cli", "torch", True),
    ("loadgen.cli", "transformers.models", True),
    ("loadgen.selftest", "engines.process", True),
    ("loadgen.cli", "stack.process", False),
    ("loadgen.cli", "stack.local", True),
    ("loadgen.cli", "stack", True),
    ("loadgen.cli", "torchvision", False),  # a prefix of a name is not the package
    ("servers.hf.app", "loadgen.record", True),
    ("servers.hf.app", "torch", False),
    ("stack.process", "loadgen", True),
    ("stack.process", "httpx", False),
    ("stack.local", "loadgen.api", False),
    ("stack", "stack.local", True),
    ("engines.vllm", "loadgen.api", False),
    ("loadgen.api", "loadgen.cli.progress", True),  # the layers (planted violations)
    ("loadgen.render.table", "loadgen.cli.exit_codes", True),
    ("loadgen.cli.run", "loadgen.cli.progress", False),
    ("loadgen.summary", "loadgen.answers.compare", True),
    ("loadgen.answers.search", "loadgen.api", False),
    ("loadgen.cli.answers", "loadgen.answers.search", False),
    ("loadgen.verdicts.validity", "loadgen.summary", True),
    ("loadgen.summary", "loadgen.verdicts.validity", False),
    ("loadgen.render.html", "loadgen.api", True),
    ("loadgen.scaling.coordinator", "loadgen.api", True),
    ("loadgen.api", "loadgen.scaling.coordinator", False),
])
def test_the_rules_say_what_the_architecture_says(module: str, target: str, broken: bool) -> None:
    assert bool(check({module: [Import(module, "x.py", 1, target)]}, RULES, ())) is broken


GEVENT_PACKAGES = ("locust", "gevent", "geventhttpclient")


def test_only_the_locust_front_end_imports_locust_or_gevent() -> None:
    """``import locust`` monkey-patches the standard library for gevent: nothing outside ``loadgen.locust``
    may import it (or gevent), or every asyncio run would get patched sockets (docs/locust.md)."""
    modules = scan(ROOT, FIRST_PARTY)
    found = [f"{i.path}:{i.line}: {i.importer} imports {i.target}" for imports in modules.values() for i in imports
             if any(within(i.target, p) for p in GEVENT_PACKAGES) and not within(i.importer, "loadgen.locust")]
    assert not found, "\n".join(found)
    assert any(within(i.target, "locust") for i in modules["loadgen.locust.plugin"])  # the scan sees the front end
