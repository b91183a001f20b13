"""``loadgen study``: a grid of real runs, each metric with a confidence interval over repetitions,
speedups against a reference target, and the seed documents' two tables.

Why runs, not a private loop: every cell is one stage of an ordinary ``loadgen.api.run`` into its
own folder (``cells/GRID/KEY/rep-N``, a normal run folder that ``loadgen report`` renders), so a
cell measures exactly what ``loadgen run`` would, with the same records, validity verdict and files.
One run holds every target of a cell, one after another with the same prompts (as ``loadgen run``).

Order: repetition by repetition over the whole grid (rep 0 of every cell, then rep 1, ...), so a
slow drift of the machine (other work, heat) spreads over the cells instead of landing on one.
Seeds: repetition k runs with the profile's seed + k. Warm-up: the profile's ``warmup`` as written
(0 = figures from a cold start, as users meet them); ``study.json`` says which.

Statistics (``ci``): a cell's value is the mean over its repetitions of the value in each run's
summary (its one stage); the interval is Student's t: mean ± t(0.975, n − 1) · s / √n with s the
sample standard deviation (n − 1), None for one repetition. Why not compare's bootstrap: a study
has 2–5 repetitions per cell, and a bootstrap of so few values gives intervals that are too narrow;
the t interval is exact for normal noise and honest about few repetitions. A speedup is the ratio
of two cells' means: target ÷ reference for a higher-is-better metric, reference ÷ target for a
lower-is-better one (> 1: the target is better either way).

The live exporter is off in cells (as in ``loadgen search``): dozens of short runs would each open
and close it.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from loadgen import api
from loadgen.answers.compare import MetricRef, run_validity
from loadgen.answers.study_config import NUMERIC_AXES, TARGETS_AXIS, GridConfig, StudyFile
from loadgen.config import Profile
from loadgen.registry import SHAPES
from loadgen.summary import TargetSummary

STUDY_FILE = "study.json"
SHORT = {"input_tokens": "in", "output_tokens": "out", "concurrency": "c", "requests": "n", "rate": "r"}
RESOURCE_KEYS = ("rss_mb", "gpu_mem_mb")
# Student's t, 0.975 quantile, by degrees of freedom (scipy.stats.t.ppf; tests/unit/test_study.py checks them).
T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.306, 2.2622, 2.2281, 2.201, 2.1788, 2.1604,
        2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.093, 2.086, 2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555,
        2.0518, 2.0484, 2.0452, 2.0423)
# Table (c)'s columns (the continuous-batching seed) and the axes they read.
TABLE_C = ("PromptLen", "BatchSize", "MaxTokens", "OptTokens", "NaiveTokens", "Speedup")
TABLE_C_AXES = {"PromptLen": "input_tokens", "BatchSize": "concurrency", "MaxTokens": "output_tokens"}


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (beyond 30: Cornish–Fisher's first
    correction of the normal quantile, z + (z³ + z) / (4 df), within 0.2%)."""
    if df < 1:
        raise ValueError("t quantile needs at least one degree of freedom")
    if df <= len(T975):
        return T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df)


class MeanCI(BaseModel):
    """A cell's metric over its repetitions: the mean, Student's t 95% interval (None for n = 1), the values."""

    mean: float | None
    low: float | None = None
    high: float | None = None
    n: int
    values: list[float]


def ci(values: list[float | None]) -> MeanCI:
    """Mean and t interval of the values that exist (a repetition without the metric is left out)."""
    present = [v for v in values if v is not None]
    if not present:
        return MeanCI(mean=None, n=0, values=[])
    mean = math.fsum(present) / len(present)
    if len(present) == 1:
        return MeanCI(mean=mean, n=1, values=present)
    half = t975(len(present) - 1) * statistics.stdev(present) / math.sqrt(len(present))
    return MeanCI(mean=mean, low=mean - half, high=mean + half, n=len(present), values=present)


