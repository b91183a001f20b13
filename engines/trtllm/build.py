"""``python -m engines.trtllm.build``: Hugging Face checkpoint → TensorRT-LLM engine → Triton model repository.

Runs as the compose stack's one-shot ``trtllm-build`` job, inside the same
``tritonserver:25.12-trtllm-python-py3`` image that serves the engine (engines are tied to the
TensorRT-LLM version and the GPU they were built on). It

1. reads GPU 0's compute capability (``nvidia-smi``) and chooses the precision
   (``engines/trtllm/precision.py``: FP8 from 8.9, else BF16, INT8 weight-only when asked),
   printing the choice and, when it differs from what was asked for, why;
2. skips the build when an engine for the same model, precision, limits, GPU and TensorRT-LLM
   version exists (``<engines>/<model>-<precision>-<key>/manifest.json``);
3. otherwise runs the plan (``engines/trtllm/plan.py``): quantize/convert, then ``trtllm-build``;
4. writes the manifest (the precision actually built) beside the engine and as
   ``<engines>/manifest.json``, which the ``loadgen`` service reads into every run's manifest;
5. renders the Triton model repository (``engines/trtllm/repository.py``) for that engine.

``--dry-run --compute-capability X.Y`` prints the precision and the exact commands without a
GPU, TensorRT-LLM or the model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engines.trtllm import repository
from engines.trtllm.plan import CALIB_DATASET, BuildPlan, BuildSettings, engine_key, make_plan, model_fingerprint
from engines.trtllm.precision import REQUESTS, CapabilityError, PrecisionChoice, choose, detect_capability

MANIFEST = "manifest.json"
ENV = {  # setting → environment variable (the names .env.example documents)
    "precision": "PRECISION", "max_batch_size": "MAX_BATCH_SIZE", "max_input_len": "MAX_INPUT_LEN",
    "max_seq_len": "MAX_SEQ_LEN", "max_num_tokens": "MAX_NUM_TOKENS", "calib_dataset": "CALIB_DATASET",
    "calib_size": "CALIB_SIZE",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m engines.trtllm.build", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/models/model"))
    parser.add_argument("--engines-dir", type=Path, default=Path("/engines"))
    parser.add_argument("--repository", type=Path, help="model repository to render (default <engines>/repository)")
    parser.add_argument("--precision", choices=REQUESTS, help="default $PRECISION or auto")
    for name in ("max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens", "calib_size"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, help=f"default ${ENV[name]}")
    parser.add_argument("--calib-dataset", help=f"default $CALIB_DATASET or {CALIB_DATASET} (downloaded by ModelOpt)")
    parser.add_argument("--tokenizer-dir", type=Path,
                        help="tokenizer for pre/postprocessing (default $TOKENIZER_DIR or --model-dir)")
    parser.add_argument("--kv-cache-free-gpu-mem-fraction", type=float,
                        help="Triton: share of free GPU memory for the KV cache (default "
                             "$KV_CACHE_FREE_GPU_MEM_FRACTION or 0.9)")
    parser.add_argument("--dry-run", action="store_true", help="print the precision and the commands; run nothing")
    parser.add_argument("--compute-capability", help="X.Y instead of asking nvidia-smi (for --dry-run without a GPU)")
    parser.add_argument("--gpu-name", help="with --compute-capability: the GPU's name for the manifest")
    parser.add_argument("--force", action="store_true", help="rebuild even when a matching engine exists")
    parser.add_argument("--keep-checkpoint", action="store_true", help="keep the converted checkpoint (large)")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace, environ: dict[str, str]) -> BuildSettings:
    """Flags win over the environment, the environment over the defaults."""
    values: dict[str, Any] = {"model_dir": args.model_dir, "engines_dir": args.engines_dir}
    for name, var in ENV.items():
        flag = getattr(args, name, None)
        if flag is not None:
            values[name] = flag
        elif environ.get(var):
            values[name] = environ[var]
    return BuildSettings(**values)


def trtllm_version() -> str:
    try:
        return metadata.version("tensorrt_llm")
    except metadata.PackageNotFoundError:
        return "not installed"


def existing_manifest(plan: BuildPlan) -> dict[str, Any] | None:
    try:
        manifest = json.loads((plan.engine_root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    engine_ok = (plan.engine_dir / "config.json").exists() and any(plan.engine_dir.glob("*.engine"))
    return manifest if manifest.get("key") == plan.key and engine_ok else None


def model_id(model_dir: Path) -> str | None:
    try:
        return json.loads((model_dir / "rig-download.json").read_text()).get("model_id")
    except (OSError, ValueError):
        return None


def make_manifest(settings: BuildSettings, choice: PrecisionChoice, plan: BuildPlan, gpu_name: str,
                  build_seconds: float | None) -> dict[str, Any]:
    return {
        "engine": "tensorrt-llm",
        "trtllm_version": trtllm_version(),
        "model": str(settings.model_dir),
        "model_id": model_id(settings.model_dir),
        "precision": choice.precision,
        "requested_precision": choice.requested,
        "reason": choice.reason,
        "dtypes": {"weights": choice.weights, "activations": choice.activations, "kv_cache": choice.kv_cache},
        "gpu": {"name": gpu_name, "compute_capability": choice.compute_capability},
        "limits": settings.model_dump(include={"max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens"}),
        "calibration": ({"dataset": settings.calib_dataset, "size": settings.calib_size}
                        if choice.precision == "fp8" else None),
        "key": plan.key,
        "engine_dir": str(plan.engine_dir),
        "commands": plan.shell(),
        "build_seconds": build_seconds,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_plan(plan: BuildPlan) -> float:
    started = time.monotonic()
    if plan.engine_root.exists():
        shutil.rmtree(plan.engine_root)  # a half-built engine from an interrupted run
    plan.engine_root.mkdir(parents=True)
    for step, (cmd, line) in enumerate(zip(plan.commands, plan.shell(), strict=True), start=1):
        print(f"[{step}/{len(plan.commands)}] {line}", flush=True)
        step_started = time.monotonic()
        result = subprocess.run(cmd, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"step {step} failed with exit code {result.returncode}: {line}")
        print(f"[{step}/{len(plan.commands)}] done in {time.monotonic() - step_started:.0f} s", flush=True)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    environ = dict(os.environ)
    try:
        settings = settings_from(args, environ)
        if args.dry_run and not args.compute_capability:
            print("error: --dry-run needs --compute-capability X.Y (no GPU is asked)", file=sys.stderr)
            return 2
        capability, gpu_name, source = gpu_capability(args)
        choice = choose(settings.precision, capability)
    except (ValidationError, CapabilityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"compute capability: {choice.compute_capability} ({source})")
    print(f"precision: {choice.precision} (requested: {choice.requested})")
    print(f"why: {choice.reason}")
    if choice.fell_back:
        print(f"NOTE: {choice.requested} was asked for but {choice.precision} is built; every result is labelled "
              f"{choice.precision}")
    fingerprint = model_fingerprint(settings.model_dir)
    plan = make_plan(settings, choice, engine_key(settings, choice, fingerprint, gpu_name, trtllm_version()))
    repo_dir = args.repository or settings.engines_dir / "repository"
    repo_settings = repository_settings(args, environ, settings, plan)
    if args.dry_run:
        print_dry_run(plan, settings, repo_dir, repo_settings)
        return 0
    manifest = build_or_reuse(args, settings, choice, plan, gpu_name)
    if isinstance(manifest, int):
        return manifest
    (settings.engines_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    repository.render(repo_dir, repo_settings)
    print(f"Triton model repository: {repo_dir}")
    return 0


def gpu_capability(args: argparse.Namespace) -> tuple[str, str, str]:
    """(compute capability, GPU name, where they came from): given on the command line, else nvidia-smi."""
    if args.compute_capability:
        return args.compute_capability, args.gpu_name or "unknown", "given"
    capability, gpu_name = detect_capability()
    return capability, gpu_name, f"nvidia-smi: {gpu_name}"


def repository_settings(args: argparse.Namespace, environ: dict[str, str], settings: BuildSettings,
                        plan: BuildPlan) -> repository.RepositorySettings:
    """The Triton model repository's settings: flags first, then the environment (.env), then defaults."""
    fraction = args.kv_cache_free_gpu_mem_fraction or float(environ.get("KV_CACHE_FREE_GPU_MEM_FRACTION") or 0.9)
    tokenizer_dir = args.tokenizer_dir or Path(environ.get("TOKENIZER_DIR") or settings.model_dir)
    max_kv_tokens = int(environ["TRTLLM_MAX_KV_TOKENS"]) if environ.get("TRTLLM_MAX_KV_TOKENS") else None
    return repository.RepositorySettings(
        engine_dir=plan.engine_dir, tokenizer_dir=tokenizer_dir, max_batch_size=settings.max_batch_size,
        kv_cache_free_gpu_mem_fraction=fraction, max_tokens_in_paged_kv_cache=max_kv_tokens)


