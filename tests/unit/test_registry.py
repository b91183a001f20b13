"""The registries' text index (names found without importing a plug-in) agrees with what importing every module
of each package registers, and ``get`` imports only the module that declared the name."""

from __future__ import annotations

import subprocess
import sys

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
