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
from typing import Annotated, Any, Union

import yaml
from pydantic import BeforeValidator, Field, field_validator, model_validator

from loadgen import safe_yaml
from loadgen.basemodel import StrictModel
from loadgen.clients.endpoint import HTTP_SCHEMES, parse_url, refuse_credentials
from loadgen.headers import check_header
from loadgen.registry import CLIENTS, SHAPES, SOURCES, Registry
from loadgen.shapes.base import LoadShape


class TargetConfig(StrictModel):
    """A server to load: a name for the results, its wire API, where it is, the model it serves."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    kind: str = Field(description="a registered client kind (loadgen.clients): openai-chat, triton-grpc, ...")
    url: str
    model: str | None = None
    headers: dict[str, str] | None = Field(default=None, description=(
        "extra request headers for this target (over request.headers); sensitive values are redacted in every file"))
    api_key_env: str | None = Field(default=None, description=(
        "environment variable holding this target's API key (over request.api_key_env)"))
    metrics_url: str | None = Field(default=None, description=(
        "the engine's Prometheus page (loadgen.observe); default for openai-* kinds: the target URL + /metrics"))
    pid: int | None = Field(default=None, ge=1, description=(
        "the engine's process on this machine, sampled with its descendants (CPU, RSS); the local stack fills it"))
    price_per_hour: float | None = Field(default=None, ge=0, description=(
        "what this target's machine costs per hour, in USD (e.g. its GPU's rate): gives each stage a `cost` block "
        "(loadgen/cost.py); none is assumed without it"))

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        return CLIENTS.check(kind)

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, headers: dict[str, str] | None) -> dict[str, str] | None:
        return dict(check_header(k, v) for k, v in headers.items()) if headers else headers

    @field_validator("metrics_url")
    @classmethod
    def _no_credentials(cls, url: str | None) -> str | None:
        if url is not None:
            refuse_credentials(url, "metrics_url")
        return url

    @model_validator(mode="after")
    def _valid_url(self) -> TargetConfig:
        """Before anything is created: a URL this kind can reach (a scheme it speaks, a host)."""
        try:
            parse_url(self.url, getattr(CLIENTS.get(self.kind), "url_schemes", HTTP_SCHEMES))
        except ValueError as exc:
            raise ValueError(f"target {self.name}: {exc}") from None
        return self

    @classmethod
    def parse(cls, spec: str) -> TargetConfig:
        """``NAME=KIND@URL`` (the CLI's ``--target``)."""
        match = re.fullmatch(r"([^=]+)=([a-z0-9-]+)@(.+)", spec)
        if not match:
            raise ValueError(f"--target {spec!r}: expected NAME=KIND@URL, e.g. vllm=openai-chat@http://127.0.0.1:8000")
        return cls(name=match[1], kind=match[2], url=match[3])


def _union(registry: Registry[Any], tag: str) -> Any:
    """The discriminated union of every class in a registry, told apart by the ``tag`` field."""
    classes = [cls for _, cls in registry.items()]
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[tuple(classes)], Field(discriminator=tag)]  # noqa: UP007 (a runtime tuple of classes)


def _tag_default(tag: str, value: str) -> BeforeValidator:
    """A section without its tag takes ``value``: a stage without ``type`` is a concurrency stage,
    ``prompts`` without ``source`` synthetic (the defaults from before plug-ins had names)."""

    def fill(data: Any) -> Any:
        return {**data, tag: value} if isinstance(data, dict) and tag not in data else data

    return BeforeValidator(fill)


LoadStage = Annotated[_union(SHAPES, "type"), _tag_default("type", "concurrency")]
PromptConfig = Annotated[_union(SOURCES, "source"), _tag_default("source", "synthetic")]


class SweepConfig(StrictModel):
    """One stage per value of the shape's sweep field: ``type: concurrency, values: [1, 4, 16]``, or rates."""

    type: str
    values: list[float] = Field(min_length=1)
    requests: int | None = Field(default=None, ge=1)
    duration_s: float | None = Field(default=None, gt=0)
    arrival: str | None = Field(default=None, description="open-loop shapes: the arrival process")
    burstiness: float | None = Field(default=None, gt=0)
    stop_on_saturation: bool | None = Field(default=None, description="every stage ends once saturated")

    @field_validator("type")
    @classmethod
    def _sweepable(cls, name: str) -> str:
        if SHAPES.get(name).sweep_field is None:
            sweepable = [n for n, c in SHAPES.items() if c.sweep_field]
            raise ValueError(f"a {name} stage has no single value to sweep; sweep one of {', '.join(sweepable)}")
        return name

    def stages(self) -> list[LoadShape]:
        shape = SHAPES.get(self.type)
        common = self.model_dump(exclude={"type", "values"}, exclude_none=True)
        return [shape.model_validate({"type": self.type, shape.sweep_field: value, **common}) for value in self.values]


class RequestConfig(StrictModel):
    timeout_s: float = Field(default=600.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0, allow_inf_nan=False, description=(
        "opening one connection (TCP connect and the TLS handshake) may take this long; past it the request is a "
        "`connect` error (an https:// target on a plain-HTTP port waits for a handshake that never comes)"))
    stall_timeout_s: float = Field(default=120.0, gt=0, description="no byte for this long ends the request")
    temperature: float = Field(default=0.0, ge=0)
    ignore_eos: bool = True
    extra_body: dict[str, Any] | None = Field(default=None, description=(
        "fields added to every request body (Triton gRPC: input tensors, int→INT32, float→FP32, bool→BOOL, "
        "str→BYTES); a field set to null is removed"))
    headers: dict[str, str] = Field(default_factory=dict, description=(
        "extra headers on every request (HTTP headers; gRPC metadata); sensitive values are redacted in every file"))
    api_key_env: str | None = Field(default=None, description=(
        "environment variable holding the API key, sent as `Authorization: Bearer <key>` (the key is never written)"))
    ca_cert: Path | None = Field(default=None, description="PEM file of the CA that signed https:// / grpcs:// targets")
    insecure: bool = Field(default=False, description="TLS without verifying the server's certificate (HTTP kinds)")

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        return dict(check_header(k, v) for k, v in headers.items())


