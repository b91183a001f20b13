"""Single-stream figures of the baseline server: start time, TTFT, decode tok/s, peak memory.

Starts ``python -m servers.hf`` as a real process, sends ``--runs`` streamed completions
of exactly ``--output-tokens`` tokens (``ignore_eos``) one after another, and prints one
JSON object. Client-side timing: TTFT = first content chunk − request sent; decode rate
= (tokens − 1) / (last chunk − first chunk). Peak host memory is the server's VmHWM;
on CUDA the server's own ``hf:gpu_memory_peak_bytes`` is read from /metrics.

    python benchmarks/baseline_single_stream.py --model models/smollm2-135m-instruct
    python benchmarks/baseline_single_stream.py --model DIR --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx

from engines.baseline.launch import baseline_process
from stack.process import free_port

PROMPT_WORDS = "The quick brown fox jumps over the lazy dog while the lighthouse keeper watches the sea. "


def one_stream(client: httpx.Client, prompt: str, tokens: int) -> tuple[float, float, int]:
    body = {"model": "bench", "prompt": prompt, "max_tokens": tokens, "ignore_eos": True, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    sent = time.perf_counter()
    first = last = 0.0
    usage = 0
    with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"]:
                last = time.perf_counter()
                first = first or last
            if chunk.get("usage"):
                usage = chunk["usage"]["completion_tokens"]
    return first - sent, (usage - 1) / (last - first), usage


def gpu_peak(metrics_text: str) -> float | None:
    for line in metrics_text.splitlines():
        if line.startswith("hf:gpu_memory_peak_bytes"):
            return float(line.rsplit(" ", 1)[1])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype")
    parser.add_argument("--input-words", type=int, default=96, help="prompt length in words (~1.2 tokens each)")
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--log-dir", type=Path, default=Path("results/logs"))
    args = parser.parse_args()

    extra = ["--device", args.device] + (["--dtype", args.dtype] if args.dtype else [])
    port = free_port()
    server = baseline_process(args.model, port, args.log_dir, served_model_name="bench", extra_args=extra,
                              ready_timeout_s=600)
    started = time.perf_counter()
    with server:
        ready_s = time.perf_counter() - started
        words = PROMPT_WORDS.split()
        prompt = " ".join(words[i % len(words)] for i in range(args.input_words))
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            runs = [one_stream(client, prompt, args.output_tokens) for _ in range(args.runs)]
            metrics_text = client.get("/metrics").text
            prompt_tokens = client.post("/tokenize", json={"prompt": prompt}).json()["count"]
        rss = None
        status = Path(f"/proc/{server.pid}/status")
        if status.exists():
            rss = next(int(line.split()[1]) / 1024 for line in status.read_text().splitlines()
                       if line.startswith("VmHWM:"))
    result = {
        "model": args.model, "device": args.device, "dtype": args.dtype or "default",
        "prompt_tokens": prompt_tokens, "output_tokens": args.output_tokens, "runs": args.runs,
        "server_ready_s": round(ready_s, 1),
        "ttft_ms_median": round(statistics.median(r[0] for r in runs) * 1000, 1),
        "decode_tok_s_median": round(statistics.median(r[1] for r in runs), 1),
        "peak_rss_mib": round(rss) if rss else None,
        "gpu_memory_peak_mib": round(peak / 2**20) if (peak := gpu_peak(metrics_text)) is not None else None,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
