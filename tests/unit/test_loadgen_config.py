"""Profiles: YAML, CLI shorthands, dotted overrides and clear validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from loadgen.cli import main, overrides_from_args
from loadgen.config import SLOConfig, TargetConfig, load_profile

PROFILES = Path(__file__).resolve().parents[2] / "loadgen" / "profiles"


def test_target_spec() -> None:
    t = TargetConfig.parse("vllm=openai-chat@http://127.0.0.1:8000")
    assert (t.name, t.kind, t.url) == ("vllm", "openai-chat", "http://127.0.0.1:8000")
    with pytest.raises(ValueError, match="NAME=KIND@URL"):
        TargetConfig.parse("vllm@http://x")
    with pytest.raises(ValidationError):
        TargetConfig.parse("vllm=grpc@http://x")


def test_slo_spec() -> None:
    assert SLOConfig.parse("ttft_ms=500, tpot_ms=50") == {"ttft_ms": 500.0, "tpot_ms": 50.0}


def test_cli_flags_override_the_profile(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text("model: m\ntargets: [{name: a, kind: openai-chat, url: 'http://x'}]\n"
                       "sweep: {type: concurrency, values: [1, 4], requests: 8}\n")
    import argparse

    ns = argparse.Namespace(target=[], model=None, concurrency=None, rate=3.0, arrival="gamma", burstiness=0.5,
                            requests=None, duration=5.0, warmup=2, input_tokens=None, output_tokens=16,
                            tokenizer=None, dataset=None, slo="e2e_ms=900", max_in_flight=None, out=None,
                            set=["request.temperature=0.5", "seed=7"])
    p = load_profile(profile, overrides_from_args(ns))
    assert p.sweep is None and p.load is not None  # the explicit --rate replaced the sweep
    assert (p.load.type, p.load.rate, p.load.arrival, p.load.burstiness, p.load.duration_s) == (
        "rate", 3.0, "gamma", 0.5, 5.0)
    assert (p.warmup, p.prompts.output_tokens, p.slo.e2e_ms, p.request.temperature, p.seed) == (2, 16, 900, 0.5, 7)


def test_sweeps_become_stages(tmp_path: Path) -> None:
    p = load_profile(None, [("model", "m"), ("targets", [{"name": "a", "kind": "openai-chat", "url": "u"}]),
                            ("sweep", {"type": "rate", "values": [1, 2.5], "duration_s": 3})])
    assert [s.label for s in p.resolved_stages()] == ["r1", "r2.5"]


@pytest.mark.parametrize(("overrides", "message"), [
    ([("load", {"type": "rate", "requests": 3})], "needs `rate`"),
    ([("load", {"type": "concurrency", "concurrency": 2})], "`requests` or `duration_s`"),
    ([("load", {"type": "concurrency", "concurrency": 2, "requests": 1}), ("sweep", {"type": "rate", "values": [1]})],
     "define the load once"),
    ([("load", {"type": "concurrency", "concurrency": 2, "requests": 1}), ("lod", 3)], "lod"),
])
def test_invalid_profiles_fail_naming_the_problem(overrides, message) -> None:
    base = [("model", "m"), ("targets", [{"name": "a", "kind": "openai-chat", "url": "u"}])]
    with pytest.raises(ValidationError, match=message):
        load_profile(None, base + overrides)


def test_shipped_profiles_validate() -> None:
    shipped = sorted(PROFILES.glob("*.yaml"))
    assert shipped, "loadgen/profiles/ ships at least one profile"
    for path in shipped:
        load_profile(path, [])


def test_cli_reports_a_bad_profile_without_traceback(capsys) -> None:
    code = main(["run", "--target", "a=openai-chat@http://127.0.0.1:9", "--model", "m", "--rate", "-1",
                 "--requests", "1", "--no-progress"])
    assert code == 2
    assert "rate" in capsys.readouterr().err
