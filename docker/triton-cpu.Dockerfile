# Triton on CPU for the compose CPU flavour (docker-compose.cpu.yml): the real tritonserver that PyPI's
# nvidia-pytriton bundles, with the python backend, serving the CPU model repository (engines/triton: the
# TensorRT-LLM `ensemble` interface in front of the baseline's generation code). The same image runs the
# `trtllm-build` job's CPU stand-in, which stages that repository where the GPU build writes its own.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# The python backend's stub loads the interpreter's libpython3.11 (engines/triton/launch.py puts its LIBDIR
# first on LD_LIBRARY_PATH): the build stops here if the base image lacks it.
RUN python3 -m venv /opt/venv \
 && python3 -c "import sysconfig, os, sys; d = sysconfig.get_config_var('LIBDIR'); \
sys.exit(0 if os.path.exists(os.path.join(d, 'libpython3.11.so.1.0')) else 'no libpython3.11.so.1.0 in ' + d)"
# TOKENIZERS_PARALLELISM is a tokenizers switch, not a secret (hadolint reads TOKEN as one).
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/rig \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

# httpx: stack.process, which the launcher imports (engines.spec).
COPY engines/triton/requirements.txt /tmp/triton-requirements.txt
RUN --mount=type=bind,source=docker,target=/build --mount=type=secret,id=pip-cert \
    sh /build/pip-install.sh -r /tmp/triton-requirements.txt "httpx>=0.27" \
 && pip uninstall -y torchvision torchaudio torchcodec

# /rig as in the GPU trtllm image: compose bind-mounts ./engines over /rig/engines for the build job.
WORKDIR /rig
COPY engines engines
COPY servers servers
COPY stack stack
# The backend folder (libtriton_python.so, its utils and the 3.11 stub) is assembled once, here.
RUN python -c "from pathlib import Path; import sys; from engines.triton.launch import TritonInstall; \
TritonInstall.find(Path(sys.prefix)).backend_dir()"
EXPOSE 8000 8001 8002
ENTRYPOINT ["python", "-m", "engines.triton.launch", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--model", "/models/model", "--model-repository", "/engines/repository"]
