"""Triton python model ``postprocessing``: token ids → text, one streamed response at a time.

Written for the rig. It sees ``TOKENS_BATCH [batch, beam, n]`` and ``SEQUENCE_LENGTH
[batch, beam]``; ``n`` may be 0 (TensorRT-LLM's last streamed response can carry no token).
Stateless, like TensorRT-LLM's own ensemble: each response's tokens are decoded alone, so a
character split across two tokens streams as two replacement characters. The
``tensorrt_llm_bls`` model detokenizes incrementally when exact streamed text matters.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from transformers import AutoTokenizer


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        params = json.loads(args["model_config"]).get("parameters", {})
        self.tokenizer = AutoTokenizer.from_pretrained(params["tokenizer_dir"]["string_value"])
        skip = params.get("skip_special_tokens", {}).get("string_value", "true")
        self.skip_special_tokens = skip.lower() in ("true", "1", "yes") or skip.startswith("${")

    def execute(self, requests: list[Any]) -> list[Any]:
        responses = []
        for request in requests:
            tokens = pb_utils.get_input_tensor_by_name(request, "TOKENS_BATCH").as_numpy()
            lengths = pb_utils.get_input_tensor_by_name(request, "SEQUENCE_LENGTH").as_numpy()
            tokens = tokens.reshape(tokens.shape[0], -1, tokens.shape[-1]) if tokens.ndim >= 2 else tokens
            lengths = lengths.reshape(tokens.shape[0], -1)
            texts = [[self.tokenizer.decode(tokens[b, beam, : int(lengths[b, beam])].tolist(),
                                            skip_special_tokens=self.skip_special_tokens).encode("utf-8")
                      for beam in range(tokens.shape[1])] for b in range(tokens.shape[0])]
            out = np.array(texts, dtype=object)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT", out)]))
        return responses
