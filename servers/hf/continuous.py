"""Continuous (iteration-level) batching for the baseline server: ``--scheduler continuous``.

Why it exists: to measure how much of vLLM's lead over a plain HF server comes from scheduling
alone. It changes only *when* the model runs which sequence, never *how* a token is chosen:

* every step is one forward pass over all running sequences (one new token each);
* a new request is admitted when ``--max-num-seqs`` and the KV-cache token budget allow
  (``kv_cache.TokenBudget``). Into an empty batch it is prefilled alone — the same forward pass the
  naive scheduler makes, so a lone request's tokens are the naive scheduler's bit for bit. While a batch
  runs, its prompt is prefilled in chunks mixed into the decode steps (``chunked``): each step carries
  every running sequence's next token plus up to ``--max-num-batched-tokens`` − (running) tokens of
  the prompts being prefilled, oldest first, so no step is longer than the budget;
  with its last chunk the sequence samples its first token and joins the batch;
* a finished or cancelled sequence leaves at once and frees its rows and blocks;
* tokens are sampled per sequence with ``runner.sample`` and fed to ``Sequence.append``, the same
  code paths as the naive scheduler (sampling parameters, seeds, stop strings, ``ignore_eos``,
  ``min_tokens``, usage, streaming, metrics).

What it does not do (vLLM does): preemption (reservations make it unnecessary), prefix caching, CUDA
graphs, paged attention kernels — a batched step attends over a padded, masked cache (``chunked.decode_attention``:
two batched matmuls over the cache's rows; a lone sequence keeps the model's own SDPA call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import torch
from transformers import DynamicCache

from servers.hf import chunked
from servers.hf.kv_cache import BatchKVCache, TokenBudget
from servers.hf.metrics import ServerMetrics
from servers.hf.runner import ModelRunner, greedy_tokens
from servers.hf.scheduler_base import QueueFull
from servers.hf.sequence import Sequence

log = logging.getLogger(__name__)


class _Running:
    """A sequence in the batch: its sampler state and the token to feed at the next step."""

    __slots__ = ("generator", "next_token", "seq")

    def __init__(self, seq: Sequence, generator: torch.Generator | None, next_token: int) -> None:
        self.seq, self.generator, self.next_token = seq, generator, next_token


class _Prefilling:
    """The sequence whose prompt is being prefilled in chunks: its own cache and how far it has got."""

    __slots__ = ("cache", "done", "generator", "seq")

    def __init__(self, seq: Sequence, generator: torch.Generator | None, cache: DynamicCache) -> None:
        self.seq, self.generator, self.cache, self.done = seq, generator, cache, 0


class ContinuousScheduler:
    def __init__(self, runner: ModelRunner, metrics: ServerMetrics, max_queue: int, max_num_seqs: int,
                 kv_cache_tokens: int, max_num_batched_tokens: int = 2048,
                 executor: ThreadPoolExecutor | None = None) -> None:
        self.runner = runner
        self.max_num_batched_tokens = max_num_batched_tokens
        self._prefilling: list[_Prefilling] = []  # admitted, prompt not yet fully prefilled (FIFO)
        chunked.enable(runner.model)
        self.metrics = metrics
        self.max_queue = max_queue
        self.max_num_seqs = max_num_seqs
        self.budget = TokenBudget(kv_cache_tokens)
        config = runner.model.config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self.kv = BatchKVCache(config.num_hidden_layers, kv_heads, head_dim, runner.model.dtype, runner.device,
                               max_len=runner.max_model_len, rows=min(4, max_num_seqs), max_rows=max_num_seqs)
        self._lock = threading.Lock()  # guards _waiting between the event loop and the generation thread
        self._waiting: deque[Sequence] = deque()
        self._head_blocked_since: dict[str, float] = {}  # request id → when it first stood refused at the head
        self._running: list[_Running] = []
        self._wake = threading.Event()
        self._stopping = False
        # The generation thread: the server passes its model thread (model_thread.py), tests get their own.
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-continuous")
        self._task: asyncio.Future[None] | None = None
        self._publish()

    # -- the interface the app uses (event loop thread) ------------------------------------------
    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def num_running(self) -> int:
        """Admitted sequences: decoding, or having their prompt prefilled in chunks (as vLLM counts them)."""
        return len(self._running) + len(self._prefilling)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().run_in_executor(self._executor, self._loop)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        self._executor.shutdown(wait=True)

    def submit(self, seq: Sequence) -> None:
        """Queues a request; refuses at once one that can never fit the KV-cache budget (BudgetTooSmall)."""
        self.budget.check_fits(len(seq.prompt_ids) + seq.params.max_tokens)
        with self._lock:
            # Queued requests take the free batch rows first; only those beyond them count against
            # ``max_queue`` (as the naive scheduler's idle model): ``waiting - free < max_queue``.
            free = max(0, self.max_num_seqs - len(self._running))
            if len(self._waiting) >= self.max_queue + free:
                raise QueueFull(self.max_queue)
            self._waiting.append(seq)
        self._publish()
        self._wake.set()

    def cancel(self, seq: Sequence) -> None:
        """The client went away: leave the queue now, or the batch at the next step."""
        seq.cancelled.set()
        with self._lock:
            try:
                self._waiting.remove(seq)
            except ValueError:
                return
            self._head_blocked_since.pop(seq.request_id, None)
        seq.end("abort")
        self.metrics.on_finished(seq)
        self._publish()
        self._wake.set()

    def _publish(self) -> None:
        self.metrics.set_queue_depths(self.num_running, len(self._waiting))
        self.metrics.set_kv_cache_usage(self.budget.usage)

    # -- the generation thread --------------------------------------------------------------------
    def _loop(self) -> None:
        # Every cache tensor is made and written in inference mode (a tensor made in it cannot be written
        # outside it, and the batch cache grows both in decode steps and on admission).
        with torch.inference_mode():
            self._run()

    def _run(self) -> None:
        while not self._stopping:
            try:
                self._admit()
                if not self._running and not self._prefilling:
                    self._wake.wait(timeout=0.5)
                    self._wake.clear()
                    continue
                if not self._prefilling:
                    self._step()
                else:
                    self._mixed_step()
            except Exception as exc:  # a server fault fails the batch; the thread and the server go on
                log.exception("continuous scheduler step failed")
                self._fail_batch(f"{type(exc).__name__}: {exc}")
        self._fail_batch(None)
        with self._lock:
            waiting, self._waiting = list(self._waiting), deque()
        for seq in waiting:
            seq.end("abort")
            self.metrics.on_finished(seq)

    def _fail_batch(self, message: str | None) -> None:
        """Ends every running sequence and the one prefilling (``error`` with ``message``, or ``abort`` on
        shutdown) and starts an empty cache, without relying on the state that may have just failed."""
        running, self._running = self._running, []
        prefilling, self._prefilling = self._prefilling, []
        self.kv.lengths = []
        reason = "abort" if message is None else "error"
        for item in running:
            self._finish(item.seq, reason, message or "")
        for pre in prefilling:
            self._finish(pre.seq, reason, message or "")

    def _admit(self) -> None:
        """FIFO: admits from the head of the queue while a row and enough KV-cache budget are free.

        ``hf:admission_wait_seconds`` is how long a request stood at the head of the queue, refused for
        want of a row or KV-cache blocks (0 when admitted as soon as it was first in line); the time
        spent behind other requests is in ``hf:request_queue_time_seconds``.
        """
        while True:
            with self._lock:
                if not self._waiting:
                    return
                seq = self._waiting[0]
                tokens = len(seq.prompt_ids) + seq.params.max_tokens
                busy = len(self._running) + len(self._prefilling)
                if busy >= self.max_num_seqs or not self.budget.can_reserve(tokens):
                    if seq.request_id not in self._head_blocked_since:
                        self._head_blocked_since[seq.request_id] = time.perf_counter()
                    return  # the head waits for a row or blocks; nobody overtakes it
                self._waiting.popleft()
                self.budget.reserve(seq.request_id, tokens)
                blocked_since = self._head_blocked_since.pop(seq.request_id, None)
            if self._schedule(seq, blocked_since):
                generator = self.runner.generator(seq.params.seed)
                alone = not self._running and not self._prefilling
                if alone and len(seq.prompt_ids) <= self.max_num_batched_tokens:
                    self._prefill(seq, generator)  # nothing to stall: alone, as the naive scheduler
                else:
                    self._prefilling.append(_Prefilling(seq, generator,
                                                        DynamicCache(config=self.runner.model.config)))
            self._publish()

    def _schedule(self, seq: Sequence, blocked_since: float | None) -> bool:
        """Marks the start of a sequence's generation; False (and ends it) when its client already left."""
        seq.scheduled = time.perf_counter()
        self.metrics.on_scheduled(seq)
        self.metrics.on_admitted(0.0 if blocked_since is None else seq.scheduled - blocked_since)
        if seq.cancelled.is_set():
            self._finish(seq, "abort")
            return False
        return True

    def _prefill(self, seq: Sequence, generator: torch.Generator | None) -> None:
        try:
            logits, cache = self.runner.prefill(seq.prompt_ids)
            self._join(seq, generator, logits, cache)
        except Exception as exc:
            log.exception("prefill failed for %s", seq.request_id)
            self._finish(seq, "error", f"{type(exc).__name__}: {exc}")

    def _join(self, seq: Sequence, generator: torch.Generator | None, logits: torch.Tensor,
              cache: DynamicCache) -> None:
        """A prefilled sequence samples its first token and, unless that ends it, joins the batch."""
        token = self.runner.sample(logits, seq.params, generator, seq.suppressed_token_ids())
        previous = seq.last_token
        seq.append(token)
        self.metrics.on_token(seq, previous)
        if seq.is_finished:
            self._finish(seq, None)
            return
        self.kv.add(cache, len(seq.prompt_ids))
        self._running.append(_Running(seq, generator, token))

    def _step(self) -> None:
        """A decode step: one new token for every running sequence, the mixed step's pass without chunks."""
        self.metrics.on_step(len(self._running))
        self._sample_batch(chunked.decode_step(self.runner.model, self.kv, [item.next_token for item in self._running]))

    def _mixed_step(self) -> None:
        """One forward pass: every running sequence's next token, then chunks of the prefilling prompts (FIFO)
        until the step holds ``max_num_batched_tokens`` tokens (at least one prompt token)."""
        for pre in [p for p in self._prefilling if p.seq.cancelled.is_set()]:
            self._prefilling.remove(pre)
            self._finish(pre.seq, "abort")
        if not self._prefilling:
            return
        batch = len(self._running)
        room = max(1, self.max_num_batched_tokens - batch)
        planned: list[tuple[_Prefilling, int]] = []
        for pre in self._prefilling:
            n = min(len(pre.seq.prompt_ids) - pre.done, room)
            if n <= 0:
                break
            planned.append((pre, n))
            room -= n
        ids = [item.next_token for item in self._running]
        positions = list(self.kv.lengths)
        keep = list(range(batch))
        completed: list[tuple[_Prefilling, int]] = []  # (sequence, its row in the kept logits)
        for pre, n in planned:
            ids += pre.seq.prompt_ids[pre.done:pre.done + n]
            positions += range(pre.done, pre.done + n)
            if pre.done + n == len(pre.seq.prompt_ids):
                completed.append((pre, len(keep)))
                keep.append(len(ids) - 1)
        self.metrics.on_step(batch + len(planned))
        mask = self.kv.begin_step() if batch else None
        step = chunked.MixedStep(self.kv, batch, mask, [chunked.Chunk(pre.cache, pre.done, n) for pre, n in planned])
        logits = chunked.forward(self.runner.model, step, ids, positions, keep)
        if batch:
            self.kv.end_step()
        for pre, n in planned:
            pre.done += n
        self._sample_batch(logits[:batch])
        for pre, row in completed:
            self._prefilling.remove(pre)
            self._join(pre.seq, pre.generator, logits[row], pre.cache)

    def _sample_batch(self, logits: torch.Tensor) -> None:
        """One token per running sequence (row i of ``logits`` is sequence i); finished ones leave."""
        leaving: list[tuple[_Running, str | None]] = []
        greedy = greedy_tokens(logits, [item.seq.params for item in self._running],
                               [item.seq.suppressed_token_ids() for item in self._running])
        for row, item in enumerate(self._running):
            seq = item.seq
            if seq.cancelled.is_set():
                leaving.append((item, "abort"))
                continue
            token = greedy[row]
            if token is None:
                token = self.runner.sample(logits[row], seq.params, item.generator, seq.suppressed_token_ids())
            previous = seq.last_token
            seq.append(token)
            self.metrics.on_token(seq, previous)
            item.next_token = token
            if seq.is_finished:
                leaving.append((item, None))
        for item, reason in leaving:
            self._leave(item, reason)

    def _leave(self, item: _Running, reason: str | None, message: str = "") -> None:
        row = self._running.index(item)
        moved = self.kv.remove(row)
        if moved is not None:
            self._running[row] = self._running[moved]
        self._running.pop()
        self._finish(item.seq, reason, message)

    def _finish(self, seq: Sequence, reason: str | None, message: str = "") -> None:
        """Ends a sequence (``reason`` None: it finished by itself) and frees its blocks."""
        if reason is not None and not seq.is_finished:
            seq.end(reason, message)
        self.budget.release(seq.request_id)
        if seq.is_finished:
            self.metrics.on_finished(seq)
        self._publish()
