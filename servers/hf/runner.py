"""The model itself: load a local HF folder, prefill, decode one step, sample.

Why primitives instead of ``model.generate``: the server must stream one event per token,
stop on strings, honour ``ignore_eos``/``min_tokens`` and react to a cancelled request
between any two steps. ``generate`` hides the loop that decides all of that; the runner
exposes the same two forward calls ``generate`` makes (prefill with a fresh
``DynamicCache``, then one token at a time), and tests check that greedy outputs equal
``model.generate``'s token for token.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

from servers.hf import linear
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


LINEAR_KERNELS = ("torch", "onednn")


def default_threads(device: str, scheduler: str = "naive") -> int | None:
    """CPU, naive scheduler: all cores but one, left to the event loop (and the tokenizer), as vLLM-CPU
    reserves a core for its frontend. With every core in torch's OpenMP team, the event loop's per-token
    work preempts one of the team's threads and every parallel region of a batch-1 decode step — hundreds
    per token — waits at its barrier for it, while a second thread barely speeds up a one-row step.
    CPU, continuous scheduler: torch's default (all cores): a batched step's matmuls are compute-bound and
    the second core pays for itself (measured here: 1.4-1.6x output tok/s at concurrency 16-32).
    CUDA: torch's default."""
    if device.startswith("cuda") or scheduler != "naive":
        return None
    return max(1, (os.cpu_count() or 1) - 1)


def default_linear_kernel(device: str, dtype: str | None) -> str:
    """oneDNN prepacked where it applies (CPU, float32), else torch's own."""
    return "onednn" if not device.startswith("cuda") and (dtype or default_dtype(device)) == "float32" else "torch"


class ModelRunner:
    """One model and its tokenizer; ``threads`` and ``linear_kernel`` default to torch's own behaviour
    (the Triton model and tests use it so); the server passes its flags."""

    def __init__(self, model_dir: str | Path, device: str = "cpu", dtype: str | None = None,
                 max_model_len: int | None = None, threads: int | None = None,
                 linear_kernel: str = "torch") -> None:
        model_dir = Path(model_dir)
        if not (model_dir / "config.json").exists():
            raise ModelLoadError(f"{model_dir} is not a Hugging Face model folder (no config.json); "
                                 "run `make model` or pass --model DIR")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError("--device cuda was asked for but torch sees no CUDA device")
        dtype = dtype or default_dtype(device)
        if dtype not in DTYPES:
            raise ModelLoadError(f"unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}")
        if linear_kernel not in LINEAR_KERNELS:
            raise ModelLoadError(f"unknown linear kernel {linear_kernel!r}; choose one of {LINEAR_KERNELS}")
        self.threads = threads
        self._thread_state = threading.local()
        self.use_threads()
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
        self.linear_kernel = linear_kernel
        if linear_kernel == "onednn":
            if not linear.supported(self.device, self.model.dtype):
                raise ModelLoadError("--linear-kernel onednn needs a CPU, float32 and a torch built with oneDNN")
            linear.prepack_linear_layers(self.model)

    def use_threads(self) -> None:
        """Applies ``threads`` to the calling thread: OpenMP's thread count is per calling thread, so each
        generation thread calls this before its first forward pass (once; later calls cost nothing)."""
        if self.threads and not getattr(self._thread_state, "set", False):
            torch.set_num_threads(self.threads)
            self._thread_state.set = True

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
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])

    def render_chat(self, messages: list[dict[str, str]]) -> list[int]:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError("this model has no chat template; use /v1/completions")
        rendered: Any = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(rendered, dict) or hasattr(rendered, "keys"):
            rendered = rendered["input_ids"]
        return [int(t) for t in rendered]

    @functools.cached_property
    def longest_token_chars(self) -> int:
        """Characters of the vocabulary's longest token: no text longer than ``max_model_len`` times this
        can fit the context, so the server can refuse such a prompt without tokenizing it."""
        vocab = self.tokenizer.get_vocab()
        return max((len(self.tokenizer.convert_tokens_to_string([token])) for token in vocab), default=1) or 1

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    # -- forward passes ------------------------------------------------------------------
    @torch.inference_mode()
    def prefill(self, prompt_ids: list[int]) -> tuple[torch.Tensor, DynamicCache]:
        self.use_threads()
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


def greedy_tokens(logits: torch.Tensor, params: list[SamplingParams],
                  suppressed: list[frozenset[int]]) -> list[int | None]:
    """``sample_token``'s greedy choice for every greedy row of a batch's ``logits [B, vocab]`` in one argmax (None
    for the rows that sample). One call instead of one per row: at 32 rows, the per-row copies and calls cost
    a few percent of a decode step. Same result as ``sample_token`` row by row (argmax takes the first maximum)."""
    rows = [row for row, p in enumerate(params) if p.temperature < GREEDY_EPSILON]
    if not rows:
        return [None] * len(params)
    picked = logits[rows].float()  # a copy: suppression below never touches the logits
    for i, row in enumerate(rows):
        if suppressed[row]:
            picked[i, list(suppressed[row])] = float("-inf")
    chosen: list[int | None] = [None] * len(params)
    for row, token in zip(rows, picked.argmax(dim=-1).tolist(), strict=True):
        chosen[row] = int(token)
    return chosen


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
