"""OpenAI wire models for the baseline server (the subset the rig uses, plus vLLM's extras).

Why pydantic models at the edge: every malformed or out-of-range field becomes a 400 in
OpenAI's error shape naming the field, before anything reaches the model. Unknown fields
are ignored, as vLLM does, so clients written for vLLM work unchanged; fields we know but
do not implement (``n > 1``, ``logprobs``, ...) are rejected rather than silently ignored,
because a load test that asked for them would otherwise measure something else.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NonNegInt = Annotated[int, Field(ge=0)]


def find_unencodable(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string in a request body (any depth, keys included) that UTF-8 cannot
    encode, or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "body"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        here = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and find_unencodable(key) is not None:
            return here
        found = find_unencodable(item, here)
        if found is not None:
            return found
    return None


def refuse_unencodable(data: Any) -> Any:
    """A ``mode="before"`` model validator: a request body with a string UTF-8 cannot encode is a 400 naming it."""
    path = find_unencodable(data)
    if path is not None:
        raise InvalidText(path, f"`{path}` is not valid Unicode text: it holds a lone surrogate (\\ud800-\\udfff), "
                                "which UTF-8 cannot encode")
    return data


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False
    # vLLM's extension: every chunk carries the cumulative usage, so a client can count the
    # tokens in each chunk exactly instead of assuming one per chunk.
    continuous_usage_stats: bool = False


class _SamplingFields(BaseModel):
    """Fields shared by completions and chat; names and defaults follow OpenAI and vLLM."""

    model_config = ConfigDict(extra="ignore", strict=False)

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1)
    # vLLM extensions that load tests rely on for fixed output lengths.
    ignore_eos: bool = False
    min_tokens: NonNegInt = 0
    # Accepted at their neutral values only (anything else changes what is measured).
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    logprobs: Any = None
    user: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _utf8_text(cls, data: Any) -> Any:
        return refuse_unencodable(data)

    @field_validator("stop")
    @classmethod
    def _stop_strings_non_empty(cls, value: str | list[str] | None) -> str | list[str] | None:
        strings = [value] if isinstance(value, str) else (value or [])
        if any(s == "" for s in strings):
            raise ValueError("stop strings must be non-empty")
        return value

    @model_validator(mode="after")
    def _check_supported(self) -> _SamplingFields:
        if self.n != 1:
            raise UnsupportedField("n", "n > 1 is not supported by this server; send n separate requests")
        if self.presence_penalty or self.frequency_penalty:
            raise UnsupportedField(
                "presence_penalty" if self.presence_penalty else "frequency_penalty",
                "presence/frequency penalties are not supported by this server",
            )
        if self.logprobs not in (None, False, 0):
            raise UnsupportedField("logprobs", "logprobs are not supported by this server")
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise UnsupportedField("min_tokens", "min_tokens must be less than or equal to max_tokens")
        return self

    @property
    def stop_strings(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def continuous_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.continuous_usage_stats)


class UnsupportedField(ValueError):
    """A known field with a value this server refuses; carries the field name for ``param``."""

    code = "unsupported_value"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


class InvalidText(UnsupportedField):
    """A string field that is not Unicode text UTF-8 can carry: JSON's ``\\ud800`` escapes decode to lone
    surrogates, which no tokenizer encodes (the baseline answered 500 with an internal TypeError)."""

    code = "invalid_value"


class CompletionRequest(_SamplingFields):
    prompt: str | list[int] = Field(min_length=1)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check_completion_only(self) -> CompletionRequest:
        if self.echo:
            raise UnsupportedField("echo", "echo is not supported by this server")
        if self.suffix:
            raise UnsupportedField("suffix", "suffix is not supported by this server")
        if self.best_of not in (None, 1):
            raise UnsupportedField("best_of", "best_of > 1 is not supported by this server")
        if isinstance(self.prompt, list) and any(t < 0 for t in self.prompt):
            raise UnsupportedField("prompt", "token ids must be non-negative")
        return self


class TextContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(_SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    top_logprobs: int | None = None
    tools: list[Any] | None = None

    @model_validator(mode="after")
    def _check_chat_only(self) -> ChatCompletionRequest:
        if self.top_logprobs:
            raise UnsupportedField("top_logprobs", "logprobs are not supported by this server")
        if self.tools:
            raise UnsupportedField("tools", "tool calling is not supported by this server")
        if self.max_completion_tokens is not None:
            if self.max_tokens is not None and self.max_tokens != self.max_completion_tokens:
                raise UnsupportedField(
                    "max_completion_tokens", "max_tokens and max_completion_tokens disagree; send one"
                )
            self.max_tokens = self.max_completion_tokens
        if self.max_tokens is not None and self.min_tokens > self.max_tokens:
            raise UnsupportedField("min_tokens", "min_tokens must be less than or equal to max_tokens")
        return self


class TokenizeRequest(BaseModel):
    """vLLM's /tokenize body: a prompt, or chat messages rendered with the chat template."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    add_special_tokens: bool = True

    @model_validator(mode="before")
    @classmethod
    def _utf8_text(cls, data: Any) -> Any:
        return refuse_unencodable(data)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=lambda: int(time.time()))
    owned_by: str = "llm-serving-rig"
    max_model_len: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
