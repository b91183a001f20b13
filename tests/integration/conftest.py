"""Real baseline server processes on the real model (and, for fuzzing, a tiny random model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engines.baseline.launch import baseline_process
from stack.process import free_port
from tests.integration.servers import MAX_QUEUE, SERVED, Server


@pytest.fixture(scope="session")
def baseline(model_dir: Path, log_dir: Path) -> Iterator[Server]:
    port = free_port()
    proc = baseline_process(model_dir, port, log_dir, served_model_name=SERVED,
                            extra_args=["--max-queue", str(MAX_QUEUE)])
    with proc:
        yield Server(url=f"http://127.0.0.1:{port}", process=proc)


@pytest.fixture(scope="session")
def tiny_model_dir(model_dir: Path) -> Path:
    """Random weights, real tokenizer: fast generation for protocol fuzzing only."""
    from stack.models import build_random

    return build_random(model_dir.parent / "tiny-random-llama", model_dir, hidden_size=32, layers=1, heads=2,
                        max_position_embeddings=256)


@pytest.fixture(scope="session")
def tiny_server(tiny_model_dir: Path, log_dir: Path) -> Iterator[Server]:
    port = free_port()
    proc = baseline_process(tiny_model_dir, port, log_dir, served_model_name="tiny",
                            extra_args=["--max-queue", "64", "--max-model-len", "64"])
    with proc:
        yield Server(url=f"http://127.0.0.1:{port}", process=proc, model="tiny")
