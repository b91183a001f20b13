"""The side-by-side GPU memory budgets (engines/budget.py) for the GPUs and models the rig targets."""

from __future__ import annotations

import pytest

from engines import budget

# config.json fields of the real models (layers, heads, KV heads, hidden) and their safetensors sizes.
LLAMA31_8B = budget.ModelShape.from_config({"num_hidden_layers": 32, "num_attention_heads": 32,
                                            "num_key_value_heads": 8, "hidden_size": 4096},
                                           weight_bytes=16_060_522_496, name="Llama-3.1-8B")
QWEN25_7B = budget.ModelShape.from_config({"num_hidden_layers": 28, "num_attention_heads": 28,
                                           "num_key_value_heads": 4, "hidden_size": 3584},
                                          weight_bytes=15_231_233_024, name="Qwen2.5-7B")
A100_80GB, H100_80GB, L4_24GB, RTX4090_24GB = 81920, 81559, 23034, 24564  # nvidia-smi memory.total, MiB


@pytest.mark.parametrize("gpu", [A100_80GB, H100_80GB], ids=["A100-80GB", "H100-80GB"])
@pytest.mark.parametrize("model", [LLAMA31_8B, QWEN25_7B], ids=lambda m: m.name)
def test_a_7b_or_8b_model_fits_three_times_on_an_80gb_gpu(gpu: int, model: budget.ModelShape) -> None:
    plan = budget.side_by_side(gpu, model, max_seq_len=4096)
    # the three shares, the headroom and nothing more: the budgets add up
    assert 3 * plan.share_mib + plan.headroom_mib <= gpu
    assert plan.weights_mib + budget.ENGINE_OVERHEAD_MIB + plan.kv_mib == plan.share_mib
    assert plan.kv_tokens >= budget.MIN_SEQUENCES * 4096
    # vLLM's fraction is of the whole GPU: three of them stay below 1 with the headroom
    assert 3 * plan.vllm_gpu_memory_utilization <= 1 - budget.HEADROOM_SHARE
    assert 0 < plan.trtllm_kv_cache_free_gpu_mem_fraction < 1
    assert plan.baseline_kv_cache_tokens * model.kv_bytes_per_token * 2 <= plan.kv_mib * budget.MIB
    env = plan.env()
    assert env["COMPOSE_PROFILES"] == "baseline,vllm,triton"
    assert float(env["VLLM_GPU_MEMORY_UTILIZATION"]) == plan.vllm_gpu_memory_utilization


def test_the_h100_numbers_for_llama_3_1_8b() -> None:
    plan = budget.side_by_side(H100_80GB, LLAMA31_8B, max_seq_len=4096)
    assert (plan.headroom_mib, plan.share_mib, plan.weights_mib, plan.kv_mib) == (4078, 25827, 15317, 8462)
    assert plan.vllm_gpu_memory_utilization == 0.31
    assert LLAMA31_8B.kv_bytes_per_token == 131072  # 2 x 32 layers x 8 KV heads x 128 x 2 bytes


@pytest.mark.parametrize("gpu", [L4_24GB, RTX4090_24GB], ids=["L4", "RTX4090"])
@pytest.mark.parametrize("model", [LLAMA31_8B, QWEN25_7B], ids=lambda m: m.name)
def test_a_24gb_gpu_refuses_and_names_the_profiles(gpu: int, model: budget.ModelShape) -> None:
    with pytest.raises(budget.DoesNotFit, match=r"does not fit three times.*--profile vllm"):
        budget.side_by_side(gpu, model, max_seq_len=4096)


def test_too_little_kv_cache_refuses_even_when_the_weights_fit() -> None:
    tiny = budget.ModelShape(weight_bytes=1 * budget.MIB, kv_bytes_per_token=1 * budget.MIB, name="fat-kv")
    with pytest.raises(budget.DoesNotFit, match="MiB short"):
        budget.side_by_side(A100_80GB, tiny, max_seq_len=32768)
