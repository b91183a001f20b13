"""Engine build manifests (e.g. the TensorRT-LLM build's precision) carried into the run's manifest.

Why: a TensorRT-LLM result is meaningless without the precision the engine was actually built
with — FP8 on an H100, BF16 on an A100 that was asked for FP8. The build job writes that into a
``manifest.json`` next to the engine; the load generator copies every such file it is pointed at
into ``manifest.json["engine_builds"]`` of the run, so the report and summary.json carry it.

Where from: ``--engine-manifest PATH`` (repeatable; a missing file is an error) and the
environment variable ``LOADGEN_ENGINE_MANIFESTS`` (``:``-separated; set in the compose
``loadgen`` service; files that do not exist yet are listed as missing, because which engine is
up depends on the compose profile).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

ENV_VAR = "LOADGEN_ENGINE_MANIFESTS"


class EngineManifestError(ValueError):
    pass


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise EngineManifestError(f"cannot read engine manifest {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise EngineManifestError(f"engine manifest {path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EngineManifestError(f"engine manifest {path} is not a JSON object")
    return {"path": str(path), **data}


def load_engine_manifests(explicit: list[Path], environ: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Explicit paths must exist; paths from ``LOADGEN_ENGINE_MANIFESTS`` may not exist yet."""
    env = os.environ if environ is None else environ
    found = [_read(p) for p in explicit]
    for item in filter(None, env.get(ENV_VAR, "").split(":")):
        path = Path(item)
        if path in explicit:
            continue
        found.append(_read(path) if path.exists() else {"path": str(path), "missing": True})
    return found


def describe(builds: list[dict[str, Any]]) -> list[str]:
    """One line per build that exists, for the console: ``tensorrt-llm: fp8 on NVIDIA H100 (9.0) ...``."""
    lines = []
    for build in builds:
        if build.get("missing"):
            continue
        gpu = build.get("gpu") or {}
        line = f"{build.get('engine', '?')}: {build.get('precision', '?')}"
        if gpu:
            line += f" on {gpu.get('name') or 'GPU'} ({gpu.get('compute_capability', '?')})"
        if build.get("requested_precision") not in (None, "auto", build.get("precision")):
            line += f", {build['requested_precision']} was asked for: {build.get('reason', '')}"
        lines.append(line)
    return lines
