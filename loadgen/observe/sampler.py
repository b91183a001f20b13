"""The sampling thread: the active target's engine, every ``interval_s`` and at every stage's start and end.

Why a thread, and why only the active target: targets run one after another, so the engine being
loaded is the one whose cost and state matter; sampling it from a background thread keeps the
measuring event loop free (a scrape and a process-tree walk take milliseconds, once a second). The
loop's only calls are ``stage_started``/``target_ended``, made between stages when nothing is in
flight: they wait (at most ``MARK_WAIT_S``) for the boundary sample, so a stage's counters are read
before its first request and after its last.

Each tick writes what each source gave: one ``ServerSample`` per scrape of the target's
``/metrics`` (``server_metrics.jsonl``) and one ``ResourceSample`` per source (``resources.jsonl``).
A page that answers 404 or belongs to no known engine is not scraped again in the run (one notice
says so); a target without ``pid`` gets no process-tree samples.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import httpx
import psutil

from loadgen.observe.prom import Samples, parse
from loadgen.observe.resources import (
    DCGM_SAMPLES,
    PAGE_SAMPLES,
    RESOURCES_FILE,
    Nvml,
    ProcessTree,
    Reading,
    ResourceSample,
    gauges_from_dcgm,
    gauges_from_page,
)
from loadgen.observe.samples import Event, SampleFile
from loadgen.observe.server_metrics import SERVER_FILE, Engine, ServerSample, detect, read_series, wanted
from loadgen.observe.summary_blocks import Observed

MARK_WAIT_S = 3.0
SCRAPE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Watch:
    """One target as the observer sees it: where its engine's metrics are, and its process (if ours)."""

    target: str
    metrics_url: str | None = None
    pid: int | None = None


@dataclass
class _Mark:
    target: str
    stage: str | None
    event: Event
    done: threading.Event = field(default_factory=threading.Event)


