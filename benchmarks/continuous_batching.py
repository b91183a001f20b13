"""How much of vLLM's lead over a plain HF server is scheduling alone? Naive vs continuous vs vLLM-CPU.

Starts each server in turn on the real model (never two at once: they would share the CPU),
drives it with the load generator — closed loop at each concurrency, synthetic prompts of exactly
``--input-tokens`` tokens, exactly ``--output-tokens`` output tokens (``ignore_eos`` +
``min_tokens``), greedy, ``--warmup`` requests first — stops it, and prints a markdown table:
output tok/s (the stage's output tokens ÷ its wall time), TTFT p50/p99 and TPOT p50 (the load
generator's definitions, docs/metrics.md), then the issue's goals as ratios measured in this one run
(continuous ÷ vLLM output tok/s at each concurrency; TPOT p50 at c16), the CPU's kind (AVX-512 or
AVX2-only: vLLM-CPU's kernels differ) and the machine's load before and after each server
(``/proc/loadavg``: on shared cores only ratios from one run compare). ``--out FILE`` also writes it.

    .venv/bin/python benchmarks/continuous_batching.py --out docs/continuous-batching.md
    .venv/bin/python benchmarks/continuous_batching.py --servers naive,continuous --concurrency 1,4 --requests 4
    python benchmarks/continuous_batching.py --servers naive,continuous --device cuda --model DIR   # a GPU host
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


def server(name: str, model: Path, port: int, log_dir: Path, max_num_seqs: int,
           baseline_args: list[str]) -> ManagedProcess:
    if name == "vllm":
        return vllm_process(model, port, log_dir, served_model_name="bench")
    extra = ["--scheduler", name, "--max-queue", "1024", *baseline_args]
    if name == "continuous":
        extra += ["--max-num-seqs", str(max_num_seqs)]
    return baseline_process(model, port, log_dir, served_model_name="bench", extra_args=extra)


def requests_for(concurrency: int, args: argparse.Namespace) -> int:
    return args.requests or max(args.min_requests, args.requests_per_slot * concurrency)


def run_server(name: str, args: argparse.Namespace, work: Path) -> tuple[float, TargetSummary]:
    """(seconds until the server was ready, its summary) — one server alone on the machine."""
    port = free_port()
    started = time.perf_counter()
    with server(name, args.model, port, work / "logs", args.max_num_seqs,
                ["--device", args.device, *args.server_arg]):
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


def cpu_kind() -> str:
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    kind = "AVX-512" if "avx512f" in flags else "AVX2-only" if "avx2" in flags else "no AVX2"
    return f"{kind} ({' '.join(f for f in ('avx2', 'avx512f', 'avx512_bf16', 'amx_tile') if f in flags)})"


def load() -> str:
    return "/".join(Path("/proc/loadavg").read_text().split()[:3])


def goals(results: dict[str, TargetSummary], args: argparse.Namespace) -> list[str]:
    """The issue's goals, from this run: continuous ≥ 1.0× vLLM at c16, ≥ 1.2× at c32, TPOT p50 at c16 ≤ vLLM's."""
    if "continuous" not in results or "vllm" not in results:
        return []
    out = []
    for c in args.concurrency:
        ours, theirs = results["continuous"].stages[f"c{c}"], results["vllm"].stages[f"c{c}"]
        ratio = (ours.value("output_tokens_per_s") or 0.0) / (theirs.value("output_tokens_per_s") or float("nan"))
        target = {16: 1.0, 32: 1.2}.get(c)
        verdict = f" (goal ≥ {target}: {'met' if ratio >= target else 'NOT met'})" if target else ""
        out.append(f"- c{c}: continuous ÷ vLLM output tok/s = {ratio:.2f}{verdict}")
        if c == 16:
            tpot_ours, tpot_theirs = ours.stats("tpot_ms"), theirs.stats("tpot_ms")
            if tpot_ours and tpot_theirs:
                met = "met" if tpot_ours.p50 <= tpot_theirs.p50 else "NOT met"
                out.append(f"- c16: TPOT p50 continuous {tpot_ours.p50:.1f} ms vs vLLM {tpot_theirs.p50:.1f} ms "
                           f"(goal ≤ vLLM's: {met})")
    return out


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
    parser.add_argument("--device", default="cpu", help="the baseline servers' device (vLLM here is the CPU build)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for both baseline servers, e.g. --server-arg=--linear-kernel=torch")
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
    loads: list[str] = []
    for name in names:
        print(f"== {name} (load {load()})", file=sys.stderr, flush=True)
        before = load()
        ready[name], results[name] = run_server(name, args, args.work)
        loads.append(f"{name} {before} → {load()}")
    header = (f"{time.strftime('%Y-%m-%d')}, {platform.node() or 'this machine'}: {os.cpu_count()} CPUs, "
              f"{platform.machine()}; model {args.model.name} (baseline servers on {args.device}, default dtype: "
              f"fp32 on CPU); prompts {args.input_tokens} tokens, "
              f"{args.output_tokens} output tokens (ignore_eos), greedy; closed loop; requests per level: "
              + ", ".join(f"c{c}={requests_for(c, args)}" for c in args.concurrency)
              + f"; continuous --max-num-seqs {args.max_num_seqs}; server ready: "
              + ", ".join(f"{n} {seconds:.0f} s" for n, seconds in ready.items())
              + f". CPU: {cpu_kind()}. Load average (1/5/15 min) before → after each server: " + "; ".join(loads))
    text = header + "\n\n" + table(results, args) + "\n"
    if lines := goals(results, args):
        text += "\nGoals (ratios from this run):\n" + "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    (args.work / "results.json").write_text(json.dumps(
        {name: {"ready_s": ready[name], **summary.model_dump(mode="json")} for name, summary in results.items()},
        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
