"""The rig on Locust's master: stages, merged records, live metrics, the run's files, lost workers.

Why records travel to the master as messages (and are also kept per worker): the master is the one
place that sees every request, so it writes the run's one ``records.jsonl`` as requests end (a
killed master keeps what finished), feeds the live exporter (``loadgen_*`` series unchanged for
the Grafana dashboards) and writes ``summary.json`` and the reports at test stop — the output folder
is then an ordinary run for ``loadgen report DIR``. Each worker's stamps are moved onto the master's
``perf_counter_ns`` (exactly, when the worker shares the master's kernel: one boot id; else by the
two processes' wall clocks, as good as their NTP sync).

A worker that dies (Locust marks it ``missing`` after its heartbeats stop) takes its in-flight
requests with it. The master knows them (each was announced in ``rig_issued`` before its bytes
were written), and writes each as a record with error class ``worker_lost`` (its end time: when
the death was noticed), logs one line per dead worker, lists it in ``workers.json`` and in the
manifest's ``locust`` section, and fires a Locust failure for each lost request: a death is never
silent, and the request totals still add up (records = requests issued).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import Any

from loadgen.api import MANIFEST_FILE, RunResult, build_prompts, summarize_run, write_outputs
from loadgen.clients import client_class
from loadgen.clients.base import HTTPStreamClient
from loadgen.clients.endpoint import parse_url
from loadgen.config import Profile, TargetConfig
from loadgen.exporter import LiveMetrics
from loadgen.locust.plan import PlanError, plan
from loadgen.manifest import make_manifest
from loadgen.record import RequestRecord
from loadgen.render import table as table_render
from loadgen.scaling.coordinator import WorkerSamples, process_report, write_reports
from loadgen.sinks.jsonl import LOOP_LAG_FILE, RECORDS_FILE, JsonlSink, write_pairs
from loadgen.summary import Manifest, WorkerReport

log = logging.getLogger("loadgen.locust")


@dataclass
class WorkerBook:
    """What the master knows of one worker: its clock shift and the requests it has in flight."""

    id: str
    index: int = 0
    host: str = ""
    pid: int = 0
    shift_ns: int = 0
    issued: int = 0
    records: int = 0
    lost: int = 0
    state: str = "running"
    pending: dict[int, dict[str, Any]] = field(default_factory=dict)
    lags: list[tuple[int, int]] = field(default_factory=list)  # its gevent hub's lag, on the master's clock
    step_granted: int = 0  # requests of the running step granted to it, and of those issued
    step_issued: int = 0

    def report(self) -> WorkerReport:
        """Its line in ``workers.json`` and ``summary.json → workers`` (the ``--workers N`` format;
        ``share`` is ``pull``: a Locust worker takes requests as its users need them)."""
        return process_report(WorkerSamples(self.lags), worker=self.index, pid=self.pid, share="pull",
                              requests=self.records - self.lost, lost=self.lost, died=self.state == "missing",
                              host=self.host or None)


@dataclass(frozen=True)
class Settings:
    """The run as the command line (or the web UI's form) gave it."""

    profile: Profile
    target: TargetConfig
    out: Path
    run_id: str
    url: str
    open_users: int | None = None
    argv: tuple[str, ...] = ()


def check(settings: Settings) -> None:
    """``PlanError`` unless Locust can run this target and these stages (checked before anything is made)."""
    kind = settings.target.kind
    if not issubclass(client_class(kind), HTTPStreamClient):
        raise PlanError(f"target {settings.target.name}: kind {kind} is not an HTTP streaming API; the Locust "
                        "front end drives openai-chat, openai-completions and triton-generate (use loadgen run)")
    plan(settings.profile, settings.open_users)
    try:
        parse_url(settings.url, client_class(kind).url_schemes)
    except ValueError as exc:
        raise PlanError(f"target {settings.target.name}: {exc}") from exc


class RigMaster:
    """The master side. ``send(type, data, client_id)`` is the runner's ``send_message``; ``workers()``
    gives the ids of the workers Locust knows (``["local"]`` in a single process), ``missing(id)``
    whether Locust has marked one missing; ``fail`` reports a lost request to Locust's stats."""

    def __init__(self, settings: Settings, send: Callable[..., None], workers: Callable[[], list[str]],
                 missing: Callable[[str], bool], fail: Callable[[str, str], None], live: LiveMetrics | None) -> None:
        self.settings = settings
        self.send = send
        self.workers = workers
        self.missing = missing
        self.fail = fail
        self.live = live
        profile = settings.profile
        check(settings)
        self.specs, _, prompt_stats = build_prompts(profile)
        self.steps = plan(profile, settings.open_users, self.specs)
        self.out = settings.out
        self.out.mkdir(parents=True, exist_ok=True)
        if (self.out / RECORDS_FILE).exists() and (self.out / RECORDS_FILE).stat().st_size:
            raise PlanError(f"{self.out / RECORDS_FILE} exists; choose another output folder (--rig-out)")
        self.manifest = make_manifest(profile, self.specs, settings.argv, prompt_stats=prompt_stats)
        self._write_manifest()
        self.sink = JsonlSink(self.out / RECORDS_FILE)
        self.records: list[RequestRecord] = []
        self.books: dict[str, WorkerBook] = {}
        self.master_clock = (perf_counter_ns(), time.time_ns())
        self.boot_id = ""
        self.step_at = -1  # position in self.steps of the step running now
        self.step_started = 0.0
        self.step_workers: list[str] = []
        self.idle: set[str] = set()
        self.pool: int | None = None  # requests of the running step not granted yet (None: no total)
        self.finished = False
        self.written = False

    def _write_manifest(self) -> None:
        text = self.manifest.model_dump_json(indent=2, exclude_unset=True) + "\n"
        (self.out / MANIFEST_FILE).write_text(text)

    def run_message(self) -> dict[str, Any]:
        s = self.settings
        return {"profile": s.profile.model_dump(mode="json"), "target": s.target.name, "out": str(s.out),
                "run_id": s.run_id, "url": s.url}

    # -- stages (called by the LoadTestShape's tick, once a second) ------------------------------
    def tick(self) -> tuple[int, float] | None:
        """Users and spawn rate for now, or None when the last step is over."""
        self.check_workers()
        if self.step_at < 0 or self._step_over():
            if self.step_at + 1 >= len(self.steps):
                self.finished = True
                return None
            self._start_step(self.step_at + 1)
        step = self.steps[self.step_at]
        return step.users, float(max(step.users, 1) * 10)

    def _start_step(self, at: int) -> None:
        self.step_at = at
        step = self.steps[at]
        self.step_started = time.monotonic()
        self.step_workers = sorted(w for w in self.workers() if not self.missing(w))
        self.idle = set()
        self.pool = step.requests
        for book in self.books.values():
            book.step_granted = book.step_issued = 0
        log.info("stage %s: %d users%s%s", step.name, step.users,
                 f", {step.requests} requests" if step.requests else "",
                 f", {step.duration_s:g}s" if step.duration_s else "")
        for worker in self.step_workers:
            self.send("rig_stage", {"run": self.run_message(), "step": vars(step)}, worker)

    def _step_over(self) -> bool:
        step = self.steps[self.step_at]
        alive = {w for w in self.step_workers if self.books.get(w) is None or self.books[w].state == "running"}
        if alive <= self.idle:
            return True
        limit = (step.duration_s or 0) + self.settings.profile.drain_timeout_s
        if step.duration_s and time.monotonic() - self.step_started > limit:
            log.warning("stage %s: workers %s still busy %gs after its end; moving on",
                        step.name, sorted(alive - self.idle), self.settings.profile.drain_timeout_s)
            return True
        return False

    # -- messages from workers -----------------------------------------------------------------
    def on_hello(self, worker: str, data: dict[str, Any]) -> None:
        book = self.books.setdefault(worker, WorkerBook(worker))
        book.host, book.pid, book.index = data["host"], data["pid"], data["index"]
        same_kernel = data["boot_id"] and data["boot_id"] == self.boot_id
        if not same_kernel:
            book.shift_ns = ((data["unix_ns"] - data["perf_counter_ns"])
                             - (self.master_clock[1] - self.master_clock[0]))

    def on_issued(self, worker: str, data: dict[str, Any]) -> None:
        book = self.books.setdefault(worker, WorkerBook(worker))
        book.issued += 1
        book.pending[data["index"]] = data
        if self.step_at >= 0 and data["stage"] == self.steps[self.step_at].index:
            book.step_issued += 1
        if self.live is not None:
            self.live.issued(self.settings.target.name, self.settings.target.kind, data["stage_name"])

    def on_records(self, worker: str, data: dict[str, Any]) -> None:
        book = self.books.setdefault(worker, WorkerBook(worker))
        for line in data["records"]:
            record = RequestRecord.model_validate_json(line)
            book.pending.pop(record.index, None)
            book.records += 1
            self._keep(record.shifted(book.shift_ns))
        book.lags.extend((t + book.shift_ns, lag) for t, lag in data.get("lags", ()))

    def on_more(self, worker: str, data: dict[str, Any]) -> None:
        """A worker asks for ``n`` more requests of the running step: grant what is left."""
        grant = 0
        if self.step_at >= 0 and data["stage"] == self.steps[self.step_at].index and self.pool:
            grant = min(data["n"], self.pool)
            self.pool -= grant
            self.books.setdefault(worker, WorkerBook(worker)).step_granted += grant
        self.send("rig_grant", {"stage": data["stage"], "n": grant}, worker)

    def on_broken(self, worker: str, data: dict[str, Any]) -> None:
        """A worker that cannot run the profile takes no part: its grants go back, the run goes on without it."""
        book = self.books.setdefault(worker, WorkerBook(worker))
        log.error("worker %s cannot run the profile and takes no part in the run: %s", worker, data["error"])
        book.state = "broken"
        if self.pool is not None:
            self.pool += max(0, book.step_granted - book.step_issued)
        self._regrant()

    def on_idle(self, worker: str, data: dict[str, Any]) -> None:
        if self.step_at >= 0 and data["stage"] == self.steps[self.step_at].index:
            self.idle.add(worker)

    def _keep(self, record: RequestRecord) -> None:
        self.sink(record)
        self.records.append(record)
        if self.live is not None:
            self.live(record)

    # -- dead workers --------------------------------------------------------------------------
    def check_workers(self) -> None:
        """A worker Locust marks missing (its heartbeats stopped) died; one that left without sending back
        what it announced quit uncleanly. Either way its in-flight requests are ``worker_lost`` records,
        and the requests it was granted and never sent go back to the running step."""
        known = self.workers()
        for book in self.books.values():
            if book.state != "running" or book.id == "local":
                continue
            if book.id in known and not self.missing(book.id):
                continue
            if self.pool is not None:
                self.pool += max(0, book.step_granted - book.step_issued)
            if self.missing(book.id) or book.pending:
                self._lost(book, "missing" if self.missing(book.id) else "quit")
            else:
                book.state = "quit"
        self._regrant()

    def _regrant(self) -> None:
        """Requests given back by a dead worker go to the living ones (which may have gone idle)."""
        if not self.pool or self.step_at < 0 or self.finished:
            return
        living = [w for w in self.step_workers if self.books.get(w) is None or self.books[w].state == "running"]
        stage = self.steps[self.step_at].index
        for i, worker in enumerate(living):
            n = self.pool // (len(living) - i)
            if n:
                self.pool -= n
                self.books.setdefault(worker, WorkerBook(worker)).step_granted += n
                self.idle.discard(worker)
                self.send("rig_grant", {"stage": stage, "n": n}, worker)

    def _lost(self, book: WorkerBook, state: str) -> None:
        book.state = state
        now = perf_counter_ns()
        for notice in book.pending.values():
            self._keep(self._lost_record(notice, book, now))
            self.fail(self.settings.target.name, f"worker_lost: worker {book.id} ({book.host} pid {book.pid}) died")
        book.lost += len(book.pending)
        book.records += len(book.pending)
        book.pending.clear()
        log.error("worker %s (%s pid %d) went %s with %d request(s) in flight: recorded as worker_lost; "
                  "%d of its %d requests came back", book.id, book.host, book.pid, state, book.lost,
                  book.records - book.lost, book.issued)

    def _lost_record(self, notice: dict[str, Any], book: WorkerBook, now: int) -> RequestRecord:
        intended = notice["intended_ns"] + book.shift_ns
        return RequestRecord(
            target=self.settings.target.name, kind=self.settings.target.kind, stage=notice["stage"],
            stage_name=notice["stage_name"], index=notice["index"], warmup=notice["warmup"],
            prompt_id=notice["prompt_id"], intended_ns=intended, sent_ns=intended, end_ns=max(now, intended),
            error="worker_lost", error_detail=f"worker {book.id} ({book.host} pid {book.pid}) died with it in flight",
            expected_output_tokens=notice["max_tokens"])

    # -- the end -------------------------------------------------------------------------------
    def finish(self) -> RunResult:
        """At test stop: anything still announced and not recorded is lost; then the run's files."""
        self.written = True
        self.check_workers()
        for book in self.books.values():
            if book.pending:  # alive but never sent these back (it quit without its last flush)
                self._lost(book, "silent")
        self.sink.close()
        self.records.sort(key=lambda r: (r.warmup is False, r.sent_ns))
        self.records = [r.model_copy(update={"index": i}) for i, r in enumerate(self.records)]
        (self.out / RECORDS_FILE).write_text("".join(r.model_dump_json() + "\n" for r in self.records))
        reports = self._write_workers()
        lags = sorted(sample for book in self.books.values() for sample in book.lags)
        write_pairs(lags, self.out / LOOP_LAG_FILE)
        summary = summarize_run(self.records, lags, self.manifest, self.settings.profile, workers=reports)
        result = RunResult(self.records, summary, self.manifest, lags, self.out, workers=reports)
        write_outputs(result)
        log.info("rig run written to %s\n%s", self.out, table_render.to_text(summary))
        if self.live is not None and self.settings.profile.metrics.linger_s:
            time.sleep(self.settings.profile.metrics.linger_s)  # a last scrape sees the final counts
        return result

    def _write_workers(self) -> list[WorkerReport]:
        """``workers.json`` (as ``--workers N`` writes it) and the manifest's ``locust`` section: the
        steps as run, each worker's clock shift, the requests lost with dead workers."""
        books = sorted(self.books.values(), key=lambda b: b.index)
        reports = [b.report() for b in books]
        write_reports(reports, [WorkerSamples(b.lags) for b in books], self.out)
        section = {"steps": [vars(s) for s in self.steps], "lost_requests": sum(b.lost for b in books),
                   "workers": [{"worker": b.index, "id": b.id, "state": b.state, "clock_shift_ns": b.shift_ns}
                               for b in books]}
        self.manifest = Manifest.model_validate({**self.manifest.model_dump(exclude_unset=True), "locust": section})
        self._write_manifest()
        return reports
