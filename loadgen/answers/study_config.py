"""The study file: a run profile with a ``study:`` section (``loadgen/studies/*.yaml``).

Why a profile plus one section, not a new format: everything a cell sends (targets, prompts,
request settings, warm-up, the stage's length) is what a run profile already says and validates;
the section says only what varies. A study is one or more *grids*; a grid is the Cartesian
product of named axes::

    study:
      repetitions: 3                 # each cell run this many times (seeds: profile seed + 0, 1, ...)
      reference: naive               # speedup heatmaps and table (c) against this target
      metrics: [output_tokens_per_s, e2e_ms.mean]   # compare's names: AGGREGATE or DISTRIBUTION.STAT
      axes: {concurrency: [1, 4, 16], output_tokens: [16, 64], targets: [naive, continuous]}
      tie: {requests: concurrency}   # in every cell requests = concurrency (a batch sent at once)

or ``grids: [{name: batch, axes: {...}, tie: {...}}, ...]`` for several sweeps in one command
(seed (b): batch size, sequence length and request count). Axes: ``input_tokens`` and
``output_tokens`` (the prompt source), ``concurrency`` / ``rate`` (the stage's shape, closed or
open loop), ``requests`` (the stage's length), ``targets`` (names from the profile; default all).

Targets on the local CPU stack: a target may give ``engine: NAME`` instead of ``url``; its URL (for
its ``kind``), unless given its ``model``, and the engine's ``pid`` and ``metrics_url`` (so that a run samples
the engine's memory) come from the state file that ``python -m
stack.local up`` writes (``results/engines/state.json`` by default; ``--stack``). The file is read
as data (its ``engines.NAME.urls`` and ``model``): the load generator imports nothing of ``stack``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from loadgen import safe_yaml
from loadgen.answers.compare import CompareError, MetricRef
from loadgen.basemodel import StrictModel
from loadgen.config import Profile, TargetConfig, set_dotted

NUMERIC_AXES = ("input_tokens", "output_tokens", "concurrency", "requests", "rate")
TARGETS_AXIS = "targets"
DEFAULT_METRICS = ("output_tokens_per_s", "requests_per_s", "e2e_ms.mean", "ttft_ms.p50", "tpot_ms.p50")
DEFAULT_STACK_STATE = Path("results/engines/state.json")


class StudyError(ValueError):
    """The study cannot run as written; the message names the field."""


class GridConfig(StrictModel):
    """One Cartesian product of axes; ``tie`` sets an axis that is not varied to another axis's value."""

    name: str = Field(default="grid", pattern=r"^[A-Za-z0-9_.-]+$")
    axes: dict[str, list[float | str]] = Field(min_length=1)
    tie: dict[str, str] = Field(default_factory=dict)

    @field_validator("axes")
    @classmethod
    def _known_axes(cls, axes: dict[str, list[float | str]]) -> dict[str, list[float | str]]:
        for name, values in axes.items():
            if name not in (*NUMERIC_AXES, TARGETS_AXIS):
                raise ValueError(f"unknown axis {name!r}; axes are {', '.join((*NUMERIC_AXES, TARGETS_AXIS))}")
            if not values:
                raise ValueError(f"axis {name} has no values")
            if len(set(map(str, values))) != len(values):
                raise ValueError(f"axis {name} repeats a value: {values}")
            if name == TARGETS_AXIS:
                continue
            if not all(isinstance(v, int | float) and v > 0 for v in values):
                raise ValueError(f"axis {name}: values must be positive numbers, got {values}")
            if name != "rate" and not all(float(v).is_integer() for v in values):
                raise ValueError(f"axis {name}: values must be whole numbers, got {values}")
        if "concurrency" in axes and "rate" in axes:
            raise ValueError("a cell is a closed loop (concurrency) or an open loop (rate), not both")
        return axes

    @model_validator(mode="after")
    def _valid_ties(self) -> GridConfig:
        for tied, source in self.tie.items():
            if tied not in NUMERIC_AXES or source not in NUMERIC_AXES:
                raise ValueError(f"tie {tied}: {source}: both must be among {', '.join(NUMERIC_AXES)}")
            if tied in self.axes:
                raise ValueError(f"tie {tied}: {source}: {tied} is itself an axis")
            if source not in self.axes:
                raise ValueError(f"tie {tied}: {source}: {source} is not an axis of grid {self.name}")
        if {"concurrency", "rate"} <= set(self.axes) | set(self.tie):
            raise ValueError("a cell is a closed loop (concurrency) or an open loop (rate), not both")
        return self

    def varied(self) -> list[str]:
        """The numeric axes with more than one value: what its plots are drawn against."""
        return [a for a, values in self.axes.items() if a != TARGETS_AXIS and len(values) > 1]


