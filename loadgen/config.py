"""Run profiles: YAML files validated by pydantic, every field overridable from the CLI.

Why one typed model: a profile says everything a run did (it is copied into the run's
manifest), and a typo must fail before the first request, naming the field. CLI flags
are shorthands for dotted keys (``--rate 5`` is ``--set load.type=rate --set load.rate=5``);
``--set`` reaches every field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ClientKind = Literal["openai-chat", "openai-completions", "triton-generate", "triton-grpc"]
CLIENT_KINDS: tuple[str, ...] = ("openai-chat", "openai-completions", "triton-generate", "triton-grpc")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetConfig(_Strict):
    """A server to load: a name for the results, its wire API, where it is, the model it serves."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: ClientKind
    url: str
    model: str | None = None

    @classmethod
    def parse(cls, spec: str) -> TargetConfig:
        """``NAME=KIND@URL`` (the CLI's ``--target``)."""
        match = re.fullmatch(r"([^=]+)=([a-z-]+)@(.+)", spec)
        if not match:
            raise ValueError(f"--target {spec!r}: expected NAME=KIND@URL, e.g. vllm=openai-chat@http://127.0.0.1:8000")
        return cls(name=match[1], kind=match[2], url=match[3])  # type: ignore[arg-type]


class LoadShape(_Strict):
    """One stage of load. ``concurrency``: closed loop, N requests always in flight.
    ``rate``: open loop, arrivals at ``rate`` req/s (constant, Poisson or gamma spacing).
    ``ramp``: open loop whose rate moves linearly from ``rate`` to ``end_rate`` over the stage.
    A stage ends after ``requests`` requests or ``duration_s`` seconds of issuing."""

    name: str | None = None
    type: Literal["concurrency", "rate", "ramp"] = "concurrency"
    concurrency: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, gt=0)
    end_rate: float | None = Field(default=None, gt=0)
    arrival: Literal["poisson", "constant", "gamma"] = "poisson"
    burstiness: float = Field(default=1.0, gt=0, description="gamma shape k: 1 is Poisson, <1 burstier")
    requests: int | None = Field(default=None, ge=1)
    duration_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _complete(self) -> LoadShape:
        if self.type == "concurrency" and self.concurrency is None:
            raise ValueError("a concurrency stage needs `concurrency`")
        if self.type in ("rate", "ramp") and self.rate is None:
            raise ValueError(f"a {self.type} stage needs `rate` (requests per second)")
        if self.type == "ramp" and (self.end_rate is None or self.duration_s is None):
            raise ValueError("a ramp stage needs `end_rate` and `duration_s`")
        if self.requests is None and self.duration_s is None:
            raise ValueError("a stage needs `requests` or `duration_s`")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.type == "concurrency":
            return f"c{self.concurrency}"
        if self.type == "ramp":
            return f"ramp{self.rate:g}-{self.end_rate:g}"
        return f"r{self.rate:g}"


class SweepConfig(_Strict):
    """One stage per value: ``type: concurrency, values: [1, 4, 16]``, or rates."""

    type: Literal["concurrency", "rate"]
    values: list[float] = Field(min_length=1)
    requests: int | None = Field(default=None, ge=1)
    duration_s: float | None = Field(default=None, gt=0)
    arrival: Literal["poisson", "constant", "gamma"] = "poisson"
    burstiness: float = Field(default=1.0, gt=0)

    def stages(self) -> list[LoadShape]:
        common = {"requests": self.requests, "duration_s": self.duration_s}
        if self.type == "concurrency":
            return [LoadShape(type="concurrency", concurrency=int(v), **common) for v in self.values]
        return [LoadShape(type="rate", rate=v, arrival=self.arrival, burstiness=self.burstiness, **common)
                for v in self.values]


class PromptConfig(_Strict):
    source: Literal["synthetic", "sharegpt"] = "synthetic"
    input_tokens: int = Field(default=128, ge=1)
    output_tokens: int = Field(default=64, ge=1)
    count: int = Field(default=256, ge=1, description="distinct prompts, reused in order")
    dataset: Path | None = None
    tokenizer: Path | None = None

    @model_validator(mode="after")
    def _dataset_given(self) -> PromptConfig:
        if self.source == "sharegpt" and self.dataset is None:
            raise ValueError("source sharegpt needs `dataset` (a ShareGPT-format JSON file)")
        return self


