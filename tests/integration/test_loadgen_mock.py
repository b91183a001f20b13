"""The load generator against the synthetic server: accuracy against the server's recorded
truth, every fault class, nothing lost, and a clean stop on SIGINT."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from loadgen import metrics as m
from loadgen.api import load_run, run
from loadgen.cli import main
from loadgen.cli.engine_builds import load_engine_manifests
from loadgen.record import RequestRecord
from loadgen.selftest import mock_truth
from loadgen.sinks.jsonl import JsonlSink, read_records
from stack.process import free_port
from tests.integration.helpers import interrupt_after
from tests.integration.mock_runs import mock, mock_profile, run_mock, write_dataset

ROOT = Path(__file__).resolve().parents[2]


def test_ttft_and_tpot_match_the_mocks_truth_at_concurrency_200(tmp_path: Path) -> None:
    with mock(tmp_path, "--ttft-ms", "50", "--itl-ms", "10") as url:
        before = httpx.get(f"{url}/metrics").text
        run_mock(tmp_path / "out", url, {"type": "concurrency", "concurrency": 200, "requests": 400},
                 output_tokens=32, warmup=200)
        truth = mock_truth(before, httpx.get(f"{url}/metrics").text)
    records = [r for r in read_records(tmp_path / "out" / "records.jsonl") if not r.warmup]
    assert len(records) == 400 and all(r.ok for r in records), {r.error_detail for r in records if not r.ok}
    assert truth.requests == 600
    ttft = m.stats(m.ttft_ms(r) for r in records)
    tpot = m.stats(m.tpot_ms(r) for r in records)
    assert abs(ttft.mean - truth.ttft_ms) < 1.0, (ttft.mean, truth.ttft_ms)
    assert abs(tpot.mean - truth.itl_ms) < 0.2, (tpot.mean, truth.itl_ms)
    assert all(r.output_tokens == 32 and sum(r.chunk_tokens) == 32 for r in records)


def test_chat_role_chunk_is_not_the_first_token(tmp_path: Path) -> None:
    with mock(tmp_path, "--ttft-ms", "80", "--itl-ms", "5") as url:
        run_mock(tmp_path / "out", url, {"type": "concurrency", "concurrency": 4, "requests": 8}, output_tokens=4,
                 kind="openai-chat")
    for r in read_records(tmp_path / "out" / "records.jsonl"):
        assert r.ok and r.chunk_tokens[0] == 0  # the role-only chunk, sent at once
        assert r.chunk_offsets_ns[0] < 40e6 < m.ttft_ms(r) * 1e6  # the first token comes after the asked TTFT


def test_tokens_per_chunk_are_counted_not_chunks(tmp_path: Path) -> None:
    with mock(tmp_path, "--ttft-ms", "10", "--itl-ms", "2", "--tokens-per-chunk", "4") as url:
        run_mock(tmp_path / "out", url, {"type": "concurrency", "concurrency": 2, "requests": 4}, output_tokens=10)
    for r in read_records(tmp_path / "out" / "records.jsonl"):
        assert r.output_tokens == 10
        assert sum(1 for n in r.chunk_tokens if n) == 3  # 4 + 4 + 2 tokens in three chunks


def test_triton_generate_stream_without_done(tmp_path: Path) -> None:
    with mock(tmp_path, "--ttft-ms", "10", "--itl-ms", "2") as url:
        run_mock(tmp_path / "out", url, {"type": "concurrency", "concurrency": 2, "requests": 4}, output_tokens=5,
                 kind="triton-generate")
    records = list(read_records(tmp_path / "out" / "records.jsonl"))
    assert all(r.ok and r.output_tokens == 5 for r in records), [r.error_detail for r in records]


@pytest.mark.parametrize(("fault", "error"), [
    ("--fail-500-rate", "http_5xx"),
    ("--fail-429-rate", "http_4xx"),
    ("--drop-rate", "stream_error"),
    ("--error-event-rate", "stream_error"),
    ("--malformed-rate", "protocol"),
    ("--stall-rate", "timeout"),
])
def test_each_fault_is_classified_and_nothing_is_lost(tmp_path: Path, fault: str, error: str) -> None:
    with mock(tmp_path, "--ttft-ms", "5", "--itl-ms", "2", fault, "1.0") as url:
        result = run_mock(tmp_path / "out", url, {"type": "concurrency", "concurrency": 3, "requests": 6},
                          output_tokens=8, request={"stall_timeout_s": 1})
    records = list(read_records(tmp_path / "out" / "records.jsonl"))
    assert len(records) == 6 and records == result.records  # records written = requests issued
    assert [r.error for r in records] == [error] * 6, [r.error_detail for r in records]
    assert result.summary.targets["mock"].requests.by_error[error] == 6
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["targets"]["mock"]["requests"]["by_error"][error] == 6


def test_a_wrong_scheme_fails_fast_and_sigterm_stops_the_preconnect(tmp_path: Path) -> None:
    """``https://`` at a plain-HTTP port (issue 29, item 1): the handshake never completes. Each connection gives up
    after the connect timeout (a `connect` error, exit 3, not the 600 s request timeout), and a SIGTERM while a
    closed loop opens its connections stops the run within 2 s (exit 130)."""
    with mock(tmp_path, "--ttft-ms", "20", "--itl-ms", "5") as url:
        wrong = url.replace("http://", "https://")
        argv = [sys.executable, "-m", "loadgen.cli", "run", "--no-progress", "--no-metrics", "--target",
                f"mock=openai-completions@{wrong}", "--model", "mock", "--concurrency", "4", "--requests", "4",
                "--output-tokens", "4", "--set", "prompts.source=sharegpt", "--insecure",
                "--set", f"prompts.dataset={write_dataset(tmp_path)}"]
        began = time.monotonic()
        quick = subprocess.run([*argv, "--out", str(tmp_path / "quick"), "--connect-timeout", "1"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
        assert quick.returncode == 3, quick.stdout + quick.stderr
        assert time.monotonic() - began < 15  # the preconnect's 1 s, then each request's own 1 s, not 600 s
        assert {r.error for r in read_records(tmp_path / "quick" / "records.jsonl")} == {"connect"}
        proc = subprocess.Popen([*argv, "--out", str(tmp_path / "stopped")], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        time.sleep(3)  # started, and waiting on the handshakes (the default connect timeout is 10 s)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert time.monotonic() - sent < 2.0, output
    assert proc.returncode == 130, output
    assert (tmp_path / "stopped" / "summary.json").exists()


def test_sigint_mid_run_leaves_valid_records_and_a_summary(tmp_path: Path) -> None:
    with mock(tmp_path, "--ttft-ms", "20", "--itl-ms", "50") as url:
        out = tmp_path / "out"
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadgen.cli", "run", "--no-progress", "--out", str(out), "--target",
             f"mock=openai-completions@{url}", "--model", "mock", "--concurrency", "4", "--duration", "60",
             "--output-tokens", "100", "--set", "prompts.source=sharegpt",
             "--set", f"prompts.dataset={write_dataset(tmp_path)}", "--set", "drain_timeout_s=0.5"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = interrupt_after(proc, out / "records.jsonl")
    assert proc.returncode == 130, output
    assert "interrupted" in output
    records = list(read_records(out / "records.jsonl"))
    assert len(records) >= 4
    assert {r.error for r in records} <= {None, "cancelled"}
    assert any(r.error == "cancelled" for r in records)  # 100 tokens at 50 ms outlast the 0.5 s grace
    summary = json.loads((out / "summary.json").read_text())
    assert summary["targets"]["mock"]["requests"]["ok"] + summary["targets"]["mock"]["requests"]["failed"] == len(
        records)
    saved = load_run(out)  # every file of the interrupted run validates
    assert saved.records == records and saved.summary.targets["mock"].requests.ok == summary["targets"]["mock"][
        "requests"]["ok"]


def test_selftest_runs_and_reports_every_figure() -> None:
    result = subprocess.run([sys.executable, "-m", "loadgen.cli", "selftest", "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert {"bias_c8", "streams_c100", "open_loop"} <= set(figures)
    for name in ("bias_c8", "streams_c100"):
        assert figures[name]["failed"] == 0 and figures[name]["requests"] > 0
        assert all(isinstance(figures[name][k], float) for k in ("ttft_bias_ms", "tpot_bias_ms"))
    assert figures["open_loop"]["failed"] == 0 and figures["open_loop"]["achieved_rate"] > 0


def test_live_metrics_are_served_while_running_and_match_the_records(tmp_path: Path) -> None:
    """A real `loadgen run` process: its /metrics answers during the run, and the final counts equal
    the records it wrote."""
    port = free_port()
    with mock(tmp_path, "--ttft-ms", "20", "--itl-ms", "20") as url:
        dataset = write_dataset(tmp_path)
        proc = subprocess.Popen([sys.executable, "-m", "loadgen.cli", "run", "--no-progress", "--out",
                                 str(tmp_path / "out"), "--target", f"mock=openai-completions@{url}", "--model", "m",
                                 "--dataset", str(dataset), "--concurrency", "4", "--requests", "40",
                                 "--output-tokens", "16", "--metrics-port", str(port), "--set", "metrics.linger_s=5",
                                 "--set", "name=live"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            seen_in_flight, final = False, ""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.HTTPError:
                    time.sleep(0.05)
                    continue
                seen_in_flight |= any(line.startswith("loadgen_requests_in_flight{") and not line.endswith(" 0.0")
                                      for line in text.splitlines())
                final = text
                if sample(text, "loadgen_requests_total", outcome="ok") == 40:
                    break
                time.sleep(0.05)
        finally:
            output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output
    assert f"live metrics: http://127.0.0.1:{port}/metrics" in output
    assert seen_in_flight
    assert sample(final, "loadgen_requests_total", outcome="ok", error_class="") == 40
    assert sample(final, "loadgen_output_tokens_total") == 640
    assert sample(final, "loadgen_ttft_seconds_count") == 40
    assert sample(final, "loadgen_itl_seconds_count") == 600  # 15 gaps per request


def sample(text: str, name: str, **labels: str) -> float | None:
    """One sample of a Prometheus text exposition, by name and (a subset of) labels."""
    from prometheus_client.parser import text_string_to_metric_families

    want = {"target": "mock", "kind": "openai-completions", "profile": "live", "stage": "c4", **labels}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in want.items()):
                return s.value
    return None


def test_engine_build_manifests_are_carried_into_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The TensorRT-LLM build's manifest (--engine-manifest, or $LOADGEN_ENGINE_MANIFESTS as compose sets it)
    ends up in the run's manifest and summary, so every result says which precision it measured."""
    build = tmp_path / "manifest.json"
    build.write_text(json.dumps({"engine": "tensorrt-llm", "precision": "bf16", "requested_precision": "fp8",
                                 "reason": "no FP8 on 8.0", "gpu": {"name": "A100", "compute_capability": "8.0"}}))
    monkeypatch.setenv("LOADGEN_ENGINE_MANIFESTS", f"{tmp_path / 'not-built-yet.json'}:{build}")
    with mock(tmp_path, "--ttft-ms", "1", "--itl-ms", "1") as url:
        profile = mock_profile(url, tmp_path, {"type": "concurrency", "concurrency": 1, "requests": 2},
                               output_tokens=2)
        result = run(profile, tmp_path / "out", engine_builds=load_engine_manifests([]), report=False)
        builds = json.loads((tmp_path / "out" / "manifest.json").read_text())["engine_builds"]
        assert [b.get("missing", False) for b in builds] == [True, False]
        assert builds[1]["precision"] == "bf16" and builds[1]["path"] == str(build)
        assert result.manifest.engine_builds == builds
        summary = json.loads((tmp_path / "out" / "summary.json").read_text())
        assert summary["manifest"]["engine_builds"][1]["requested_precision"] == "fp8"
        # On the command line, an explicit path that does not exist is an error, before any request is sent.
        assert main(["run", "--no-progress", "--no-metrics", "--out", str(tmp_path / "out2"), "--target",
                     f"mock=openai-completions@{url}", "--model", "mock", "--dataset", str(write_dataset(tmp_path)),
                     "--concurrency", "1", "--requests", "2", "--engine-manifest", str(tmp_path / "nope.json")]) == 2
        assert not (tmp_path / "out2" / "records.jsonl").exists()


