"""The one thread that does all of the server's torch work: loading, warm-up, cache allocation and generation.

Why one thread: torch's CPU kernels run their parallel regions on OpenMP (libgomp) thread teams, a team per
thread that starts a region. Once a second thread owns a team — the main thread warming the model up, then a
generation thread serving — libgomp manages more threads than there are cores and switches every team to
throttled spinning: between two parallel regions the workers go to sleep at once, and each of the hundreds of
regions in a decode step pays a futex wake-up. Measured on 2 cores (SmolLM2-135M, fp32, a 32-row decode step,
2 torch threads): 81–93 ms when the generation thread is the only one that ever ran torch work, 133–142 ms
after the main thread had run a single parallel op — no faster than one thread (115–125 ms). The naive
scheduler with one thread has no team at all; the continuous scheduler and any ``--torch-threads`` above one
pay it. Keeping every torch call of the process on this thread keeps one team.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class ModelThread:
    """A single worker thread; ``call`` runs a function on it and waits, ``executor`` is for the schedulers."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-model")

    def call(self, work: Callable[..., T], *args: Any) -> T:
        return self.executor.submit(work, *args).result()
