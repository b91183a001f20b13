"""The real CPU stack, started once for the tests of this package (``make test`` installs it: `make engines`).

Package scope, not session: the engines stop when the last engine test ends, so the rest of the suite does
not share the two cores with an idle vLLM (its worker spins about a quarter of a core) and three resident
models (issue 27)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engines import registry
from stack.local import StackState, running
from stack.process import EngineStartError


@pytest.fixture(scope="package")
def stack(model_dir: Path, log_dir: Path) -> Iterator[StackState]:
    try:
        with running(registry.names(), model_dir, log_dir / "engines") as state:
            yield state
    except EngineStartError as exc:
        pytest.fail(f"the CPU engines did not start (run `make engines`): {exc}")
