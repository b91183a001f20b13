"""The workload sources (trace, conversations, shared-prefix, unique synthetic prompts) built for real
with the model's own tokenizer: exact lengths, the trace's clock and prefix reuse, the context rule,
and malformed input stopped before any request with the file, line and field named."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from loadgen.api import RunSetupError, build_prompts, run
from loadgen.cli import main
from loadgen.clients.base import SALT_TOKENS, RequestSpec
from loadgen.config import Profile
from loadgen.sessions import group_sessions, with_history
from loadgen.sources.base import PromptContext
from loadgen.tokens import LocalTokenizer
from stack import samples

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tok(model_dir: Path) -> LocalTokenizer:
    return LocalTokenizer(model_dir)


def profile(prompts: dict[str, Any], load: dict[str, Any] | None = None, **fields: Any) -> Profile:
    return Profile.model_validate({
        "model": "m", "targets": [{"name": "t", "kind": "openai-completions", "url": "http://127.0.0.1:9"}],
        "prompts": prompts, "load": load or {"type": "concurrency", "concurrency": 1, "requests": 1},
        "metrics": {"enabled": False}, **fields})


def specs_of(prompts: dict[str, Any], model_dir: Path, **kw: Any) -> tuple[list[RequestSpec], dict[str, int]]:
    specs, _, stats = build_prompts(profile({**prompts, "tokenizer": str(model_dir)}, **kw))
    return specs, stats


def write_mooncake(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- traces ------------------------------------------------------------------------------------------


def test_mooncake_rows_keep_their_clock_lengths_and_prefix_reuse(tmp_path: Path, model_dir: Path,
                                                                 tok: LocalTokenizer) -> None:
    path = write_mooncake(tmp_path / "t.jsonl", [
        {"timestamp": 1000, "input_length": 20, "output_length": 5, "hash_ids": [7, 8]},
        {"timestamp": 1500, "input_length": 25, "output_length": 6, "hash_ids": [7, 8, 9]},
        {"timestamp": 4000, "input_length": 15, "output_length": 7, "hash_ids": [7, 3]},
        {"timestamp": 9000, "input_length": 12, "output_length": 8, "hash_ids": [1]}])
    specs, stats = specs_of({"source": "trace", "format": "mooncake", "path": str(path), "block_tokens": 10,
                             "speedup": 2.0}, model_dir)
    assert [s.at_s for s in specs] == [0.0, 0.25, 1.5, 4.0]  # (t − first) / speedup
    assert [s.max_tokens for s in specs] == [5, 6, 7, 8]
    ids = [tok.encode(s.prompt) for s in specs]
    assert [len(i) for i in ids] == [20, 25, 15, 12] == [s.prompt_tokens for s in specs]
    assert ids[0] == ids[1][:20]  # blocks 7, 8 equal
    assert ids[2][:10] == ids[0][:10] and ids[2][10:] != ids[0][10:15]  # block 7 equal, block 3 not block 8
    assert ids[3][:10] != ids[0][:10]
    assert stats == {"rows": 4, "used": 4, "clipped": 0, "skipped_over_context": 0, "skipped_empty": 0,
                     "outside_window": 0}


def test_window_max_requests_and_the_context_rule_are_counted(tmp_path: Path, model_dir: Path) -> None:
    rows = [{"timestamp": 1000 * i, "input_length": 10 + 30 * (i % 2), "output_length": 10, "hash_ids": []}
            for i in range(10)]
    rows[4]["output_length"] = 0
    path = write_mooncake(tmp_path / "t.jsonl", rows)
    base = {"source": "trace", "format": "mooncake", "path": str(path), "start_s": 2, "duration_s": 6,
            "max_context_tokens": 32}
    clipped, stats = specs_of({**base, "over_context": "clip"}, model_dir)
    # window [2 s, 8 s): rows 2..7; row 4 has no output; rows 3, 5, 7 (40 + 10 > 32) are clipped to 22 + 10
    assert [s.at_s for s in clipped] == [0.0, 1.0, 3.0, 4.0, 5.0]
    assert [(s.prompt_tokens, s.max_tokens) for s in clipped] == [(10, 10), (22, 10), (22, 10), (10, 10), (22, 10)]
    assert stats == {"rows": 10, "used": 5, "clipped": 3, "skipped_over_context": 0, "skipped_empty": 1,
                     "outside_window": 4}
    skipped, stats = specs_of({**base, "over_context": "skip", "max_requests": 2}, model_dir)
    assert [s.at_s for s in skipped] == [0.0, 4.0]
    assert (stats["used"], stats["skipped_over_context"], stats["skipped_empty"]) == (2, 2, 1)


def test_azure_and_burstgpt_samples_parse(model_dir: Path) -> None:
    datasets = ROOT / "loadgen" / "datasets"
    azure, stats = specs_of({"source": "trace", "format": "azure", "path": str(datasets / "azure-sample.csv"),
                             "max_context_tokens": 2048, "over_context": "skip"}, model_dir)
    assert stats["rows"] == 40 and stats["skipped_over_context"] == 1 and len(azure) == 39
    assert azure[0].at_s == 0.0 and all(b.at_s >= a.at_s for a, b in itertools.pairwise(azure))
    assert 10 < azure[-1].at_s < 40
    burst, stats = specs_of({"source": "trace", "format": "burstgpt",
                             "path": str(datasets / "burstgpt-sample.csv")}, model_dir)
    assert stats["skipped_empty"] == 1 and len(burst) == 39


def test_azure_timestamps_with_seven_fraction_digits(tmp_path: Path, model_dir: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,10,4\n"
                    "2023-11-16 18:15:48.1805900,12,4\n")
    specs, _ = specs_of({"source": "trace", "format": "azure", "path": str(path)}, model_dir)
    assert [s.at_s for s in specs] == [0.0, pytest.approx(1.5)]


BAD_FILES = [
    ("mooncake", "t.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 2}\n'
                            '{"timestamp": 1, "input_length": "many", "output_length": 2}\n',
     ":2: field 'input_length'"),
    ("mooncake", "t.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 2}\n\n{"timestamp": 1,\n',
     ":3: field '(line)': not JSON"),
    ("mooncake", "t.jsonl", '{"input_length": 5, "output_length": 2}\n', ":1: field 'timestamp': missing"),
    ("mooncake", "t.jsonl", '{"timestamp": 0, "input_length": 5, "output_length": 2, "hash_ids": [1, "x"]}\n',
     ":1: field 'hash_ids'"),
    ("azure", "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.1,10,4\nyesterday,5,5\n",
     ":3: field 'TIMESTAMP': not a time"),
    ("azure", "a.csv", "TIMESTAMP,Context,GeneratedTokens\n1,2,3\n", ":1: field 'ContextTokens': missing column"),
    ("burstgpt", "b.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                          "0.5,GPT-4,10,-3,7,API log\n", ":2: field 'Response tokens': must be at least 0"),
]


@pytest.mark.parametrize(("fmt", "name", "text", "message"), BAD_FILES)
def test_a_malformed_trace_row_stops_the_run_naming_file_line_and_field(tmp_path: Path, model_dir: Path, fmt: str,
                                                                         name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RunSetupError) as caught:
        run(profile({"source": "trace", "format": fmt, "path": str(path), "tokenizer": str(model_dir)},
                    {"type": "replay"}), tmp_path / "out")
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)
    assert not (tmp_path / "out").exists()  # stopped before the output folder, let alone a request


def test_the_cli_names_the_bad_line_without_a_traceback(tmp_path: Path, model_dir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = write_mooncake(tmp_path / "t.jsonl", [{"timestamp": 0, "input_length": 5, "output_length": "two"}])
    code = main(["run", "--target", "t=openai-completions@http://127.0.0.1:9", "--model", "m", "--no-metrics",
                 "--set", "prompts.source=trace", "--set", "prompts.format=mooncake", "--set", f"prompts.path={path}",
                 "--set", f"prompts.tokenizer={model_dir}", "--set", "load.type=replay",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert "t.jsonl:1: field 'output_length': not an integer" in " ".join(err.split())


def test_replay_needs_arrival_times(model_dir: Path) -> None:
    with pytest.raises(RunSetupError, match=r"replay.*arrival times"):
        build_prompts(profile({"input_tokens": 8, "tokenizer": str(model_dir)}, {"type": "replay"}))


# -- conversations -----------------------------------------------------------------------------------


def test_sharegpt_conversations_become_sessions_of_every_user_turn(model_dir: Path) -> None:
    path = ROOT / "loadgen" / "datasets" / "conversations-sample.json"
    specs, _ = specs_of({"source": "conversations", "dataset": str(path), "count": 12, "think_s": 2.0,
                         "think": "constant"}, model_dir)
    data = json.loads(path.read_text())
    assert len(specs) == sum(1 for c in data for t in c["conversations"] if t["from"] == "human")
    sessions = group_sessions(specs)
    assert len(sessions) == 12
    for turns in sessions:
        assert [s.turn for s in turns] == list(range(1, len(turns) + 1))
        assert [s.think_s for s in turns] == [0.0] + [2.0] * (len(turns) - 1)
        original = next(c for c in data if f"conv-{c['id']}" == turns[0].session_id)
        assert [s.prompt for s in turns] == [t["value"] for t in original["conversations"] if t["from"] == "human"]


def test_synthetic_conversations_have_exact_user_turns(model_dir: Path, tok: LocalTokenizer) -> None:
    specs, _ = specs_of({"source": "conversations", "count": 3, "turns": 4, "user_tokens": 20, "think_s": 0.5,
                         "think": "poisson"}, model_dir, seed=3)
    assert len(specs) == 12 and {tok.count(s.prompt) for s in specs} == {20}
    pauses = [s.think_s for s in specs if s.turn != 1]
    assert len(set(pauses)) == len(pauses) and all(p > 0 for p in pauses)  # exponential draws


def test_a_turn_carries_the_history_with_the_servers_answers() -> None:
    spec = RequestSpec("p", "third question", 4, session_id="s", turn=3)
    history = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
               {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]
    sent = with_history(spec, history, "s~1")
    assert sent.messages == (*history, {"role": "user", "content": "third question"})
    assert sent.prompt == "q1\na1\nq2\na2\nthird question" and sent.session_id == "s~1"


BAD_CONVERSATIONS = [
    ('[\n {"id": "a", "conversations": [{"from": "human", "value": "hi"}]},\n'
     ' {"id": "b", "conversations": [{"from": "human", "value": 3}]}\n]\n', ":3: field 'conversations[0].value'"),
    ('[\n {"id": "a", "conversations": [{"from": "robot", "value": "hi"}]}\n]\n',
     ":2: field 'conversations[0].from': unknown role 'robot'"),
    ('[\n {"id": "a"}\n]\n', ":2: field 'conversations': missing"),
    ('[\n {"id": "a", "conversations": []},\n {"id": "b", \n', ":3: field '(item)': not JSON"),
    ('{"id": "a", "conversations": [{"from": "human", "value": "hi"}]}\n{"id": "b", "conversations": 5}\n',
     ":2: field 'conversations'"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONVERSATIONS)
def test_a_malformed_conversation_names_file_line_and_field(tmp_path: Path, model_dir: Path, text: str,
                                                            message: str) -> None:
    path = tmp_path / "conv.json"
    path.write_text(text)
    with pytest.raises(RunSetupError) as caught:
        specs_of({"source": "conversations", "dataset": str(path)}, model_dir)
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)


# -- shared prefixes and unique prompts ---------------------------------------------------------------


def test_shared_prefix_prompts_share_exactly_the_prefix(model_dir: Path, tok: LocalTokenizer) -> None:
    specs, _ = specs_of({"source": "shared-prefix", "groups": 3, "prefix_tokens": 40, "suffix_tokens": 9,
                         "count": 9}, model_dir)
    ids = [tok.encode(s.prompt) for s in specs]
    assert {len(i) for i in ids} == {49} and {s.prompt_tokens for s in specs} == {49}
    for i, a in enumerate(ids):
        for j, b in enumerate(ids[:i]):
            shared = next((k for k, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), 49)
            if i % 3 == j % 3:
                assert 40 <= shared < 49  # the group's prefix, then suffixes of their own
            else:
                assert shared < 40


def test_unique_salts_differ_per_request_and_keep_the_length(model_dir: Path, tok: LocalTokenizer) -> None:
    specs, _ = specs_of({"input_tokens": 24, "count": 2}, model_dir)
    assert all(s.salt_words and len(s.salt_words) >= 64 for s in specs)
    sent = [specs[i % 2].salted(10**9 + i) for i in range(200)]
    assert len({s.prompt for s in sent}) == 200 and len({s.prompt_id for s in sent}) == 200
    assert {tok.count(s.prompt) for s in sent} == {24}
    first = [tok.encode(s.prompt)[:SALT_TOKENS] for s in sent]
    assert len({tuple(f) for f in first}) == 200  # the salt is what differs, at the front
    assert all(s.prompt.endswith(specs[i % 2].prompt) for i, s in enumerate(sent))
    plain, _ = specs_of({"input_tokens": 24, "count": 2, "unique": False}, model_dir)
    assert all(s.salt_words is None and tok.count(s.prompt) == 24 for s in plain)


def test_unique_needs_room_for_the_salt() -> None:
    with pytest.raises(ValueError, match="input_tokens must be more than 4"):
        profile({"input_tokens": 4})
    assert profile({"input_tokens": 4, "unique": False}).prompts.input_tokens == 4


def test_sources_report_nothing_when_they_change_nothing(model_dir: Path) -> None:
    context = PromptContext(seed=0, tokenizer=LocalTokenizer(model_dir))
    profile({"input_tokens": 8}).prompts.build(context)
    assert context.stats == {}


# -- sample files ------------------------------------------------------------------------------------


def test_the_committed_samples_are_what_the_project_makes(tmp_path: Path) -> None:
    assert samples.main(["--out", str(tmp_path)]) == 0
    for name in samples.SAMPLES:
        assert (tmp_path / name).read_text() == (ROOT / "loadgen" / "datasets" / name).read_text(), name


@pytest.mark.parametrize("name", ["trace-mooncake", "conversations", "shared-prefix"])
def test_the_workload_profiles_build(name: str, model_dir: Path) -> None:
    from loadgen.config import load_profile

    p = load_profile(ROOT / "loadgen" / "profiles" / f"{name}.yaml", [("prompts.tokenizer", str(model_dir))])
    specs, _, _ = build_prompts(p)
    assert specs and p.prompts.source == {"trace-mooncake": "trace"}.get(name, name)
