"""The engine registry: every ``engines/<name>/`` folder that exports ``ENGINE: EngineSpec``.

Why discovery instead of a list: adding an engine is one new folder and nothing else. On
first use the registry imports each subpackage of ``engines`` (sorted by folder name, so the
order is stable) and registers the ``ENGINE`` it exports; a subpackage without one is a
helper, not an engine (``engines/trtllm`` is the GPU build of the ``triton`` engine).
Importing ``engines`` itself stays free of side effects: the TensorRT-LLM build job runs
``engines.trtllm.build`` in a container that holds nothing else of the rig.

    from engines import registry
    registry.names()          # ('baseline', 'triton', 'vllm')
    registry.get("vllm")      # EngineSpec
    registry.all()            # every EngineSpec, in discovery order

    python -m engines.registry   # one line per engine
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

from engines.spec import EngineSpec

PACKAGE = "engines"

_engines: dict[str, EngineSpec] = {}
_discovered = False


class UnknownEngineError(KeyError):
    """A name that no engine folder registered."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(spec: EngineSpec) -> EngineSpec:
    """Add an engine; a second, different spec under the same name is an error (two folders, one name)."""
    known = _engines.get(spec.name)
    if known is not None and known is not spec:
        raise ValueError(f"engine {spec.name!r} is registered twice")
    _engines[spec.name] = spec
    return spec


def discover() -> None:
    """Import every subpackage of ``engines`` once and register the ``ENGINE`` each exports."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        if not module.ispkg:
            continue
        spec = getattr(importlib.import_module(f"{PACKAGE}.{module.name}"), "ENGINE", None)
        if spec is None:
            continue
        if not isinstance(spec, EngineSpec):
            raise TypeError(f"{PACKAGE}.{module.name}.ENGINE is a {type(spec).__name__}, not an EngineSpec")
        register(spec)


def all() -> tuple[EngineSpec, ...]:  # shadows the builtin inside this module only: registry.all()
    discover()
    return tuple(_engines.values())


def names() -> tuple[str, ...]:
    return tuple(spec.name for spec in all())


def get(name: str) -> EngineSpec:
    discover()
    try:
        return _engines[name]
    except KeyError:
        raise UnknownEngineError(f"unknown engine {name!r}; known: {', '.join(_engines) or '(none)'}") from None


def main() -> int:
    for spec in all():
        print(f"{spec.name:9s} {','.join(spec.apis):40s} make {spec.install_target:8s} "
              f"compose {spec.compose_service:9s} dashboard {spec.dashboard}  {spec.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
