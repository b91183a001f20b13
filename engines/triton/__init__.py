"""Triton Inference Server: the real ``tritonserver`` on CPU with a python-backend stand-in for TensorRT-LLM.

One engine, two builds behind the same wire APIs and model name (``ensemble``): locally the
CPU stand-in in this folder (``make triton``); in compose the ``triton`` service runs
TensorRT-LLM on a GPU, its engine and model repository built by ``engines/trtllm`` (the
``trtllm-build`` job). So ``engines/trtllm`` exports no ``ENGINE`` of its own: it is how the
GPU ``triton`` is built, not a different server to load.
"""

from engines.spec import EngineSpec
from engines.triton.launch import MODEL_NAME, start

ENGINE = EngineSpec(
    name="triton",
    description="Triton: python-backend stand-in on CPU, TensorRT-LLM (engines/trtllm) on a GPU",
    apis=("triton-generate", "triton-grpc"),
    model=MODEL_NAME,
    start=start,
    install_target="triton",
    compose_service="triton",
    dashboard="llm-triton",
)