class StudySection(StrictModel):
    """The ``study:`` section. ``axes``/``tie`` are the short form of a single grid."""

    repetitions: int = Field(default=1, ge=1, le=100)
    reference: str | None = Field(default=None, description="the target speedups are measured against")
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS), min_length=1)
    speedup_metric: str = Field(default="output_tokens_per_s", description=(
        "target ÷ reference when higher is better, reference ÷ target when lower is better"))
    axes: dict[str, list[float | str]] | None = None
    tie: dict[str, str] = Field(default_factory=dict)
    grids: list[GridConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_form(self) -> StudySection:
        if (self.axes is None) == (not self.grids):
            raise ValueError("give `axes` (one grid) or `grids` (several), not both and not neither")
        if self.axes is not None:
            self.grids = [GridConfig(axes=self.axes, tie=self.tie)]
            self.axes, self.tie = None, {}
        names = [g.name for g in self.grids]
        if len(set(names)) != len(names):
            raise ValueError(f"grid names must be unique: {names}")
        try:
            for text in (*self.metrics, self.speedup_metric):
                MetricRef.parse(text)
        except CompareError as exc:
            raise ValueError(str(exc).replace("--metric", "metric")) from None
        return self

    def metric_refs(self) -> list[MetricRef]:
        return [MetricRef.parse(t) for t in dict.fromkeys([*self.metrics, self.speedup_metric])]


class StudyFile(BaseModel):
    """A loaded study file: the base profile and the section, validated together."""

    profile: Profile
    study: StudySection

    @model_validator(mode="after")
    def _targets_exist(self) -> StudyFile:
        names = [t.name for t in self.profile.targets]
        for grid in self.study.grids:
            unknown = [t for t in grid.axes.get(TARGETS_AXIS, []) if t not in names]
            if unknown:
                raise ValueError(f"grid {grid.name}: targets {unknown} are not in the profile's targets {names}")
            if self.study.reference and self.study.reference not in grid.axes.get(TARGETS_AXIS, names):
                raise ValueError(f"study.reference {self.study.reference!r} is not a target of grid {grid.name}")
        if len(self.profile.resolved_stages()) != 1 or self.profile.sweep is not None:
            raise ValueError("a study's profile gives one `load` (the stage every cell varies), not stages or a sweep")
        return self


class _Engine(BaseModel):
    urls: dict[str, str]
    model: str
    pid: int | None = None
    metrics_url: str | None = None


class _StackState(BaseModel):
    """What ``python -m stack.local up`` writes that a study needs (other fields are ignored)."""

    engines: dict[str, _Engine]


def resolve_engine_targets(data: dict[str, Any], stack_state: Path) -> None:
    """Fill ``url`` (and ``model``) of every target that names an ``engine`` from the stack's state file."""
    targets = data.get("targets")
    wanted = [t for t in targets if isinstance(t, dict) and "engine" in t] if isinstance(targets, list) else []
    if not wanted:
        return
    try:
        state = _StackState.model_validate(json.loads(stack_state.read_text()))
    except FileNotFoundError:
        raise StudyError(f"targets {[t.get('name') for t in wanted]} name engines of the local stack, but "
                         f"{stack_state} does not exist: start it with `python -m stack.local up` (or give --stack, "
                         "or each target a url)") from None
    except (ValueError, ValidationError) as exc:
        raise StudyError(f"{stack_state} is not the local stack's state file: {exc}") from None
    for target in wanted:
        engine = state.engines.get(str(target.pop("engine")))
        kind = target.get("kind")
        if engine is None or kind not in engine.urls:
            raise StudyError(f"target {target.get('name')}: the stack in {stack_state} runs "
                             f"{ {n: list(e.urls) for n, e in state.engines.items()} }, not "
                             f"an engine serving {kind} by that name")
        target["url"] = engine.urls[kind]
        target.setdefault("model", engine.model)
        # The engine's process and metrics page, so that runs sample its memory (loadgen.observe), when the
        # profile's targets take them.
        for key in ("pid", "metrics_url"):
            if key in TargetConfig.model_fields and getattr(engine, key) is not None:
                target.setdefault(key, getattr(engine, key))


def load_study(path: Path, overrides: list[tuple[str, Any]], stack_state: Path = DEFAULT_STACK_STATE) -> StudyFile:
    """Read a study file; ``overrides`` are dotted keys (``study.repetitions``, ``load.requests``)."""
    try:
        data = safe_yaml.load_file(Path(path), "study file")
    except (OSError, yaml.YAMLError) as exc:
        raise StudyError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("study"), dict):
        raise StudyError(f"{path}: a study file is a run profile with a `study:` section (see loadgen/studies/)")
    for key, value in overrides:
        set_dotted(data, key, value)
    try:
        section = StudySection.model_validate(data.pop("study"))  # its mistakes first: they need no stack
        resolve_engine_targets(data, stack_state)
        return StudyFile(profile=Profile.model_validate(data), study=section)
    except ValidationError as exc:
        raise StudyError("; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'study'}: {e['msg']}"
                                   for e in exc.errors()[:5])) from None
