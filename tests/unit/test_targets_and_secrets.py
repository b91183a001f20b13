"""Targets checked before a run creates anything; headers, keys and their redaction; the exit status;
connection time apart from send lag; progress while prompts are built."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from loadgen import metrics as m
from loadgen.api import RunSetupError, run
from loadgen.cli import main
from loadgen.cli.exit_codes import EXIT_FAILED, EXIT_INVALID, outcome
from loadgen.cli.run import explain
from loadgen.clients.endpoint import HTTP_SCHEMES, parse_url
from loadgen.config import Profile, load_profile
from loadgen.headers import REDACTED, parse_header, redact, secrets_of
from loadgen.record import RequestRecord
from loadgen.sources.base import PromptProgress
from loadgen.sources.synthetic import Synthetic
from loadgen.summary import Manifest, build_summary

BASE = [("model", "m"), ("load", {"concurrency": 1, "requests": 1})]


def target(url: str, kind: str = "openai-chat", **extra: object) -> list[tuple[str, object]]:
    return [*BASE, ("targets", [{"name": "t", "kind": kind, "url": url, **extra}])]


@pytest.mark.parametrize(("url", "kind", "message"), [
    ("notaurl", "openai-chat", "has no scheme"),
    ("127.0.0.1:8000", "openai-completions", "has no scheme"),
    ("ftp://host", "openai-chat", "scheme ftp:// is not supported"),
    ("grpcs://host:1", "openai-chat", "scheme grpcs:// is not supported"),
    ("http://:80", "triton-generate", "has no host"),
    ("http://h:99999", "openai-chat", "bad port"),
    ("127.0.0.1:8001", "triton-grpc", "has no scheme"),
])
def test_a_url_the_kind_cannot_reach_is_refused_naming_the_target(url: str, kind: str, message: str) -> None:
    with pytest.raises(ValidationError, match=f"target t: .*{message}"):
        load_profile(None, target(url, kind))


@pytest.mark.parametrize("extra", [{}, {"metrics_url": "http://admin:hunter2@h:9/metrics"}])
def test_credentials_in_a_url_are_refused_and_never_echoed(extra: dict[str, str],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://h:1" if extra else "http://admin:hunter2@h:1/v1"
    with pytest.raises(ValidationError, match=r"carries a user name or password.*--api-key-env") as caught:
        load_profile(None, target(url, **extra))
    said = explain(caught.value)  # what the console prints: pydantic's own text repeats the input
    assert "hunter2" not in said and "admin" not in said
    with pytest.raises(ValidationError) as query:
        load_profile(None, target("http://h:1/v1?api_key=sk-secret"))
    assert "sk-secret" not in explain(query.value) and "api_key=***" in explain(query.value)
    assert main(["run", "--target", "t=openai-chat@https://u:hunter2@h:1", "--model", "m", "--concurrency", "1",
                 "--requests", "1", "--no-progress", "--no-metrics"]) == 2
    printed = capsys.readouterr()
    assert "carries a user name or password" in printed.err and "hunter2" not in printed.err + printed.out


def test_urls_each_kind_speaks() -> None:
    assert parse_url("https://h/base/", HTTP_SCHEMES).port == 443
    assert parse_url("https://h/base/", HTTP_SCHEMES).prefix == "/base"
    assert parse_url("http://[::1]:8000", HTTP_SCHEMES).authority == "[::1]:8000"
    for url in ("grpc://h:8001", "grpcs://h:8001", "http://h:8001"):
        load_profile(None, target(url, "triton-grpc"))


def test_a_target_that_cannot_run_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNSET_KEY_VAR", raising=False)
    profile = load_profile(None, target("http://127.0.0.1:1", api_key_env="UNSET_KEY_VAR"))
    with pytest.raises(RunSetupError, match="target t: api_key_env 'UNSET_KEY_VAR'"):
        run(profile, tmp_path / "out")
    profile = load_profile(None, [*target("https://127.0.0.1:1"), ("request.ca_cert", str(tmp_path / "no.pem"))])
    with pytest.raises(RunSetupError, match="--ca-cert"):
        run(profile, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_headers_are_checked_and_never_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_header("X-Team:  blue ") == ("X-Team", "blue")
    for bad, message in (("no colon", "expects 'Name: value'"), ("Host: x", "set by the client"),
                         ("Bad Name: x", "not a valid HTTP field name")):
        with pytest.raises(ValueError, match=message):
            parse_header(bad)
    # A value with a line break is refused, and the error printed does not repeat the value.
    with pytest.raises(ValidationError) as caught:
        load_profile(None, [*target("http://h:1"), ("request.headers", {"Authorization": "Bearer s3cr3t\r\nX: y"})])
    assert "line break" in explain(caught.value) and "s3cr3t" not in explain(caught.value)
    assert main(["run", "--target", "t=openai-chat@http://h:1", "--model", "m", "--concurrency", "1",
                 "--requests", "1", "--header", "Bad Name: s3cr3t", "--no-progress"]) == 2
    assert "s3cr3t" not in capsys.readouterr().err


def test_redaction_keeps_what_is_harmless() -> None:
    headers = {"Authorization": "Bearer sk-abcdef", "X-Team": "blue", "X-Api-Key": "k-123456"}
    secrets = secrets_of(headers.items())
    assert secrets == {"Bearer sk-abcdef", "sk-abcdef", "k-123456"}
    data = {"request": {"headers": headers, "max_tokens": 5, "api_key_env": "VAR"},
            "command": ["loadgen", "--header", "X-Api-Key: k-123456", "--note=sk-abcdef"]}
    out = redact(data, secrets)
    assert out["request"] == {"headers": {"Authorization": REDACTED, "X-Team": "blue", "X-Api-Key": REDACTED},
                              "max_tokens": 5, "api_key_env": "VAR"}
    assert out["command"] == ["loadgen", "--header", f"X-Api-Key: {REDACTED}", f"--note={REDACTED}"]
    assert "sk-abcdef" not in json.dumps(out) and "k-123456" not in json.dumps(out)


def test_target_headers_override_the_profile_s_and_the_key_comes_last(monkeypatch: pytest.MonkeyPatch) -> None:
    from loadgen.targets import check_targets, target_headers

    monkeypatch.setenv("KEY_VAR", "sk-from-env")
    profile = load_profile(None, [*target("http://h:1", headers={"x-team": "red"}, api_key_env="KEY_VAR"),
                                  ("request.headers", {"X-Team": "blue", "Authorization": "Bearer old"})])
    assert target_headers(profile, profile.targets[0]) == (("x-team", "red"), ("Authorization", "Bearer sk-from-env"))
    assert "sk-from-env" in check_targets(profile)


def record(error: str | None = None, **fields: object) -> RequestRecord:
    return RequestRecord.model_validate({"target": "t", "kind": "k", "stage": 0, "stage_name": "c1", "index": 0,
                                         "prompt_id": "p", "intended_ns": 0, "sent_ns": 5_000_000,
                                         "end_ns": 9_000_000, "error": error, **fields})


def test_connection_setup_is_its_own_metric_and_not_send_lag() -> None:
    opened = record(connect_start_ns=1_000_000, connect_ns=4_000_000)
    assert m.connect_ms(opened) == 3.0 and m.send_lag_ms(opened) == 2.0
    reused = record()
    assert m.connect_ms(reused) is None and m.send_lag_ms(reused) == 5.0


def test_exit_status_follows_failed_requests_and_validity() -> None:
    manifest = Manifest.model_validate({"versions": {}, "profile": {}, "targets": [], "seed": 0, "dataset_hash": "",
                                        "prompts": 0, "host": {"hostname": "h", "platform": "p", "cpus": 1},
                                        "started_at": "", "command": [], "clock": {"perf_counter_ns": 0,
                                                                                   "unix_ns": 0}})
    summary = build_summary([record(), record(), record("connect"), record()], [], manifest, {})
    assert outcome(summary).code == EXIT_FAILED
    assert "1 of 4 requests failed" in (outcome(summary).message or "")
    assert outcome(summary, max_failed_ratio=0.25).code in (0, EXIT_INVALID)
    assert outcome(build_summary([], [], manifest, {})).code == EXIT_FAILED  # nothing measured
    target = summary.targets["t"]
    assert target.validity is not None  # the verdict of loadgen.verdicts.validity
    target.validity = target.validity.model_copy(update={"valid": False, "reasons": ["send lag"]})
    assert outcome(summary, max_failed_ratio=0.25).code == EXIT_INVALID
    target.validity = target.validity.model_copy(update={"valid": True, "reasons": []})
    assert outcome(summary, max_failed_ratio=0.25).code == 0


def test_building_prompts_reports_progress() -> None:
    said: list[str] = []
    progress = PromptProgress(said.append, every_s=0.0)
    words = [f"w{i}" for i in range(300)]
    specs = Synthetic(input_tokens=8, count=5, unique=False).prompts(0, lambda t: len(t.split()), words, progress)
    assert len(specs) == 5
    assert said == [f"building prompts: {i}/5" for i in range(1, 6)]
    quiet: list[str] = []
    Synthetic(input_tokens=8, count=5, unique=False).prompts(0, lambda t: len(t.split()), words,
                                                             PromptProgress(quiet.append, every_s=60.0))
    assert quiet == []  # a quick build says nothing


def test_preconnect_defaults() -> None:
    closed = load_profile(None, [*target("http://h:1"), ("load", {"concurrency": 7, "requests": 1})])
    assert closed.resolved_stages()[0].connections_to_open() == 7
    open_loop = Profile.model_validate({"model": "m", "targets": [{"name": "t", "kind": "openai-chat",
                                                                     "url": "http://h:1"}],
                                        "load": {"type": "rate", "rate": 5, "requests": 3}})
    assert open_loop.resolved_stages()[0].connections_to_open() == 0
    explicit = load_profile(None, [*target("http://h:1"), ("load", {"concurrency": 7, "requests": 1,
                                                                    "preconnect": 2})])
    assert explicit.resolved_stages()[0].connections_to_open() == 2


def test_a_taken_metrics_port_is_refused_before_any_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "prompts.json"
    dataset.write_text(json.dumps([{"id": "0", "conversations": [{"from": "human", "value": "hi"}]}]))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["run", "--target", "t=openai-chat@http://127.0.0.1:1", "--model", "m", "--concurrency", "1",
                     "--requests", "1", "--dataset", str(dataset), "--metrics-port", str(port), "--set",
                     "metrics.host=127.0.0.1", "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 2 and "cannot serve live metrics" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
