"""Triton gRPC streaming (``ModelStreamInfer``), the protocol TensorRT-LLM deployments use.

Built on ``grpc.aio`` with the service stubs that ship in ``tritonclient.grpc``: one
channel for the whole run (HTTP/2 multiplexes every request over it), one bidirectional
stream per request. Each request asks for ``triton_enable_empty_final_response`` so the
end of a decoupled model's response stream is explicit (a response whose
``triton_final_response`` parameter is true); ``tritonclient.grpc.aio.stream_infer``
cannot set that parameter, hence the stubs.

Timing: gRPC exposes no header arrival, so ``first_byte_ns`` is the first response
message. Each response with output counts as one token (TensorRT-LLM streams one per
token), marked as an assumption in the record, since Triton reports no usage.

Where: ``grpc://HOST:PORT`` (or ``http://``) in plain text, ``grpcs://`` (or ``https://``) over TLS
(``grpc.ssl_channel_credentials``; ``request.ca_cert`` for a private CA; ``request.insecure`` is
refused: gRPC's Python API cannot skip verification). Extra headers and the API key
(``Authorization: Bearer``) travel as call metadata, names in lower case as HTTP/2 requires;
Triton itself ignores them, a gateway in front of it may check them. ``sent_ns`` is when the
call starts (gRPC hides the write); ``preconnect`` waits for the channel to be ready, so the
first requests do not include connecting.

gRPC status codes map onto the rig's error classes: UNAVAILABLE before any response →
connect; DEADLINE_EXCEEDED → timeout; INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED, UNAUTHENTICATED,
PERMISSION_DENIED → http_4xx (the request's fault, as a 4xx — a 401 without the key — would be).
Triton reports most failures, even a missing input, as an error message inside the stream, with no
status: one before any output → http_4xx (Triton's
HTTP endpoint answers 400 then, so both protocols classify a fault alike), one after output and
any other code → stream_error; a stream that ends without a final response → protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from time import perf_counter_ns
from typing import Any, ClassVar

from loadgen.clients.base import ClientOptions, RequestSpec
from loadgen.clients.endpoint import parse_url
from loadgen.headers import scrub
from loadgen.record import Attempt, ErrorClass
from loadgen.registry import CLIENTS

try:  # the [triton] extra (pyproject.toml): grpcio, tritonclient's stubs and what they bring (numpy, protobuf)
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc
except ModuleNotFoundError as missing:
    raise CLIENTS.missing_extra("triton-grpc", "the Triton gRPC client", "triton", missing) from missing

FINAL = "triton_final_response"


def _bytes_element(data: bytes) -> bytes:
    """Triton's BYTES tensor serialisation: little-endian uint32 length, then the bytes."""
    return struct.pack("<I", len(data)) + data


def _tensor(name: str, value: Any) -> tuple[str, bytes]:
    """(datatype, raw bytes) of one scalar input given in ``request.extra_body``."""
    if isinstance(value, bool):
        return "BOOL", b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return "INT32", struct.pack("<i", value)
    if isinstance(value, float):
        return "FP32", struct.pack("<f", value)
    if isinstance(value, str):
        return "BYTES", _bytes_element(value.encode())
    raise ValueError(f"extra_body {name!r}: only scalars (bool, int, float, str) become Triton input tensors")


def build_request(model: str, spec: RequestSpec, options: ClientOptions,
                  request_id: str) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=model, id=request_id)
    request.parameters["triton_enable_empty_final_response"].bool_param = True
    tensors = [
        ("text_input", "BYTES", _bytes_element(spec.prompt.encode())),
        ("max_tokens", "INT32", struct.pack("<i", spec.max_tokens)),
        ("stream", "BOOL", b"\x01"),
        ("exclude_input_in_output", "BOOL", b"\x01"),
        ("temperature", "FP32", struct.pack("<f", options.temperature)),
    ]
    if options.ignore_eos:  # a fixed output length, as in the HTTP client
        tensors.append(("min_tokens", "INT32", struct.pack("<i", spec.max_tokens)))
    for key, value in (options.extra_body or {}).items():  # as the HTTP body's extra fields
        tensors = [t for t in tensors if t[0] != key]
        if value is not None:
            tensors.append((key, *_tensor(key, value)))
    for name, datatype, raw in tensors:
        tensor = request.inputs.add()
        tensor.name = name
        tensor.datatype = datatype
        tensor.shape.extend([1, 1])
        request.raw_input_contents.append(raw)
    return request


def text_output(response: service_pb2.ModelInferResponse) -> str | None:
    """The first element of the ``text_output`` tensor, or None when the response has none."""
    for i, tensor in enumerate(response.outputs):
        if tensor.name != "text_output":
            continue
        if i < len(response.raw_output_contents):
            raw = response.raw_output_contents[i]
            if len(raw) < 4:
                return ""
            (length,) = struct.unpack_from("<I", raw)
            return raw[4:4 + length].decode(errors="replace")
        if tensor.contents.bytes_contents:
            return tensor.contents.bytes_contents[0].decode(errors="replace")
        return ""
    return None


