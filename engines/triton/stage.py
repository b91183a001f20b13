"""The ``trtllm-build`` job of the compose CPU flavour: stage the CPU model repository, say the build is GPU-only.

Why a stand-in job and not none: in the GPU stack the build job writes the TensorRT-LLM model repository
(``/engines/repository``) and ``/engines/manifest.json`` into the ``trtllm-engines`` volume, and ``triton``
waits for it to finish. The CPU flavour keeps that start order, volume and path: this job copies the
python-backend repository (``engines/triton/model_repository``, TensorRT-LLM's ``ensemble`` interface) there,
and writes a manifest that says what serves instead, so every run's ``engine_builds`` records it.

    python -m engines.triton.stage --repository /engines/repository --manifest /engines/manifest.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from engines.triton.launch import MODEL_NAME, MODEL_REPOSITORY

GPU_ONLY = ("the TensorRT-LLM build is GPU-only (engines/trtllm): this CPU flavour serves Triton's python backend "
            "with the baseline's generation code behind the same `ensemble` interface instead")


def manifest(repository: Path, model_dir: Path) -> dict[str, Any]:
    return {"engine": "triton-python-backend-cpu", "model": str(model_dir), "model_name": MODEL_NAME,
            "precision": "fp32", "requested_precision": "fp32", "reason": GPU_ONLY, "gpu": None,
            "repository": str(repository), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def stage(repository: Path, manifest_path: Path, model_dir: Path, source: Path = MODEL_REPOSITORY) -> dict[str, Any]:
    """Replace ``repository`` with a copy of ``source`` (atomically: a half-copied repository never serves)."""
    partial = repository.with_name(repository.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.rmtree(repository, ignore_errors=True)
    partial.rename(repository)
    written = manifest(repository, model_dir)
    manifest_path.write_text(json.dumps(written, indent=2) + "\n")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.triton.stage", description=__doc__.split("\n")[0])
    parser.add_argument("--repository", type=Path, default=Path("/engines/repository"))
    parser.add_argument("--manifest", type=Path, default=Path("/engines/manifest.json"))
    parser.add_argument("--model-dir", type=Path, default=Path("/models/model"))
    args = parser.parse_args(argv)
    print(f"trtllm-build: {GPU_ONLY}", flush=True)
    stage(args.repository, args.manifest, args.model_dir)
    print(f"trtllm-build: staged {MODEL_REPOSITORY.name} -> {args.repository}, manifest {args.manifest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
