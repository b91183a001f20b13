"""Single-stream figures of the baseline server against its own model code and Triton's CPU model, in one run.

Three measurements of the same generation loop (``servers.hf.runner``: prefill, then sample → ``Sequence.append``
→ decode per token), one after another, never two at once:

1. **in-process**: the runner in this process, no server — the speed the model code allows;
2. **baseline**: ``python -m servers.hf`` as a real process, streamed completions at concurrency 1;
3. **triton**: the real ``tritonserver`` whose python-backend model runs the same runner (skipped when
   ``.venv-triton`` is missing or ``--no-triton``).

Every request: a prompt of exactly ``--input-tokens`` tokens, exactly ``--output-tokens`` output tokens
(``ignore_eos``; Triton: ``min_tokens = max_tokens``), greedy; ``--runs`` requests after one warm-up.
Definitions (client side for the servers; stamps at ``Sequence.append`` in-process):
TTFT = first token − request sent; ITL = gap between consecutive tokens (one chunk per token),
p50 over all gaps of all runs; tok/s = output tokens ÷ (last token − request sent), median of runs.
Prints the ratios the issue's goal names — baseline ITL ÷ in-process ITL and ÷ Triton ITL (goal: at most
1.05) — then one JSON object. Triton's model builds its runner with torch's defaults (MKL ``nn.Linear``, all
cores); ``--server-arg=--linear-kernel=torch --server-arg=--torch-threads=N`` gives the server (and the
in-process run) the same settings for a like-for-like comparison. The machine's load (``uptime``) is
printed before and after: on shared cores, compare only ratios from one run.

    python benchmarks/baseline_single_stream.py --model models/smollm2-135m-instruct
    python benchmarks/baseline_single_stream.py --model DIR --device cuda --no-triton
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from engines.baseline.launch import baseline_process
from stack.process import free_port

PROMPT_WORDS = "The quick brown fox jumps over the lazy dog while the lighthouse keeper watches the sea. "


@dataclass
class Runs:
    """Per-run TTFT (s), per-run tok/s, and every inter-token gap (s) of every run."""

    ttft: list[float] = field(default_factory=list)
    tok_s: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)

    def add(self, sent: float, stamps: list[float]) -> None:
        self.ttft.append(stamps[0] - sent)
        self.tok_s.append(len(stamps) / (stamps[-1] - sent))
        self.gaps += [b - a for a, b in itertools.pairwise(stamps)]

    def summary(self) -> dict[str, float]:
        return {"ttft_ms_p50": round(statistics.median(self.ttft) * 1000, 1),
                "itl_ms_p50": round(statistics.median(self.gaps) * 1000, 2),
                "itl_ms_mean": round(statistics.fmean(self.gaps) * 1000, 2),
                "tok_s_median": round(statistics.median(self.tok_s), 1)}


def exact_prompt(model: str, tokens: int) -> str:
    """Text that the model's tokenizer turns into exactly ``tokens`` tokens (what every engine is sent)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    words = PROMPT_WORDS.split()
    for n in range(tokens // 2, tokens * 2):
        text = " ".join(words[i % len(words)] for i in range(n))
        count = len(tokenizer(text)["input_ids"])
        if count == tokens:
            return text
        if count > tokens:
            break
    raise SystemExit(f"could not build a prompt of exactly {tokens} tokens")


def server_args(args: argparse.Namespace) -> list[str]:
    return ["--device", args.device] + (["--dtype", args.dtype] if args.dtype else []) + args.server_arg


def in_process(args: argparse.Namespace, prompt: str) -> Runs:
    """The naive scheduler's loop without a server: the same runner (built from the same flags as the server's:
    threads, linear kernel), the same calls, stamped where the server emits a token."""
    from servers.hf.__main__ import parse_args
    from servers.hf.app import runner_for
    from servers.hf.sequence import SamplingParams, Sequence

    runner = runner_for(parse_args(["--model", args.model, *server_args(args)]))  # the server's own settings
    params = SamplingParams(max_tokens=args.output_tokens, temperature=0.0, ignore_eos=True)
    ids = runner.encode(prompt)
    runs = Runs()
    for run in range(args.runs + 1):
        seq = Sequence(request_id=str(run), prompt_ids=ids, params=params, tokenizer=runner.tokenizer,
                       eos_ids=runner.eos_ids)
        stamps: list[float] = []
        sent = time.perf_counter()
        logits, cache = runner.prefill(ids)
        while True:
            seq.append(runner.sample(logits, params, None, seq.suppressed_token_ids()))
            stamps.append(time.perf_counter())
            if seq.is_finished:
                break
            logits = runner.decode(seq.output_ids[-1], cache)
        if run:  # the first run is the warm-up
            runs.add(sent, stamps)
    del runner, logits, cache
    gc.collect()
    return runs


def sse_stamps(client: httpx.Client, path: str, body: dict, is_token: str) -> tuple[float, list[float]]:
    """(time sent, arrival time of every event that carries a token) of one streamed request."""
    stamps: list[float] = []
    sent = time.perf_counter()
    with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data: {") and is_token in line:
                stamps.append(time.perf_counter())
    return sent, stamps


def measure(client: httpx.Client, path: str, body: dict, is_token: str, args: argparse.Namespace) -> Runs:
    runs = Runs()
    for run in range(args.runs + 1):
        sent, stamps = sse_stamps(client, path, body, is_token)
        if len(stamps) != args.output_tokens:
            raise SystemExit(f"{path}: {len(stamps)} token events, expected {args.output_tokens}")
        if run:
            runs.add(sent, stamps)
    return runs


def baseline(args: argparse.Namespace, prompt: str) -> tuple[Runs, dict]:
    extra = server_args(args)
    port = free_port()
    server = baseline_process(args.model, port, args.log_dir, served_model_name="bench", extra_args=extra,
                              ready_timeout_s=600)
    started = time.perf_counter()
    with server:
        ready_s = time.perf_counter() - started
        body = {"model": "bench", "prompt": prompt, "max_tokens": args.output_tokens, "ignore_eos": True,
                "temperature": 0, "stream": True}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            runs = measure(client, "/v1/completions", body, '"choices":[{', args)
            metrics_text = client.get("/metrics").text
        status = Path(f"/proc/{server.pid}/status")
        rss = next((int(line.split()[1]) / 1024 for line in status.read_text().splitlines()
                    if line.startswith("VmHWM:")), None) if status.exists() else None
    peak = gpu_peak(metrics_text)
    return runs, {"server_ready_s": round(ready_s, 1), "peak_rss_mib": round(rss) if rss else None,
                  "gpu_memory_peak_mib": round(peak / 2**20) if peak is not None else None}


def triton(args: argparse.Namespace, prompt: str) -> Runs | None:
    from engines.triton.launch import MODEL_NAME, TRITON_VENV, TritonPorts, triton_process

    if args.no_triton or not (TRITON_VENV / "bin" / "python").exists():
        return None
    ports = TritonPorts(http=free_port(), grpc=free_port(), metrics=free_port())
    with triton_process(args.model, ports, args.log_dir):
        body = {"text_input": prompt, "max_tokens": args.output_tokens, "min_tokens": args.output_tokens,
                "temperature": 0.0, "stream": True, "exclude_input_in_output": True}
        with httpx.Client(base_url=f"http://127.0.0.1:{ports.http}", timeout=600) as client:
            return measure(client, f"/v2/models/{MODEL_NAME}/generate_stream", body, '"text_output"', args)


def gpu_peak(metrics_text: str) -> float | None:
    for line in metrics_text.splitlines():
        if line.startswith("hf:gpu_memory_peak_bytes"):
            return float(line.rsplit(" ", 1)[1])
    return None


def load() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_flags() -> str:
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile")
    return " ".join(f for f in wanted if f in flags) or "none of " + ",".join(wanted)


def lines(results: dict[str, dict]) -> Iterator[str]:
    for name, figures in results.items():
        yield f"{name:>10}: " + ", ".join(f"{k} {v}" for k, v in figures.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype")
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server-arg", action="append", default=[], help="extra argument for the baseline server")
    parser.add_argument("--no-triton", action="store_true")
    parser.add_argument("--no-in-process", action="store_true")
    parser.add_argument("--log-dir", type=Path, default=Path("results/logs"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"{time.strftime('%Y-%m-%d %H:%M')} {os.cpu_count()} CPUs ({cpu_flags()}); before: {load()}",
          file=sys.stderr)
    prompt = exact_prompt(args.model, args.input_tokens)
    results: dict[str, dict] = {}
    if not args.no_in_process:
        results["in-process"] = in_process(args, prompt).summary()
    runs, extra = baseline(args, prompt)
    results["baseline"] = {**runs.summary(), **extra}
    if (triton_runs := triton(args, prompt)) is not None:
        results["triton"] = triton_runs.summary()
    print(f"after: {load()}", file=sys.stderr)
    for line in lines(results):
        print(line, file=sys.stderr)
    itl = results["baseline"]["itl_ms_p50"]
    ratios = {f"baseline_itl_over_{name}": round(itl / figures["itl_ms_p50"], 3)
              for name, figures in results.items() if name != "baseline"}
    for name, ratio in ratios.items():
        verdict = "goal met: within 5% or faster" if ratio <= 1.05 else "goal NOT met: more than 5% slower"
        print(f"{name}: {ratio} ({verdict})", file=sys.stderr)
    print(json.dumps({"model": args.model, "device": args.device, "dtype": args.dtype or "default",
                      "prompt_tokens": args.input_tokens, "output_tokens": args.output_tokens, "runs": args.runs,
                      "cpu_flags": cpu_flags(), "load": load(), **results, **ratios}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
