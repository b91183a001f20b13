"""Which precision a TensorRT-LLM engine gets on which GPU, and why.

Why a module of its own: the rule is the one number users compare across GPUs, so it is
decided in exactly one place, printed by the build, written into the engine's manifest and
tested for 8.0, 8.6, 8.9 and 9.0 without a GPU.

The rule (README, "what precision each GPU generation gets"):

* FP8 (E4M3 weights and activations, FP8 KV cache) needs FP8 tensor cores: compute
  capability ≥ 8.9 (Ada, Hopper, Blackwell). ``auto`` picks it there.
* Ampere (8.0 A100, 8.6 A10/RTX 30xx, 8.7 Orin) has no FP8 in TensorRT-LLM: ``auto`` — and an
  explicit ``fp8`` request — falls back to BF16, and the build says so. INT8 weight-only is
  built when asked for (``int8_wo``): half the weight memory, activations stay BF16.
* Below 8.0 there is no BF16 either: FP16.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from typing import Literal

Precision = Literal["fp8", "bf16", "fp16", "int8_wo"]
REQUESTS = ("auto", "fp8", "bf16", "fp16", "int8_wo")
FP8_MIN = (8, 9)
BF16_MIN = (8, 0)
INT8_WO_MIN = (7, 0)


class CapabilityError(ValueError):
    pass


@dataclass(frozen=True)
class PrecisionChoice:
    """What will be built: ``weights``/``activations``/``kv_cache`` are the dtypes that result."""

    precision: Precision
    requested: str
    compute_capability: str
    weights: str
    activations: str
    kv_cache: str
    reason: str

    @property
    def fell_back(self) -> bool:
        return self.requested not in ("auto", self.precision)


def parse_capability(text: str) -> tuple[int, int]:
    """``"9.0"`` → ``(9, 0)``; what ``nvidia-smi --query-gpu=compute_cap`` prints."""
    match = re.fullmatch(r"\s*(\d+)\.(\d+)\s*", text)
    if not match:
        raise CapabilityError(f"not a compute capability: {text!r} (expected MAJOR.MINOR, e.g. 8.9)")
    return int(match.group(1)), int(match.group(2))


def detect_capability() -> tuple[str, str]:
    """(compute capability, GPU name) of GPU 0, from ``nvidia-smi`` (in every CUDA container)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise CapabilityError(f"cannot ask nvidia-smi for the GPU's compute capability ({exc}); is a GPU "
                              "reserved for this container? Without one, use --dry-run --compute-capability X.Y"
                              ) from exc
    first = out.strip().splitlines()[0] if out.strip() else ""
    cap, _, name = first.partition(",")
    parse_capability(cap)
    return cap.strip(), name.strip()


def choose(requested: str, capability: str) -> PrecisionChoice:
    if requested not in REQUESTS:
        raise CapabilityError(f"unknown precision {requested!r}; choose one of {', '.join(REQUESTS)}")
    cc = parse_capability(capability)
    cap = f"{cc[0]}.{cc[1]}"
    wide = "bf16" if cc >= BF16_MIN else "fp16"
    wide_name = {"bf16": "bfloat16", "fp16": "float16"}[wide]
    if requested in ("auto", "fp8") and cc >= FP8_MIN:
        return PrecisionChoice("fp8", requested, cap, "fp8", "fp8", "fp8",
                               f"compute capability {cap} ≥ 8.9 has FP8 tensor cores: FP8 weights, activations "
                               "and KV cache")
    if requested == "int8_wo":
        if cc < INT8_WO_MIN:
            raise CapabilityError(f"INT8 weight-only needs compute capability ≥ 7.0; this GPU is {cap}")
        return PrecisionChoice("int8_wo", requested, cap, "int8", wide_name, wide_name,
                               f"INT8 weight-only asked for: INT8 weights, {wide_name} activations and KV cache")
    if requested == "bf16" and cc < BF16_MIN:
        return PrecisionChoice("fp16", requested, cap, "float16", "float16", "float16",
                               f"BF16 asked for, but compute capability {cap} < 8.0 has no BF16: FP16 instead")
    if requested == "fp16":
        return PrecisionChoice("fp16", requested, cap, "float16", "float16", "float16", "FP16 asked for")
    if requested == "fp8":
        return PrecisionChoice(wide, requested, cap, wide_name, wide_name, wide_name,
                               f"FP8 asked for, but compute capability {cap} < 8.9 has no FP8 in TensorRT-LLM "
                               f"(A100 is 8.0): falling back to {wide.upper()}; set PRECISION=int8_wo for INT8 "
                               "weight-only")
    why = "asked for" if requested == wide else f"compute capability {cap} < 8.9 has no FP8"
    return PrecisionChoice(wide, requested, cap, wide_name, wide_name, wide_name, f"{wide.upper()}: {why}")