def test_a_full_disk_stops_the_run_in_one_line_keeping_every_complete_record(tmp_path: Path) -> None:
    """Issue 29, item 5: the disk fills mid-run (here the process's file-size limit, RLIMIT_FSIZE: the same failed
    write, EFBIG instead of ENOSPC, without a filesystem to fill). One line naming the path and the error, exit 5,
    no traceback; records.jsonl holds only complete records, and `loadgen report` rebuilds the run from them."""
    out = tmp_path / "out"
    limit = 40_000

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    with mock(tmp_path, "--ttft-ms", "5", "--itl-ms", "2") as url:
        done = subprocess.run(
            [sys.executable, "-m", "loadgen.cli", "run", "--no-progress", "--no-metrics", "--out", str(out),
             "--target", f"mock=openai-completions@{url}", "--model", "mock", "--concurrency", "4", "--requests",
             "400", "--output-tokens", "16", "--set", "prompts.source=sharegpt",
             "--set", f"prompts.dataset={write_dataset(tmp_path)}"],
            cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=small_disk)
    assert done.returncode == 5, done.stdout + done.stderr
    said = " ".join(done.stderr.split())
    assert "the run stopped: cannot write" in said and "EFBIG" in said and "complete records kept" in said, said
    assert "Traceback" not in done.stderr + done.stdout
    text = (out / "records.jsonl").read_text()
    assert text.endswith("\n") and 0 < text.count("\n") < 400
    kept = list(read_records(out / "records.jsonl"))
    assert len(kept) == text.count("\n") and f"{len(kept)} complete records kept" in said
    (out / "records.jsonl").write_text(text + text.splitlines(keepends=True)[0][:100])  # a record cut short
    report = subprocess.run([sys.executable, "-m", "loadgen.cli", "report", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "skipped 1 line, the last" in " ".join(report.stderr.split())
    assert json.loads((out / "summary.json").read_text())["targets"]["mock"]["requests"]["ok"] == len(kept)


def test_records_on_a_full_device_say_enospc(tmp_path: Path) -> None:
    """/dev/full answers every write with ENOSPC: the sink says so once, calls its stop, writes nothing more."""
    (tmp_path / "records.jsonl").symlink_to("/dev/full")
    sink = JsonlSink(tmp_path / "records.jsonl")
    stops: list[bool] = []
    sink.on_failure = lambda: stops.append(True)
    record = RequestRecord(target="t", kind="openai-chat", stage=0, stage_name="s", index=0, prompt_id="p",
                           intended_ns=0, sent_ns=0, end_ns=1)
    sink(record)
    sink(record)
    sink.close()
    assert sink.error is not None and "ENOSPC" in sink.error and str(tmp_path / "records.jsonl") in sink.error
    assert stops == [True] and sink.written == 0
