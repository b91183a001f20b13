"""``make demo``: start the baseline on the real model, ask it something, show what it measured.

For now the demo covers the baseline server only: it starts it, sends a greedy chat
request, streams a fixed-length completion to show single-stream speed, prints a few of
the server's own metrics and its peak memory, then stops it. Later issues grow this into
the full three-engine run with the load generator.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx

from engines.local import EngineStartError, baseline_process, free_port

QUESTION = "What is the capital of France?"


def _peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _stream_tokens(client: httpx.Client, model: str, n: int) -> tuple[float, float, int]:
    """One streamed completion of exactly n tokens; returns (ttft s, decode tok/s, tokens)."""
    body = {"model": model, "prompt": "Write a story about a lighthouse keeper.", "max_tokens": n,
            "ignore_eos": True, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    first = last = None
    usage = 0
    with client.stream("POST", "/v1/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]["completion_tokens"]
            if chunk["choices"]:
                now = time.perf_counter()
                first = first or now
                last = now
    assert first is not None and last is not None
    return first - start, (usage - 1) / (last - first) if usage > 1 else 0.0, usage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engines.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/smollm2-135m-instruct")
    parser.add_argument("--log-dir", type=Path, default=Path("results/logs"))
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args(argv)

    port = free_port()
    server = baseline_process(args.model, port, args.log_dir)
    started = time.perf_counter()
    try:
        server.start().wait_ready()
    except EngineStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        print(f"baseline server ready on http://127.0.0.1:{port} in {time.perf_counter() - started:.1f}s "
              f"(pid {server.pid}, log {server.log_path})")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
            answer = client.post("/v1/chat/completions", json={
                "model": "smollm2", "temperature": 0, "messages": [{"role": "user", "content": QUESTION}]})
            answer.raise_for_status()
            reply = answer.json()
            print(f"\nQ: {QUESTION}\nA: {reply['choices'][0]['message']['content']}")
            print(f"   usage: {reply['usage']}")
            ttft, rate, n = _stream_tokens(client, "smollm2", args.tokens)
            print(f"\nstreamed {n} tokens: TTFT {ttft * 1000:.0f} ms, decode {rate:.1f} tok/s (single stream)")
            metrics = client.get("/metrics").text
            print("\nserver metrics (servers/hf/README.md documents them all):")
            for line in metrics.splitlines():
                if line.startswith(("hf:time_to_first_token_seconds_sum", "hf:time_to_first_token_seconds_count",
                                    "hf:generation_tokens_total", "hf:prompt_tokens_total",
                                    'hf:requests_total{model_name="smollm2",outcome="ok"}')):
                    print(f"  {line}")
        rss = _peak_rss_mib(server.pid) if server.pid else None
        if rss is not None:
            print(f"\nserver peak RSS: {rss:.0f} MiB")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
