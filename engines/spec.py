"""What an engine is, in one record: ``EngineSpec``.

Why a record: before it, an engine was spread over the local stack's if-chain, the demo's
per-protocol branches, the Makefile, compose, Prometheus and the dashboards, and adding one
meant finding every place. Now each engine folder (``engines/<name>/__init__.py``) exports
``ENGINE: EngineSpec``; the local stack and the demo loop over the registry
(``engines.registry``), and a static test checks the compose service, scrape job, dashboard
and install target named here against the files that define them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stack.process import ManagedProcess

LOCAL_MODEL_NAME = "smollm2"  # the name the local stack's OpenAI servers serve the real small model under

PortSource = Callable[[], int]
"""Hands out one free 127.0.0.1 port per call (``stack.process.free_port``)."""


@dataclass(frozen=True)
class Launch:
    """An engine ready to start: its process (not started yet) and where it will answer.

    ``urls`` maps each loadgen client kind the engine serves to the base URL that client takes
    (``http://127.0.0.1:P`` for HTTP APIs, ``grpc://127.0.0.1:P`` for Triton's gRPC).
    """

    process: ManagedProcess
    urls: Mapping[str, str]
    metrics_url: str


Starter = Callable[[Path, Path, PortSource], Launch]
"""``start(model_dir, log_dir, free_port) -> Launch``: builds the local CPU process; raises
FileNotFoundError (with the ``make`` target to run) when the engine is not installed."""


@dataclass(frozen=True)
class EngineSpec:
    """One engine: what it serves, how it starts locally, and where it lives in the GPU stack.

    - ``apis``: the loadgen client kinds (wire APIs) it serves; the first is its main one, the
      one the demo loads and the target named after the engine.
    - ``model``: the model name clients put in requests on the local stack (OpenAI ``model``,
      Triton's model name).
    - ``start``: builds the local process on free ports (see ``Starter``).
    - ``install_target``: the Makefile target that installs it for the local stack.
    - ``compose_service``: its service in docker-compose.yml; also the host its Prometheus
      scrape job (named ``name``, on the local stack and in compose alike) reads.
    - ``dashboard``: the uid of its Grafana dashboard, committed as ``grafana/dashboards/<uid>.json``.
    - ``metrics_path``: where its Prometheus metrics are, on its metrics port.
    """

    name: str
    description: str
    apis: tuple[str, ...]
    model: str
    start: Starter = field(repr=False)
    install_target: str
    compose_service: str
    dashboard: str
    metrics_path: str = "/metrics"

    def __post_init__(self) -> None:
        if not self.apis:
            raise ValueError(f"engine {self.name!r} serves no API")

    @property
    def scrape_job(self) -> str:
        """The Prometheus job name: the engine's name, so one query selects it locally and in compose."""
        return self.name

    @property
    def dashboard_file(self) -> str:
        return f"grafana/dashboards/{self.dashboard}.json"
