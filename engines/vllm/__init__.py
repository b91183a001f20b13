"""vLLM: the CPU build for the local stack, and the flags the GPU compose service uses."""
