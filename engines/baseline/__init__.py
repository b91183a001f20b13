"""The baseline: the rig's own OpenAI-compatible server (``servers.hf``), the reference the demo compares with."""

from engines.baseline.launch import start
from engines.spec import LOCAL_MODEL_NAME, EngineSpec

ENGINE = EngineSpec(
    name="baseline",
    description="Transformers + FastAPI (servers.hf), the reference",
    apis=("openai-completions", "openai-chat"),
    model=LOCAL_MODEL_NAME,
    start=start,
    install_target="setup",
    compose_service="baseline",
    dashboard="llm-baseline",
)
