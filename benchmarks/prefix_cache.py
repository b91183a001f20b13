"""Prefix caching on the real CPU stack: real vLLM (prefix cache on, its default) against the baseline
(no prefix cache), on the three workloads where a cache matters and one where it must not.

Prints one JSON object (the figures in docs/workloads.md), each measured through ``loadgen.api.run``:

- shared prefix: 2 prefixes of 512 tokens, 16 requests of 16 tokens more, one at a time; TTFT p50 of
  each group's first request ("cold") and of the rest ("warm"), and the cached share;
- multi-turn: 3 synthetic sessions of 3 turns of 256 user tokens, one session at a time, no think
  time; TTFT p50 per turn (later turns carry the history) and cached tokens per turn;
- synthetic, 4 prompts of 256 tokens sent 3 times each: ``unique: true`` (the default salt) and
  ``unique: false``; the cached share of each.

vLLM reports ``cached_tokens`` (``vllm_argv`` passes ``--enable-prompt-tokens-details``). Both servers
run at once on 2 cores, one run at a time against one of them; TTFT ratios are measured within a
run. Takes ~5 minutes here.

    python benchmarks/prefix_cache.py [--model models/smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from engines.baseline.launch import baseline_process
from engines.vllm.launch import READY_TIMEOUT_S, VLLM_PYTHON, vllm_argv, vllm_env
from loadgen import metrics as m
from loadgen.api import RunResult, run
from loadgen.config import Profile
from stack.process import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
MODEL = "smollm2"


@contextmanager
def engines(model_dir: Path, log_dir: Path) -> Iterator[dict[str, str]]:
    """vLLM (prefix cache on, cached tokens reported) and the baseline; name → URL."""
    vllm_port, base_port = free_port(), free_port()
    vllm = ManagedProcess(name="vLLM (CPU)", argv=vllm_argv(model_dir, vllm_port),
                          log_path=log_dir / "vllm.log", ready_url=f"http://127.0.0.1:{vllm_port}/health",
                          env=vllm_env(), ready_timeout_s=READY_TIMEOUT_S)
    if not VLLM_PYTHON.exists():
        raise FileNotFoundError(f"{VLLM_PYTHON} is missing: run `make vllm`")
    with ExitStack() as stack:
        stack.enter_context(baseline_process(model_dir, base_port, log_dir, served_model_name=MODEL))
        stack.enter_context(vllm)
        yield {"vllm": f"http://127.0.0.1:{vllm_port}", "baseline": f"http://127.0.0.1:{base_port}"}


def one_run(url: str, out: Path, prompts: dict[str, Any], requests: int, tokenizer: Path, seed: int,
            kind: str = "openai-completions") -> RunResult:
    profile = Profile.model_validate({
        "model": MODEL, "seed": seed, "targets": [{"name": "t", "kind": kind, "url": url}],
        "prompts": {"tokenizer": str(tokenizer), **prompts}, "metrics": {"enabled": False},
        "load": {"type": "concurrency", "concurrency": 1, "requests": requests}})
    result = run(profile, out, report=False)
    failed = [r.error_detail for r in result.records if not r.ok]
    if failed:
        raise RuntimeError(f"{len(failed)} requests failed against {url}: {failed[:2]}")
    return result


def p50(values: Iterator[float | None] | list[float | None]) -> float | None:
    data = [v for v in values if v is not None]
    return round(statistics.median(data), 1) if data else None


def shared_prefix(url: str, out: Path, tokenizer: Path, seed: int) -> dict[str, Any]:
    prompts = {"source": "shared-prefix", "groups": 2, "prefix_tokens": 512, "suffix_tokens": 16, "count": 16,
               "output_tokens": 4}
    records = sorted(one_run(url, out, prompts, 16, tokenizer, seed).records, key=lambda r: r.index)
    cold = [r for r in records if r.index < 2]  # each group's first request
    warm = [r for r in records if r.index >= 2]
    return {"ttft_ms_p50_first_of_group": p50(m.ttft_ms(r) for r in cold),
            "ttft_ms_p50_rest": p50(m.ttft_ms(r) for r in warm), "cached_share": m.cached_share(records),
            "cached_tokens_rest_min": min((r.cached_tokens for r in warm if r.cached_tokens is not None), default=None)}


def multi_turn(url: str, out: Path, tokenizer: Path, seed: int) -> dict[str, Any]:
    prompts = {"source": "conversations", "count": 3, "turns": 3, "user_tokens": 256, "output_tokens": 16}
    result = one_run(url, out, prompts, 9, tokenizer, seed, kind="openai-chat")
    turns = sorted({r.turn for r in result.records if r.turn is not None})
    return {"ttft_ms_p50_by_turn": {t: p50(m.ttft_ms(r) for r in result.records if r.turn == t) for t in turns},
            "prompt_tokens_by_turn": {t: p50(r.prompt_tokens for r in result.records if r.turn == t) for t in turns},
            "cached_tokens_by_turn": {t: p50(r.cached_tokens for r in result.records if r.turn == t) for t in turns},
            "cached_share": m.cached_share(result.records)}


def synthetic(url: str, out: Path, tokenizer: Path, seed: int, unique: bool) -> dict[str, Any]:
    prompts = {"input_tokens": 256, "output_tokens": 4, "count": 4, "unique": unique}
    result = one_run(url, out, prompts, 12, tokenizer, seed)
    return {"cached_share": m.cached_share(result.records), "ttft_ms_p50": p50(m.ttft_ms(r) for r in result.records)}


def figures(urls: dict[str, str], tokenizer: Path, folder: Path) -> dict[str, Any]:
    """Every workload against every server (a fresh seed per workload: no prompt is shared between them)."""
    found: dict[str, Any] = {}
    for name, url in urls.items():
        synthetic(url, folder / f"{name}-warmup", tokenizer, seed=100, unique=True)  # first requests pay start-up
        found[name] = {
            "shared_prefix": shared_prefix(url, folder / f"{name}-prefix", tokenizer, seed=101),
            "multi_turn": multi_turn(url, folder / f"{name}-turns", tokenizer, seed=102),
            "synthetic_unique": synthetic(url, folder / f"{name}-unique", tokenizer, seed=103, unique=True),
            "synthetic_repeated": synthetic(url, folder / f"{name}-repeated", tokenizer, seed=104, unique=False),
        }
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2-135m-instruct")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="prefix-cache-"))
    with engines(args.model, folder) as urls:
        result = figures(urls, args.model, folder)
    flags = [f for f in Path("/proc/cpuinfo").read_text().split() if f in ("avx2", "avx512f", "avx512_bf16")]
    print(json.dumps({"cpu": platform.machine(), "cpu_flags": sorted(set(flags)), **result}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
