"""``loadgen selftest``: how far this client can be trusted on this machine.

Starts the synthetic server (``servers.mock``, pinned to the other cores) and drives it
with the real runner and clients, pinned to ONE core, then compares what the client
measured with what the mock recorded that it did (its ``mock_ttft_seconds`` and
``mock_itl_seconds``):

1. bias at low load: mean TTFT and mean TPOT against the mock's truth at concurrency 8;
2. capacity: 500 and 1,000 concurrent streams (after one warm-up round that opens every
   connection) — achieved token events per second and the TTFT/TPOT bias while they run;
3. schedule fidelity: an open-loop constant rate with tiny responses — achieved vs asked
   rate, send-lag p99.

Figures are printed, not asserted: speed is measured here, correctness in the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

from loadgen import metrics as m
from loadgen.clients import ClientOptions, RequestSpec, make_client
from loadgen.config import LoadShape
from loadgen.record import RequestRecord
from loadgen.runner import LoopLagMonitor, TargetRunner


@dataclass
class MockTruth:
    """Means of what the mock did, from the difference of two /metrics scrapes."""

    ttft_ms: float
    itl_ms: float
    requests: int


def _histogram_sums(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("mock_ttft_seconds_sum", "mock_ttft_seconds_count", "mock_itl_seconds_sum",
                            "mock_itl_seconds_count")):
            name, value = line.split()[:2]
            values[name.split("{")[0]] = float(value)
    return values


def mock_truth(before: str, after: str) -> MockTruth:
    a, b = _histogram_sums(before), _histogram_sums(after)

    def mean(name: str) -> float:
        count = b.get(f"{name}_count", 0) - a.get(f"{name}_count", 0)
        return (b.get(f"{name}_sum", 0) - a.get(f"{name}_sum", 0)) / count * 1000 if count else float("nan")

    requests = int(b.get("mock_ttft_seconds_count", 0) - a.get("mock_ttft_seconds_count", 0))
    return MockTruth(ttft_ms=mean("mock_ttft_seconds"), itl_ms=mean("mock_itl_seconds"), requests=requests)


@contextlib.contextmanager
def running_mock(args: list[str], log_dir: Path, cpus: set[int] | None) -> Iterator[str]:
    from engines.process import ManagedProcess, free_port

    port = free_port()
    proc = ManagedProcess(name="mock", argv=[sys.executable, "-m", "servers.mock", "--port", str(port), *args],
                          log_path=log_dir / f"mock-{port}.log", ready_url=f"http://127.0.0.1:{port}/health",
                          ready_timeout_s=30)
    proc.start()
    try:
        if cpus and proc.pid:
            os.sched_setaffinity(proc.pid, cpus)
        proc.wait_ready()
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


async def drive(url: str, kind: str, shape: LoadShape, output_tokens: int, max_in_flight: int | None = None,
                warm_up: Callable[[], None] | None = None) -> tuple[list[RequestRecord], list[float]]:
    """Run one stage with the real runner and client; return its records and loop lags (ms).

    With ``warm_up``, one round of requests at the stage's concurrency runs first (every
    pooled connection gets opened), then ``warm_up()`` is called and measuring starts."""
    records: list[RequestRecord] = []
    client = make_client(kind, url, ClientOptions(model="mock", stall_timeout_s=60))
    prompts = [RequestSpec(prompt_id=str(i), prompt=f"prompt {i}", max_tokens=output_tokens) for i in range(64)]
    runner = TargetRunner("mock", client, prompts, [records.append], max_in_flight=max_in_flight)
    monitor = LoopLagMonitor()
    await client.start(max_in_flight or shape.concurrency or 0)
    try:
        if warm_up is not None and shape.concurrency:
            await runner.run([LoadShape(type="concurrency", concurrency=shape.concurrency,
                                        requests=shape.concurrency)])
            records.clear()
            warm_up()
        monitor.start()
        await runner.run([shape])
    finally:
        await client.close()
        await monitor.stop()
    return records, [lag / 1e6 for _, lag in monitor.samples]


def _run(coro: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


def bias(url: str, concurrency: int, requests: int, output_tokens: int) -> dict[str, float]:
    """Steady state after a warm-up round: the truth is the mock's books over the same requests."""
    before: list[str] = []
    shape = LoadShape(type="concurrency", concurrency=concurrency, requests=requests)
    records, lags = _run(drive(url, "openai-completions", shape, output_tokens,
                               warm_up=lambda: before.append(httpx.get(f"{url}/metrics").text)))
    truth = mock_truth(before[0], httpx.get(f"{url}/metrics").text)
    ok = [r for r in records if r.ok]
    ttft = m.stats(m.ttft_ms(r) for r in ok)
    tpot = m.stats(m.tpot_ms(r) for r in ok)
    events = sum(len(r.chunk_offsets_ns) for r in ok)
    return {
        "concurrency": concurrency, "requests": len(records), "failed": len(records) - len(ok),
        "ttft_mean_ms": round(ttft.mean, 3) if ttft else float("nan"),
        "mock_ttft_mean_ms": round(truth.ttft_ms, 3),
        "ttft_bias_ms": round((ttft.mean if ttft else float("nan")) - truth.ttft_ms, 3),
        "tpot_mean_ms": round(tpot.mean, 3) if tpot else float("nan"),
        "mock_itl_mean_ms": round(truth.itl_ms, 3),
        "tpot_bias_ms": round((tpot.mean if tpot else float("nan")) - truth.itl_ms, 3),
        "token_events_per_s": round(events / m.window_s(ok)) if ok else 0,
        "loop_lag_p99_ms": round(m.percentile(sorted(lags), 99), 3) if lags else float("nan"),
    }


