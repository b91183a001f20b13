"""Profiles: YAML, CLI shorthands, dotted overrides and clear validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from loadgen import api
from loadgen.cli import main
from loadgen.config import Profile, SLOConfig, TargetConfig, load_profile

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


def test_cli_flags_override_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`loadgen run PROFILE --flags` hands the API the profile with the flags applied (the run itself is
    replaced: this is about the command line)."""
    profile = tmp_path / "p.yaml"
    profile.write_text("model: m\ntargets: [{name: a, kind: openai-chat, url: 'http://x'}]\n"
                       "sweep: {type: concurrency, values: [1, 4], requests: 8}\n")
    seen: list[Profile] = []

    def fake_run(p: Profile, out: Path | None = None, **options: object) -> api.RunResult:
        seen.append(p)
        raise api.RunSetupError("not running in this test")

    monkeypatch.setattr(api, "run", fake_run)
    code = main(["run", str(profile), "--no-progress", "--rate", "3", "--arrival", "gamma", "--burstiness", "0.5",
                 "--duration", "5", "--warmup", "2", "--output-tokens", "16", "--slo", "e2e_ms=900",
                 "--set", "request.temperature=0.5", "--set", "seed=7"])
    assert code == 2 and len(seen) == 1
    p = seen[0]
    assert p.sweep is None and p.load is not None  # the explicit --rate replaced the sweep
    assert (p.load.type, p.load.rate, p.load.arrival, p.load.burstiness, p.load.duration_s) == (
        "rate", 3.0, "gamma", 0.5, 5.0)
    assert (p.warmup, p.prompts.output_tokens, p.slo.e2e_ms, p.request.temperature, p.seed) == (2, 16, 900, 0.5, 7)


def test_dataset_flag_switches_the_prompt_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Profile] = []

    def fake_run(p: Profile, out: Path | None = None, **options: object) -> api.RunResult:
        seen.append(p)
        raise api.RunSetupError("not running in this test")

    monkeypatch.setattr(api, "run", fake_run)
    assert main(["run", "--target", "a=openai-chat@http://x", "--model", "m", "--concurrency", "2",
                 "--requests", "3", "--input-tokens", "99", "--dataset", str(tmp_path / "d.json"),
                 "--no-progress"]) == 2
    prompts = seen[0].prompts
    assert (prompts.source, prompts.dataset) == ("sharegpt", tmp_path / "d.json")
    assert "input_tokens" not in type(prompts).model_fields  # a dataset's prompts have their own lengths


def test_sweeps_become_stages(tmp_path: Path) -> None:
    p = load_profile(None, [("model", "m"), ("targets", [{"name": "a", "kind": "openai-chat", "url": "http://u"}]),
                            ("sweep", {"type": "rate", "values": [1, 2.5], "duration_s": 3})])
    assert [s.label for s in p.resolved_stages()] == ["r1", "r2.5"]


@pytest.mark.parametrize(("overrides", "message"), [
    ([("load", {"type": "rate", "requests": 3})], r"load\.rate\.rate\s+Field required"),
    ([("load", {"type": "concurrency", "concurrency": 2})], "`requests` or `duration_s`"),
    ([("load", {"type": "concurrency", "concurrency": 2, "requests": 1}), ("sweep", {"type": "rate", "values": [1]})],
     "define the load once"),
    ([("load", {"type": "concurrency", "concurrency": 2, "requests": 1}), ("lod", 3)], "lod"),
])
def test_invalid_profiles_fail_naming_the_problem(overrides, message) -> None:
    base = [("model", "m"), ("targets", [{"name": "a", "kind": "openai-chat", "url": "http://u"}])]
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


def test_plugins_are_checked_against_the_registries_and_defaults_hold() -> None:
    base = [("model", "m"), ("load", {"concurrency": 2, "requests": 1})]
    with pytest.raises(ValidationError, match=r"unknown client kind 'grpc'; known: .*openai-chat"):
        load_profile(None, [*base, ("targets", [{"name": "a", "kind": "grpc", "url": "http://u"}])])
    p = load_profile(None, [*base, ("targets", [{"name": "a", "kind": "triton-grpc", "url": "http://u"}])])
    # no `type`: a concurrency stage; no `prompts.source`: synthetic prompts (both as before the registries)
    assert (p.load.type, p.load.closed_loop_width(), p.prompts.source) == ("concurrency", 2, "synthetic")
    with pytest.raises(ValidationError, match=r"'csv' .* expected tags: 'conversations', 'shared-prefix', 'sharegpt', "
                                               r"'synthetic', 'trace'"):
        load_profile(None, [*base, ("targets", [{"name": "a", "kind": "openai-chat", "url": "http://u"}]),
                            ("prompts", {"source": "csv"})])
    with pytest.raises(ValidationError, match="has no single value to sweep"):
        load_profile(None, [("model", "m"), ("targets", [{"name": "a", "kind": "openai-chat", "url": "http://u"}]),
                            ("sweep", {"type": "ramp", "values": [1]})])


@pytest.mark.parametrize("load", [{"type": "rate", "rate": "inf", "requests": 10},
                                  {"type": "rate", "rate": float("nan"), "requests": 10},
                                  {"type": "ramp", "rate": 1, "end_rate": float("inf"), "duration_s": 5},
                                  {"type": "rate", "rate": 5, "duration_s": float("inf")}])
def test_an_open_loop_needs_finite_numbers(load: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="finite number"):
        Profile.model_validate({"model": "m", "targets": [{"name": "t", "kind": "openai-chat",
                                                           "url": "http://h:1"}], "load": load})
