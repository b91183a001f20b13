"""docker-compose.yml and the Dockerfiles, checked without Docker: the Compose Specification's JSON schema
(the copy check-jsonschema vendors), the rig's own rules, and hadolint."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import check_jsonschema
import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
GPU_SERVICES = {"baseline", "vllm", "trtllm-build", "triton", "dcgm-exporter"}
ONE_SHOT_JOBS = {"model", "trtllm-build"}
ONE_SHOT_OR_SHELL = ONE_SHOT_JOBS | {"loadgen"}  # not servers: jobs, and a shell to run loadgen from


def test_compose_validates_against_the_compose_specification_schema() -> None:
    schema_path = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert not errors, "\n".join(errors)


def test_the_schema_check_can_fail() -> None:
    schema_path = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text())
    broken = {"services": {"x": {"image": "a:1", "depends_on": {"y": {"condition": "when_ready"}}}}}
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


def test_every_referenced_file_exists() -> None:
    for name, svc in SERVICES.items():
        build = svc.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./") and not source.startswith("./results"):
                assert (ROOT / source).exists(), f"{name}: {source}"
        for arg in svc.get("command", []) + svc.get("entrypoint", []):
            if isinstance(arg, str) and arg.startswith(("engines.", "stack.")):
                assert (ROOT / (arg.replace(".", "/") + ".py")).is_file(), f"{name}: module {arg}"


def test_depends_on_names_services_and_waits_properly() -> None:
    for name, svc in SERVICES.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            expected = "service_completed_successfully" if dep in ONE_SHOT_JOBS else "service_healthy"
            assert spec["condition"] == expected, f"{name} → {dep}"
            assert dep in ONE_SHOT_JOBS or "healthcheck" in SERVICES[dep], f"{dep} has no healthcheck to wait for"


def test_ports_are_bound_to_localhost_and_images_pinned() -> None:
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"
        image = svc.get("image", "")
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{name}: image {image!r} is not pinned to a tag"


def test_gpu_services_reserve_a_gpu_and_servers_have_healthchecks() -> None:
    for name in GPU_SERVICES:
        devices = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d["capabilities"] for d in devices), name
    for name, svc in SERVICES.items():
        if name not in ONE_SHOT_OR_SHELL:
            assert "healthcheck" in svc, f"{name} has no healthcheck"
    engines = {"baseline", "vllm", "triton"}
    assert all(SERVICES[e].get("profiles") for e in engines)  # one GPU engine at a time
    assert len({p for e in engines for p in SERVICES[e]["profiles"]}) == len(engines)


def test_no_default_grafana_password_and_every_variable_in_env_example() -> None:
    password = SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GRAFANA_ADMIN_PASSWORD:?")  # compose refuses to start without it
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    assert used <= example, f"missing from .env.example: {used - example}"


@pytest.mark.parametrize("dockerfile", sorted((ROOT / "docker").glob("*.Dockerfile")), ids=lambda p: p.name)
def test_dockerfiles_pass_hadolint(dockerfile: Path) -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([binary, "--no-color", str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_dependency_is_started_with_every_profile_that_needs_it() -> None:
    """Compose refuses `--profile X up` when a service of X depends on one that X does not enable."""
    for name, svc in SERVICES.items():
        for dep in svc.get("depends_on") or {}:
            dep_profiles = set(SERVICES[dep].get("profiles") or [])
            if dep_profiles:
                assert set(svc.get("profiles") or []) <= dep_profiles, f"{name} needs {dep} outside its profiles"


def test_triton_serves_the_repository_the_build_job_renders() -> None:
    build, triton, loadgen = SERVICES["trtllm-build"], SERVICES["triton"], SERVICES["loadgen"]
    rendered = build["command"][build["command"].index("--repository") + 1]
    engines_dir = build["command"][build["command"].index("--engines-dir") + 1]
    served = next(a.split("=", 1)[1] for a in triton["command"] if a.startswith("--model-repository="))
    assert served == rendered and rendered.startswith(engines_dir + "/")

    def volume_at(svc: dict, path: str) -> str:
        return next(v.split(":")[0] for v in svc["volumes"] if v.split(":")[1] == path)

    assert volume_at(build, engines_dir) == volume_at(triton, engines_dir) == volume_at(loadgen, engines_dir)
    assert loadgen["environment"]["LOADGEN_ENGINE_MANIFESTS"] == engines_dir + "/manifest.json"
    assert triton["image"] == build["image"]  # engines only load in the TensorRT-LLM version that built them
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    for name in ("baseline", "vllm"):
        assert "/health" in " ".join(SERVICES[name]["healthcheck"]["test"])
