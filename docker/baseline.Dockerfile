# The HF/FastAPI baseline server on a CUDA GPU (the compose `baseline` service; also the `model` job,
# which runs stack.hub).
# torch's CUDA wheels from PyPI carry their own CUDA libraries; the base image provides the
# runtime environment the NVIDIA container toolkit expects.
# The base image is a build argument like every image's here (docker/*.Dockerfile); NVIDIA's is the default.
ARG BASE_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

# Ubuntu's python3/curl follow the pinned base image; pinning their exact versions would break each rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
# No useradd: Ubuntu 24.04 images (nvidia/cuda:*-ubuntu24.04 is built on ubuntu:24.04) already have user
# `ubuntu` with UID 1000, and `useradd --uid 1000` fails the build ("UID 1000 is not unique"). USER 1000 below
# runs as that user (tests/static/test_compose.py knows which UIDs each base image has).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface

WORKDIR /app
COPY pyproject.toml README.md ./
COPY loadgen loadgen
COPY servers servers
COPY stack stack
# The project itself: pyproject.toml pins torch, transformers, fastapi and uvicorn for the [server] extra.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[server]' \
 && pip uninstall -y torchvision torchaudio torchcodec

USER 1000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=30 \
  CMD ["curl", "-fsS", "http://127.0.0.1:8000/health"]
# NVIDIA's entrypoint first (CUDA forward compatibility, driver checks), as the base image's own ENTRYPOINT does.
ENTRYPOINT ["/opt/nvidia/nvidia_entrypoint.sh", "python", "-m", "servers.hf", "--host", "0.0.0.0", "--port", "8000", \
            "--device", "cuda"]
CMD ["--model", "/models/model", "--served-model-name", "model"]
