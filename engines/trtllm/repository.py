"""Render the Triton model repository that serves a TensorRT-LLM engine.

Why rendered, not copied: every value that must agree with the engine (its folder, the batch
size it was built for, the tokenizer) comes from the build, and the tensor contract between
the five models is written once, here, where the tests can parse it (``config.pbtxt`` into
Triton's ``ModelConfig`` protobuf) and check that every ensemble edge connects tensors of the
same type. Tensor names follow the TensorRT-LLM 1.x backend (``min_tokens``, ``seed``,
``runtime_top_p``...), so the load generator's ``triton-generate``/``triton-grpc`` targets
work unchanged against this repository and the CPU stand-in (``engines/triton``).

Models:

* ``tensorrt_llm`` — the C++ ``tensorrtllm`` backend: decoupled (streaming), in-flight fused
  batching, paged KV cache taking ``kv_cache_free_gpu_mem_fraction`` of free GPU memory, the
  prompt excluded from the output, zero queue delay (the executor batches, not Triton).
* ``preprocessing`` / ``postprocessing`` — python models (``engines/trtllm/models/``):
  text → token ids (+ stop/bad word lists), token ids → text.
* ``ensemble`` — preprocessing → tensorrt_llm → postprocessing. Each streamed response's
  tokens are decoded alone (stateless), as in TensorRT-LLM's own ensemble.
* ``tensorrt_llm_bls`` — a python model with the same interface that calls preprocessing
  and tensorrt_llm itself and detokenizes incrementally, so streamed text is exact (spaces
  and multi-byte characters that span tokens).

Only text-generation inputs are declared (no LoRA, multimodal, speculative decoding or beam
search). Over gRPC Triton refuses a request with an undeclared input; over HTTP's generate
extension unknown JSON fields become request parameters, which these models ignore.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

MODELS = ("ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls")
PYTHON_MODELS = Path(__file__).parent / "models"


class RepositorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    engine_dir: Path
    tokenizer_dir: Path
    max_batch_size: int = Field(256, ge=1, description="Triton's batch limit; the engine's own is the real one")
    kv_cache_free_gpu_mem_fraction: float = Field(0.9, gt=0, lt=1)
    max_tokens_in_paged_kv_cache: int | None = Field(None, ge=1, description="a bound in tokens as well (the "
                                                     "side-by-side budget, engines/budget.py); None: the fraction only")
    max_queue_delay_microseconds: int = Field(0, ge=0)
    batch_scheduler_policy: str = Field("guaranteed_no_evict", pattern="^(guaranteed_no_evict|max_utilization)$")
    enable_chunked_context: bool = True  # the engine is built with paged context FMHA
    enable_kv_cache_reuse: bool = True  # prefix caching, as vLLM does by default
    tokenizer_instances: int = Field(1, ge=1)


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a config: name, Triton data type, dims, and whether a request may leave it out."""

    name: str
    dtype: str
    dims: tuple[int, ...] = (1,)
    optional: bool = False
    scalar: bool = False  # dims [1] reshaped to [] (the C++ backend's scalars)
    ragged: bool = False

    def pbtxt(self) -> str:
        parts = [f'name: "{self.name}"', f"data_type: {self.dtype}", f"dims: [ {', '.join(map(str, self.dims))} ]"]
        if self.scalar:
            parts.append("reshape: { shape: [ ] }")
        if self.optional:
            parts.append("optional: true")
        if self.ragged:
            parts.append("allow_ragged_batch: true")
        return "  { " + ", ".join(parts) + " }"


# -- the tensor contracts -------------------------------------------------------------------------

