"""The exact commands that turn a Hugging Face checkpoint into a TensorRT-LLM engine.

Why pure: ``--dry-run`` must print precisely what a real build runs, on a machine with no GPU,
and the tests check the commands for each GPU generation. So the plan is a function of the
settings and the precision choice only; ``build.py`` executes it.

Two steps, both inside the rig's ``docker/trtllm.Dockerfile`` image (NGC
``tritonserver:25.12-trtllm-python-py3``, TensorRT-LLM 1.1.0, plus setuptools and datasets):

1. checkpoint — ``python3 -m engines.trtllm.quantize``, which calls the installed wheel's
   ``quantize_and_export`` (what TensorRT-LLM's ``examples/quantization/quantize.py`` wraps; the
   NGC image does not ship ``examples/``) through NVIDIA ModelOpt: ``--qformat fp8
   --kv_cache_dtype fp8`` calibrates on ``--calib_size`` samples (FP8 weights, activations and
   KV cache); ``--qformat int8_wo`` and ``full_prec`` need no calibration data.
2. engine — ``trtllm-build`` with what in-flight batching in the Triton backend needs (GPT
   attention plugin, input padding removed, paged KV cache) plus paged context FMHA (chunked
   context, KV reuse) and, for FP8 only, FP8 context FMHA. Every limit is passed explicitly:
   TensorRT-LLM's defaults (e.g. 2048 sequences) differ from vLLM's and would skew a comparison.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engines.trtllm.precision import PrecisionChoice

QFORMAT = {"fp8": "fp8", "int8_wo": "int8_wo", "bf16": "full_prec", "fp16": "full_prec"}
# ``cnn_dailymail`` without its namespace is refused by current huggingface_hub; TensorRT-LLM's
# calibration loader passes any name containing "cnn_dailymail" to load_dataset(name, "3.0.0").
CALIB_DATASET = "abisee/cnn_dailymail"


class BuildSettings(BaseModel):
    """What the engine is built for; the compose service fills these from ``.env``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_dir: Path = Field(description="Hugging Face checkpoint folder (config.json, safetensors, tokenizer)")
    engines_dir: Path = Field(description="where engines, their checkpoints and manifests are kept")
    precision: str = Field("auto", description="auto | fp8 | bf16 | fp16 | int8_wo")
    max_batch_size: int = Field(256, ge=1, description="sequences in flight (in-flight batching)")
    max_input_len: int = Field(2048, ge=1, description="longest prompt, in tokens")
    max_seq_len: int = Field(4096, ge=2, description="prompt + output, in tokens")
    max_num_tokens: int = Field(8192, ge=1, description="tokens per engine step (prefill chunks + decodes)")
    calib_dataset: str = Field(CALIB_DATASET, description="FP8 calibration: a HF dataset name or a local folder "
                                                            "with a train split holding a 'text' column")
    calib_size: int = Field(512, ge=1, description="FP8 calibration samples")

    @model_validator(mode="after")
    def _limits_agree(self) -> BuildSettings:
        if self.max_input_len >= self.max_seq_len:
            raise ValueError(f"max_input_len ({self.max_input_len}) must be below max_seq_len ({self.max_seq_len}): "
                             "a prompt needs room for at least one output token")
        if self.max_num_tokens < self.max_batch_size:
            raise ValueError(f"max_num_tokens ({self.max_num_tokens}) must be at least max_batch_size "
                             f"({self.max_batch_size}): every running sequence decodes one token per step")
        return self


@dataclass(frozen=True)
class BuildPlan:
    key: str
    engine_root: Path
    checkpoint_dir: Path
    engine_dir: Path
    commands: tuple[tuple[str, ...], ...]

    def shell(self) -> list[str]:
        return [shlex.join(cmd) for cmd in self.commands]


def model_fingerprint(model_dir: Path) -> str:
    """Identifies the checkpoint without hashing gigabytes: its config and its weight files' names and sizes."""
    digest = hashlib.sha256()
    config = model_dir / "config.json"
    digest.update(config.read_bytes() if config.exists() else b"no config.json")
    for weights in sorted(model_dir.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()


def engine_key(settings: BuildSettings, choice: PrecisionChoice, fingerprint: str, gpu_name: str,
               trtllm_version: str) -> str:
    """Same model, precision, limits, GPU and TensorRT-LLM → same key → the build is skipped."""
    identity = {"model": fingerprint, "precision": choice.precision, "capability": choice.compute_capability,
                "gpu": gpu_name, "trtllm": trtllm_version,
                "limits": settings.model_dump(include={"max_batch_size", "max_input_len", "max_seq_len",
                                                       "max_num_tokens"}),
                "calibration": [settings.calib_dataset, settings.calib_size] if choice.precision == "fp8" else None}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def make_plan(settings: BuildSettings, choice: PrecisionChoice, key: str) -> BuildPlan:
    root = settings.engines_dir / f"{settings.model_dir.name}-{choice.precision}-{key}"
    checkpoint, engine = root / "checkpoint", root / "engine"
    dtype = "float16" if choice.activations == "float16" else "bfloat16"
    quantize = ["python3", "-m", "engines.trtllm.quantize",
                "--model_dir", str(settings.model_dir), "--dtype", dtype, "--qformat", QFORMAT[choice.precision],
                "--output_dir", str(checkpoint), "--tp_size", "1", "--pp_size", "1"]
    if choice.precision == "fp8":
        quantize += ["--kv_cache_dtype", "fp8", "--calib_dataset", settings.calib_dataset,
                     "--calib_size", str(settings.calib_size), "--calib_max_seq_length",
                     str(min(512, settings.max_input_len))]
    build = ["trtllm-build", "--checkpoint_dir", str(checkpoint), "--output_dir", str(engine),
             "--max_batch_size", str(settings.max_batch_size), "--max_input_len", str(settings.max_input_len),
             "--max_seq_len", str(settings.max_seq_len), "--max_num_tokens", str(settings.max_num_tokens),
             "--max_beam_width", "1",
             "--gemm_plugin", "auto", "--gpt_attention_plugin", "auto",
             "--remove_input_padding", "enable", "--kv_cache_type", "paged",
             "--context_fmha", "enable", "--use_paged_context_fmha", "enable",
             "--use_fp8_context_fmha", "enable" if choice.precision == "fp8" else "disable",
             "--workers", "1"]
    return BuildPlan(key, root, checkpoint, engine, (tuple(quantize), tuple(build)))
