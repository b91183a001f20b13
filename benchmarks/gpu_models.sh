# Sourced by the GPU benchmark scripts: builds, under $work, the model shapes docs/gpu.md reports — the real
# model's shape and a 1.5B Qwen2 shape — with random weights and the real tokenizer from $tok (a real model's
# weights do not fit the lent machine's upload limit; speed and memory depend on the shape, not the weights).
GPU_SHAPES="smollm2-135m-shape qwen2-1.5b-shape"

build_gpu_model() {
  case "$1" in
    smollm2-135m-shape) $py -m stack.models random --out "$work/$1" --tokenizer "$tok" --like "$tok" ;;
    qwen2-1.5b-shape) $py -m stack.models random --out "$work/$1" --tokenizer "$tok" --architecture qwen2 \
        --hidden-size 1536 --intermediate-size 8960 --layers 28 --heads 12 --kv-heads 2 \
        --max-position-embeddings 4096 --dtype bfloat16 ;;
    *) echo "unknown shape $1 (known: $GPU_SHAPES)" >&2; return 2 ;;
  esac
}
