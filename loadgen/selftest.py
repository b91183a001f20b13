"""``loadgen selftest``: how far this client can be trusted on this machine.

Starts the synthetic server (``servers.mock``, pinned to the other cores) and drives it
with the real runner and clients, pinned to ONE core, then compares what the client
measured with what the mock recorded that it did (its ``mock_ttft_seconds`` and
``mock_itl_seconds``):

1. bias at low load: mean TTFT and mean TPOT against the mock's truth at concurrency 8;
2. capacity: 500 and 1,000 concurrent streams (after one warm-up round that opens every
   connection) — achieved token events per second and the TTFT/TPOT bias while they run;
3. cold starts, no warm-up (issue 16): 500 streams (100 tokens, ITL 20 ms) and concurrency 200
   (32 tokens, ITL 10 ms), TTFT/TPOT/ITL bias with the first wave counted;
4. schedule fidelity: an open-loop constant rate with tiny responses — achieved vs asked
   rate, send-lag p99;
5. capacity on one client core (issue 16): the mock writes 4 events per write
   (``--events-per-write``), so it can offer more token events per second than the client can
   read; and ``--workers 2``: the cold-start settings again in two client processes. Both workers
   share the client's core here (a 2-core machine has one core for the client): this shows their
   accuracy, not the capacity a second core adds.

Every setting also states the client's own cost on this machine, ``client_cpu_us_per_event``: the CPU of
the client process (every thread; and the ``--workers`` processes) over the whole run, set-up, warm-up and
summary included, per streamed event (issue 27; ``benchmarks/client_cost.py`` sets it beside vLLM's
benchmark client).

Figures are printed, not asserted: speed is measured here, correctness in the tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx

from loadgen import metrics as m
from loadgen.api import Hooks, RunResult, run
from loadgen.config import Profile
from stack.process import ManagedProcess, free_port


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


def mock_profile(url: str, load: dict[str, Any], output_tokens: int, folder: Path, **fields: Any) -> Profile:
    """A one-stage profile against the mock: 64 short ShareGPT-format prompts (the mock does not tokenize)."""
    dataset = folder / "selftest-prompts.json"
    if not dataset.exists():
        dataset.write_text(json.dumps([{"id": str(i), "conversations": [{"from": "human", "value": f"prompt {i}"}]}
                                       for i in range(64)]))
    return Profile.model_validate({
        "name": "selftest", "model": "mock", "targets": [{"name": "mock", "kind": "openai-completions", "url": url}],
        "prompts": {"source": "sharegpt", "dataset": str(dataset), "count": 64, "output_tokens": output_tokens},
        "load": load, "metrics": {"enabled": False}, "request": {"stall_timeout_s": 60}, **fields})


def drive(profile: Profile, folder: Path, on_stage: Callable[[str, str], None] | None = None) -> RunResult:
    """One run through the library (``loadgen.api.run``), without the HTML report."""
    out = Path(tempfile.mkdtemp(dir=folder))
    return run(profile, out, hooks=Hooks(on_stage=on_stage), report=False)


def _p99(result: RunResult, name: str) -> float:
    s = result.summary.targets["mock"].stats(name)
    return round(s.p99, 3) if s else float("nan")


def bias(url: str, concurrency: int, requests: int, output_tokens: int, folder: Path,
         warmup: bool = True, workers: int = 1) -> dict[str, float]:
    """Steady state after a warm-up round that opens every connection (``warmup``; without it, a cold
    start: the stage's connections are opened by ``load.preconnect``'s default and the first wave
    counts): the truth is the mock's books over the measured requests only (scraped as the measured
    stage starts)."""
    before: list[str] = []
    profile = mock_profile(url, {"type": "concurrency", "concurrency": concurrency, "requests": requests},
                           output_tokens, folder, warmup=concurrency if warmup else 0, workers=workers)
    cpu_before = _cpu_s()
    result = drive(profile, folder, on_stage=lambda *_: before.append(httpx.get(f"{url}/metrics").text))
    cpu_s = _cpu_s() - cpu_before
    truth = mock_truth(before[0], httpx.get(f"{url}/metrics").text)
    records = m.measured(result.records)
    ok = [r for r in records if r.ok]
    ttft = m.stats(m.ttft_ms(r) for r in ok)
    tpot = m.stats(m.tpot_ms(r) for r in ok)
    itl = m.stats(gap for r in ok for gap in m.itl_gaps_ms(r))
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
        "loop_lag_p99_ms": _p99(result, "loop_lag_ms"),
        "itl_bias_ms": round((itl.mean if itl else float("nan")) - truth.itl_ms, 3),
        "client_cpu_us_per_event": round(cpu_s / events * 1e6, 2) if events else float("nan"),
    }


def _cpu_s() -> float:
    """CPU seconds of this process (every thread) and of its finished children (``--workers`` processes):
    the client's whole cost, set-up, warm-up, stages and summary included (the mock is not finished yet)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def schedule_fidelity(url: str, rate: float, duration_s: float, folder: Path) -> dict[str, float]:
    profile = mock_profile(url, {"type": "rate", "rate": rate, "arrival": "constant", "duration_s": duration_s},
                           1, folder)
    result = drive(profile, folder)
    records = result.records
    sends = sorted(r.sent_ns for r in records)
    achieved = (len(sends) - 1) / ((sends[-1] - sends[0]) / 1e9) if len(sends) > 1 else 0.0
    lag = m.stats(m.send_lag_ms(r) for r in records)
    return {
        "asked_rate": rate, "achieved_rate": round(achieved, 1), "requests": len(records),
        "failed": sum(1 for r in records if not r.ok),
        "send_lag_p50_ms": round(lag.p50, 3) if lag else float("nan"),
        "send_lag_p99_ms": round(lag.p99, 3) if lag else float("nan"),
        "loop_lag_p99_ms": _p99(result, "loop_lag_ms"),
    }


