"""GPU memory budgets for running the baseline, vLLM and TensorRT-LLM side by side on one GPU.

Why a pure function: plain ``docker compose up`` starts all three engines on one GPU, and each
would otherwise take ~90% of its memory and the second to start would die. The budget is
decided once, from numbers the preflight reads (the GPU's memory from ``nvidia-smi``, the
model's weight bytes and per-token KV-cache size from its ``config.json`` and safetensors),
written to ``.env`` and tested for the GPUs the rig targets, with no GPU here.

The rule (all in MiB, as ``nvidia-smi --query-gpu=memory.total`` reports it):

* ``headroom`` = max(5% of the GPU, 3 x 1 GiB): three CUDA contexts, NCCL/cuBLAS workspaces
  and fragmentation, never handed to an engine.
* each engine gets an equal ``share`` = (total - headroom) / 3: the comparison is fair only
  when no engine has more memory than another.
* inside a share: the weights in 16 bits (BF16; an FP8 TensorRT-LLM engine needs less, so the
  16-bit figure is the bound), ``ENGINE_OVERHEAD_MIB`` for activations, CUDA graphs and the
  engine's runtime, and what remains is KV cache.
* the KV cache must hold at least ``MIN_SEQUENCES`` sequences of ``max_seq_len`` tokens, else
  the three do not fit: ``DoesNotFit`` says by how much, and the per-engine profiles remain.

What each engine is given:

* vLLM ``--gpu-memory-utilization`` = share / total (vLLM's per-instance budget of the whole
  GPU, weights included), rounded down to 0.01.
* TensorRT-LLM ``kv_cache_free_gpu_mem_fraction`` applies to the memory still free after its
  engine loaded; Triton starts last, so free = total - 2 shares - weights - overhead, and the
  fraction is KV bytes / that free memory, rounded down. ``max_tokens_in_paged_kv_cache``
  bounds it in tokens as well, so the earlier start order cannot make it larger.
* the baseline (``servers.hf --scheduler continuous``) takes ``--kv-cache-tokens``: its KV bytes
  / bytes per token, halved, because its batched cache grows by doubling (kv_cache.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

ENGINES = ("baseline", "vllm", "triton")
MIN_HEADROOM_MIB = 3 * 1024
HEADROOM_SHARE = 0.05
ENGINE_OVERHEAD_MIB = 2 * 1024
MIN_SEQUENCES = 4
WEIGHT_BYTES = 2  # BF16
KV_BYTES = 2  # BF16 KV cache (the FP8 KV cache of TensorRT-LLM on >= 8.9 needs half)
MIB = 1024 * 1024


class DoesNotFit(ValueError):
    """The model cannot be served three times on this GPU: run one engine at a time (profiles)."""


@dataclass(frozen=True)
class ModelShape:
    """What the budget needs to know about a model: weight bytes and KV-cache bytes per token."""

    weight_bytes: int
    kv_bytes_per_token: int
    name: str = "model"

    @classmethod
    def from_config(cls, config: dict, params: int | None = None, weight_bytes: int | None = None,
                    name: str = "model") -> ModelShape:
        """From a Hugging Face ``config.json``; weights from ``weight_bytes`` or ``params`` x 2 bytes."""
        layers = int(config["num_hidden_layers"])
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
        if weight_bytes is None:
            if params is None:
                raise ValueError("give the weight bytes or the parameter count")
            weight_bytes = params * WEIGHT_BYTES
        return cls(weight_bytes=weight_bytes, kv_bytes_per_token=2 * layers * kv_heads * head_dim * KV_BYTES,
                   name=name)

    @classmethod
    def from_dir(cls, model_dir: Path) -> ModelShape:
        """A downloaded checkpoint: its config.json and the size of its safetensors (16-bit weights)."""
        config = json.loads((model_dir / "config.json").read_text())
        size = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
        if not size:
            raise ValueError(f"{model_dir} has no *.safetensors: cannot size the weights")
        return cls.from_config(config, weight_bytes=size, name=model_dir.name)


@dataclass(frozen=True)
class Budget:
    total_mib: int
    headroom_mib: int
    share_mib: int
    weights_mib: int
    kv_mib: int
    kv_tokens: int
    vllm_gpu_memory_utilization: float
    trtllm_kv_cache_free_gpu_mem_fraction: float
    trtllm_max_kv_tokens: int
    baseline_kv_cache_tokens: int

    def env(self) -> dict[str, str]:
        """The ``.env`` variables docker-compose.yml reads."""
        return {
            "COMPOSE_PROFILES": ",".join(ENGINES),
            "VLLM_GPU_MEMORY_UTILIZATION": f"{self.vllm_gpu_memory_utilization:.2f}",
            "KV_CACHE_FREE_GPU_MEM_FRACTION": f"{self.trtllm_kv_cache_free_gpu_mem_fraction:.2f}",
            "TRTLLM_MAX_KV_TOKENS": str(self.trtllm_max_kv_tokens),
            "BASELINE_KV_CACHE_TOKENS": str(self.baseline_kv_cache_tokens),
        }

    def describe(self) -> str:
        return (f"{self.total_mib} MiB GPU: {self.headroom_mib} MiB headroom, {self.share_mib} MiB per engine "
                f"= {self.weights_mib} weights + {ENGINE_OVERHEAD_MIB} overhead + {self.kv_mib} KV cache "
                f"({self.kv_tokens} tokens); vLLM --gpu-memory-utilization {self.vllm_gpu_memory_utilization:.2f}, "
                f"TensorRT-LLM kv_cache_free_gpu_mem_fraction {self.trtllm_kv_cache_free_gpu_mem_fraction:.2f} "
                f"(at most {self.trtllm_max_kv_tokens} tokens), baseline --kv-cache-tokens "
                f"{self.baseline_kv_cache_tokens}")


def _floor2(x: float) -> float:
    return math.floor(x * 100) / 100


def side_by_side(total_mib: int, model: ModelShape, max_seq_len: int) -> Budget:
    """Equal memory for the three engines on one GPU, or ``DoesNotFit`` with the numbers."""
    headroom = max(MIN_HEADROOM_MIB, math.ceil(total_mib * HEADROOM_SHARE))
    share = (total_mib - headroom) // len(ENGINES)
    weights = math.ceil(model.weight_bytes / MIB)
    kv_mib = share - weights - ENGINE_OVERHEAD_MIB
    need_tokens = MIN_SEQUENCES * max_seq_len
    need_kv = math.ceil(need_tokens * model.kv_bytes_per_token / MIB)
    if kv_mib < need_kv:
        short = need_kv - kv_mib
        raise DoesNotFit(
            f"{model.name} ({weights} MiB of 16-bit weights) does not fit three times on a {total_mib} MiB GPU: "
            f"each engine gets {share} MiB, which leaves {max(kv_mib, 0)} MiB of KV cache, and {MIN_SEQUENCES} "
            f"sequences of {max_seq_len} tokens need {need_kv} MiB ({short} MiB short). Run one engine at a time: "
            "docker compose --profile vllm up (or --profile baseline, --profile triton)")
    kv_tokens = kv_mib * MIB // model.kv_bytes_per_token
    trt_free = total_mib - 2 * share - weights - ENGINE_OVERHEAD_MIB
    return Budget(
        total_mib=total_mib, headroom_mib=headroom, share_mib=share, weights_mib=weights, kv_mib=kv_mib,
        kv_tokens=kv_tokens,
        vllm_gpu_memory_utilization=_floor2(share / total_mib),
        trtllm_kv_cache_free_gpu_mem_fraction=_floor2(kv_mib / trt_free),
        trtllm_max_kv_tokens=kv_tokens,
        baseline_kv_cache_tokens=kv_tokens // 2,
    )
