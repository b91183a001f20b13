"""``python3 -m engines.trtllm.quantize``: HF checkpoint → TensorRT-LLM checkpoint, through the installed wheel's API.

Why not ``/app/examples/quantization/quantize.py``: the NGC ``tritonserver:25.12-trtllm-python-py3``
image is assembled by the Triton server's ``build.py`` (r25.12), which copies only the
TensorRT-LLM backend's libraries out of its TensorRT-LLM clone, not ``examples/``; users of the
24.07 and 24.12 images found no ``/app``. The example script is a thin CLI over
``tensorrt_llm.quantization.quantize_by_modelopt.quantize_and_export``, which the wheel ships,
so this module calls that function directly.

Why the checks first: the same ``build.py`` ends the TensorRT-LLM layer with
``pip3 uninstall -y setuptools``; ModelOpt imports it (Model-Optimizer issue 66), and FP8
calibration reads its data with ``datasets``. ``docker/trtllm.Dockerfile`` adds both back; if
someone runs the plain NGC image instead, this fails at once with what to do, not after a
model load with a traceback.

The keyword arguments differ between TensorRT-LLM releases (``cp_size``, Medusa options...), so
only those the installed function accepts are passed, and a required one this module does not
know fails with its name.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any

API = "tensorrt_llm.quantization.quantize_by_modelopt"
NEEDS = {  # module → why, and how to get it
    "setuptools": "ModelOpt imports it; the NGC image's build uninstalls it (Triton build.py, r25.12)",
    "modelopt": "NVIDIA ModelOpt does the quantization (installed with tensorrt_llm)",
    "datasets": "FP8 calibration reads its samples with it",
}
FIX = "build the rig's image: docker compose build trtllm-build (docker/trtllm.Dockerfile adds setuptools and datasets)"


class QuantizeError(RuntimeError):
    pass


def check_imports(qformat: str, import_module: Callable[[str], Any] = importlib.import_module) -> None:
    """Every module the quantization needs, or one error naming each missing one and the fix."""
    missing = []
    for module, why in NEEDS.items():
        if module == "datasets" and qformat in ("full_prec", "int8_wo"):
            continue  # no calibration without activation quantization
        try:
            import_module(module)
        except ImportError as exc:
            missing.append(f"{module} ({why}): {exc}")
    if missing:
        raise QuantizeError("missing in this image: " + "; ".join(missing) + f". Fix: {FIX}")


def call_kwargs(function: Callable[..., Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``wanted`` that ``function`` takes; a required parameter not in ``wanted`` is an error."""
    params = inspect.signature(function).parameters
    missing = [name for name, p in params.items()
               if p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD
               and p.kind is not p.VAR_POSITIONAL and name not in wanted]
    if missing:
        raise QuantizeError(f"{API}.quantize_and_export requires {missing}, which this rig does not set: the "
                            "installed TensorRT-LLM differs from 1.1.0 (tritonserver:25.12-trtllm-python-py3)")
    return {k: v for k, v in wanted.items() if k in params}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m engines.trtllm.quantize", description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16"])
    parser.add_argument("--qformat", default="full_prec", choices=["fp8", "int8_wo", "full_prec"])
    parser.add_argument("--kv_cache_dtype", default=None, choices=["fp8"])
    parser.add_argument("--calib_dataset", default="abisee/cnn_dailymail")
    parser.add_argument("--calib_size", type=int, default=512)
    parser.add_argument("--calib_max_seq_length", type=int, default=512)
    parser.add_argument("--tp_size", type=int, default=1)
    parser.add_argument("--pp_size", type=int, default=1)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_imports(args.qformat)
        try:
            module = importlib.import_module(API)
        except ImportError as exc:
            raise QuantizeError(f"cannot import {API} ({exc}): run this inside "
                                "nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3 (the trtllm-build job)") from exc
        function = module.quantize_and_export
        kwargs = call_kwargs(function, {
            "model_dir": args.model_dir, "output_dir": args.output_dir, "device": "cuda", "dtype": args.dtype,
            "qformat": args.qformat, "kv_cache_dtype": args.kv_cache_dtype, "calib_dataset": args.calib_dataset,
            "calib_size": args.calib_size, "batch_size": 1, "calib_max_seq_length": args.calib_max_seq_length,
            "awq_block_size": 128, "tp_size": args.tp_size, "pp_size": args.pp_size, "cp_size": 1, "seed": 1234,
            "tokenizer_max_seq_length": 2048,
        })
    except QuantizeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    function(**kwargs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