class Repetition(BaseModel):
    """One repetition of a cell for one target: its run folder and the values in that run's summary."""

    rep: int
    seed: int
    out: str
    seconds: float
    ok: int
    failed: int
    valid: bool | None
    values: dict[str, float | None]
    resources: dict[str, float | None] = Field(default_factory=dict)


class Cell(BaseModel):
    """One point of a grid for one target; ``stats`` per metric over its repetitions."""

    grid: str
    key: str
    values: dict[str, float]
    target: str
    reps: list[Repetition] = Field(default_factory=list)
    stats: dict[str, MeanCI] = Field(default_factory=dict)
    peak: dict[str, float | None] = Field(default_factory=dict)


class Speedup(BaseModel):
    grid: str
    key: str
    values: dict[str, float]
    target: str
    reference: str
    metric: str
    target_mean: float | None
    reference_mean: float | None
    speedup: float | None


class Optimum(BaseModel):
    """The best cell of a grid for a target and metric (highest, or lowest for a lower-is-better metric)."""

    grid: str
    target: str
    metric: str
    key: str
    values: dict[str, float]
    mean: float


class StudyResult(BaseModel):
    """``study.json``."""

    name: str
    started_at: str
    seconds: float = 0.0
    warmup: int
    cold_start: bool
    repetitions: int
    reference: str | None
    metrics: list[str]
    better: dict[str, str]
    speedup_metric: str
    grids: list[GridConfig]
    fixed: dict[str, float | None]
    cells: list[Cell] = Field(default_factory=list)
    speedups: list[Speedup] = Field(default_factory=list)
    optima: list[Optimum] = Field(default_factory=list)
    table_a: list[dict[str, Any]] = Field(default_factory=list)
    table_c: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    interrupted: bool = False
    notes: list[str] = Field(default_factory=list)


class CellPlan(BaseModel):
    """One point of a grid: its axis values (ties applied) and the targets it runs."""

    grid: str
    key: str
    values: dict[str, float]
    targets: list[str]


def expand(grid: GridConfig, targets: list[str]) -> list[CellPlan]:
    """The grid's Cartesian product in the order the axes are written, ties applied."""
    chosen = [str(t) for t in grid.axes.get(TARGETS_AXIS, targets)]
    numeric = [(a, v) for a, v in grid.axes.items() if a != TARGETS_AXIS]
    plans = []
    for combo in itertools.product(*(values for _, values in numeric)):
        values = {a: float(v) for (a, _), v in zip(numeric, combo, strict=True)}
        values.update({tied: values[source] for tied, source in grid.tie.items()})
        key = "-".join(f"{SHORT[a]}{values[a]:g}" for a in NUMERIC_AXES if a in values) or "base"
        plans.append(CellPlan(grid=grid.name, key=key, values=values, targets=chosen))
    return plans


def cell_profile(profile: Profile, plan: CellPlan, rep: int) -> Profile:
    """The base profile with the cell's values applied: one stage named after the cell. A copy, not a YAML
    round trip (a target's headers stay as given); the prompt source and stage are validated again."""
    prompts = profile.prompts
    lengths = {a: int(plan.values[a]) for a in ("input_tokens", "output_tokens") if a in plan.values}
    if lengths:
        if "input_tokens" in lengths and "input_tokens" not in type(prompts).model_fields:
            raise ValueError(f"axis input_tokens: the {prompts.source} prompt source has no input_tokens "
                             "(use synthetic prompts)")
        prompts = type(prompts).model_validate({**prompts.model_dump(), **lengths})
    return profile.model_copy(update={
        "targets": [t for t in profile.targets if t.name in plan.targets], "prompts": prompts,
        "load": cell_stage(profile, plan), "stages": [], "sweep": None, "out": None, "seed": profile.seed + rep,
        "metrics": profile.metrics.model_copy(update={"enabled": False})})


