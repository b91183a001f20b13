"""``loadgen run --workers N``: one schedule, N processes, one set of records.

Why processes: one asyncio loop is one core, and a client whose core is busy stamps late
(docs/selftest.md). Each worker is ``python -m loadgen.cli.worker``: it runs its share of every
stage (``loadgen.scaling.share``: open-loop arrivals dealt round-robin on one clock, closed-loop
concurrency split) with its own event loop, its own connections, loop-lag monitor and CPU
sampler. The parent builds the prompts once, keeps the only records.jsonl and the live
exporter, and aligns the stages: before each target's warm-up and each stage every worker
says ``ready`` and waits; when all living workers are ready, the parent sends them one origin
on the shared monotonic clock (``perf_counter_ns`` is CLOCK_MONOTONIC, the same in every
process of a host), a few milliseconds ahead, and every share's schedule counts from it.

Protocol (one pipe each way; the worker's stdout carries nothing else, its prints go to stderr):
parent → worker: an 8-byte length and a pickled ``WorkerJob``, then one JSON line per gate,
``{"go": origin_ns}``. Worker → parent: each finished request's record as its JSON line
(written verbatim into records.jsonl), and control lines starting with ``#``:
``{"start": [...]}`` as a request leaves (what the parent needs to count it failed if the
worker dies), ``{"ready": [target, stage]}``, ``{"lag": [...]}`` batches for the live
exporter, and ``{"done": {...}}`` with the worker's loop-lag and CPU samples.

A worker that dies (killed, crashed) is noticed when its pipe closes without ``done``: every
request it had in flight gets a ``worker_lost`` record (end time: when the death was noticed),
the other workers go on, its stage gates no longer wait for it, and ``summary.json → workers``
reports its exit code and how many requests it lost.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import selectors
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import IO, Any

import orjson

from loadgen import metrics as m
from loadgen.clients.base import RequestSpec
from loadgen.config import Profile
from loadgen.cpu import cpu_share
from loadgen.record import RequestRecord
from loadgen.scaling.share import Share
from loadgen.summary import WorkerReport

# How far ahead of "all ready" a stage's origin is set: the time to deliver the go line to
# every worker and for each to wake up; measured well under 1 ms here, so 20 ms is slack.
GO_LEAD_NS = 20_000_000
LAG_BATCH = 100  # loop-lag samples per ``lag`` line (the monitor takes 100 a second)
WORKERS_FILE = "workers.json"


@dataclass
class WorkerJob:
    """What a worker process needs: the profile, the prompts the parent built, its share."""

    profile: Profile
    specs: list[RequestSpec]
    share: Share
    salt_base: int
    worker: int


@dataclass
class WorkerSamples:
    """A worker's own samples, kept per worker: CPU time is per process, so it is not merged."""

    loop_lag: list[tuple[int, int]] = field(default_factory=list)
    cpu: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Outcome:
    records: list[RequestRecord]
    loop_lag: list[tuple[int, int]]
    interrupted: bool
    reports: list[WorkerReport]
    samples: list[WorkerSamples]


# -- parent side ---------------------------------------------------------------------------------

@dataclass
class _Worker:
    number: int
    share: Share
    proc: subprocess.Popen[bytes]
    buffer: bytes = b""
    in_flight: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    lost: int = 0
    samples: WorkerSamples = field(default_factory=WorkerSamples)
    done: bool = False
    alive: bool = True


