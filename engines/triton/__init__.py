"""The real Triton Inference Server on CPU: python-backend model repository and launcher."""
