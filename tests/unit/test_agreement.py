"""Output agreement between targets, against hand-computed pairs."""

from __future__ import annotations

import json

import pytest

from loadgen.config import load_profile
from loadgen.record import RequestRecord
from loadgen.summary import build_summary
from loadgen.verdicts.agreement import Agreement, agreement, compare, shared_prefix
from tests.unit.records import manifest


def rec(target: str, prompt_id: str, text: str | None, *, ok: bool = True, warmup: bool = False) -> RequestRecord:
    return RequestRecord(target=target, kind="openai-completions", stage=0, stage_name="c1", index=0,
                         prompt_id=prompt_id, intended_ns=0, sent_ns=0, end_ns=10, status=200, warmup=warmup,
                         error=None if ok else "http_5xx", output_tokens=3, output_text=text)


def words(text: str) -> list[int]:
    """A stand-in tokenizer: one id per word (hash is stable within a process)."""
    return [hash(w) for w in text.split()]


def test_shared_prefix_and_compare() -> None:
    assert shared_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert shared_prefix([], [1]) == 0
    assert compare("a b c d", "a b x d", words) == (False, 2, 0.5)
    assert compare("a b", "a b", words) == (True, 2, 1.0)
    assert compare("", "", words) == (True, 0, 1.0)
    assert compare("", "x", None) == (False, 0, 0.0)
    assert compare("Paris.", "Paris!", None) == (False, 5, 5 / 6)  # characters without a tokenizer


def test_agreement_pairs_by_prompt_and_skips_failures_and_warmup() -> None:
    records = [
        rec("base", "p0", "a b c d"), rec("base", "p1", "x y"), rec("base", "p2", "q", ok=False),
        rec("base", "p0", "ignored: only the reference's first record per prompt counts"),
        rec("vllm", "p0", "a b c d"),  # exact, 4 of 4
        rec("vllm", "p1", "x z"),  # 1 of 2
        rec("vllm", "p2", "q"),  # the reference failed on p2: not paired
        rec("vllm", "p1", "x y", ok=False),  # failed: not compared
        rec("vllm", "p0", "a", warmup=True),  # warm-up: not compared
    ]
    result = agreement(records, "base", "vllm", words)
    assert isinstance(result, Agreement)
    assert result.model_dump() == {"reference": "base", "compared": 2, "exact": 1, "exact_rate": 0.5,
                      "shared_prefix_tokens": {"mean": 2.5, "min": 1}, "shared_prefix_ratio_mean": 0.75,
                      "unit": "tokens"}
    assert agreement(records, "base", "triton", words) is None


def test_summary_carries_agreement_for_every_target_but_the_reference() -> None:
    records = [rec("base", "p0", "a b"), rec("vllm", "p0", "a b")]
    summary = build_summary(records, [], manifest(), {}, agreement_reference="base", tokenize=words)
    assert summary.targets["base"].agreement is None
    assert summary.targets["vllm"].agreement is not None and summary.targets["vllm"].agreement.exact_rate == 1.0
    saved = json.loads(summary.to_json())  # summary.json: no "agreement" key at all on the reference
    assert "agreement" not in saved["targets"]["base"]
    assert saved["targets"]["vllm"]["agreement"]["exact_rate"] == 1.0


def test_profile_rejects_an_unknown_reference(tmp_path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("model: m\ntargets: [{name: a, kind: openai-chat, url: 'http://x'}]\n"
                       "load: {concurrency: 1, requests: 1}\nagreement: {reference: b}\n")
    with pytest.raises(ValueError, match=r"agreement.reference .b. is not one of the targets"):
        load_profile(profile, [])


def test_chat_targets_are_compared_with_the_chat_reference() -> None:
    records = [rec("base", "p0", "a b c"), rec("base-chat", "p0", "x y"), rec("other", "p0", "a b c"),
               rec("other-chat", "p0", "x z")]
    summary = build_summary(records, [], manifest(), {}, agreement_reference="base",
                            agreement_references={"other-chat": "base-chat"}, tokenize=words)
    assert summary.targets["other"].agreement.reference == "base"
    assert summary.targets["other"].agreement.exact == 1
    chat = summary.targets["other-chat"].agreement
    assert chat.reference == "base-chat" and chat.exact == 0 and chat.shared_prefix_tokens.min == 1
    assert summary.targets["base-chat"].agreement is None  # a reference is not compared with another


def test_profile_rejects_an_unknown_chat_reference(tmp_path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("model: m\ntargets: [{name: a, kind: openai-chat, url: 'http://x'}]\n"
                       "load: {concurrency: 1, requests: 1}\nagreement: {reference: a, references: {a: c}}\n")
    with pytest.raises(ValueError, match=r"agreement.references names .c."):
        load_profile(profile, [])
