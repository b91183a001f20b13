"""Dispatch: turn a profile's stages into requests on one asyncio loop, and stop cleanly.

Closed-loop stages keep N requests in flight (each worker sends its next request when its
previous one ends; the intended send time is that moment). Open-loop stages send on an
absolute schedule: request i is due at origin + offset_i, the loop sleeps until shortly
before and then yields until the deadline, so a late wake-up delays that one request
(send lag, recorded) and never the schedule. An optional cap bounds requests in flight;
a request held back by it keeps its intended time, so the wait shows in
``ttft_intended_ms``.

Prompts that belong to sessions (``RequestSpec.session_id``, from the ``conversations``
source) run as sessions instead: a closed loop keeps N sessions going, an open loop starts
sessions at its arrival times, and a session's turn k+1 is due when turn k's response
ended plus its think time, carrying the whole history with the server's own answers. A
failed turn ends its session (the history would be wrong). Prompts with a salt vocabulary
(``prompts.unique``) get a salt unique in the run as they are sent.

Every finished request is frozen into a ``RequestRecord`` and handed to the sinks at
once (records.jsonl is written as requests end). A stop request (SIGINT) ends issuing,
gives in-flight requests ``drain_timeout_s``, then cancels the rest as ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

from loadgen.clients.base import Client, RequestSpec
from loadgen.record import Attempt, RequestRecord
from loadgen.scaling.share import WHOLE, Share
from loadgen.sessions import Session, group_sessions, with_history
from loadgen.shapes.base import LoadShape
from loadgen.shapes.concurrency import Concurrency
from loadgen.tokens import TokenCounter

Sink = Callable[[RequestRecord], None]
# Where a stage starts: called with the stage index (-1: the warm-up) before it; returns the
# perf_counter_ns origin that every share of the run uses (``loadgen.scaling.coordinator``), or None for "now".
Gate = Callable[[int], Awaitable[int | None]]
# A request leaving: (index, stage, stage label, warm-up, intended ns, prompt id).
StartHook = Callable[[int, int, str, bool, int, str], None]

# Sleep until this long before a deadline, then yield to the loop until it passes: timers
# overshoot by up to a millisecond or more, yielding does not.
SPIN_WINDOW_NS = 2_000_000


@dataclass(frozen=True)
class Coordination:
    """How one process takes part in a run split across processes (``loadgen.scaling.coordinator``) or hosts
    (``--shard``): its share, the gate before each stage (called with the target's position and the
    stage index), and a hook as each request leaves (the target's position, then ``StartHook``'s)."""

    share: Share = WHOLE
    gate: Callable[[int, int], Awaitable[int | None]] | None = None
    on_start: Callable[[int, int, int, str, bool, int, str], None] | None = None


SOLO = Coordination()  # the whole run in this one process


class FirstGate:
    """A lone shard's gate: the run's first stage starts at ``start_at`` (unix seconds, the same on
    every host with a synchronised clock), the later ones as soon as the previous one ended."""

    def __init__(self, start_at: float | None) -> None:
        self.start_at = start_at

    async def __call__(self, _target: int, _stage: int) -> int | None:
        if self.start_at is None:
            return None
        start_at, self.start_at = self.start_at, None
        return perf_counter_ns() + max(0, int(start_at * 1e9) - time.time_ns())


@dataclass
class LoopLagMonitor:
    """Client event-loop lag: how long a callback made ready waits before it runs.

    Every ``interval_s``, a callback is scheduled with ``call_soon`` and the delay until it
    runs is one sample. High values mean the client itself is saturated and its
    timestamps are late."""

    interval_s: float = 0.01
    samples: list[tuple[int, int]] = field(default_factory=list)  # (perf_counter_ns, lag ns)
    listener: Callable[[int], None] | None = None  # each lag sample (ns), e.g. the live exporter
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.interval_s)
            scheduled = perf_counter_ns()
            loop.call_soon(self._sample, scheduled)

    def _sample(self, scheduled: int) -> None:
        lag = perf_counter_ns() - scheduled
        self.samples.append((scheduled, lag))
        if self.listener is not None:
            self.listener(lag)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Budget:
    """When a stage may issue its next request: fewer than ``requests`` issued, before ``duration_s``
    has passed, and no stop requested. ``take()`` counts the request it allows."""

    def __init__(self, shape: LoadShape, stopped: Callable[[], bool], requests: int | None = None) -> None:
        requests = shape.requests if requests is None else requests
        self.left = requests if requests is not None else -1
        self.deadline = time.monotonic() + shape.duration_s if shape.duration_s else None
        self.stopped = stopped

    def open(self, timed: bool = True) -> bool:
        """``timed=False``: ignore the deadline (an open loop ends its arrivals by their offsets)."""
        if self.stopped() or self.left == 0:
            return False
        return not timed or self.deadline is None or time.monotonic() < self.deadline

    def take(self, timed: bool = True) -> bool:
        if not self.open(timed):
            return False
        self.left -= 1
        return True


def freeze(a: Attempt, spec: RequestSpec, *, target: str, kind: str, index: int, stage: int, stage_name: str,
           warmup: bool, counter: TokenCounter | None = None, keep_text: bool = False) -> RequestRecord:
    """The record of a finished attempt (one definition for the runner and the Locust front end):
    chunk times become offsets from ``sent_ns``; the client-side token count, when ``counter`` is given."""
    client_output = client_prompt = mismatch = None
    if counter is not None and a.text_parts is not None:
        client_output = counter("".join(a.text_parts))
        client_prompt = spec.prompt_tokens
        if a.output_tokens is not None and a.error is None:
            mismatch = client_output != a.output_tokens
    sent = a.sent_ns or a.intended_ns
    return RequestRecord(
        target=target, kind=kind, stage=stage, stage_name=stage_name,
        index=index, warmup=warmup, prompt_id=spec.prompt_id, intended_ns=a.intended_ns, sent_ns=sent,
        first_byte_ns=a.first_byte_ns, first_token_ns=a.first_token_ns, first_content_ns=a.first_content_ns,
        end_ns=a.end_ns or perf_counter_ns(), chunk_offsets_ns=[t - sent for t in a.chunk_ns],
        chunk_tokens=a.chunk_tokens, chunk_tokens_exact=a.chunk_tokens_exact, status=a.status, error=a.error,
        error_detail=a.error_detail, finish_reason=a.finish_reason,
        prompt_tokens=a.prompt_tokens if a.prompt_tokens is not None else spec.prompt_tokens,
        output_tokens=a.output_tokens, expected_output_tokens=spec.max_tokens,
        client_prompt_tokens=client_prompt, client_output_tokens=client_output, token_count_mismatch=mismatch,
        output_text="".join(a.text_parts) if keep_text and a.text_parts is not None else None,
        cached_tokens=a.cached_tokens, session_id=spec.session_id, turn=spec.turn,
        connect_start_ns=a.connect_start_ns, connect_ns=a.connect_ns,
    )


class TargetRunner:
    """Runs the warm-up and every stage of a profile against one target (or its ``share`` of them,
    see ``loadgen.scaling.share``; ``gate`` aligns stage starts across the shares)."""

    def __init__(self, target: str, client: Client, prompts: Sequence[RequestSpec], sinks: Sequence[Sink], *,
                 seed: int = 0, max_in_flight: int | None = None, drain_timeout_s: float = 30.0,
                 client_counter: TokenCounter | None = None, keep_output_text: bool = False, salt_base: int = 0,
                 on_issue: Callable[[str], None] | None = None,
                 on_stage: Callable[[str, str], None] | None = None,
                 share: Share = WHOLE, gate: Gate | None = None, on_start: StartHook | None = None) -> None:
        self.target = target
        self.client = client
        self.prompts = prompts
        self.sinks = sinks
        self.seed = seed
        self.drain_timeout_s = drain_timeout_s
        self.client_counter = client_counter
        self.keep_output_text = keep_output_text
        self.salt_base = salt_base  # salts are salt_base + issue index: unique in the run, random across runs
        self.sessions = group_sessions(prompts)  # empty unless the prompts are turns of sessions
        self.on_issue = on_issue  # called with the stage label as each request is sent
        self.on_stage = on_stage  # called with (target, stage label) as each measured stage starts
        self.share = share
        self.gate = gate
        self.on_start = on_start
        self._cap = max_in_flight
        self._gate = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._stop = asyncio.Event()
        self._issued = 0
        self._in_flight: set[asyncio.Future[object]] = set()
        self._ended_stages: set[int] = set()  # stages told to stop issuing (``end_stage``: saturation)

    def split_in_flight_cap(self, share: Share) -> None:
        """Run only ``share`` of ``max_in_flight`` (``--workers``/``--shard``: each process its part of the cap)."""
        if self._cap is not None and not share.whole:
            self._cap = max(1, share.part(self._cap))
            self._gate = asyncio.Semaphore(self._cap)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def request_stop(self) -> None:
        self._stop.set()

    def end_stage(self, stage: int) -> None:
        """Stop issuing in stage ``stage`` (its requests in flight finish); the next stage starts."""
        self._ended_stages.add(stage)

    async def run(self, stages: Sequence[LoadShape], warmup: int = 0) -> None:
        origin = await self._origin(-1)  # the target's start: every share begins it together
        if origin is not None and not warmup:
            await self._wait_until(origin)
        if warmup:
            # As many at once as the first stage will have in flight, so that every pooled
            # connection is open before measuring starts (capped by the warm-up count).
            width = (stages[0].closed_loop_width() if stages else None) or self._cap or 8
            shape = Concurrency(concurrency=max(1, min(warmup, width)), requests=warmup)
            await self._closed_loop(shape, stage=-1, stage_name="warmup", warmup=True, origin=origin)
        for index, shape in enumerate(stages):
            if self.stopped:
                break
            await self._until_stopped(self._preconnect(shape))
            origin = await self._origin(index)
            if self.stopped:
                break
            if self.on_stage is not None:
                self.on_stage(self.target, shape.label)
            if shape.closed_loop_width() is not None:
                await self._closed_loop(shape, index, shape.label, origin=origin)
            else:
                await self._open_loop(shape, index, shape.label, origin)

    async def _origin(self, stage: int) -> int | None:
        """The stage's start on the run's common clock (``gate``), or None: start now."""
        return await self.gate(stage) if self.gate is not None else None

    async def _until_stopped(self, work: Coroutine[Any, Any, None]) -> None:
        """``work``, abandoned (cancelled) as soon as a stop is asked: opening a stage's connections can wait up
        to the connect timeout, and SIGINT/SIGTERM must not wait with it (issue 29)."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not self.stopped:
            task.result()

    async def _preconnect(self, shape: LoadShape) -> None:
        """Open the stage's connections before its first request (``load.preconnect``; the default, a
        closed loop's width, is what its first wave needs at once; see ``LoadShape.preconnect``)."""
        count = shape.connections_to_open()
        if self._cap is not None:
            count = min(count, self._cap)
        preconnect = getattr(self.client, "preconnect", None)  # optional for a client kind
        if count and preconnect is not None:
            await preconnect(count)

    # -- one request ---------------------------------------------------------------------
    async def _send_one(self, stage: int, stage_name: str, warmup: bool, intended_ns: int,
                        spec: RequestSpec | None = None) -> RequestRecord:
        """Send one request (the next prompt in rotation unless ``spec`` is given); its record goes to
        every sink as soon as it ends, and is returned."""
        index = self.share.index(self._issued)
        self._issued += 1
        if spec is None:
            spec = self.prompts[index % len(self.prompts)]
        if spec.salt_words:
            spec = spec.salted(self.salt_base + index)
        attempt = Attempt(intended_ns=intended_ns)
        if self.client_counter is not None or self._keeps_text(spec):
            attempt.text_parts = []
        if self.on_issue is not None:
            self.on_issue(stage_name)
        if self.on_start is not None:
            self.on_start(index, stage, stage_name, warmup, intended_ns, spec.prompt_id)
        try:
            await self.client.send(spec, attempt)
        finally:
            record = self._freeze(attempt, spec, index, stage, stage_name, warmup)
            for sink in self.sinks:
                sink(record)
        return record

    def _keeps_text(self, spec: RequestSpec) -> bool:
        """Output text is kept to compare outputs (``agreement``) and to carry a session's history."""
        return self.keep_output_text or spec.session_id is not None

    def _freeze(self, a: Attempt, spec: RequestSpec, index: int, stage: int, stage_name: str,
                warmup: bool) -> RequestRecord:
        return freeze(a, spec, target=self.target, kind=getattr(self.client, "kind", ""), index=index, stage=stage,
                      stage_name=stage_name, warmup=warmup, counter=self.client_counter,
                      keep_text=self._keeps_text(spec))

    # -- load shapes ---------------------------------------------------------------------
    async def _closed_loop(self, shape: LoadShape, stage: int, stage_name: str, warmup: bool = False,
                           origin: int | None = None) -> None:
        full = shape.closed_loop_width()
        assert full is not None
        width = self.share.part(full)
        requests = self.share.closed_requests(shape.requests, full) if shape.requests is not None else None
        budget = Budget(shape, lambda: self.stopped or stage in self._ended_stages, requests)
        if origin is not None:
            await self._wait_until(origin)
        if self.sessions and not warmup:
            started = itertools.count()

            async def worker() -> None:
                while budget.open():
                    await self._run_session(self._session(self.share.index(next(started))), stage, stage_name,
                                            budget, perf_counter_ns())
        else:
            async def worker() -> None:
                while budget.take():
                    await self._send_one(stage, stage_name, warmup, perf_counter_ns())

        workers = [asyncio.ensure_future(worker()) for _ in range(width)]
        self._in_flight.update(workers)
        try:
            await self._until_done_or_stopped(workers)
        finally:
            self._in_flight.difference_update(workers)

    async def _open_loop(self, shape: LoadShape, stage: int, stage_name: str, origin: int | None = None) -> None:
        """Arrival i of the full schedule is due at ``origin`` + its offset; this share sends its own
        (``Share.mine``) and counts every arrival against the stage's request budget. Sessions take
        their budget turn by turn, so a share of sessions gets its part of the budget instead."""
        rng = random.Random(f"{self.seed}:{stage}")
        requests = self.share.part(shape.requests) if self.sessions and shape.requests is not None else None
        budget = Budget(shape, lambda: self.stopped or stage in self._ended_stages, requests)
        started = itertools.count()
        origin = origin if origin is not None else perf_counter_ns() + 1_000_000
        end_offset = shape.duration_s if shape.duration_s is not None else float("inf")
        tasks: set[asyncio.Future[object]] = set()
        for arrival, (offset, spec) in enumerate(shape.schedule(rng, self.prompts)):
            if offset >= end_offset or not budget.open(timed=False):
                break
            if not self.share.mine(arrival):
                if not self.sessions:
                    budget.take(timed=False)
                continue
            due = origin + int(offset * 1e9)
            await self._wait_until(due)
            if self.stopped:
                break
            if self.sessions:  # a session arrives; its turns take from the budget as they are sent
                job: Awaitable[object] = self._run_session(self._session(self.share.index(next(started))), stage,
                                                           stage_name, budget, due)
            else:
                budget.take(timed=False)
                if self._gate is not None:
                    await self._gate.acquire()
                job = self._send_one(stage, stage_name, False, due, spec)
            task = asyncio.ensure_future(job)
            if self._gate is not None and not self.sessions:
                task.add_done_callback(lambda _: self._gate.release())  # type: ignore[union-attr]
            tasks.add(task)
            self._in_flight.add(task)
            task.add_done_callback(tasks.discard)
            task.add_done_callback(self._in_flight.discard)
        if tasks:
            await self._until_done_or_stopped(list(tasks))

    # -- sessions ------------------------------------------------------------------------
    def _session(self, number: int) -> Session:
        """The ``number``-th session started in this target's run (the source's sessions in turn;
        a session run again gets ``~pass`` on its id, so every session in the records is one run)."""
        turns = self.sessions[number % len(self.sessions)]
        passes = number // len(self.sessions)
        sid = turns[0].session_id or str(number)
        return Session(sid if passes == 0 else f"{sid}~{passes}", turns)

    async def _run_session(self, session: Session, stage: int, stage_name: str, budget: Budget,
                           start_ns: int) -> None:
        """Turn 1 is due at ``start_ns``; turn k+1 at turn k's end + its think time, with the history."""
        history: list[dict[str, str]] = []
        due = start_ns
        for spec in session.turns:
            if history:
                due += int(spec.think_s * 1e9)
                await self._wait_until(due)
            if not budget.take():
                return
            if self._gate is not None:
                await self._gate.acquire()
            try:
                record = await self._send_one(stage, stage_name, False, due, with_history(spec, history, session.id))
            finally:
                if self._gate is not None:
                    self._gate.release()
            if not record.ok:
                return
            history += [{"role": "user", "content": spec.prompt},
                        {"role": "assistant", "content": record.output_text or ""}]
            due = record.end_ns

    async def _wait_until(self, due_ns: int) -> None:
        remaining = due_ns - perf_counter_ns()
        if remaining > SPIN_WINDOW_NS:
            try:
                await asyncio.wait_for(self._stop.wait(), (remaining - SPIN_WINDOW_NS) / 1e9)
                return  # stopped while waiting
            except TimeoutError:
                pass
        while perf_counter_ns() < due_ns and not self.stopped:
            await asyncio.sleep(0)

    async def _until_done_or_stopped(self, tasks: Sequence[asyncio.Future[Any]]) -> None:
        """Wait for the tasks; on a stop request, drain for ``drain_timeout_s``, then cancel."""
        pending = {t for t in tasks if not t.done()}
        stop_waiter = asyncio.ensure_future(self._stop.wait())
        try:
            while pending and not self.stopped:
                _done, pending = await asyncio.wait(pending | {stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(stop_waiter)
            if pending:
                _, pending = await asyncio.wait(pending, timeout=self.drain_timeout_s)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            stop_waiter.cancel()
