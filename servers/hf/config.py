"""The baseline server's settings: one pydantic model, filled from the command line."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ServerConfig(BaseModel):
    model: str = Field(description="local Hugging Face model folder")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?)$")
    dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        default=None, description="default: float32 on CPU, bfloat16 on CUDA")
    max_queue: int = Field(default=256, ge=0, description="waiting requests beyond this are answered 429")
    served_model_name: str | None = Field(default=None, description="default: the --model argument, as vLLM")
    scheduler: Literal["naive", "continuous"] = "naive"
    max_num_seqs: int = Field(default=32, ge=1, le=1024,
                              description="continuous scheduler: sequences in one batch at most")
    kv_cache_tokens: int | None = Field(default=None, ge=16,
                                        description="continuous scheduler: KV-cache token budget (prompt + max_tokens "
                                                    "reserved per admitted sequence); default "
                                                    "max(max_num_seqs x 1024, max_model_len)")
    max_model_len: int | None = Field(default=None, ge=16, description="default: the model's context length")
    log_level: str = "info"
