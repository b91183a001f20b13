"""Every registered engine is wired into the rest of the rig, and a new engine folder registers by itself.

Why: an ``EngineSpec`` names things that live in other files (a compose service, a Prometheus
scrape job, a Grafana dashboard, a Makefile target, loadgen client kinds). These tests read
those files and fail when a name in a spec has nothing behind it, so an engine cannot be
half-added. The last test copies ``engines/`` next to a new folder and runs the real CLI on
it: it fails if discovery ever becomes a hard-coded list.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from engines import registry
from engines.spec import EngineSpec

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict = COMPOSE["services"]
MAKEFILE = (ROOT / "Makefile").read_text()
# Until every client kind registers in loadgen's registry: the kinds the load generator speaks today.
CLIENT_KINDS_TODAY = {"openai-chat", "openai-completions", "triton-generate", "triton-grpc"}
ENGINES = registry.all()


def compose_prometheus_config() -> dict:
    """The file the compose ``prometheus`` service mounts as its configuration."""
    mounts = [v.split(":") for v in SERVICES["prometheus"]["volumes"]]
    source = next(src for src, dest, *_ in mounts if dest == "/etc/prometheus/prometheus.yml")
    return yaml.safe_load((ROOT / source).read_text())


def make_prerequisites(target: str) -> list[str]:
    match = re.search(rf"^{re.escape(target)}:([^=\n]*)$", MAKEFILE, re.MULTILINE)
    assert match, f"the Makefile has no `{target}` target"
    return match.group(1).split()


def known_client_kinds() -> set[str]:
    try:
        from loadgen.registry import CLIENTS
    except ImportError:
        return CLIENT_KINDS_TODAY
    return set(CLIENTS.names()) or CLIENT_KINDS_TODAY


def test_the_engine_folders_are_registered() -> None:
    assert {"baseline", "vllm", "triton"} <= set(registry.names())
    assert len(set(registry.names())) == len(ENGINES)
    # engines/trtllm is the GPU build of the `triton` engine, not an engine of its own.
    assert "trtllm" not in registry.names()
    assert "trtllm-build" in SERVICES[registry.get("triton").compose_service]["depends_on"]


def test_an_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(registry.UnknownEngineError, match=r"known: .*baseline"):
        registry.get("no-such-engine")


def test_two_engines_cannot_share_a_name() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(replace(registry.get("vllm"), description="another folder, same name"))


@pytest.mark.parametrize("spec", ENGINES, ids=lambda s: s.name)
def test_engine_has_a_compose_service(spec: EngineSpec) -> None:
    service = SERVICES.get(spec.compose_service)
    assert service is not None, f"{spec.name}: no `{spec.compose_service}` service in docker-compose.yml"
    assert "healthcheck" in service and service.get("profiles"), spec.name


@pytest.mark.parametrize("spec", ENGINES, ids=lambda s: s.name)
def test_engine_has_a_prometheus_scrape_job(spec: EngineSpec) -> None:
    jobs = {job["job_name"]: job for job in compose_prometheus_config()["scrape_configs"]}
    job = jobs.get(spec.scrape_job)
    assert job is not None, f"{spec.name}: no scrape job {spec.scrape_job!r} in the compose Prometheus config"
    hosts = {target.rsplit(":", 1)[0] for static in job["static_configs"] for target in static["targets"]}
    assert hosts == {spec.compose_service}, f"{spec.name}: job {spec.scrape_job} scrapes {hosts}"
    assert job.get("metrics_path", "/metrics") == spec.metrics_path


@pytest.mark.parametrize("spec", ENGINES, ids=lambda s: s.name)
def test_engine_has_a_committed_dashboard(spec: EngineSpec) -> None:
    path = ROOT / spec.dashboard_file
    assert path.is_file(), f"{spec.name}: {spec.dashboard_file} is missing (python -m grafana.dashboards)"
    assert json.loads(path.read_text())["uid"] == spec.dashboard


@pytest.mark.parametrize("spec", ENGINES, ids=lambda s: s.name)
def test_engine_install_target_exists_and_make_engines_reaches_it(spec: EngineSpec) -> None:
    make_prerequisites(spec.install_target)
    assert spec.install_target == "setup" or spec.install_target in make_prerequisites("engines"), (
        f"{spec.name}: `make {spec.install_target}` is not part of `make engines` (so not of make demo/test)")


@pytest.mark.parametrize("spec", ENGINES, ids=lambda s: s.name)
def test_engine_speaks_client_kinds_the_load_generator_knows(spec: EngineSpec) -> None:
    unknown = set(spec.apis) - known_client_kinds()
    assert not unknown, f"{spec.name} serves {unknown}, which no loadgen client speaks"


ECHO_ENGINE = '''
    """A test engine: Python's http.server stands in for a server (GET / answers 200)."""
    import sys
    from pathlib import Path

    from engines.spec import EngineSpec, Launch
    from stack.process import ManagedProcess


    def start(model_dir: Path, log_dir: Path, free_port) -> Launch:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = ManagedProcess(name="echo", argv=[sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                                    str(port)],
                                 log_path=log_dir / "echo.log", ready_url=f"{url}/", ready_timeout_s=30)
        return Launch(process=process, urls={"openai-completions": url}, metrics_url=f"{url}/metrics")


    ENGINE = EngineSpec(name="echo", description="a folder the tests add", apis=("openai-completions",),
                        model="echo", start=start, install_target="setup", compose_service="echo",
                        dashboard="llm-echo")
'''


@pytest.mark.slow  # seconds: left out of make test-fast
def test_a_new_engine_folder_is_registered_and_started_without_any_other_edit(tmp_path: Path) -> None:
    """The real ``engines/`` plus one new folder, and the real CLIs run on it: nothing else changed."""
    shutil.copytree(ROOT / "engines", tmp_path / "engines", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "engines" / "echo").mkdir()
    (tmp_path / "engines" / "echo" / "__init__.py").write_text(textwrap.dedent(ECHO_ENGINE))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)

    listed = run("-m", "engines.registry")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == sorted([*registry.names(), "echo"])
    assert "baseline,echo,triton,vllm" in run("-m", "stack.demo", "--help").stdout
    state = tmp_path / "state"
    up = run("-m", "stack.local", "up", "--engines", "echo", "--model", str(model), "--dir", str(state))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "echo" in up.stdout and "openai-completions http://127.0.0.1:" in up.stdout
        status = run("-m", "stack.local", "status", "--dir", str(state))
        assert status.returncode == 0 and "ready" in status.stdout, status.stdout + status.stderr
    finally:
        down = run("-m", "stack.local", "down", "--dir", str(state))
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
