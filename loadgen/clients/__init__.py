"""One client module per wire API; ``make_client`` picks one by the target's kind."""

from __future__ import annotations

from loadgen.clients.base import Client, ClientOptions, RequestSpec
from loadgen.clients.openai import ChatClient, CompletionsClient
from loadgen.clients.triton_http import TritonGenerateClient

__all__ = ["Client", "ClientOptions", "RequestSpec", "make_client"]


def make_client(kind: str, url: str, options: ClientOptions) -> Client:
    if kind == "openai-chat":
        return ChatClient(url, options)
    if kind == "openai-completions":
        return CompletionsClient(url, options)
    if kind == "triton-generate":
        return TritonGenerateClient(url, options)
    if kind == "triton-grpc":
        from loadgen.clients.triton_grpc import TritonGrpcClient

        return TritonGrpcClient(url, options)
    raise ValueError(f"unknown client kind {kind!r}")
