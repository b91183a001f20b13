"""Sequence: stop strings, EOS rules, min_tokens and incremental text, with the real tokenizer."""

from __future__ import annotations

import pytest

from servers.hf.sequence import (
    FinishEvent,
    IncrementalDetokenizer,
    SamplingParams,
    Sequence,
    TokenEvent,
    _held_back,
)


def _run(tokenizer, text: str, params: SamplingParams, eos: frozenset[int] = frozenset(), prompt: str = "Hi"):
    events: list = []
    seq = Sequence("t", tokenizer(prompt)["input_ids"], params, tokenizer, eos, emit=events.append)
    for token in tokenizer(text, add_special_tokens=False)["input_ids"]:
        seq.append(token)
        if seq.is_finished:
            break
    return seq, events


def test_deltas_concatenate_to_the_decoded_text(tokenizer) -> None:
    text = "Héllo wörld — naïve café 日本語 🚀 done."
    seq, events = _run(tokenizer, text, SamplingParams(max_tokens=1000))
    assert "".join(e.text for e in events) == text == seq.text
    assert len(events) == len(seq.output_ids)  # exactly one event per token


def test_multibyte_characters_are_held_until_complete(tokenizer) -> None:
    ids = tokenizer("🚀", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1, "the rocket emoji should span several byte-level tokens"
    detok = IncrementalDetokenizer(tokenizer, [])
    deltas = [detok.step(t) for t in ids]
    assert deltas[:-1] == [""] * (len(ids) - 1)
    assert deltas[-1] == "🚀"


def test_length_finish_at_max_tokens(tokenizer) -> None:
    seq, events = _run(tokenizer, "one two three four five six", SamplingParams(max_tokens=3))
    assert seq.finish_reason == "length"
    assert len(seq.output_ids) == 3
    assert events[-1].finish_reason == "length" and all(e.finish_reason is None for e in events[:-1])


def test_stop_string_truncates_and_never_streams_the_stop(tokenizer) -> None:
    seq, events = _run(tokenizer, "The answer is 42. END of story", SamplingParams(max_tokens=100, stop=("END",)))
    assert seq.finish_reason == "stop"
    assert seq.text == "The answer is 42. "
    assert "".join(e.text for e in events) == "The answer is 42. "


def test_stop_string_prefix_is_held_back(tokenizer) -> None:
    # After " is" the text ends in "s", which may begin the stop "s 4": it must not be streamed.
    seq, events = _run(tokenizer, "The answer is 42", SamplingParams(max_tokens=100, stop=("s 4",)))
    assert [e.text for e in events[:3]] == ["The", " answer", " i"]
    assert seq.finish_reason == "stop"
    assert "".join(e.text for e in events) == seq.text == "The answer i"


def test_held_back_is_the_longest_stop_prefix() -> None:
    assert _held_back("abc", ("cde",)) == 1
    assert _held_back("abcd", ("cde", "bcdx")) == 3
    assert _held_back("abc", ("xyz",)) == 0
    assert _held_back("xa", ("ab",)) == 1
    assert _held_back("ab", ("ab",)) == 0  # a whole stop is found by the search, never held


def test_eos_stops_unless_ignored(tokenizer) -> None:
    eos = frozenset({tokenizer.eos_token_id})
    prompt_ids = tokenizer("Hi")["input_ids"]
    for ignore, expected_len, reason in ((False, 2, "stop"), (True, 4, "length")):
        seq = Sequence("t", prompt_ids, SamplingParams(max_tokens=4, ignore_eos=ignore), tokenizer, eos)
        for token in [10, tokenizer.eos_token_id, 11, 12]:
            seq.append(token)
            if seq.is_finished:
                break
        assert (len(seq.output_ids), seq.finish_reason) == (expected_len, reason)


def test_min_tokens_suppresses_eos_and_stop_strings(tokenizer) -> None:
    eos = frozenset({tokenizer.eos_token_id})
    seq = Sequence("t", [1, 2], SamplingParams(max_tokens=10, min_tokens=3, stop=("a",)), tokenizer, eos)
    assert seq.suppressed_token_ids() == eos
    seq.append(tokenizer("a", add_special_tokens=False)["input_ids"][0])  # a stop string before min_tokens
    assert not seq.is_finished
    seq.append(tokenizer.eos_token_id)  # EOS before min_tokens (if sampled anyway) does not stop
    assert not seq.is_finished
    seq.append(tokenizer("b", add_special_tokens=False)["input_ids"][0])
    assert seq.suppressed_token_ids() == frozenset()


def test_min_tokens_suppresses_eos_even_with_ignore_eos(tokenizer) -> None:
    """As vLLM: ignore_eos lets EOS through without stopping, but min_tokens still bans it. (Found by the
    cross-engine agreement check: the baseline sampled EOS under ignore_eos + min_tokens, vLLM did not.)"""
    eos = frozenset({tokenizer.eos_token_id})
    seq = Sequence("t", [1, 2], SamplingParams(max_tokens=4, min_tokens=4, ignore_eos=True), tokenizer, eos)
    assert seq.suppressed_token_ids() == eos
    for token in (10, 11, 12):
        seq.append(token)
    assert seq.suppressed_token_ids() == eos
    seq.append(13)
    assert seq.is_finished and seq.finish_reason == "length"
    assert Sequence("t", [1], SamplingParams(max_tokens=4, ignore_eos=True), tokenizer, eos).suppressed_token_ids() \
        == frozenset()


def test_end_is_idempotent_and_emits_once(tokenizer) -> None:
    events: list = []
    seq = Sequence("t", [1], SamplingParams(max_tokens=5), tokenizer, frozenset(), emit=events.append)
    seq.end("abort")
    seq.end("error", "late")
    assert events == [FinishEvent("abort")]
    assert seq.finish_reason == "abort"


@pytest.mark.parametrize("stops", [("x",), ("xyz", "y")])
def test_events_are_token_events(tokenizer, stops) -> None:
    _, events = _run(tokenizer, "abc xyz def", SamplingParams(max_tokens=50, stop=stops))
    assert all(isinstance(e, TokenEvent) for e in events)
