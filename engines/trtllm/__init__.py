"""TensorRT-LLM on a GPU: engine build, precision choice, Triton model repository (run inside the trtllm container)."""
