"""The client's own CPU time, sampled during a run (``cpu.jsonl``).

Why: a load generator whose core is saturated sends late and stamps late, and its latencies
are then partly its own. Event-loop lag shows that only indirectly; the process's CPU time
per second of wall time shows it directly. Every ``interval_s`` the sampler stores one pair
``(perf_counter_ns, process_time_ns)`` (``time.process_time_ns``: user + system time of every
thread of this process), so the share of a core can be computed afterwards for any window
(a target, a stage) — the same way every other figure is computed from raw stamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns

from loadgen.sinks.jsonl import read_pairs, write_pairs

CPU_FILE = "cpu.jsonl"


@dataclass
class CpuSampler:
    """Samples ``(perf_counter_ns, process_time_ns)`` every ``interval_s`` on the run's event loop."""

    interval_s: float = 0.1
    samples: list[tuple[int, int]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        self.samples.append((perf_counter_ns(), time.process_time_ns()))

    def start(self) -> None:
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self.sample()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()


def cpu_share(samples: Sequence[tuple[int, int]], start_ns: int, end_ns: int) -> float | None:
    """Client CPU share of one core over a window: Δ process CPU time / Δ wall time between the
    first and the last sample inside [start_ns, end_ns] (1.0 = one core busy all the time; a
    process with several threads can exceed 1). None with fewer than two samples in the window."""
    inside = [s for s in samples if start_ns <= s[0] <= end_ns]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return None
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def write_samples(samples: Sequence[tuple[int, int]], path: Path) -> None:
    write_pairs(samples, path)


def read_samples(path: Path) -> list[tuple[int, int]]:
    """``cpu.jsonl``; absent (a run from before the sampler) gives no samples. A bad line raises
    ValueError naming the file and line."""
    return read_pairs(path, "[perf_counter_ns, process_time_ns]")
