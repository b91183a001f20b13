# The TensorRT-LLM build job and Triton (compose services `trtllm-build` and `triton`): NVIDIA's image plus
# what its own build removed or never had, and the rig's build code (engines/trtllm, at the end).
# - setuptools: Triton's build.py (r25.12) ends the TensorRT-LLM layer with `pip3 uninstall -y setuptools`,
#   and NVIDIA ModelOpt imports it (Model-Optimizer issue 66).
# - datasets: FP8 calibration (engines/trtllm/quantize.py) loads its samples with it.
# The entrypoint stays NVIDIA's (/opt/nvidia/nvidia_entrypoint.sh: CUDA forward compatibility, driver checks).
# The base image is a build argument like every image's here (docker/*.Dockerfile); NVIDIA's is the default.
ARG BASE_IMAGE=nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3
FROM ${BASE_IMAGE}

# setuptools below 81 keeps pkg_resources, which ModelOpt's import path may still use; datasets follows the
# image's huggingface_hub (pinning it here would fight the image's own pins on each NGC release).
# hadolint ignore=DL3013
RUN pip3 install --no-cache-dir "setuptools<81" datasets \
 && python3 -c "import setuptools, datasets"

# The build's code (python3 -m engines.trtllm.build) where compose bind-mounts ./engines: /rig/engines, run
# with PYTHONPATH=/rig. Compose's mount overlays this copy, so a checkout's edits apply without a rebuild; a
# Kubernetes pod has no checkout and runs this copy (deploy/k8s/stack/triton.yaml). engines/__init__.py is
# import-free, so engines.trtllm needs nothing else from engines/. Last: it changes more often than the above.
COPY engines/__init__.py /rig/engines/__init__.py
COPY engines/trtllm /rig/engines/trtllm
