"""How much of vLLM's lead over a plain HF server is scheduling alone? Naive vs continuous vs vLLM-CPU.

Starts each server in turn on the real model (never two at once: they would share the CPU),
drives it with the load generator — closed loop at each concurrency, synthetic prompts of exactly
``--input-tokens`` tokens, exactly ``--output-tokens`` output tokens (``ignore_eos`` +
``min_tokens``), greedy, ``--warmup`` requests first — stops it, and prints a markdown table:
output tok/s (the stage's output tokens ÷ its wall time), TTFT p50/p99 and TPOT p50 (the load
generator's definitions, docs/metrics.md). ``--out FILE`` also writes the table.

    .venv/bin/python benchmarks/continuous_batching.py --out docs/continuous-batching.md
    .venv/bin/python benchmarks/continuous_batching.py --servers naive,continuous --concurrency 1,4 --requests 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from engines.baseline.launch import baseline_process
from engines.vllm.launch import vllm_process
from loadgen.api import run
from loadgen.config import Profile
from loadgen.render.table import Table, to_markdown
from loadgen.summary import TargetSummary
from stack.process import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[1]

SERVERS = ("naive", "continuous", "vllm")


def server(name: str, model: Path, port: int, log_dir: Path, max_num_seqs: int) -> ManagedProcess:
    if name == "vllm":
        return vllm_process(model, port, log_dir, served_model_name="bench")
    extra = ["--scheduler", name, "--max-queue", "1024"]
    if name == "continuous":
        extra += ["--max-num-seqs", str(max_num_seqs)]
    return baseline_process(model, port, log_dir, served_model_name="bench", extra_args=extra)


def requests_for(concurrency: int, args: argparse.Namespace) -> int:
    return args.requests or max(args.min_requests, args.requests_per_slot * concurrency)


def run_server(name: str, args: argparse.Namespace, work: Path) -> tuple[float, TargetSummary]:
    """(seconds until the server was ready, its summary) — one server alone on the machine."""
    port = free_port()
    started = time.perf_counter()
    with server(name, args.model, port, work / "logs", args.max_num_seqs):
        ready_s = time.perf_counter() - started
        profile = Profile.model_validate({
            "name": f"continuous-batching-{name}", "model": "bench", "seed": 1,
            "targets": [{"name": name, "kind": "openai-completions", "url": f"http://127.0.0.1:{port}"}],
            "prompts": {"input_tokens": args.input_tokens, "output_tokens": args.output_tokens,
                        "count": 512, "tokenizer": str(args.model)},
            # the naive server queues: at concurrency 32 the last request waits 32 generations
            "request": {"temperature": 0.0, "ignore_eos": True, "timeout_s": 1800.0,
                        "stall_timeout_s": 1800.0},
            "warmup": args.warmup,
            "stages": [{"name": f"c{c}", "type": "concurrency", "concurrency": c,
                        "requests": requests_for(c, args)} for c in args.concurrency],
            "metrics": {"enabled": False},
        })
        result = run(profile, work / name)
    return ready_s, result.summary.targets[name]


def table(results: dict[str, TargetSummary], args: argparse.Namespace) -> str:
    out = Table("naive vs continuous vs vLLM-CPU", ["concurrency", "server", "requests", "output tok/s", "× naive",
                                                   "TTFT p50 (ms)", "TTFT p99 (ms)", "TPOT p50 (ms)"])
    for c in args.concurrency:
        naive = results.get("naive")
        base = naive.stages[f"c{c}"].value("output_tokens_per_s") if naive else None
        for name, summary in results.items():
            stage = summary.stages[f"c{c}"]
            tps = stage.value("output_tokens_per_s") or 0.0
            ttft, tpot = stage.stats("ttft_ms"), stage.stats("tpot_ms")
            out.rows.append([str(c), name, str(stage.requests.ok), f"{tps:.1f}", f"{tps / base:.1f}×" if base else "–",
                             f"{ttft.p50:.0f}" if ttft else "–", f"{ttft.p99:.0f}" if ttft else "–",
                             f"{tpot.p50:.1f}" if tpot else "–"])
    return to_markdown(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "smollm2-135m-instruct")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--concurrency", default="1,4,16,32")
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, help="requests per concurrency level (default: see below)")
    parser.add_argument("--requests-per-slot", type=int, default=2, help="default requests = this × concurrency")
    parser.add_argument("--min-requests", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-num-seqs", type=int, default=32, help="the continuous scheduler's batch limit")
    parser.add_argument("--work", type=Path,
                        default=ROOT / "results" / f"continuous-batching-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    names = [n for n in args.servers.split(",") if n]
    unknown = set(names) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}; choose from {SERVERS}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, TargetSummary] = {}
    ready: dict[str, float] = {}
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        ready[name], results[name] = run_server(name, args, args.work)
    header = (f"{time.strftime('%Y-%m-%d')}, {platform.node() or 'this machine'}: {os.cpu_count()} CPUs, "
              f"{platform.machine()}; model {args.model.name} (fp32); prompts {args.input_tokens} tokens, "
              f"{args.output_tokens} output tokens (ignore_eos), greedy; closed loop; requests per level: "
              + ", ".join(f"c{c}={requests_for(c, args)}" for c in args.concurrency)
              + f"; continuous --max-num-seqs {args.max_num_seqs}; server ready: "
              + ", ".join(f"{n} {seconds:.0f} s" for n, seconds in ready.items()))
    text = header + "\n\n" + table(results, args) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    (args.work / "results.json").write_text(json.dumps(
        {name: {"ready_s": ready[name], **summary.model_dump(mode="json")} for name, summary in results.items()},
        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