def cell_stage(profile: Profile, plan: CellPlan) -> Any:
    """The profile's one stage with the cell's concurrency, rate and requests."""
    stage = profile.resolved_stages()[0].model_dump(exclude_none=True, exclude={"name"})
    if "concurrency" in plan.values:
        stage = {k: v for k, v in stage.items() if k not in ("rate", "arrival", "burstiness")}
        stage.update(type="concurrency", concurrency=int(plan.values["concurrency"]))
    if "rate" in plan.values:
        stage = {k: v for k, v in stage.items() if k != "concurrency"}
        stage.update(type="rate", rate=plan.values["rate"])
    if "requests" in plan.values:
        stage.pop("duration_s", None)
        stage["requests"] = int(plan.values["requests"])
    stage["name"] = plan.key
    return SHAPES.get(stage["type"]).model_validate(stage)


def metric_value(block: Any, ref: MetricRef) -> float | None:
    """One metric of a summary block: an aggregate's number or a distribution's statistic."""
    if ref.stat is None:
        return block.value(ref.name)  # type: ignore[no-any-return]
    s = block.stats(ref.name)
    return None if s is None else float(getattr(s, ref.stat))


def peak_resources(target: TargetSummary) -> dict[str, float | None]:
    """Peak RSS and GPU memory (MB) of the target's engine while the stage ran, from the summary's
    ``resources`` (when the run sampled them; absent in runs without a resource sampler)."""
    found: dict[str, float | None] = {}
    blocks = [*target.stages.values(), target]
    for key in RESOURCE_KEYS:
        values = [_peak(_field(getattr(b, "resources", None), key)) for b in blocks]
        present = [v for v in values if v is not None]
        found[key] = max(present) if present else None
    return found


def _field(container: Any, key: str) -> Any:
    if container is None:
        return None
    return container.get(key) if isinstance(container, dict) else getattr(container, key, None)


def _peak(value: Any) -> float | None:
    """A number, a Stats-like object or mapping (its ``max``/``peak``), or a mapping of those (the largest)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    for name in ("peak", "max"):
        inner = _field(value, name)
        if isinstance(inner, int | float):
            return float(inner)
    if isinstance(value, dict):
        peaks = [p for p in (_peak(v) for v in value.values()) if p is not None]
        return max(peaks) if peaks else None
    return None


def repetition(result: api.RunResult, target: str, refs: list[MetricRef], rep: int, seconds: float) -> Repetition:
    """One target's figures in one cell run (its single stage)."""
    block = result.summary.targets.get(target)
    if block is None:  # the run was interrupted before this target
        return Repetition(rep=rep, seed=result.manifest.seed, out=str(result.out), seconds=round(seconds, 1), ok=0,
                          failed=0, valid=None, values={r.text: None for r in refs})
    stage = next(iter(block.stages.values()), block)
    return Repetition(rep=rep, seed=result.manifest.seed, out=str(result.out), seconds=round(seconds, 1),
                      ok=stage.requests.ok, failed=stage.requests.failed,
                      valid=run_validity(result, target).valid, values={r.text: metric_value(stage, r) for r in refs},
                      resources=peak_resources(block))


