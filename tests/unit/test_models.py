"""The offline model build: a normal HF folder, and a no-op the second time."""

from __future__ import annotations

import json
from pathlib import Path

from stack.models import BUILD_MARKER, SMOLLM2_GGUF_SHA256, build_smollm2


def test_model_folder_is_a_normal_hf_folder(model_dir: Path, tokenizer) -> None:
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert tokenizer.chat_template, "the chat template must survive the GGUF conversion"
    config = json.loads((model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert (config["model_type"], config["vocab_size"], config["num_hidden_layers"]) == ("llama", 49152, 30)
    assert json.loads((model_dir / BUILD_MARKER).read_text())["gguf_sha256"] == SMOLLM2_GGUF_SHA256


def test_second_build_is_a_no_op(model_dir: Path) -> None:
    weights = model_dir / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    assert build_smollm2(model_dir) == model_dir
    assert weights.stat().st_mtime_ns == mtime  # nothing was converted or rewritten