class Observer:
    """Start it before the first target, tell it where the run is, stop it after the last target."""

    def __init__(self, watches: list[Watch], out: Path, *, interval_s: float = 1.0, nvml: bool = True,
                 dcgm_url: str | None = None, verify: bool | str = True,
                 notify: Callable[[str], None] = lambda _: None) -> None:
        self.watches = {w.target: w for w in watches}
        self.interval_s = interval_s
        self.dcgm_url = dcgm_url
        self.notify = notify
        self.server: list[ServerSample] = []
        self.resources: list[ResourceSample] = []
        self._files = (SampleFile(out / SERVER_FILE), SampleFile(out / RESOURCES_FILE))
        self._want_nvml = nvml
        self._nvml: Nvml | None = None
        self._http = httpx.Client(timeout=SCRAPE_TIMEOUT_S, verify=verify)
        self._queue: queue.Queue[_Mark | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="loadgen-observer", daemon=True)
        self._active: tuple[str, str | None] | None = None  # the thread's view: (target, stage)
        self._stage: dict[str, str | None] = {}  # the loop's view: each target's current stage
        self._engines: dict[str, Engine] = {}
        self._trees: dict[str, ProcessTree | None] = {}
        self._dead: set[str] = set()  # URLs not to scrape again in this run

    # -- called from the run's event loop -----------------------------------------------------------
    def start(self) -> None:
        self._nvml = Nvml.start() if self._want_nvml else None
        self._thread.start()

    def target_started(self, target: str) -> None:
        """Sampling moves to ``target`` (its warm-up samples carry no stage)."""
        self._stage[target] = None
        self._post(_Mark(target, None, "sample"), wait=False)

    def stage_started(self, target: str, stage: str) -> None:
        """The previous stage's end sample (if any), then this stage's start sample; waits for both."""
        previous = self._stage.get(target)
        if previous is not None:
            self._post(_Mark(target, previous, "stage_end"), wait=False)
        self._stage[target] = stage
        self._post(_Mark(target, stage, "stage_start"), wait=True)

    def target_ended(self, target: str) -> None:
        stage = self._stage.pop(target, None)
        self._post(_Mark(target, stage, "stage_end"), wait=True)

    def observing(self, hooks: Any) -> Any:
        """A copy of the run's ``Hooks`` that also tells this observer where the run is: a target
        starting ends the previous one, a measured stage starting ends the previous stage."""
        def on_target(name: str, total: int | None) -> None:
            for ended in list(self._stage):
                self.target_ended(ended)
            self.target_started(name)
            if hooks.on_target is not None:
                hooks.on_target(name, total)

        def on_stage(target: str, stage: str) -> None:
            self.stage_started(target, stage)
            if hooks.on_stage is not None:
                hooks.on_stage(target, stage)

        return dataclasses.replace(hooks, on_target=on_target, on_stage=on_stage)

    def finish(self) -> Observed:
        """The last target's end sample, then stop; what was sampled."""
        for ended in list(self._stage):
            self.target_ended(ended)
        self.stop()
        return Observed(self.resources, self.server)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)
        for f in self._files:
            f.close()
        self._http.close()
        if self._nvml is not None:
            self._nvml.close()

    def _post(self, mark: _Mark, wait: bool) -> None:
        self._queue.put(mark)
        if wait and self._thread.is_alive():
            mark.done.wait(MARK_WAIT_S)

    # -- the thread -------------------------------------------------------------------------------
    def _loop(self) -> None:
        due = time.monotonic() + self.interval_s
        while True:
            try:
                mark = self._queue.get(timeout=max(0.0, due - time.monotonic()))
            except queue.Empty:
                if self._active is not None:
                    self._safely(self._active[0], self._active[1], "sample")
                due = max(due + self.interval_s, time.monotonic())
                continue
            if mark is None:
                return
            self._safely(mark.target, mark.stage, mark.event)
            # After a stage's end nothing is sampled until the next stage (or target) starts.
            self._active = None if mark.event == "stage_end" else (mark.target, mark.stage)
            mark.done.set()

    def _safely(self, target: str, stage: str | None, event: Event) -> None:
        try:
            self._take(target, stage, event)
        except Exception as exc:  # a sampling fault must never end the run
            self.notify(f"warning: sampling {target}'s engine failed: {type(exc).__name__}: {exc}")

    def _take(self, target: str, stage: str | None, event: Event) -> None:
        t_ns = perf_counter_ns()
        watch = self.watches.get(target) or Watch(target)
        common: dict[str, Any] = {"t_ns": t_ns, "target": target, "stage": stage, "event": event}
        readings: dict[str, Reading] = {}
        if watch.metrics_url and watch.metrics_url not in self._dead:
            sample, readings = self._scrape(watch)
            self._write(ServerSample(**common, **sample))
        tree = self._tree(watch)
        if tree is not None and (reading := tree.read()) is not None:
            readings[tree.source] = reading
        if self._nvml is not None and (reading := self._nvml.read()) is not None:
            readings[self._nvml.source] = reading
        if self.dcgm_url and self.dcgm_url not in self._dead:
            page = self._page(self.dcgm_url, target, DCGM_SAMPLES)
            if isinstance(page, dict) and (reading := gauges_from_dcgm(page)):
                readings["dcgm"] = reading
        for source, reading in readings.items():
            self._write(ResourceSample(**common, source=source, **reading))

    def _scrape(self, watch: Watch) -> tuple[dict[str, Any], dict[str, Reading]]:
        """The engine's page read as canonical series (``server_metrics``) and resource gauges."""
        assert watch.metrics_url is not None
        engine = self._engines.get(watch.target)
        text = self._get(watch.metrics_url, watch.target)
        if not isinstance(text, str):
            return {"error": text[0]}, {}
        if engine is None:
            engine = detect(text)
            if engine is None:
                self._dead.add(watch.metrics_url)
                self.notify(f"note: {watch.metrics_url} ({watch.target}) is no known engine's metrics page "
                            "(hf:, vllm:, nv_): no server block for it")
                return {"error": "no known engine's metrics"}, gauges_from_page(parse(text, PAGE_SAMPLES))
            self._engines[watch.target] = engine
        samples = parse(text, wanted(engine) | PAGE_SAMPLES)
        return {"engine": engine.name, "values": read_series(engine, samples)}, gauges_from_page(samples)

    def _page(self, url: str, target: str, names: set[str]) -> Samples | tuple[str]:
        text = self._get(url, target)
        return parse(text, names) if isinstance(text, str) else text

    def _get(self, url: str, target: str) -> str | tuple[str]:
        """The page's text, or (reason,) when it could not be read; 401/403/404 stop further scrapes."""
        try:
            response = self._http.get(url)
        except httpx.HTTPError as exc:
            return (f"{type(exc).__name__}: {exc}"[:200],)
        if response.status_code in (401, 403, 404):
            self._dead.add(url)
            self.notify(f"note: {url} ({target}) answered HTTP {response.status_code}: not scraped again in this run")
        if response.status_code != 200:
            return (f"HTTP {response.status_code}",)
        return response.text

    def _tree(self, watch: Watch) -> ProcessTree | None:
        if watch.pid is None:
            return None
        if watch.target not in self._trees:
            try:
                self._trees[watch.target] = ProcessTree(watch.pid)
            except psutil.Error as exc:
                self._trees[watch.target] = None
                self.notify(f"warning: {watch.target}'s pid {watch.pid} is not a running process ({exc}): "
                            "no process-tree samples")
        return self._trees[watch.target]

    def _write(self, sample: ServerSample | ResourceSample) -> None:
        if isinstance(sample, ServerSample):
            self.server.append(sample)
            self._files[0].write(sample)
        else:
            self.resources.append(sample)
            self._files[1].write(sample)



def default_metrics_url(kind: str, url: str) -> str | None:
    """Where a target's engine metrics are unless the target says (``metrics_url``): on the API's own
    port for OpenAI-compatible servers (vLLM, the baseline, most others); none for Triton, whose
    metrics have a port of their own (the local stack fills it in)."""
    if kind.startswith("openai") and url.startswith(("http://", "https://")):
        return url.rstrip("/") + "/metrics"
    return None


def watches(targets: list[Any]) -> list[Watch]:
    """A ``Watch`` per ``TargetConfig``."""
    return [Watch(t.name, t.metrics_url or default_metrics_url(t.kind, t.url), t.pid) for t in targets]


def for_profile(profile: Any, out: Path, notify: Callable[[str], None]) -> Observer | None:
    """The run's observer (started), or None with ``observe.enabled: false``."""
    cfg = profile.observe
    if not cfg.enabled:
        return None
    request = profile.request
    verify: bool | str = False if request.insecure else str(request.ca_cert) if request.ca_cert else True
    observer = Observer(watches(profile.targets), out, interval_s=cfg.interval_s, nvml=cfg.nvml,
                        dcgm_url=cfg.dcgm_url, verify=verify, notify=notify)
    observer.start()
    return observer
