"""TensorRT-LLM on a GPU: engine build, precision choice, Triton model repository (run inside the trtllm container).

Not an engine of its own (no ``ENGINE`` here): it builds what the ``triton`` engine's compose
service serves (``engines/triton``). Kept import-free: the ``trtllm-build`` job mounts only
``engines/`` into NVIDIA's image.
"""