@CLIENTS.register("triton-grpc")
class TritonGrpcClient:
    kind: ClassVar[str] = "triton-grpc"
    has_tokenize: ClassVar[bool] = False
    url_schemes: ClassVar[dict[str, int]] = {"grpc": 80, "grpcs": 443, "http": 80, "https": 443}

    def __init__(self, base_url: str, options: ClientOptions) -> None:
        self.endpoint = parse_url(base_url, self.url_schemes)
        self.target = self.endpoint.authority
        self.options = options
        self.metadata = tuple((name.lower(), value) for name, value in options.headers)
        if self.endpoint.tls and options.insecure:
            raise ValueError(f"{base_url}: gRPC cannot skip certificate verification (--insecure); give the "
                             "server's CA with --ca-cert")
        self._channel: grpc.aio.Channel | None = None
        self._stub: service_pb2_grpc.GRPCInferenceServiceStub | None = None
        self._counter = 0

    async def start(self) -> None:
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024), ("grpc.keepalive_time_ms", 60_000)]
        if self.endpoint.tls:
            self._channel = grpc.aio.secure_channel(self.target, self._credentials(), options=options)
        else:
            self._channel = grpc.aio.insecure_channel(self.target, options=options)
        self._stub = service_pb2_grpc.GRPCInferenceServiceStub(self._channel)

    def _credentials(self) -> grpc.ChannelCredentials:
        if self.options.ca_cert is None:
            return grpc.ssl_channel_credentials()  # the system's CAs
        try:
            return grpc.ssl_channel_credentials(root_certificates=Path(self.options.ca_cert).read_bytes())
        except OSError as exc:
            raise ValueError(f"--ca-cert {self.options.ca_cert}: {exc}") from exc

    async def preconnect(self, connections: int) -> None:
        """One HTTP/2 channel carries every request: connect it now, and wait until it is ready or has
        failed once (a dead server or a refused certificate: the requests then record the failure, at
        once, instead of the stage waiting out the request timeout)."""
        assert self._channel is not None, "start() the client first"
        state = self._channel.get_state(try_to_connect=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.options.timeout_s):
                while state not in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                                    grpc.ChannelConnectivity.SHUTDOWN):
                    await self._channel.wait_for_state_change(state)
                    state = self._channel.get_state()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def send(self, spec: RequestSpec, attempt: Attempt) -> None:
        assert self._stub is not None, "start() the client first"
        self._counter += 1
        request = build_request(self.options.model, spec, self.options, f"lg-{self._counter}")
        finished = asyncio.Event()

        async def requests() -> AsyncIterator[service_pb2.ModelInferRequest]:
            yield request
            await finished.wait()  # keep our half of the stream open until the last response

        call = None
        try:
            attempt.sent_ns = perf_counter_ns()
            call = self._stub.ModelStreamInfer(requests(), timeout=self.options.timeout_s,
                                               metadata=self.metadata or None)
            async for message in call:
                now = perf_counter_ns()
                if attempt.first_byte_ns is None:
                    attempt.first_byte_ns = now
                if message.error_message:
                    # Before any output, classify as Triton's HTTP endpoint does (it answers 400 when the
                    # first response is an error); after output, the stream failed mid-way.
                    rejected = not attempt.chunk_ns
                    attempt.fail("http_4xx" if rejected else "stream_error",
                                 f"error response{' before any output' if rejected else ''}: {message.error_message}")
                    break
                response = message.infer_response
                text = text_output(response)
                if text is not None:
                    if attempt.text_parts is not None and text:
                        attempt.text_parts.append(text)
                    attempt.chunk_tokens_exact = False
                    attempt.chunk(now, 1, bool(text))
                if response.parameters[FINAL].bool_param:
                    break
            else:
                if attempt.error is None:
                    attempt.fail("protocol", "the stream ended without a final response")
            attempt.output_tokens = sum(attempt.chunk_tokens)
            attempt.status = 200 if attempt.error is None else attempt.status
        except asyncio.CancelledError:
            attempt.fail("cancelled", "the run stopped before the response ended")
            raise
        except grpc.aio.AioRpcError as exc:
            responded = attempt.first_byte_ns is not None
            detail = scrub(f"{exc.code().name}: {exc.details()}", self.options.secrets())
            attempt.fail(error_class(exc.code(), responded), detail)
        finally:
            finished.set()
            if call is not None and not call.done():
                call.cancel()
            attempt.end_ns = perf_counter_ns()


def error_class(code: grpc.StatusCode, responded: bool) -> ErrorClass:
    """The rig's error class of a gRPC status (see the module docstring)."""
    if code == grpc.StatusCode.UNAVAILABLE and not responded:
        return "connect"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "timeout"
    if code == grpc.StatusCode.CANCELLED:
        return "cancelled"
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED,
                grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return "http_4xx"
    return "stream_error"
