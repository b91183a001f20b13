"""``sharegpt``: the first human turn of each conversation in a ShareGPT-format JSON file.

Output length is fixed by ``output_tokens`` (the file's answers are not used); the order is
shuffled by the seed; ``count`` conversations are taken.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Literal

from loadgen.clients.base import RequestSpec
from loadgen.registry import SOURCES
from loadgen.sources.base import PromptContext, PromptSource
from loadgen.tokens import PromptError


@SOURCES.register("sharegpt")
class ShareGPT(PromptSource):
    source: Literal["sharegpt"] = "sharegpt"
    dataset: Path

    def build(self, context: PromptContext) -> list[RequestSpec]:
        prompts = first_human_turns(self.dataset)
        random.Random(context.seed).shuffle(prompts)
        counter = context.tokenizer.count if context.tokenizer else None
        return [RequestSpec(prompt_id=f"sharegpt-{pid}", prompt=text, max_tokens=self.output_tokens,
                            prompt_tokens=counter(text) if counter else None)
                for pid, text in prompts[: self.count]]


def first_human_turns(path: Path) -> list[tuple[str, str]]:
    """(conversation id, first human turn) of every conversation that has one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PromptError(f"cannot read ShareGPT file {path}: {exc}") from exc
    except RecursionError:
        raise PromptError(f"cannot read ShareGPT file {path}: nested too deeply to be a dataset") from None
    prompts = []
    for item in data if isinstance(data, list) else []:
        for turn in item.get("conversations", []) if isinstance(item, dict) else []:
            if turn.get("from") in ("human", "user") and isinstance(turn.get("value"), str) and turn["value"]:
                prompts.append((str(item.get("id", len(prompts))), turn["value"]))
                break
    if not prompts:
        raise PromptError(f"{path}: no conversation with a human turn (ShareGPT format expected)")
    return prompts
