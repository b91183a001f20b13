"""``python -m engines.<name>.launch``: start an engine in the foreground, as a container's command.

Why: the compose stack's CPU flavour (``docker-compose.cpu.yml``) must start each engine with the
flags the local CPU stack uses, not with a copy of them that drifts. Each launcher builds its
argv and environment with the same functions ``EngineSpec.start`` uses, then replaces itself
with the engine (``os.execve``), so ``docker stop`` and Ctrl-C reach the engine directly and its
exit status is the container's. Flags the launcher does not know go to the engine unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn


def serve_parser(engine: str, default_port: int = 8000) -> argparse.ArgumentParser:
    """The flags every launcher takes: the model folder, the name clients use, where to listen."""
    parser = argparse.ArgumentParser(prog=f"python -m engines.{engine}.launch",
                                     description=f"start {engine} in the foreground (a container's command); "
                                                 "unknown flags go to the engine")
    parser.add_argument("--model", type=Path, required=True, help="the model folder (config, weights, tokenizer)")
    parser.add_argument("--served-model-name", default="model", help="the model name clients put in requests")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0 inside a container)")
    parser.add_argument("--port", type=int, default=default_port)
    return parser


def exec_engine(argv: Sequence[str], env: Mapping[str, str] | None = None) -> NoReturn:
    """Print the command (the container's log says what runs), then become it."""
    merged = {**os.environ, **(env or {})}
    print("exec:", " ".join(argv), file=sys.stderr, flush=True)
    os.execve(argv[0], list(argv), merged)
