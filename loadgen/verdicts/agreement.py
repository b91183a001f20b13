"""Do the engines give the same answers? Outputs compared with a reference target's.

Why: the same greedy prompt through the baseline, vLLM and Triton gives the same text when
every engine computes the same thing in the same precision. Where it does not (FP8 or bf16
kernels, batch-dependent reductions, a sampler that differs), users need to see how much,
not just that it changed. Each target is compared with the profile's ``agreement.reference``, or
with the reference ``agreement.references`` names for it (chat answers with a chat target's: a chat
template changes what the model reads). Definitions, for each measured ok record of a target paired
with the reference target's first measured ok record for the same prompt (``prompt_id``):

- exact match: the two output texts are equal;
- shared-prefix tokens ``k``: the number of leading tokens the two outputs share, both texts
  re-tokenized with the run's tokenizer (characters when the run has none). Re-tokenizing
  text, not comparing generated ids, is what every API allows; equal texts give equal ids,
  and at the first divergence the count may differ from the generated ids by a token;
- shared-prefix ratio: ``k / len(reference output)`` in the same units (1.0 when both are empty).

Per target: an ``Agreement`` (summary.json's ``agreement``). Records need their ``output_text``
(the profile's ``agreement`` section asks the clients to keep it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from loadgen.record import RequestRecord

Tokenize = Callable[[str], list[int]]


class SharedPrefix(BaseModel):
    mean: float
    min: int


class Agreement(BaseModel):
    reference: str
    compared: int
    exact: int
    exact_rate: float
    shared_prefix_tokens: SharedPrefix
    shared_prefix_ratio_mean: float
    unit: Literal["tokens", "characters"]


def shared_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def compare(reference: str, other: str, tokenize: Tokenize | None) -> tuple[bool, int, float]:
    """(exact match, shared-prefix length, shared-prefix ratio) of one pair of outputs."""
    ref: Sequence[Any] = tokenize(reference) if tokenize else reference
    out: Sequence[Any] = tokenize(other) if tokenize else other
    k = shared_prefix(ref, out)
    return reference == other, k, (k / len(ref) if ref else float(not out))


def reference_of(target: str, reference: str | None, references: Mapping[str, str]) -> str | None:
    """The target ``target``'s outputs are compared with: its own entry in ``references`` (the profile's
    ``agreement.references``, e.g. chat targets with a chat reference), else ``reference``; None for a
    reference itself and when the run compares nothing."""
    if reference is None:
        return None
    if target in references:
        return references[target]
    if target == reference or target in references.values():
        return None
    return reference


def agreement(records: Sequence[RequestRecord], reference: str, target: str,
              tokenize: Tokenize | None = None) -> Agreement | None:
    """Agreement of ``target``'s outputs with ``reference``'s (see the module docstring); None
    when nothing can be paired."""
    ref_text: dict[str, str] = {}
    for r in records:
        if r.target == reference and r.ok and not r.warmup and r.output_text is not None:
            ref_text.setdefault(r.prompt_id, r.output_text)
    pairs = [(ref_text[r.prompt_id], r.output_text) for r in records
             if r.target == target and r.ok and not r.warmup and r.output_text is not None
             and r.prompt_id in ref_text]
    if not pairs:
        return None
    results = [compare(a, b, tokenize) for a, b in pairs]
    exact = sum(1 for e, _, _ in results if e)
    prefixes = [k for _, k, _ in results]
    return Agreement(
        reference=reference, compared=len(results), exact=exact, exact_rate=round(exact / len(results), 4),
        shared_prefix_tokens=SharedPrefix(mean=round(sum(prefixes) / len(prefixes), 3), min=min(prefixes)),
        shared_prefix_ratio_mean=round(sum(r for _, _, r in results) / len(results), 4),
        unit="tokens" if tokenize else "characters",
    )
