"""docs/extending.md's examples are true: each one, taken verbatim from the page, is the ONE new
file (or, for a metric, the one addition to loadgen/metrics.py) that a copy of the package needs
for the new plug-in to validate in a profile and run for real against the synthetic server.

Each example runs in a subprocess whose ``loadgen`` is a fresh copy of this repository's package
plus that one file, so nothing of the example leaks into the other tests, and the same profile
is shown to be refused by the unmodified package.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from loadgen.config import Profile
from stack.process import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = re.compile(r"<!-- (file|append): (\S+) -->\n```python\n(.*?)```", re.S)


def examples() -> dict[str, tuple[str, str]]:
    """path → (file | append, code) for every example on the page."""
    text = (ROOT / "docs" / "extending.md").read_text()
    return {path: (how, code) for how, path, code in EXAMPLE.findall(text)}


def package_with(tmp_path: Path, path: str) -> Path:
    """A copy of the loadgen package with the page's example for ``path`` added."""
    how, code = examples()[path]
    shutil.copytree(ROOT / "loadgen", tmp_path / "loadgen", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / path
    if how == "append":
        target.write_text(target.read_text() + "\n\n" + code)
    else:
        assert not target.exists(), f"{path} is not a new file"
        target.write_text(code)
    return tmp_path


def run_python(root: Path, code: str) -> object:
    """Run ``code`` with ``root`` first on the path; it prints one JSON value."""
    preamble = f"import loadgen; assert loadgen.__file__.startswith({str(root)!r}), loadgen.__file__\n"
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", preamble + textwrap.dedent(code)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("mock")
    port = free_port()
    proc = ManagedProcess(name="mock", argv=[sys.executable, "-m", "servers.mock", "--port", str(port),
                                             "--ttft-ms", "5", "--itl-ms", "2"],
                          log_path=logs / "mock.log", ready_url=f"http://127.0.0.1:{port}/health", ready_timeout_s=30)
    with proc:
        yield f"http://127.0.0.1:{port}"


def profile(url: str, tmp_path: Path, **fields: object) -> dict[str, object]:
    dataset = tmp_path / "prompts.json"
    dataset.write_text(json.dumps([{"id": str(i), "conversations": [{"from": "human", "value": f"question {i}"}]}
                                   for i in range(8)]))
    base: dict[str, object] = {
        "model": "mock", "targets": [{"name": "mock", "kind": "openai-completions", "url": url}],
        "prompts": {"source": "sharegpt", "dataset": str(dataset), "output_tokens": 6},
        "load": {"type": "concurrency", "concurrency": 2, "requests": 4},
        "metrics": {"enabled": False}, "out": str(tmp_path / "out")}
    return {**base, **fields}


RUN = """
    import json
    from loadgen.api import run
    from loadgen.config import Profile
    result = run(Profile.model_validate(json.loads({data!r})), report=False)
    print(json.dumps([r.model_dump(mode="json") for r in result.records]))
"""


def run_profile(root: Path, data: dict[str, object]) -> list[dict[str, object]]:
    records = run_python(root, RUN.format(data=json.dumps(data)))
    assert isinstance(records, list)
    return records


def refused_today(data: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        Profile.model_validate(data)


def test_every_example_on_the_page_is_tested() -> None:
    assert set(examples()) == {"loadgen/clients/openai_chat_plain.py", "loadgen/shapes/burst.py",
                               "loadgen/arrivals/uniform.py", "loadgen/sources/lines.py", "loadgen/metrics.py"}


def test_a_client_kind_is_one_new_file(tmp_path: Path, mock: str) -> None:
    data = profile(mock, tmp_path, targets=[{"name": "plain", "kind": "openai-chat-plain", "url": mock}])
    refused_today(data, "unknown client kind 'openai-chat-plain'")
    records = run_profile(package_with(tmp_path, "loadgen/clients/openai_chat_plain.py"), data)
    assert len(records) == 4 and all(r["error"] is None for r in records)
    assert {r["kind"] for r in records} == {"openai-chat-plain"}
    # No stream_options went on the wire: the mock sent no usage, so tokens were counted per chunk.
    assert all(r["chunk_tokens_exact"] is False and r["output_tokens"] == 6 for r in records)


def test_a_load_shape_is_one_new_file(tmp_path: Path, mock: str) -> None:
    data = profile(mock, tmp_path, load={"type": "burst", "requests": 5})
    refused_today(data, "'burst'")
    records = run_profile(package_with(tmp_path, "loadgen/shapes/burst.py"), data)
    assert len(records) == 5 and all(r["error"] is None for r in records)
    assert {r["stage_name"] for r in records} == {"burst5"}
    assert len({r["intended_ns"] for r in records}) == 1  # all due at the same instant


@pytest.mark.slow  # seconds: left out of make test-fast
def test_an_arrival_process_is_one_new_file(tmp_path: Path, mock: str) -> None:
    data = profile(mock, tmp_path, load={"type": "rate", "rate": 100, "arrival": "uniform", "requests": 20})
    refused_today(data, "unknown arrival process 'uniform'")
    root = package_with(tmp_path, "loadgen/arrivals/uniform.py")
    records = run_profile(root, data)
    assert len(records) == 20 and all(r["error"] is None for r in records)
    gaps = sorted(b - a for a, b in zip(sorted(r["intended_ns"] for r in records),
                                        sorted(r["intended_ns"] for r in records)[1:], strict=False))
    assert gaps[-1] <= 2 / 100 * 1e9 + 1  # uniform on [0, 2/rate]: no gap beyond twice the mean
    # The CLI offers it too, with no change to the CLI.
    names = "import json; from loadgen.registry import ARRIVALS; print(json.dumps(ARRIVALS.names()))"
    choices = run_python(root, names)
    assert "uniform" in choices  # type: ignore[operator]


def test_a_prompt_source_is_one_new_file(tmp_path: Path, mock: str) -> None:
    lines = tmp_path / "prompts.txt"
    lines.write_text("first question\n\nsecond question\nthird question\n")
    data = profile(mock, tmp_path, prompts={"source": "lines", "path": str(lines), "output_tokens": 3},
                   load={"type": "concurrency", "concurrency": 1, "requests": 3})
    refused_today(data, "'lines'")
    records = run_profile(package_with(tmp_path, "loadgen/sources/lines.py"), data)
    assert [r["prompt_id"] for r in records] == ["line-0", "line-1", "line-2"]
    assert all(r["output_tokens"] == 3 for r in records)


METRIC = """
    import csv, io, json
    from loadgen.record import RequestRecord
    from loadgen.render.csv import header
    from loadgen.render.table import metric_columns
    from loadgen.summary import summarize
    ms = 1_000_000
    # TTFT 100 ms, then 10 more tokens in 1 s: 10 tokens/s of decode.
    r = RequestRecord(target="t", kind="openai-completions", stage=0, stage_name="c1", index=0, prompt_id="p",
                      intended_ns=0, sent_ns=0, first_token_ns=100 * ms, end_ns=1100 * ms, output_tokens=11)
    block = summarize([r], [], {})
    print(json.dumps({"p50": block.stats("decode_tokens_per_s").p50, "csv": "decode_tokens_per_s_p50" in header(),
                      "table": "decode tok/s p50" in metric_columns(), "json": "decode_tokens_per_s" in
                      json.loads(block.model_dump_json())}))
"""


def test_a_metric_is_one_function_and_one_descriptor(tmp_path: Path) -> None:
    from loadgen import metrics

    assert "decode_tokens_per_s" not in metrics.registered_names()
    found = run_python(package_with(tmp_path, "loadgen/metrics.py"), METRIC)
    assert found == {"p50": 10.0, "csv": True, "table": True, "json": True}