class RequestConfig(_Strict):
    timeout_s: float = Field(default=600.0, gt=0)
    stall_timeout_s: float = Field(default=120.0, gt=0, description="no byte for this long ends the request")
    temperature: float = Field(default=0.0, ge=0)
    ignore_eos: bool = True
    extra_body: dict[str, Any] | None = Field(default=None, description=(
        "fields added to every request body (Triton gRPC: input tensors, int→INT32, float→FP32, bool→BOOL, "
        "str→BYTES); a field set to null is removed"))


class SLOConfig(_Strict):
    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    e2e_ms: float | None = Field(default=None, gt=0)

    @classmethod
    def parse(cls, spec: str) -> dict[str, float]:
        """``ttft_ms=500,tpot_ms=50`` (the CLI's ``--slo``)."""
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"--slo {spec!r}: expected key=value pairs such as ttft_ms=500")
            values[key.strip()] = float(value)
        return values


class MetricsConfig(_Strict):
    """The live Prometheus exporter (``loadgen.exporter``)."""

    enabled: bool = True
    host: str = Field(default_factory=lambda: os.environ.get("LOADGEN_METRICS_HOST", "127.0.0.1"),
                      description="127.0.0.1, or $LOADGEN_METRICS_HOST (0.0.0.0 in the compose image)")
    port: int = Field(default=9400, ge=0, le=65535, description="0: any free port (printed)")
    linger_s: float = Field(default=0.0, ge=0, description="keep serving after the run, for a last scrape")


class AgreementConfig(_Strict):
    """Compare every target's outputs with one target's (``loadgen.agreement``); keeps output texts."""

    reference: str = Field(description="the target whose outputs are the reference, e.g. baseline")


class Profile(_Strict):
    name: str = "adhoc"
    seed: int = 0
    model: str | None = Field(default=None, description="served model name; a target's own `model` wins")
    targets: list[TargetConfig] = Field(min_length=1)
    prompts: PromptConfig = PromptConfig()
    load: LoadShape | None = None
    stages: list[LoadShape] = []
    sweep: SweepConfig | None = None
    warmup: int = Field(default=0, ge=0, description="requests per target before the first stage, not counted")
    max_in_flight: int | None = Field(default=None, ge=1, description="cap on requests in flight")
    drain_timeout_s: float = Field(default=30.0, ge=0, description="grace for in-flight requests on SIGINT")
    slo: SLOConfig = SLOConfig()
    agreement: AgreementConfig | None = None
    metrics: MetricsConfig = MetricsConfig()
    request: RequestConfig = RequestConfig()
    out: Path | None = None

    @field_validator("targets")
    @classmethod
    def _unique_names(cls, targets: list[TargetConfig]) -> list[TargetConfig]:
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"target names must be unique: {names}")
        return targets

    @model_validator(mode="after")
    def _one_load_definition(self) -> Profile:
        given = [bool(self.load), bool(self.stages), bool(self.sweep)]
        if sum(given) != 1:
            raise ValueError("define the load once: `load`, `stages` or `sweep` (CLI: --concurrency or --rate)")
        if self.agreement and self.agreement.reference not in {t.name for t in self.targets}:
            raise ValueError(f"agreement.reference {self.agreement.reference!r} is not one of the targets")
        for target in self.targets:
            if target.model is None and self.model is None:
                raise ValueError(f"target {target.name}: no model name (give --model or the target's `model`)")
        return self

    def resolved_stages(self) -> list[LoadShape]:
        if self.load:
            return [self.load]
        if self.sweep:
            return self.sweep.stages()
        return list(self.stages)

    def model_for(self, target: TargetConfig) -> str:
        return target.model or self.model or ""

    def max_connections(self) -> int:
        """Connection pool size: the largest concurrency or the in-flight cap; 0 (no limit)
        for open loops without a cap, so that no request waits inside the HTTP client."""
        sizes = [s.concurrency for s in self.resolved_stages() if s.concurrency]
        if self.max_in_flight:
            sizes.append(self.max_in_flight)
        return max(sizes) if sizes else 0


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``set_dotted(d, "load.rate", 5)``: create intermediate mappings as needed."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as YAML (numbers, booleans, lists, null)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--set {text!r}: expected dotted.key=value")
    return key.strip(), yaml.safe_load(raw) if raw.strip() else ""


def load_profile(path: Path | None, overrides: list[tuple[str, Any]]) -> Profile:
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text())
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a profile is a YAML mapping")
        data = loaded
    for key, value in overrides:
        set_dotted(data, key, value)
    return Profile.model_validate(data)
