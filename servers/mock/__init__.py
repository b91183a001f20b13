"""A synthetic LLM server with recorded ground-truth timing and fault injection."""
