"""Start the baseline (``servers.hf``, Transformers + FastAPI) from the rig's own venv.

Why the rig's venv: the baseline is the project's own server, installed by ``make setup``
with the load generator; it needs no venv of its own, unlike vLLM and Triton.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from engines.spec import LOCAL_MODEL_NAME, Launch, PortSource
from stack.process import DEFAULT_READY_TIMEOUT_S, ManagedProcess


def baseline_process(model_dir: str | Path, port: int, log_dir: Path, *, served_model_name: str = LOCAL_MODEL_NAME,
                     extra_args: Sequence[str] = (), python: str = sys.executable,
                     ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S) -> ManagedProcess:
    argv = [python, "-m", "servers.hf", "--model", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
            "--served-model-name", served_model_name, *extra_args]
    return ManagedProcess(name="baseline (servers.hf)", argv=argv, log_path=log_dir / f"baseline-{port}.log",
                          ready_url=f"http://127.0.0.1:{port}/health", ready_timeout_s=ready_timeout_s)


def start(model_dir: Path, log_dir: Path, free_port: PortSource) -> Launch:
    """The local stack's baseline: one port for both OpenAI APIs and /metrics."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return Launch(process=baseline_process(model_dir, port, log_dir),
                  urls={"openai-completions": url, "openai-chat": url}, metrics_url=f"{url}/metrics")
