"""The continuous scheduler changes when the model runs, never which tokens come out.

In-process tests drive the naive and the continuous scheduler with the same requests on the
real model (fp32, CPU) and compare token ids; one test goes through the real HTTP server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engines.baseline.launch import baseline_process
from servers.hf.continuous import ContinuousScheduler
from servers.hf.kv_cache import BudgetTooSmall
from servers.hf.metrics import ServerMetrics
from servers.hf.naive import NaiveScheduler
from servers.hf.runner import ModelRunner
from stack.process import free_port
from tests.integration.helpers import metric, stream
from tests.integration.scheduling import REQUESTS, drive, make_seq


@pytest.fixture(scope="module")
def runner(model_dir: Path) -> ModelRunner:
    return ModelRunner(model_dir)


def continuous(runner: ModelRunner, max_num_seqs: int = 4, kv_cache_tokens: int = 4096,
               metrics: ServerMetrics | None = None) -> ContinuousScheduler:
    return ContinuousScheduler(runner, metrics or ServerMetrics("m"), max_queue=64, max_num_seqs=max_num_seqs,
                               kv_cache_tokens=kv_cache_tokens)


@pytest.fixture(scope="module")
def naive_outputs(runner: ModelRunner) -> list[list[int]]:
    seqs = [make_seq(runner, i, p, n) for i, (p, n, _) in enumerate(REQUESTS)]
    asyncio.run(drive(NaiveScheduler(runner, ServerMetrics("m"), 64), seqs, [0.0] * len(seqs)))
    return [s.output_ids for s in seqs]


def test_greedy_outputs_equal_the_naive_schedulers_under_staggered_arrivals(
        runner: ModelRunner, naive_outputs: list[list[int]]) -> None:
    metrics = ServerMetrics("m")
    seqs = [make_seq(runner, i, p, n) for i, (p, n, _) in enumerate(REQUESTS)]
    asyncio.run(drive(continuous(runner, metrics=metrics), seqs, [d for _, _, d in REQUESTS]))
    assert [s.output_ids for s in seqs] == naive_outputs
    assert all(s.finish_reason == "length" for s in seqs)
    # it really batched: some decode steps ran more than one sequence
    steps = metric_histogram(metrics, "hf:batch_size")
    assert steps["count"] > 0 and steps["sum"] > steps["count"]


def metric_histogram(metrics: ServerMetrics, name: str) -> dict[str, float]:
    out = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == f"{name}_count":
                out["count"] = sample.value
            elif sample.name == f"{name}_sum":
                out["sum"] = sample.value
    return out


def test_seeded_sampling_is_per_sequence_and_equals_the_naive_schedulers(runner: ModelRunner) -> None:
    def run(scheduler: object) -> list[list[int]]:
        seqs = [make_seq(runner, i, p, 10, temperature=0.8, top_p=0.9, seed=100 + i, ignore_eos=False, min_tokens=0)
                for i, (p, _, _) in enumerate(REQUESTS[:4])]
        asyncio.run(drive(scheduler, seqs, [0.0, 0.02, 0.0, 0.1]))
        return [s.output_ids for s in seqs]

    assert run(continuous(runner)) == run(NaiveScheduler(runner, ServerMetrics("m"), 64))


def test_cancelling_one_sequence_mid_batch_leaves_the_others_untouched(
        runner: ModelRunner, naive_outputs: list[list[int]]) -> None:
    seqs = [make_seq(runner, i, p, n) for i, (p, n, _) in enumerate(REQUESTS[:4])]
    scheduler = continuous(runner)

    async def scenario() -> None:
        await scheduler.start()
        for seq in seqs:
            scheduler.submit(seq)
        victim = seqs[2]  # the longest: still running when the others are mid-way
        while len(victim.output_ids) < 3:
            await asyncio.sleep(0.005)
        scheduler.cancel(victim)
        while not all(s.is_finished for s in seqs):
            await asyncio.sleep(0.01)
        await scheduler.stop()

    asyncio.run(scenario())
    assert seqs[2].finish_reason == "abort" and 3 <= len(seqs[2].output_ids) < REQUESTS[2][1]
    assert seqs[2].output_ids == naive_outputs[2][: len(seqs[2].output_ids)]
    for i in (0, 1, 3):
        assert seqs[i].output_ids == naive_outputs[i], i
    assert scheduler.budget.used_blocks == 0 and scheduler.kv.num_rows == 0


def test_budget_exhaustion_queues_instead_of_failing(runner: ModelRunner,
                                                     naive_outputs: list[list[int]]) -> None:
    """A budget for one sequence at a time: the second waits for the first's blocks, then runs."""
    first, second = (make_seq(runner, i, p, n) for i, (p, n, _) in enumerate(REQUESTS[:2]))
    need = len(first.prompt_ids) + 14
    metrics = ServerMetrics("m")
    scheduler = continuous(runner, max_num_seqs=4, kv_cache_tokens=((need + 15) // 16) * 16, metrics=metrics)
    seen_waiting = []

    async def scenario() -> None:
        await scheduler.start()
        scheduler.submit(first)
        scheduler.submit(second)
        while not second.is_finished:
            seen_waiting.append((scheduler.num_running, scheduler.num_waiting, scheduler.budget.usage))
            await asyncio.sleep(0.005)
        await scheduler.stop()

    asyncio.run(scenario())
    assert (1, 1, 1.0) in seen_waiting  # first running with the whole budget, second queued
    # admission wait: the second stood first in line, refused for blocks, until the first finished
    waits = metric_histogram(metrics, "hf:admission_wait_seconds")
    assert waits["count"] == 2 and waits["sum"] > 0
    assert [first.output_ids, second.output_ids] == naive_outputs[:2]
    assert second.scheduled is not None and first.finished is not None and second.scheduled >= first.finished
    with pytest.raises(BudgetTooSmall):
        scheduler.submit(make_seq(runner, 9, REQUESTS[3][0], 200))


@pytest.fixture(scope="module")
def continuous_server(model_dir: Path, log_dir: Path) -> Iterator[str]:
    port = free_port()
    proc = baseline_process(model_dir, port, log_dir, served_model_name="smollm2",
                            extra_args=["--scheduler", "continuous", "--max-num-seqs", "4",
                                        "--kv-cache-tokens", "512"])
    with proc:
        yield f"http://127.0.0.1:{port}"


def test_the_http_server_batches_streams_and_refuses_what_can_never_fit(
        continuous_server: str, naive_outputs: list[list[int]], runner: ModelRunner) -> None:
    client = httpx.Client(base_url=continuous_server, timeout=120)
    bodies = [{"model": "smollm2", "prompt": p, "max_tokens": n, "temperature": 0, "ignore_eos": True,
               "min_tokens": n, "stream_options": {"include_usage": True}} for p, n, _ in REQUESTS[:4]]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        streams = list(pool.map(lambda b: stream(client, "/v1/completions", b), bodies))
    for s, (prompt, n, _), expected in zip(streams, REQUESTS, naive_outputs, strict=False):
        assert s.status == 200 and s.done
        assert s.usage == {"prompt_tokens": len(runner.encode(prompt)), "completion_tokens": n,
                           "total_tokens": len(runner.encode(prompt)) + n}
        assert s.text(chat=False) == runner.tokenizer.decode(expected, skip_special_tokens=True)
    assert metric(client, "hf:batch_size_sum") > metric(client, "hf:batch_size_count") > 0
    assert metric(client, "hf:admission_wait_seconds_count") == 4
    assert metric(client, "hf:kv_cache_usage_perc") == 0  # everything finished, every block returned
    too_big = client.post("/v1/completions", json={"model": "smollm2", "prompt": "hello", "max_tokens": 600})
    assert too_big.status_code == 400
    assert "KV-cache budget is 512 tokens" in too_big.json()["error"]["message"]


def test_a_failing_step_fails_that_batch_and_the_scheduler_goes_on(runner: ModelRunner,
                                                                  naive_outputs: list[list[int]]) -> None:
    scheduler = continuous(runner)
    real_begin = scheduler.kv.begin_step
    calls = {"n": 0}

    def failing_once() -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected fault in a decode step")
        return real_begin()

    scheduler.kv.begin_step = failing_once  # type: ignore[method-assign]
    first = [make_seq(runner, i, p, n) for i, (p, n, _) in enumerate(REQUESTS[:2])]
    events: list[object] = []
    first[0].emit = events.append
    after = make_seq(runner, 0, REQUESTS[0][0], REQUESTS[0][1])

    async def scenario() -> None:
        await scheduler.start()
        for seq in first:
            scheduler.submit(seq)
        while not all(s.is_finished for s in first):
            await asyncio.sleep(0.01)
        scheduler.submit(after)
        while not after.is_finished:
            await asyncio.sleep(0.01)
        await scheduler.stop()

    asyncio.run(scenario())
    assert [s.finish_reason for s in first] == ["error", "error"]
    assert "injected fault" in getattr(events[-1], "message", "")
    assert after.finish_reason == "length" and after.output_ids == naive_outputs[0]
    assert scheduler.budget.used_blocks == 0


@pytest.mark.parametrize("name", ["naive", "continuous"])
def test_generation_runs_on_the_thread_the_server_gives(runner: ModelRunner, name: str) -> None:
    """The server hands both schedulers its model thread (servers/hf/model_thread.py: one thread, one OpenMP
    team); every token is produced there, not on a thread of the scheduler's own."""
    import threading

    model_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="given-model-thread")
    metrics = ServerMetrics("m")
    scheduler = (NaiveScheduler(runner, metrics, 8, model_thread) if name == "naive" else
                 ContinuousScheduler(runner, metrics, 8, 4, 4096, executor=model_thread))
    seqs = [make_seq(runner, i, p, 3) for i, (p, _, _) in enumerate(REQUESTS[:2])]
    threads: set[str] = set()
    for seq in seqs:
        seq.emit = lambda event: threads.add(threading.current_thread().name)
    asyncio.run(drive(scheduler, seqs, [0.0, 0.0]))
    assert all(len(s.output_ids) == 3 for s in seqs)
    assert threads and all(t.startswith("given-model-thread") for t in threads), threads
