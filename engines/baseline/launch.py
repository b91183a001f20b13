"""Start the baseline (``servers.hf``, Transformers + FastAPI) from the rig's own venv.

Why the rig's venv: the baseline is the project's own server, installed by ``make setup``
with the load generator; it needs no venv of its own, unlike vLLM and Triton.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from engines.serve import exec_engine, serve_parser
from engines.spec import LOCAL_MODEL_NAME, Launch, PortSource
from stack.process import DEFAULT_READY_TIMEOUT_S, ManagedProcess


def baseline_argv(model_dir: str | Path, port: int, served_model_name: str = LOCAL_MODEL_NAME,
                  extra_args: Sequence[str] = (), python: str = sys.executable, host: str = "127.0.0.1") -> list[str]:
    return [python, "-m", "servers.hf", "--model", str(model_dir), "--host", host, "--port", str(port),
            "--served-model-name", served_model_name, *extra_args]


def baseline_process(model_dir: str | Path, port: int, log_dir: Path, *, served_model_name: str = LOCAL_MODEL_NAME,
                     extra_args: Sequence[str] = (), python: str = sys.executable,
                     ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S) -> ManagedProcess:
    argv = baseline_argv(model_dir, port, served_model_name, extra_args, python)
    return ManagedProcess(name="baseline (servers.hf)", argv=argv, log_path=log_dir / f"baseline-{port}.log",
                          ready_url=f"http://127.0.0.1:{port}/health", ready_timeout_s=ready_timeout_s)


def start(model_dir: Path, log_dir: Path, free_port: PortSource) -> Launch:
    """The local stack's baseline: one port for both OpenAI APIs and /metrics."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return Launch(process=baseline_process(model_dir, port, log_dir),
                  urls={"openai-completions": url, "openai-chat": url}, metrics_url=f"{url}/metrics")


def main(argv: list[str] | None = None) -> None:
    """The compose CPU flavour's ``baseline`` service; flags after the launcher's go to ``servers.hf``."""
    args, extra = serve_parser("baseline").parse_known_args(argv)
    exec_engine(baseline_argv(args.model, args.port, args.served_model_name, extra, host=args.host))


if __name__ == "__main__":
    main()
