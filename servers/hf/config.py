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
    max_num_batched_tokens: int = Field(default=2048, ge=1,
                                        description="continuous scheduler: tokens in one forward pass at most "
                                                    "(running sequences' next tokens plus chunks of prompts "
                                                    "being prefilled; vLLM's --max-num-batched-tokens, 2048 "
                                                    "on CPU too)")
    torch_threads: int | None = Field(default=None, ge=1,
                                      description="torch intra-op threads of the generation thread; default with "
                                                  "the naive scheduler on CPU: all cores but one (left to the "
                                                  "event loop, as vLLM-CPU reserves one), else torch's default")
    linear_kernel: Literal["torch", "onednn"] | None = Field(
        default=None, description="linear layers: torch (MKL, as stored) or onednn (weights prepacked once, "
                                  "the layout inductor uses); default onednn for float32 on CPU, else torch")
    # Abuse limits (servers/hf/README.md, "Limits"): each one answers or ends a request before it can
    # cost the server more than a request that fits the context.
    max_request_bytes: int = Field(default=8 * 2**20, ge=1024,
                                   description="request bodies larger than this are refused with 413 before "
                                               "they are read whole (default 8 MiB)")
    max_prompt_chars: int | None = Field(default=None, ge=1,
                                         description="prompts (or chat messages, together) longer than this many "
                                                     "characters are refused with 400 before tokenizing; default "
                                                     "max_model_len x the tokenizer's longest token, so no prompt "
                                                     "that fits the context is refused")
    request_timeout_s: float = Field(default=600.0, ge=0.0,
                                     description="per-request deadline from arrival, queue time included; a "
                                                 "request still queued or generating then is ended (504, or an "
                                                 "error event in a stream); 0 = none (default 600 s, the OpenAI "
                                                 "Python client's own timeout)")
    socket_send_buffer_bytes: int = Field(default=64 * 1024, ge=4096,
                                          description="SO_SNDBUF of client connections (default 64 KiB); a fixed "
                                                      "size instead of Linux's autotuning (up to 4 MiB), so that "
                                                      "a client that stops reading blocks the server's writes "
                                                      "after ~200 KB instead of megabytes")
    stream_stall_timeout_s: float = Field(default=30.0, gt=0.0,
                                          description="a stream whose client has taken no data for this long "
                                                      "(the server's write has been blocked) is cancelled and "
                                                      "frees its slot (default 30 s)")
    log_level: str = "info"
