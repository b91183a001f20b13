#!/usr/bin/env bash
# Issue 20, part 4 (docs/gpu.md): the baseline's naive vs continuous scheduler on CUDA, for the real model's shape
# and a 1.5B Qwen2 shape (gpu_models.sh), each server alone, with benchmarks/continuous_batching.py's workload
# (128-token prompts, 64 output tokens, closed loop). Writes WORK_DIR/continuous-<shape>.md per shape.
# Usage: benchmarks/gpu_continuous.sh TOKENIZER_DIR WORK_DIR
# (DEVICE=cpu CONCURRENCY=1 SHAPES=smollm2-135m-shape run the same steps on a CPU, to check the script without
# a GPU.)
set -euo pipefail
tok=${1:?tokenizer/config folder}; work=${2:?work dir}
py=${PYTHON:-python3}
device=${DEVICE:-cuda}; concurrency=${CONCURRENCY:-1,16,32}
if [ "$device" != cpu ]; then
  nvidia-smi --query-gpu=name,memory.total,compute_cap,driver_version --format=csv,noheader
fi
source "$(dirname "$0")/gpu_models.sh"
shapes=${SHAPES:-$GPU_SHAPES}
for model in $shapes; do
  build_gpu_model "$model"
  $py benchmarks/continuous_batching.py --servers naive,continuous --device "$device" --model "$work/$model" \
      --concurrency "$concurrency" --work "$work/cb-$model" --out "$work/continuous-$model.md"
done