class SLOConfig(StrictModel):
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


class MetricsConfig(StrictModel):
    """The live Prometheus exporter (``loadgen.exporter``)."""

    enabled: bool = True
    host: str = Field(default_factory=lambda: os.environ.get("LOADGEN_METRICS_HOST", "127.0.0.1"),
                      description="127.0.0.1, or $LOADGEN_METRICS_HOST (0.0.0.0 in the compose image)")
    port: int = Field(default=9400, ge=0, le=65535, description="0: any free port (printed)")
    linger_s: float = Field(default=0.0, ge=0, description="keep serving after the run, for a last scrape")


class ObserveConfig(StrictModel):
    """The server's side of a run (``loadgen.observe``): engine metrics and resources, sampled off the loop."""

    enabled: bool = True
    interval_s: float = Field(default=1.0, ge=0.1, description="seconds between samples (and at every stage's "
                                                               "start and end)")
    nvml: bool = Field(default=True, description="GPU memory, utilization and power through NVML when this "
                                                 "machine has a GPU")
    dcgm_url: str | None = Field(default=None, description=(
        "the DCGM exporter's page, e.g. http://dcgm-exporter:9400/metrics in the compose stack"))


class AgreementConfig(StrictModel):
    """Compare every target's outputs with one target's (``loadgen.verdicts.agreement``); keeps output texts."""

    reference: str = Field(description="the target whose outputs are the reference, e.g. baseline")
    references: dict[str, str] = Field(default_factory=dict, description=(
        "targets compared with another reference than `reference`, e.g. {vllm-chat: baseline-chat}: a chat "
        "template changes what the model reads, so chat answers are compared with chat answers"))



class Profile(StrictModel):
    name: str = "adhoc"
    seed: int = 0
    model: str | None = Field(default=None, description="served model name; a target's own `model` wins")
    targets: list[TargetConfig] = Field(min_length=1)
    prompts: PromptConfig = Field(default_factory=lambda: SOURCES.get("synthetic")())
    load: LoadStage | None = None
    stages: list[LoadStage] = Field(default_factory=list)
    sweep: SweepConfig | None = None
    warmup: int = Field(default=0, ge=0, description="requests per target before the first stage, not counted")
    max_in_flight: int | None = Field(default=None, ge=1, description="cap on requests in flight")
    drain_timeout_s: float = Field(default=30.0, ge=0, description="grace for in-flight requests on SIGINT")
    workers: int = Field(default=1, ge=1, le=256, description=(
        "client processes, each with its own event loop, sharing one schedule (loadgen.scaling.coordinator)"))
    slo: SLOConfig = SLOConfig()
    usd_per_kwh: float | None = Field(default=None, ge=0, description=(
        "electricity price: prices measured energy (GPU runs) in each `cost` block (loadgen/cost.py)"))
    agreement: AgreementConfig | None = None
    metrics: MetricsConfig = MetricsConfig()
    observe: ObserveConfig = ObserveConfig()
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
        if self.agreement:
            names = {t.name for t in self.targets}
            if self.agreement.reference not in names:
                raise ValueError(f"agreement.reference {self.agreement.reference!r} is not one of the targets")
            for name in (*self.agreement.references, *self.agreement.references.values()):
                if name not in names:
                    raise ValueError(f"agreement.references names {name!r}, which is not one of the targets")
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


DELETE = object()  # an override value that removes the key


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``set_dotted(d, "load.rate", 5)``: create intermediate mappings as needed (``DELETE`` removes the key)."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    if value is DELETE:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as YAML (numbers, booleans, lists, null)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--set {text!r}: expected dotted.key=value")
    return key.strip(), safe_yaml.loads(raw) if raw.strip() else ""


def load_profile(path: Path | None, overrides: list[tuple[str, Any]]) -> Profile:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = safe_yaml.load_file(Path(path), "profile")
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {str(exc)[:300]}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a profile is a YAML mapping")
        data = loaded
    for key, value in overrides:
        set_dotted(data, key, value)
    return Profile.model_validate(data)


def with_prices(profile: Profile, prices: list[str]) -> Profile:
    """``--price-per-hour NAME=USD`` (repeatable) onto the named targets' ``price_per_hour``; a name that is not a
    target, or a price that is not a non-negative number, is a ValueError saying which."""
    names = {t.name for t in profile.targets}
    found: dict[str, float] = {}
    for text in prices:
        name, sep, usd = text.partition("=")
        try:
            price = float(usd)
        except ValueError:
            price = -1.0
        if not sep or price < 0 or price != price:
            raise ValueError(f"--price-per-hour {text!r}: expected NAME=USD, a non-negative number of dollars")
        if name not in names:
            raise ValueError(f"--price-per-hour names {name!r}, which is not one of the targets ({', '.join(names)})")
        found[name] = price
    targets = [t.model_copy(update={"price_per_hour": found[t.name]}) if t.name in found else t
               for t in profile.targets]
    return profile.model_copy(update={"targets": targets})
