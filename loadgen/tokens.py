"""Counting tokens the way the model does: a local ``tokenizer.json`` or a server's ``/tokenize``.

Why: prefill cost grows with prompt length, so comparing engines needs the same number of
input tokens everywhere, counted by the model's own tokenizer. The ``tokenizers`` library
reads the model folder's ``tokenizer.json`` (no transformers, no download); vLLM and the
baseline also count over HTTP (``/tokenize``).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import httpx

from loadgen.clients.base import ClientOptions
from loadgen.clients.tls import tls_context
from loadgen.headers import scrub

TokenCounter = Callable[[str], int]  # text -> its token count (a tokenizer's or the server's own)


class PromptError(RuntimeError):
    """Prompts cannot be built as the profile asks (missing file, no tokenizer, bad format)."""


# Fallback vocabulary when only a server's /tokenize is available (each word is checked).
COMMON_WORDS = tuple(
    "time year people way day man thing woman life child world school state family student group country "
    "problem hand part place case week company system program question work government number night point "
    "home water room mother area money story fact month lot right study book eye job word business issue "
    "side kind head house service friend father power hour game line end member law car city community "
    "name president team minute idea kid body information back parent face others level office door health "
    "person art war history party result change morning reason research girl guy moment air teacher force".split()
)


class LocalTokenizer:
    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        path = Path(directory) / "tokenizer.json"
        if not path.exists():
            raise PromptError(f"no tokenizer.json in {directory}")
        self._tok = Tokenizer.from_file(str(path))

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def single_token_words(self) -> list[str]:
        """Lower-case alphabetic words that encode, with a leading space, to one token."""
        words = []
        for token in self._tok.get_vocab():
            text = self._tok.decode([self._tok.token_to_id(token)])
            word = text[1:] if text.startswith(" ") else ""
            if 3 <= len(word) <= 8 and word.isascii() and word.isalpha() and word.islower():
                words.append(word)
        return sorted(set(words))


def server_counter(url: str, model: str, options: ClientOptions | None = None) -> TokenCounter:
    """Count tokens with a server's /tokenize (vLLM's API), without special tokens; with the target's
    headers (its API key) and TLS settings when ``options`` are given."""
    headers = dict(options.headers) if options else {}
    verify: ssl.SSLContext | bool = True
    if options is not None and url.startswith("https://"):
        verify = tls_context(options.ca_cert, options.insecure)
    client = httpx.Client(base_url=url.rstrip("/"), timeout=30, headers=headers, verify=verify)
    secrets = options.secrets() if options else set()

    def count(text: str) -> int:
        response = client.post("/tokenize", json={"model": model, "prompt": text, "add_special_tokens": False})
        if response.status_code != 200:
            answer = scrub(response.text[:200], secrets)
            raise PromptError(f"{url}/tokenize answered {response.status_code}: {answer}")
        return int(response.json()["count"])

    return count
