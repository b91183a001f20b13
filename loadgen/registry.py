"""The registries: one per kind of plug-in (client kinds, load shapes, arrival processes, prompt sources, a run's
output formats).

Why registries: a new wire API, load shape or prompt source must be one new file, not a new
branch in the CLI, the config and the runner. Each registry names the package its plug-ins
live in; on first use it imports every module of that package, and each plug-in class
registers itself there with a decorator (``@SHAPES.register("rate")``). Nothing else lists
the plug-ins, so nothing else needs an edit. Registries are read once per run (to validate
a profile, to pick a client), never on the per-request path.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownPluginError(ValueError):
    """A profile names a plug-in that no module registered."""


class Registry(Generic[T]):
    """Name → plug-in class, filled by the modules of ``package`` as they are imported."""

    def __init__(self, what: str, package: str) -> None:
        self.what = what
        self.package = package
        self._entries: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries and self._entries[name] is not entry:
                raise ValueError(f"{self.what} {name!r} is registered twice ({self._entries[name]!r}, {entry!r})")
            self._entries[name] = entry
            return entry

        return add

    def discover(self) -> None:
        """Import every module of the package once, so that each registers what it defines."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{module.name}")

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        self.discover()
        return sorted(self._entries.items())

    def get(self, name: str) -> T:
        self.discover()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownPluginError(
                f"unknown {self.what} {name!r}; known: {', '.join(self.names()) or '(none)'}") from None

    def check(self, name: str) -> str:
        """``name`` itself when registered (a pydantic field validator), else UnknownPluginError."""
        self.get(name)
        return name


CLIENTS: Registry[Any] = Registry("client kind", "loadgen.clients")
SHAPES: Registry[Any] = Registry("load shape", "loadgen.shapes")
ARRIVALS: Registry[Any] = Registry("arrival process", "loadgen.arrivals")
SOURCES: Registry[Any] = Registry("prompt source", "loadgen.sources")
OUTPUTS: Registry[Any] = Registry("output format", "loadgen.render")  # loadgen.render.output.OutputFormat
