"""Send lag of trace replay: does the rig send each request at the trace's own time?

Writes Mooncake-format traces with Poisson arrivals at several rates, replays each through
``loadgen.api.run`` (load ``replay``) against the synthetic server, and prints one JSON object per
rate with ``send_lag_ms`` = sent − intended (p50, p99, max) and the client's loop lag. Two cores:
the client runs on core 0 and the mock on core 1 (``taskset``), so neither delays the other.

    python benchmarks/trace_replay.py [--rates 50 200 500 1000] [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
from pathlib import Path

from loadgen import metrics as m
from loadgen.api import run
from loadgen.config import Profile
from stack.process import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[1]


def write_trace(path: Path, rate: float, seconds: float, seed: int) -> int:
    rng = random.Random(seed)
    t, rows = 0.0, []
    while t < seconds:
        rows.append(json.dumps({"timestamp": round(t * 1000, 3), "input_length": 16, "output_length": 4,
                                "hash_ids": [rng.randrange(8)]}))
        t += rng.expovariate(rate)
    path.write_text("\n".join(rows) + "\n")
    return len(rows)


def replay(url: str, folder: Path, rate: float, seconds: float, tokenizer: Path) -> dict[str, object]:
    trace = folder / f"trace-{rate:g}.jsonl"
    n = write_trace(trace, rate, seconds, seed=int(rate))
    profile = Profile.model_validate({
        "model": "mock", "targets": [{"name": "mock", "kind": "openai-completions", "url": url}],
        "prompts": {"source": "trace", "format": "mooncake", "path": str(trace), "block_tokens": 16,
                    "tokenizer": str(tokenizer)},
        "load": {"type": "replay"}, "metrics": {"enabled": False}})
    result = run(profile, folder / f"run-{rate:g}", report=False)
    lag = m.stats(m.send_lag_ms(r) for r in result.records)
    loop = m.stats(lag_ns / 1e6 for _, lag_ns in result.loop_lag)
    assert lag is not None
    return {"rate_rps": rate, "requests": n, "ok": sum(r.ok for r in result.records),
            "send_lag_ms": {"p50": round(lag.p50, 4), "p99": round(lag.p99, 4), "max": round(lag.max, 4)},
            "loop_lag_ms_p99": round(loop.p99, 4) if loop else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rates", type=float, nargs="+", default=[50, 200, 500, 1000])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--tokenizer", type=Path, default=ROOT / "models" / "smollm2-135m-instruct")
    args = parser.parse_args(argv)
    pin = shutil.which("taskset") and (os.cpu_count() or 1) >= 2
    if pin:
        os.sched_setaffinity(0, {0})
    folder = Path(tempfile.mkdtemp(prefix="trace-replay-"))
    port = free_port()
    argv_mock = [sys.executable, "-m", "servers.mock", "--port", str(port), "--ttft-ms", "5", "--itl-ms", "1"]
    with ManagedProcess(name="mock", argv=(["taskset", "-c", "1"] if pin else []) + argv_mock,
                        log_path=folder / "mock.log", ready_url=f"http://127.0.0.1:{port}/health", ready_timeout_s=30):
        print(json.dumps({"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "pinned": bool(pin)}))
        for rate in args.rates:
            figures = replay(f"http://127.0.0.1:{port}", folder, rate, args.seconds, args.tokenizer)
            print(json.dumps(figures), flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
