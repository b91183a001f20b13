"""What an engine costs while it serves: CPU, memory, GPU memory, utilization, power (``resources.jsonl``).

One sampler class per source, each giving ``ResourceSample``s with the fields it can measure (the
others stay None: a source that cannot see a figure never reports a zero for it):

- ``ProcessTree``: the engine's process and all its descendants (psutil), for an engine the rig
  started (the target's ``pid``): CPU seconds (user + system, with reaped children's) and RSS summed
  over the tree (pages shared between processes count once per process).
- ``Nvml``: every GPU the load generator's machine has (``nvidia-ml-py``): memory used, utilization,
  power and the energy counter. Whole devices: every process on them counts.
- ``gauges_from_page``: the gauges the engine exports on its own ``/metrics``, for any target, remote
  ones included: ``process_cpu_seconds_total`` and ``process_resident_memory_bytes`` (the serving
  process only: vLLM's API server, not its engine core), Triton's ``nv_cpu_*`` (the whole host, source
  ``metrics-host``) and ``nv_gpu_*``/``nv_energy_consumption`` (whole devices), the baseline's torch
  allocator gauge.
- ``Dcgm``: the DCGM exporter's page in the compose stack (``observe.dcgm_url``): framebuffer used,
  utilization, power, energy, per GPU.

The ``resources`` block (``resources_block``) takes each figure from the best source that has it:
process tree over the engine's own gauges for CPU and RSS, NVML over DCGM over the engine's gauges
for the GPU; ``sources`` says which one each figure came from.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict, Field

from loadgen import metrics as m
from loadgen.observe.prom import From, Samples, mean, total
from loadgen.observe.samples import Sample, first_last_delta

RESOURCES_FILE = "resources.jsonl"
MB = 1024 * 1024

# Per figure, the sources in order of preference (what each one sees is in the module docstring).
PREFERENCE: dict[str, tuple[str, ...]] = {
    "cpu": ("process", "metrics", "metrics-host"),
    "rss": ("process", "metrics"),
    "gpu_mem": ("nvml", "dcgm", "metrics"),
    "gpu_util": ("nvml", "dcgm", "metrics"),
    "energy": ("nvml", "dcgm", "metrics"),
}


class ResourceSample(Sample):
    """One reading of one source. ``cpu_s`` and ``energy_j`` are cumulative counters (rates and totals
    come from differences); ``cpu_percent`` is an instantaneous reading (Triton's host utilization)."""

    source: str
    cpu_s: float | None = None
    cpu_percent: float | None = None
    rss_bytes: float | None = None
    gpu_mem_bytes: float | None = None
    gpu_util_percent: float | None = None
    power_w: float | None = None
    energy_j: float | None = None


Reading = dict[str, float | None]


class ProcessTree:
    """CPU time and RSS of a process and its descendants. The descendants are listed again every
    ``relist_s`` (an engine starts workers after it is ready; vLLM's engine core is a child of its API
    server): listing walks every process of the machine (~1.5 ms here), reading a known one does not."""

    source = "process"

    def __init__(self, pid: int, relist_s: float = 10.0) -> None:
        self.root = psutil.Process(pid)  # raises psutil.NoSuchProcess for a PID that is not running
        self.relist_s = relist_s
        self._procs: list[psutil.Process] = []
        self._listed = float("-inf")

    def read(self) -> Reading | None:
        if time.monotonic() - self._listed > self.relist_s:
            try:
                self._procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return None  # the engine is gone
            self._listed = time.monotonic()
        cpu = rss = 0.0
        for p in self._procs:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    cpu += t.user + t.system + t.children_user + t.children_system
                    rss += p.memory_info().rss
            except psutil.Error:
                if p is self.root:
                    return None  # the engine is gone
                self._listed = float("-inf")  # a worker exited: list the tree again next time
        return {"cpu_s": cpu, "rss_bytes": rss}


class Nvml:
    """Every GPU of this machine through NVML; ``start()`` returns None where there is no driver/GPU."""

    source = "nvml"

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self.nvml = nvml
        self.handles = handles

    @classmethod
    def start(cls) -> Nvml | None:
        try:
            import pynvml

            pynvml.nvmlInit()
            handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        except Exception:  # NVMLError, ImportError, OSError: no usable NVML here
            return None
        return cls(pynvml, handles) if handles else None

    def _each(self, read: Callable[[Any], float]) -> list[float]:
        values = []
        for h in self.handles:
            with contextlib.suppress(Exception):  # NVMLError_NotSupported on some boards (energy, power)
                values.append(float(read(h)))
        return values

    def read(self) -> Reading | None:
        n = self.nvml
        mem = self._each(lambda h: n.nvmlDeviceGetMemoryInfo(h).used)
        util = self._each(lambda h: n.nvmlDeviceGetUtilizationRates(h).gpu)
        power = self._each(lambda h: n.nvmlDeviceGetPowerUsage(h) / 1000)  # mW
        energy = self._each(lambda h: n.nvmlDeviceGetTotalEnergyConsumption(h) / 1000)  # mJ since driver load
        return {"gpu_mem_bytes": sum(mem) if mem else None, "gpu_util_percent": sum(util) / len(util) if util else None,
                "power_w": sum(power) if power else None,
                "energy_j": sum(energy) if len(energy) == len(self.handles) else None}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.nvml.nvmlShutdown()


# The engine's own gauges: (figure, source name, sample, how several label sets combine).
PAGE_GAUGES: tuple[tuple[str, str, From, str], ...] = (
    ("cpu_s", "metrics", From("process_cpu_seconds_total"), "sum"),
    ("rss_bytes", "metrics", From("process_resident_memory_bytes"), "sum"),
    ("gpu_mem_bytes", "metrics", From("hf:gpu_memory_allocated_bytes"), "sum"),
    ("gpu_mem_bytes", "metrics", From("nv_gpu_memory_used_bytes"), "sum"),
    ("gpu_util_percent", "metrics", From("nv_gpu_utilization", scale=100), "mean"),
    ("power_w", "metrics", From("nv_gpu_power_usage"), "sum"),
    ("energy_j", "metrics", From("nv_energy_consumption"), "sum"),
    ("cpu_percent", "metrics-host", From("nv_cpu_utilization", scale=100), "mean"),
)
DCGM_GAUGES: tuple[tuple[str, From, str], ...] = (
    ("gpu_mem_bytes", From("DCGM_FI_DEV_FB_USED", scale=MB), "sum"),  # MiB
    ("gpu_util_percent", From("DCGM_FI_DEV_GPU_UTIL"), "mean"),
    ("power_w", From("DCGM_FI_DEV_POWER_USAGE"), "sum"),
    ("energy_j", From("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", scale=1e-3), "sum"),  # mJ
)
PAGE_SAMPLES = {f.sample for _, _, f, _ in PAGE_GAUGES}
DCGM_SAMPLES = {f.sample for _, f, _ in DCGM_GAUGES}


def gauges_from_page(samples: Samples) -> dict[str, Reading]:
    """Readings per source (``metrics``, ``metrics-host``) from a parsed engine page; empty when it has none."""
    found: dict[str, Reading] = {}
    for figure, source, sample, how in PAGE_GAUGES:
        value = total(samples, sample) if how == "sum" else mean(samples, sample)
        if value is not None:
            found.setdefault(source, {})[figure] = value
    return found


def gauges_from_dcgm(samples: Samples) -> Reading:
    found: Reading = {}
    for figure, sample, how in DCGM_GAUGES:
        value = total(samples, sample) if how == "sum" else mean(samples, sample)
        if value is not None:
            found[figure] = value
    return found


# -- the ``resources`` block -------------------------------------------------------------------------

class CpuStats(BaseModel):
    """CPU use as a percentage of one core (200 = two cores busy): mean over the window and the
    highest between two consecutive samples."""

    mean: float
    max: float


class Resources(BaseModel):
    """What the engine used during one target's or stage's window (null: no source measured it).
    ``sources``: which source each figure came from (``process``, ``nvml``, ``dcgm``, ``metrics``,
    ``metrics-host``; docs/observability.md)."""

    model_config = ConfigDict(extra="forbid")
    cpu_percent: CpuStats | None = None
    rss_mb: float | None = None
    gpu_mem_mb: float | None = None
    gpu_util_percent: float | None = None
    energy_j: float | None = None
    cpu_s: float | None = None
    output_tokens_per_cpu_s: float | None = None
    output_tokens_per_j: float | None = None
    sources: dict[str, str] = Field(default_factory=dict)


def _series(samples: list[ResourceSample], source: str, name: str) -> list[tuple[int, float]]:
    return [(s.t_ns, v) for s in samples if s.source == source and (v := getattr(s, name)) is not None]


def _best(samples: list[ResourceSample], figure: str, name: str, least: int = 1) -> tuple[str, list[tuple[int, float]]]:
    """The preferred source with at least ``least`` readings of ``name``, and its (t_ns, value) points."""
    for source in PREFERENCE[figure]:
        points = _series(samples, source, name)
        if len(points) >= least:
            return source, points
    return "", []


MIN_RATE_WINDOW_S = 0.5  # CPU times tick in 10 ms: over a few ms (a stage mark just after a sample) 1 tick is 200 %


def cpu_rates(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """CPU % of one core between consecutive points of a cumulative CPU-seconds counter that are at least
    ``MIN_RATE_WINDOW_S`` apart (closer ones are merged into the next interval), stamped at its end."""
    rates = []
    anchor = points[0] if points else None
    for t, value in points[1:]:
        assert anchor is not None
        if (t - anchor[0]) / 1e9 >= MIN_RATE_WINDOW_S:
            if value >= anchor[1]:
                rates.append((t, (value - anchor[1]) / ((t - anchor[0]) / 1e9) * 100))
            anchor = (t, value)
    return rates


def cpu_stats(samples: list[ResourceSample]) -> tuple[str, CpuStats | None, float | None]:
    """CPU from a cumulative counter (Δcpu_s/Δt), else from instantaneous readings. ``max``: the highest
    rate over intervals of at least ``MIN_RATE_WINDOW_S``; ``mean``: over the whole window."""
    source, points = _best(samples, "cpu", "cpu_s", least=2)
    if points:
        rates = [rate for _, rate in cpu_rates(points)] or [
            (points[-1][1] - points[0][1]) / max((points[-1][0] - points[0][0]) / 1e9, 1e-9) * 100]
        used = first_last_delta(points)
        span = (points[-1][0] - points[0][0]) / 1e9
        if used is not None and span > 0 and rates:
            return source, CpuStats(mean=round(used / span * 100, 2), max=round(max(rates), 2)), round(used, 3)
    source, points = _best(samples, "cpu", "cpu_percent")
    if points and source == "metrics-host":
        values = [v for _, v in points]
        return source, CpuStats(mean=round(sum(values) / len(values), 2), max=round(max(values), 2)), None
    return "", None, None


def energy(samples: list[ResourceSample]) -> tuple[str, float | None]:
    """Joules over the window: the energy counter's increase, else power integrated over time (trapezoids)."""
    source, points = _best(samples, "energy", "energy_j", least=2)
    if points:
        return source, first_last_delta(points)
    for source in PREFERENCE["energy"]:
        power = _series(samples, source, "power_w")
        if len(power) >= 2:
            return f"{source} (power × time)", sum((a[1] + b[1]) / 2 * (b[0] - a[0]) / 1e9
                                                   for a, b in itertools.pairwise(power))
    return "", None


def resources_block(samples: list[ResourceSample], output_tokens: int) -> Resources | None:
    """The ``resources`` block of one window's samples (``samples.in_window``), and the derived
    efficiency figures for the ``output_tokens`` its successful requests produced. None: no samples."""
    if not samples:
        return None
    block = Resources()
    source, block.cpu_percent, block.cpu_s = cpu_stats(samples)
    sources = {"cpu_percent": source} if block.cpu_percent else {}
    source, rss = _best(samples, "rss", "rss_bytes")
    if rss:
        block.rss_mb, sources["rss_mb"] = round(max(v for _, v in rss) / MB, 1), source
    source, mem = _best(samples, "gpu_mem", "gpu_mem_bytes")
    if mem:
        block.gpu_mem_mb, sources["gpu_mem_mb"] = round(max(v for _, v in mem) / MB, 1), source
    source, util = _best(samples, "gpu_util", "gpu_util_percent")
    if util:
        block.gpu_util_percent, sources["gpu_util_percent"] = round(sum(v for _, v in util) / len(util), 2), source
    source, joules = energy(samples)
    if joules is not None:
        block.energy_j, sources["energy_j"] = round(joules, 3), source
    for figure in m.EFFICIENCY:  # the one definition of each derived figure
        setattr(block, figure.name, figure.compute(output_tokens, getattr(block, figure.per)))
    block.sources = sources
    return block
