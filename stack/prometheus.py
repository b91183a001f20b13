"""A real Prometheus for local runs: a generated scrape configuration and a plain process.

Why generated: on the CPU stack every engine and the load generator listen on free ports
chosen at start-up, so the scrape targets exist only then. The compose stack has fixed
service names instead (``docker/prometheus/prometheus.yml``). Job names are the same in
both, so a query that selects by ``job`` works in either. Prometheus is Debian's package
(``make prometheus``), started with a temporary config and data directory, stopped by PID.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from stack.process import EngineStartError, ManagedProcess, free_port

SCRAPE_INTERVAL_S = 1.0  # short runs on CPU: one-second resolution


def scrape_config(jobs: Mapping[str, Sequence[str]], interval_s: float = SCRAPE_INTERVAL_S) -> dict:
    """``jobs``: job name → ``host:port`` targets (each serving ``/metrics``)."""
    return {
        "global": {"scrape_interval": f"{interval_s:g}s", "evaluation_interval": f"{interval_s:g}s"},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}
                           for job, targets in jobs.items() if targets],
    }


def host_port(url: str) -> str:
    """``http://127.0.0.1:8000/metrics`` → ``127.0.0.1:8000``."""
    return url.split("://", 1)[-1].split("/", 1)[0]


def prometheus_process(jobs: Mapping[str, Sequence[str]], workdir: Path, port: int | None = None) -> ManagedProcess:
    binary = shutil.which("prometheus")
    if binary is None:
        raise EngineStartError("prometheus is not installed: run `make prometheus` (Debian's package)")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(jobs), sort_keys=False))
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle", "--log.level=warn"]
    return ManagedProcess(name="Prometheus", argv=argv, log_path=workdir / "prometheus.log",
                          ready_url=f"http://127.0.0.1:{port}/-/ready", ready_timeout_s=60)
