"""Runs against the synthetic server (servers/mock) shared by the integration tests: the server on a free port, a
one-target profile, a complete run through the library, and a ShareGPT-format prompt file it needs no tokenizer for."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from loadgen.api import RunResult, run
from loadgen.config import Profile
from loadgen.selftest import running_mock


def mock(tmp_path: Path, *args: str) -> AbstractContextManager[str]:
    """The synthetic server on a free port (the selftest's own starter), logging into ``tmp_path``."""
    return running_mock(list(args), tmp_path, None)


def mock_profile(url: str, folder: Path, load: dict[str, Any] | list[dict[str, Any]], *, output_tokens: int,
                 kind: str = "openai-completions", **fields: Any) -> Profile:
    """One target (the mock, as ``kind``), ShareGPT-format prompts (the mock does not tokenize), no live
    metrics; ``load``: one stage, or a list of stages; ``fields`` are further top-level profile fields."""
    return Profile.model_validate({
        "model": "mock", "targets": [{"name": "mock", "kind": kind, "url": url}],
        "prompts": {"source": "sharegpt", "dataset": str(write_dataset(folder)), "output_tokens": output_tokens},
        "stages" if isinstance(load, list) else "load": load, "metrics": {"enabled": False}, **fields})


def run_mock(out: Path, url: str, load: dict[str, Any] | list[dict[str, Any]], *, output_tokens: int,
             kind: str = "openai-completions", report: bool = False, **fields: Any) -> RunResult:
    """A complete run through the library, written into ``out``."""
    result = run(mock_profile(url, out.parent, load, output_tokens=output_tokens, kind=kind, **fields), out,
                 report=report)
    assert not result.interrupted and result.out == out
    return result


def write_dataset(folder: Path) -> Path:
    """A small ShareGPT-format file: the mock does not tokenize, so no tokenizer is needed."""
    path = folder / "sharegpt.json"
    if not path.exists():
        path.write_text(json.dumps([{"id": str(i), "conversations": [
            {"from": "human", "value": f"question number {i} about the sea"}, {"from": "gpt", "value": "x"}]}
            for i in range(64)]))
    return path