# What clients send (the TensorRT-LLM ensemble/BLS interface; text generation only).
CLIENT_INPUTS = (
    TensorSpec("text_input", "TYPE_STRING"),
    TensorSpec("max_tokens", "TYPE_INT32"),
    TensorSpec("stream", "TYPE_BOOL", optional=True),
    TensorSpec("exclude_input_in_output", "TYPE_BOOL", optional=True),
    TensorSpec("temperature", "TYPE_FP32", optional=True),
    TensorSpec("top_k", "TYPE_INT32", optional=True),
    TensorSpec("top_p", "TYPE_FP32", optional=True),
    TensorSpec("min_tokens", "TYPE_INT32", optional=True),
    TensorSpec("seed", "TYPE_UINT64", optional=True),
    TensorSpec("repetition_penalty", "TYPE_FP32", optional=True),
    TensorSpec("presence_penalty", "TYPE_FP32", optional=True),
    TensorSpec("frequency_penalty", "TYPE_FP32", optional=True),
    TensorSpec("end_id", "TYPE_INT32", optional=True),
    TensorSpec("pad_id", "TYPE_INT32", optional=True),
    TensorSpec("stop_words", "TYPE_STRING", (-1,), optional=True),
    TensorSpec("bad_words", "TYPE_STRING", (-1,), optional=True),
)
CLIENT_OUTPUTS = (TensorSpec("text_output", "TYPE_STRING", (-1,)),)

PRE_INPUTS = (
    TensorSpec("QUERY", "TYPE_STRING"),
    TensorSpec("REQUEST_OUTPUT_LEN", "TYPE_INT32"),
    TensorSpec("END_ID", "TYPE_INT32", optional=True),
    TensorSpec("PAD_ID", "TYPE_INT32", optional=True),
    TensorSpec("STOP_WORDS_DICT", "TYPE_STRING", (-1,), optional=True),
    TensorSpec("BAD_WORDS_DICT", "TYPE_STRING", (-1,), optional=True),
)
PRE_OUTPUTS = (
    TensorSpec("INPUT_ID", "TYPE_INT32", (-1,)),
    TensorSpec("REQUEST_INPUT_LEN", "TYPE_INT32"),
    TensorSpec("REQUEST_OUTPUT_LEN", "TYPE_INT32"),
    TensorSpec("OUT_END_ID", "TYPE_INT32"),
    TensorSpec("OUT_PAD_ID", "TYPE_INT32"),
    TensorSpec("STOP_WORDS_IDS", "TYPE_INT32", (2, -1)),
    TensorSpec("BAD_WORDS_IDS", "TYPE_INT32", (2, -1)),
)

# The C++ backend's inputs this repository uses (names, types and dims of TensorRT-LLM 1.x).
TRTLLM_INPUTS = (
    TensorSpec("input_ids", "TYPE_INT32", (-1,), optional=True, ragged=True),
    TensorSpec("input_lengths", "TYPE_INT32", scalar=True),
    TensorSpec("request_output_len", "TYPE_INT32", scalar=True),
    TensorSpec("end_id", "TYPE_INT32", scalar=True, optional=True),
    TensorSpec("pad_id", "TYPE_INT32", scalar=True, optional=True),
    TensorSpec("stop_words_list", "TYPE_INT32", (2, -1), optional=True, ragged=True),
    TensorSpec("bad_words_list", "TYPE_INT32", (2, -1), optional=True, ragged=True),
    TensorSpec("streaming", "TYPE_BOOL", scalar=True, optional=True),
    TensorSpec("exclude_input_in_output", "TYPE_BOOL", scalar=True, optional=True),
    TensorSpec("temperature", "TYPE_FP32", scalar=True, optional=True),
    TensorSpec("runtime_top_k", "TYPE_INT32", scalar=True, optional=True),
    TensorSpec("runtime_top_p", "TYPE_FP32", scalar=True, optional=True),
    TensorSpec("min_tokens", "TYPE_INT32", scalar=True, optional=True),
    TensorSpec("seed", "TYPE_UINT64", scalar=True, optional=True),
    TensorSpec("repetition_penalty", "TYPE_FP32", scalar=True, optional=True),
    TensorSpec("presence_penalty", "TYPE_FP32", scalar=True, optional=True),
    TensorSpec("frequency_penalty", "TYPE_FP32", scalar=True, optional=True),
)
# The backend refuses a request that does not ask for both.
TRTLLM_OUTPUTS = (TensorSpec("output_ids", "TYPE_INT32", (-1, -1)), TensorSpec("sequence_length", "TYPE_INT32", (-1,)))

