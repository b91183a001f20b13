"""A real deployment's demands, against the synthetic server: API keys and headers (redacted from every
file the run writes), https with the rig's own sockets (kernel timestamps kept), connection time apart
from TTFT, and a run whose requests failed exiting non-zero with nothing lost."""

from __future__ import annotations

import json
import ssl
import struct
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import httpx
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc

from loadgen import metrics as m
from loadgen.api import RECORDS_FILE, RunSetupError, run
from loadgen.cli import main
from loadgen.cli.exit_codes import EXIT_FAILED
from loadgen.config import Profile
from loadgen.record import RequestRecord
from loadgen.selftest import mock_truth
from loadgen.sinks.jsonl import read_records
from stack.certs import make_certificates
from stack.process import ManagedProcess, free_port
from tests.integration.mock_runs import mock, run_mock, write_dataset

KEY = "sk-test-7f3a9c1e5b2d"  # the API key, given through the environment
HEADER_SECRET = "tenant-secret-41d9e2"  # a secret given literally on the command line


def cli_run(url: str, out: Path, *extra: str, requests: int = 12, kind: str = "openai-chat") -> int:
    dataset = write_dataset(out.parent)
    return main(["run", "--target", f"mock={kind}@{url}", "--model", "mock", "--dataset", str(dataset),
                 "--output-tokens", "4", "--concurrency", "3", "--requests", str(requests), "--out", str(out),
                 "--no-progress", "--no-metrics", *extra])


def test_api_key_and_headers_reach_the_server_and_no_file_holds_a_secret(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCK_KEY", KEY)
    with mock(tmp_path, "--ttft-ms", "2", "--itl-ms", "1", "--api-key", KEY) as url:
        # No key: every request is a classified http_4xx carrying the server's message, and the run exits 3.
        assert cli_run(url, tmp_path / "nokey") == EXIT_FAILED
        records = list(read_records(tmp_path / "nokey" / RECORDS_FILE))
        assert len(records) == 12 and {r.error for r in records} == {"http_4xx"}
        assert all(r.status == 401 and "Unauthorized" in (r.error_detail or "") for r in records)
        # The key from the environment, and a secret header given literally: success, exit 0.
        out = tmp_path / "withkey"
        assert cli_run(url, out, "--api-key-env", "MOCK_KEY", "--header", f"X-Tenant-Token: {HEADER_SECRET}",
                       "--header", "X-Team: blue") == 0
    records = list(read_records(out / RECORDS_FILE))
    assert len(records) == 12 and all(r.ok for r in records)
    written = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {"manifest.json", "records.jsonl", "summary.json", "report.html", "report.txt"} <= set(written)
    for name, data in written.items():
        assert KEY.encode() not in data and HEADER_SECRET.encode() not in data, f"{name} holds a secret"
    manifest = json.loads(written["manifest.json"])
    # What was sent is still visible, less the secrets: the variable's name and the harmless header.
    assert manifest["profile"]["request"]["api_key_env"] == "MOCK_KEY"
    assert manifest["profile"]["request"]["headers"] == {"X-Tenant-Token": "<redacted>", "X-Team": "blue"}


def test_a_bad_target_creates_nothing_and_a_dead_one_exits_non_zero(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    assert cli_run("notaurl", out) == 2
    assert "has no scheme" in capsys.readouterr().err and not out.exists()
    assert cli_run("http://127.0.0.1:1", out, "--api-key-env", "SURELY_UNSET_VAR_16") == 2
    assert "SURELY_UNSET_VAR_16" in capsys.readouterr().err and not out.exists()
    # A dead server: every request a classified connect failure, all recorded, and exit 3.
    dead = f"http://127.0.0.1:{free_port()}"
    assert cli_run(dead, out) == EXIT_FAILED
    records = list(read_records(out / RECORDS_FILE))
    assert len(records) == 12 and {r.error for r in records} == {"connect"}
    assert "12 of 12 requests failed" in " ".join(capsys.readouterr().err.split())
    assert cli_run(dead, tmp_path / "tolerated", "--max-failed-ratio", "1") == 0


@contextmanager
def tls_mock(tmp_path: Path, ca: Path, *args: str) -> Iterator[str]:
    """The mock serving https; its readiness is polled over https, trusting ``ca``."""
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    proc = ManagedProcess(name="mock", argv=[sys.executable, "-m", "servers.mock", "--port", str(port), *args],
                          log_path=tmp_path / f"mock-{port}.log", ready_url=f"{url}/health", ready_timeout_s=30,
                          env={"SSL_CERT_FILE": str(ca)})
    with proc:
        yield url


def test_https_keeps_timestamps_and_checks_the_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = make_certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the readiness poll (httpx) trusts the test's CA
    with tls_mock(tmp_path, ca, "--ttft-ms", "20", "--itl-ms", "5", "--ssl-certfile", str(cert), "--ssl-keyfile",
                  str(key)) as url:
        monkeypatch.delenv("SSL_CERT_FILE")  # OpenSSL's default paths honour it: the client must not
        # Not trusted: each request fails as a classified connect error that says why.
        assert cli_run(url, tmp_path / "untrusted") == EXIT_FAILED
        records = list(read_records(tmp_path / "untrusted" / RECORDS_FILE))
        assert {r.error for r in records} == {"connect"}
        assert all("certificate verify failed" in (r.error_detail or "") for r in records)
        # ... and the console and report.txt say why under the table, not only how many (issue 29, item 10)
        said = (tmp_path / "untrusted" / "report.txt").read_text()
        assert "first connect:" in said and "CERTIFICATE_VERIFY_FAILED" in said, said[-1500:]
        assert cli_run(url, tmp_path / "insecure", "--insecure", requests=3) == 0
        # Trusted through --ca-cert: exact against the mock's own books.
        before = httpx.get(f"{url}/metrics", verify=ssl.create_default_context(cafile=str(ca))).text
        result = run_mock(tmp_path / "ca", url, {"type": "concurrency", "concurrency": 8, "requests": 64},
                          output_tokens=16, request={"ca_cert": str(ca)})
        truth = mock_truth(before, httpx.get(f"{url}/metrics", verify=ssl.create_default_context(cafile=str(ca))).text)
    ok = [r for r in result.records if r.ok]
    assert len(ok) == 64
    ttft = m.stats(m.ttft_ms(r) for r in ok)
    tpot = m.stats(m.tpot_ms(r) for r in ok)
    assert ttft is not None and tpot is not None
    assert abs(ttft.mean - truth.ttft_ms) < 1.0, (ttft.mean, truth.ttft_ms)
    assert abs(tpot.mean - truth.itl_ms) < 0.2, (tpot.mean, truth.itl_ms)


def test_connection_time_is_apart_from_ttft(tmp_path: Path) -> None:
    with mock(tmp_path, "--ttft-ms", "10", "--itl-ms", "2") as url:
        cold = run_mock(tmp_path / "cold", url, {"type": "concurrency", "concurrency": 6, "requests": 12,
                                                 "preconnect": 0}, output_tokens=4)
        warm = run_mock(tmp_path / "pre", url, {"type": "concurrency", "concurrency": 6, "requests": 12},
                        output_tokens=4)
    # Without preconnect the first wave opens the 6 connections, each on its record, before its write.
    opened = [r for r in cold.records if r.connect_ns is not None]
    assert len(opened) == 6
    assert all(r.connect_start_ns <= r.connect_ns <= r.sent_ns for r in opened)  # type: ignore[operator]
    assert cold.summary.targets["mock"].stats("connect_ms").count == 6
    # With the default (a closed loop opens its width first) no request waits for a connection.
    assert all(r.connect_ns is None for r in warm.records)
    assert warm.summary.targets["mock"].stats("connect_ms") is None
    for result in (cold, warm):
        ttft = m.stats(m.ttft_ms(r) for r in result.records)
        # the mock waits 10 ms; its timers (uvloop: millisecond resolution) may fire up to 1 ms early
        assert ttft is not None and ttft.min > 8 and ttft.max < 20, ttft


class _TritonStreams(service_pb2_grpc.GRPCInferenceServiceServicer):
    """A minimal Triton ``ModelStreamInfer``: three one-token responses, then the empty final one;
    refuses a call without the expected ``authorization`` metadata."""

    def ModelStreamInfer(self, request_iterator, context):
        for request in request_iterator:  # read the request first: an abort before it races the client
            if dict(context.invocation_metadata()).get("authorization") != f"Bearer {KEY}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong key")
            for i in range(3):
                response = service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)
                response.outputs.add(name="text_output", datatype="BYTES", shape=[1])
                response.raw_output_contents.append(struct.pack("<I", 4) + f" t{i:02d}".encode())
                yield service_pb2.ModelStreamInferResponse(infer_response=response)
            final = service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)
            final.parameters["triton_final_response"].bool_param = True
            yield service_pb2.ModelStreamInferResponse(infer_response=final)
            return


