"""Every query of every Grafana dashboard, evaluated by a real Prometheus after a real run.

The run: the load generator (exporting live) against the real baseline, vLLM and Triton on CPU,
plus a target that only fails (a Triton model that does not exist) so that error panels have
data; Prometheus (Debian's package) scrapes all of them every second. Then each panel query goes
through Prometheus's HTTP API over the run's window: every query must parse, every query the CPU
stack can answer must return data, and the ones that need a GPU or TensorRT-LLM are listed and
must return nothing here (a declaration that no longer matches the query fails too).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from grafana.dashboards import all_queries
from loadgen.api import run
from loadgen.config import Profile
from stack.local import StackState
from stack.process import free_port
from stack.prometheus import SCRAPE_INTERVAL_S, host_port, prometheus_process

RATE_WINDOW = "5s"  # what Grafana's $__rate_interval is at this scrape interval (4 × 1 s, rounded up)


@pytest.fixture(scope="module")
def scraped_run(stack: StackState, model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("dashboards")
    loadgen_port = free_port()
    jobs = {"loadgen": [f"127.0.0.1:{loadgen_port}"],
            **{e.engine: [host_port(e.metrics_url)] for e in stack.engines.values()}}
    prometheus = prometheus_process(jobs, tmp / "prometheus").start().wait_ready()
    base = prometheus.ready_url.removesuffix("/-/ready")
    try:
        triton = stack.engines["triton"]
        targets = [t for e in stack.engines.values() for t in e.targets()]
        targets.append({"name": "broken", "kind": "triton-generate", "url": triton.urls["triton-generate"],
                        "model": "no-such-model"})
        profile = Profile.model_validate({
            "name": "dashboards", "targets": targets,
            "prompts": {"input_tokens": 16, "output_tokens": 8, "count": 4, "tokenizer": str(model_dir)},
            "load": {"type": "concurrency", "concurrency": 2, "requests": 4},
            "metrics": {"port": loadgen_port, "linger_s": 4 * SCRAPE_INTERVAL_S}})
        start = time.time()
        assert not run(profile, tmp / "out").interrupted
        end = time.time()
        yield base, start, end
    finally:
        prometheus.stop()


def evaluate(base: str, expr: str, start: float, end: float) -> dict:
    expr = expr.replace("$__rate_interval", RATE_WINDOW).replace("$target", ".*")
    response = httpx.get(f"{base}/api/v1/query_range", timeout=30,
                         params={"query": expr, "start": start - 5, "end": end + 5, "step": "1s"})
    return response.json()


def test_every_dashboard_query_against_a_real_prometheus(scraped_run) -> None:
    base, start, end = scraped_run
    bad, empty, unexpected, listed = [], [], [], []
    queries = all_queries()
    for uid, title, query, needs in queries:
        result = evaluate(base, query.expr, start, end)
        where = f"{uid} / {title}: {query.expr}"
        if result.get("status") != "success":
            bad.append(f"{where} → {result.get('error')}")
            continue
        has_data = bool(result["data"]["result"])
        if needs == "cpu" and not has_data:
            empty.append(where)
        elif needs != "cpu":
            listed.append(f"[needs {needs}] {where}")
            if has_data:
                unexpected.append(where)
    print(f"\n{len(queries)} dashboard queries: {len(queries) - len(listed)} answered on the CPU stack, "
          f"{len(listed)} need a GPU or TensorRT-LLM:\n  " + "\n  ".join(listed))
    assert not bad, "queries Prometheus rejects:\n" + "\n".join(bad)
    assert not empty, "CPU queries without data:\n" + "\n".join(empty)
    assert not unexpected, "declared GPU/TensorRT-LLM-only but answered on CPU:\n" + "\n".join(unexpected)


def test_the_target_variable_lists_every_target(scraped_run) -> None:
    base, _, _ = scraped_run
    values = httpx.get(f"{base}/api/v1/label/target/values", timeout=10,
                       params={"match[]": "loadgen_requests_total"}).json()["data"]
    assert {"baseline", "vllm", "triton", "triton-grpc", "broken"} <= set(values)
