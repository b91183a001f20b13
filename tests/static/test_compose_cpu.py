"""The compose CPU flavour (docker-compose.cpu.yml) against the GPU file: both merged by `docker compose config`,
and nothing may differ but images, builds, devices and engine commands (issue 25). Needs the docker CLI with the
compose plug-in (`make docker`), not a daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from engines import registry
from tests.prerequisites import unavailable

pytestmark = pytest.mark.docker  # the docker CLI's compose plug-in merges the files (no daemon needed)
ROOT = Path(__file__).resolve().parents[2]
# What may differ per service: images (and how they are built), devices (GPU reservations, and the unlimited
# memlock that pins host memory for GPU transfers), and the engine's command.
ALLOWED = {"image", "build", "deploy", "ulimits", "command", "entrypoint"}
# Beyond that, by name: the GPU-only DCGM exporter never starts on CPU (profile `gpu`), and Prometheus reads the
# GPU config without its `dcgm` job.
EXCEPTIONS = {("dcgm-exporter", "profiles"), ("prometheus", "volumes")}
GPU_ONLY_JOBS = {"dcgm"}


def merged(*files: str) -> dict:
    if shutil.which("docker") is None or subprocess.run(["docker", "compose", "version"],
                                                        capture_output=True).returncode != 0:
        unavailable("the docker CLI or its compose plug-in", "run `make docker` (Engine and Compose v2)")
    argv = ["docker", "compose", *[a for f in files for a in ("-f", str(ROOT / f))], "--profile", "*",
            "config", "--format", "json"]
    env = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "static-check", "MODEL_ID": "static/check"}
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def differences(gpu: dict, cpu: dict) -> list[str]:
    """Every (service, key) where the merged CPU configuration differs from the GPU one and may not."""
    found = [f"service {name}: only in one flavour" for name in set(gpu["services"]) ^ set(cpu["services"])]
    for name, service in gpu["services"].items():
        other = cpu["services"].get(name, {})
        for key in set(service) | set(other):
            if service.get(key) != other.get(key) and key not in ALLOWED and (name, key) not in EXCEPTIONS:
                found.append(f"{name}.{key}: {service.get(key)!r} -> {other.get(key)!r}")
    return found


def test_the_cpu_flavour_differs_only_in_images_devices_and_engine_flags() -> None:
    gpu, cpu = merged("docker-compose.yml"), merged("docker-compose.yml", "docker-compose.cpu.yml")
    assert differences(gpu, cpu) == []
    def top(config: dict, own: set[str]) -> dict:  # volumes, networks, name; not services or x- anchors
        return {k: v for k, v in config.items() if k not in {"services", *own} and not k.startswith("x-")}

    assert top(gpu, set()) == top(cpu, {"secrets"})
    for name, service in cpu["services"].items():
        assert "devices" not in json.dumps(service.get("deploy") or {}), f"{name} still reserves a GPU"
    assert cpu["services"]["dcgm-exporter"]["profiles"] == ["gpu"]


def test_the_difference_check_can_fail() -> None:
    gpu = merged("docker-compose.yml")
    cpu = json.loads(json.dumps(gpu))
    cpu["services"]["vllm"]["ports"] = ["127.0.0.1:9999:8000"]
    cpu["services"]["loadgen"]["volumes"] = []
    cpu["services"]["baseline"]["healthcheck"] = {"test": ["CMD", "true"]}
    del cpu["services"]["grafana"]
    found = differences(gpu, cpu)
    for flagged in ("vllm.ports", "loadgen.volumes", "baseline.healthcheck", "service grafana"):
        assert any(line.startswith(flagged) for line in found), flagged


def test_prometheus_scrapes_the_gpu_jobs_but_the_gpu_only_ones() -> None:
    gpu = yaml.safe_load((ROOT / "docker/prometheus/prometheus.yml").read_text())
    cpu = yaml.safe_load((ROOT / "docker/prometheus/prometheus.cpu.yml").read_text())
    assert cpu["global"] == gpu["global"]
    assert cpu["scrape_configs"] == [j for j in gpu["scrape_configs"] if j["job_name"] not in GPU_ONLY_JOBS]
    mount = merged("docker-compose.yml", "docker-compose.cpu.yml")["services"]["prometheus"]["volumes"]
    assert any(v["source"].endswith("docker/prometheus/prometheus.cpu.yml") for v in mount)


class ComposeLoader(yaml.SafeLoader):
    """YAML as compose reads it: ``!reset`` and ``!override`` (merge directives) keep their value."""


for _tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(_tag, lambda loader, node: (
        loader.construct_mapping(node) if isinstance(node, yaml.MappingNode)
        else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_scalar(node)))


def image_entrypoint(dockerfile: Path) -> list[str]:
    found = re.findall(r"^ENTRYPOINT (\[.*\])$", dockerfile.read_text(), re.MULTILINE)
    return json.loads(found[-1]) if found else []


def test_cpu_engines_start_through_the_launchers_their_engine_specs_name() -> None:
    cpu = merged("docker-compose.yml", "docker-compose.cpu.yml")["services"]
    for spec in registry.all():
        service = cpu[spec.compose_service]
        entrypoint = service.get("entrypoint") or image_entrypoint(ROOT / service["build"]["dockerfile"])
        launcher = spec.start.__module__  # engines.<name>.launch: the local CPU stack's start()
        assert entrypoint[:3] == ["python", "-m", launcher], (spec.name, entrypoint)


def test_cpu_images_build_from_public_bases_by_default_and_reach_only_package_registries() -> None:
    compose = yaml.load((ROOT / "docker-compose.cpu.yml").read_text(), ComposeLoader)
    for name, service in compose["services"].items():
        build = service.get("build")
        if not build:
            continue
        text = (ROOT / build["dockerfile"]).read_text()
        assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", text, re.MULTILINE), name
        assert "FROM ${BASE_IMAGE}" in text and "nvidia" not in text.split("FROM", 1)[1].lower(), name
        assert build["args"]["BASE_IMAGE"] == "${RIG_PYTHON_IMAGE:-python:3.11-slim-bookworm}"
        assert build["network"] == "host" and build["secrets"] == ["pip-cert"], name
    assert compose["services"]["prometheus"]["image"] == "${RIG_PROMETHEUS_IMAGE:-prom/prometheus:v3.15.0}"


def test_the_offline_env_names_the_stand_ins_the_script_builds() -> None:
    env = dict(line.split("=", 1) for line in (ROOT / "docker/cpu/offline.env").read_text().splitlines()
               if line and not line.startswith("#"))
    script = (ROOT / "docker/cpu/standins.sh").read_text()
    assert f"BASE={env['RIG_PYTHON_IMAGE']}" in script and f"PROMETHEUS={env['RIG_PROMETHEUS_IMAGE']}" in script
    assert set(env["COMPOSE_PROFILES"].split(",")) == {"baseline", "vllm", "triton", "locust"}
