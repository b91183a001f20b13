"""The naive scheduler, the baseline's default: which sequence the model works on, one at a time.

Naive scheduling is what a plain Hugging Face server does: one request at a time, in
arrival order, each generated to the end before the next starts. That is the reference
every engine's speed-up is measured against, so it is naive by design but never broken:
the queue is bounded (a full queue answers 429 at once), a request whose client went
away leaves the queue immediately or stops between two decode steps, and the model runs
in one dedicated thread so the event loop (``/health``, ``/metrics``, new requests)
never waits for a forward pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from servers.hf.continuous import ContinuousScheduler
from servers.hf.metrics import ServerMetrics
from servers.hf.runner import ModelRunner
from servers.hf.scheduler_base import QueueFull, Scheduler
from servers.hf.sequence import Sequence

log = logging.getLogger(__name__)

SCHEDULERS = ("naive", "continuous")


class NaiveScheduler:
    """FIFO, one generation at a time; ``max_queue`` bounds the waiting requests."""

    def __init__(self, runner: ModelRunner, metrics: ServerMetrics, max_queue: int,
                 executor: ThreadPoolExecutor | None = None) -> None:
        self.runner = runner
        self.metrics = metrics
        self.max_queue = max_queue
        self._waiting: deque[Sequence] = deque()
        self._running: Sequence | None = None
        self._wake = asyncio.Event()
        # The generation thread: the server passes its model thread (model_thread.py), tests get their own.
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-generate")
        self._task: asyncio.Task[None] | None = None

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def num_running(self) -> int:
        return 0 if self._running is None else 1

    def _publish_depths(self) -> None:
        self.metrics.set_queue_depths(self.num_running, self.num_waiting)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="naive-scheduler")

    async def stop(self) -> None:
        for seq in list(self._waiting):
            self.cancel(seq)
        if self._running is not None:
            self._running.cancelled.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    def submit(self, seq: Sequence) -> None:
        # A request that arrives while the model is idle is about to run, not to wait: it
        # does not count against the queue even before the scheduler task has picked it up.
        free_slots = 0 if self._running is not None else 1
        if len(self._waiting) >= self.max_queue + free_slots:
            raise QueueFull(self.max_queue)
        self._waiting.append(seq)
        self._publish_depths()
        self._wake.set()

    def cancel(self, seq: Sequence) -> None:
        """Called when the client went away: dequeue at once, or stop after the current step."""
        seq.cancelled.set()
        try:
            self._waiting.remove(seq)
        except ValueError:
            return  # running (the generation thread ends it) or already finished
        seq.end("abort")
        self.metrics.on_finished(seq)
        self._publish_depths()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            seq = self._waiting.popleft()
            self._running = seq
            self._publish_depths()
            try:
                await loop.run_in_executor(self._executor, self._generate, seq)
            finally:
                self._running = None
                self._publish_depths()

    def _generate(self, seq: Sequence) -> None:
        """Runs in the generation thread: prefill, then decode until the sequence finishes."""
        seq.scheduled = time.perf_counter()
        self.metrics.on_scheduled(seq)
        try:
            if seq.cancelled.is_set():
                seq.end("abort")
                return
            generator = self.runner.generator(seq.params.seed)
            logits, cache = self.runner.prefill(seq.prompt_ids)
            while True:
                token = self.runner.sample(logits, seq.params, generator, seq.suppressed_token_ids())
                previous = seq.last_token
                seq.append(token)
                self.metrics.on_token(seq, previous)
                if seq.is_finished:
                    return
                if seq.cancelled.is_set():
                    seq.end("abort")
                    return
                logits = self.runner.decode(token, cache)
        except Exception as exc:  # a server fault: the request fails, the server goes on
            log.exception("generation failed for %s", seq.request_id)
            seq.end("error", f"{type(exc).__name__}: {exc}")
        finally:
            if seq.is_finished:
                self.metrics.on_finished(seq)


def default_kv_cache_tokens(max_num_seqs: int, max_model_len: int) -> int:
    """``max_num_seqs`` x 1024 tokens, but never less than one full context: a request without
    ``max_tokens`` (chat's default is the rest of the context) reserves ``max_model_len`` tokens, and a
    default budget smaller than that would refuse every such request with a 400."""
    return max(max_num_seqs * 1024, max_model_len)


def make_scheduler(name: str, runner: ModelRunner, metrics: ServerMetrics, max_queue: int,
                   max_num_seqs: int = 32, kv_cache_tokens: int | None = None,
                   max_num_batched_tokens: int = 2048, executor: ThreadPoolExecutor | None = None) -> Scheduler:
    if name == "naive":
        return NaiveScheduler(runner, metrics, max_queue, executor)
    if name == "continuous":
        return ContinuousScheduler(runner, metrics, max_queue, max_num_seqs,
                                   kv_cache_tokens or default_kv_cache_tokens(max_num_seqs, runner.max_model_len),
                                   max_num_batched_tokens, executor)
    raise ValueError(f"unknown scheduler {name!r}; choose one of {SCHEDULERS}")