def test_triton_grpc_over_tls_sends_the_key_as_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = make_certificates(tmp_path)
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(_TritonStreams(), server)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    monkeypatch.setenv("TRITON_KEY", KEY)
    try:
        def grpc_run(name: str, **request: object) -> list[RequestRecord]:
            profile = Profile.model_validate({
                "model": "ensemble", "targets": [{"name": "t", "kind": "triton-grpc",
                                                  "url": f"grpcs://127.0.0.1:{port}"}],
                "prompts": {"source": "sharegpt", "dataset": str(write_dataset(tmp_path)), "output_tokens": 3},
                "load": {"concurrency": 2, "requests": 4}, "metrics": {"enabled": False}, "request": request})
            return run(profile, tmp_path / name, report=False).records

        refused = grpc_run("nokey", ca_cert=str(ca))
        accepted = grpc_run("key", ca_cert=str(ca), api_key_env="TRITON_KEY")
        untrusted = grpc_run("untrusted", api_key_env="TRITON_KEY")
    finally:
        server.stop(None)
    assert {r.error for r in refused} == {"http_4xx"}, [r.error_detail for r in refused]  # as HTTP's 401
    assert all("UNAUTHENTICATED" in (r.error_detail or "") for r in refused)
    assert len(accepted) == 4 and all(r.ok and r.output_tokens == 3 for r in accepted)
    assert {r.error for r in untrusted} == {"connect"}  # UNAVAILABLE: the handshake fails
    with pytest.raises(RunSetupError, match="cannot skip certificate verification"):
        grpc_run("insecure", insecure=True)
