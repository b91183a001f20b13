"""Hostile settings and data files (issue 29, item 2): an alias bomb, deep nesting and an oversized profile are
each refused in well under a second, naming the limit, with exit 2 and no run folder; the same for a study file,
a ``--set`` value and deeply nested JSON data files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from loadgen import safe_yaml
from loadgen.answers.study_config import StudyError, load_study
from loadgen.cli import main
from loadgen.config import load_profile, parse_assignment
from loadgen.sources.sharegpt import first_human_turns
from loadgen.sources.trace import azure, mooncake
from loadgen.tokens import PromptError

HEAD = "model: m\ntargets: [{name: t, kind: openai-chat, url: 'http://127.0.0.1:1'}]\n" \
       "load: {type: concurrency, concurrency: 1, requests: 1}\n"


def bomb() -> str:
    """Nine levels of nine aliases each: 9^9 (387 M) values once expanded, 2 kB of text."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k in range(1, 10):
        lines.append(f"a{k}: &a{k} [" + ", ".join([f"*a{k - 1}"] * 9) + "]")
    return "request:\n  extra_body:\n" + "".join(f"    {line}\n" for line in lines)


HOSTILE = {
    "alias bomb": (HEAD + bomb(), "expands to more than 100,000 values"),
    "deep nesting": (HEAD + "request:\n  extra_body: {x: " + "[" * 100_000 + "]" * 100_000 + "}\n",
                     "nested more than 64 levels deep"),
    "recursive alias": (HEAD + "request:\n  extra_body: &r {x: *r}\n", "recursive document"),
    "oversized": (HEAD + "# " + "x" * (2 * 1024 * 1024) + "\n", "a profile is at most 1,048,576 bytes"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_profile_is_refused_quickly_naming_the_limit(case: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    text, message = HOSTILE[case]
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    began = time.perf_counter()
    with pytest.raises(ValueError, match=message):
        load_profile(path, [])
    code = main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress", "--no-metrics"])
    assert time.perf_counter() - began < 2.0  # both refusals together; each is milliseconds
    assert code == 2 and message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "out").exists()


def test_the_limits_leave_ordinary_documents_alone(tmp_path: Path) -> None:
    shared = "defaults: &d {max_tokens: 8, temperature: 0}\na: *d\nb: *d\n"
    assert safe_yaml.loads(shared) == {"defaults": {"max_tokens": 8, "temperature": 0}, "a": {"max_tokens": 8,
                                       "temperature": 0}, "b": {"max_tokens": 8, "temperature": 0}}
    assert safe_yaml.loads("") is None
    for profile in sorted(Path("loadgen/profiles").glob("*.yaml")):
        assert isinstance(safe_yaml.load_file(profile), dict), profile


def test_study_files_and_set_values_have_the_same_limits(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(HEAD + bomb().replace("request:\n  extra_body:", "study:\n  extra:"))
    with pytest.raises((StudyError, ValueError), match="expands to more than"):
        load_study(path, [])
    with pytest.raises(ValueError, match="nested more than 64"):
        parse_assignment("request.extra_body=" + "[" * 1000 + "]" * 1000)


def test_deeply_nested_json_data_is_a_prompt_error(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "sharegpt.json").write_text(deep)
    with pytest.raises(PromptError, match="nested too deeply"):
        first_human_turns(tmp_path / "sharegpt.json")
    (tmp_path / "trace.jsonl").write_text('{"x": ' + deep + "}\n")
    with pytest.raises(PromptError, match="nested too deeply"):
        list(mooncake(tmp_path / "trace.jsonl"))


def test_a_binary_file_given_as_a_trace_is_refused_at_once(tmp_path: Path) -> None:
    """Issue 29, item 6: bytes that decode (Latin-1-looking UTF-8 with NULs) or do not; a one-line 100 KB header."""
    binary = tmp_path / "trace.csv"
    binary.write_bytes(bytes(range(256)) * 400)
    text_with_nul = tmp_path / "nul.csv"
    text_with_nul.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "a\x00b," * 10)
    wide = tmp_path / "wide.csv"
    wide.write_text("x" * 100_000 + "\n1\n")
    for path in (binary, text_with_nul, wide):
        began = time.perf_counter()
        with pytest.raises(PromptError) as caught:
            list(azure(path))
        assert time.perf_counter() - began < 1.0 and len(str(caught.value)) < 600, (path, str(caught.value)[:300])