POST_INPUTS = (TensorSpec("TOKENS_BATCH", "TYPE_INT32", (-1, -1)), TensorSpec("SEQUENCE_LENGTH", "TYPE_INT32", (-1,)))
POST_OUTPUTS = (TensorSpec("OUTPUT", "TYPE_STRING", (-1,)),)

# Ensemble wiring: (composing model, {its input: ensemble tensor}, {its output: ensemble tensor}).
ENSEMBLE_STEPS: tuple[tuple[str, dict[str, str], dict[str, str]], ...] = (
    ("preprocessing",
     {"QUERY": "text_input", "REQUEST_OUTPUT_LEN": "max_tokens", "END_ID": "end_id", "PAD_ID": "pad_id",
      "STOP_WORDS_DICT": "stop_words", "BAD_WORDS_DICT": "bad_words"},
     {"INPUT_ID": "_INPUT_ID", "REQUEST_INPUT_LEN": "_REQUEST_INPUT_LEN", "REQUEST_OUTPUT_LEN": "_REQUEST_OUTPUT_LEN",
      "OUT_END_ID": "_END_ID", "OUT_PAD_ID": "_PAD_ID", "STOP_WORDS_IDS": "_STOP_WORDS_IDS",
      "BAD_WORDS_IDS": "_BAD_WORDS_IDS"}),
    ("tensorrt_llm",
     {"input_ids": "_INPUT_ID", "input_lengths": "_REQUEST_INPUT_LEN", "request_output_len": "_REQUEST_OUTPUT_LEN",
      "end_id": "_END_ID", "pad_id": "_PAD_ID", "stop_words_list": "_STOP_WORDS_IDS",
      "bad_words_list": "_BAD_WORDS_IDS", "streaming": "stream", "exclude_input_in_output": "exclude_input_in_output",
      "temperature": "temperature", "runtime_top_k": "top_k", "runtime_top_p": "top_p", "min_tokens": "min_tokens",
      "seed": "seed", "repetition_penalty": "repetition_penalty", "presence_penalty": "presence_penalty",
      "frequency_penalty": "frequency_penalty"},
     {"output_ids": "_TOKENS_BATCH", "sequence_length": "_SEQUENCE_LENGTH"}),
    ("postprocessing",
     {"TOKENS_BATCH": "_TOKENS_BATCH", "SEQUENCE_LENGTH": "_SEQUENCE_LENGTH"},
     {"OUTPUT": "text_output"}),
)


# -- rendering ------------------------------------------------------------------------------------

def _tensors(kind: str, tensors: tuple[TensorSpec, ...]) -> str:
    return f"{kind} [\n" + ",\n".join(t.pbtxt() for t in tensors) + "\n]\n"


def _parameters(values: dict[str, str]) -> str:
    return "".join(f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}\n' for k, v in values.items())


def _header(name: str, backend: str, settings: RepositorySettings, decoupled: bool | None) -> str:
    text = f'name: "{name}"\n{backend}\nmax_batch_size: {settings.max_batch_size}\n'
    if decoupled is not None:
        text += f"model_transaction_policy {{ decoupled: {str(decoupled).lower()} }}\n"
    return text


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _ensemble_steps() -> str:
    """The ensemble's scheduling steps: each model with its input and output tensor maps (ENSEMBLE_STEPS)."""
    steps = ""
    for model, inputs, outputs in ENSEMBLE_STEPS:
        steps += f'  step {{\n    model_name: "{model}"\n    model_version: -1\n'
        steps += "".join(f'    input_map {{ key: "{k}" value: "{v}" }}\n' for k, v in inputs.items())
        steps += "".join(f'    output_map {{ key: "{k}" value: "{v}" }}\n' for k, v in outputs.items())
        steps += "  }\n"
    return steps


