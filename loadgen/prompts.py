"""Prompts: synthetic ones of an exact token length, or a ShareGPT-format file.

Why exact lengths: prefill cost grows with prompt length, so comparing engines needs the
same number of input tokens everywhere, counted by the model's own tokenizer. We use the
``tokenizers`` library on the model folder's ``tokenizer.json`` (no transformers, no
download), or the server's ``/tokenize`` (vLLM and the baseline have it).

Synthetic prompts are sequences of space-prefixed words that the tokenizer keeps as single
tokens, drawn with a seeded RNG: every prompt differs from its first word (so no engine's
prefix cache shortens prefill) and the same seed gives the same prompts. Each prompt's
count is checked and corrected to exactly ``input_tokens`` (without special tokens). For
chat APIs the prompt is the user message; the chat template adds its own tokens, which
the server's ``usage.prompt_tokens`` includes.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from loadgen.clients.base import RequestSpec

Counter = Callable[[str], int]


class PromptError(RuntimeError):
    pass


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


def server_counter(url: str, model: str) -> Counter:
    """Count tokens with a server's /tokenize (vLLM's API), without special tokens."""
    client = httpx.Client(base_url=url.rstrip("/"), timeout=30)

    def count(text: str) -> int:
        response = client.post("/tokenize", json={"model": model, "prompt": text, "add_special_tokens": False})
        if response.status_code != 200:
            raise PromptError(f"{url}/tokenize answered {response.status_code}: {response.text[:200]}")
        return int(response.json()["count"])

    return count


def synthetic(count: int, input_tokens: int, output_tokens: int, seed: int, counter: Counter,
              words: Sequence[str]) -> list[RequestSpec]:
    if not words:
        raise PromptError("no single-token words to build prompts from")
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        chosen = [rng.choice(words) for _ in range(input_tokens)]
        text = " " + " ".join(chosen)
        n = counter(text)
        while n != input_tokens:  # rare: a word pair merged or split; trim or pad one word at a time
            if n > input_tokens:
                chosen.pop()
            else:
                chosen.append(rng.choice(words))
            text = " " + " ".join(chosen)
            n = counter(text)
            if not chosen:
                raise PromptError(f"cannot build a prompt of exactly {input_tokens} tokens")
        specs.append(RequestSpec(prompt_id=f"syn-{seed}-{i}", prompt=text, max_tokens=output_tokens,
                                 prompt_tokens=input_tokens))
    return specs


def sharegpt(path: Path, count: int, output_tokens: int, seed: int,
             counter: Counter | None) -> list[RequestSpec]:
    """First human turn of each conversation; fixed output length; order shuffled by seed."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PromptError(f"cannot read ShareGPT file {path}: {exc}") from exc
    prompts = []
    for item in data if isinstance(data, list) else []:
        for turn in item.get("conversations", []) if isinstance(item, dict) else []:
            if turn.get("from") in ("human", "user") and isinstance(turn.get("value"), str) and turn["value"]:
                prompts.append((str(item.get("id", len(prompts))), turn["value"]))
                break
    if not prompts:
        raise PromptError(f"{path}: no conversation with a human turn (ShareGPT format expected)")
    random.Random(seed).shuffle(prompts)
    return [RequestSpec(prompt_id=f"sharegpt-{pid}", prompt=text, max_tokens=output_tokens,
                        prompt_tokens=counter(text) if counter else None)
            for pid, text in prompts[:count]]


def dataset_hash(specs: Sequence[RequestSpec]) -> str:
    digest = hashlib.sha256()
    for spec in specs:
        digest.update(spec.prompt.encode())
        digest.update(str(spec.max_tokens).encode())
    return digest.hexdigest()[:16]