@dataclass
class Coordinator:
    """Runs the workers and merges what they send. ``write_line``: records.jsonl, verbatim;
    ``on_record``/``on_issue``/``on_lag``: the exporter and the front end's hooks;
    ``on_gate(target, stage)``: a stage is released."""

    profile: Profile
    specs: list[RequestSpec]
    workers: int
    share: Share
    salt_base: int
    write_line: Callable[[bytes], None]
    on_record: Callable[[RequestRecord], None]
    on_issue: Callable[[str, str, str], None] | None = None
    on_lag: Callable[[int], None] | None = None
    on_gate: Callable[[int, int], None] | None = None
    on_notice: Callable[[str], None] = lambda _: None
    on_spawn: Callable[[list[int]], None] | None = None
    start_at_ns: int | None = None  # the first gate's origin on the unix clock (``--start-at``)
    records: list[RequestRecord] = field(default_factory=list)
    _ready: dict[tuple[int, int], set[int]] = field(default_factory=dict)
    _pool: list[_Worker] = field(default_factory=list)
    _interrupted: bool = False
    _first_gate: bool = True

    def run(self) -> Outcome:
        self._pool = [self._spawn(w) for w in range(self.workers)]
        self.on_notice(f"workers: {self.workers} processes (pids {', '.join(str(w.proc.pid) for w in self._pool)})")
        if self.on_spawn is not None:
            self.on_spawn(self.pids)
        previous = {sig: signal.signal(sig, self._forward) for sig in (signal.SIGINT, signal.SIGTERM)} \
            if threading.current_thread() is threading.main_thread() else {}
        try:
            self._pump()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for w in self._pool:
                if w.proc.poll() is None:
                    w.proc.kill()
                w.proc.wait()
        lags = sorted(p for w in self._pool for p in w.samples.loop_lag)
        return Outcome(self.records, lags, self._interrupted, [self._report(w) for w in self._pool],
                       [w.samples for w in self._pool])

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._pool]

    def _spawn(self, number: int) -> _Worker:
        share = self.share.split(self.workers, number)
        proc = subprocess.Popen([sys.executable, "-m", "loadgen.cli.worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        job = pickle.dumps(WorkerJob(self.profile, self.specs, share, self.salt_base, number))
        assert proc.stdin is not None
        proc.stdin.write(struct.pack("<Q", len(job)) + job)
        proc.stdin.flush()
        os.set_blocking(proc.stdout.fileno(), False)  # type: ignore[union-attr]
        return _Worker(number, share, proc)

    def _forward(self, signum: int, _frame: object) -> None:
        """SIGINT/SIGTERM: every worker stops issuing and drains (a terminal's Ctrl-C reaches them too)."""
        self._interrupted = True
        for w in self._pool:
            if w.alive:
                with contextlib.suppress(*_GONE):
                    w.proc.send_signal(signal.SIGINT)

    def _pump(self) -> None:
        selector = selectors.DefaultSelector()
        for w in self._pool:
            selector.register(w.proc.stdout, selectors.EVENT_READ, w)  # type: ignore[arg-type]
        while any(w.alive for w in self._pool):
            for key, _ in selector.select(timeout=0.5):
                w = key.data
                chunk = _read(w.proc.stdout)  # type: ignore[arg-type]
                if chunk is None:
                    continue
                if chunk == b"":
                    selector.unregister(key.fileobj)
                    self._ended(w)
                    continue
                w.buffer += chunk
                *lines, w.buffer = w.buffer.split(b"\n")
                for line in lines:
                    self._line(w, line)
        selector.close()

    def _line(self, w: _Worker, line: bytes) -> None:
        if not line:
            return
        if line[:1] != b"#":
            self.write_line(line + b"\n")
            record = RequestRecord.model_validate_json(line)
            w.in_flight.pop((record.target, record.index), None)
            w.requests += 1
            self._record(record)
            return
        message = orjson.loads(line[1:])
        if "start" in message:
            t, index, stage, stage_name, warmup, intended, prompt_id = message["start"]
            target = self.profile.targets[t]
            w.in_flight[(target.name, index)] = {
                "target": target.name, "kind": target.kind, "stage": stage, "stage_name": stage_name,
                "index": index, "warmup": warmup, "intended_ns": intended, "sent_ns": intended,
                "prompt_id": prompt_id}
            if self.on_issue is not None:
                self.on_issue(target.name, target.kind, stage_name)
        elif "ready" in message:
            t, stage = message["ready"]
            self._ready.setdefault((t, stage), set()).add(w.number)
            self._release()
        elif "lag" in message and self.on_lag is not None:
            for lag in message["lag"]:
                self.on_lag(lag)
        elif "done" in message:
            w.samples = WorkerSamples([tuple(p) for p in message["done"]["loop_lag"]],  # type: ignore[misc]
                                      [tuple(p) for p in message["done"]["cpu"]])  # type: ignore[misc]
            w.done = True

    def _record(self, record: RequestRecord) -> None:
        self.records.append(record)
        self.on_record(record)

    def _release(self) -> None:
        """Open every gate that all living workers have reached (one at a time, in order)."""
        alive = {w.number for w in self._pool if w.alive}
        for gate, ready in sorted(self._ready.items()):
            if not alive <= ready:
                continue
            del self._ready[gate]
            origin = perf_counter_ns() + GO_LEAD_NS
            if self._first_gate and self.start_at_ns is not None:
                origin = max(origin, perf_counter_ns() + self.start_at_ns - time.time_ns())
            self._first_gate = False
            if self.on_gate is not None:
                self.on_gate(*gate)
            for w in self._pool:
                if w.alive and w.proc.stdin is not None:
                    with contextlib.suppress(*_GONE):
                        w.proc.stdin.write(orjson.dumps({"go": origin}) + b"\n")
                        w.proc.stdin.flush()

    def _ended(self, w: _Worker) -> None:
        """A worker's pipe closed: done, or dead with requests in flight (recorded as lost)."""
        w.alive = False
        w.proc.wait()
        if not w.done:
            now = perf_counter_ns()
            for fields in w.in_flight.values():
                line = RequestRecord(**fields, end_ns=now, error="worker_lost",
                                     error_detail=f"worker {w.number} (pid {w.proc.pid}) exited with code "
                                                  f"{w.proc.returncode} while this request was in flight")
                self.write_line(line.model_dump_json().encode() + b"\n")
                self._record(line)
            w.lost = len(w.in_flight)
            self.on_notice(f"warning: worker {w.number} (pid {w.proc.pid}) died with exit code "
                           f"{w.proc.returncode}; {w.lost} requests in flight recorded as worker_lost")
            w.in_flight.clear()
        self._release()  # its gates no longer wait for it

    def _report(self, w: _Worker) -> WorkerReport:
        return process_report(w.samples, worker=w.number, pid=w.proc.pid, share=f"{w.share.k}/{w.share.n}",
                              requests=w.requests, lost=w.lost, exit_code=w.proc.returncode, died=not w.done)


def process_report(samples: WorkerSamples, **fields: Any) -> WorkerReport:
    """A client process's report: ``fields`` plus its CPU share over the run and its loop-lag p99 and max
    (the same statistics as the summary's ``loop_lag_ms``)."""
    cpu = samples.cpu
    share = cpu_share(cpu, cpu[0][0], cpu[-1][0]) if len(cpu) >= 2 else None
    lag = m.stats(lag / 1e6 for _, lag in samples.loop_lag)
    return WorkerReport(**fields, cpu_share=None if share is None else round(share, 4),
                        loop_lag_p99_ms=round(lag.p99, 3) if lag else None,
                        loop_lag_max_ms=round(lag.max, 3) if lag else None)


def _read(stream: IO[bytes]) -> bytes | None:
    try:
        return os.read(stream.fileno(), 1 << 16)
    except BlockingIOError:
        return None


# A worker that just died has a closed stdin: writing to it is not an error of the run.
_GONE = (BrokenPipeError, ProcessLookupError, ValueError)


def write_reports(reports: Sequence[WorkerReport], samples: Sequence[WorkerSamples], out: Path) -> None:
    """``workers.json`` and, per worker, ``workers/<k>/loop_lag.jsonl`` and ``cpu.jsonl``."""
    from loadgen.sinks.jsonl import write_pairs

    (out / WORKERS_FILE).write_text(orjson.dumps([r.model_dump() for r in reports], option=orjson.OPT_INDENT_2)
                                    .decode() + "\n")
    for report, sample in zip(reports, samples, strict=True):
        folder = out / "workers" / str(report.worker)
        folder.mkdir(parents=True, exist_ok=True)
        write_pairs(sample.loop_lag, folder / "loop_lag.jsonl")
        write_pairs(sample.cpu, folder / "cpu.jsonl")


def read_reports(out: Path) -> tuple[list[WorkerReport], list[WorkerSamples]]:
    """What ``write_reports`` wrote; a single-process run has none. Bad files raise ValueError."""
    from loadgen.sinks.jsonl import read_pairs

    path = out / WORKERS_FILE
    if not path.exists():
        return [], []
    try:
        reports = [WorkerReport.model_validate(r) for r in orjson.loads(path.read_bytes())]
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a list of worker reports: {exc}") from exc
    samples = [WorkerSamples(read_pairs(out / "workers" / str(r.worker) / "loop_lag.jsonl",
                                        "[perf_counter_ns, lag_ns]"),
                             read_pairs(out / "workers" / str(r.worker) / "cpu.jsonl",
                                        "[perf_counter_ns, process_time_ns]"))
               for r in reports]
    return reports, samples