def _tensorrt_llm_config(s: RepositorySettings, instances: str) -> str:
    """The tensorrt_llm model: the C++ backend over the engine, with the batching and KV cache settings."""
    return (
        "# TensorRT-LLM engine, C++ backend: in-flight fused batching, streaming, paged KV cache.\n"
        + _header("tensorrt_llm", 'backend: "tensorrtllm"', s, decoupled=True)
        + f"dynamic_batching {{ max_queue_delay_microseconds: {s.max_queue_delay_microseconds} }}\n"
        + _tensors("input", TRTLLM_INPUTS) + _tensors("output", TRTLLM_OUTPUTS)
        + instances
        + _parameters({
            "gpt_model_type": "inflight_fused_batching",
            "gpt_model_path": str(s.engine_dir),
            "batch_scheduler_policy": s.batch_scheduler_policy,
            "kv_cache_free_gpu_mem_fraction": str(s.kv_cache_free_gpu_mem_fraction),
            **({"max_tokens_in_paged_kv_cache": str(s.max_tokens_in_paged_kv_cache)}
               if s.max_tokens_in_paged_kv_cache else {}),
            "exclude_input_in_output": "true",
            "enable_chunked_context": _bool(s.enable_chunked_context),
            "enable_kv_cache_reuse": _bool(s.enable_kv_cache_reuse),
            "max_beam_width": "1",
            # read unconditionally by the backend (guided decoding); empty turns it off
            "tokenizer_dir": str(s.tokenizer_dir),
            "guided_decoding_backend": "",
            "xgrammar_tokenizer_info_path": "",
        }))


def render_configs(s: RepositorySettings) -> dict[str, str]:
    """config.pbtxt text per model."""
    cpu = lambda n: f"instance_group [ {{ count: {n}, kind: KIND_CPU }} ]\n"  # noqa: E731
    tokenizer = {"tokenizer_dir": str(s.tokenizer_dir)}

    def tokenizer_model(name: str, what: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
                        params: dict[str, str]) -> str:
        """preprocessing / postprocessing: a batched python model reading the tokenizer."""
        return (f"# {what} (engines/trtllm/models/{name}.py).\n"
                + _header(name, 'backend: "python"', s, decoupled=None)
                + "dynamic_batching { max_queue_delay_microseconds: 0 }\n"
                + _tensors("input", inputs) + _tensors("output", outputs) + cpu(s.tokenizer_instances)
                + _parameters({**tokenizer, **params}))

    return {
        "tensorrt_llm": _tensorrt_llm_config(s, cpu(1)),  # the backend places the engine on the GPU itself
        "preprocessing": tokenizer_model(
            "preprocessing", "Text → token ids, stop/bad word lists", PRE_INPUTS, PRE_OUTPUTS,
            {"add_special_tokens": "true"}),
        "postprocessing": tokenizer_model(
            "postprocessing", "Token ids → text, one streamed response at a time", POST_INPUTS, POST_OUTPUTS,
            {"skip_special_tokens": "true"}),
        "ensemble": (
            "# Text in, text out: preprocessing → tensorrt_llm → postprocessing; streams when `stream` is true.\n"
            + _header("ensemble", 'platform: "ensemble"', s, decoupled=None)
            + _tensors("input", CLIENT_INPUTS) + _tensors("output", CLIENT_OUTPUTS)
            + "ensemble_scheduling {\n" + _ensemble_steps() + "}\n"),
        "tensorrt_llm_bls": (
            "# The ensemble's interface as one python model with incremental detokenization\n"
            "# (engines/trtllm/models/tensorrt_llm_bls.py).\n"
            + _header("tensorrt_llm_bls", 'backend: "python"', s, decoupled=True)
            + _tensors("input", CLIENT_INPUTS) + _tensors("output", CLIENT_OUTPUTS) + cpu(1)
            + _parameters({**tokenizer, "tensorrt_llm_model_name": "tensorrt_llm",
                           "preprocessing_model_name": "preprocessing", "skip_special_tokens": "true"})),
    }


def render(out_dir: Path, settings: RepositorySettings) -> None:
    """Writes ``<out_dir>/<model>/config.pbtxt`` and ``1/`` (with model.py for python models), replacing old ones."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".repository-", dir=out_dir.parent))
    for name, text in render_configs(settings).items():
        version = staging / name / "1"
        version.mkdir(parents=True)
        (staging / name / "config.pbtxt").write_text(text)
        source = PYTHON_MODELS / f"{name}.py"
        if source.exists():
            shutil.copyfile(source, version / "model.py")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
