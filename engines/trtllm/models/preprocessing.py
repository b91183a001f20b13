"""Triton python model ``preprocessing``: text → token ids for the TensorRT-LLM engine.

Written for the rig (engines/trtllm/repository.py declares its tensors). Triton may batch
several requests into one ``execute``; each request's tensors carry a leading batch dimension.
Stop and bad words become TensorRT-LLM's word-list layout ``[2, n]``: row 0 the token ids of
all words back to back, row 1 the cumulative end offset of each word, padded with -1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from transformers import AutoTokenizer


def _param(config: dict[str, Any], key: str, default: str = "") -> str:
    value = config.get("parameters", {}).get(key, {}).get("string_value", default)
    return default if value.startswith("${") else value


def _texts(request: Any, name: str) -> list[list[str]] | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    rows = tensor.as_numpy()
    rows = rows.reshape(rows.shape[0], -1)
    return [[v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in row] for row in rows]


def word_list(tokenizer: Any, words: list[str]) -> np.ndarray:
    """TensorRT-LLM's ``[2, n]`` word list for one sequence (empty words are ignored)."""
    ids: list[int] = []
    offsets: list[int] = []
    for word in words:
        if not word:
            continue
        ids += tokenizer.encode(word, add_special_tokens=False)
        offsets.append(len(ids))
    width = max(len(ids), len(offsets))
    out = np.full((2, width), -1, dtype=np.int32)
    out[0, : len(ids)] = ids
    out[1, : len(offsets)] = offsets
    return out


def _stack_word_lists(lists: list[np.ndarray]) -> np.ndarray:
    width = max((w.shape[1] for w in lists), default=0)
    out = np.full((len(lists), 2, width), -1, dtype=np.int32)
    for i, w in enumerate(lists):
        out[i, :, : w.shape[1]] = w
    return out


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        import json

        config = json.loads(args["model_config"])
        self.tokenizer = AutoTokenizer.from_pretrained(_param(config, "tokenizer_dir"))
        self.add_special_tokens = _param(config, "add_special_tokens", "true").lower() in ("true", "1", "yes")
        eos = self.tokenizer.eos_token_id
        self.end_id = int(eos if eos is not None else 0)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.end_id)

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=self._one(request)))
            except Exception as exc:  # a bad request fails alone, with its reason
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"preprocessing: {exc}")))
        return responses

    def _one(self, request: Any) -> list[Any]:
        queries = _texts(request, "QUERY") or []
        out_len = pb_utils.get_input_tensor_by_name(request, "REQUEST_OUTPUT_LEN").as_numpy().reshape(-1, 1)
        if np.any(out_len < 1):
            raise ValueError("max_tokens must be at least 1")
        ids = [self.tokenizer.encode(row[0], add_special_tokens=self.add_special_tokens) for row in queries]
        if any(len(seq) == 0 for seq in ids):
            raise ValueError("text_input is empty after tokenization")
        batch = len(ids)
        lengths = np.array([[len(seq)] for seq in ids], dtype=np.int32)
        input_ids = np.full((batch, int(lengths.max())), self.pad_id, dtype=np.int32)
        for i, seq in enumerate(ids):
            input_ids[i, : len(seq)] = seq

        def per_row(name: str, default: int) -> np.ndarray:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                return np.full((batch, 1), default, dtype=np.int32)
            return tensor.as_numpy().astype(np.int32).reshape(batch, 1)

        words = {name: _texts(request, name) or [[] for _ in range(batch)]
                 for name in ("STOP_WORDS_DICT", "BAD_WORDS_DICT")}
        return [
            pb_utils.Tensor("INPUT_ID", input_ids),
            pb_utils.Tensor("REQUEST_INPUT_LEN", lengths),
            pb_utils.Tensor("REQUEST_OUTPUT_LEN", out_len.astype(np.int32)),
            pb_utils.Tensor("OUT_END_ID", per_row("END_ID", self.end_id)),
            pb_utils.Tensor("OUT_PAD_ID", per_row("PAD_ID", self.pad_id)),
            pb_utils.Tensor("STOP_WORDS_IDS", _stack_word_lists([word_list(self.tokenizer, w)
                                                                 for w in words["STOP_WORDS_DICT"]])),
            pb_utils.Tensor("BAD_WORDS_IDS", _stack_word_lists([word_list(self.tokenizer, w)
                                                                for w in words["BAD_WORDS_DICT"]])),
        ]