# name: (streams, requests, output tokens, mock ITL ms), no warm-up (the settings issue 16 measured)
COLD = {"cold_c500": (500, 1500, 100, 20), "cold_c200": (200, 2000, 32, 10)}


def capacity(log_dir: Path, mock_cpus: set[int] | None, quick: bool) -> dict[str, object]:
    """Token events per second on the client's one core, offered more than it can read (1,000 streams
    at one event per 10 ms: 100,000 a second while all decode), and the cold-start settings in
    ``--workers 2``."""
    found: dict[str, object] = {}
    streams = 100 if quick else 1000
    with running_mock(["--ttft-ms", "50", "--itl-ms", "10", "--events-per-write", "4"], log_dir, mock_cpus) as url:
        found["capacity_1core"] = bias(url, streams, streams * 2, 40 if quick else 400, log_dir)
    for name, (streams, requests, tokens, itl) in COLD.items():
        with running_mock(["--ttft-ms", "50", "--itl-ms", str(itl)], log_dir, mock_cpus) as url:
            found[f"workers2_{name}"] = bias(url, streams // (5 if quick else 1), requests // (10 if quick else 1),
                                             tokens, log_dir, warmup=False, workers=2)
    return found


def main(quick: bool = False) -> int:
    cpus = sorted(os.sched_getaffinity(0))
    client_cpu, mock_cpus = ({cpus[0]}, set(cpus[1:])) if len(cpus) > 1 else (None, None)
    if client_cpu:
        os.sched_setaffinity(0, client_cpu)
    results: dict[str, object] = {"client_cpu": sorted(client_cpu or []), "mock_cpus": sorted(mock_cpus or [])}
    with TemporaryDirectory() as tmp:
        log_dir = Path(tmp)
        with running_mock(["--ttft-ms", "50", "--itl-ms", "10"], log_dir, mock_cpus) as url:
            results["bias_c8"] = bias(url, 8, 32 if quick else 200, 64, log_dir)
        for streams in ((100,) if quick else (500, 1000)):
            with running_mock(["--ttft-ms", "50", "--itl-ms", "20"], log_dir, mock_cpus) as url:
                results[f"streams_c{streams}"] = bias(url, streams, streams * (1 if quick else 2),
                                                      100 if quick else 200, log_dir)
        # Cold starts (issue 16): no warm-up, the first wave counts; 500 streams and concurrency 200.
        for name, (streams, requests, tokens, itl) in COLD.items():
            with running_mock(["--ttft-ms", "50", "--itl-ms", str(itl)], log_dir, mock_cpus) as url:
                results[name] = bias(url, streams // (5 if quick else 1), requests // (10 if quick else 1), tokens,
                                     log_dir, warmup=False)
        with running_mock(["--ttft-ms", "1", "--itl-ms", "1"], log_dir, mock_cpus) as url:
            results["open_loop"] = schedule_fidelity(url, 200 if quick else 1000, 2 if quick else 10, log_dir)
        results.update(capacity(log_dir, mock_cpus, quick))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main("--quick" in sys.argv))
