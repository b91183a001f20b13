"""The registries: one per kind of plug-in (client kinds, load shapes, arrival processes, prompt sources, a run's
output formats).

Why registries: a new wire API, load shape or prompt source must be one new file, not a new
branch in the CLI, the config and the runner. Each registry names the package its plug-ins
live in, and each plug-in class registers itself there with a decorator
(``@SHAPES.register("rate")``). Nothing else lists the plug-ins, so nothing else needs an edit.
Registries are read once per run (to validate a profile, to pick a client), never on the
per-request path.

Why lazily: importing a plug-in costs what its module imports (the Triton gRPC client brings
``tritonclient.grpc``, numpy and ml_dtypes), and ``loadgen --help`` or a run against vLLM needs
none of that. So the names come from the package's source text (each line that starts with
``REGISTRY.register("name")`` or ``@REGISTRY.register("name")``, found without importing
anything) and ``get(name)`` imports only the module that declared ``name``.
``tests/unit/test_registry.py`` checks the text index against what importing every module
registers.

Optional dependencies: a plug-in that needs an extra of the distribution (the Triton gRPC client needs
``[triton]``) imports it inside ``try``/``except ModuleNotFoundError`` and raises ``REGISTRY.missing_extra(...)``
instead, so that naming it without the extra is a one-line error saying what to install (a ``MissingExtraError``,
an ``UnknownPluginError`` to every caller), while ``discover`` passes over it and the other plug-ins still work.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


DISTRIBUTION = "llm-serving-rig"  # pyproject.toml's [project] name: what ``pip install 'NAME[extra]'`` names


class UnknownPluginError(ValueError):
    """A profile names a plug-in that no module registered."""


class MissingExtraError(UnknownPluginError):
    """A profile names a plug-in whose optional dependencies (an extra of the distribution) are not installed."""


class Registry(Generic[T]):
    """Name → plug-in class, filled by the modules of ``package`` as they are imported. ``variable`` is the
    registry's name in this module, the one plug-ins call ``register`` on."""

    def __init__(self, what: str, package: str, variable: str) -> None:
        self.what = what
        self.package = package
        self._declared = re.compile(rf"^[ \t]*@?{variable}\.register\(\s*[\"']([^\"']+)[\"']", re.MULTILINE)
        self._entries: dict[str, T] = {}
        self._index: dict[str, str] | None = None
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.what} {name!r} is registered twice ({self._entries[name]!r}, {entry!r})")
            self._entries[name] = entry
            return entry

        return add

    def missing_extra(self, name: str, what: str, extra: str, cause: ModuleNotFoundError) -> MissingExtraError:
        """The error a plug-in module raises when its optional dependency ``cause.name`` is not installed."""
        return MissingExtraError(f"{self.what} {name!r} needs {what} (no module {cause.name!r}): "
                                 f"pip install '{DISTRIBUTION}[{extra}]'")

    def index(self) -> dict[str, str]:
        """Name → the module whose source registers it, read from the package's files (nothing imported)."""
        if self._index is None:
            spec = importlib.util.find_spec(self.package)
            paths = list(spec.submodule_search_locations or []) if spec else []
            self._index = {}
            for module in pkgutil.iter_modules(paths):
                folder = Path(getattr(module.module_finder, "path", ""))
                source = folder / module.name / "__init__.py" if module.ispkg else folder / f"{module.name}.py"
                try:
                    text = source.read_text(encoding="utf-8")
                except OSError:
                    continue  # no source beside it: discover() still finds what it registers
                for name in self._declared.findall(text):
                    self._index.setdefault(name, f"{self.package}.{module.name}")
        return self._index

    def discover(self) -> None:
        """Import every module of the package once, so that each registers what it defines."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            try:
                importlib.import_module(f"{self.package}.{module.name}")
            except MissingExtraError:
                continue  # its extra is not installed: get() of a name it declares says what to install

    def names(self) -> list[str]:
        return sorted(set(self.index()) | set(self._entries))

    def items(self) -> list[tuple[str, T]]:
        self.discover()
        return sorted(self._entries.items())

    def get(self, name: str) -> T:
        if name not in self._entries and name in self.index():
            importlib.import_module(self.index()[name])
        if name not in self._entries:
            self.discover()  # registered by a module the text index cannot see
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownPluginError(
                f"unknown {self.what} {name!r}; known: {', '.join(self.names()) or '(none)'}") from None

    def check(self, name: str) -> str:
        """``name`` itself when registered (a pydantic field validator), else UnknownPluginError."""
        self.get(name)
        return name


CLIENTS: Registry[Any] = Registry("client kind", "loadgen.clients", "CLIENTS")
SHAPES: Registry[Any] = Registry("load shape", "loadgen.shapes", "SHAPES")
ARRIVALS: Registry[Any] = Registry("arrival process", "loadgen.arrivals", "ARRIVALS")
SOURCES: Registry[Any] = Registry("prompt source", "loadgen.sources", "SOURCES")
OUTPUTS: Registry[Any] = Registry("output format", "loadgen.render", "OUTPUTS")  # loadgen.render.output.OutputFormat