def print_dry_run(plan: BuildPlan, settings: BuildSettings, repo_dir: Path,
                  repo: repository.RepositorySettings) -> None:
    print("would run:")
    for line in plan.shell():
        print(f"  {line}")
    print(f"would write: {plan.engine_root / MANIFEST} and {settings.engines_dir / MANIFEST}")
    print(f"would render the Triton model repository: {repo_dir} ({', '.join(repository.MODELS)}; tokenizer "
          f"{repo.tokenizer_dir}, max_batch_size {settings.max_batch_size}, kv_cache_free_gpu_mem_fraction "
          f"{repo.kv_cache_free_gpu_mem_fraction}, max_tokens_in_paged_kv_cache "
          f"{repo.max_tokens_in_paged_kv_cache or 'unbounded'})")


def build_or_reuse(args: argparse.Namespace, settings: BuildSettings, choice: PrecisionChoice, plan: BuildPlan,
                   gpu_name: str) -> dict[str, Any] | int:
    """The engine's manifest: the existing engine's when its key matches (unless --force), else a new build's;
    an exit status when the build cannot run or fails."""
    previous = None if args.force else existing_manifest(plan)
    if previous is not None:
        print(f"engine exists: {plan.engine_dir} (built {previous.get('built_at')}); skipping the build")
        return previous
    if not (settings.model_dir / "config.json").exists():
        print(f"error: {settings.model_dir} has no config.json (did the model job run?)", file=sys.stderr)
        return 2
    try:
        seconds = run_plan(plan)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.keep_checkpoint:
        shutil.rmtree(plan.checkpoint_dir, ignore_errors=True)
    manifest = make_manifest(settings, choice, plan, gpu_name, round(seconds, 1))
    (plan.engine_root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"engine built in {seconds:.0f} s: {plan.engine_dir}")
    return manifest


if __name__ == "__main__":
    sys.exit(main())
