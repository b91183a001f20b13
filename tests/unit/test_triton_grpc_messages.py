"""The gRPC client's request building and response parsing, on the real protobuf classes.
(Its stream against a real Triton server is tested with the CPU engines.)"""

from __future__ import annotations

import struct

from tritonclient.grpc import service_pb2

from loadgen.clients.base import ClientOptions, RequestSpec
from loadgen.clients.triton_grpc import build_request, text_output


def test_request_carries_the_ensemble_inputs_as_raw_tensors() -> None:
    spec = RequestSpec(prompt_id="p", prompt="Hello wörld", max_tokens=7)
    request = build_request("ensemble", spec, ClientOptions(model="ensemble", temperature=0.5), "id-1")
    inputs = {t.name: (t.datatype, list(t.shape), raw) for t, raw in zip(request.inputs, request.raw_input_contents,
                                                                        strict=True)}
    text = "Hello wörld".encode()
    assert inputs["text_input"] == ("BYTES", [1, 1], struct.pack("<I", len(text)) + text)
    assert inputs["max_tokens"] == ("INT32", [1, 1], struct.pack("<i", 7))
    assert inputs["stream"] == ("BOOL", [1, 1], b"\x01")
    assert struct.unpack("<f", inputs["temperature"][2]) == (0.5,)
    assert request.parameters["triton_enable_empty_final_response"].bool_param
    assert request.model_name == "ensemble" and request.id == "id-1"
    assert inputs["min_tokens"] == ("INT32", [1, 1], struct.pack("<i", 7))  # fixed length: ignore_eos default


def test_min_tokens_is_only_sent_for_fixed_output_lengths() -> None:
    spec = RequestSpec(prompt_id="p", prompt="Hi", max_tokens=3)
    request = build_request("ensemble", spec, ClientOptions(model="ensemble", ignore_eos=False), "id-2")
    assert "min_tokens" not in {t.name for t in request.inputs}


def test_text_output_is_read_from_raw_contents_and_typed_contents() -> None:
    response = service_pb2.ModelInferResponse()
    out = response.outputs.add()
    out.name, out.datatype = "text_output", "BYTES"
    response.raw_output_contents.append(struct.pack("<I", 6) + b" Paris")
    assert text_output(response) == " Paris"

    typed = service_pb2.ModelInferResponse()
    out = typed.outputs.add()
    out.name = "text_output"
    out.contents.bytes_contents.append(b" Rome")
    assert text_output(typed) == " Rome"

    assert text_output(service_pb2.ModelInferResponse()) is None  # an empty final response


def test_extra_body_adds_typed_tensors_and_null_removes_one() -> None:
    spec = RequestSpec(prompt_id="p", prompt="Hi", max_tokens=3)
    options = ClientOptions(model="ensemble", extra_body={"text_input": None, "end_id": -1, "top_p": 0.5,
                                                          "stream": False, "bad_words": "x"})
    request = build_request("ensemble", spec, options, "id-3")
    inputs = {t.name: (t.datatype, raw) for t, raw in zip(request.inputs, request.raw_input_contents, strict=True)}
    assert "text_input" not in inputs
    assert inputs["end_id"] == ("INT32", struct.pack("<i", -1))
    assert inputs["top_p"] == ("FP32", struct.pack("<f", 0.5))
    assert inputs["stream"] == ("BOOL", b"\x00")
    assert inputs["bad_words"] == ("BYTES", struct.pack("<I", 1) + b"x")