class Study:
    """Runs a study file's grids (``run()``), writing ``study.json`` after every cell run."""

    def __init__(self, spec: StudyFile, out: Path, name: str | None = None,
                 notify: Callable[[str], None] = lambda _: None, argv: Sequence[str] = ()) -> None:
        self.spec, self.out, self.notify, self.argv = spec, out, notify, argv
        self.refs = spec.study.metric_refs()
        targets = [t.name for t in spec.profile.targets]
        self.plans = [p for g in spec.study.grids for p in expand(g, targets)]
        profile = spec.profile
        stage = profile.resolved_stages()[0]
        self.result = StudyResult(
            name=name or profile.name, started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), warmup=profile.warmup,
            cold_start=profile.warmup == 0, repetitions=spec.study.repetitions, reference=spec.study.reference,
            metrics=[r.text for r in self.refs], better={r.text: r.better for r in self.refs},
            speedup_metric=spec.study.speedup_metric, grids=spec.study.grids,
            fixed={"input_tokens": getattr(profile.prompts, "input_tokens", None),
                   "output_tokens": profile.prompts.output_tokens,
                   "concurrency": getattr(stage, "concurrency", None), "rate": getattr(stage, "rate", None),
                   "requests": stage.requests})
        self.cells = {(p.grid, p.key, t): Cell(grid=p.grid, key=p.key, values=p.values, target=t)
                      for p in self.plans for t in p.targets}
        self.result.cells = list(self.cells.values())

    def run(self) -> StudyResult:
        began = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        order = [(rep, plan) for rep in range(self.spec.study.repetitions) for plan in self.plans]
        try:
            for done, (rep, plan) in enumerate(order, start=1):
                self.notify(f"[{done}/{len(order)}] {plan.grid} {plan.key} rep {rep} ({', '.join(plan.targets)})")
                if not self._run_cell(plan, rep):
                    self.result.interrupted = True
                    break
        except KeyboardInterrupt:  # between two runs (a run itself turns SIGINT into an early end)
            self.result.interrupted = True
        self.result.seconds = round(time.monotonic() - began, 1)
        finish(self.result)
        self._save()
        return self.result

    def _run_cell(self, plan: CellPlan, rep: int) -> bool:
        began = time.monotonic()
        result = api.run(cell_profile(self.spec.profile, plan, rep), out=self.out / "cells" / plan.grid / plan.key /
                         f"rep-{rep}", argv=self.argv, report=False)
        seconds = time.monotonic() - began
        for target in plan.targets:
            self.cells[(plan.grid, plan.key, target)].reps.append(repetition(result, target, self.refs, rep, seconds))
        finish(self.result)
        self._save()
        return not result.interrupted

    def _save(self) -> None:
        (self.out / STUDY_FILE).write_text(self.result.model_dump_json(indent=2) + "\n")


def finish(result: StudyResult) -> None:
    """Statistics, speedups, optima and the two tables from the cells' repetitions (pure; rerun at will)."""
    for cell in result.cells:
        cell.stats = {m: ci([r.values.get(m) for r in cell.reps]) for m in result.metrics}
        cell.peak = {k: max((v for r in cell.reps if (v := r.resources.get(k)) is not None), default=None)
                     for k in RESOURCE_KEYS}
    result.speedups = speedups(result)
    result.optima = optima(result)
    result.table_a = table_a(result)
    result.table_c = table_c(result)
    result.notes = notes(result)


def speedup_of(target: float | None, reference: float | None, better: str) -> float | None:
    """target ÷ reference (higher is better) or reference ÷ target (lower is better); None when undefined."""
    if target is None or reference is None:
        return None
    num, den = (target, reference) if better == "higher" else (reference, target)
    return num / den if den else None


def speedups(result: StudyResult) -> list[Speedup]:
    """Every non-reference cell against the reference cell at the same grid point."""
    if result.reference is None:
        return []
    metric, found = result.speedup_metric, []
    by_point = {(c.grid, c.key, c.target): c for c in result.cells}
    for c in result.cells:
        ref = by_point.get((c.grid, c.key, result.reference))
        if c.target == result.reference or ref is None:
            continue
        t, r = c.stats[metric].mean, ref.stats[metric].mean
        found.append(Speedup(grid=c.grid, key=c.key, values=c.values, target=c.target, reference=result.reference,
                             metric=metric, target_mean=t, reference_mean=r,
                             speedup=speedup_of(t, r, result.better[metric])))
    return found


