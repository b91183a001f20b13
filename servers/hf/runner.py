"""The model itself: load a local HF folder, prefill, decode one step, sample.

Why primitives instead of ``model.generate``: the server must stream one event per token,
stop on strings, honour ``ignore_eos``/``min_tokens`` and react to a cancelled request
between any two steps. ``generate`` hides the loop that decides all of that; the runner
exposes the same two forward calls ``generate`` makes (prefill with a fresh
``DynamicCache``, then one token at a time), and tests check that greedy outputs equal
``model.generate``'s token for token.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from servers.hf.sequence import SamplingParams

log = logging.getLogger(__name__)

GREEDY_EPSILON = 1e-5
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(RuntimeError):
    pass


@dataclass(frozen=True)
class ModelInfo:
    path: str
    device: str
    dtype: str
    max_model_len: int
    num_parameters: int


def default_dtype(device: str) -> str:
    """fp32 on CPU (bf16 matmuls are slow and, on AVX2, inexact); bf16 on CUDA."""
    return "bfloat16" if device.startswith("cuda") else "float32"


class ModelRunner:
    def __init__(self, model_dir: str | Path, device: str = "cpu", dtype: str | None = None,
                 max_model_len: int | None = None) -> None:
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise ModelLoadError(f"{model_dir} is not a Hugging Face model folder (no config.json); "
                                 "run `make model` or pass --model DIR")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError("--device cuda was asked for but torch sees no CUDA device")
        dtype = dtype or default_dtype(device)
        if dtype not in DTYPES:
            raise ModelLoadError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=DTYPES[dtype])
        self.model.to(self.device).eval()
        config_len = int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)
        self.max_model_len = min(config_len, max_model_len) if max_model_len else config_len
        self.eos_ids = self._eos_ids()
        self.info = ModelInfo(path=str(model_dir), device=str(self.device), dtype=dtype,
                              max_model_len=self.max_model_len,
                              num_parameters=sum(p.numel() for p in self.model.parameters()))

    def _eos_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif gen_eos:
            ids.update(int(i) for i in gen_eos)
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return frozenset(ids)

    # -- prompts -------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])

    def render_chat(self, messages: list[dict[str, str]]) -> list[int]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError("this model has no chat template; use /v1/completions")
        rendered: Any = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(rendered, dict) or hasattr(rendered, "keys"):
            rendered = rendered["input_ids"]
        return [int(t) for t in rendered]

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    # -- forward passes ------------------------------------------------------------------
    @torch.inference_mode()
    def prefill(self, prompt_ids: list[int]) -> tuple[torch.Tensor, DynamicCache]:
        cache = DynamicCache(config=self.model.config)
        input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        out = self.model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1], cache

    @torch.inference_mode()
    def decode(self, token_id: int, cache: DynamicCache) -> torch.Tensor:
        input_ids = torch.tensor([[token_id]], dtype=torch.long, device=self.device)
        out = self.model(input_ids=input_ids, past_key_values=cache, use_cache=True)
        return out.logits[0, -1]

    # -- sampling ------------------------------------------------------------------------
    def generator(self, seed: int | None) -> torch.Generator | None:
        if seed is None:
            return None
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed % (2**63))
        return gen

    @torch.inference_mode()
    def sample(self, logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None,
               suppressed: frozenset[int] = frozenset()) -> int:
        return sample_token(logits, params, generator, suppressed)


def sample_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None,
                 suppressed: frozenset[int] = frozenset()) -> int:
    """Greedy when temperature is (near) 0, else temperature then nucleus (top-p) sampling, in fp32.

    Temperatures below 1e-5 count as greedy, as in vLLM: dividing by them overflows to inf/nan.
    """
    logits = logits.float()
    if suppressed:
        logits = logits.clone()
        logits[list(suppressed)] = float("-inf")
    if params.temperature < GREEDY_EPSILON:
        return int(torch.argmax(logits))
    logits = logits / params.temperature
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the tokens before it already cover top_p (the first always stays).
        drop = (torch.cumsum(probs, dim=-1) - probs) >= params.top_p
        drop[0] = False  # explicit: a top_p below float32's resolution would otherwise drop everything
        sorted_logits[drop] = float("-inf")
        logits = torch.full_like(logits, float("-inf")).scatter(0, order, sorted_logits)
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
