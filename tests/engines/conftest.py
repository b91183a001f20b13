"""The real CPU stack, started once for the session (``make test`` installs it: `make engines`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engines import registry
from stack.local import StackState, running
from stack.process import EngineStartError


@pytest.fixture(scope="session")
def stack(model_dir: Path, log_dir: Path) -> Iterator[StackState]:
    try:
        with running(registry.names(), model_dir, log_dir / "engines") as state:
            yield state
    except EngineStartError as exc:
        pytest.fail(f"the CPU engines did not start (run `make engines`): {exc}")