def optima(result: StudyResult) -> list[Optimum]:
    found = []
    for grid in result.grids:
        for target in dict.fromkeys(c.target for c in result.cells if c.grid == grid.name):
            cells = [c for c in result.cells if c.grid == grid.name and c.target == target]
            for metric in result.metrics:
                scored = [(c.stats[metric].mean, c) for c in cells if c.stats[metric].mean is not None]
                if not scored:
                    continue
                pick = max if result.better[metric] == "higher" else min
                mean, best = pick(scored, key=lambda pair: pair[0])
                found.append(Optimum(grid=grid.name, target=target, metric=metric, key=best.key, values=best.values,
                                     mean=mean))
    return found


def _axis(result: StudyResult, cell: Cell, axis: str) -> float | None:
    return cell.values.get(axis, result.fixed.get(axis))


def table_c(result: StudyResult) -> dict[str, list[dict[str, Any]]]:
    """Per non-reference target, table (c)'s rows: the cell's prompt length, batch size (concurrency) and
    max tokens, both targets' mean output tokens/s, and their ratio."""
    if result.reference is None:
        return {}
    tables: dict[str, list[dict[str, Any]]] = {}
    metric = "output_tokens_per_s"
    by_point = {(c.grid, c.key, c.target): c for c in result.cells}
    for c in result.cells:
        ref = by_point.get((c.grid, c.key, result.reference))
        if c.target == result.reference or ref is None or metric not in c.stats:
            continue
        opt, naive = c.stats[metric].mean, ref.stats[metric].mean
        row: dict[str, Any] = {col: _axis(result, c, axis) for col, axis in TABLE_C_AXES.items()}
        row.update(OptTokens=opt, NaiveTokens=naive, Speedup=speedup_of(opt, naive, "higher"))
        tables.setdefault(c.target, []).append(row)
    return tables


def table_a(result: StudyResult) -> list[dict[str, Any]]:
    """Single vs batch-N (seed (a)): every cell of a grid whose concurrency axis includes 1 — mean latency
    (E2E mean, ms), output tokens/s and peak memory, each the mean over repetitions."""
    rows = []
    for grid in result.grids:
        if 1 not in [float(v) for v in grid.axes.get("concurrency", [])]:
            continue
        for c in (c for c in result.cells if c.grid == grid.name):
            stats = {m: c.stats[m].mean if m in c.stats else None for m in ("e2e_ms.mean", "output_tokens_per_s")}
            rows.append({"grid": grid.name, "target": c.target, "batch": _axis(result, c, "concurrency"),
                         **{a: v for a, v in c.values.items() if a != "concurrency"},
                         "mean_latency_ms": stats["e2e_ms.mean"], "tokens_per_s": stats["output_tokens_per_s"],
                         "peak_rss_mb": c.peak.get("rss_mb"), "peak_gpu_mem_mb": c.peak.get("gpu_mem_mb")})
    return rows


def notes(result: StudyResult) -> list[str]:
    """What a reader must know before trusting a figure: invalid or failing repetitions, missing metrics."""
    found = []
    if any(r.get("mean_latency_ms") is None or r.get("tokens_per_s") is None for r in result.table_a):
        found.append("table (a) needs e2e_ms.mean and output_tokens_per_s among the study's metrics")
    if result.reference is not None and "output_tokens_per_s" not in result.metrics:
        found.append("table (c) needs output_tokens_per_s among the study's metrics")
    for c in result.cells:
        bad = [r.rep for r in c.reps if r.valid is False]
        failed = sum(r.failed for r in c.reps)
        if bad:
            found.append(f"{c.grid} {c.key} {c.target}: repetition(s) {bad} invalid (the client could not keep up; "
                         "see each run's summary.json validity)")
        if failed:
            found.append(f"{c.grid} {c.key} {c.target}: {failed} failed request(s)")
    return found


def study(spec: StudyFile, out: Path, notify: Callable[[str], None] = lambda _: None,
          argv: Sequence[str] = ()) -> StudyResult:
    """Run every grid of ``spec`` (every cell, every repetition) into ``out``; writes ``out/study.json``.
    ``argv``: the command line, kept in every cell's manifest."""
    return Study(spec, out, notify=notify, argv=argv).run()
