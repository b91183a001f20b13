"""Triton python model ``tensorrt_llm_bls``: the ensemble's interface with exact streamed text.

Written for the rig. Business-logic scripting: for each request it calls ``preprocessing``
(text → ids), then streams from ``tensorrt_llm`` (decoupled) and detokenizes incrementally —
a window of already-released tokens is decoded again with the new ones, and text is released
only once it no longer ends in an incomplete character — so streamed text concatenates to
exactly the full decode, which a stateless ``postprocessing`` cannot promise. (The same idea as
``servers.hf.sequence.IncrementalDetokenizer``, written again on purpose: the Triton container
serves only the rendered repository, so these models cannot import the rig's packages.)

One response per engine response that carries tokens (usually one token), then a flag-only
final response, as TensorRT-LLM's own BLS does. Each request is served by its own thread:
``execute`` returns at once (decoupled), so requests are in flight together and the engine's
in-flight batching sees them all. A client that goes away stops the engine request.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils
from transformers import AutoTokenizer

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
PASSED_THROUGH = {  # client input → tensorrt_llm input
    "temperature": "temperature", "top_k": "runtime_top_k", "top_p": "runtime_top_p", "min_tokens": "min_tokens",
    "seed": "seed", "repetition_penalty": "repetition_penalty", "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty", "exclude_input_in_output": "exclude_input_in_output",
}
TO_PREPROCESSING = {"text_input": "QUERY", "max_tokens": "REQUEST_OUTPUT_LEN", "end_id": "END_ID",
                    "pad_id": "PAD_ID", "stop_words": "STOP_WORDS_DICT", "bad_words": "BAD_WORDS_DICT"}
FROM_PREPROCESSING = {"INPUT_ID": "input_ids", "REQUEST_INPUT_LEN": "input_lengths",
                      "REQUEST_OUTPUT_LEN": "request_output_len", "OUT_END_ID": "end_id", "OUT_PAD_ID": "pad_id",
                      "STOP_WORDS_IDS": "stop_words_list", "BAD_WORDS_IDS": "bad_words_list"}
WINDOW = 6


class IncrementalText:
    """Text released token by token; the concatenation equals decoding all tokens at once."""

    def __init__(self, tokenizer: Any, skip_special_tokens: bool) -> None:
        self.tokenizer = tokenizer
        self.skip = skip_special_tokens
        self.ids: list[int] = []
        self.released = 0  # tokens whose text has been sent

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip)

    def add(self, new_ids: list[int]) -> str:
        start = max(0, self.released - WINDOW)
        before = self._decode(self.ids[start:self.released])
        self.ids.extend(new_ids)
        after = self._decode(self.ids[start:])
        if after.endswith("\ufffd") or not after.startswith(before):
            return ""  # an incomplete character: wait for the next token
        self.released = len(self.ids)
        return after[len(before):]

    def rest(self) -> str:
        start = max(0, self.released - WINDOW)
        before = self._decode(self.ids[start:self.released])
        after = self._decode(self.ids[start:])
        self.released = len(self.ids)
        return after[len(before):] if after.startswith(before) else after


def _text_tensor(text: str) -> Any:
    return pb_utils.Tensor("text_output", np.array([[text.encode("utf-8")]], dtype=object))


class TritonPythonModel:
    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        self.tokenizer = AutoTokenizer.from_pretrained(params["tokenizer_dir"])
        self.skip_special_tokens = params.get("skip_special_tokens", "true").lower() in ("true", "1", "yes")
        self.engine = params.get("tensorrt_llm_model_name") or "tensorrt_llm"
        self.preprocessing = params.get("preprocessing_model_name") or "preprocessing"
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)

    def execute(self, requests: list[Any]) -> None:
        for request in requests:
            threading.Thread(target=self._serve, args=(request,), daemon=True).start()
        return None

    def _serve(self, request: Any) -> None:
        sender = request.get_response_sender()
        try:
            self._generate(request, sender)
        except Exception as exc:  # one request fails, with its reason; the model goes on
            sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))), flags=FINAL)

    def _generate(self, request: Any, sender: Any) -> None:
        def given(name: str) -> Any:
            return pb_utils.get_input_tensor_by_name(request, name)

        stream_tensor = given("stream")
        stream = bool(stream_tensor.as_numpy().reshape(-1)[0]) if stream_tensor is not None else False
        pre_inputs = [pb_utils.Tensor(pre, given(name).as_numpy()) for name, pre in TO_PREPROCESSING.items()
                      if given(name) is not None]
        pre = pb_utils.InferenceRequest(model_name=self.preprocessing, inputs=pre_inputs,
                                        requested_output_names=list(FROM_PREPROCESSING)).exec()
        if pre.has_error():
            raise RuntimeError(pre.error().message())
        engine_inputs = [pb_utils.Tensor(engine_name, pb_utils.get_output_tensor_by_name(pre, pre_name).as_numpy())
                         for pre_name, engine_name in FROM_PREPROCESSING.items()]
        engine_inputs.append(pb_utils.Tensor("streaming", np.array([[stream]], dtype=bool)))
        engine_inputs += [pb_utils.Tensor(engine_name, given(name).as_numpy())
                          for name, engine_name in PASSED_THROUGH.items() if given(name) is not None]
        responses = pb_utils.InferenceRequest(model_name=self.engine, inputs=engine_inputs,
                                              requested_output_names=["output_ids", "sequence_length"]
                                              ).exec(decoupled=True)
        text = IncrementalText(self.tokenizer, self.skip_special_tokens)
        for response in responses:
            if request.is_cancelled():
                cancel = getattr(responses, "cancel", None)
                if cancel is not None:
                    cancel()  # the engine stops generating for a client that left
                sender.send(flags=FINAL)
                return
            if response.has_error():
                raise RuntimeError(response.error().message())
            ids_tensor = pb_utils.get_output_tensor_by_name(response, "output_ids")
            if ids_tensor is None:
                continue  # an empty (final-only) response
            length = int(pb_utils.get_output_tensor_by_name(response, "sequence_length").as_numpy().reshape(-1)[0])
            new_ids = ids_tensor.as_numpy().reshape(-1)[:length].tolist()
            if not new_ids:
                continue
            delta = text.add(new_ids)
            if stream:
                sender.send(pb_utils.InferenceResponse(output_tensors=[_text_tensor(delta)]))
        if stream:
            tail = text.rest()
            if tail:
                sender.send(pb_utils.InferenceResponse(output_tensors=[_text_tensor(tail)]))
            sender.send(flags=FINAL)
        else:
            whole = self.tokenizer.decode(text.ids, skip_special_tokens=self.skip_special_tokens)
            sender.send(pb_utils.InferenceResponse(output_tensors=[_text_tensor(whole)]), flags=FINAL)