def schedule_fidelity(url: str, rate: float, duration_s: float) -> dict[str, float]:
    shape = LoadShape(type="rate", rate=rate, arrival="constant", duration_s=duration_s)
    records, lags = _run(drive(url, "openai-completions", shape, output_tokens=1, max_in_flight=None))
    sends = sorted(r.sent_ns for r in records)
    achieved = (len(sends) - 1) / ((sends[-1] - sends[0]) / 1e9) if len(sends) > 1 else 0.0
    lag = m.stats(m.send_lag_ms(r) for r in records)
    return {
        "asked_rate": rate, "achieved_rate": round(achieved, 1), "requests": len(records),
        "failed": sum(1 for r in records if not r.ok),
        "send_lag_p50_ms": round(lag.p50, 3) if lag else float("nan"),
        "send_lag_p99_ms": round(lag.p99, 3) if lag else float("nan"),
        "loop_lag_p99_ms": round(m.percentile(sorted(lags), 99), 3) if lags else float("nan"),
    }


def main(quick: bool = False) -> int:
    cpus = sorted(os.sched_getaffinity(0))
    client_cpu, mock_cpus = ({cpus[0]}, set(cpus[1:])) if len(cpus) > 1 else (None, None)
    if client_cpu:
        os.sched_setaffinity(0, client_cpu)
    results: dict[str, object] = {"client_cpu": sorted(client_cpu or []), "mock_cpus": sorted(mock_cpus or [])}
    with TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        with running_mock(["--ttft-ms", "50", "--itl-ms", "10"], log_dir, mock_cpus) as url:
            results["bias_c8"] = bias(url, 8, 32 if quick else 200, 64)
        for streams in ((100,) if quick else (500, 1000)):
            with running_mock(["--ttft-ms", "50", "--itl-ms", "20"], log_dir, mock_cpus) as url:
                results[f"streams_c{streams}"] = bias(url, streams, streams * (1 if quick else 2),
                                                      100 if quick else 200)
        with running_mock(["--ttft-ms", "1", "--itl-ms", "1"], log_dir, mock_cpus) as url:
            results["open_loop"] = schedule_fidelity(url, 200 if quick else 1000, 2 if quick else 10)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main("--quick" in sys.argv))
