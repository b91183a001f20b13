#!/usr/bin/env bash
# GPU figures of the baseline server (docs/gpu.md): the real model's shape and a 1.5B Qwen2 shape,
# both with random weights and the real tokenizer, served on CUDA in the default dtype (bf16).
# Usage: benchmarks/gpu_baseline.sh TOKENIZER_DIR WORK_DIR   (TOKENIZER_DIR: the real model folder,
# or any folder holding its config.json and tokenizer files)
set -euo pipefail
tok=${1:?tokenizer/config folder}; work=${2:?work dir}
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version --format=csv,noheader
$py -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
source "$(dirname "$0")/gpu_models.sh"
for shape in $GPU_SHAPES; do build_gpu_model "$shape"; done
for model in smollm2-135m-shape qwen2-1.5b-shape; do
  $py benchmarks/baseline_single_stream.py --model "$work/$model" --device cuda --output-tokens 128 \
      --runs 3 --log-dir "$work/logs"
done
$py benchmarks/baseline_single_stream.py --model "$work/smollm2-135m-shape" --device cuda --dtype float32 \
    --output-tokens 128 --runs 3 --log-dir "$work/logs"
