#!/bin/sh
# pip install inside a CPU image build, with what the build was given (docker/*-cpu.Dockerfile, loadgen.Dockerfile):
# - the CA bundle of the machine that builds, as the BuildKit secret `pip-cert` (machines whose HTTPS goes through
#   their own CA; never stored in a layer), else the image's own bundle;
# - the wheels in docker/wheels (the build mounts docker/ at /build), as --find-links;
# - TORCH_INDEX_URL (PyTorch's CPU index by default; empty where docker/wheels holds the CPU torch build).
# Arguments go to `pip install` unchanged.
set -eu
if [ -s /run/secrets/pip-cert ]; then
  export PIP_CERT=/run/secrets/pip-cert
fi
set -- --no-cache-dir --disable-pip-version-check --find-links /build/wheels "$@"
if [ -n "${TORCH_INDEX_URL:-}" ]; then
  set -- --extra-index-url "$TORCH_INDEX_URL" "$@"
fi
exec pip install "$@"
