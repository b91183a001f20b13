"""Honest prefix caching on real engines (issue 14, part 5): real vLLM on CPU, whose prefix cache is
on by default, against the baseline, which has none. Shared prefixes and later turns of a
conversation must get faster and report cached tokens on vLLM only; unique synthetic prompts
(the default) must find nothing cached, and the same prompts repeated must.

The engines are the session's CPU stack (its vLLM reports cached tokens:
``--enable-prompt-tokens-details``); the workloads are ``benchmarks/prefix_cache.py``'s, so the
figures asserted here are the ones that script prints for docs/workloads.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.prefix_cache import figures
from stack.local import StackState


def test_prefix_cache_gains_show_on_vllm_only(stack: StackState, model_dir: Path, tmp_path: Path) -> None:
    urls = {name: stack.engines[name].urls["openai-completions"] for name in ("vllm", "baseline")}
    found = figures(urls, model_dir, tmp_path)
    print(json.dumps(found, indent=1))  # the figures, for docs/workloads.md (pytest -s)
    vllm, base = found["vllm"], found["baseline"]

    prefix = vllm["shared_prefix"]
    # whole KV blocks only: 128 tokens each on vLLM's CPU backend here (measured: 512 of 528)
    assert prefix["cached_tokens_rest_min"] >= 384
    assert prefix["ttft_ms_p50_rest"] < 0.7 * prefix["ttft_ms_p50_first_of_group"]
    assert base["shared_prefix"]["cached_share"] is None  # the baseline reports no cache...
    assert base["shared_prefix"]["ttft_ms_p50_rest"] > 0.7 * base["shared_prefix"]["ttft_ms_p50_first_of_group"]

    turns, base_turns = vllm["multi_turn"], base["multi_turn"]
    assert turns["cached_tokens_by_turn"][1] == 0 and turns["cached_tokens_by_turn"][3] >= 256
    vllm_growth = turns["ttft_ms_p50_by_turn"][3] / turns["ttft_ms_p50_by_turn"][1]
    base_growth = base_turns["ttft_ms_p50_by_turn"][3] / base_turns["ttft_ms_p50_by_turn"][1]
    assert vllm_growth < base_growth  # the history is prefilled again on the baseline only

    # unique salts: nothing cached; the same 4 prompts sent 3 times: a repeated 256-token prompt
    # finds its first 128-token block cached (the last block holds the token to compute), 8 × 128 / 12 × 256
    assert vllm["synthetic_unique"]["cached_share"] < 0.05
    assert vllm["synthetic_repeated"]["cached_share"] > 0.25
