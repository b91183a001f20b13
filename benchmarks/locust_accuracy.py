"""How accurate the Locust front end is beside the asyncio loadgen: TTFT and ITL means against the synthetic
server's truth, both clients against the same mock in the same run (clients pinned to one core, the mock to
the other when there are two).

Why a script: Locust runs on gevent and stamps a chunk when its greenlet reads it, where the asyncio client
takes the kernel's receive time; the difference is what a Locust run costs in accuracy. The Locust side is one
master and two ``--worker`` processes (``loadgen.locust.launch``), the asyncio side ``loadgen.api.run``
(``loadgen.selftest.bias``), each at the same concurrency, prompts and output length. Prints one JSON object;
docs/locust.md quotes it.

    .venv/bin/python benchmarks/locust_accuracy.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

from loadgen import metrics as m
from loadgen.api import load_run
from loadgen.locust.launch import start
from loadgen.selftest import bias, mock_profile, mock_truth, running_mock

TTFT_MS, ITL_MS, TOKENS = 50, 10, 64


def locust_bias(url: str, concurrency: int, requests: int, folder: Path, cpus: list[int] | None) -> dict[str, Any]:
    """The same measurement through Locust (master + 2 workers); the truth spans the whole run (warm-up included,
    as do the client's means here: the mock cannot tell the two apart)."""
    profile = mock_profile(url, {"type": "concurrency", "concurrency": concurrency, "requests": requests}, TOKENS,
                           folder, warmup=concurrency)
    path = folder / f"locust-c{concurrency}.yaml"
    path.write_text(yaml.safe_dump(profile.model_dump(mode="json", exclude_none=True)))
    out = folder / f"locust-c{concurrency}"
    before = httpx.get(f"{url}/metrics").text
    run = start(path, out, 2, folder / f"logs-c{concurrency}", cpus=cpus)
    run.wait(600)
    truth = mock_truth(before, httpx.get(f"{url}/metrics").text)
    result = load_run(out)
    ok = [r for r in result.records if r.ok]
    ttft = m.stats(m.ttft_ms(r) for r in ok)
    itl = m.stats(gap for r in ok for gap in m.itl_gaps_ms(r))
    assert ttft is not None and itl is not None, run.master_log()[-2000:]
    return {
        "concurrency": concurrency, "requests": len(result.records), "failed": len(result.records) - len(ok),
        "mock_requests": truth.requests,
        "ttft_mean_ms": round(ttft.mean, 3), "mock_ttft_mean_ms": round(truth.ttft_ms, 3),
        "ttft_bias_ms": round(ttft.mean - truth.ttft_ms, 3),
        "itl_mean_ms": round(itl.mean, 3), "mock_itl_mean_ms": round(truth.itl_ms, 3),
        "itl_bias_ms": round(itl.mean - truth.itl_ms, 3),
        "hub_lag_p99_ms": [w.loop_lag_p99_ms for w in result.workers],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    client, server = ([cpus[0]], set(cpus[1:])) if len(cpus) > 1 else (None, None)
    if client:
        os.sched_setaffinity(0, set(client))
    figures: dict[str, Any] = {"load_average_at_start": os.getloadavg()[0], "cpus": len(cpus)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for concurrency in (8,) if args.quick else (8, 64):
            requests = concurrency * (4 if args.quick else 10)
            with running_mock(["--ttft-ms", str(TTFT_MS), "--itl-ms", str(ITL_MS)], folder, server) as url:
                asyncio_side = bias(url, concurrency, requests, TOKENS, folder)
                locust_side = locust_bias(url, concurrency, requests, folder, client)
            figures[f"c{concurrency}"] = {"asyncio": {k: asyncio_side[k] for k in (
                "requests", "failed", "ttft_mean_ms", "mock_ttft_mean_ms", "ttft_bias_ms", "itl_bias_ms",
                "loop_lag_p99_ms")}, "locust": locust_side}
    figures["load_average_at_end"] = os.getloadavg()[0]
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
