"""The registries' text index (names found without importing a plug-in) agrees with what importing every module
of each package registers, and ``get`` imports only the module that declared the name; a plug-in whose extra is
not installed (triton-grpc without ``[triton]``) is a one-line error naming the extra, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadgen.registry import ARRIVALS, CLIENTS, OUTPUTS, SHAPES, SOURCES, Registry, UnknownPluginError


@pytest.mark.parametrize("registry", [CLIENTS, SHAPES, ARRIVALS, SOURCES, OUTPUTS], ids=lambda r: r.package)
def test_the_text_index_names_exactly_what_the_modules_register(registry: Registry[object]) -> None:
    index = registry.index()
    registered = dict(registry.items())  # imports every module of the package
    assert sorted(index) == sorted(registered) and index
    classes = {name: entry for name, entry in registered.items() if isinstance(entry, type)}  # OUTPUTS holds values
    assert all(entry.__module__ == index[name] for name, entry in classes.items()), (index, classes)


def test_get_imports_only_the_declaring_module() -> None:
    code = ("import sys; from loadgen.registry import CLIENTS; CLIENTS.get('openai-chat'); "
            "print('loadgen.clients.triton_grpc' in sys.modules, 'tritonclient.grpc' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_an_unknown_name_says_what_is_known() -> None:
    with pytest.raises(UnknownPluginError, match="unknown arrival process 'lumpy'; known: constant, gamma, poisson"):
        ARRIVALS.get("lumpy")


# A Python without the [triton] extra, made by refusing its modules as an absent package would (no uninstall).
WITHOUT_TRITON = """
import sys

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("grpc", "tritonclient"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
"""
NEEDS_THE_EXTRA = ("client kind 'triton-grpc' needs the Triton gRPC client (no module 'grpc'): "
                   "pip install 'llm-serving-rig[triton]'")


def test_triton_grpc_without_its_extra_says_what_to_install_and_the_other_kinds_still_work() -> None:
    code = WITHOUT_TRITON + """
from loadgen.registry import CLIENTS, MissingExtraError, UnknownPluginError
try:
    CLIENTS.get("triton-grpc")
except MissingExtraError as exc:
    print(isinstance(exc, UnknownPluginError), exc)
print(" ".join(name for name, _ in CLIENTS.items()))  # discover() passes over the module it cannot import
try:
    CLIENTS.get("triton-grcp")
except UnknownPluginError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == [
        f"True {NEEDS_THE_EXTRA}",
        "openai-chat openai-completions triton-generate",
        "unknown client kind 'triton-grcp'; known: openai-chat, openai-completions, triton-generate, triton-grpc",
    ]


@pytest.mark.parametrize("where", ["--target", "profile"])
def test_loadgen_run_without_the_extra_exits_2_with_one_line(where: str, tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("targets: [{name: t, kind: triton-grpc, url: 'grpc://127.0.0.1:1', model: m}]\n")
    argv = ["run", "--target", "t=triton-grpc@grpc://127.0.0.1:1"] if where == "--target" else ["run", str(profile)]
    code = WITHOUT_TRITON + f"from loadgen.cli import main\nsys.exit(main({[*argv, '--out', str(tmp_path / 'out')]!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "60"})  # rich must not wrap the line
    field = "kind" if where == "--target" else "targets.0.kind"
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {field}: Value error, {NEEDS_THE_EXTRA}\n")
    assert not (tmp_path / "out").exists()
